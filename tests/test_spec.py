"""Spec parsing: aliases and defaults share one canonical form; bad input is a 400 naming the parameter."""

from __future__ import annotations

import pytest

from imageorigin.errors import BadKey, BadParameter
from imageorigin.formats import Format
from imageorigin.grammars.query import parse
from imageorigin.model import Fit

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI_16 = ("image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,"
             "image/*;q=0.8,*/*;q=0.5")
SAFARI_13 = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
EDGE_LEGACY = "image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"


def canonical(path: str, query: dict[str, str], accept: str = "") -> str:
    request = parse(path, {k: [v] for k, v in query.items()}, accept)
    assert request.spec is not None
    return request.spec.canonical()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"w": "300"}, {"width": "300"}),
        ({"w": "300"}, {"scalex": "300"}),
        ({"w": "300", "h": "200"}, {"resize": "300*200"}),
        ({"w": "300", "h": "200"}, {"resize": "300x200"}),
        ({"w": "300", "h": "200"}, {"scaley": "200", "scalex": "300"}),
        ({"w": "300", "fm": "jpeg"}, {"w": "300"}),  # keep-format spelled out
        ({"w": "300", "fm": "jpeg"}, {"w": "300", "fm": "jpg"}),
        ({"w": "300", "fm": "webp"}, {"w": "300", "format": "webp", "q": "80"}),  # default quality spelled out
        ({"w": "300", "fm": "png"}, {"w": "300", "encoding": "png", "quality": "50"}),  # q means nothing for PNG
        ({"w": "300"}, {"w": "300", "fit": "inside", "enlarge": "0", "bg": "FFFFFF"}),
        ({"w": "300"}, {"w": "300", "fit": "cover"}),  # one side: every fit scales to it
        ({"w": "600"}, {"w": "300", "dpr": "2"}),
        ({"w": "300", "h": "200", "fit": "cover"}, {"h": "200", "fit": "COVER", "w": "300"}),
        ({"w": "300", "bg": "ff0000", "fm": "jpeg"}, {"w": "300", "bg": "#F00"}),
    ],
)
def test_equivalent_requests_share_one_canonical_form(a: dict[str, str], b: dict[str, str]) -> None:
    # given two spellings of the same request, when parsed, then they name the same variant
    assert canonical("/photos/cat.jpg", a) == canonical("/photos/cat.jpg", b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"w": "300"}, {"w": "301"}),
        ({"w": "300", "h": "200"}, {"w": "300", "h": "200", "fit": "cover"}),
        ({"w": "300", "fm": "webp"}, {"w": "300", "fm": "webp", "q": "70"}),
        ({"w": "300"}, {"w": "300", "enlarge": "1"}),
        ({"w": "300", "h": "300", "fit": "contain", "fm": "png"}, {"w": "300", "h": "300", "fit": "contain",
                                                                   "fm": "png", "bg": "000000"}),
    ],
)
def test_different_requests_have_different_canonical_forms(a: dict[str, str], b: dict[str, str]) -> None:
    assert canonical("/photos/cat.jpg", a) != canonical("/photos/cat.jpg", b)


def test_spec_fields_and_variant_key() -> None:
    # given a full request, when parsed, then every field is typed and the key is version/original/canonical
    request = parse("/photos/2024/cat.jpg", {"w": ["300"], "h": ["200"], "fit": ["cover"], "fm": ["webp"],
                                             "q": ["70"]})
    spec = request.spec
    assert request.key == "photos/2024/cat.jpg"
    assert (spec.width, spec.height, spec.fit, spec.format, spec.quality) == (300, 200, Fit.COVER, Format.WEBP, 70)
    assert request.variant_key("v1") == "v1/photos/2024/cat.jpg/w=300,h=200,fit=cover,enlarge=0,fm=webp,q=70"


def test_no_parameters_means_the_original() -> None:
    assert parse("/photos/cat.jpg", {}).spec is None


@pytest.mark.parametrize(
    ("key", "expected"),
    [("a.jpg", Format.JPEG), ("a.JPEG", Format.JPEG), ("a.png", Format.PNG), ("a.gif", Format.GIF),
     ("a.webp", Format.WEBP), ("a.avif", Format.AVIF), ("noextension", Format.ORIGINAL), ("a.bin", Format.ORIGINAL)],
)
def test_without_fm_the_originals_format_is_kept(key: str, expected: Format) -> None:
    assert parse(f"/{key}", {"w": ["10"]}).spec.format is expected


def test_original_format_decided_at_render_has_no_default_quality() -> None:
    assert canonical("/noext", {"w": "10"}) == "w=10,fit=inside,enlarge=0,bg=ffffff,fm=original"


