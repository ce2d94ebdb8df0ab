"""The request model: the spec, the request, the one canonicalisation and the variant-key layout."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from urllib.parse import quote, unquote

from . import formats
from .errors import BadKey, BadParameter
from .formats import Format

MAX_KEY_BYTES = 1024  # S3's limit, for originals and variants alike
LONG_KEYS = "_long"  # variants of originals whose key leaves no room for a spec live under <version>/_long/<sha256>/
ANIMATIONS = "_animations"  # animations made from several originals: <version>/_animations/<sha256>.<ext>
ANIMATION_MARKER = "anim-"  # in each member original's variant folder: anim-<sha256>, naming an animation made of it
ANIMATION_EXTENSIONS = ("gif", "webp")  # what an animation may be stored as
_DIGEST = re.compile(r"[0-9a-f]{64}")


class Fit(StrEnum):
    """How the image is fitted into the requested box."""

    INSIDE = "inside"  # keep aspect, fit in the box (the default)
    COVER = "cover"  # keep aspect, fill the box, crop the overflow (anchored, focal or smart)
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
Sharpen = tuple[float, float, bool]  # amount, radius, luminance only
DEFAULT_BG = "ffffff"
TRIM_TOLERANCE_MAX = 442  # the largest RGB distance


@dataclass(frozen=True)
class ResizeSpec:
    """What to render, and nothing else: every field changes the bytes, so every field is in `canonical()`.

    Build one with `canonicalize()` (every grammar does): it writes defaults out and folds what would not change
    the output, so that two specs render the same bytes exactly when they are equal."""

    width: int | None = None
    height: int | None = None
    fit: Fit = Fit.INSIDE
    format: Format = Format.ORIGINAL
    quality: int | None = None
    enlarge: bool = False
    background: str = DEFAULT_BG  # RRGGBB: padding, flattening, GIF's blended edges
    keep_copyright: bool = False  # carry the original's EXIF Copyright (and nothing else) into the output
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
    sharpen: Sharpen | None = None
    flatten: bool = False  # transparency composited onto bg in every format
    max_bytes: int | None = None  # lower the quality until the encoded image fits

    @property
    def resizes(self) -> bool:
        return self.width is not None or self.height is not None

    @property
    def crops_to_box(self) -> bool:
        return self.fit is Fit.COVER and self.width is not None and self.height is not None

    @property
    def pads(self) -> bool:
        return self.fit is Fit.CONTAIN and self.width is not None and self.height is not None

    @property
    def detects(self) -> bool:
        """Whether the cover crop is placed by detection (smart, and no focal region, which wins)."""
        return self.smart and self.crops_to_box and self.focal is None

    @property
    def analyses(self) -> bool:
        """Whether rendering looks at the pixels before planning (trim, smart crop)."""
        return self.trim is not None or self.detects

    @property
    def plain(self) -> bool:
        """Only a resize and an encoding: nothing a pre-warm ladder could not derive from a larger member."""
        return self == ResizeSpec(self.width, self.height, self.fit, self.format, self.quality, self.enlarge,
                                  self.background, self.keep_copyright)

    def quality_for(self, fmt: Format) -> int | None:
        """The quality to encode `fmt` at: the one asked for, else that format's default."""
        return self.quality if self.quality is not None else fmt.default_quality

    def canonical(self) -> str:
        """The one spelling of this spec: the variant key's last segment, the canonical path's, the signed string."""
        return ",".join(f"{name}={value}" for name, value in _written(self))

    def query(self) -> str:
        """The shortest query that parses back to this (plain) spec, for the links ?picture hands out."""
        params: list[tuple[str, object]] = []
        if self.width is not None:
            params.append(("w", self.width))
        if self.height is not None:
            params.append(("h", self.height))
        if self.fit is not Fit.INSIDE:
            params.append(("fit", self.fit))
        if self.enlarge:
            params.append(("enlarge", 1))
        if self.background != DEFAULT_BG:
            params.append(("bg", self.background))
        if self.format is not Format.ORIGINAL:
            params.append(("fm", self.format))
        if self.quality is not None and self.quality != self.format.default_quality:
            params.append(("q", self.quality))
        if self.keep_copyright:
            params.append(("copyright", 1))
        return "&".join(f"{name}={value}" for name, value in params)


