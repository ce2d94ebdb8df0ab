"""The key is exactly the render: over random requests in every grammar, on small real images (still, alpha,
animated), equal variant keys give equal bytes, and the canonical path reads back to the very same spec."""

from __future__ import annotations

import io
from dataclasses import fields, replace

import pytest
from conftest import sample
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from PIL import Image, ImageSequence

from imageorigin import render
from imageorigin.errors import BadParameter
from imageorigin.formats import Format
from imageorigin.grammars import query, thumbor
from imageorigin.model import Fit, HAlign, ImageRequest, ResizeSpec, Trim, VAlign, canonicalize

VERSION = "v1"
LIMITS = render.Limits()


def _originals() -> dict[str, bytes]:
    """Small versions of real samples: a photo, a transparent graphic, an animation."""
    out: dict[str, bytes] = {}
    photo = Image.open(io.BytesIO(sample("photos/progressive.jpg")))
    photo.thumbnail((40, 40))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    out["photo.jpg"] = buffer.getvalue()
    graphic = Image.open(io.BytesIO(sample("graphics/alpha.png"))).convert("RGBA")
    graphic.thumbnail((40, 40))
    buffer = io.BytesIO()
    graphic.save(buffer, "PNG")
    out["graphic.png"] = buffer.getvalue()
    earth = Image.open(io.BytesIO(sample("animations/earth.gif")))
    first_three = zip(range(3), ImageSequence.Iterator(earth), strict=False)
    frames = [frame.convert("RGBA").resize((24, 24)) for _, frame in first_three]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=[40, 60, 80], loop=0)
    out["earth.gif"] = buffer.getvalue()
    return out


ORIGINALS = _originals()
SIDES = st.one_of(st.none(), st.integers(1, 48))
COLOURS = st.sampled_from(["fff", "ffffff", "000000", "ff0000", "FF0000", "#00ff00", "0a0b0c"])


def _maybe(*values: object) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), st.sampled_from(values))


# (its name's spellings, its values): each built once, as every strategy here (hypothesis checks each one it is
# given, and a strategy built inside a draw is checked again at every example)
QUERY_PARAMETERS = (
    (st.sampled_from(["w", "width", "scalex"]), SIDES),
    (st.sampled_from(["h", "height", "scaley"]), SIDES),
    (st.just("fit"), _maybe("inside", "cover", "contain", "fill", "outside")),
    (st.sampled_from(["fm", "format"]), _maybe("jpeg", "jpg", "png", "webp", "gif", "avif", "auto")),
    (st.sampled_from(["q", "quality"]), st.one_of(st.none(), st.integers(1, 100))),
    (st.just("bg"), st.one_of(st.none(), COLOURS)),
    (st.just("enlarge"), _maybe("0", "1", "true", "false")),
    (st.just("dpr"), _maybe("1", "1.5", "2", "2.25")),
    (st.just("copyright"), _maybe("0", "1")),
)
KEYS = st.sampled_from(sorted(ORIGINALS))
ACCEPTS = st.sampled_from(["", "image/webp,*/*", "image/avif,image/webp,*/*"])


@st.composite
def query_requests(draw: st.DrawFn) -> ImageRequest:
    key = draw(KEYS)
    params: dict[str, list[str]] = {}
    for names, values in QUERY_PARAMETERS:
        name, value = draw(names), draw(values)
        if value is not None:
            params[name] = [str(value)]
    accept = draw(ACCEPTS)
    try:
        return query.parse(f"/{key}", params, accept, version=VERSION)
    except BadParameter:
        reject()


TRIMS = st.sampled_from(["trim", "trim:10", "trim:bottom-right:40"])
CROPS = st.sampled_from(["0x0:20x20", "5x5:30x25", "2x3:3x4"])
FITS_IN = st.sampled_from(["", "fit-in", "full-fit-in", "adaptive-fit-in"])
THUMBOR_SIDES = st.integers(0, 48)
HALIGNS, VALIGNS = st.sampled_from(["", "left", "right"]), st.sampled_from(["", "top", "bottom"])
SMART = st.sampled_from(["", "smart"])
FILTERS = st.lists(st.sampled_from([
    "format(webp)", "format(png)", "format(gif)", "format(jpeg)", "quality(50)", "quality(90)",
    "fill(red)", "fill(00ff00)", "background_color(blue)", "blur(1)", "blur(2,1.5)", "blur(0.0001)",
    "sharpen(1.5,0.5,true)", "sharpen(1.5,0.5,false)", "grayscale()", "rotate(90)", "rotate(270)",
    "upscale()", "no_upscale()", "stretch()", "max_bytes(2000)", "focal(5x5:10x10)", "proportion(0.5)",
    "strip_exif()"]), max_size=3, unique=True)


@st.composite
def thumbor_requests(draw: st.DrawFn) -> ImageRequest:
    key = draw(KEYS)
    parts = []
    if draw(st.booleans()):
        parts.append(draw(TRIMS))
    if draw(st.booleans()):
        parts.append(draw(CROPS))
    parts.append(draw(FITS_IN))
    width, height = draw(THUMBOR_SIDES), draw(THUMBOR_SIDES)
    parts.append(f"{'-' if draw(st.booleans()) else ''}{width}x{'-' if draw(st.booleans()) else ''}{height}")
    parts.append(draw(HALIGNS))
    parts.append(draw(VALIGNS))
    parts.append(draw(SMART))
    filters = draw(FILTERS)
    if filters:
        parts.append("filters:" + ":".join(filters))
    path = "/unsafe/" + "/".join(p for p in parts if p) + "/" + key
    try:
        return thumbor.parse(path, max_side=4096).request
    except BadParameter:  # e.g. proportion() without a size: a 400, not a request
        reject()


