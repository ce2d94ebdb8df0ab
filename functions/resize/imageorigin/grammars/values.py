"""Value readers the grammars share: bounded integers, decimals, colours and boxes, each a 400 naming its parameter."""

from __future__ import annotations

import re

from PIL import ImageColor

from ..errors import BadParameter
from ..model import Box

_INT = re.compile(r"[0-9]{1,8}")
_DECIMAL = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,4})?")  # 4 decimals at most: the canonical form keeps them exactly
_HEX = re.compile(r"[0-9a-fA-F]{6}|[0-9a-fA-F]{3}")
_BOX = re.compile(r"([0-9]{1,6})[x.]([0-9]{1,6})[:.]([0-9]{1,6})[x.]([0-9]{1,6})")


def bounded(name: str, raw: str, high: int, low: int = 1) -> int:
    """A whole number from `low` to `high`."""
    raw = raw.strip()
    if not _INT.fullmatch(raw):
        raise BadParameter(name, f"must be a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise BadParameter(name, f"must be from {low} to {high}, got {value}")
    return value


def decimal(name: str, raw: str, high: float, low: float = 0.0) -> float:
    """A decimal number with at most 4 decimals, from `low` to `high`."""
    raw = raw.strip()
    if not _DECIMAL.fullmatch(raw) or not low <= float(raw) <= high:
        raise BadParameter(name, f"{raw!r} is not a number from {low:g} to {high:g} (at most 4 decimals)")
    return float(raw)


def hex_colour(name: str, raw: str, *, css: bool = False) -> str:
    """RRGGBB (lower case) from RRGGBB, RGB, #RRGGBB or, with `css`, a CSS colour name."""
    value = raw.strip().removeprefix("#")
    if _HEX.fullmatch(value):
        return ("".join(ch * 2 for ch in value) if len(value) == 3 else value).lower()
    if css:
        try:
            return "".join(f"{c:02x}" for c in ImageColor.getrgb(raw.strip())[:3])
        except ValueError:
            pass
    raise BadParameter(name, f"{raw!r} is not a colour: hex RRGGBB" + (" or a CSS name" if css else ", e.g. ff0000"))


def box(name: str, raw: str, *, allow_empty: bool = False, allow_point: bool = False) -> Box | None:
    """LEFTxTOP:RIGHTxBOTTOM (thumbor) or L.T.R.B (canonical) with right > left and bottom > top (or equal, for a
    focal point)."""
    match = _BOX.fullmatch(raw.strip())
    if match is None:
        raise BadParameter(name, "must be LEFTxTOP:RIGHTxBOTTOM, e.g. 10x20:300x400")
    left, top, right, bottom = (int(v) for v in match.groups())
    if allow_empty and (left, top, right, bottom) == (0, 0, 0, 0):
        return None
    if (right < left or bottom < top) if allow_point else (right <= left or bottom <= top):
        raise BadParameter(name, "right must be greater than left and bottom greater than top")
    return (left, top, right, bottom)
