"""The cost check: from the header and the plan, the work a render implies, refused before any pixel is decoded."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TooLarge
from ..formats import Format
from .encode import MAX_BYTES_ATTEMPTS
from .limits import Limits

# Single-core milliseconds per megapixel, measured on the bench machine (make bench) and rounded up: decoding and
# scaling per source megapixel read; encoding per output megapixel is the registry's, per format.
DECODE_MS_PER_MP = 20.0
SCALE_MS_PER_MP = 15.0
FRAME_MS_PER_MP = 10.0  # per output megapixel of each frame: alpha, effects, palette bookkeeping
# Drawing an SVG, per megapixel drawn: resvg's floor (an empty canvas, its PNG included: 45-51 ms measured). What a
# drawing adds to it cannot be known from its markup; the drawing is stopped when it passes the time left.
DRAW_MS_PER_MP = 50.0


@dataclass(frozen=True)
class Cost:
    """What a render will do, known before it starts."""

    decoded_pixels: int  # all frames
    output_pixels: int  # all frames
    encodes: int  # 1, or more for a max_bytes search
    ms: float  # estimated single-core time


def estimate(decoded_pixels: int, output: tuple[int, int], frames: int, fmt: Format, searches: bool) -> Cost:
    """The work of decoding `decoded_pixels`, scaling them to `output` for each of `frames`, and encoding it."""
    output_pixels = output[0] * output[1] * frames
    encodes = 1 + MAX_BYTES_ATTEMPTS if searches and fmt.has_quality else 1
    mp_in, mp_out = decoded_pixels / 1e6, output_pixels / 1e6
    per_mp = fmt.info.encode_ms_per_mp
    if frames > 1 and fmt.info.animated_ms_per_mp is not None:
        per_mp = fmt.info.animated_ms_per_mp
    ms = mp_in * (DECODE_MS_PER_MP + SCALE_MS_PER_MP) + mp_out * FRAME_MS_PER_MP + mp_out * per_mp * encodes
    return Cost(decoded_pixels, output_pixels, encodes, ms)


def drawn_first(cost: Cost, size: tuple[int, int]) -> Cost:
    """`cost`, after drawing a vector original at `size` (at the least)."""
    drawing_ms = size[0] * size[1] / 1e6 * DRAW_MS_PER_MP
    return Cost(cost.decoded_pixels, cost.output_pixels, cost.encodes, cost.ms + drawing_ms)


def check(cost: Cost, limits: Limits) -> None:
    """TooLarge naming the limit when the planned work passes it."""
    if cost.output_pixels > limits.max_output_pixels:
        raise TooLarge(f"the output would be {cost.output_pixels / 1e6:.1f} MP in all frames; the limit "
                       f"(MAX_OUTPUT_PIXELS) is {limits.max_output_pixels / 1e6:.1f} MP: ask for a smaller size")
    if cost.ms > limits.max_work_ms:
        raise TooLarge(f"the render would take about {cost.ms / 1000:.1f} s of work; the limit (MAX_WORK_MS) is "
                       f"{limits.max_work_ms / 1000:.1f} s: ask for a smaller size, a faster format or fewer frames")
