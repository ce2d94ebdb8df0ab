"""SVG: checked (no entities, no external references, bounded bytes, elements and depth), sized from its own
width, height and viewBox, and rasterised by resvg at the size the request needs, in a child process stopped when
it passes the work limit; never served as markup."""

from __future__ import annotations

import importlib
import math
import multiprocessing
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import replace

from ..errors import TooLarge, Undecodable
from ..model import ResizeSpec
from .geometry import clamped, plan
from .limits import Limits

MAX_SVG_BYTES = 2 * 1024 * 1024
MAX_ELEMENTS = 20_000
MAX_DEPTH = 128
DEFAULT_SIZE = (300, 150)  # a browser's size for an SVG that states none
_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
_LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(px|pt|pc|in|cm|mm)?\s*")
_XLINK = "{http://www.w3.org/1999/xlink}href"


def sized(data: bytes, spec: ResizeSpec | None, limits: Limits) -> tuple[str, tuple[int, int]]:
    """The checked SVG's text and the size it is to be drawn at for `spec` (its own size without one)."""
    text, intrinsic = check(data)
    return text, raster_size(intrinsic, spec, limits)


def draw(text: str, width: int, height: int, budget_ms: float) -> bytes:
    """resvg's PNG of the drawing, made in a forked child that is killed once it has worked `budget_ms`.

    What a drawing costs cannot be known from its markup: 2,000 overlapping translucent rectangles (well under
    MAX_ELEMENTS) take 9 s a megapixel, a blur filter 0.5 s, an empty canvas 0.05 s; and resvg, native code, cannot
    be interrupted in the process that called it. The fork costs a few milliseconds."""
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_draw_into, args=(writer, text, width, height), daemon=True)
    child.start()
    writer.close()
    try:
        if not reader.poll(budget_ms / 1000):
            raise TooLarge(f"the SVG takes more than {budget_ms / 1000:.1f} s of work (MAX_WORK_MS) to draw at "
                           f"{width}x{height}: ask for a smaller size")
        drawn, png = reader.recv()
    except EOFError:
        raise Undecodable("the SVG could not be drawn") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        reader.close()
    if not drawn:
        raise Undecodable("the SVG could not be drawn")
    return png


def _draw_into(writer: object, text: str, width: int, height: int) -> None:
    """The child's part: draw, send (True, PNG) or (False, b"") when resvg refuses the drawing."""
    resvg = importlib.import_module("resvg_py")
    try:
        answer = (True, resvg.svg_to_bytes(svg_string=text, width=width, height=height, resources_dir=None))
    except (ValueError, RuntimeError):
        answer = (False, b"")
    writer.send(answer)  # type: ignore[attr-defined]
    writer.close()  # type: ignore[attr-defined]


def check(data: bytes) -> tuple[str, tuple[float, float]]:
    """The SVG as text and its intrinsic size; Undecodable or TooLarge when it breaks a rule."""
    if len(data) > MAX_SVG_BYTES:
        raise TooLarge(f"the SVG is {len(data)} bytes; the limit is {MAX_SVG_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Undecodable("the SVG is not UTF-8") from None
    if re.search(r"<!ENTITY", text, re.I):
        raise Undecodable("SVG entity declarations are not accepted")
    depth = elements = 0
    root = None
    try:
        for event, element in ElementTree.iterparse(_Reader(text), events=("start", "end")):
            if event == "end":
                depth -= 1
                continue
            depth, elements = depth + 1, elements + 1
            root = root if root is not None else element
            if depth > MAX_DEPTH or elements > MAX_ELEMENTS:
                raise TooLarge(f"the SVG nests deeper than {MAX_DEPTH} or has more than {MAX_ELEMENTS} elements")
            for name in ("href", _XLINK):
                target = element.get(name, "").strip()
                if target and not target.startswith(("#", "data:")):
                    raise Undecodable("the SVG refers to an external resource; only #fragments and data: URLs "
                                      "are drawn")
    except ElementTree.ParseError:
        raise Undecodable("the SVG is not well-formed XML") from None
    if root is None or not root.tag.endswith("svg"):
        raise Undecodable("the file is not an SVG")
    return text, _intrinsic(root.attrib)


def _intrinsic(attributes: dict[str, str]) -> tuple[float, float]:
    """The size an SVG states: width and height (absolute units), else its viewBox, else a browser's default."""
    box = [float(v) for v in re.split(r"[\s,]+", attributes.get("viewBox", "").strip()) if v] \
        if re.fullmatch(r"[\s,0-9.eE+-]*", attributes.get("viewBox", "")) else []
    view = (box[2], box[3]) if len(box) == 4 and box[2] > 0 and box[3] > 0 else None
    width, height = _length(attributes.get("width")), _length(attributes.get("height"))
    if width and height:
        return width, height
    if view and (width or height):
        ratio = view[0] / view[1]
        return (width, width / ratio) if width else (height * ratio, height)  # type: ignore[operator]
    return view or DEFAULT_SIZE


def _length(raw: str | None) -> float | None:
    match = _LENGTH.fullmatch(raw or "")
    if not match:
        return None  # absent, a percentage or a unit relative to a font: the viewBox decides
    value = float(match.group(1)) * _UNITS[match.group(2) or ""]
    return value if value > 0 else None


def raster_size(intrinsic: tuple[float, float], spec: ResizeSpec | None, limits: Limits) -> tuple[int, int]:
    """The whole drawing's size in pixels such that the part the spec keeps comes out at its output size (a vector
    enlarges cleanly: enlarge is implied), within MAX_SOURCE_PIXELS and, without a spec, the side cap."""
    iw, ih = intrinsic
    if not math.isfinite(iw * ih) or iw <= 0 or ih <= 0:
        raise Undecodable("the SVG states no usable size")
    if spec is None or not spec.resizes:
        scale = min(1.0, limits.max_side / max(iw, ih))
    else:
        upright = (max(1, round(iw)), max(1, round(ih)))
        region = clamped(spec.crop, upright) if spec.crop else None
        planned = plan(upright, replace(spec, enlarge=True), limits.max_side, region)
        bw, bh = planned.box[2] - planned.box[0], planned.box[3] - planned.box[1]
        scale = max(planned.size[0] / bw, planned.size[1] / bh) * upright[0] / iw
    width, height = max(1, math.ceil(iw * scale)), max(1, math.ceil(ih * scale))
    if width * height > limits.max_pixels:
        raise TooLarge(f"the SVG would be drawn at {width}x{height} = {width * height / 1e6:.1f} MP; the limit "
                       f"(MAX_SOURCE_PIXELS) is {limits.max_pixels / 1e6:.1f} MP")
    return width, height


class _Reader:
    """A file-like view of a string for iterparse (which wants read())."""

    def __init__(self, text: str) -> None:
        self._data, self._at = text.encode(), 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        chunk, self._at = self._data[self._at:end], min(end, len(self._data))
        return chunk
