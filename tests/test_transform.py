"""The render pipeline on real photos and built images: sizes per fit, orientation, colour, alpha, refusals."""

from __future__ import annotations

import functools
import io
import math
import platform
from collections.abc import Callable
from dataclasses import replace

import hostile
import icc
import pytest
from conftest import fixture, png_bytes, sample
from PIL import Image, ImageChops, ImageStat
from PIL.JpegImagePlugin import JpegImageFile

from imageorigin import render as transform
from imageorigin.errors import TooLarge, Undecodable, UnsupportedType
from imageorigin.grammars.query import parse
from imageorigin.model import HAlign
from imageorigin.render import pixels

LIMITS = transform.Limits()


def render(data: bytes, **query: str) -> tuple[transform.Rendered, Image.Image]:
    spec = parse("/x", {k: [v] for k, v in query.items()}).spec
    out = transform.render(data, spec, LIMITS)
    image = Image.open(io.BytesIO(out.data))
    image.load()
    return out, image


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ({"w": "300"}, (300, 245)),
        ({"h": "100"}, (122, 100)),
        ({"w": "300", "h": "200"}, (245, 200)),  # inside: fits the box, aspect kept
        ({"w": "300", "h": "300", "fit": "cover"}, (300, 300)),
        ({"w": "300", "h": "100", "fit": "cover"}, (300, 100)),
        ({"w": "300", "h": "300", "fit": "contain"}, (300, 300)),
        ({"w": "300", "h": "100", "fit": "fill"}, (300, 100)),
        ({"w": "300", "h": "300", "fit": "outside"}, (367, 300)),
        ({"w": "4000"}, (2725, 2225)),  # never enlarged by default
        ({"w": "4000", "enlarge": "1"}, (4000, 3266)),
    ],
)
def test_fit_modes_give_the_documented_sizes(query: dict[str, str], size: tuple[int, int]) -> None:
    # given a 2725x2225 photo, when rendered, then the decoded output has the size its fit promises
    out, image = render(sample("photos/2024/street.jpg"), **query)
    assert image.size == size == (out.width, out.height)


def test_a_format_change_only_keeps_the_size() -> None:
    # a 1201x800 photo (a PNG of the 2725x2225 one took 4 s to encode: the same check, a fifth of the pixels)
    out, image = render(sample("photos/progressive.jpg"), fm="png")
    assert (image.format, image.size, image.mode) == ("PNG", (1201, 800), "RGB") and (out.width, out.height) == (
        1201, 800)


