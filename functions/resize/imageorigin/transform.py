"""Pillow, with a SIMD LANCZOS: original bytes + spec -> rendered bytes. No AWS, no HTTP."""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops, ImageCms, ImageFilter, ImageMath, ImageSequence, UnidentifiedImageError

from .errors import TooLarge, Undecodable, UnsupportedType
from .spec import Fit, Format, HAlign, ResizeSpec, Trim, VAlign

# Pillow sniffs by content: this list is the allow-list of decoders, so nothing else (EPS, PSD, TIFF...) is parsed.
# HEIF/HEIC (phone uploads) is decoded by pillow-heif, loaded only when an original's header says HEIF.
DECODERS = ("JPEG", "PNG", "WEBP", "GIF", "AVIF")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
# What "keep the original's format" means for each decoder: HEIF, which browsers cannot show, becomes JPEG.
_SOURCE_FORMAT = {"JPEG": Format.JPEG, "PNG": Format.PNG, "WEBP": Format.WEBP, "GIF": Format.GIF,
                  "AVIF": Format.AVIF, "HEIF": Format.JPEG}
_CONTENT_TYPE = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
                 "AVIF": "image/avif", "HEIF": "image/heic"}

# Decode JPEGs at a DCT scale that leaves at least this many times the target size, then LANCZOS the rest.
# Drafting straight to the target is fast but soft (about 40 dB against a full-resolution reference). Measured on
# the 12 MP photo: 1.5x keeps 48-53 dB from 400 to 1200 px and lets a 1200 px target decode at 1/2 scale (2.0x
# would decode it whole: 190 ms instead of 90 ms, 2.4x libvips' time instead of 1.3x).
DRAFT_HEADROOM = 1.5
# Resize's own integer pre-reduction (a box filter, for what draft cannot shrink: PNG, WebP, GIF, and JPEG past 1/8)
# stops this many times above the target, as libvips leaves LANCZOS a factor of 2. Measured on the 2048x1536 RGBA
# PNG to 400 px: 3.0 71 ms, 2.0 56 ms at 57 dB against a full-resolution LANCZOS (libvips: 51 dB).
REDUCING_GAP = 2.0
# The modes resize hands to fast_image_resize (RGBA as premultiplied RGBa); of what _normalize_mode leaves, LA is
# the one left to Pillow.
_FAST_MODES = ("L", "RGB", "RGBA", "CMYK")

JPEG_OPTIONS = {"optimize": False, "progressive": True}
PNG_OPTIONS = {"compress_level": 6}
WEBP_OPTIONS = {"method": 5}  # 2.5-4% smaller than 4 for 7-12% more encoding time; 6 costs 60-90% more (README)
AVIF_OPTIONS = {"speed": 7}

# EXIF orientation -> the transposition that makes the picture upright. Values outside 2..8 mean upright.
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# The orientation whose transposition undoes this one's (the others undo themselves).
_UNDO = {6: 8, 8: 6}
_EXIF_ORIENTATION = 0x0112
_EXIF_COPYRIGHT = 0x8298

# Leading bytes of formats we can name in a 415, and of the allowed ones (whose failure to open is a 422).
_ALLOWED_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
_REFUSED_MAGIC = {
    b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"BM": "BMP", b"8BPS": "PSD", b"%!PS": "PostScript/EPS",
    b"\xc5\xd0\xd3\xc6": "EPS", b"%PDF": "PDF", b"\x00\x00\x01\x00": "ICO", b"\x00\x00\x02\x00": "CUR",
    b"\x76\x2f\x31\x01": "OpenEXR", b"\x00\x00\x00\x0cjP  ": "JPEG 2000", b"\xff\x4f\xff\x51": "JPEG 2000",
}
_SUPPORTED = "JPEG, PNG, WebP, GIF, AVIF or HEIC"

# Everything Pillow raises on malformed data. Anything else escaping a decode is a bug and must surface.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
                  ZeroDivisionError, MemoryError)


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """Map what Pillow raises on bad data: a bomb (too many pixels) is 413, anything malformed is 422."""
    try:
        yield
    except UnidentifiedImageError:
        raise  # no allowed decoder recognised it: the caller tells 415 from 422
    except Image.DecompressionBombError:
        raise TooLarge("the original declares too many pixels") from None
    except _DECODE_ERRORS as exc:
        raise Undecodable(f"{what} ({type(exc).__name__})") from None


