"""Who may have what rendered: signatures (query API and thumbor), presets-only mode, size allow-lists and steps."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from urllib.parse import unquote

from . import signing, spec
from .config import Settings
from .errors import BadParameter, SignatureRequired
from .spec import Format, ImageRequest, ResizeSpec

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
    return request if signed else _admit_unsigned(request, settings, signatures_required(settings, keys))


def admit_thumbor(raw_path: str, settings: Settings, keys: Sequence[bytes]) -> ImageRequest:
    """Parse a thumbor URL; a signed one must verify, an `unsafe` one is served only as the policy allows."""
    from . import thumbor  # only thumbor URLs pay for the grammar

    parsed = thumbor.parse(raw_path, max_side=settings.max_output_side)
    if parsed.signature is not None:
        signing.verify_thumbor(keys, parsed.signature, parsed.signed, unquote(parsed.signed))
        return parsed.request
    if signatures_required(settings, keys) and not settings.allow_unsafe:
        raise SignatureRequired("unsafe URLs are not served here: sign them (thumbor's HMAC-SHA1)")
    return _admit_unsigned(parsed.request, settings, required=False)  # unsafe was admitted just above


def _admit_unsigned(request: ImageRequest, settings: Settings, required: bool) -> ImageRequest:
    if request.spec is None:
        return request  # the original as it is: nothing is rendered or stored
    if settings.presets_only or required:
        if settings.presets_only and _is_preset(request.spec, settings):
            return request
        raise SignatureRequired("only signed URLs" + (" and presets" if settings.presets_only else "")
                                + " are rendered here")
    return _sized(request, settings)


@lru_cache(maxsize=4)
def _preset_specs(presets: tuple[tuple[str, str], ...], max_side: int) -> frozenset[ResizeSpec]:
    """Each preset's spec with no format (and a quality only if the preset sets one)."""
    specs = (spec.parse("/preset", {"preset": [name]}, max_side=max_side, presets=dict(presets)).spec
             for name, _ in presets)
    return frozenset(replace(s, negotiated=False) for s in specs if s is not None)


def _is_preset(asked: ResizeSpec, settings: Settings) -> bool:
    """Whether a spec is exactly a preset in any format, however it was spelled (the edge's canonical path too):
    at the format's default quality or the preset's own."""
    presets = _preset_specs(tuple(sorted(settings.presets.items())), settings.max_output_side)
    shape = replace(asked, format=Format.ORIGINAL, negotiated=False)
    if not asked.format.has_quality:  # lossless: a preset's quality means nothing here
        return shape in {replace(p, quality=None) for p in presets}
    quality = None if asked.quality == asked.format.default_quality else asked.quality
    return replace(shape, quality=quality) in presets


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