def _number(value: float) -> str:
    """A float as written in the canonical form: exact to the 4 decimals every grammar accepts."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _box(box: Box) -> str:
    return ".".join(map(str, box))


def _written(spec: ResizeSpec) -> list[tuple[str, str]]:
    """The canonical (name, value) pairs in their fixed order; defaults that cannot matter are left out."""
    parts: list[tuple[str, str]] = []
    if spec.width is not None:
        parts.append(("w", str(spec.width)))
    if spec.height is not None:
        parts.append(("h", str(spec.height)))
    if spec.resizes:
        parts += [("fit", spec.fit.value), ("enlarge", str(int(spec.enlarge)))]
    if background_matters(spec):
        parts.append(("bg", spec.background))
    parts.append(("fm", spec.format.value))
    if spec.quality is not None:
        parts.append(("q", str(spec.quality)))
    if spec.keep_copyright:
        parts.append(("copyright", "1"))
    if spec.crop:
        parts.append(("crop", _box(spec.crop)))
    if spec.trim:
        parts.append(("trim", f"{spec.trim}.{spec.trim_tolerance}"))
    if spec.focal:
        parts.append(("focal", _box(spec.focal)))
    if spec.smart:
        parts.append(("smart", "1"))
    if spec.halign is not HAlign.CENTER:
        parts.append(("halign", spec.halign.value))
    if spec.valign is not VAlign.MIDDLE:
        parts.append(("valign", spec.valign.value))
    if spec.flip_h or spec.flip_v:
        parts.append(("flip", "h" * spec.flip_h + "v" * spec.flip_v))
    if spec.rotate:
        parts.append(("rotate", str(spec.rotate)))
    if spec.grayscale:
        parts.append(("gray", "1"))
    if spec.blur:
        parts.append(("blur", _number(spec.blur)))
    if spec.sharpen:
        amount, radius, luminance = spec.sharpen
        parts.append(("sharpen", f"{_number(amount)}:{_number(radius)}:{int(luminance)}"))
    if spec.flatten:
        parts.append(("flatten", "1"))
    if spec.max_bytes:
        parts.append(("maxbytes", str(spec.max_bytes)))
    return parts


def background_matters(spec: ResizeSpec) -> bool:
    """Whether bg can show: padding, flattening, or an output that cannot keep full alpha (JPEG, GIF, or unknown
    until the original is read)."""
    return (spec.pads or spec.flatten or spec.format is Format.ORIGINAL
            or not (spec.format.info.alpha))


def canonicalize(spec: ResizeSpec) -> ResizeSpec:
    """The one canonicalisation every grammar ends with: defaults written out, everything that cannot change the
    output folded to its default. Idempotent."""
    fmt = spec.format
    lossless = fmt is not Format.ORIGINAL and not fmt.has_quality
    changes: dict[str, object] = {}
    if not spec.resizes:
        changes |= {"fit": Fit.INSIDE, "enlarge": False}
    elif spec.width is None or spec.height is None:
        changes["fit"] = Fit.INSIDE  # with one side given, every fit scales to that side
    if lossless:
        changes |= {"quality": None, "max_bytes": None}  # their size does not depend on a quality
    elif spec.quality is None and fmt is not Format.ORIGINAL:
        changes["quality"] = fmt.default_quality
    elif spec.quality is not None and fmt is not Format.ORIGINAL:
        changes["quality"] = min(spec.quality, fmt.info.quality_max)
    if fmt is not Format.ORIGINAL and not fmt.info.alpha and not fmt.info.binary_alpha:
        changes["flatten"] = False  # JPEG flattens anyway
    if fmt is not Format.ORIGINAL and not fmt.info.exif:
        changes["keep_copyright"] = False  # GIF carries no EXIF
    if spec.trim is None:
        changes["trim_tolerance"] = 0
    spec = replace(spec, **changes)  # type: ignore[arg-type]
    anchors: dict[str, object] = {}
    if not spec.crops_to_box or spec.focal or spec.smart:  # the anchors only choose what a cover crop keeps
        anchors |= {"halign": HAlign.CENTER, "valign": VAlign.MIDDLE}
    if not spec.crops_to_box:
        anchors |= {"smart": False, "focal": None}
    elif spec.focal:
        anchors["smart"] = False  # a focal region wins over detection
    spec = replace(spec, rotate=spec.rotate % 360, **anchors)  # type: ignore[arg-type]
    if not background_matters(spec):
        spec = replace(spec, background=DEFAULT_BG)
    return spec


@dataclass(frozen=True)
class ImageRequest:
    """One parsed request: which original, and what to render from it (None: the original as it is)."""

    key: str
    spec: ResizeSpec | None
    negotiated: bool = False  # the format was chosen from Accept: the answer varies by it (not the bytes' key)

    def variant_key(self, version: str) -> str:
        """Where this variant lives in the cache bucket: <variant prefix><canonical spec>."""
        if self.spec is None:
            raise ValueError("an original has no variant key")
        return variant_prefix(self.key, version) + self.spec.canonical()

    def canonical_path(self, version: str) -> str:
        """The one URL path of this request, as the edge rewrites it: the variant key, percent-encoded the one
        way (RFC 3986 unreserved characters and '/' kept); an original is its own encoded key."""
        encoded = quote(self.key, safe="/")
        if self.spec is None:
            return f"/{encoded}"
        return f"/{version}/{encoded}/{self.spec.canonical()}"

    def has_canonical_path(self, version: str) -> bool:
        """Whether the canonical path names the variant's key (not so for keys too long to hold a spec)."""
        return not variant_prefix(self.key, version).startswith(f"{version}/{LONG_KEYS}/")