@pytest.mark.parametrize(
    ("accept", "key", "expected"),
    [
        (CHROME, "a.jpg", Format.AVIF),
        (FIREFOX, "a.png", Format.AVIF),
        (SAFARI_16, "a.jpg", Format.AVIF),
        (EDGE_LEGACY, "a.jpg", Format.WEBP),
        (SAFARI_13, "a.jpg", Format.JPEG),
        (SAFARI_13, "a.png", Format.PNG),  # transparency possible: never JPEG
        (SAFARI_13, "a.webp", Format.PNG),
        (SAFARI_13, "noext", Format.PNG),
        ("", "a.gif", Format.GIF),
        (CHROME, "a.gif", Format.WEBP),  # animation: never AVIF
        ("image/avif;q=0,image/webp", "a.jpg", Format.WEBP),
        ("*/*", "a.jpg", Format.JPEG),
    ],
)
def test_auto_format_is_chosen_from_accept(accept: str, key: str, expected: Format) -> None:
    # given fm=auto, when the browser's Accept header is parsed, then AVIF > WebP > the original's (safe) format
    request = parse(f"/{key}", {"w": ["100"], "fm": ["auto"]}, accept)
    spec = request.spec
    assert request.negotiated
    assert spec.format is expected
    assert spec.quality == expected.default_quality


def test_auto_resolves_to_the_same_variant_as_the_concrete_format() -> None:
    assert canonical("/a.jpg", {"w": "300", "fm": "auto"}, CHROME) == canonical("/a.jpg", {"w": "300",
                                                                                          "fm": "avif"})


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"w": ["0"]}, "w"),
        ({"w": ["-1"]}, "w"),
        ({"w": ["abc"]}, "w"),
        ({"w": ["1e9"]}, "w"),
        ({"w": ["1.5"]}, "w"),
        ({"w": ["5000"]}, "w"),  # over the 4096 cap
        ({"h": ["999999999"]}, "h"),
        ({"w": [""]}, "w"),
        ({"q": ["500"]}, "q"),
        ({"q": ["0"]}, "q"),
        ({"w": ["100", "200"]}, "w"),
        ({"fit": ["squash"]}, "fit"),
        ({"fm": ["bmp"]}, "fm"),
        ({"fm": ["tiff"]}, "fm"),
        ({"bg": ["red"]}, "bg"),
        ({"enlarge": ["yes"]}, "enlarge"),
        ({"dpr": ["5"]}, "dpr"),
        ({"dpr": ["0.5"]}, "dpr"),
        ({"resize": ["300"]}, "resize"),
        ({"resize": ["0*200"]}, "resize"),
        ({"blur": ["3"]}, "blur"),
        ({"W": ["10"], "width": ["10"]}, "width"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(query: dict[str, list[str]], parameter: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse("/photos/cat.jpg", query)
    assert caught.value.status == 400
    assert caught.value.details["parameter"] == parameter
    assert caught.value.to_body()["message"].startswith(parameter)


def test_alias_given_with_its_canonical_name_counts_as_repeated() -> None:
    with pytest.raises(BadParameter, match="more than once"):
        parse("/a.jpg", {"w": ["100"], "width": ["200"]})


def test_dpr_scales_and_stays_under_the_cap() -> None:
    spec = parse("/a.jpg", {"w": ["3000"], "h": ["1500"], "dpr": ["2"]}).spec
    assert (spec.width, spec.height) == (4096, 2048)  # 6000x3000 scaled down uniformly to the cap


def test_output_cap_is_configurable() -> None:
    with pytest.raises(BadParameter):
        parse("/a.jpg", {"w": ["1200"]}, max_side=1000)
    assert parse("/a.jpg", {"w": ["1000"]}, max_side=1000).spec.width == 1000


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("/photos/2024/cat.jpg", "photos/2024/cat.jpg"),
        ("/my%20photo.jpg", "my photo.jpg"),
        ("/caf%C3%A9.jpg", "café.jpg"),
        ("/a%2Fb.jpg", "a/b.jpg"),
        ("/100%25.jpg", "100%.jpg"),
        ("/a%252e%252e/b.jpg", "a%2e%2e/b.jpg"),  # decoded once only: %25 becomes %, no further
    ],
)
def test_keys_are_percent_decoded_exactly_once(raw: str, key: str) -> None:
    assert parse(raw, {}).key == key


@pytest.mark.parametrize(
    "raw",
    ["/", "//a.jpg", "/a//b.jpg", "/../a.jpg", "/a/../b.jpg", "/%2e%2e/a.jpg", "/a/./b.jpg", "/a%5Cb.jpg",
     "/a%00.jpg", "/a%0A.jpg", "/%FF.jpg", "/" + "a" * 1025],
)
def test_unsafe_keys_are_refused(raw: str) -> None:
    with pytest.raises(BadKey) as caught:
        parse(raw, {"w": ["10"]})
    assert caught.value.status == 400
