"""Opening an original: the allow-list of decoders, header limits, integrity, frames, orientation and profile."""

from __future__ import annotations

import importlib
import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from PIL import Image, UnidentifiedImageError

from .. import formats
from ..errors import TooLarge, Undecodable, UnsupportedType
from ..formats import Format, ImageFormat
from .limits import Limits

# Everything Pillow raises on malformed data. Anything else escaping a decode is a bug and must surface.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
                 ZeroDivisionError, MemoryError, RuntimeError)  # RuntimeError: pillow-jxl-plugin's libjxl errors
_EXIF_ORIENTATION = 0x0112
_EXIF_COPYRIGHT = 0x8298
# How a codec that lives in its own package registers with Pillow (the registry names the package); the others
# register themselves when imported.
_REGISTER = {"pillow_heif": lambda module: module.register_heif_opener(thumbnails=False)}
# How many pages or entries a file declares, for the decoders that have them and no n_frames.
_PAGES = {"ICO": lambda image: len(image.ico.entry)}


@contextmanager
def decoding(what: str) -> Iterator[None]:
    """Map what Pillow raises on bad data: a bomb (too many pixels) is 413, anything malformed is 422; the public
    message says what failed, never the library's exception."""
    try:
        yield
    except UnidentifiedImageError:
        raise  # no allowed decoder recognised it: the caller tells 415 from 422
    except Image.DecompressionBombError:
        raise TooLarge("the original declares too many pixels") from None
    except DECODE_ERRORS:
        raise Undecodable(what) from None


@dataclass
class Source:
    """An opened original (pixels not decoded yet) and what its header says."""

    image: Image.Image
    format: ImageFormat
    frames: int
    orientation: int  # EXIF orientation, 1 when absent or invalid
    icc: bytes | None
    size: tuple[int, int]  # as stored, from the header (a JPEG draft changes image.size)

    @property
    def upright(self) -> tuple[int, int]:
        """Width and height as displayed (EXIF orientation applied)."""
        w, h = self.size
        return (h, w) if self.orientation in (5, 6, 7, 8) else (w, h)

    @property
    def keep(self) -> Format:
        """What keeping this original's format writes."""
        return self.format.keep_as or Format.PNG

    def copyright_exif(self) -> bytes | None:
        """An EXIF block holding only the original's Copyright, if it has one."""
        try:
            notice = self.image.getexif().get(_EXIF_COPYRIGHT)
        except DECODE_ERRORS:
            return None
        if not isinstance(notice, str) or not notice.strip():
            return None
        exif = Image.Exif()
        exif[_EXIF_COPYRIGHT] = notice.strip()[:1000]
        return exif.tobytes()


@contextmanager
def open_source(data: bytes, limits: Limits) -> Iterator[Source]:
    """Image.open restricted to the allow-list, every header-level limit checked and the file's own checksums
    verified before any pixel is decoded; closed on exit."""
    if not data:
        raise Undecodable("the original is empty")
    decoders = formats.DECODERS
    sniffed = formats.sniff(data[:formats.SNIFF_BYTES])
    if sniffed is not None and sniffed.decoder and sniffed.decoder_module and not sniffed.vector:
        register(sniffed.decoder_module)
        decoders += (sniffed.decoder,)
    try:
        with decoding("the original could not be read as an image"), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides, just below
            image = Image.open(io.BytesIO(data), formats=decoders)
    except UnidentifiedImageError:
        raise _unidentified(sniffed) from None
    try:
        _check_header(image, limits)
        fmt = formats.BY_DECODER[image.format]
        source = Source(image, fmt, _frame_count(image, fmt, limits), 1 if fmt.orients else _orientation(image),
                        image.info.get("icc_profile"), image.size)
        if source.format.verifies:
            _verify(data, source.format)
        yield source
    finally:
        image.close()


@cache
def register(module_name: str) -> None:
    """Load a codec that lives in its own package (imported on first use only)."""
    module = importlib.import_module(module_name)
    if module_name in _REGISTER:
        _REGISTER[module_name](module)


def _unidentified(sniffed: ImageFormat | None) -> UnsupportedType | Undecodable:
    """Why Pillow's allow-listed decoders refused the bytes: a damaged allowed image, or another type."""
    if sniffed is not None and sniffed.decoder:
        return Undecodable("the original is a damaged or truncated image")
    supported = formats.SUPPORTED_NAMES
    if sniffed is not None:
        return UnsupportedType(f"{sniffed.label} originals are not supported; use {supported}")
    return UnsupportedType(f"the original is not a {supported} image")


def _check_header(image: Image.Image, limits: Limits) -> None:
    pixels = image.width * image.height
    if pixels > limits.max_pixels:
        raise TooLarge(f"the original is {image.width}x{image.height} = {pixels / 1e6:.1f} MP; "
                       f"the limit (MAX_SOURCE_PIXELS) is {limits.max_pixels / 1e6:.1f} MP")
    if image.width < 1 or image.height < 1:
        raise Undecodable("the original has no pixels")


def _frame_count(image: Image.Image, fmt: ImageFormat, limits: Limits) -> int:
    """Frames (or pages, or entries) in the original, counted from its headers (none is decoded), within the
    limits: the format's own (TIFF pages, ICO entries), MAX_FRAMES, MAX_ANIMATION_PIXELS."""
    with decoding("the file's frames or pages could not be read"):
        frames = _PAGES[image.format](image) if image.format in _PAGES else getattr(image, "n_frames", 1)
    most = min(limits.max_frames, fmt.max_pages or limits.max_frames)
    if frames > most:
        raise TooLarge(f"the original has {frames} frames or pages; the limit (MAX_FRAMES) is {most}")
    total = frames * image.width * image.height
    if total > limits.max_animation_pixels:
        raise TooLarge(f"the animation has {total / 1e6:.1f} MP in all frames; the limit (MAX_ANIMATION_PIXELS) "
                       f"is {limits.max_animation_pixels / 1e6:.1f} MP")
    return frames


def _verify(data: bytes, fmt: ImageFormat) -> None:
    """The file's own checksums (PNG's chunk CRCs), without decoding the pixels: Pillow's decoder skips them, so a
    damaged file would otherwise be 422 as it is and 200 resized."""
    with decoding("the original is damaged or truncated"), Image.open(io.BytesIO(data), formats=[fmt.decoder]) as file:
        file.verify()


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 when absent, invalid or unreadable."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1
