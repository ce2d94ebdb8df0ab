"""Pure parsing of a request's key, query and Accept header into a frozen resize spec with one canonical form."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, quote, unquote, urlencode

from .errors import BadKey, BadParameter

MAX_KEY_BYTES = 1024


class Fit(StrEnum):
    """How the image is fitted into the requested box."""

    INSIDE = "inside"  # keep aspect, fit in the box (the default)
    COVER = "cover"  # keep aspect, fill the box, crop the overflow centred
    CONTAIN = "contain"  # keep aspect, fit in the box, pad the rest with bg
    FILL = "fill"  # ignore aspect, stretch to the box
    OUTSIDE = "outside"  # keep aspect, cover the box without cropping
    ADAPTIVE = "adaptive"  # inside, with the box turned to the original's orientation (thumbor's adaptive-fit-in)


class HAlign(StrEnum):
    """Which part of the width a cover crop keeps."""

    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


class VAlign(StrEnum):
    """Which part of the height a cover crop keeps."""

    TOP = "top"
    MIDDLE = "middle"
    BOTTOM = "bottom"


class Trim(StrEnum):
    """Which corner's colour a trim removes from the borders."""

    TOP_LEFT = "top-left"
    BOTTOM_RIGHT = "bottom-right"


Box = tuple[int, int, int, int]  # left, top, right, bottom in the upright original's pixels


