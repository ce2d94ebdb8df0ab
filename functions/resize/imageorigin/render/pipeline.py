"""The recipe, written once: open -> plan and price -> decode -> analyse -> scale, orient, colour -> effects ->
alpha -> encode, for a still, for each member of a pre-warm ladder and for every frame of an animation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PIL import Image, ImageSequence

from .. import formats
from ..deadline import Deadline
from ..errors import OutOfTime, TooLarge
from ..formats import Format
from ..model import ResizeSpec, canonicalize
from . import analysis, cost, effects, vector
from .encode import encode, encode_animation, encode_within
from .geometry import FloatBox, Plan, clamped, focal_centre, plan
from .limits import Limits
from .pixels import box_in_decoded, decode, decoded_pixels, draft_scale, normalize_mode, scale_upright, to_srgb
from .source import Source, decoding, open_source


@dataclass(frozen=True)
class SourceInfo:
    """What the header of an original says, read without keeping its pixels."""

    format: str  # the registry's name
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Rendered:
    """An encoded variant and what it is."""

    data: bytes
    format: Format
    width: int
    height: int
    frames: int = 1

    @property
    def content_type(self) -> str:
        return self.format.content_type


def rasterized(data: bytes, spec: ResizeSpec | None, limits: Limits, deadline: Deadline | None = None) -> bytes:
    """A vector original (SVG) drawn at the size the spec needs, as PNG; any other original as it is.

    With a spec, the whole render is priced before anything is drawn (drawing at least, then decoding, scaling and
    encoding the drawing), and the drawing gets what the rest leaves of MAX_WORK_MS, and of the invocation's time:
    stopped by the first, it is a 413; by the second, a 503."""
    sniffed = formats.sniff(data[:formats.SNIFF_BYTES])
    if sniffed is None or not sniffed.vector:
        return data
    text, size = vector.sized(data, spec, limits)
    budget, rest_ms = float(limits.max_work_ms), 0.0
    if spec is not None:
        fmt = sniffed.keep_as if spec.format is Format.ORIGINAL else spec.format
        assert fmt is not None  # a vector's keep_as is set (PNG)
        after = cost.estimate(size[0] * size[1], plan(size, spec, limits.max_side).output, 1, fmt,
                              bool(spec.max_bytes))
        drawn = cost.drawn_first(after, size)
        cost.check(drawn, limits)
        budget, rest_ms = budget - after.ms, after.ms
        if deadline is not None:
            deadline.check("draw the SVG and render it", drawn.ms)
    time_left = deadline.left_ms() - rest_ms if deadline is not None else math.inf
    try:
        return vector.draw(text, *size, min(budget, time_left))
    except TooLarge:
        if time_left < budget:
            raise OutOfTime("too little time left to draw the SVG; please retry") from None
        raise


def probe(data: bytes, limits: Limits) -> SourceInfo:
    """Identify and check an original served as it is: the same opening as a render (header limits, PNG CRCs),
    then the cheapest decode that finds damage (JPEGs at 1/8 scale, every entropy-coded byte still read)."""
    with open_source(data, limits) as source:
        with decoding("the original is damaged or truncated"):
            if source.format.drafts:
                source.image.draft(None, (1, 1))
            source.image.load()
        return SourceInfo(source.format.name, source.format.content_type, *source.image.size)


def upright_size(data: bytes, limits: Limits) -> tuple[int, int]:
    """The original's width and height as displayed: from its header alone (EXIF orientation applied), or a
    vector's from its markup, nothing drawn."""
    sniffed = formats.sniff(data[:formats.SNIFF_BYTES])
    if sniffed is not None and sniffed.vector:
        return vector.sized(data, None, limits)[1]
    with open_source(data, limits) as source:
        return source.upright


def output_format(spec: ResizeSpec, source: Source) -> Format:
    return source.keep if spec.format is Format.ORIGINAL else spec.format


def render(data: bytes, spec: ResizeSpec, limits: Limits, deadline: Deadline | None = None) -> Rendered:
    """One variant. Animated originals stay animated when the output format can carry an animation; other outputs
    take the first frame."""
    deadline = deadline or Deadline.unbounded()
    with open_source(rasterized(data, spec, limits, deadline), limits) as source:
        fmt = output_format(spec, source)
        frames = source.frames if source.frames > 1 and fmt.info.animation else 1
        region = clamped(spec.crop, source.upright) if spec.crop else None
        planned = plan(source.upright, spec, limits.max_side, region, focal_centre(spec))
        # trim may shrink the region to anything: it decodes whole; other plans decode what their box needs
        scale = 1.0 if spec.trim else draft_scale(source, planned)
        priced = cost.estimate(decoded_pixels(source, scale) * frames, planned.output, frames, fmt,
                               bool(spec.max_bytes))
        cost.check(priced, limits)
        if _as_stored(spec, source, fmt, planned, len(data)):
            return Rendered(data, fmt, *source.upright, frames=frames)
        deadline.check("render the image", priced.ms)
        picture, valid = decode(source, scale)  # the first frame
        if spec.analyses:
            planned = _analysed(picture, valid, source, spec, region, limits)
        if frames > 1:
            return _animation(source, spec, fmt, planned, deadline)
        finished = finish(prepare(picture, box_in_decoded(planned.box, source, valid), source.orientation,
                                  source.icc, planned.size), spec, fmt, planned.canvas)
        exif = source.copyright_exif() if spec.keep_copyright else None
        deadline.check("encode the image")
        data_out = encode_within(finished, fmt, spec.quality_for(fmt), spec.max_bytes, exif, deadline)
        return Rendered(data_out, fmt, finished.width, finished.height)


