"""Who may have what rendered: signatures (query API, canonical paths, thumbor), presets-only mode, size
allow-lists and steps; the verified expiry travels with the admitted request."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache

from . import signing
from .config import Settings
from .errors import BadParameter, SignatureRequired
from .formats import Format
from .grammars import query as query_grammar
from .grammars.query import PictureRequest
from .model import ImageRequest, ResizeSpec


@dataclass(frozen=True)
class Admission:
    """A request allowed through: what to serve, whether a signature vouched for it, and until when."""

    request: ImageRequest | PictureRequest
    signed: bool = False
    expires: int | None = None  # the verified exp= (Unix seconds): caches must not keep the answer past it


def signatures_required(settings: Settings, keys: Sequence[bytes]) -> bool:
    return settings.signatures == "required" or (settings.signatures == "auto" and bool(keys))


def restricted(settings: Settings) -> bool:
    """Whether unsigned requests are held to a bounded set of variants."""
    return bool(settings.presets_only or settings.allowed_widths or settings.allowed_heights or settings.size_step)


def admit_query(raw_path: str, query: Mapping[str, Sequence[str]], accept: str, settings: Settings,
                keys: Sequence[bytes], now: float | None = None) -> Admission:
    """Parse a query-API request (or a canonical path) and decide whether it may be served: signed ones always,
    unsigned ones as the policy says. The signature covers the key the request names (a canonical path's own
    key, never the path read as a key) and every parameter but `s` and the format."""
    rest = {name: values for name, values in query.items() if name not in (signing.SIGNATURE, signing.EXPIRES)}
    signing_present = signing.SIGNATURE in query or signing.EXPIRES in query
    now = time.time() if now is None else now
    if "picture" in rest:
        picture = query_grammar.parse_picture(raw_path, rest, accept)
        signed = signing_present and signing.verify_query(keys, picture.key, query, now)
        if not signed and signatures_required(settings, keys):
            raise SignatureRequired("?picture renders a whole ladder: only signed requests for it are served here")
        return Admission(picture, signed, signing.expiry(query) if signed else None)
    request = query_grammar.parse(raw_path, rest, accept, max_side=settings.max_output_side,
                                  presets=settings.presets, version=settings.key_version)
    if signing_present:
        split = query_grammar.split_canonical(raw_path, settings.key_version)
        signed_params = dict(split[1]) | _signing_only(query) if split else dict(query)
        if signing.verify_query(keys, request.key, signed_params, now):
            return Admission(request, True, signing.expiry(query))
    return Admission(_admit_unsigned(request, settings, signatures_required(settings, keys)))


def admit_animation(body: bytes, signature: str | None, settings: Settings, keys: Sequence[bytes]) -> bool:
    """Whether a POST /animations may be served: a signature (X-Signature, HMAC-SHA256 over the exact body bytes)
    must verify when sent; without one, only where signatures are not required and presets are not the only
    thing unsigned requests may have (an animation renders many originals: no preset names one). True: signed."""
    if signing.verify_body(keys, body, signature):
        return True
    if signatures_required(settings, keys) or settings.presets_only:
        raise SignatureRequired("creating an animation needs a signature here: X-Signature, the HMAC-SHA256 of "
                                "the request body (hex)")
    return False


def admit_thumbor(raw_path: str, settings: Settings, keys: Sequence[bytes]) -> Admission:
    """Parse a thumbor URL; a signed one must verify, an `unsafe` one is served only as the policy allows."""
    from .grammars import thumbor  # only thumbor URLs pay for the grammar

    parsed = thumbor.parse(raw_path, max_side=settings.max_output_side)
    if parsed.signature is not None:
        signing.verify_thumbor(keys, parsed.signature, parsed.message)
        return Admission(parsed.request, True)
    if signatures_required(settings, keys) and not settings.allow_unsafe:
        raise SignatureRequired("unsafe URLs are not served here: sign them (thumbor's HMAC-SHA1)")
    return Admission(_admit_unsigned(parsed.request, settings, required=False))  # unsafe was admitted just above


def _signing_only(query: Mapping[str, Sequence[str]]) -> dict[str, Sequence[str]]:
    return {name: values for name, values in query.items() if name in (signing.SIGNATURE, signing.EXPIRES)}


def _admit_unsigned(request: ImageRequest, settings: Settings, required: bool) -> ImageRequest:
    if request.spec is None:
        return request  # the original as it is: nothing is rendered or stored
    if settings.presets_only or required:
        if settings.presets_only and _is_preset(request.spec, settings):
            return request
        raise SignatureRequired("only signed URLs" + (" and presets" if settings.presets_only else "")
                                + " are rendered here")
    if restricted(settings):
        _only_sizes(request.spec)
    return _sized(request, settings)


# What an unsigned request may still choose in a restricted mode: the box, the fit and the format. Everything
# else would multiply the variants a stranger can make (a colour, a quality, a crop box, a blur per request).
_UNSIGNED_FIELDS = {"width", "height", "fit", "format", "enlarge", "keep_copyright"}
_PUBLIC_NAMES = {"background": "bg", "quality": "q"}


def _only_sizes(spec: ResizeSpec) -> None:
    """SignatureRequired naming the first parameter an unsigned request may not set in a restricted mode."""
    default = ResizeSpec(format=spec.format)
    for f in fields(ResizeSpec):
        if f.name in _UNSIGNED_FIELDS:
            continue
        value = getattr(spec, f.name)
        if f.name == "quality" and value in (None, spec.format.default_quality):
            continue
        if value != getattr(default, f.name):
            name = _PUBLIC_NAMES.get(f.name, f.name)
            raise SignatureRequired(f"{name}: unsigned requests may only choose the size, fit and format here; "
                                    "sign the URL to set it")


@lru_cache(maxsize=4)
def _preset_specs(presets: tuple[tuple[str, str], ...], max_side: int) -> frozenset[ResizeSpec]:
    """Each preset's spec with no format (and a quality only if the preset sets one)."""
    specs = (query_grammar.parse("/preset", {"preset": [name]}, max_side=max_side, presets=dict(presets)).spec
             for name, _ in presets)
    return frozenset(s for s in specs if s is not None)


def _is_preset(asked: ResizeSpec, settings: Settings) -> bool:
    """Whether a spec is exactly a preset in any format, however it was spelled (the edge's canonical path too):
    at the format's default quality or the preset's own."""
    presets = _preset_specs(tuple(sorted(settings.presets.items())), settings.max_output_side)
    shape = replace(asked, format=Format.ORIGINAL, background="ffffff")
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