class Format(StrEnum):
    """Output formats; ORIGINAL keeps the source's own format, decided when the original is decoded."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    GIF = "gif"
    ORIGINAL = "original"

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @property
    def has_quality(self) -> bool:
        return self in _DEFAULT_QUALITY

    @property
    def default_quality(self) -> int | None:
        return _DEFAULT_QUALITY.get(self)


_DEFAULT_QUALITY = {Format.JPEG: 80, Format.WEBP: 80, Format.AVIF: 60}

# What a key's extension says its original is; the keep-format and fm=auto fallbacks are decided from it, so the
# edge and the function compute the same variant key without reading the original.
_EXTENSION_FORMAT = {
    "jpg": Format.JPEG,
    "jpeg": Format.JPEG,
    "jpe": Format.JPEG,
    "png": Format.PNG,
    "webp": Format.WEBP,
    "avif": Format.AVIF,
    "gif": Format.GIF,
    "heic": Format.JPEG,  # browsers cannot show HEIC: keeping its format means JPEG
    "heif": Format.JPEG,
}
# fm=auto for a browser that takes neither AVIF nor WebP: formats every browser decodes, keeping transparency.
_LEGACY_FALLBACK = {Format.JPEG: Format.JPEG, Format.PNG: Format.PNG, Format.GIF: Format.GIF}

_FORMAT_NAMES = {"jpeg": Format.JPEG, "jpg": Format.JPEG, "png": Format.PNG, "webp": Format.WEBP,
                 "avif": Format.AVIF, "gif": Format.GIF}

# Every accepted spelling -> its canonical parameter. `resize` sets w and h at once.
_ALIASES = {
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
FORMAT_PARAMETERS = frozenset(name for name, canonical in _ALIASES.items() if canonical == "fm")
# The first path segment of a thumbor URL: `unsafe`, or HMAC-SHA1 in URL-safe base64 (20 bytes -> 28 characters).
THUMBOR_SIGNATURE = re.compile(r"unsafe|[A-Za-z0-9_-]{27}=")

_INT = re.compile(r"[0-9]{1,6}")
_DPR = re.compile(r"[0-9](\.[0-9]{1,3})?")
_HEX = re.compile(r"([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_BOX = re.compile(r"([0-9]{1,6})[*xX]([0-9]{1,6})")
_BOOL = {"0": False, "false": False, "1": True, "true": True}
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# The last segment of a canonical path: name=value pairs joined by commas, always with the format.
_SEGMENT = re.compile(r"[a-z]+=[^,=/]*(?:,[a-z]+=[^,=/]*)*")


@dataclass(frozen=True)
class ResizeSpec:
    """What to render: the box, how to fit it, and how to encode. Immutable; `canonical` is its one spelling."""

    width: int | None = None
    height: int | None = None
    fit: Fit = Fit.INSIDE
    format: Format = Format.ORIGINAL
    quality: int | None = None
    enlarge: bool = False
    background: str = "ffffff"
    keep_copyright: bool = False  # carry the original's EXIF Copyright (and nothing else) into the output
    negotiated: bool = False  # the format was chosen from Accept: the answer varies by it
    # From thumbor URLs (imageorigin.thumbor); each is left out of the canonical form at its default.
    crop: Box | None = None  # manual crop before anything else
    trim: Trim | None = None  # remove borders of the colour of that corner (within trim_tolerance)
    trim_tolerance: int = 0
    halign: HAlign = HAlign.CENTER  # cover crop anchor
    valign: VAlign = VAlign.MIDDLE
    smart: bool = False  # cover crop centred on the most detailed region
    focal: Box | None = None  # cover crop centred on this region
    flip_h: bool = False
    flip_v: bool = False
    rotate: int = 0  # degrees counter-clockwise, a multiple of 90, after the resize
    grayscale: bool = False
    blur: float = 0.0  # Gaussian sigma, px of the output
    sharpen: tuple[float, float, bool] | None = None  # amount, radius, luminance only
    flatten: bool = False  # transparency composited onto bg in every format, not only JPEG
    max_bytes: int | None = None  # lower the quality until the encoded image fits

    @property
    def resizes(self) -> bool:
        return self.width is not None or self.height is not None

    @property
    def crops_to_box(self) -> bool:
        return self.fit is Fit.COVER and self.width is not None and self.height is not None

    @property
    def plain(self) -> bool:
        """Only a resize and an encoding: nothing a pre-warm ladder could not derive from a larger member."""
        return self == ResizeSpec(self.width, self.height, self.fit, self.format, self.quality, self.enlarge,
                                  self.background, self.keep_copyright, self.negotiated)

    def canonical(self) -> str:
        """The one spelling of this spec: the cache key's last segment and the signed string."""
        parts: list[str] = []
        if self.width is not None:
            parts.append(f"w={self.width}")
        if self.height is not None:
            parts.append(f"h={self.height}")
        if self.resizes:
            parts.append(f"fit={self.fit}")
            parts.append(f"enlarge={int(self.enlarge)}")
        pads = self.fit is Fit.CONTAIN and self.width is not None and self.height is not None
        if pads or self.format in (Format.JPEG, Format.ORIGINAL):  # bg shows only when padding or flattening
            parts.append(f"bg={self.background}")
        parts.append(f"fm={self.format}")
        if self.quality is not None:
            parts.append(f"q={self.quality}")
        if self.keep_copyright:
            parts.append("copyright=1")
        return ",".join(parts + self._effects())

    def _effects(self) -> list[str]:
        """The canonical spelling of everything beyond the resize, in a fixed order."""
        parts: list[str] = []
        if self.crop:
            parts.append("crop=" + ".".join(map(str, self.crop)))
        if self.trim:
            parts.append(f"trim={self.trim}.{self.trim_tolerance}")
        if self.crops_to_box:
            if self.focal:
                parts.append("focal=" + ".".join(map(str, self.focal)))
            elif self.smart:
                parts.append("smart=1")
            else:
                if self.halign is not HAlign.CENTER:
                    parts.append(f"halign={self.halign}")
                if self.valign is not VAlign.MIDDLE:
                    parts.append(f"valign={self.valign}")
        if self.flip_h or self.flip_v:
            parts.append("flip=" + "h" * self.flip_h + "v" * self.flip_v)
        if self.rotate % 360:
            parts.append(f"rotate={self.rotate % 360}")
        if self.grayscale:
            parts.append("gray=1")
        if self.blur:
            parts.append(f"blur={self.blur:g}")
        if self.sharpen:
            amount, radius, luminance = self.sharpen
            parts.append(f"sharpen={amount:g}:{radius:g}:{int(luminance)}")
        if self.flatten:
            parts.append("flatten=1")
        if self.max_bytes:
            parts.append(f"maxbytes={self.max_bytes}")
        return parts

    def query(self) -> str:
        """The shortest URL query that parses back to this spec (defaults left out), for links we hand out."""
        params: dict[str, object] = {}
        if self.width is not None:
            params["w"] = self.width
        if self.height is not None:
            params["h"] = self.height
        if self.fit is not Fit.INSIDE:
            params["fit"] = self.fit
        if self.enlarge:
            params["enlarge"] = 1
        if self.background != "ffffff":
            params["bg"] = self.background
        if self.format is not Format.ORIGINAL:
            params["fm"] = self.format
        if self.quality is not None and self.quality != self.format.default_quality:
            params["q"] = self.quality
        if self.keep_copyright:
            params["copyright"] = 1
        return urlencode(params)

    def quality_for(self, fmt: Format) -> int | None:
        """The quality to encode `fmt` at: the one asked for, else that format's default."""
        return self.quality if self.quality is not None else fmt.default_quality