@dataclass(frozen=True)
class Limits:
    """What the transform refuses before spending memory on it."""

    max_pixels: int = 40_000_000  # per frame
    max_side: int = 4096
    max_frames: int = 100
    max_animation_pixels: int = 100_000_000  # all frames together


@dataclass(frozen=True)
class SourceInfo:
    """What the header of an original says, read without decoding its pixels."""

    decoder: str  # Pillow's format name
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Rendered:
    """An encoded variant and what it is."""

    data: bytes
    format: Format
    width: int
    height: int
    frames: int = 1

    @property
    def content_type(self) -> str:
        return self.format.content_type


@dataclass(frozen=True)
class _Plan:
    """A resize in upright source coordinates: the source box to take, the size to scale it to, a canvas to pad."""

    box: tuple[float, float, float, float]
    size: tuple[int, int]
    canvas: tuple[int, int] | None = None


def probe(data: bytes, limits: Limits) -> SourceInfo:
    """Identify and check an original served as it is: header limits, then the cheapest decode that finds damage.

    PNG chunks are CRC-checked without inflating the pixels; JPEGs are decoded at 1/8 scale (every entropy-coded
    byte is still read); other formats are decoded. Nothing is kept.
    """
    with _open(data, limits) as image:
        _frame_count(image, limits)
        info = SourceInfo(image.format, _CONTENT_TYPE[image.format], image.width, image.height)
        with _decoding("the original is damaged or truncated"):
            if image.format == "PNG":
                image.verify()
            else:
                if image.format == "JPEG":
                    image.draft(None, (1, 1))
                image.load()
        return info


def upright_size(data: bytes, limits: Limits) -> tuple[int, int]:
    """The original's width and height as displayed (EXIF orientation applied), from its header alone."""
    with _open(data, limits) as image:
        return _upright_size(image.size, _orientation(image))


def render(data: bytes, spec: ResizeSpec, limits: Limits) -> Rendered:
    """Decode (downscaling at decode time), orient, convert to sRGB, resize by fit, encode a fresh image.

    Animated GIF and WebP originals stay animated when the output is GIF or WebP; other outputs take the first frame.
    """
    with _open(data, limits) as image:
        fmt = _output_format(spec.format, _SOURCE_FORMAT[image.format])
        frames = _frame_count(image, limits)
        if frames > 1 and fmt in (Format.GIF, Format.WEBP):
            return _render_animation(image, frames, spec, fmt, limits)
        orientation = _orientation(image)
        upright = _upright_size(image.size, orientation)
        region, focus = _region_and_focus(data, spec, upright, limits)
        plan = _plan(upright, spec, limits.max_side, region, focus)
        icc = image.info.get("icc_profile")
        exif = _copyright_exif(image) if spec.keep_copyright else None
        picture, box = _decoded(image, plan, orientation)
        picture = _effects(_to_srgb(_resize_upright(picture, plan.size, box, orientation), icc), spec)
        picture = _turned(_for_output(picture, fmt, spec, plan.canvas), spec)
        encoded = _encode_within(picture, fmt, spec, exif)
        return Rendered(encoded, fmt, picture.width, picture.height)


def render_many(data: bytes, specs: Sequence[ResizeSpec], limits: Limits) -> list[Rendered]:
    """Several variants of one original (a pre-warm ladder) from a single decode, in the order of `specs`.

    Plain resizes are made largest first, each size derived from the one before it (a LANCZOS step from a larger,
    already sharp image), so the ladder costs little more than its largest member. Crops, pads and animated outputs
    are rendered one by one.
    """
    results: dict[int, Rendered] = {}
    with _open(data, limits) as image:
        source_format = _SOURCE_FORMAT[image.format]
        animated = _frame_count(image, limits) > 1
        orientation = _orientation(image)
        upright = _upright_size(image.size, orientation)
        plans = [_plan(upright, spec, limits.max_side) for spec in specs]
        chained = [i for i, (spec, plan) in enumerate(zip(specs, plans, strict=True))
                   if spec.plain and plan.canvas is None and plan.box == (0, 0, *upright)
                   and not (animated and _output_format(spec.format, source_format) in (Format.GIF, Format.WEBP))]
        if chained:
            sizes = sorted({plans[i].size for i in chained}, key=lambda size: size[0] * size[1], reverse=True)
            exif = _copyright_exif(image) if any(specs[i].keep_copyright for i in chained) else None
            icc = image.info.get("icc_profile")
            picture, box = _decoded(image, _Plan((0.0, 0.0, *upright), sizes[0]), orientation)
            for size in sizes:
                picture = _resize_upright(picture, size, box, orientation)
                picture, icc = _to_srgb(picture, icc), None  # converted once, at the largest size
                box, orientation = (0.0, 0.0, float(picture.width), float(picture.height)), 1  # upright from here
                for i in (i for i in chained if plans[i].size == size):
                    fmt = _output_format(specs[i].format, source_format)
                    out = _for_output(picture, fmt, specs[i], None)
                    data_out = encode(out, fmt, specs[i].quality_for(fmt), exif if specs[i].keep_copyright else None)
                    results[i] = Rendered(data_out, fmt, out.width, out.height)
    for i, spec in enumerate(specs):
        if i not in results:
            results[i] = render(data, spec, limits)
    return [results[i] for i in range(len(specs))]


