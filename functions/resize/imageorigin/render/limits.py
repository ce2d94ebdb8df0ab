"""What one render may cost: the limits the cost check holds a request's planned work against."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Limits checked from the header and the spec, before any pixel is decoded."""

    max_pixels: int = 40_000_000  # decoded per frame
    max_side: int = 4096  # largest output side
    max_frames: int = 100
    max_animation_pixels: int = 100_000_000  # all frames of the original together
    max_output_pixels: int = 50_000_000  # all frames of the output together (memory)
    max_work_ms: int = 6000  # estimated single-core milliseconds of decoding, scaling and encoding (time)
