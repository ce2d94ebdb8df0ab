"""Thumbor's URL grammar (`/unsafe/fit-in/300x200/filters:format(webp)/<key>`) -> the request model."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

from .. import formats
from ..errors import BadKey, BadParameter
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
    parse_key,
)
from . import values as read

# The first path segment of a thumbor URL: `unsafe`, or HMAC-SHA1 in URL-safe base64 (20 bytes -> 28 characters).
SIGNATURE = re.compile(r"unsafe|[A-Za-z0-9_-]{27}=")
# /<signature>/[trim/][AxB:CxD/][fit-in/|full-fit-in/|adaptive-fit-in/][-]Wx[-]H/[halign/][valign/][smart/]
# [filters:...]/<key>, in thumbor's order; each part optional.
_GRAMMAR = re.compile(
    r"(?:(?P<meta>meta)/)?"
    r"(?:(?P<trim>trim(?::(?:top-left|bottom-right))?(?::\d+)?)/)?"
    r"(?:(?P<crop>\d+x\d+:\d+x\d+)/)?"
    r"(?:(?P<fit>adaptive-fit-in|full-fit-in|fit-in)/)?"
    r"(?:(?P<flip_h>-)?(?P<width>\d+|orig)?x(?P<flip_v>-)?(?P<height>\d+|orig)?/)?"
    r"(?:(?P<halign>left|center|right)/)?"
    r"(?:(?P<valign>top|middle|bottom)/)?"
    r"(?:(?P<smart>smart)/)?"
    r"(?:filters:(?P<filters>[^/]*)/)?"
    r"(?P<key>.+)",
    re.S,
)
_FILTER = re.compile(r"([a-z_]+)\(([^)]*)\)(?::|$)")
_TRUE = {"1", "true", "True"}
_FALSE = {"0", "false", "False"}
# What thumbor's own encode_url keeps unescaped, less '%': one decoded path has exactly one message.
_MESSAGE_SAFE = "/:?=&()~,'$!*;@+"


@dataclass(frozen=True)
class ThumborRequest:
    """A parsed thumbor URL: its signature (None for `unsafe`), the exact text it signs, and the request."""

    signature: str | None
    message: str  # the path after the signature segment, decoded once and re-encoded the one way
    request: ImageRequest


def is_thumbor(raw_path: str) -> bool:
    """Whether a path is in thumbor's form: its first segment is `unsafe` or a signature, and more follows."""
    first, _, rest = raw_path.removeprefix("/").partition("/")
    return bool(rest) and SIGNATURE.fullmatch(first) is not None


def signed_message(rest: str) -> str:
    """What a thumbor signature signs for a path (after its signature segment) as sent: decoded exactly once, then
    encoded the one way, so that one signature names one key (a key with a literal '%' is encoded as '%25')."""
    try:
        return quote(unquote(rest, errors="strict"), safe=_MESSAGE_SAFE)
    except UnicodeDecodeError:
        raise BadKey("the path is not valid UTF-8") from None


def parse(raw_path: str, *, max_side: int) -> ThumborRequest:
    """A thumbor path (still percent-encoded) -> ThumborRequest, or BadParameter naming the part at fault."""
    first, _, rest = raw_path.removeprefix("/").partition("/")
    match = _GRAMMAR.fullmatch(rest)
    if match is None:
        raise BadParameter("path", "not a thumbor URL: /<signature or unsafe>/[options/]<image key>")
    parts = match.groupdict()
    if parts["meta"]:
        raise BadParameter("meta", "thumbor's meta endpoint is not served")
    key = parse_key("/" + parts["key"])
    spec = _spec(parts, key, max_side)
    return ThumborRequest(None if first == "unsafe" else first, signed_message(rest), ImageRequest(key, spec))


def _spec(parts: dict[str, str | None], key: str, max_side: int) -> ResizeSpec | None:
    """None when the URL asks for nothing (/unsafe/<key>): the original as it is, as with the query API."""
    if all(value is None for name, value in parts.items() if name != "key"):
        return None
    width = _side("width", parts["width"], max_side)
    height = _side("height", parts["height"], max_side)
    fit_in = parts["fit"]
    fit = {"fit-in": Fit.INSIDE, "full-fit-in": Fit.OUTSIDE, "adaptive-fit-in": Fit.ADAPTIVE}.get(
        fit_in or "", Fit.COVER if width and height else Fit.INSIDE)
    spec = ResizeSpec(
        width=width,
        height=height,
        fit=fit,
        format=keep_format(key),
        enlarge=not fit_in,  # thumbor fills the box, enlarging if need be; fit-in never enlarges by default
        crop=read.box("crop", parts["crop"], allow_empty=True) if parts["crop"] else None,
        flip_h=bool(parts["flip_h"]),
        flip_v=bool(parts["flip_v"]),
        halign=HAlign(parts["halign"] or "center"),
        valign=VAlign(parts["valign"] or "middle"),
        smart=bool(parts["smart"]),
    )
    if parts["trim"]:
        spec = _trim(spec, parts["trim"])
    if parts["filters"] is not None:
        spec = _filters(spec, parts["filters"], max_side)
    return canonicalize(spec)


def _side(name: str, raw: str | None, max_side: int) -> int | None:
    if raw == "orig":
        raise BadParameter(name, "orig is not supported; give a number, or 0 to keep the aspect ratio")
    if raw is None or int(raw) == 0:
        return None
    return read.bounded(name, raw, max_side)


