"""URL signatures: HMAC-SHA256 for the query API (`s=`, `exp=`), HMAC-SHA1 for thumbor paths; pure, no AWS."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from .errors import BadParameter, BadSignature, SignatureExpired
from .grammars.query import FORMAT_PARAMETERS, encode_query

SIGNATURE = "s"
EXPIRES = "exp"
BODY_SIGNATURE = "X-Signature"  # the header that signs a request body (POST /animations)
# Names the signature does not cover: itself, and the output format (fm=auto is resolved into a concrete format
# at the edge, and a format changes no size: a signed URL may be asked in any format).
UNSIGNED = frozenset({SIGNATURE}) | FORMAT_PARAMETERS
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{43}=?")
_UNIX_TIME = re.compile(r"[0-9]{1,12}")


def query_message(key: str, query: Mapping[str, Sequence[str]]) -> str:
    """What `s=` signs: `/<key>?<name=value&...>`, the key and each name and value percent-encoded the one way
    (RFC 3986 unreserved characters kept, '/' kept in the key), the pairs sorted, `s` and the format left out."""
    pairs = sorted((name, value) for name, values in query.items() if name.lower() not in UNSIGNED
                   for value in values)
    return f"/{quote(key, safe='/')}?{encode_query(pairs)}"


def sign_query(secret: bytes, key: str, query: Mapping[str, Sequence[str]]) -> str:
    """The `s=` value for a request (hex); `exp`, if the URL is to expire, must be in `query` already."""
    return hmac.new(secret, query_message(key, query).encode(), hashlib.sha256).hexdigest()


def verify_query(secrets: Sequence[bytes], key: str, query: Mapping[str, Sequence[str]], now: float) -> bool:
    """Check `s=` (hex or URL-safe base64) against every active key, in constant time, then `exp=`.

    False when the request carries no signature; BadParameter when it is malformed; BadSignature when no key
    made it; SignatureExpired when it is genuine but past its `exp`."""
    given = query.get(SIGNATURE)
    if given is None:
        if EXPIRES in query:
            raise BadParameter(EXPIRES, "goes with a signature (s=)")
        return False
    digest = _digest(given)
    expires = expiry(query)
    message = query_message(key, query).encode()
    matched = False
    for secret in secrets:  # every key is tried, whatever matched: the time taken says nothing
        matched |= hmac.compare_digest(hmac.new(secret, message, hashlib.sha256).digest(), digest)
    if not matched:
        raise BadSignature("the signature does not match this request")
    if expires is not None and now > expires:
        raise SignatureExpired("the signed URL expired")
    return True


def sign_body(secret: bytes, body: bytes) -> str:
    """The `X-Signature` of a request body (POST /animations): HMAC-SHA256 of its exact bytes, hex."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_body(secrets: Sequence[bytes], body: bytes, given: str | None) -> bool:
    """Check an `X-Signature` (hex or URL-safe base64) over the exact body bytes against every active key, in
    constant time. False when none was sent; BadParameter when malformed; BadSignature when no key made it."""
    if given is None:
        return False
    digest = _digest([given], BODY_SIGNATURE)
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).digest(), digest)
    if not matched:
        raise BadSignature("the X-Signature does not match this request's body")
    return True


def _digest(given: Sequence[str], name: str = SIGNATURE) -> bytes:
    if len(given) != 1:
        raise BadParameter(name, "given more than once")
    raw = given[0].strip()
    try:
        if _HEX.fullmatch(raw):
            return binascii.unhexlify(raw)
        if _BASE64URL.fullmatch(raw):
            return base64.urlsafe_b64decode(raw.rstrip("=") + "=")
    except (binascii.Error, ValueError):
        pass
    raise BadParameter(name, "must be an HMAC-SHA256: 64 hex digits or 43 URL-safe base64 characters")


def expiry(query: Mapping[str, Sequence[str]]) -> int | None:
    values = query.get(EXPIRES)
    if values is None:
        return None
    if len(values) != 1 or not _UNIX_TIME.fullmatch(values[0].strip()):
        raise BadParameter(EXPIRES, "must be a Unix time in seconds, given once")
    return int(values[0])


def thumbor_signature(secret: bytes, signed: str) -> str:
    """Thumbor's (and libthumbor's CryptoURL's) signature: HMAC-SHA1 of the path after it, URL-safe base64."""
    return base64.urlsafe_b64encode(hmac.new(secret, signed.encode(), hashlib.sha1).digest()).decode()


def verify_thumbor(secrets: Sequence[bytes], signature: str, message: str) -> None:
    """BadSignature unless one key signed exactly `message` (the path after the signature segment, decoded once
    and encoded the one way: see grammars.thumbor.signed_message). The signature was split off as its own path
    segment, never found by searching the path for it; no alternative spelling is tried."""
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(thumbor_signature(secret, message), signature)
    if not matched:
        raise BadSignature("the thumbor signature does not match this URL")
