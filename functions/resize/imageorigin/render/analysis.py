"""Looking at the pixels before planning: trim's borders and the smart crop's centre, on the picture already
decoded, reduced for the purpose (never a second decode, never a full-resolution float copy)."""

from __future__ import annotations

from PIL import Image, ImageChops, ImageFilter, ImageMath

from ..model import Box, ResizeSpec, Trim
from .geometry import FloatBox
from .pixels import ORIENT

TRIM_ANALYSIS_SIDE = 1024  # trim looks at the original at most this large (a border is found to within a pixel of it)
SMART_ANALYSIS_SIDE = 256  # the smart crop looks at the original at most this large


def upright_preview(picture: Image.Image, valid: FloatBox, orientation: int, side: int) -> Image.Image:
    """The decoded picture's original area, upright, in RGB(A), reduced by whole factors to at most `side` px."""
    factor = max(1, -(-max(picture.size) // side))
    box = tuple(round(v) for v in valid)
    preview = picture.reduce(factor, box=box) if factor > 1 else picture.crop(box)
    if orientation in ORIENT:
        preview = preview.transpose(ORIENT[orientation])
    return preview.convert("RGBA" if "A" in preview.mode else "RGB")


def trimmed(preview: Image.Image, upright: tuple[int, int], region: Box | None, corner: Trim,
            tolerance: int) -> Box | None:
    """The part of `region` (upright pixels) left once borders of the corner's colour are trimmed."""
    sx, sy = preview.width / upright[0], preview.height / upright[1]
    x0, y0, x1, y1 = region or (0, 0, *upright)
    area = preview.crop((int(x0 * sx), int(y0 * sy), max(int(x0 * sx) + 1, round(x1 * sx)),
                         max(int(y0 * sy) + 1, round(y1 * sy))))
    found = _content_box(area, corner, tolerance)
    if found is None:
        return region
    ox, oy = int(x0 * sx), int(y0 * sy)
    left, top = (ox + found[0]) / sx, (oy + found[1]) / sy
    right, bottom = (ox + found[2]) / sx, (oy + found[3]) / sy
    return (max(x0, int(left)), max(y0, int(top)), min(x1, round(right)), min(y1, round(bottom)))


def _content_box(picture: Image.Image, corner: Trim, tolerance: int) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels farther than `tolerance` (RGB distance) from the corner's colour."""
    x, y = (0, 0) if corner is Trim.TOP_LEFT else (picture.width - 1, picture.height - 1)
    rgb = picture.convert("RGB")
    difference = ImageChops.difference(rgb, Image.new("RGB", rgb.size, rgb.getpixel((x, y))))
    r, g, b = (band.convert("F") for band in difference.split())
    mask = ImageMath.lambda_eval(lambda a: (a["r"] * a["r"] + a["g"] * a["g"] + a["b"] * a["b"])
                                 > tolerance * tolerance, r=r, g=g, b=b).convert("L")
    return mask.getbbox()


def smart_focus(preview: Image.Image, upright: tuple[int, int], spec: ResizeSpec,
                region: Box) -> tuple[float, float]:
    """Content-aware crop: the centre of the crop window (of the output's aspect) holding the most edge energy.

    Edges (FIND_EDGES on luminance, squared) stand in for saliency: faces, text and subjects are detailed, skies,
    walls and backgrounds are not. The window slides along the one axis the cover crop cuts.
    """
    scale = preview.width / upright[0]
    box = tuple(round(v * scale) for v in region)
    grey = preview.crop(box).convert("L")
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