def _trim(spec: ResizeSpec, raw: str) -> ResizeSpec:
    corner, tolerance = Trim.TOP_LEFT, 0
    for option in raw.split(":")[1:]:
        if option.isdigit():
            tolerance = read.bounded("trim", option, TRIM_TOLERANCE_MAX, low=0)
        else:
            corner = Trim(option)
    return replace(spec, trim=corner, trim_tolerance=tolerance)


def _filters(spec: ResizeSpec, raw: str, max_side: int) -> ResizeSpec:
    """Apply `name(args):name(args)...` in order; an unknown filter or a bad argument is a 400 naming it."""
    position = 0
    while position < len(raw):
        match = _FILTER.match(raw, position)
        if match is None:
            raise BadParameter("filters", f"cannot read the filters at {raw[position:position + 30]!r}")
        name, args = match.group(1), match.group(2)
        apply = _FILTERS.get(name)
        if apply is None:
            raise BadParameter(f"filters:{name}", f"unknown filter; known: {', '.join(sorted(_FILTERS))}")
        spec = apply(spec, [a.strip() for a in args.split(",")] if args.strip() else [], max_side)
        position = match.end()
    return spec


def _args(name: str, args: list[str], low: int, high: int) -> list[str]:
    if not low <= len(args) <= high:
        raise BadParameter(f"filters:{name}", f"takes {low}" + (f" to {high}" if high != low else "") + " arguments")
    return args


def _format(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("format", args, 1, 1)
    fmt = formats.output_by_name(raw)
    if fmt is None:
        raise BadParameter("filters:format", f"must be one of {', '.join(sorted(formats.OUTPUT_NAMES))}")
    return replace(spec, format=fmt)


def _quality(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("quality", args, 1, 1)
    return replace(spec, quality=read.bounded("filters:quality", raw, 100))


def _fill(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("fill", args, 1, 2)[:1]
    colour = read.hex_colour("filters:fill", raw, css=True)
    padded = Fit.CONTAIN if spec.fit is Fit.INSIDE and spec.width and spec.height else spec.fit
    return replace(spec, background=colour, fit=padded, flatten=True)


def _background_color(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("background_color", args, 1, 1)
    return replace(spec, background=read.hex_colour("filters:background_color", raw, css=True), flatten=True)


def _blur(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    values = _args("blur", args, 1, 2)
    radius = read.decimal("filters:blur", values[0], 150)
    sigma = read.decimal("filters:blur", values[1], 150) if len(values) == 2 else radius
    return replace(spec, blur=sigma)


def _sharpen(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    amount, radius, luminance = _args("sharpen", args, 3, 3)
    if luminance not in _TRUE | _FALSE:
        raise BadParameter("filters:sharpen", "the third argument (luminance only) must be true or false")
    return replace(spec, sharpen=(read.decimal("filters:sharpen", amount, 10),
                                  read.decimal("filters:sharpen", radius, 50), luminance in _TRUE))


def _rotate(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("rotate", args, 1, 1)
    if not re.fullmatch(r"-?\d{1,4}", raw) or int(raw) % 90:
        raise BadParameter("filters:rotate", "must be a multiple of 90 degrees")
    return replace(spec, rotate=(spec.rotate + int(raw)) % 360)


def _max_bytes(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("max_bytes", args, 1, 1)
    return replace(spec, max_bytes=read.bounded("filters:max_bytes", raw, 50_000_000, low=1024))


def _focal(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("focal", args, 1, 1)
    left, top, right, bottom = read.box("filters:focal", raw, allow_point=True)  # type: ignore[misc]
    if spec.focal:  # several focal regions: their bounding box
        left, top = min(left, spec.focal[0]), min(top, spec.focal[1])
        right, bottom = max(right, spec.focal[2]), max(bottom, spec.focal[3])
    return replace(spec, focal=(left, top, right, bottom))


def _proportion(spec: ResizeSpec, args: list[str], max_side: int) -> ResizeSpec:
    (raw,) = _args("proportion", args, 1, 1)
    factor = read.decimal("filters:proportion", raw, 1)
    if factor <= 0 or not spec.resizes:
        raise BadParameter("filters:proportion", "needs a width or height and a factor above 0 and at most 1")

    def scaled(side: int | None) -> int | None:
        return None if side is None else max(1, min(max_side, round(side * factor)))

    return replace(spec, width=scaled(spec.width), height=scaled(spec.height))


def _flag(**changes: object) -> Callable[[ResizeSpec, list[str], int], ResizeSpec]:
    def apply(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
        if args:
            raise BadParameter("filters", "this filter takes no arguments")
        return replace(spec, **changes)  # type: ignore[arg-type]
    return apply


def _keep(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    """strip_exif() and strip_icc(): every output is stripped already (and converted to sRGB)."""
    return spec


_FILTERS: dict[str, Callable[[ResizeSpec, list[str], int], ResizeSpec]] = {
    "format": _format,
    "quality": _quality,
    "fill": _fill,
    "background_color": _background_color,
    "blur": _blur,
    "sharpen": _sharpen,
    "grayscale": _flag(grayscale=True),
    "rotate": _rotate,
    "no_upscale": _flag(enlarge=False),
    "upscale": _flag(enlarge=True),
    "stretch": _flag(fit=Fit.FILL),
    "strip_exif": _keep,
    "strip_icc": _keep,
    "max_bytes": _max_bytes,
    "focal": _focal,
    "proportion": _proportion,
}