def test_output_format_matches_what_was_asked() -> None:
    for fm, pil_name in [("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("avif", "AVIF"), ("gif", "GIF")]:
        out, image = render(sample("photos/progressive.jpg"), w="120", fm=fm)
        assert image.format == pil_name
        assert out.content_type == f"image/{fm}"
        assert image.width == 120


def test_keep_format_follows_the_decoded_original() -> None:
    out, image = render(sample("photos/lake.webp"), w="200")  # key /x has no extension: decided at render
    assert image.format == "WEBP" and out.format == "webp"


def test_resized_photo_matches_a_full_resolution_reference() -> None:
    # given decode-time downscaling, when compared with a full decode + LANCZOS, then the pictures agree closely
    data = sample("photos/2024/street.jpg")
    _, ours = render(data, w="400", fm="png")
    reference = Image.open(io.BytesIO(data)).convert("RGB").resize(ours.size, Image.Resampling.LANCZOS)
    assert mean_difference(ours, reference) < 1.5


def psnr(a: Image.Image, b: Image.Image) -> float:
    stat = ImageStat.Stat(ImageChops.difference(a, b))
    mse = sum(stat.sum2) / (len(a.getbands()) * a.width * a.height)
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


def over_white(image: Image.Image) -> Image.Image:
    """What a viewer sees: alpha composited onto white (the colour of a fully transparent pixel is invisible)."""
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


@functools.cache
def street_in_mode(mode: str) -> Image.Image:
    """The 2725x2225 street photo in one mode, made once a test process (decoding it took a tenth of a second for
    each of the twenty cases below); alpha modes get a gradient and a transparent magenta corner. Only read: resize
    returns a new image."""
    photo = Image.open(io.BytesIO(sample("photos/2024/street.jpg"))).convert("RGB")
    if "A" in mode:
        alpha = Image.linear_gradient("L").resize(photo.size)
        alpha.paste(0, (0, 0, 600, 600))
        photo.paste((255, 0, 255), (0, 0, 600, 600))  # hidden under full transparency: must never bleed out
        photo.putalpha(alpha)
    return photo.convert(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((400, 327), (0, 0, 2725, 2225)),  # 6.8x: box-reduced by 3, then LANCZOS
        ((1200, 980), (0, 0, 2725, 2225)),  # 2.3x: LANCZOS alone
        ((300, 300), (410.5, 120.25, 1910.5, 1620.25)),  # a cover crop at fractional coordinates
        ((3000, 2450), (0, 0, 2725, 2225)),  # enlarged
        ((640, 1), (0, 1000, 2725, 1001)),  # a one-pixel strip
    ],
)
def test_resize_step_matches_pillows_lanczos(mode: str, size: tuple[int, int],
                                             box: tuple[float, float, float, float]) -> None:
    # given a photo in each mode transform resizes (alpha: a gradient, a transparent magenta corner), when its
    # box is resized (SIMD LANCZOS), then it agrees with Pillow's LANCZOS of the same box, as a viewer sees it
    picture = street_in_mode(mode)
    ours = pixels.resize(picture, size, box)
    pillow = picture.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=pixels.REDUCING_GAP)
    assert ours.mode == mode and ours.size == size
    assert psnr(over_white(ours), over_white(pillow)) > 50  # measured 54-99 dB; BILINEAR would give 40-47
    if "A" in mode:  # alpha itself resized alike
        assert psnr(ours.getchannel("A"), pillow.getchannel("A")) > 50
    if "A" in mode and box[:2] == (0, 0):  # and the transparent corner stays transparent
        assert ours.getchannel("A").getpixel((0, 0)) == 0


def test_resize_step_is_fast_image_resize_where_it_can_be_and_pillow_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given the SIMD LANCZOS watched, when RGB, CMYK and LA pictures are resized, then the first two go through it,
    # LA (which it does not take) through Pillow; and without it (no wheel) every mode still resizes correctly
    fast = pixels.fast_lanczos()
    if platform.machine() != "aarch64":  # requirements.txt installs it wherever it has a wheel
        assert fast is not None
    modes: list[str] = []

    def spy(picture: Image.Image, size: tuple[int, int], box: tuple[float, ...]) -> Image.Image:
        modes.append(picture.mode)
        return fast(picture, size, box)

    pictures = {"RGB": (200, 30, 40), "CMYK": (0, 255, 255, 0), "LA": (90, 255)}
    for without in (False, True) if fast is not None else (True,):
        modes.clear()
        monkeypatch.setattr(pixels, "fast_lanczos", lambda without=without: None if without else spy)
        for mode, colour in pictures.items():
            out = pixels.resize(Image.new(mode, (800, 600), colour), (300, 225), (0, 0, 800, 600))
            assert out.mode == mode and out.size == (300, 225) and out.getpixel((150, 110)) == colour
        assert modes == ([] if without else ["RGB", "CMYK"])


def test_resize_step_takes_a_box_a_rounding_error_past_the_edge() -> None:
    # given a box whose far edge is past the picture by float residue, when resized, then it is the whole picture
    picture = Image.new("RGB", (100, 80), (1, 2, 3))
    picture.paste((250, 0, 0), (90, 0, 100, 80))
    out = pixels.resize(picture, (10, 8), (0, 0, 100 + 1e-9, 80 + 1e-9))
    assert out.size == (10, 8) and out.getpixel((9, 4))[0] > 200 and out.getpixel((0, 4)) == (1, 2, 3)


