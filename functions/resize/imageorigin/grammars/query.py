"""The query grammar (`/<key>?w=300&fm=webp`, its aliases and presets) and the canonical path it is rewritten to."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, quote

from .. import formats
from ..errors import BadParameter
from ..formats import Format
from ..model import (
    TRIM_TOLERANCE_MAX,
    Fit,
    HAlign,
    ImageRequest,
    ResizeSpec,
    Trim,
    VAlign,
    canonicalize,
    keep_format,
    parse_bool,
    parse_key,
)
from . import values as read

# Every accepted spelling -> its canonical parameter. `resize` sets w and h at once.
ALIASES = {
    "w": "w", "width": "w", "scalex": "w",
    "h": "h", "height": "h", "scaley": "h",
    "resize": "resize",
    "fit": "fit",
    "fm": "fm", "format": "fm", "encoding": "fm",
    "q": "q", "quality": "q",
    "enlarge": "enlarge",
    "bg": "bg",
    "dpr": "dpr",
    "copyright": "copyright",
    "preset": "preset",
}
# Every spelling of the output format's name (the signature leaves them out; the edge resolves fm=auto in them).
FORMAT_PARAMETERS = frozenset(name for name, canonical in ALIASES.items() if canonical == "fm")
_DPR = re.compile(r"[0-9](\.[0-9]{1,3})?")
_BOX = re.compile(r"([0-9]{1,6})[*xX]([0-9]{1,6})")
# The last segment of a canonical path: name=value pairs joined by commas, always with the format.
_SEGMENT = re.compile(r"[a-z]+=[^,=/]*(?:,[a-z]+=[^,=/]*)*")


def accepted_types(accept: str) -> frozenset[str]:
    """Media types the Accept header names explicitly with a non-zero q (wildcards do not count)."""
    types: set[str] = set()
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media and q > 0:
            types.add(media.lower())
    return frozenset(types)


def negotiate(accept: str, key: str) -> Format:
    """fm=auto for this key and Accept header (the registry's order)."""
    keep = keep_format(key)
    return formats.negotiate(accepted_types(accept), None if keep is Format.ORIGINAL else keep)


def parse(raw_path: str, query: Mapping[str, Sequence[str]], accept: str = "", *, max_side: int = 4096,
          presets: Mapping[str, str] | None = None, version: str | None = None) -> ImageRequest:
    """Path (percent-encoded), query (name -> all its values) and Accept -> an ImageRequest, or BadParameter.

    With `version`, a canonical path (/<version>/<key>/<name=value,...>, what the edge rewrites requests to) is
    read too: its last segment stands for the query, which must then be empty."""
    extended = False
    if version is not None and (split := split_canonical(raw_path, version)) is not None:
        if query:
            raise BadParameter(next(iter(query)), "a canonical path takes no query parameters")
        raw_path, query = split
        extended = True
    key = parse_key(raw_path)
    given = canonical_values(query, extended=extended)
    if "preset" in given:
        given = _expand_preset(given, presets or {})
    if not given:
        return ImageRequest(key, None)
    spec, negotiated = _spec(key, given, accept, max_side)
    return ImageRequest(key, spec, negotiated)


def split_canonical(raw_path: str, version: str) -> tuple[str, dict[str, list[str]]] | None:
    """(/<key>, its query) for a canonical path, or None when the path is not one."""
    prefix = f"/{version}/"
    if not raw_path.startswith(prefix):
        return None
    head, _, last = raw_path[len(prefix):].rpartition("/")
    if not head or not _SEGMENT.fullmatch(last) or "fm=" not in last:
        return None
    query: dict[str, list[str]] = {}
    for pair in last.split(","):
        name, _, value = pair.partition("=")
        query.setdefault(name, []).append(value)
    return "/" + head, query


def canonical_values(query: Mapping[str, Sequence[str]], *, extended: bool = False) -> dict[str, str]:
    """Map aliases to canonical names; refuse unknown, empty and repeated parameters. `extended` (a canonical
    path) also reads the names only the canonical form writes (crop, trim, blur...)."""
    values: dict[str, str] = {}
    seen_as: dict[str, str] = {}
    for name, given in query.items():
        canonical = ALIASES.get(name.lower()) or (name if extended and name in _EXTENDED else None)
        if canonical is None:
            raise BadParameter(name, "unknown parameter")
        if len(given) != 1 or canonical in values:
            first = seen_as.get(canonical, name)
            raise BadParameter(name, f"given more than once (as {first!r} and {name!r})" if first != name
                               else "given more than once")
        value = given[0].strip()
        if not value:
            raise BadParameter(name, "must not be empty")
        values[canonical] = value
        seen_as[canonical] = name
    return values


def _expand_preset(values: dict[str, str], presets: Mapping[str, str]) -> dict[str, str]:
    """Replace preset=NAME by the parameters it stands for; a parameter both in it and in the query is a 400."""
    name = values.pop("preset")
    if name not in presets:
        known = ", ".join(sorted(presets)) or "none are configured"
        raise BadParameter("preset", f"unknown preset {name!r}; known: {known}")
    expanded = canonical_values(parse_qs(presets[name]))
    clash = sorted(set(expanded) & set(values))
    if clash:
        raise BadParameter(clash[0], f"is set by preset {name!r} already")
    return expanded | values


def _spec(key: str, values: Mapping[str, str], accept: str, max_side: int) -> tuple[ResizeSpec, bool]:
    width = read.bounded("w", values["w"], max_side) if "w" in values else None
    height = read.bounded("h", values["h"], max_side) if "h" in values else None
    if "resize" in values:
        if width is not None or height is not None:
            raise BadParameter("resize", "give either resize or w/h, not both")
        match = _BOX.fullmatch(values["resize"])
        if not match:
            raise BadParameter("resize", "must be WIDTHxHEIGHT or WIDTH*HEIGHT, e.g. 300*200")
        width = read.bounded("resize", match.group(1), max_side)
        height = read.bounded("resize", match.group(2), max_side)
    fit = _enum("fit", values.get("fit"), Fit, Fit.INSIDE)
    fmt, negotiated = _format(key, values.get("fm"), accept)
    quality = read.bounded("q", values["q"], 100) if "q" in values else None
    spec = ResizeSpec(
        width, height, fit, fmt, quality,
        enlarge=parse_bool("enlarge", values.get("enlarge", "0")),
        background=read.hex_colour("bg", values.get("bg", "ffffff")),
        keep_copyright=parse_bool("copyright", values.get("copyright", "0")),
    )
    spec = _apply_dpr(spec, values.get("dpr"), max_side)
    for name, apply in _EXTENDED.items():
        if name in values:
            spec = apply(spec, values[name])
    return canonicalize(spec), negotiated


def _format(key: str, raw: str | None, accept: str) -> tuple[Format, bool]:
    if raw is None:
        return keep_format(key), False
    if raw.lower() == "auto":
        return negotiate(accept, key), True
    if raw.lower() == Format.ORIGINAL:  # only a canonical path (an extension-less key) says it
        return Format.ORIGINAL, False
    fmt = formats.output_by_name(raw)
    if fmt is None:
        raise BadParameter("fm", f"must be one of {', '.join(sorted(formats.OUTPUT_NAMES))} or auto")
    return fmt, False


def _enum(name: str, raw: str | None, enum: type, default: object) -> object:
    if raw is None:
        return default
    try:
        return enum(raw.lower())
    except ValueError:
        raise BadParameter(name, f"must be one of {', '.join(e.value for e in enum)}") from None


def _apply_dpr(spec: ResizeSpec, raw: str | None, max_side: int) -> ResizeSpec:
    """Multiply the box by dpr, then scale it down uniformly if a side passes the cap."""
    if raw is None:
        return spec
    if not _DPR.fullmatch(raw) or not 1 <= float(raw) <= 4:
        raise BadParameter("dpr", "must be a number from 1 to 4, e.g. 2 or 1.5")
    dpr = float(raw)
    sides = [s * dpr for s in (spec.width, spec.height) if s is not None]
    if not sides:
        return spec
    shrink = min(1.0, max_side / max(sides))
    # half up, not Python's half to even: the edge function (JavaScript's Math.round) must agree
    width, height = (None if s is None else max(1, math.floor(s * dpr * shrink + 0.5))
                     for s in (spec.width, spec.height))
    return replace(spec, width=width, height=height)


def _trim(spec: ResizeSpec, raw: str) -> ResizeSpec:
    corner, _, tolerance = raw.partition(".")
    return _with(spec, trim=_enum("trim", corner, Trim, None),
                 trim_tolerance=read.bounded("trim", tolerance or "0", TRIM_TOLERANCE_MAX, low=0))


def _flip(spec: ResizeSpec, raw: str) -> ResizeSpec:
    if raw not in ("h", "v", "hv"):
        raise BadParameter("flip", "must be h, v or hv")
    return _with(spec, flip_h="h" in raw, flip_v="v" in raw)


def _rotate(spec: ResizeSpec, raw: str) -> ResizeSpec:
    value = read.bounded("rotate", raw, 270, low=0)
    if value % 90:
        raise BadParameter("rotate", "must be 0, 90, 180 or 270")
    return _with(spec, rotate=value)


def _sharpen(spec: ResizeSpec, raw: str) -> ResizeSpec:
    parts = raw.split(":")
    if len(parts) != 3:
        raise BadParameter("sharpen", "must be AMOUNT:RADIUS:LUMINANCE, e.g. 1.5:0.5:1")
    return _with(spec, sharpen=(read.decimal("sharpen", parts[0], 10), read.decimal("sharpen", parts[1], 50),
                                parse_bool("sharpen", parts[2])))


def _with(spec: ResizeSpec, **changes: object) -> ResizeSpec:
    return replace(spec, **changes)  # type: ignore[arg-type]


# The names only a canonical path carries (thumbor's options, as the canonical form writes them).
_EXTENDED: dict[str, Callable[[ResizeSpec, str], ResizeSpec]] = {
    "crop": lambda s, raw: _with(s, crop=read.box("crop", raw)),
    "trim": _trim,
    "focal": lambda s, raw: _with(s, focal=read.box("focal", raw, allow_point=True)),
    "smart": lambda s, raw: _with(s, smart=parse_bool("smart", raw)),
    "halign": lambda s, raw: _with(s, halign=_enum("halign", raw, HAlign, HAlign.CENTER)),
    "valign": lambda s, raw: _with(s, valign=_enum("valign", raw, VAlign, VAlign.MIDDLE)),
    "flip": _flip,
    "rotate": _rotate,
    "gray": lambda s, raw: _with(s, grayscale=parse_bool("gray", raw)),
    "blur": lambda s, raw: _with(s, blur=read.decimal("blur", raw, 150)),
    "sharpen": _sharpen,
    "flatten": lambda s, raw: _with(s, flatten=parse_bool("flatten", raw)),
    "maxbytes": lambda s, raw: _with(s, max_bytes=read.bounded("maxbytes", raw, 50_000_000, low=1024)),
}


@dataclass(frozen=True)
class PictureRequest:
    """GET /<key>?picture: which original, whether the ladder is wanted as JSON or as HTML, and how the <img> loads."""

    key: str
    as_json: bool
    alt: str = ""
    sizes: str = ""
    negotiated: bool = False  # JSON or HTML was chosen from Accept: the answer varies by it
    priority: str = "auto"  # high: loading="eager" fetchpriority="high"; auto: loading="lazy"

    def canonical_query(self) -> str:
        """The query the edge forwards: the choice made from Accept spelled out, so it can be cached."""
        pairs = [("picture", "json" if self.as_json else "html")]
        pairs += [(name, value) for name, value in (("alt", self.alt), ("sizes", self.sizes)) if value]
        pairs += [("priority", self.priority)] if self.priority != "auto" else []
        return encode_query(pairs)


PICTURE_PARAMETERS = ("picture", "alt", "sizes", "priority")
PICTURE_PRIORITIES = ("high", "auto")


def parse_picture(raw_path: str, query: Mapping[str, Sequence[str]], accept: str = "") -> PictureRequest:
    """GET /<key>?picture[=json|html][&alt=...][&sizes=...][&priority=high|auto]: JSON when asked by value or by
    Accept; priority=high makes the <img> eager with fetchpriority="high" (a hero image), else it is lazy."""
    values: dict[str, str] = {}
    for name, given in query.items():
        if name not in PICTURE_PARAMETERS:
            raise BadParameter(name, "only alt, sizes and priority go with picture")
        if len(given) != 1:
            raise BadParameter(name, "given more than once")
        values[name] = given[0]
    mode = values["picture"].strip().lower()
    if mode not in ("", "json", "html"):
        raise BadParameter("picture", "must be json, html or empty (then Accept decides)")
    priority = values.get("priority", "auto").strip().lower() or "auto"
    if priority not in PICTURE_PRIORITIES:
        raise BadParameter("priority", "must be high or auto (lazy)")
    as_json = mode == "json" or (not mode and "application/json" in accepted_types(accept))
    return PictureRequest(parse_key(raw_path), as_json, values.get("alt", ""), values.get("sizes", ""),
                          negotiated=not mode, priority=priority)


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """name=value&... with names and values percent-encoded the one way (RFC 3986 unreserved characters kept), as
    the edge function, the signature's message and the signers in examples/signing/ all write them."""
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
