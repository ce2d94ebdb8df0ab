"""Where to crop, what size to scale to and what to pad, in upright pixels; and how boxes map to stored pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..model import Box, Fit, HAlign, ResizeSpec, VAlign

FloatBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Plan:
    """A resize in upright source coordinates: the source box to take, the size to scale it to, a canvas to pad."""

    box: FloatBox
    size: tuple[int, int]
    canvas: tuple[int, int] | None = None

    @property
    def output(self) -> tuple[int, int]:
        """The size of the encoded picture (before a quarter turn)."""
        return self.canvas or self.size


_H_ANCHOR = {HAlign.LEFT: 0.0, HAlign.CENTER: 0.5, HAlign.RIGHT: 1.0}
_V_ANCHOR = {VAlign.TOP: 0.0, VAlign.MIDDLE: 0.5, VAlign.BOTTOM: 1.0}


def plan(upright: tuple[int, int], spec: ResizeSpec, max_side: int, region: Box | None = None,
         focus: tuple[float, float] | None = None) -> Plan:
    """Decided from the header's dimensions and, for a manual crop, a trim or a smart crop, the `region` of the
    original to use and the `focus` to centre on."""
    rx, ry, rx1, ry1 = region or (0, 0, *upright)
    sw, sh = rx1 - rx, ry1 - ry
    full = (float(rx), float(ry), float(rx1), float(ry1))
    w, h = spec.width, spec.height
    if w is None and h is None:
        return Plan(full, capped((sw, sh), max_side))
    if spec.fit is Fit.ADAPTIVE and w and h and (w > h) != (sw > sh):
        w, h = h, w  # turn the box to the original's orientation
    ratios = [r for r in (w / sw if w else None, h / sh if h else None) if r is not None]
    cap = 1.0 if not spec.enlarge else math.inf

    if spec.fit is Fit.FILL and w and h:
        return Plan(full, capped((px(sw * min(w / sw, cap)), px(sh * min(h / sh, cap))), max_side))
    if spec.fit is Fit.COVER and w and h:
        target = w / h
        cw, ch = (sh * target, float(sh)) if sw / sh > target else (float(sw), sw / target)
        x0 = _anchor(sw, cw, focus[0] - rx if focus else None, _H_ANCHOR[spec.halign])
        y0 = _anchor(sh, ch, focus[1] - ry if focus else None, _V_ANCHOR[spec.valign])
        scale = min(w / cw, cap)
        return Plan((rx + x0, ry + y0, rx + x0 + cw, ry + y0 + ch), capped((px(cw * scale), px(ch * scale)), max_side))
    scale = min(max(ratios) if spec.fit is Fit.OUTSIDE else min(ratios), cap)
    size = capped((px(sw * scale), px(sh * scale)), max_side)
    canvas = (w, h) if spec.fit is Fit.CONTAIN and w and h else None
    return Plan(full, size, canvas)


def focal_centre(spec: ResizeSpec) -> tuple[float, float] | None:
    if spec.crops_to_box and spec.focal:
        return (spec.focal[0] + spec.focal[2]) / 2, (spec.focal[1] + spec.focal[3]) / 2
    return None


def _anchor(length: float, window: float, focus: float | None, fraction: float) -> float:
    """Where a crop window starts along one axis: centred on `focus` if given, else at `fraction` of the slack."""
    slack = length - window
    if focus is None:
        return slack * fraction
    return min(max(focus - window / 2, 0.0), slack)


def clamped(box: Box, size: tuple[int, int]) -> Box:
    """A manual crop kept inside the image (at least one pixel)."""
    left, top = min(box[0], size[0] - 1), min(box[1], size[1] - 1)
    return left, top, max(left + 1, min(box[2], size[0])), max(top + 1, min(box[3], size[1]))


def px(value: float) -> int:
    return max(1, round(value))


def capped(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Scale a size down uniformly so that neither side passes max_side."""
    shrink = min(1.0, max_side / max(size))
    return (px(size[0] * shrink), px(size[1] * shrink)) if shrink < 1 else size


# The orientation whose transposition undoes this one's (the others undo themselves).
_UNDO = {6: 8, 8: 6}


def to_stored(box: FloatBox, upright: tuple[int, int], orientation: int) -> FloatBox:
    """Where an upright box lies in the pixels as stored (before the EXIF turn)."""
    return transposed_box(box, upright, _UNDO.get(orientation, orientation))


def transposed_box(box: FloatBox, size: tuple[int, int], orientation: int) -> FloatBox:
    """Where `box` of an image of `size` lands once the image is transposed by `orientation`."""
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