@dataclass(frozen=True)
class ImageRequest:
    """One parsed request: which original, and what to do with it (None: serve the original as it is)."""

    key: str
    spec: ResizeSpec | None

    def variant_key(self, version: str) -> str:
        """Where this variant lives in the cache bucket: version / original key / canonical spec."""
        if self.spec is None:
            raise ValueError("an original has no variant key")
        return f"{version}/{self.key}/{self.spec.canonical()}"

    def canonical_path(self, version: str) -> str:
        """The one URL path of this request, as the edge rewrites it: the variant key, percent-encoded the one
        way (RFC 3986 unreserved characters and '/' kept); an original is its own encoded key."""
        encoded = quote(self.key, safe="/")
        if self.spec is None:
            return f"/{encoded}"
        return f"/{version}/{encoded}/{self.spec.canonical()}"


@dataclass(frozen=True)
class PictureRequest:
    """GET /<key>?picture: which original, and whether the ladder is wanted as JSON or as HTML."""

    key: str
    as_json: bool
    alt: str = ""
    sizes: str = ""
    negotiated: bool = False  # JSON or HTML was chosen from Accept: the answer varies by it

    def canonical_query(self) -> str:
        """The query the edge forwards: the choice made from Accept spelled out, so it can be cached."""
        pairs = [("picture", "json" if self.as_json else "html")]
        pairs += [(name, value) for name, value in (("alt", self.alt), ("sizes", self.sizes)) if value]
        return encode_query(pairs)


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """name=value&... with names and values percent-encoded the one way (RFC 3986 unreserved characters kept), as
    the edge function, the signature's message and the signers in examples/signing/ all write them."""
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


def is_thumbor(raw_path: str) -> bool:
    """Whether a path is in thumbor's form: its first segment is `unsafe` or a signature, and more follows."""
    first, _, rest = raw_path.removeprefix("/").partition("/")
    return bool(rest) and THUMBOR_SIGNATURE.fullmatch(first) is not None


def parse_key(raw_path: str) -> str:
    """The S3 key named by a still percent-encoded path: decoded exactly once and checked for safety."""
    encoded = raw_path.removeprefix("/")
    if _BAD_ESCAPE.search(encoded):
        raise BadKey("the image key has a '%' that does not start a %XX escape")
    try:
        key = unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadKey("the image key is not valid UTF-8") from None
    if not key:
        raise BadKey("the path must name an image, e.g. /photos/cat.jpg")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadKey(f"the image key is longer than {MAX_KEY_BYTES} bytes")
    if "\\" in key or any(unicodedata.category(ch) == "Cc" for ch in key):
        raise BadKey("the image key contains a backslash or a control character")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise BadKey("the image key has an empty, '.' or '..' segment")
    return key


def negotiate(accept: str, hint: Format | None) -> Format:
    """fm=auto: AVIF, then WebP, if the client takes them; else the original's format, PNG when unsure."""
    offered = _accepted_types(accept)
    # AVIF animation is poorly supported, and GIF and WebP originals may be animated: AVIF only for still formats
    if "image/avif" in offered and hint not in (Format.GIF, Format.WEBP):
        return Format.AVIF
    if "image/webp" in offered:
        return Format.WEBP
    return _LEGACY_FALLBACK.get(hint, Format.PNG) if hint else Format.PNG