def _decoded(image: Image.Image, plan: _Plan, orientation: int) -> tuple[Image.Image, tuple[float, ...]]:
    """The decoded picture (drafted for `plan`) as stored, in a mode LANCZOS handles; and the plan's box in it."""
    box = _decode(image, plan, orientation)
    return _normalize_mode(image), box


def _resize_upright(picture: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float],
                    orientation: int) -> Image.Image:
    """Resize the stored picture's `box` to the upright `size`, then turn it upright: the turn moves the output's
    pixels, not the decoded original's (3 to 4 times fewer at a 1/2 draft)."""
    if orientation in _ORIENT:
        stored = (size[1], size[0]) if orientation >= 5 else size
        return resize(picture, stored, box).transpose(_ORIENT[orientation])
    return resize(picture, size, box)


def _render_animation(image: Image.Image, frames: int, spec: ResizeSpec, fmt: Format, limits: Limits) -> Rendered:
    """Every frame resized alike, with its duration; the loop count kept (GIF without one plays once)."""
    plan = _plan(image.size, spec, limits.max_side, _clamped(spec.crop, image.size) if spec.crop else None)
    loop = image.info.get("loop")
    pictures: list[Image.Image] = []
    durations: list[int] = []
    with _decoding("a frame of the animation is damaged"):
        for frame in ImageSequence.Iterator(image):
            picture = _effects(resize(_normalize_mode(frame), plan.size, plan.box), spec)
            durations.append(int(frame.info.get("duration") or 0))  # WebP sets it when the frame loads
            pictures.append(_turned(_for_output(picture, fmt, spec, plan.canvas), spec))
    out = io.BytesIO()
    first, rest = pictures[0], pictures[1:]
    first.info = {}
    if fmt is Format.GIF:
        options = {"loop": loop} if loop is not None else {}
        first.save(out, "GIF", save_all=True, append_images=rest, duration=durations, disposal=2, **options)
    else:
        # WebP counts plays, 0 = forever; a GIF without a loop extension plays once
        first.save(out, "WEBP", save_all=True, append_images=rest, duration=durations,
                   loop=1 if loop is None else loop, quality=spec.quality_for(fmt), **WEBP_OPTIONS)
    return Rendered(out.getvalue(), fmt, first.width, first.height, frames=len(pictures))


def _frame_count(image: Image.Image, limits: Limits) -> int:
    """Frames in the original, counted from its headers (no frame is decoded), within the animation limits."""
    with _decoding("the animation's frames could not be read"):
        frames = getattr(image, "n_frames", 1)
    if frames > limits.max_frames:
        raise TooLarge(f"the original has {frames} frames; the limit is {limits.max_frames}")
    total = frames * image.width * image.height
    if total > limits.max_animation_pixels:
        raise TooLarge(f"the animation has {total / 1e6:.1f} MP in all frames; "
                       f"the limit is {limits.max_animation_pixels / 1e6:.1f} MP")
    return frames


