"""Property-based: mutated images only ever get a 200 or a mapped 4xx; the parser only a spec or a 400."""

from __future__ import annotations

import io
import json

import pytest
from conftest import api_event, invoke, sample
from fakes import MemoryStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imageorigin import runtime
from imageorigin.errors import BadKey, BadParameter
from imageorigin.grammars.query import parse
from imageorigin.model import ImageRequest


def _small(fmt: str, **options: object) -> bytes:
    photo = Image.open(io.BytesIO(sample("photos/progressive.jpg"))).resize((48, 32))
    out = io.BytesIO()
    if fmt == "GIF":
        frames = [photo, photo.rotate(90), photo.rotate(180)]
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    else:
        (photo.convert("RGBA") if fmt == "PNG" else photo).save(out, fmt, **options)
    return out.getvalue()


SEEDS = {
    "jpeg": _small("JPEG", quality=85, exif=Image.Exif().tobytes()),
    "progressive": _small("JPEG", quality=85, progressive=True),
    "png": _small("PNG"),
    "gif": _small("GIF"),
    "webp": _small("WEBP", quality=80),
}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
                 "AVIF": "image/avif"}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed image with bytes flipped, cut, inserted or repeated."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "repeat", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "repeat":
            length = draw(st.integers(1, 64))
            data[at:at] = data[at:at + length]
        elif kind == "zero":
            length = draw(st.integers(1, 32))
            data[at:at + length] = b"\0" * len(data[at:at + length])
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated(), fm=st.sampled_from(["", "jpeg", "png", "webp", "gif", "avif"]))
def test_mutated_images_get_an_image_or_a_mapped_4xx(monkeypatch: pytest.MonkeyPatch, data: bytes, fm: str) -> None:
    memory = MemoryStore()
    monkeypatch.setattr(runtime, "store", lambda: memory)
    memory.add_original("fuzz/image", data)
    query = {"w": "24", "h": "24"} | ({"fm": fm} if fm else {})
    answer = invoke(api_event("/fuzz/image", query))
    if answer.status != 200:
        assert answer.status in (413, 415, 422), (answer.status, answer.body[:300])
        assert json.loads(answer.body)["code"] in ("too_large", "unsupported_type", "undecodable")
        assert not memory.variants
        return
    # every 200 decodes, is the format its Content-Type says, and fits the 24x24 box it was asked for
    image = answer.image
    assert CONTENT_TYPES[image.format] == answer.headers["Content-Type"]
    if fm:
        assert image.format == fm.upper()
    assert image.width <= 24 and image.height <= 24
    assert image.width == 24 or image.height == 24 or (image.width, image.height) == _source_size(data)


def _source_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as source:
        width, height = source.size
        orientation = source.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


NAMES = st.sampled_from(["w", "h", "width", "height", "scalex", "scaley", "resize", "fit", "fm", "format",
                         "encoding", "q", "quality", "enlarge", "bg", "dpr", "copyright", "blur", "W", ""])
VALUES = st.one_of(st.text(max_size=12), st.integers(-10, 10_000).map(str),
                   st.sampled_from(["300*200", "0x0", "cover", "auto", "jpg", "1e9", "NaN", "ff00ff", "2.5", "1"]))


@settings(max_examples=600, deadline=None)
@given(
    path=st.one_of(st.text(max_size=40), st.text(alphabet="/%.abcé2fF5Cc0e\\\x00 ", max_size=40)),
    query=st.dictionaries(NAMES, st.lists(VALUES, min_size=0, max_size=2), max_size=6),
    accept=st.text(max_size=60),
)
def test_parser_gives_a_spec_or_a_400_never_anything_else(path: str, query: dict[str, list[str]],
                                                          accept: str) -> None:
    try:
        request = parse("/" + path, query, accept)
    except (BadParameter, BadKey) as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert refused.status == 400 and refused.to_body()["message"]
        return
    assert isinstance(request, ImageRequest) and request.key
    if request.spec is not None:
        canonical = request.spec.canonical()
        assert canonical and "/" not in canonical
        for side in (request.spec.width, request.spec.height):
            assert side is None or 1 <= side <= 4096