REQUESTS = st.one_of(query_requests(), thumbor_requests())


def _bytes(request: ImageRequest) -> bytes:
    return render.render(ORIGINALS[request.key], request.spec, LIMITS).data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(request=REQUESTS.filter(lambda r: r.spec is not None))
def test_the_canonical_path_reads_back_to_the_same_spec(request: ImageRequest) -> None:
    # given any request any grammar accepts, when its canonical path is read back, then it is the same spec:
    # every field is in the key, and the canonical form is a fixed point of the canonicalisation
    again = query.parse(request.canonical_path(VERSION), {}, version=VERSION)
    assert again.key == request.key and again.spec == request.spec
    assert canonicalize(request.spec) == request.spec


@pytest.mark.parametrize("field", [f.name for f in fields(ResizeSpec)])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_canonicalisation_folds_only_what_changes_nothing(field: str, data: st.DataObject) -> None:
    # given a request and one field of its spec set to another value, when the spec is canonicalised (which may
    # fold that value back to a default), then the render is byte for byte the one of the raw spec: nothing that
    # changes the bytes is ever left out of the key; and equal keys are equal renders
    first = data.draw(FIRST)
    raw = replace(first.spec, **{field: data.draw(_values(field))})
    second = replace(first, spec=canonicalize(raw))
    rendered = _bytes(second)
    assert render.render(ORIGINALS[first.key], raw, LIMITS).data == rendered, (second.variant_key(VERSION), field)
    if first.variant_key(VERSION) == second.variant_key(VERSION):
        assert _bytes(first) == rendered


@st.composite
def any_requests(draw: st.DrawFn) -> ImageRequest:
    """Any canonical spec, every field drawn independently (so that rare combinations are common here)."""
    spec = canonicalize(ResizeSpec(**{f.name: draw(_values(f.name)) for f in fields(ResizeSpec)}))
    return ImageRequest(draw(KEYS), spec)


def _values(field: str) -> st.SearchStrategy[object]:
    return VALUES[field]


# Built once: a strategy made anew for each draw costs hypothesis a validation each time (a third of this file's time).
VALUES: dict[str, st.SearchStrategy[object]] = {
    "width": SIDES, "height": SIDES, "fit": st.sampled_from(list(Fit)),
    "format": st.sampled_from([f for f in Format if f is not Format.ORIGINAL]),
    "quality": st.one_of(st.none(), st.integers(1, 100)), "enlarge": st.booleans(),
    "background": st.sampled_from(["ffffff", "ff0000", "000000"]), "keep_copyright": st.booleans(),
    "crop": st.one_of(st.none(), st.just((2, 2, 20, 20))),
    "trim": st.one_of(st.none(), st.sampled_from(list(Trim))),
    "trim_tolerance": st.integers(0, 60), "halign": st.sampled_from(list(HAlign)),
    "valign": st.sampled_from(list(VAlign)), "smart": st.booleans(),
    "focal": st.one_of(st.none(), st.just((5, 5, 10, 10))), "flip_h": st.booleans(), "flip_v": st.booleans(),
    "rotate": st.sampled_from([0, 90, 180, 270]), "grayscale": st.booleans(),
    "blur": st.sampled_from([0.0, 0.5, 1.0, 1.0001]),
    "sharpen": st.one_of(st.none(), st.just((1.5, 0.5, True)), st.just((1.5, 0.5, False))),
    "flatten": st.booleans(), "max_bytes": st.one_of(st.none(), st.sampled_from([1024, 2000])),
}
FIRST = st.one_of(REQUESTS.filter(lambda r: r.spec is not None), any_requests())


@pytest.mark.parametrize(
    ("path", "query_a", "query_b"),
    [
        # the examples that poisoned the cache: each pair renders differently, so the keys must differ
        ("/graphic.png", {"w": ["30"], "fm": ["gif"], "bg": ["ff0000"]},
         {"w": ["30"], "fm": ["gif"], "bg": ["00ff00"]}),
        ("/graphic.png", {"w": ["30"], "fm": ["jpeg"], "bg": ["ff0000"]}, {"w": ["30"], "fm": ["jpeg"]}),
    ],
)
def test_the_known_poisonings_have_distinct_keys(path: str, query_a: dict, query_b: dict) -> None:
    a, b = (query.parse(path, q, version=VERSION) for q in (query_a, query_b))
    assert _bytes(a) != _bytes(b)
    assert a.variant_key(VERSION) != b.variant_key(VERSION)


@pytest.mark.parametrize(
    ("path_a", "path_b"),
    [
        ("/unsafe/30x30/filters:fill(red)/graphic.png", "/unsafe/30x30/filters:fill(blue)/graphic.png"),
        ("/unsafe/30x30/filters:background_color(red)/graphic.png",
         "/unsafe/30x30/filters:background_color(blue)/graphic.png"),
        ("/unsafe/30x30/filters:blur(1.0001)/photo.jpg", "/unsafe/30x30/filters:blur(1)/photo.jpg"),
    ],
)
def test_thumbor_colours_and_sigmas_are_in_the_key(path_a: str, path_b: str) -> None:
    a, b = (thumbor.parse(p, max_side=4096).request for p in (path_a, path_b))
    assert a.variant_key(VERSION) != b.variant_key(VERSION)
