"""Pixels: decoding at the right scale, modes LANCZOS handles, the scale itself (SIMD where it can), the EXIF turn
and the conversion to sRGB."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from functools import lru_cache

from PIL import Image, ImageCms, ImageMath

from .geometry import FloatBox, Plan, to_stored
from .source import Source, decoding

# Decode JPEGs at a DCT scale that leaves at least this many times the target size, then LANCZOS the rest.
# Drafting straight to the target is fast but soft (about 40 dB against a full-resolution reference). Measured on
# the 12 MP photo: 1.5x keeps 48-53 dB from 400 to 1200 px and lets a 1200 px target decode at 1/2 scale.
DRAFT_HEADROOM = 1.5
# Resize's own integer pre-reduction (a box filter, for what draft cannot shrink) stops this many times above the
# target, as libvips leaves LANCZOS a factor of 2. Measured on the 2048x1536 RGBA PNG to 400 px: 2.0 56 ms at 57 dB.
REDUCING_GAP = 2.0
# The modes resize hands to fast_image_resize (RGBA as premultiplied RGBa); of what normalize_mode leaves, LA is
# the one left to Pillow.
_FAST_MODES = ("L", "RGB", "RGBA", "CMYK")

# EXIF orientation -> the transposition that makes the picture upright. Values outside 2..8 mean upright.
ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def draft_scale(source: Source, plan: Plan) -> float:
    """The decoded scale (1 = whole) a plan needs: DRAFT_HEADROOM over its target, per axis."""
    bw, bh = plan.box[2] - plan.box[0], plan.box[3] - plan.box[1]
    return min(1.0, max(plan.size[0] / bw * DRAFT_HEADROOM, plan.size[1] / bh * DRAFT_HEADROOM))


def decoded_pixels(source: Source, scale: float) -> int:
    """How many pixels `decode` will produce at `scale` (only JPEG decodes at a reduced scale)."""
    pixels = source.size[0] * source.size[1]
    return round(pixels * scale * scale) if source.format.drafts and scale < 1 else pixels


def decode(source: Source, scale: float) -> tuple[Image.Image, FloatBox]:
    """Decode the first frame, JPEGs at the smallest DCT scale at or above `scale`; the picture in a mode LANCZOS
    handles, and where the whole original lies in it (a draft may decode a fraction of a pixel less)."""
    image = source.image
    width, height = image.size
    valid = (0.0, 0.0, float(width), float(height))
    with decoding("the original is damaged or truncated"):
        if source.format.drafts and scale < 1:
            drafted = image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            if drafted is not None:
                valid = drafted[1]
        image.load()
    return normalize_mode(image), valid


def box_in_decoded(box: FloatBox, source: Source, valid: FloatBox) -> FloatBox:
    """An upright box of the original, in the decoded picture's stored pixels."""
    width, height = source.size
    vx0, vy0, vx1, vy1 = valid
    kx, ky = (vx1 - vx0) / width, (vy1 - vy0) / height
    x0, y0, x1, y1 = to_stored(box, source.upright, source.orientation)
    return (vx0 + x0 * kx, vy0 + y0 * ky, vx0 + x1 * kx, vy0 + y1 * ky)


def scale_upright(picture: Image.Image, size: tuple[int, int], box: FloatBox, orientation: int) -> Image.Image:
    """Resize the stored picture's `box` to the upright `size`, then turn it upright: the turn moves the output's
    pixels, not the decoded original's. Always a new image (never the decoded frame itself)."""
    if orientation in ORIENT:
        stored = (size[1], size[0]) if orientation >= 5 else size
        return resize(picture, stored, box).transpose(ORIENT[orientation])
    out = resize(picture, size, box)
    return out.copy() if out is picture else out


def resize(picture: Image.Image, size: tuple[int, int], box: FloatBox) -> Image.Image:
    """LANCZOS-resize the (fractional) `box` of `picture` to `size`; what is more than REDUCING_GAP times too big is
    box-reduced first, with Pillow's `reducing_gap` arithmetic; alpha premultiplied throughout, as Pillow does.

    The LANCZOS step is fast_image_resize's (cykooz.resizer: SIMD, one thread) where it has a wheel: the same filter
    and the same box as Pillow's, measured at the same PSNR, 5-6x faster. Elsewhere, and for LA, Pillow does it all.
    """
    if picture.size == size and box == (0, 0, *picture.size):
        return picture
    lanczos = fast_lanczos()
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


def _reduce_box(source: tuple[int, int], size: tuple[int, int], box: FloatBox) -> tuple[int, int, int, int]:
    """The whole pixels around `box` that LANCZOS (support 3) reads for `size`: what reduce must keep."""
    support = (3 - 0.5) * (box[2] - box[0]) / size[0], (3 - 0.5) * (box[3] - box[1]) / size[1]
    return (max(0, int(box[0] - support[0])), max(0, int(box[1] - support[1])),
            min(source[0], math.ceil(box[2] + support[0])), min(source[1], math.ceil(box[3] + support[1])))


@lru_cache(maxsize=1)
def fast_lanczos() -> Callable[[Image.Image, tuple[int, int], tuple[float, ...]], Image.Image] | None:
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


def normalize_mode(image: Image.Image) -> Image.Image:
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


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
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