def _as_stored(spec: ResizeSpec, source: Source, fmt: Format, planned: Plan, stored_bytes: int) -> bool:
    """Whether the variant is the original's own bytes: its format (one without a quality to change or an EXIF
    block to strip: GIF), its size, nothing else asked. Decoding and re-encoding it could only lose: a GIF's frames
    would be quantised again. Asked of the canonical spec: what it folded away changes nothing here either."""
    if fmt.info is not source.format or fmt.info.quality is not None or fmt.info.exif:
        return False  # (first: most renders end here, before the spec is canonicalised again)
    spec = canonicalize(spec)
    return (spec.plain and stored_bytes <= (spec.max_bytes or stored_bytes) and planned.canvas is None
            and planned.size == source.upright and planned.box == (0.0, 0.0, *map(float, source.upright))
            and source.orientation == 1 and source.icc is None)


def prepare(picture: Image.Image, box: FloatBox, orientation: int, icc: bytes | None,
            size: tuple[int, int]) -> Image.Image:
    """Scale the stored pixels' `box` to the upright `size`, turn it upright and convert it to sRGB."""
    return to_srgb(scale_upright(picture, size, box, orientation), icc)


def finish(picture: Image.Image, spec: ResizeSpec, fmt: Format, canvas: tuple[int, int] | None) -> Image.Image:
    """Effects, padding and transparency for the output format, then flips and turns."""
    return effects.turned(effects.for_output(effects.filters(picture, spec), fmt, spec, canvas), spec)


def _analysed(picture: Image.Image, valid: FloatBox, source: Source, spec: ResizeSpec, region: tuple | None,
              limits: Limits) -> Plan:
    """The plan once the pixels were looked at: trim's region, then the smart crop's centre."""
    side = analysis.TRIM_ANALYSIS_SIDE if spec.trim else analysis.SMART_ANALYSIS_SIDE
    preview = analysis.upright_preview(picture, valid, source.orientation, side)
    if spec.trim:
        region = analysis.trimmed(preview, source.upright, region, spec.trim, spec.trim_tolerance)
    focus = focal_centre(spec)
    if spec.detects:
        focus = analysis.smart_focus(preview, source.upright, spec, region or (0, 0, *source.upright))
    return plan(source.upright, spec, limits.max_side, region, focus)


def _animation(source: Source, spec: ResizeSpec, fmt: Format, planned: Plan, deadline: Deadline) -> Rendered:
    """Every frame through the same steps as a still, with its duration; the loop count kept."""
    loop = source.image.info.get("loop")
    pictures: list[Image.Image] = []
    durations: list[int] = []
    with decoding("a frame of the animation is damaged"):
        for frame in ImageSequence.Iterator(source.image):
            deadline.check("render the animation's frames")
            box = box_in_decoded(planned.box, source, (0.0, 0.0, *map(float, frame.size)))
            picture = prepare(normalize_mode(frame), box, source.orientation, source.icc, planned.size)
            pictures.append(finish(picture, spec, fmt, planned.canvas))
            durations.append(int(frame.info.get("duration") or 0))  # WebP sets it when the frame loads
    deadline.check("encode the animation")
    data = encode_animation(pictures, durations, loop, fmt, spec.quality_for(fmt))
    return Rendered(data, fmt, pictures[0].width, pictures[0].height, frames=len(pictures))