# The longest spec segment any grammar can produce, measured generously: a key longer than leaves room for it
# gets its variants under a hashed folder, so no variant key ever passes S3's limit.
SPEC_ROOM = 400


def variant_prefix(key: str, version: str) -> str:
    """The folder of an original's variants: <version>/<key>/, or <version>/_long/<sha256 of key>/ for keys too
    long to leave room for a spec (pre-warm, purge and lookups all use this one function)."""
    prefix = f"{version}/{key}/"
    if len(prefix.encode()) + SPEC_ROOM <= MAX_KEY_BYTES:
        return prefix
    return f"{version}/{LONG_KEYS}/{hashlib.sha256(key.encode()).hexdigest()}/"


def animation_key(version: str, digest: str, extension: str) -> str:
    """Where an animation lives in the cache bucket; also its URL path (hex and an extension need no escaping)."""
    return f"{version}/{ANIMATIONS}/{digest}.{extension}"


def animation_marker(key: str, version: str, digest: str) -> str:
    """The marker, in a member original's variant folder, that names an animation made of that original: pre-warm
    deletes it (and the animation) when the original is replaced, purge when it is deleted."""
    return variant_prefix(key, version) + ANIMATION_MARKER + digest


def animations_marked(keys: list[str], version: str) -> list[str]:
    """The animation keys the markers among `keys` (any variant keys) name, in every extension one may have."""
    digests = dict.fromkeys(name[len(ANIMATION_MARKER):] for name in (k.rsplit("/", 1)[-1] for k in keys)
                            if name.startswith(ANIMATION_MARKER))
    return [animation_key(version, digest, ext) for digest in digests if _DIGEST.fullmatch(digest)
            for ext in ANIMATION_EXTENSIONS]


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def parse_key(raw_path: str) -> str:
    """The S3 key named by a still percent-encoded path: decoded exactly once and checked for safety."""
    encoded = raw_path.removeprefix("/")
    if _BAD_ESCAPE.search(encoded):
        raise BadKey("the image key has a '%' that does not start a %XX escape")
    try:
        key = unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadKey("the image key is not valid UTF-8") from None
    return check_key(key)


def check_key(key: str) -> str:
    """A decoded key, refused when empty, too long, or with unsafe characters or segments."""
    if not key:
        raise BadKey("the path must name an image, e.g. /photos/cat.jpg")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise BadKey(f"the image key is longer than {MAX_KEY_BYTES} bytes")
    if "\\" in key or any(unicodedata.category(ch) == "Cc" for ch in key):
        raise BadKey("the image key contains a backslash or a control character")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise BadKey("the image key has an empty, '.' or '..' segment")
    return key


def keep_format(key: str) -> Format:
    """What "keep the original's format" writes for this key, known from its extension (ORIGINAL: decided when
    the original is decoded)."""
    return formats.keep_for_key(key) or Format.ORIGINAL


# The canonical spelling of each field (the canonical-path grammar reads these back).
CANONICAL_NAMES = ("w", "h", "fit", "enlarge", "bg", "fm", "q", "copyright", "crop", "trim", "focal", "smart",
                   "halign", "valign", "flip", "rotate", "gray", "blur", "sharpen", "flatten", "maxbytes")
SPEC_FIELDS = tuple(f.name for f in fields(ResizeSpec))


def parse_bool(name: str, raw: str) -> bool:
    value = {"0": False, "false": False, "1": True, "true": True}.get(raw.strip().lower())
    if value is None:
        raise BadParameter(name, "must be 0 or 1")
    return value
