"""Hostile originals built byte by byte: decompression bombs, lying headers, oversized chunks, other formats."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping

from PIL import Image


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, *chunks: bytes, idat: bytes | None = None, colour_type: int = 0) -> bytes:
    """A PNG whose header says width x height, followed by the given chunks and an IDAT: a whole grey image
    when it is small, a few bytes (as a bomb's header would have) when it is not."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    whole = (b"\0" + b"\x80" * width) * height if width * height <= 1_000_000 else b"\0" * 64
    data = idat if idat is not None else zlib.compress(whole)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + b"".join(chunks) + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def png_inflating_to(width: int, height: int) -> bytes:
    """A real bomb: a valid PNG whose few hundred KB of IDAT inflate to width * height grey pixels."""
    stream = zlib.compressobj(9)
    row = b"\0" + b"\0" * width
    body = b"".join(stream.compress(row) for _ in range(height)) + stream.flush()
    return png(width, height, idat=body)


def ztxt_bomb() -> bytes:
    """A small PNG with a compressed text chunk inflating to 50 MB."""
    text = b"Comment\0\0" + zlib.compress(b"A" * 50_000_000, 9)
    return png(16, 16, png_chunk(b"zTXt", text))


def iccp_bomb() -> bytes:
    """A small PNG whose compressed ICC profile inflates to 50 MB."""
    return png(16, 16, png_chunk(b"iCCP", b"bomb\0\0" + zlib.compress(b"\0" * 50_000_000, 9)))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of JPEG whose frame header declares width x height."""
    qt = b"\xff\xdb" + struct.pack(">H", 67) + b"\0" + bytes(range(1, 65))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    dht = b"\xff\xc4" + struct.pack(">H", 31) + b"\x00" + bytes([0, 1, 5, 1, 1, 1, 1, 1, 1] + [0] * 7) + bytes(
        range(12))
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + qt + sof + dht + sos + b"\x00" * 64 + b"\xff\xd9"


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose screen and only frame declare width x height, with a few bytes of LZW data."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return header + frame + b"\x3b"


def gif_with_frames(count: int, size: int = 8) -> bytes:
    """A real animated GIF of `count` frames, written byte by byte (Pillow takes seconds to save thousands): on a
    size x size screen with a four-colour palette, frame i paints one pixel, its place and colour set by i."""
    screen = b"GIF89a" + struct.pack("<HHBBB", size, size, 0x81, 0, 0) + bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0,
                                                                                  0, 255])
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frames = []
    for i in range(count):
        # LZW with 2-bit pixels (3-bit codes): clear (4), the pixel's colour, end (5), packed from the low bit
        codes = 4 | (i % 4) << 3 | 5 << 6
        frames.append(b"\x21\xf9\x04\x04\x02\x00\x00\x00"  # 20 ms, kept under the next frame
                      + b"\x2c" + struct.pack("<HHHHB", i % size, (i // size) % size, 1, 1, 0)
                      + b"\x02\x02" + codes.to_bytes(2, "little") + b"\x00")
    return screen + loop + b"".join(frames) + b"\x3b"


def webp_declaring(width: int, height: int) -> bytes:
    """A WebP (VP8X) whose canvas declares width x height."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (
        height - 1).to_bytes(3, "little")
    vp8 = b"VP8 " + struct.pack("<I", 10) + b"\x00" * 10
    body = b"WEBP" + vp8x + vp8
    return b"RIFF" + struct.pack("<I", len(body)) + body


def saved(format_: str, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 128).save(out, format_)
    return out.getvalue()


EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
       b"%%EndComments\nnewpath 0 0 moveto 100 100 lineto stroke showpage\n%%EOF\n")
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="900" height="900"><rect/></svg>'
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"

# name -> (a maker of its bytes, expected status): made when first asked for, not at import (a 5000-frame GIF
# and a 50 MP bomb take seconds, and every test worker imports this module)
_MAKERS: dict[str, tuple[Callable[[], bytes], int]] = {
    "png declaring 50000x50000": (lambda: png(50_000, 50_000), 413),
    "png inflating to 50 MP": (lambda: png_inflating_to(10_000, 5_000), 413),
    "jpeg declaring 13000x13000": (lambda: jpeg_declaring(13_000, 13_000), 413),
    "gif declaring 65535x65535": (lambda: gif_declaring(65_535, 65_535), 413),
    "webp declaring 16383x16383": (lambda: webp_declaring(16_383, 16_383), 413),
    "gif with 5000 frames": (lambda: gif_with_frames(5_000), 413),
    "png with a 50 MB zTXt": (ztxt_bomb, 422),
    "png with a 50 MB iCCP": (iccp_bomb, 422),
    "png with a 5 MB eXIf (ignored)": (lambda:
        png(16, 16, png_chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08" + b"\xff" * 5_000_000)), 200),
    "jpeg with EXIF claiming 65535 entries (ignored)": (lambda:
        b"\xff\xd8\xff\xe1" + struct.pack(">H", 2 + 6 + 10) + b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff"
        + jpeg_declaring(64, 64)[2:], 200),
    "png 100000x1": (lambda: png(100_000, 1, idat=zlib.compress(b"\0" + b"\x80" * 100_000)), 200),
    "empty": (lambda: b"", 422),
    "one byte": (lambda: b"\xff", 415),
    "jpeg magic only": (lambda: b"\xff\xd8\xff", 422),
    "png signature only": (lambda: b"\x89PNG\r\n\x1a\n", 422),
    "truncated header png": (lambda: png(64, 64)[:30], 422),
    "svg named .png": (lambda: SVG, 200),  # drawn by resvg (issue 15): its bytes decide, never its name
    "html named .png": (lambda: HTML, 415),
    "text": (lambda: b"just some text\n" * 10, 415),
    "eps": (lambda: EPS, 415),
    "pdf": (lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 415),
    "tiff": (lambda: saved("TIFF"), 200),  # read since issue 15
    "bmp": (lambda: saved("BMP"), 200),
    "ico": (lambda: saved("ICO", (16, 16)), 200),
    "openexr header": (lambda: b"\x76\x2f\x31\x01" + b"\0" * 40, 415),
    "jpeg 2000 header": (lambda: b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\0" * 40, 415),
    "psd header": (lambda: b"8BPS\x00\x01" + b"\0" * 40, 415),
}


@functools.cache
def _made(name: str) -> tuple[bytes, int]:
    make, status = _MAKERS[name]
    return make(), status


class _Cases(Mapping[str, tuple[bytes, int]]):
    """name -> (bytes, expected status), each original made once, on first use."""

    def __getitem__(self, name: str) -> tuple[bytes, int]:
        return _made(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_MAKERS)

    def __len__(self) -> int:
        return len(_MAKERS)


CASES: Mapping[str, tuple[bytes, int]] = _Cases()