def resize(picture: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """LANCZOS-resize the (fractional) `box` of `picture` to `size`; what is more than REDUCING_GAP times too big is
    box-reduced first, with Pillow's `reducing_gap` arithmetic; alpha premultiplied throughout, as Pillow does.

    The LANCZOS step is fast_image_resize's (cykooz.resizer: SIMD, one thread) where it has a wheel: the same filter
    and the same box as Pillow's, measured at the same PSNR, 5-6x faster. Elsewhere, and for LA, Pillow does it all.
    """
    if picture.size == size and box == (0, 0, *picture.size):
        return picture
    lanczos = _fast_lanczos()
    if lanczos is None or picture.mode not in _FAST_MODES:
        return picture.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)
    mode = picture.mode
    if mode == "RGBA":  # premultiplied once for both steps: hidden colours never bleed, faint pixels keep precision
        picture = picture.convert("RGBa")
    factor = (int((box[2] - box[0]) / size[0] / REDUCING_GAP) or 1,
              int((box[3] - box[1]) / size[1] / REDUCING_GAP) or 1)
    if factor != (1, 1):
        reduced = _reduce_box(picture.size, size, box)
        picture = picture.reduce(factor, box=reduced)
        box = ((box[0] - reduced[0]) / factor[0], (box[1] - reduced[1]) / factor[1],
               (box[2] - reduced[0]) / factor[0], (box[3] - reduced[1]) / factor[1])
    out = lanczos(picture, size, box)
    return out.convert("RGBA") if mode == "RGBA" else out


def _reduce_box(source: tuple[int, int], size: tuple[int, int], box: tuple[float, float, float, float],
                ) -> tuple[int, int, int, int]:
    """The whole pixels around `box` that LANCZOS (support 3) reads for `size`: what reduce must keep."""
    support = (3 - 0.5) * (box[2] - box[0]) / size[0], (3 - 0.5) * (box[3] - box[1]) / size[1]
    return (max(0, int(box[0] - support[0])), max(0, int(box[1] - support[1])),
            min(source[0], math.ceil(box[2] + support[0])), min(source[1], math.ceil(box[3] + support[1])))


@lru_cache(maxsize=1)
def _fast_lanczos() -> Callable[[Image.Image, tuple[int, int], tuple[float, ...]], Image.Image] | None:
    """fast_image_resize's LANCZOS-3 of a box, imported at the first resize (a cache hit never needs it); None where
    it has no wheel."""
    try:
        from cykooz_resizer import CropBox, FilterType, ResizeAlg, ResizeOptions, Resizer
    except ImportError:
        return None
    resizer, algorithm = Resizer(), ResizeAlg.convolution(FilterType.lanczos3)

    def lanczos(picture: Image.Image, size: tuple[int, int], box: tuple[float, ...]) -> Image.Image:
        out = Image.new(picture.mode, size)
        x0, y0 = max(0.0, box[0]), max(0.0, box[1])  # within the picture: float residue must not make it an error
        crop = CropBox(x0, y0, min(box[2], picture.width) - x0, min(box[3], picture.height) - y0)
        resizer.resize_pil(picture, out, ResizeOptions(algorithm, crop_box=crop))  # one thread: no thread_pool
        return out

    return lanczos


def _open(data: bytes, limits: Limits) -> Image.Image:
    """Image.open restricted to the allow-list, with every header-level limit checked before any decoding."""
    if not data:
        raise Undecodable("the original is empty")
    decoders = DECODERS
    if _is_isobmff(data[:16], _HEIF_BRANDS):
        _register_heif()
        decoders += ("HEIF",)
    try:
        with _decoding("the original could not be read as an image"), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides, just below
            image = Image.open(io.BytesIO(data), formats=decoders)
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    pixels = image.width * image.height
    if pixels > limits.max_pixels:
        image.close()
        raise TooLarge(
            f"the original is {image.width}x{image.height} = {pixels / 1e6:.1f} MP; "
            f"the limit is {limits.max_pixels / 1e6:.1f} MP"
        )
    if image.width < 1 or image.height < 1:
        image.close()
        raise Undecodable("the original has no pixels")
    return image


@lru_cache(maxsize=1)
def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener(thumbnails=False)


def _unidentified(data: bytes) -> UnsupportedType | Undecodable:
    """Why Pillow's allow-listed decoders refused the bytes: a damaged allowed image, or another type."""
    head = data[:16]
    if head.startswith(_ALLOWED_MAGIC) or _is_riff_webp(head) or _is_isobmff(head, (b"avif", b"avis", *_HEIF_BRANDS)):
        return Undecodable("the original is a damaged or truncated image")
    for magic, name in _REFUSED_MAGIC.items():
        if head.startswith(magic):
            return UnsupportedType(f"{name} originals are not supported; use {_SUPPORTED}")
    return UnsupportedType(f"the original is not a {_SUPPORTED} image")


