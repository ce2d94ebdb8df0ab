"""Encoding a fresh image with the registry's options; the bounded max_bytes search; animations."""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import pairwise

from PIL import Image, ImageChops, ImageStat

from ..deadline import Deadline
from ..formats import Format
from .source import register

MIN_QUALITY = 10  # max_bytes lowers the quality no further than this
MAX_BYTES_ATTEMPTS = 4  # encodes a max_bytes search may add to the first one (the cost check counts them)


def encode(image: Image.Image, fmt: Format, quality: int | None, exif: bytes | None = None) -> bytes:
    """Save a fresh image: no EXIF, XMP, comments, text chunks or colour profile from the original.

    `exif`, when given (only the copyright notice), is written by the formats that carry EXIF; GIF has none."""
    image.info = {}
    info = fmt.info
    if info.decoder_module:
        register(info.decoder_module)  # a codec in its own package (JPEG XL)
    options = dict(info.save_options)
    if quality is not None and info.quality is not None:
        options["quality"] = min(quality, info.quality_max)
    if exif and info.exif:
        options["exif"] = exif
    out = io.BytesIO()
    image.save(out, info.name.upper(), **options)
    return out.getvalue()


def encode_within(picture: Image.Image, fmt: Format, quality: int | None, max_bytes: int | None,
                  exif: bytes | None, deadline: Deadline) -> bytes:
    """Encode at `quality`; with max_bytes, the highest quality whose output fits, found by a binary search of at
    most MAX_BYTES_ATTEMPTS more encodes (each started only with time left for it), down to MIN_QUALITY. Lossless
    formats are encoded once: their size does not depend on a quality."""
    encoded = encode(picture, fmt, quality, exif)
    if not max_bytes or len(encoded) <= max_bytes or quality is None:
        return encoded
    low, high, best, smallest = MIN_QUALITY, quality - 1, None, encoded
    for _ in range(MAX_BYTES_ATTEMPTS):
        if low > high:
            break
        deadline.check("search for a quality under max_bytes")
        middle = (low + high) // 2
        attempt = encode(picture.copy(), fmt, middle, exif)
        if len(attempt) <= max_bytes:
            best, low = attempt, middle + 1
        else:
            smallest, high = attempt, middle - 1
    return best if best is not None else smallest  # nothing fits: the lowest quality tried


def encode_animation(frames: Sequence[Image.Image], durations: Sequence[int], loop: int | None, fmt: Format,
                     quality: int | None, dither: Image.Dither | None = None, shared_palette: bool = False) -> bytes:
    """Every frame with its duration; the loop count kept (a GIF without one plays once).

    For a palette format (GIF), `dither` (Floyd-Steinberg or none) has each frame quantised here: its own palette
    of up to 256 colours (255 and a transparent index when it has transparency), or one palette made from every
    frame with `shared_palette`, then mapped onto it with that dithering. Without it, Pillow converts as it
    always did (an animated original's frames). Full-colour formats (WebP) ignore both."""
    differenced = False
    if dither is not None and fmt.info.binary_alpha and not fmt.info.alpha:
        if _alike(frames):  # a burst: one palette, and what did not change is left showing through
            frames, differenced = _differenced(frames, dither), True
        else:
            palette = _shared_palette(frames) if shared_palette else None
            frames = [_paletted(frame, dither, palette) for frame in frames]
    first, rest = frames[0], list(frames[1:])
    if dither is None:
        first.info = {}
    out = io.BytesIO()
    info = fmt.info
    options = {**info.save_options, **info.animation_options, **({"disposal": 1} if differenced else {})}
    if quality is not None and info.quality is not None:
        options["quality"] = quality
    if loop is None:  # a GIF without a loop extension plays once: say so the way the output format does
        loop = info.plays_once
    if loop is not None:
        options["loop"] = loop
    first.save(out, fmt.info.name.upper(), save_all=True, append_images=rest, duration=list(durations), **options)
    return out.getvalue()


ALIKE = 16.0  # mean difference (0-255) between consecutive frames, seen at 64 px, under which frames are a burst


def _alike(frames: Sequence[Image.Image]) -> bool:
    """Whether consecutive frames show mostly the same picture (a burst, a screen recording), all opaque: then one
    shared palette and differencing make the GIF about half the size (measured: 88 KB against 173 KB for three
    frames of one photo with two small changes); pictures that differ (a slideshow) keep a palette each, 1.5-1.9 dB
    better (make bench, "animation maker")."""
    if len(frames) < 2 or any("A" in frame.mode for frame in frames):
        return False
    small = [frame.convert("RGB").resize((64, 64), Image.Resampling.BOX) for frame in frames]
    for before, after in pairwise(small):
        if sum(ImageStat.Stat(ImageChops.difference(before, after)).mean) / 3 > ALIKE:
            return False
    return True


def _differenced(frames: Sequence[Image.Image], dither: Image.Dither) -> list[Image.Image]:
    """Opaque frames on one shared palette of 255 colours; after the first, every pixel that shows the same colour as
    the frame before is the transparent index 255 (with disposal 1 the frame before stays in place), so unchanged
    areas cost one repeated index. Each frame decodes to exactly its paletted picture."""
    palette = _shared_palette(frames, colours=255)
    out: list[Image.Image] = []
    shown_before: Image.Image | None = None
    for frame in frames:
        paletted = frame.convert("RGB").quantize(palette=palette, dither=dither)
        shown = paletted.convert("RGB")
        if shown_before is not None:
            r, g, b = ImageChops.difference(shown, shown_before).split()
            same = ImageChops.lighter(ImageChops.lighter(r, g), b).point(lambda v: 255 if v == 0 else 0)
            colours = (paletted.getpalette() or [])[: 3 * 255]
            paletted.putpalette([*colours, *[0] * (3 * 255 - len(colours)), 0, 0, 0])
            paletted.paste(255, mask=same)
            paletted.info["transparency"] = 255
        shown_before = shown
        out.append(paletted)
    return out


def _shared_palette(frames: Sequence[Image.Image], colours: int | None = None) -> Image.Image:
    """One palette for every frame: quantised from a strip of every frame, each reduced to at most 256 px wide."""
    thumbs = [frame.convert("RGB").reduce(max(1, frame.width // 256)) for frame in frames]
    strip = Image.new("RGB", (max(t.width for t in thumbs), sum(t.height for t in thumbs)))
    top = 0
    for thumb in thumbs:
        strip.paste(thumb, (0, top))
        top += thumb.height
    if colours is None:
        colours = 255 if any(frame.mode == "RGBA" for frame in frames) else 256
    return strip.quantize(colours, Image.Quantize.MEDIANCUT)


def _paletted(frame: Image.Image, dither: Image.Dither, palette: Image.Image | None) -> Image.Image:
    """A frame in mode P: quantised (its own palette unless one is given), remapped with `dither`; with
    transparency (alpha under half, as GIF's binary alpha cuts), at most 255 colours and one more index, after
    them, for the clear pixels."""
    alpha = frame.getchannel("A") if frame.mode == "RGBA" else None
    rgb = frame.convert("RGB")
    if palette is None:
        palette = rgb.quantize(255 if alpha is not None else 256, Image.Quantize.MEDIANCUT)
    out = rgb.quantize(palette=palette, dither=dither)
    clear = alpha.point(lambda a: 255 if a < 128 else 0) if alpha is not None else None
    if clear is not None and clear.getbbox() is not None:
        colours = (out.getpalette() or [])[: 3 * 255]
        index = len(colours) // 3
        out.putpalette([*colours, 0, 0, 0])
        out.paste(index, mask=clear)
        out.info["transparency"] = index
    return out