def render_animation(originals: Sequence[bytes], spec: ResizeSpec, durations: Sequence[int], loop: int,
                     limits: Limits, deadline: Deadline | None = None, dither: Image.Dither | None = None,
                     shared_palette: bool = False) -> Rendered:
    """An animation made from several originals, one frame each (an animated original gives its first), in order.

    `spec` names the canvas (width and height both), the fit, bg and the output format (one that animates). Every
    frame is planned to that canvas and goes through the same steps as a still: orientation, sRGB and scaling in
    `prepare`, padding (contain) and transparency for the format in `finish`, each on the canvas w x h. The whole
    animation is priced from the headers alone (every original's decode, the canvas times the frames, the format's
    animated encode) before any pixel is decoded."""
    deadline = deadline or Deadline.unbounded()
    fmt = spec.format
    if spec.width is None or spec.height is None or not fmt.info.animation:
        raise ValueError("an animation needs a canvas (width and height) and a format that animates")
    canvas = (spec.width, spec.height)
    if len(originals) > limits.max_frames:
        raise TooLarge(f"the animation would have {len(originals)} frames; the limit (MAX_FRAMES) is "
                       f"{limits.max_frames}")
    originals = [rasterized(data, spec, limits, deadline) for data in originals]
    decoded = 0
    for data in originals:  # headers only: each original is opened, planned and priced, and let go
        with open_source(data, limits) as source:
            decoded += decoded_pixels(source, draft_scale(source, plan(source.upright, spec, limits.max_side)))
    priced = cost.estimate(decoded, canvas, len(originals), fmt, False)
    cost.check(priced, limits)
    deadline.check("render the animation", priced.ms)
    pictures: list[Image.Image] = []
    for data in originals:  # one original's pixels in memory at a time, besides the finished frames
        deadline.check("render the animation's frames")
        with open_source(data, limits) as source:
            planned = plan(source.upright, spec, limits.max_side)
            picture, valid = decode(source, draft_scale(source, planned))
            prepared = prepare(picture, box_in_decoded(planned.box, source, valid), source.orientation, source.icc,
                               planned.size)
        pictures.append(finish(prepared, spec, fmt, canvas))
    deadline.check("encode the animation")
    data = encode_animation(pictures, durations, loop, fmt, spec.quality_for(fmt), dither, shared_palette)
    return Rendered(data, fmt, canvas[0], canvas[1], frames=len(pictures))


def render_many(data: bytes, specs: Sequence[ResizeSpec], limits: Limits,
                deadline: Deadline | None = None) -> list[Rendered]:
    """Several variants of one original (a pre-warm ladder) from a single decode, in the order of `specs`.

    Plain resizes are made largest first, each size derived from the one before it (a LANCZOS step from a larger,
    already sharp image), so the ladder costs little more than its largest member. Crops, pads, analyses and
    animated outputs are rendered one by one. Members that come out the same (a ladder's widths above a small
    original's own: the same plan, the same spec but for the asked size) are rendered once."""
    deadline = deadline or Deadline.unbounded()
    results: dict[int, Rendered] = {}
    biggest = max(specs, key=lambda s: (s.width or 0) * (s.height or s.width or 0), default=None)
    data = rasterized(data, biggest, limits, deadline)  # a vector is drawn once, for its largest member
    with open_source(data, limits) as source:
        upright = source.upright
        plans = [plan(upright, spec, limits.max_side) for spec in specs]
        first_alike: dict[tuple[Plan, ResizeSpec], int] = {}
        alike = {i: first_alike.setdefault((p, replace(spec, width=None, height=None)), i)
                 for i, (spec, p) in enumerate(zip(specs, plans, strict=True)) if not spec.analyses}
        specs = [spec if alike.get(i, i) == i else None for i, spec in enumerate(specs)]
        chained = [i for i, (spec, p) in enumerate(zip(specs, plans, strict=True))
                   if spec is not None and spec.plain and p.canvas is None and p.box == (0, 0, *upright)
                   and not (source.frames > 1 and output_format(spec, source).info.animation)]
        if chained:
            sizes = sorted({plans[i].size for i in chained}, key=lambda size: size[0] * size[1], reverse=True)
            largest = Plan((0.0, 0.0, *map(float, upright)), sizes[0])
            total = sum(cost.estimate(0, plans[i].size, 1, output_format(specs[i], source), False).ms
                        for i in chained)
            deadline.check("render the ladder", total)
            scale = draft_scale(source, largest)
            picture, valid = decode(source, scale)
            box, orientation, icc = box_in_decoded(largest.box, source, valid), source.orientation, source.icc
            exif = source.copyright_exif() if any(specs[i].keep_copyright for i in chained) else None
            for size in sizes:
                picture = prepare(picture, box, orientation, icc, size)
                box, orientation, icc = (0.0, 0.0, float(picture.width), float(picture.height)), 1, None
                for i in (i for i in chained if plans[i].size == size):
                    fmt = output_format(specs[i], source)
                    out = finish(picture, specs[i], fmt, None)
                    deadline.check("encode a ladder variant")
                    encoded = encode(out, fmt, specs[i].quality_for(fmt), exif if specs[i].keep_copyright else None)
                    results[i] = Rendered(encoded, fmt, out.width, out.height)
    for i, spec in enumerate(specs):
        if i not in results and spec is not None:
            results[i] = render(data, spec, limits, deadline)
    return [results[alike.get(i, i)] for i in range(len(specs))]
