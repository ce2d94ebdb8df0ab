"""The format registry: every fact about an image format, stated once, read by every layer and by the edge."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Format(StrEnum):
    """Output formats; ORIGINAL keeps the source's own format (what that means is each source's `keep_as`)."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    GIF = "gif"
    JXL = "jxl"
    ORIGINAL = "original"

    @property
    def info(self) -> ImageFormat:
        """This output format's registry entry (ORIGINAL has none)."""
        return OUTPUTS[self]

    @property
    def content_type(self) -> str:
        return OUTPUTS[self].content_type

    @property
    def has_quality(self) -> bool:
        return self in OUTPUTS and OUTPUTS[self].quality is not None

    @property
    def default_quality(self) -> int | None:
        return OUTPUTS[self].quality if self in OUTPUTS else None


@dataclass(frozen=True)
class ImageFormat:
    """One format as this service knows it: how it is named, read, written, negotiated and priced."""

    name: str  # its canonical name: in fm=, in variant keys, in LADDER_FORMATS
    label: str  # how people name it, in messages
    content_type: str
    magic: tuple[bytes, ...]  # leading bytes that identify it (offset 0), to tell 415 from 422
    aliases: tuple[str, ...] = ()  # other spellings accepted in fm= and thumbor's format()
    extensions: tuple[str, ...] = ()  # key extensions that name it (lower case, no dot)
    decoder: str | None = None  # Pillow's plugin name; None: never decoded (a 415)
    decoder_module: str | None = None  # imported on first use to register the decoder (pillow-heif)
    output: Format | None = None  # set for formats we write
    keep_as: Format | None = None  # what "keep the original's format" writes for an original of this format
    quality: int | None = None  # default quality; None: lossless, q= is folded away (never splits the cache)
    quality_max: int = 100  # the highest quality its encoder takes; a higher q= is folded to it
    alpha: bool = False  # full alpha kept in output; without it transparency is flattened onto bg
    binary_alpha: bool = False  # on/off transparency only (GIF): partial alpha is blended onto bg, then cut
    animation: bool = False  # can carry an animation, in and out
    exif: bool = True  # can carry EXIF (copyright=1); folded away where it cannot
    grey: bool = True  # can be written from grey (L/LA) pixels; else they are written as RGB(A)
    drafts: bool = False  # the decoder can decode at a reduced scale (Pillow's draft: JPEG's DCT scaling)
    verifies: bool = False  # Pillow's verify() checks the file's own checksums without decoding (PNG's CRCs)
    orients: bool = False  # the decoder applies the orientation tag itself (Pillow's TIFF): never turned again
    animation_options: Mapping[str, object] = field(default_factory=dict)  # save() options for animations
    plays_once: int | None = None  # the loop value meaning "play once" (None: leave loop out, as GIF does)
    accept: str | None = None  # the Accept media type that offers it to fm=auto (None: never negotiated)
    auto_for_animated: bool = True  # fm=auto may pick it for an original that may be animated
    universal: bool = False  # every browser shows it: fm=auto keeps it for browsers that offer nothing better
    save_options: Mapping[str, object] = field(default_factory=dict)  # Pillow save() options besides quality
    encode_ms_per_mp: float = 0.0  # measured single-core encode time per output megapixel (cost check)
    animated_ms_per_mp: float | None = None  # the same per megapixel of each frame of an animation (None: as still)
    web_safe: bool = False  # its own bytes may be served as they are (no parameters); else it is rendered to keep_as
    vector: bool = False  # drawn, not decoded: rasterised at the size asked (render/vector.py)
    max_pages: int | None = None  # pages or entries a file may declare (TIFF pages, ICO entries); None: MAX_FRAMES

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