def test_jpeg_is_drafted_well_below_full_size_for_a_thumbnail(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a 2725x2225 JPEG and a 300 px thumbnail, when rendered, then it is decoded at a reduced DCT scale
    decoded: list[tuple[int, int]] = []
    original_draft = JpegImageFile.draft

    def spy(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        result = original_draft(self, mode, size)
        decoded.append(self.size)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    render(sample("photos/2024/street.jpg"), w="300")
    assert decoded and decoded[0][0] <= -(-2725 // 4)  # a quarter of the width (the decoder rounds up)
    assert decoded[0][0] >= 300 * pixels.DRAFT_HEADROOM  # but keeps headroom over the target for sharpness


@pytest.mark.parametrize("fm", ["jpeg", "png", "webp"])
def test_exif_orientation_is_applied(fm: str) -> None:
    # given the same photo stored rotated with EXIF orientation 8, when rendered, then it matches the upright one
    _, upright = render(fixture("Landscape_1.jpg"), w="300", fm=fm)
    _, rotated = render(fixture("Landscape_8.jpg"), w="300", fm=fm)
    assert rotated.size == upright.size == (300, 200)
    assert mean_difference(rotated, upright) < 3
    assert not rotated.getexif()


# How a camera stores an upright picture for each EXIF orientation (the inverse of what a viewer applies).
_STORED = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_270}


def quadrants(size: tuple[int, int] = (480, 320)) -> Image.Image:
    """Red, green, blue and white quarters with a black block near the top-left corner: every turn tells."""
    w, h = size
    image = Image.new("RGB", size, (255, 255, 255))
    image.paste((220, 30, 30), (0, 0, w // 2, h // 2))
    image.paste((30, 200, 30), (w // 2, 0, w, h // 2))
    image.paste((30, 30, 220), (0, h // 2, w // 2, h))
    image.paste((0, 0, 0), (40, 30, 100, 70))
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("change", [{"crop": (20, 10, 260, 170)}, {"halign": HAlign.LEFT}, {}])
def test_every_orientation_crops_and_resizes_the_upright_picture(orientation: int, change: dict) -> None:
    # given the same picture stored turned with each EXIF orientation, when a region of it is resized (a manual
    # crop, a left-anchored cover crop, a plain cover crop: the resize runs on the stored pixels, the turn after),
    # then the output matches the same render of the upright original
    upright = quadrants()
    stored = upright.transpose(_STORED[orientation]) if orientation in _STORED else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = io.BytesIO()
    stored.save(data, "JPEG", quality=95, exif=exif.tobytes())
    reference = io.BytesIO()
    upright.save(reference, "JPEG", quality=95)
    spec = replace(parse("/x", {"w": ["120"], "h": ["90"], "fit": ["cover"], "fm": ["png"]}).spec, **change)
    images = [Image.open(io.BytesIO(transform.render(raw, spec, LIMITS).data)) for raw in (data.getvalue(),
                                                                                         reference.getvalue())]
    assert images[0].size == images[1].size == (120, 90)
    assert mean_difference(*images) < 3
    red, green, blue = images[0].getpixel((2, 2))[:3]
    assert red > 180 and green < 80 and blue < 80  # the top-left corner is the red quarter's


def test_exif6_sample_comes_out_upright_with_crop() -> None:
    _, image = render(sample("photos/landscape-exif6.jpg"), w="200", h="200", fit="cover", fm="png")
    _, reference = render(fixture("Landscape_1.jpg"), w="200", h="200", fit="cover", fm="png")
    assert image.size == (200, 200)
    assert mean_difference(image, reference) < 3


def half_transparent() -> bytes:
    """Left half fully transparent over a hidden red; right half opaque blue."""
    image = Image.new("RGBA", (200, 100), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (100, 0, 200, 100))
    return png_bytes(image)


def test_transparency_is_flattened_onto_bg_for_jpeg_never_the_hidden_colour() -> None:
    _, image = render(half_transparent(), w="100", fm="jpeg", bg="00ff00")
    assert image.mode == "RGB"
    r, g, b = image.getpixel((10, 25))
    assert g > 230 and r < 25 and b < 25  # the background, not the red hidden under alpha 0
    r, g, b = image.getpixel((90, 25))
    assert b > 230 and r < 25 and g < 25


@pytest.mark.parametrize("fm", ["png", "webp", "avif"])
def test_transparency_is_kept_for_formats_with_alpha(fm: str) -> None:
    _, image = render(half_transparent(), w="100", fm=fm)
    assert image.mode == "RGBA"
    assert image.getpixel((10, 25))[3] < 10
    assert image.getpixel((90, 25))[3] > 245
    assert image.getpixel((90, 25))[2] > 230


def test_real_rgba_png_keeps_alpha_and_flattens_to_white() -> None:
    data = sample("graphics/alpha.png")
    source = Image.open(io.BytesIO(data)).resize((400, 300), Image.Resampling.LANCZOS)
    _, png = render(data, w="400", fm="png")
    _, jpeg = render(data, w="400", fm="jpeg")
    assert png.mode == "RGBA" and png.size == jpeg.size == (400, 300)
    assert abs(ImageStat.Stat(png.getchannel("A")).mean[0] - ImageStat.Stat(source.getchannel("A")).mean[0]) < 2
    flattened = Image.new("RGB", source.size, (255, 255, 255))
    flattened.paste(source, mask=source.getchannel("A"))
    assert mean_difference(jpeg, flattened) < 3


def test_palette_transparency_survives() -> None:
    _, png = render(fixture("pngsuite/tbbn3p08.png"), w="64", enlarge="1", fm="png")
    assert png.mode == "RGBA" and png.size == (64, 64)
    assert png.getchannel("A").getextrema() == (0, 255)


@pytest.mark.parametrize(("fm", "mode"), [("png", "LA"), ("webp", "RGBA"), ("jpeg", "L")])
def test_grey_with_alpha_keeps_or_flattens_its_alpha(fm: str, mode: str) -> None:
    # given PngSuite's LA image, when rendered, then alpha is kept where the format has it and flattened onto white
    data = fixture("pngsuite/basn4a08.png")
    source = Image.open(io.BytesIO(data))
    _, image = render(data, w="32", fm=fm)
    assert image.mode == mode and image.size == (32, 32)
    if mode != "L":
        assert abs(ImageStat.Stat(image.getchannel("A")).mean[0] - ImageStat.Stat(source.getchannel("A")).mean[0]) < 2
    else:
        flat = Image.new("L", source.size, 255)
        flat.paste(source.convert("L"), mask=source.getchannel("A"))
        assert mean_difference(image, flat) < 3


def test_16_bit_grey_keeps_its_tonal_range() -> None:
    # given a 16-bit greyscale PNG with dark values, when reduced to 8 bits, then it does not turn near-white
    data = fixture("pngsuite/tbwn0g16.png")
    _, image = render(data, w="32", fm="png")
    low, high = image.convert("L").getextrema()
    assert low < 40 and high > 200
    _, gradient = render(fixture("pngsuite/basn0g16.png"), w="32", fm="png")
    assert gradient.mode == "L" and gradient.getextrema()[0] < 10


def test_grayscale_stays_grayscale_in_jpeg_and_png() -> None:
    grey = Image.linear_gradient("L").resize((300, 200))
    for fm in ("jpeg", "png"):
        _, image = render(png_bytes(grey), w="150", fm=fm)
        assert image.mode == "L"


def srgb_reference(data: bytes, size: tuple[int, int]) -> Image.Image:
    """Full decode, conversion through the embedded profile with ImageCms, LANCZOS to `size`."""
    from PIL import ImageCms

    image = Image.open(io.BytesIO(data))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    converted = ImageCms.profileToProfile(image, profile, srgb, outputMode="RGB")
    return converted.resize(size, Image.Resampling.LANCZOS)


def test_adobe_cmyk_jpeg_is_converted_through_its_profile() -> None:
    # given an Adobe (inverted) CMYK JPEG with a CMYK profile, when rendered, then colours match a colour-managed
    # reference, not Pillow's naive CMYK formula (which oversaturates this photo's greens)
    data = sample("photos/cmyk.jpg")
    _, image = render(data, w="250", fm="png")
    naive = Image.open(io.BytesIO(data)).convert("RGB").resize(image.size, Image.Resampling.LANCZOS)
    assert image.mode == "RGB" and image.size == (250, 166)
    assert mean_difference(image, srgb_reference(data, image.size)) < 2
    assert mean_difference(image, naive) > 8


def test_untagged_cmyk_uses_the_standard_conversion() -> None:
    cmyk = Image.new("CMYK", (80, 60), (0, 255, 255, 0))  # pure red ink mix
    out = io.BytesIO()
    cmyk.save(out, "JPEG", quality=95)
    _, image = render(out.getvalue(), w="40", fm="png")
    r, g, b = image.getpixel((20, 15))
    assert image.mode == "RGB" and r > 230 and g < 25 and b < 25


@pytest.mark.parametrize("profile", [icc.display_p3, icc.adobe_rgb])
def test_wide_gamut_profiles_are_converted_to_untagged_srgb(profile: Callable[[], bytes]) -> None:
    # given a photo tagged Display P3 or Adobe RGB, when rendered, then pixels are converted to sRGB and untagged
    photo = Image.new("RGB", (64, 64), (40, 160, 90))
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=95, icc_profile=profile())
    data = out.getvalue()
    for fm in ("png", "jpeg", "webp"):
        _, image = render(data, w="32", fm=fm)
        assert "icc_profile" not in image.info
        expected = srgb_reference(data, image.size).getpixel((16, 16))
        assert all(abs(a - b) <= 3 for a, b in zip(image.convert("RGB").getpixel((16, 16)), expected, strict=True))
        assert abs(image.convert("RGB").getpixel((16, 16))[0] - 40) > 10  # visibly converted, not passed through


def test_no_metadata_reaches_the_output() -> None:
    # given a JPEG with EXIF GPS, a comment and an ICC profile, and a PNG with text chunks
    from PIL import ImageCms, PngImagePlugin

    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = Image.new("RGB", (100, 80), (10, 120, 200))
    jpeg = io.BytesIO()
    photo.save(jpeg, "JPEG", exif=exif, comment=b"secret", icc_profile=srgb)
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone")
    png = io.BytesIO()
    photo.save(png, "PNG", pnginfo=info)
    # when rendered to every format, then nothing of it is in the output
    for data in (jpeg.getvalue(), png.getvalue()):
        for fm in ("jpeg", "png", "webp", "avif"):
            rendered, image = render(data, w="50", fm=fm)
            assert not image.getexif()
            assert not {"exif", "comment", "icc_profile", "Author", "xmp"} & set(image.info)
            assert b"secret" not in rendered.data and b"CameraMaker" not in rendered.data


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", Undecodable),
        (b"hello, I am a text file", UnsupportedType),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">', Undecodable),
        (b"<!doctype html><html><body>hi</body></html>", UnsupportedType),
        (b"%PDF-1.7\n", UnsupportedType),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", UnsupportedType),
        (b"8BPS\x00\x01" + b"\0" * 40, UnsupportedType),  # PSD (BMP and TIFF are read since issue 15)
        (b"\x76\x2f\x31\x01" + b"\0" * 40, UnsupportedType),  # OpenEXR
        (sample("photos/2024/street.jpg")[:20_000], Undecodable),  # truncated: never served grey-filled
        (sample("photos/progressive.jpg")[:5_000], Undecodable),
        (sample("graphics/alpha.png")[:3_000], Undecodable),
        (fixture("pngsuite/xc1n0g08.png"), Undecodable),
        (fixture("pngsuite/xdtn0g01.png"), Undecodable),
        (hostile.png(50_000, 50_000), TooLarge),
        (hostile.png(7_000, 7_000), TooLarge),  # 49 MP: over the 40 MP default
    ],
)
def test_bad_originals_are_refused_with_the_right_error(data: bytes, error: type[Exception]) -> None:
    spec = parse("/x", {"w": ["100"]}).spec
    with pytest.raises(error) as caught:
        transform.render(data, spec, LIMITS)
    assert 400 <= caught.value.status < 500


def test_pixel_limit_is_configurable() -> None:
    spec = parse("/x", {"w": ["100"]}).spec
    with pytest.raises(TooLarge, match="MP"):
        transform.render(sample("photos/2024/street.jpg"), spec, transform.Limits(max_pixels=5_000_000))


def test_probe_reads_the_header_only() -> None:
    info = transform.probe(sample("photos/lake.webp"), LIMITS)
    assert (info.format, info.width, info.height, info.content_type) == ("webp", 1024, 772, "image/webp")
    with pytest.raises(UnsupportedType):
        transform.probe(b"<html>", LIMITS)
