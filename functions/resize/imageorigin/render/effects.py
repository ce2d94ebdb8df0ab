"""After scaling: thumbor's pixel filters, padding and transparency for the output format, flips and turns."""

from __future__ import annotations

from PIL import Image, ImageFilter

from ..formats import Format
from ..model import ResizeSpec


def filters(picture: Image.Image, spec: ResizeSpec) -> Image.Image:
    """Grayscale, blur, sharpen, on the resized sRGB picture."""
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


def background(spec: ResizeSpec) -> tuple[int, int, int]:
    return tuple(int(spec.background[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def for_output(image: Image.Image, fmt: Format, spec: ResizeSpec, canvas: tuple[int, int] | None) -> Image.Image:
    """Pad to the canvas, then flatten transparency onto bg where the format (or the spec) wants it, as the
    registry says of the format: full alpha kept, binary alpha (GIF) blended then cut, none flattened."""
    bg = background(spec)
    if canvas is not None and canvas != image.size:
        mode = image.mode if image.mode in ("RGB", "RGBA") else ("RGBA" if "A" in image.mode else "RGB")
        padded = Image.new(mode, canvas, bg + ((255,) if mode == "RGBA" else ()))
        padded.paste(image.convert(mode), ((canvas[0] - image.width) // 2, (canvas[1] - image.height) // 2))
        image = padded
    info = fmt.info
    has_alpha = image.mode in ("RGBA", "LA")
    if has_alpha and (spec.flatten or not (info.alpha or info.binary_alpha)):
        flat = Image.new("RGB", image.size, bg)
        flat.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        return flat.convert("L") if image.mode == "LA" and not info.alpha else flat
    if has_alpha and info.binary_alpha:
        return _binary_alpha(image.convert("RGBA"), bg)
    if not info.grey and image.mode in ("L", "LA"):
        return image.convert("RGBA" if has_alpha else "RGB")
    return image


def _binary_alpha(image: Image.Image, bg: tuple[int, int, int]) -> Image.Image:
    """On/off transparency: blend partial alpha onto bg, then cut at half."""
    alpha = image.getchannel("A")
    flat = Image.new("RGB", image.size, bg)
    flat.paste(image, mask=alpha)
    flat.putalpha(alpha.point(lambda a: 255 if a >= 128 else 0))
    return flat


_TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def turned(picture: Image.Image, spec: ResizeSpec) -> Image.Image:
    """Flips (thumbor's negative sizes), then rotation, on the finished picture."""
    if spec.flip_h:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if spec.flip_v:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if spec.rotate in _TURNS:
        picture = picture.transpose(_TURNS[spec.rotate])
    return picture