def _is_riff_webp(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _is_isobmff(head: bytes, brands: tuple[bytes, ...]) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in brands


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 when absent, invalid or unreadable."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _plan(upright: tuple[int, int], spec: ResizeSpec, max_side: int,
          region: tuple[int, int, int, int] | None = None, focus: tuple[float, float] | None = None) -> _Plan:
    """Where to crop, what size to scale to, and what to pad, decided from the header's dimensions (and, for a
    manual crop, a trim or a smart crop, the `region` of the original to use and the `focus` to centre on)."""
    rx, ry, rx1, ry1 = region or (0, 0, *upright)
    sw, sh = rx1 - rx, ry1 - ry
    full = (float(rx), float(ry), float(rx1), float(ry1))
    w, h = spec.width, spec.height
    if w is None and h is None:
        return _Plan(full, _capped((sw, sh), max_side))
    if spec.fit is Fit.ADAPTIVE and w and h and (w > h) != (sw > sh):
        w, h = h, w  # turn the box to the original's orientation
    ratios = [r for r in (w / sw if w else None, h / sh if h else None) if r is not None]
    cap = 1.0 if not spec.enlarge else math.inf

    if spec.fit is Fit.FILL and w and h:
        return _Plan(full, _capped((_px(sw * min(w / sw, cap)), _px(sh * min(h / sh, cap))), max_side))
    if spec.fit is Fit.COVER and w and h:
        target = w / h
        cw, ch = (sh * target, float(sh)) if sw / sh > target else (float(sw), sw / target)
        x0 = _anchor(sw, cw, focus[0] - rx if focus else None, _H_ANCHOR[spec.halign])
        y0 = _anchor(sh, ch, focus[1] - ry if focus else None, _V_ANCHOR[spec.valign])
        scale = min(w / cw, cap)
        return _Plan((rx + x0, ry + y0, rx + x0 + cw, ry + y0 + ch),
                     _capped((_px(cw * scale), _px(ch * scale)), max_side))
    scale = min(max(ratios) if spec.fit is Fit.OUTSIDE else min(ratios), cap)
    size = _capped((_px(sw * scale), _px(sh * scale)), max_side)
    canvas = (w, h) if spec.fit is Fit.CONTAIN and w and h else None
    return _Plan(full, size, canvas)


_H_ANCHOR = {HAlign.LEFT: 0.0, HAlign.CENTER: 0.5, HAlign.RIGHT: 1.0}
_V_ANCHOR = {VAlign.TOP: 0.0, VAlign.MIDDLE: 0.5, VAlign.BOTTOM: 1.0}


def _anchor(length: float, window: float, focus: float | None, fraction: float) -> float:
    """Where a crop window starts along one axis: centred on `focus` if given, else at `fraction` of the slack."""
    slack = length - window
    if focus is None:
        return slack * fraction
    return min(max(focus - window / 2, 0.0), slack)