def _accepted_types(accept: str) -> set[str]:
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
    return types


def format_hint(key: str) -> Format | None:
    """The format the key's extension names, if any."""
    _, dot, ext = key.rpartition(".")
    return _EXTENSION_FORMAT.get(ext.lower()) if dot and "/" not in ext else None


def parse(
    raw_path: str,
    query: Mapping[str, Sequence[str]],
    accept: str = "",
    *,
    max_side: int = 4096,
    presets: Mapping[str, str] | None = None,
    version: str | None = None,
) -> ImageRequest:
    """Path (percent-encoded), query (name -> all its values) and Accept -> an ImageRequest, or BadParameter.

    With `version`, a canonical path (/<version>/<key>/<name=value,...>, what the edge rewrites requests to) is
    read too: its last segment stands for the query, which must then be empty."""
    if version is not None and (split := _split_canonical(raw_path, version)) is not None:
        if query:
            raise BadParameter(next(iter(query)), "a canonical path takes no query parameters")
        raw_path, query = split
    key = parse_key(raw_path)
    values = _canonical_values(query)
    if "preset" in values:
        values = _expand_preset(values, presets or {})
    if not values:
        return ImageRequest(key=key, spec=None)

    width = _side(values, "w", max_side)
    height = _side(values, "h", max_side)
    if "resize" in values:
        if width is not None or height is not None:
            raise BadParameter("resize", "give either resize or w/h, not both")
        match = _BOX.fullmatch(values["resize"])
        if not match:
            raise BadParameter("resize", "must be WIDTHxHEIGHT or WIDTH*HEIGHT, e.g. 300*200")
        width = _bounded("resize", match.group(1), max_side)
        height = _bounded("resize", match.group(2), max_side)

    fit = _enum(values, "fit", Fit, Fit.INSIDE)
    hint = format_hint(key)
    fm_raw = values.get("fm")
    negotiated = fm_raw is not None and fm_raw.lower() == "auto"
    if fm_raw is None:
        fmt = hint or Format.ORIGINAL
    elif negotiated:
        fmt = negotiate(accept, hint)
    elif fm_raw.lower() in _FORMAT_NAMES:
        fmt = _FORMAT_NAMES[fm_raw.lower()]
    else:
        raise BadParameter("fm", f"must be one of {', '.join(sorted(_FORMAT_NAMES))} or auto")

    quality = _quality(values, fmt)
    enlarge = _flag(values, "enlarge")
    keep_copyright = _flag(values, "copyright")
    background = _background(values)
    width, height = _apply_dpr(values, width, height, max_side)

    if width is None or height is None:
        fit = Fit.INSIDE  # with one side given, every fit scales to that side: one canonical form
    spec = ResizeSpec(width, height, fit, fmt, quality, enlarge, background, keep_copyright, negotiated)
    return ImageRequest(key=key, spec=spec)


def _split_canonical(raw_path: str, version: str) -> tuple[str, dict[str, list[str]]] | None:
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


def parse_picture(raw_path: str, query: Mapping[str, Sequence[str]], accept: str = "") -> PictureRequest:
    """GET /<key>?picture[=json|html][&alt=...][&sizes=...]: JSON when asked by value or by Accept."""
    values: dict[str, str] = {}
    for name, given in query.items():
        if name not in ("picture", "alt", "sizes"):
            raise BadParameter(name, "only alt and sizes go with picture")
        if len(given) != 1:
            raise BadParameter(name, "given more than once")
        values[name] = given[0]
    mode = values["picture"].strip().lower()
    if mode not in ("", "json", "html"):
        raise BadParameter("picture", "must be json, html or empty (then Accept decides)")
    as_json = mode == "json" or (not mode and "application/json" in _accepted_types(accept))
    return PictureRequest(parse_key(raw_path), as_json, values.get("alt", ""), values.get("sizes", ""),
                          negotiated=not mode)


