"""The edge contract: what the CloudFront Function rewrites a request to, as the function itself reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..model import ImageRequest, parse_key
from . import query as query_grammar
from .thumbor import is_thumbor

SIGNING_PARAMETERS = ("s", "exp")


def normalize(raw_path: str, query: Mapping[str, Sequence[str]], accept: str = "", *, max_side: int = 4096,
              presets: Mapping[str, str] | None = None, version: str = "v1") -> str:
    """The canonical path (plus query, for signed requests, ?picture and keys too long for a canonical path) the
    edge rewrites a request to; raises what the API would answer instead. Tested against edge/viewer-request.js
    over edge/vectors.json."""
    if is_thumbor(raw_path):  # thumbor URLs reach the function as sent: their signature covers the path
        return raw_path
    if "s" in query:  # signed: only the names the function reads go on, checked as it checks them
        key = parse_key(raw_path)
        query_grammar.canonical_values({n: v for n, v in query.items() if n not in SIGNING_PARAMETERS})
        return _query_form(key, query, accept, version)
    if "picture" in query:
        picture = query_grammar.parse_picture(raw_path, query, accept)
        return f"{ImageRequest(picture.key, None).canonical_path(version)}?{picture.canonical_query()}"
    request = query_grammar.parse(raw_path, query, accept, max_side=max_side, presets=presets, version=version)
    if request.spec is not None and not request.has_canonical_path(version):
        # a key too long to hold a spec in S3: the function answers the query form itself
        split = query_grammar.split_canonical(raw_path, version)
        return _query_form(request.key, split[1] if split else query, accept, version)
    return request.canonical_path(version)


def _query_form(key: str, query: Mapping[str, Sequence[str]], accept: str, version: str) -> str:
    """/<key>?<name=value&...>: names sorted, values re-encoded the one way, fm=auto resolved (the edge's cache
    does not vary by Accept)."""
    pairs = [(name, query_grammar.negotiate(accept, key).value
              if name.lower() in query_grammar.FORMAT_PARAMETERS and value.strip().lower() == "auto" else value)
             for name in sorted(query) for value in query[name]]
    return f"{ImageRequest(key, None).canonical_path(version)}?{query_grammar.encode_query(pairs)}"