# Single-core encode time per output megapixel at the default settings, measured here on the 12 MP photo at
# 2048x1536 (JPEG 27, PNG 435-503, WebP m5 115, GIF 236) and in `make worst` at up to 4096 px, photos and noise
# (AVIF s7 460-480, PNG of noise ~650, GIF 210-234 still and ~460 a frame animated, WebP ~140); the cost check
# uses these, rounded up, so that what it admits stays under 8 s of one core.
REGISTRY: tuple[ImageFormat, ...] = (
    ImageFormat(
        "jpeg", "JPEG", "image/jpeg", (b"\xff\xd8\xff",), aliases=("jpg",), extensions=("jpg", "jpeg", "jpe"),
        decoder="JPEG", output=Format.JPEG, keep_as=Format.JPEG, quality=80, universal=True, drafts=True, web_safe=True,
        # progressive: 6% smaller than baseline and shown progressively (README's encoder table)
        save_options=MappingProxyType({"optimize": False, "progressive": True}), encode_ms_per_mp=30,
    ),
    ImageFormat(
        "png", "PNG", "image/png", (b"\x89PNG\r\n\x1a\n",), extensions=("png",), decoder="PNG", output=Format.PNG,
        keep_as=Format.PNG, alpha=True, universal=True, verifies=True, web_safe=True,
        save_options=MappingProxyType({"compress_level": 6}), encode_ms_per_mp=750,
    ),
    ImageFormat(
        "webp", "WebP", "image/webp", (), extensions=("webp",), decoder="WEBP", output=Format.WEBP, keep_as=Format.WEBP,
        quality=80, alpha=True, animation=True, accept="image/webp", grey=False, plays_once=1, web_safe=True,
        # method 5: 2.5-4% smaller than 4 for 7-12% more time; 6 costs 60-90% more (README)
        save_options=MappingProxyType({"method": 5}), encode_ms_per_mp=140,
        # no key frames after the first (libwebp: kmax 0), as libvips and so sharp write animations: Pillow's default
        # (one every 3-5 frames) has each frame encoded both ways. Measured: the 44-frame earth 250 KB in 0.41 s
        # against 281 KB in 0.60 s; a 12-frame burst 15 KB in 26 ms against 38 KB in 82 ms; a slideshow the same
        animation_options=MappingProxyType({"kmin": 0, "kmax": 0}),
    ),
    ImageFormat(
        "avif", "AVIF", "image/avif", (), extensions=("avif",), decoder="AVIF", output=Format.AVIF, keep_as=Format.AVIF,
        quality=60, alpha=True, accept="image/avif", grey=False, web_safe=True,
        auto_for_animated=False,  # animated AVIF is poorly supported: GIF and WebP originals never become AVIF
        save_options=MappingProxyType({"speed": 7, "max_threads": 1}), encode_ms_per_mp=500,
    ),
    ImageFormat(
        "gif", "GIF", "image/gif", (b"GIF87a", b"GIF89a"), extensions=("gif",), decoder="GIF", output=Format.GIF,
        keep_as=Format.GIF, binary_alpha=True, animation=True, universal=True, exif=False, web_safe=True,
        animation_options=MappingProxyType({"disposal": 2}),
        save_options=MappingProxyType({"optimize": False}), encode_ms_per_mp=260,
        animated_ms_per_mp=500,  # each frame is quantised and compared with the one before
    ),
    # JPEG XL, in and out (pillow-jxl-plugin). At the PSNR of AVIF q60 on the 12 MP photo at 1200 px: AVIF 55 KB
    # in 580 ms, JXL q70 60 KB in 750 ms, WebP about the same bytes as JXL in a sixth of the time: fm=auto prefers
    # AVIF, then WebP, then JXL (README's encoder table).
    ImageFormat(
        "jxl", "JPEG XL", "image/jxl", (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"), extensions=("jxl",),
        decoder="JXL", decoder_module="pillow_jxl", output=Format.JXL, keep_as=Format.JXL, quality=70, alpha=True,
        accept="image/jxl", auto_for_animated=False, web_safe=True, save_options=MappingProxyType({"effort": 7}),
        quality_max=99,  # libjxl refuses 100 (lossless is a mode of its own, not offered)
        encode_ms_per_mp=750,
    ),
    # Read, never written: browsers cannot show them, so keeping their format means JPEG (photos) or PNG.
    ImageFormat(
        "heic", "HEIC", "image/heic", (), extensions=("heic", "heif"), decoder="HEIF", decoder_module="pillow_heif",
        keep_as=Format.JPEG,
    ),
    # BMP originals are served as PNG (lossless, like them): 1-32 bits, RLE, top-down, alpha.
    ImageFormat("bmp", "BMP", "image/bmp", (b"BM",), extensions=("bmp",), decoder="BMP", keep_as=Format.PNG),
    # TIFF: the first page; what cameras, scanners and print workflows make, so JPEG by default.
    ImageFormat("tiff", "TIFF", "image/tiff", (b"II*\x00", b"MM\x00*"), extensions=("tif", "tiff"), decoder="TIFF",
                keep_as=Format.JPEG, max_pages=100, orients=True),
    # Icons: the largest entry.
    ImageFormat("ico", "ICO", "image/x-icon", (b"\x00\x00\x01\x00",), extensions=("ico",), decoder="ICO",
                keep_as=Format.PNG, max_pages=64),
    ImageFormat("cur", "CUR", "image/x-icon", (b"\x00\x00\x02\x00",), extensions=("cur",), decoder="CUR",
                keep_as=Format.PNG, max_pages=64),
    # SVG: rasterised by resvg (no scripts, no external references), never served as it is.
    ImageFormat("svg", "SVG", "image/svg+xml", (), extensions=("svg",), decoder="SVG", decoder_module="resvg_py",
                keep_as=Format.PNG, vector=True),
    # Known, refused with a 415 that names them.
    ImageFormat("psd", "PSD", "image/vnd.adobe.photoshop", (b"8BPS",), extensions=("psd",)),
    ImageFormat("eps", "PostScript/EPS", "application/postscript", (b"%!PS", b"\xc5\xd0\xd3\xc6"),
                extensions=("eps", "ps")),
    ImageFormat("pdf", "PDF", "application/pdf", (b"%PDF",), extensions=("pdf",)),
    ImageFormat("exr", "OpenEXR", "image/x-exr", (b"\x76\x2f\x31\x01",), extensions=("exr",)),
    ImageFormat("jp2", "JPEG 2000", "image/jp2", (b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51"),
                extensions=("jp2", "j2k")),
)

# ISO-BMFF brands (the `ftyp` box at offset 4) and RIFF forms identify the formats that have no fixed leading bytes.
FTYP_BRANDS: Mapping[bytes, str] = MappingProxyType({
    b"avif": "avif", b"avis": "avif",
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"), "heic"),
})
RIFF_FORMS: Mapping[bytes, str] = MappingProxyType({b"WEBP": "webp"})

BY_NAME: Mapping[str, ImageFormat] = MappingProxyType({f.name: f for f in REGISTRY})
OUTPUTS: Mapping[Format, ImageFormat] = MappingProxyType({f.output: f for f in REGISTRY if f.output})
BY_DECODER: Mapping[str, ImageFormat] = MappingProxyType({f.decoder: f for f in REGISTRY if f.decoder})
# Every fm= spelling of an output format -> the format.
OUTPUT_NAMES: Mapping[str, Format] = MappingProxyType(
    {name: f.output for f in REGISTRY if f.output for name in f.names})
# A key's extension -> what "keep the original's format" writes for it (only formats we decode).
KEEP_BY_EXTENSION: Mapping[str, Format] = MappingProxyType(
    {ext: f.keep_as for f in REGISTRY if f.decoder and f.keep_as for ext in f.extensions})
_BY_EXTENSION: Mapping[str, ImageFormat] = MappingProxyType({ext: f for f in REGISTRY for ext in f.extensions})
# fm=auto's candidates, best first: decided by measurement (README's encoder table: bytes at equal quality).
AUTO_ORDER: tuple[ImageFormat, ...] = (BY_NAME["avif"], BY_NAME["webp"], BY_NAME["jxl"])
# The fm= menu (the playground's): fm=auto's candidates first, then every other written format, by its first name.
MENU: tuple[str, ...] = tuple(f.name for f in AUTO_ORDER) + tuple(
    f.name for f in OUTPUTS.values() if f not in AUTO_ORDER)
# ... and the animation maker's: animated formats, the one every browser shows (its default, GIF) first.
ANIMATED_MENU: tuple[str, ...] = tuple(f.name for f in sorted(
    (f for f in OUTPUTS.values() if f.animation), key=lambda f: not f.universal))
DECODERS: tuple[str, ...] = tuple(f.decoder for f in REGISTRY if f.decoder and not f.decoder_module)
_READ = [f.label for f in REGISTRY if f.decoder]
SUPPORTED_NAMES = ", ".join(_READ[:-1]) + " or " + _READ[-1]


def output_by_name(name: str) -> Format | None:
    """The output format an fm= value (or thumbor format()) names, case-insensitively; None if none."""
    return OUTPUT_NAMES.get(name.strip().lower())


def named_by_key(key: str) -> ImageFormat | None:
    """The format a key's extension names (only a guess: an original's bytes decide what it is); None if none."""
    _, dot, ext = key.rpartition(".")
    return _BY_EXTENSION.get(ext.lower()) if dot and "/" not in ext else None


def keep_for_key(key: str) -> Format | None:
    """What keeping the original's format writes, from the key's extension alone (None: no known extension)."""
    named = named_by_key(key)
    return named.keep_as if named is not None and named.decoder else None


SNIFF_BYTES = 1024  # how much of a file sniff() may look at (an SVG's root element may follow a long prologue)
# An SVG: markup whose first tag is a prologue, a comment, a doctype or <svg>, with <svg in the first kilobyte.
_XML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<(?:\?xml|!--|!DOCTYPE|svg[\s>])", re.I)


def sniff(head: bytes) -> ImageFormat | None:
    """The registry entry the leading bytes identify, whether we decode it or not."""
    if _XML_START.match(head) and b"<svg" in head:
        return BY_NAME["svg"]
    if head[4:8] == b"ftyp" and head[8:12] in FTYP_BRANDS:
        return BY_NAME[FTYP_BRANDS[head[8:12]]]
    if head[:4] == b"RIFF" and head[8:12] in RIFF_FORMS:
        return BY_NAME[RIFF_FORMS[head[8:12]]]
    return next((f for f in REGISTRY for magic in f.magic if head.startswith(magic)), None)


def negotiate(accepted: frozenset[str] | set[str], keep: Format | None) -> Format:
    """fm=auto: the first of AUTO_ORDER the client offers (not an animation-less one for an original that may be
    animated); else the original's format if every browser shows it; else PNG (never JPEG: it may be transparent)."""
    may_animate = keep is not None and keep in OUTPUTS and OUTPUTS[keep].animation
    for candidate in AUTO_ORDER:
        if candidate.accept in accepted and (candidate.auto_for_animated or not may_animate):
            return candidate.output  # type: ignore[return-value]
    if keep is not None and keep in OUTPUTS and OUTPUTS[keep].universal:
        return keep
    return Format.PNG


def edge_tables() -> dict[str, object]:
    """What the CloudFront Function needs of the registry (make edge writes it into edge/viewer-request.js)."""
    return {
        "FORMATS": dict(sorted(OUTPUT_NAMES.items())),
        "EXTENSIONS": dict(sorted(KEEP_BY_EXTENSION.items())),
        "UNIVERSAL": sorted(f.name for f in OUTPUTS.values() if f.universal),
        "QUALITY": {f.name: f.quality for f in OUTPUTS.values() if f.quality is not None},
        "OPAQUE": sorted(f.name for f in OUTPUTS.values() if not f.alpha),
        "AUTO": [[f.name, f.accept, f.auto_for_animated] for f in AUTO_ORDER],
        "ANIMATED": sorted(f.name for f in OUTPUTS.values() if f.animation),
    }