def normalize(
    raw_path: str,
    query: Mapping[str, Sequence[str]],
    accept: str = "",
    *,
    max_side: int = 4096,
    presets: Mapping[str, str] | None = None,
    version: str = "v1",
) -> str:
    """What the edge function rewrites a request to: its canonical path (plus query, for ?picture). The
    contract both sides are tested against; raises what the API would answer instead."""
    if is_thumbor(raw_path):  # thumbor URLs reach the function as sent: their signature covers the path
        return raw_path
    if "s" in query:  # signed: the query stays for the function to verify; fm=auto is resolved here
        key = parse_key(raw_path)
        pairs = [(name, negotiate(accept, format_hint(key)).value
                  if name.lower() in FORMAT_PARAMETERS and value.strip().lower() == "auto" else value)
                 for name in sorted(query) for value in query[name]]
        return f"{ImageRequest(key, None).canonical_path(version)}?{encode_query(pairs)}"
    if "picture" in query:
        picture = parse_picture(raw_path, query, accept)
        return f"{ImageRequest(picture.key, None).canonical_path(version)}?{picture.canonical_query()}"
    request = parse(raw_path, query, accept, max_side=max_side, presets=presets, version=version)
    return request.canonical_path(version)


def _canonical_values(query: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Map aliases to canonical names; refuse unknown, empty and repeated parameters."""
    values: dict[str, str] = {}
    seen_as: dict[str, str] = {}
    for name, given in query.items():
        canonical = _ALIASES.get(name.lower())
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
    expanded = _canonical_values(parse_qs(presets[name]))
    clash = sorted(set(expanded) & set(values))
    if clash:
        raise BadParameter(clash[0], f"is set by preset {name!r} already")
    return expanded | values


def _bounded(name: str, raw: str, high: int, low: int = 1) -> int:
    if not _INT.fullmatch(raw):
        raise BadParameter(name, f"must be a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise BadParameter(name, f"must be from {low} to {high}, got {value}")
    return value


def _side(values: Mapping[str, str], name: str, max_side: int) -> int | None:
    return _bounded(name, values[name], max_side) if name in values else None


def _enum(values: Mapping[str, str], name: str, enum: type[Fit], default: Fit) -> Fit:
    if name not in values:
        return default
    try:
        return enum(values[name].lower())
    except ValueError:
        raise BadParameter(name, f"must be one of {', '.join(e.value for e in enum)}") from None


def _quality(values: Mapping[str, str], fmt: Format) -> int | None:
    if "q" not in values:
        return None if fmt is Format.ORIGINAL else fmt.default_quality
    quality = _bounded("q", values["q"], 100)
    if fmt in (Format.PNG, Format.GIF):
        return None  # lossless formats: quality means nothing, so it must not split the cache
    return quality


def _flag(values: Mapping[str, str], name: str) -> bool:
    raw = values.get(name, "0").lower()
    if raw not in _BOOL:
        raise BadParameter(name, "must be 0 or 1")
    return _BOOL[raw]


def _background(values: Mapping[str, str]) -> str:
    raw = values.get("bg", "ffffff").removeprefix("#")
    if not _HEX.fullmatch(raw):
        raise BadParameter("bg", "must be a hex colour RRGGBB, e.g. bg=ff0000")
    if len(raw) == 3:
        raw = "".join(ch * 2 for ch in raw)
    return raw.lower()


def _apply_dpr(
    values: Mapping[str, str], width: int | None, height: int | None, max_side: int
) -> tuple[int | None, int | None]:
    """Multiply the box by dpr, then scale it down uniformly if a side passes the cap."""
    if "dpr" not in values:
        return width, height
    raw = values["dpr"]
    if not _DPR.fullmatch(raw) or not 1 <= float(raw) <= 4:
        raise BadParameter("dpr", "must be a number from 1 to 4, e.g. 2 or 1.5")
    dpr = float(raw)
    sides = [s * dpr for s in (width, height) if s is not None]
    if not sides:
        return width, height
    shrink = min(1.0, max_side / max(sides))
    # half up, not Python's half to even: the edge function (JavaScript's Math.round) must agree
    scaled = [None if s is None else max(1, math.floor(s * dpr * shrink + 0.5)) for s in (width, height)]
    return scaled[0], scaled[1]