def _clamped(box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A manual crop kept inside the image (at least one pixel)."""
    left, top = min(box[0], size[0] - 1), min(box[1], size[1] - 1)
    return left, top, max(left + 1, min(box[2], size[0])), max(top + 1, min(box[3], size[1]))


def _region_and_focus(data: bytes, spec: ResizeSpec, upright: tuple[int, int],
                      limits: Limits) -> tuple[tuple[int, int, int, int] | None, tuple[float, float] | None]:
    """The part of the original to use (manual crop, then trim) and the point a cover crop centres on (a focal
    region, else the most detailed region for smart crops), in upright pixels."""
    region = _clamped(spec.crop, upright) if spec.crop else None
    if spec.trim:
        picture, scale = _analysis(data, limits, None)
        if region:
            picture = picture.crop(region)
        found = _trimmed_box(picture, spec.trim, spec.trim_tolerance)
        if found:
            ox, oy = region[:2] if region else (0, 0)
            region = (ox + found[0], oy + found[1], ox + found[2], oy + found[3])
    focus = None
    if spec.crops_to_box and spec.focal:
        focus = ((spec.focal[0] + spec.focal[2]) / 2, (spec.focal[1] + spec.focal[3]) / 2)
    elif spec.crops_to_box and spec.smart:
        focus = _smart_focus(data, spec, region or (0, 0, *upright), limits)
    return region, focus


SMART_ANALYSIS_SIDE = 256  # the smart crop looks at the original at most this large


def _analysis(data: bytes, limits: Limits, side: int | None) -> tuple[Image.Image, float]:
    """The original decoded upright in RGB(A) for analysis, at most `side` px (JPEGs drafted), and its scale."""
    with _open(data, limits) as image:
        orientation = _orientation(image)
        width = _upright_size(image.size, orientation)[0]
        with _decoding("the original is damaged or truncated"):
            if side and image.format == "JPEG":
                image.draft("RGB", (side, side))
            image.load()
        picture = _normalize_mode(image)
        if orientation in _ORIENT:
            picture = picture.transpose(_ORIENT[orientation])
        picture = picture.convert("RGBA" if "A" in picture.mode else "RGB")
        if side and max(picture.size) > side:
            picture.thumbnail((side, side), Image.Resampling.BOX)
        return picture, picture.width / width


def _trimmed_box(picture: Image.Image, corner: Trim, tolerance: int) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels farther than `tolerance` (RGB distance) from the corner's colour."""
    x, y = (0, 0) if corner is Trim.TOP_LEFT else (picture.width - 1, picture.height - 1)
    rgb = picture.convert("RGB")
    difference = ImageChops.difference(rgb, Image.new("RGB", rgb.size, rgb.getpixel((x, y))))
    r, g, b = (band.convert("F") for band in difference.split())
    mask = ImageMath.lambda_eval(lambda a: (a["r"] * a["r"] + a["g"] * a["g"] + a["b"] * a["b"])
                                 > tolerance * tolerance, r=r, g=g, b=b).convert("L")
    return mask.getbbox()


def _smart_focus(data: bytes, spec: ResizeSpec, region: tuple[int, int, int, int],
                 limits: Limits) -> tuple[float, float]:
    """Content-aware crop: the centre of the crop window (of the output's aspect) holding the most edge energy.

    Edges (FIND_EDGES on luminance, squared) stand in for saliency: faces, text and subjects are detailed, skies,
    walls and backgrounds are not. The window slides along the one axis the cover crop cuts.
    """
    picture, scale = _analysis(data, limits, SMART_ANALYSIS_SIDE)
    box = tuple(round(v * scale) for v in region)
    grey = picture.crop(box).convert("L")
    energy = grey.filter(ImageFilter.FIND_EDGES).point(lambda v: min(255, v * v // 16))
    width, height = grey.size
    target = spec.width / spec.height  # type: ignore[operator]
    centre = [(region[0] + region[2]) / 2, (region[1] + region[3]) / 2]
    if width / height > target:  # too wide: choose the columns
        window = max(1, round(height * target))
        profile = list(energy.resize((width, 1), Image.Resampling.BOX).tobytes())
        centre[0] = region[0] + (_best_window(profile, window) + window / 2) / scale
    else:
        window = max(1, round(width / target))
        profile = list(energy.resize((1, height), Image.Resampling.BOX).tobytes())
        centre[1] = region[1] + (_best_window(profile, window) + window / 2) / scale
    return centre[0], centre[1]


def _best_window(profile: list[int], window: int) -> int:
    """The start of the `window`-long run of `profile` with the largest sum (ties: the one nearest the middle)."""
    if window >= len(profile):
        return 0
    sums = [sum(profile[:window])]
    for i in range(window, len(profile)):
        sums.append(sums[-1] + profile[i] - profile[i - window])
    middle = (len(profile) - window) / 2
    return max(range(len(sums)), key=lambda i: (sums[i], -abs(i - middle)))


def _effects(picture: Image.Image, spec: ResizeSpec) -> Image.Image:
    """Thumbor's pixel filters, on the resized sRGB picture: grayscale, blur, sharpen."""
    if spec.grayscale and picture.mode not in ("L", "LA"):
        picture = picture.convert("LA" if "A" in picture.mode else "L")
    if spec.blur:
        picture = picture.filter(ImageFilter.GaussianBlur(spec.blur))
    if spec.sharpen:
        amount, radius, luminance_only = spec.sharpen
        sharpen = ImageFilter.UnsharpMask(radius=radius, percent=round(amount * 100), threshold=0)
        if luminance_only and picture.mode in ("RGB", "RGBA"):
            alpha = picture.getchannel("A") if picture.mode == "RGBA" else None
            y, cb, cr = picture.convert("YCbCr").split()
            picture = Image.merge("YCbCr", (y.filter(sharpen), cb, cr)).convert("RGB")
            if alpha is not None:
                picture.putalpha(alpha)
        else:
            picture = picture.filter(sharpen)
    return picture


def _turned(picture: Image.Image, spec: ResizeSpec) -> Image.Image:
    """Flips (thumbor's negative sizes), then rotation, on the finished picture."""
    if spec.flip_h:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if spec.flip_v:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    if spec.rotate % 360 in turns:
        picture = picture.transpose(turns[spec.rotate % 360])
    return picture


MIN_QUALITY = 10  # max_bytes lowers the quality no further than this


def _encode_within(picture: Image.Image, fmt: Format, spec: ResizeSpec, exif: bytes | None) -> bytes:
    """Encode at the spec's quality; with max_bytes, the highest quality (binary search) whose output fits, down
    to MIN_QUALITY (lossless formats are encoded once: their size does not depend on a quality)."""
    quality = spec.quality_for(fmt)
    encoded = encode(picture, fmt, quality, exif)
    if not spec.max_bytes or len(encoded) <= spec.max_bytes or quality is None:
        return encoded
    low, high, best = MIN_QUALITY, quality - 1, None
    while low <= high:
        middle = (low + high) // 2
        attempt = encode(picture.copy(), fmt, middle, exif)
        if len(attempt) <= spec.max_bytes:
            best, low = attempt, middle + 1
        else:
            high = middle - 1
    return best if best is not None else encode(picture.copy(), fmt, MIN_QUALITY, exif)


def _px(value: float) -> int:
    return max(1, round(value))


def _capped(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Scale a size down uniformly so that neither side passes max_side."""
    shrink = min(1.0, max_side / max(size))
    return (_px(size[0] * shrink), _px(size[1] * shrink)) if shrink < 1 else size


def _decode(image: Image.Image, plan: _Plan, orientation: int) -> tuple[float, float, float, float]:
    """Decode the pixels, JPEGs at the smallest DCT scale that keeps DRAFT_HEADROOM over the target.

    Returns the plan's box (upright coordinates of the original) in the decoded picture as stored.
    """
    width, height = image.size
    bw, bh = plan.box[2] - plan.box[0], plan.box[3] - plan.box[1]
    need = (plan.size[0] / bw * DRAFT_HEADROOM, plan.size[1] / bh * DRAFT_HEADROOM)  # wanted decoded scale, per axis
    scale = min(1.0, max(need))
    valid = (0.0, 0.0, float(width), float(height))
    with _decoding("the original is damaged or truncated"):
        if image.format == "JPEG" and scale < 1:
            drafted = image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            if drafted is not None:
                valid = drafted[1]
        image.load()
    vx0, vy0, vx1, vy1 = valid
    kx, ky = (vx1 - vx0) / width, (vy1 - vy0) / height
    upright = _upright_size((width, height), orientation)
    x0, y0, x1, y1 = _transposed_box(plan.box, upright, _UNDO.get(orientation, orientation))
    return (vx0 + x0 * kx, vy0 + y0 * ky, vx0 + x1 * kx, vy0 + y1 * ky)


def _transposed_box(
    box: tuple[float, float, float, float], size: tuple[int, int], orientation: int
) -> tuple[float, float, float, float]:
    """Where `box` of an image of `size` lands once the image is transposed upright."""
    x0, y0, x1, y1 = box
    w, h = size
    return {
        2: (w - x1, y0, w - x0, y1),
        3: (w - x1, h - y1, w - x0, h - y0),
        4: (x0, h - y1, x1, h - y0),
        5: (y0, x0, y1, x1),
        6: (h - y1, x0, h - y0, x1),
        7: (h - y1, w - x1, h - y0, w - x0),
        8: (y0, w - x1, y1, w - x0),
    }.get(orientation, box)


def _normalize_mode(image: Image.Image) -> Image.Image:
    """Bring any decoded mode to one LANCZOS resizes well: L, LA, RGB, RGBA or CMYK (converted after resizing)."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = image.convert("I")
        grey = wide.point(lambda v: v * (1 / 257)).convert("L")  # keep the 16-bit tonal range
        key = image.info.get("transparency")
        if isinstance(key, int):  # tRNS: one grey value is transparent
            alpha = ImageMath.lambda_eval(lambda a: abs(a["x"] - key) * 255, x=wide).convert("L")
            grey = Image.merge("LA", (grey, alpha))
        return grey
    if mode in ("P", "PA", "1"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else ("L" if mode == "1" else "RGB"))
    return image.convert("RGBA" if "A" in mode else "RGB")


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert an embedded colour profile (Adobe RGB, P3, CMYK...) to sRGB; untagged CMYK by Pillow's formula."""
    if icc and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if image.mode == "CMYK" or "srgb" not in ImageCms.getProfileDescription(profile).lower():
                out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
                converted = ImageCms.profileToProfile(
                    image, profile, _srgb(), outputMode=out_mode,
                    renderingIntent=ImageCms.Intent.PERCEPTUAL,
                )
                if converted is not None:
                    return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile is ignored, as browsers do
    return image.convert("RGB") if image.mode == "CMYK" else image


def _output_format(asked: Format, source: Format) -> Format:
    return source if asked is Format.ORIGINAL else asked


def _for_output(image: Image.Image, fmt: Format, spec: ResizeSpec, canvas: tuple[int, int] | None) -> Image.Image:
    """Pad to the canvas, then flatten transparency onto bg (JPEG) or keep it (PNG, WebP, AVIF, GIF)."""
    background = tuple(int(spec.background[i : i + 2], 16) for i in (0, 2, 4))
    if canvas is not None and canvas != image.size:
        mode = image.mode if image.mode in ("RGB", "RGBA") else ("RGBA" if "A" in image.mode else "RGB")
        padded = Image.new(mode, canvas, background + ((255,) if mode == "RGBA" else ()))
        padded.paste(image.convert(mode), ((canvas[0] - image.width) // 2, (canvas[1] - image.height) // 2))
        image = padded
    has_alpha = image.mode in ("RGBA", "LA")
    if spec.flatten and has_alpha and fmt is not Format.JPEG:
        flat = Image.new("RGB", image.size, background)
        flat.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        image, has_alpha = flat, False
    if fmt is Format.JPEG:
        if has_alpha:
            flat = Image.new("RGB", image.size, background)
            flat.paste(image.convert("RGBA"), mask=image.getchannel("A"))
            return flat if image.mode == "RGBA" else flat.convert("L")
        return image
    if fmt is Format.GIF and has_alpha:
        return _binary_alpha(image.convert("RGBA"), background)
    if fmt in (Format.WEBP, Format.AVIF) and image.mode in ("L", "LA"):
        return image.convert("RGBA" if has_alpha else "RGB")
    return image


def _binary_alpha(image: Image.Image, background: tuple[int, ...]) -> Image.Image:
    """GIF transparency is on or off: blend partial alpha onto bg, then cut at half."""
    alpha = image.getchannel("A")
    flat = Image.new("RGB", image.size, background)
    flat.paste(image, mask=alpha)
    flat.putalpha(alpha.point(lambda a: 255 if a >= 128 else 0))
    return flat


def _copyright_exif(image: Image.Image) -> bytes | None:
    """An EXIF block holding only the original's Copyright, if it has one."""
    try:
        notice = image.getexif().get(_EXIF_COPYRIGHT)
    except _DECODE_ERRORS:
        return None
    if not isinstance(notice, str) or not notice.strip():
        return None
    exif = Image.Exif()
    exif[_EXIF_COPYRIGHT] = notice.strip()[:1000]
    return exif.tobytes()


def encode(image: Image.Image, fmt: Format, quality: int | None, exif: bytes | None = None) -> bytes:
    """Save a fresh image: no EXIF, XMP, comments, text chunks or colour profile from the original.

    `exif`, when given (only the copyright notice), is written by the formats that carry EXIF; GIF has none.
    """
    image.info = {}
    extra = {"exif": exif} if exif else {}
    out = io.BytesIO()
    if fmt is Format.JPEG:
        image.save(out, "JPEG", quality=quality, **JPEG_OPTIONS, **extra)
    elif fmt is Format.PNG:
        image.save(out, "PNG", **PNG_OPTIONS, **extra)
    elif fmt is Format.WEBP:
        image.save(out, "WEBP", quality=quality, **WEBP_OPTIONS, **extra)
    elif fmt is Format.AVIF:
        image.save(out, "AVIF", quality=quality, **AVIF_OPTIONS, **extra)
    else:
        image.save(out, "GIF", optimize=False)
    return out.getvalue()
