"""Thumbor's URL grammar -> the same ImageRequest (and canonical spec) as the query API; imported on first use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from PIL import ImageColor

from .errors import BadParameter
from .spec import (
    Box,
    Fit,
    Format,
    HAlign,
    ImageRequest,
    ResizeSpec,
    Trim,
    VAlign,
    format_hint,
    parse_key,
)

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
_BOX = re.compile(r"(\d+)x(\d+):(\d+)x(\d+)")
_NUMBER = re.compile(r"\d{1,6}(?:\.\d{1,4})?")
_FORMATS = {"jpeg": Format.JPEG, "jpg": Format.JPEG, "png": Format.PNG, "webp": Format.WEBP, "avif": Format.AVIF,
            "gif": Format.GIF}
_TRUE = {"1", "true", "True"}
_FALSE = {"0", "false", "False"}


@dataclass(frozen=True)
class ThumborRequest:
    """A parsed thumbor URL: its signature (None for `unsafe`), the exact text it signs, and the request."""

    signature: str | None
    signed: str  # the path after the signature segment, as sent (thumbor signs this string)
    request: ImageRequest


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
    return ThumborRequest(None if first == "unsafe" else first, rest, ImageRequest(key, spec))


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
        format=format_hint(key) or Format.ORIGINAL,
        enlarge=not fit_in,  # thumbor fills the box, enlarging if need be; fit-in never enlarges by default
        crop=_crop(parts["crop"]),
        flip_h=bool(parts["flip_h"]),
        flip_v=bool(parts["flip_v"]),
        halign=HAlign(parts["halign"] or "center"),
        valign=VAlign(parts["valign"] or "middle"),
        smart=bool(parts["smart"]),
    )
    if parts["trim"]:
        spec = _trim(spec, parts["trim"])
    has_filters = parts["filters"] is not None
    if has_filters:
        spec = _filters(spec, parts["filters"] or "", max_side)
    spec = replace(spec, quality=spec.quality_for(spec.format) if spec.quality is None else spec.quality)
    if spec.format in (Format.PNG, Format.GIF):
        spec = replace(spec, quality=None)
    if not spec.resizes:
        spec = replace(spec, fit=Fit.INSIDE, enlarge=False)
    elif spec.width is None or spec.height is None:
        spec = replace(spec, fit=Fit.INSIDE)
    if not spec.crops_to_box:  # the anchors only choose what a cover crop keeps: one canonical form
        spec = replace(spec, halign=HAlign.CENTER, valign=VAlign.MIDDLE, smart=False, focal=None)
    return spec


def _side(name: str, raw: str | None, max_side: int) -> int | None:
    if raw == "orig":
        raise BadParameter(name, "orig is not supported; give a number, or 0 to keep the aspect ratio")
    if raw is None or int(raw) == 0:
        return None
    value = int(raw)
    if value > max_side:
        raise BadParameter(name, f"must be at most {max_side}, got {value}")
    return value


def _crop(raw: str | None) -> Box | None:
    if raw is None:
        return None
    left, top, right, bottom = (int(v) for v in _BOX.fullmatch(raw).groups())  # type: ignore[union-attr]
    if (left, top, right, bottom) == (0, 0, 0, 0):
        return None
    if right <= left or bottom <= top:
        raise BadParameter("crop", "must be LEFTxTOP:RIGHTxBOTTOM with right > left and bottom > top")
    return (left, top, right, bottom)


def _trim(spec: ResizeSpec, raw: str) -> ResizeSpec:
    corner, tolerance = Trim.TOP_LEFT, 0
    for option in raw.split(":")[1:]:
        if option.isdigit():
            tolerance = int(option)
        else:
            corner = Trim(option)
    if tolerance > 442:
        raise BadParameter("trim", "tolerance must be from 0 to 442")
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


def _number(name: str, raw: str, high: float) -> float:
    if not _NUMBER.fullmatch(raw) or not 0 <= float(raw) <= high:
        raise BadParameter(f"filters:{name}", f"{raw!r} is not a number from 0 to {high:g}")
    return float(raw)


def _colour(name: str, raw: str) -> str:
    value = raw.removeprefix("#")
    if re.fullmatch(r"[0-9a-fA-F]{6}|[0-9a-fA-F]{3}", value):
        return "".join(ch * 2 for ch in value).lower() if len(value) == 3 else value.lower()
    try:
        rgb = ImageColor.getrgb(raw)
    except ValueError:
        raise BadParameter(f"filters:{name}", f"{raw!r} is not a colour (hex RRGGBB or a CSS name)") from None
    return "".join(f"{c:02x}" for c in rgb[:3])


def _format(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("format", args, 1, 1)
    if raw.lower() not in _FORMATS:
        raise BadParameter("filters:format", f"must be one of {', '.join(sorted(_FORMATS))}")
    return replace(spec, format=_FORMATS[raw.lower()])


def _quality(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("quality", args, 1, 1)
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise BadParameter("filters:quality", "must be a whole number from 1 to 100")
    return replace(spec, quality=int(raw))


def _fill(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("fill", args, 1, 2)[:1]
    colour = _colour("fill", raw)
    padded = Fit.CONTAIN if spec.fit is Fit.INSIDE and spec.width and spec.height else spec.fit
    return replace(spec, background=colour, fit=padded, flatten=True)


def _background_color(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("background_color", args, 1, 1)
    return replace(spec, background=_colour("background_color", raw), flatten=True)


def _blur(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    values = _args("blur", args, 1, 2)
    radius = _number("blur", values[0], 150)
    sigma = _number("blur", values[1], 150) if len(values) == 2 else radius
    return replace(spec, blur=sigma)


def _sharpen(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    amount, radius, luminance = _args("sharpen", args, 3, 3)
    if luminance not in _TRUE | _FALSE:
        raise BadParameter("filters:sharpen", "the third argument (luminance only) must be true or false")
    return replace(spec, sharpen=(_number("sharpen", amount, 10), _number("sharpen", radius, 50),
                                  luminance in _TRUE))


def _rotate(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("rotate", args, 1, 1)
    if not re.fullmatch(r"-?\d{1,4}", raw) or int(raw) % 90:
        raise BadParameter("filters:rotate", "must be a multiple of 90 degrees")
    return replace(spec, rotate=(spec.rotate + int(raw)) % 360)


def _max_bytes(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("max_bytes", args, 1, 1)
    if not raw.isdigit() or not 1024 <= int(raw) <= 50_000_000:
        raise BadParameter("filters:max_bytes", "must be a whole number of bytes from 1024 to 50000000")
    return replace(spec, max_bytes=int(raw))


def _focal(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
    (raw,) = _args("focal", args, 1, 1)
    match = _BOX.fullmatch(raw)
    if match is None:
        raise BadParameter("filters:focal", "must be LEFTxTOP:RIGHTxBOTTOM")
    left, top, right, bottom = (int(v) for v in match.groups())
    if right < left or bottom < top:
        raise BadParameter("filters:focal", "right and bottom must not be less than left and top")
    if spec.focal:  # several focal regions: their bounding box
        left, top = min(left, spec.focal[0]), min(top, spec.focal[1])
        right, bottom = max(right, spec.focal[2]), max(bottom, spec.focal[3])
    return replace(spec, focal=(left, top, right, bottom))


def _proportion(spec: ResizeSpec, args: list[str], max_side: int) -> ResizeSpec:
    (raw,) = _args("proportion", args, 1, 1)
    factor = _number("proportion", raw, 1)
    if factor <= 0 or not spec.resizes:
        raise BadParameter("filters:proportion", "needs a width or height and a factor above 0 and at most 1")
    def scaled(side: int | None) -> int | None:
        return None if side is None else max(1, min(max_side, round(side * factor)))
    return replace(spec, width=scaled(spec.width), height=scaled(spec.height))


def _flag(**changes: object) -> Callable[[ResizeSpec, list[str], int], ResizeSpec]:
    def apply(spec: ResizeSpec, args: list[str], _: int) -> ResizeSpec:
        if args:
            raise BadParameter("filters", "this filter takes no arguments")
        return replace(spec, **changes)
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
