"""Who may have what rendered: signatures (query API and thumbor), presets-only mode, size allow-lists and steps."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from urllib.parse import unquote

from . import signing, spec
from .config import Settings
from .errors import BadParameter, SignatureRequired
from .spec import ImageRequest

# The first path segment of a thumbor URL: `unsafe`, or HMAC-SHA1 in URL-safe base64 (20 bytes -> 28 characters).
THUMBOR_SIGNATURE = re.compile(r"unsafe|[A-Za-z0-9_-]{27}=")


def is_thumbor(raw_path: str) -> bool:
    """Whether a path is in thumbor's form: its first segment is `unsafe` or a signature, and more follows."""
    first, slash, _ = raw_path.removeprefix("/").partition("/")
    return bool(slash) and THUMBOR_SIGNATURE.fullmatch(first) is not None


def signatures_required(settings: Settings, keys: Sequence[bytes]) -> bool:
    return settings.signatures == "required" or (settings.signatures == "auto" and bool(keys))


def admit_query(raw_path: str, query: Mapping[str, Sequence[str]], accept: str, settings: Settings,
                keys: Sequence[bytes], now: float | None = None) -> ImageRequest:
    """Parse a query-API request and decide whether it may be rendered: signed ones always, unsigned ones as the
    policy says. The signature covers the key and every parameter but `s` and the format."""
    signed = False
    if signing.SIGNATURE in query or signing.EXPIRES in query:
        key = spec.parse_key(raw_path)
        signed = signing.verify_query(keys, key, query, time.time() if now is None else now)
    rest = {name: values for name, values in query.items() if name not in (signing.SIGNATURE, signing.EXPIRES)}
    request = spec.parse(raw_path, rest, accept, max_side=settings.max_output_side, presets=settings.presets,
                         version=settings.key_version)
    return request if signed else _admit_unsigned(request, settings, keys)


def admit_thumbor(raw_path: str, settings: Settings, keys: Sequence[bytes]) -> ImageRequest:
    """Parse a thumbor URL; a signed one must verify, an `unsafe` one is served only as the policy allows."""
    from . import thumbor  # only thumbor URLs pay for the grammar

    parsed = thumbor.parse(raw_path, max_side=settings.max_output_side)
    if parsed.signature is not None:
        signing.verify_thumbor(keys, parsed.signature, parsed.signed, unquote(parsed.signed))
        return parsed.request
    if signatures_required(settings, keys) and not settings.allow_unsafe:
        raise SignatureRequired("unsafe URLs are not served here: sign them (thumbor's HMAC-SHA1)")
    return _admit_unsigned(parsed.request, settings, keys, required=False)


def _admit_unsigned(request: ImageRequest, settings: Settings, keys: Sequence[bytes],
                    required: bool | None = None) -> ImageRequest:
    if request.spec is None:
        return request  # the original as it is: nothing is rendered or stored
    if settings.presets_only or (signatures_required(settings, keys) if required is None else required):
        if settings.presets_only and _is_preset(request, settings):
            return request
        raise SignatureRequired("only signed URLs" + (" and presets" if settings.presets_only else "")
                                + " are rendered here")
    return _sized(request, settings)


def _is_preset(request: ImageRequest, settings: Settings) -> bool:
    """Whether the request asks for exactly a preset (in any format), however it was spelled."""
    assert request.spec is not None
    asked = replace(request.spec, negotiated=False)
    path = ImageRequest(request.key, None).canonical_path(settings.key_version)
    for name in settings.presets:
        query = {"preset": [name], "fm": [asked.format.value]} if asked.format is not spec.Format.ORIGINAL \
            else {"preset": [name]}
        try:
            preset = spec.parse(path, query, max_side=settings.max_output_side, presets=settings.presets).spec
        except BadParameter:  # a preset that sets fm itself
            preset = spec.parse(path, {"preset": [name]}, max_side=settings.max_output_side,
                                presets=settings.presets).spec
        if preset is not None and replace(preset, negotiated=False) == asked:
            return True
    return False


def _sized(request: ImageRequest, settings: Settings) -> ImageRequest:
    """Unsigned sizes: on the allow-lists, and rounded up to SIZE_STEP (so strangers cannot enumerate every px)."""
    assert request.spec is not None
    width, height = request.spec.width, request.spec.height
    for name, side, allowed in (("w", width, settings.allowed_widths), ("h", height, settings.allowed_heights)):
        if allowed and side is not None and side not in allowed:
            raise BadParameter(name, f"{side} is not an allowed size; allowed: {', '.join(map(str, allowed))}")
    step = settings.size_step
    if step:
        def up(side: int | None) -> int | None:
            return None if side is None else min(settings.max_output_side, -(-side // step) * step)
        width, height = up(width), up(height)
    return replace(request, spec=replace(request.spec, width=width, height=height))
