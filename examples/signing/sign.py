"""Sign a query-API URL from Python: python sign.py SECRET 'photos/cat.jpg' 'w=300&fm=webp&exp=1900000000'.

Self-contained (standard library only), the same message as imageorigin.signing.query_message."""

from __future__ import annotations

import hashlib
import hmac
import sys
from urllib.parse import parse_qsl, quote

UNSIGNED = {"s", "fm", "format", "encoding"}  # the signature itself, and the format


def signed_url(secret: str, key: str, params: list[tuple[str, str]]) -> str:
    pairs = sorted((name, value) for name, value in params if name.lower() not in UNSIGNED)
    path = "/" + quote(key, safe="/")
    message = path + "?" + "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs)
    signature = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    query = "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in params)
    return f"{path}?{query}&s={signature}"


if __name__ == "__main__":
    secret, key, query = sys.argv[1:4]
    print(signed_url(secret, key, parse_qsl(query, keep_blank_values=True)))
