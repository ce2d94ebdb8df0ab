"""Every format users upload (BMP, TIFF, ICO/CUR, SVG, JPEG XL) decoded and checked by what comes back: size, mode,
colour of known pixels; each new decoder tried with hostile files of its kind."""

from __future__ import annotations

import io
import struct

import pytest
from conftest import api_event, invoke, sample
from fakes import MemoryStore
from PIL import Image, TiffImagePlugin

from imageorigin import render, runtime
from imageorigin.errors import TooLarge, Undecodable
from imageorigin.grammars.query import parse

LIMITS = render.Limits()
RED, BLUE = (220, 20, 30), (20, 40, 210)


def split(width: int = 64, height: int = 40) -> Image.Image:
    """Left half red, right half blue: known pixels at known places."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


def saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def rendered(data: bytes, key: str, **query: str) -> Image.Image:
    out = render.render(data, parse("/" + key, {k: [v] for k, v in query.items()}).spec, LIMITS)
    image = Image.open(io.BytesIO(out.data))
    image.load()
    return image


def assert_split(image: Image.Image, tolerance: int = 40) -> None:
    rgb = image.convert("RGB")
    left, right = rgb.getpixel((2, rgb.height // 2)), rgb.getpixel((rgb.width - 3, rgb.height // 2))
    assert all(abs(a - b) <= tolerance for a, b in zip(left, RED, strict=True)), left
    assert all(abs(a - b) <= tolerance for a, b in zip(right, BLUE, strict=True)), right


# -- BMP ---------------------------------------------------------------------------------------------------------

def bmp_rle8() -> bytes:
    """An 8-bit RLE BMP written byte by byte (Pillow writes none): 4x2, left red, right blue, bottom-up."""
    palette = bytes([RED[2], RED[1], RED[0], 0, BLUE[2], BLUE[1], BLUE[0], 0])
    rows = bytes([2, 0, 2, 1, 0, 0]) * 2 + bytes([0, 1])  # two runs a row, end of line; end of bitmap
    header = struct.pack("<IiiHHIIiiII", 40, 4, 2, 1, 8, 1, len(rows), 2835, 2835, 2, 0)
    offset = 14 + len(header) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + header + palette + rows


def bmp_rle4() -> bytes:
    """A 4-bit RLE BMP written byte by byte: 4x2, left red, right blue; each run is a count and two pixels a byte."""
    palette = bytes([RED[2], RED[1], RED[0], 0, BLUE[2], BLUE[1], BLUE[0], 0]) + bytes(4 * 14)
    rows = bytes([2, 0x00, 2, 0x11, 0, 0]) * 2 + bytes([0, 1])  # red, red | blue, blue, end of line; end of bitmap
    header = struct.pack("<IiiHHIIiiII", 40, 4, 2, 1, 4, 2, len(rows), 2835, 2835, 16, 0)
    offset = 14 + len(header) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + header + palette + rows


def bmp_4bit() -> bytes:
    """A 4-bit palette BMP written byte by byte: 4x2, left red, right blue (two pixels a byte, rows padded to 4)."""
    palette = bytes([RED[2], RED[1], RED[0], 0, BLUE[2], BLUE[1], BLUE[0], 0]) + bytes(4 * 14)
    row = bytes([0x00, 0x11, 0, 0])  # pixels 0,0 | 1,1, padded to four bytes
    header = struct.pack("<IiiHHIIiiII", 40, 4, 2, 1, 4, 0, len(row) * 2, 2835, 2835, 16, 0)
    offset = 14 + len(header) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(row) * 2, 0, 0, offset) + header + palette + row * 2


def bmp_16bit(top_down: bool = False) -> bytes:
    """A 16-bit (5-5-5) BMP, optionally stored top-down (negative height): 4x2, left red, right blue."""
    def pixel(rgb: tuple[int, int, int]) -> bytes:
        r, g, b = (v >> 3 for v in rgb)
        return struct.pack("<H", (r << 10) | (g << 5) | b)
    row = pixel(RED) * 2 + pixel(BLUE) * 2
    header = struct.pack("<IiiHHIIiiII", 40, 4, -2 if top_down else 2, 1, 16, 0, len(row) * 2, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(row) * 2, 0, 0, 54) + header + row * 2


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("24-bit", saved(split(), "BMP")),
        ("8-bit palette", saved(split().quantize(16), "BMP")),
        ("1-bit", saved(split().convert("1"), "BMP")),
        ("32-bit with alpha", saved(split().convert("RGBA"), "BMP")),
        ("4-bit palette", bmp_4bit()),
        ("RLE8", bmp_rle8()),
        ("RLE4", bmp_rle4()),
        ("16-bit", bmp_16bit()),
        ("16-bit top-down", bmp_16bit(top_down=True)),
    ],
)
def test_bmp_originals_come_out_as_png_by_default(name: str, data: bytes) -> None:
    image = rendered(data, "scan.bmp", w="32", enlarge="1")
    assert image.format == "PNG" and image.width == 32
    if name != "1-bit":
        assert_split(image)


def test_bmp_in_any_format_on_request() -> None:
    for fm in ("jpeg", "webp", "avif", "gif", "jxl"):
        image = rendered(saved(split(), "BMP"), "scan.bmp", w="32", fm=fm)
        assert image.format == {"jxl": "JXL"}.get(fm, fm.upper()) and image.width == 32
        assert_split(image)


# -- TIFF --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"])
def test_tiff_compressions(compression: str) -> None:
    image = rendered(saved(split(), "TIFF", compression=compression), "page.tif", w="32")
    assert image.format == "JPEG" and image.size == (32, 20)  # TIFF keeps as JPEG (photos, scans)
    assert_split(image)


def test_tiff_16_bit_grey_and_strips_of_rows() -> None:
    grey = Image.linear_gradient("L").resize((64, 64)).convert("I").point(lambda v: v * 257).convert("I;16")
    image = rendered(saved(grey, "TIFF", compression="tiff_adobe_deflate"), "grey.tif", w="32", fm="png")
    assert image.size == (32, 32) and image.mode in ("L", "I;16", "I")
    top, bottom = image.getpixel((16, 1)), image.getpixel((16, 30))
    assert top < bottom  # the gradient survives


def test_tiff_cmyk_with_its_profile_is_converted_like_the_same_jpeg() -> None:
    # given the Adobe CMYK sample re-saved as an LZW TIFF with its profile, when both are rendered, then they agree
    jpeg = sample("photos/cmyk.jpg")
    source = Image.open(io.BytesIO(jpeg))
    assert source.mode == "CMYK"
    tiff = saved(source, "TIFF", compression="tiff_lzw", icc_profile=source.info["icc_profile"])
    from_jpeg, from_tiff = rendered(jpeg, "a.jpg", w="100", fm="png"), rendered(tiff, "a.tif", w="100", fm="png")
    assert from_tiff.size == from_jpeg.size and from_tiff.mode == "RGB"
    for point in ((10, 10), (50, 33), (90, 60)):
        assert all(abs(a - b) <= 24 for a, b in zip(from_tiff.getpixel(point), from_jpeg.getpixel(point),
                                                     strict=True)), point


def test_tiff_orientation_tag_is_applied() -> None:
    data = io.BytesIO()
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[274] = 6  # stored turned: displayed rotated 90 degrees clockwise
    split(64, 40).save(data, "TIFF", tiffinfo=info)
    image = rendered(data.getvalue(), "turned.tif", fm="png")
    assert image.size == (40, 64)
    assert image.convert("RGB").getpixel((20, 2))[0] > 150  # red (the stored left) is now on top


def test_tiff_first_page_and_pages_counted() -> None:
    pages = [split(), Image.new("RGB", (64, 40), (0, 200, 0))]
    data = saved(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert_split(rendered(data, "two.tif", w="32"))
    many = saved(Image.new("L", (2, 2)), "TIFF", save_all=True, append_images=[Image.new("L", (2, 2))] * 150)
    with pytest.raises(TooLarge, match="frames or pages"):
        render.render(many, parse("/many.tif", {"w": ["10"]}).spec, LIMITS)


# -- ICO / CUR ---------------------------------------------------------------------------------------------------

def test_ico_takes_the_largest_entry() -> None:
    data = saved(split(128, 128), "ICO", sizes=[(16, 16), (48, 48), (128, 128)])
    image = rendered(data, "favicon.ico", fm="png")
    assert image.size == (128, 128) and image.format == "PNG"
    assert_split(image)


def test_a_cursor_is_read_as_an_icon_and_comes_out_as_png() -> None:
    # a .cur is an ICO of bitmap (DIB) entries whose header says 2 (cursor) and whose entries give a hotspot where an
    # icon gives planes and bits: Pillow writes no cursor, so an icon of bitmaps is changed into one
    icon = saved(split(64, 64), "ICO", sizes=[(32, 32), (64, 64)], bitmap_format="bmp")
    at = [6 + 16 * i for i in range(2)]  # the two 16-byte entries: hotspot (3, 5) in place of planes and bit count
    entries = b"".join(icon[a:a + 4] + struct.pack("<HH", 3, 5) + icon[a + 8:a + 16] for a in at)
    cursor = icon[:2] + struct.pack("<H", 2) + icon[4:6] + entries + icon[6 + 32:]
    image = rendered(cursor, "pointer.cur", w="32")
    assert (image.format, image.size) == ("PNG", (32, 32))
    assert_split(image)


# -- SVG ---------------------------------------------------------------------------------------------------------

LOGO = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" '
        b'viewBox="0 0 100 50"><rect width="50" height="50" fill="rgb(220,20,30)"/>'
        b'<rect x="50" width="50" height="50" fill="rgb(20,40,210)"/></svg>')


@pytest.mark.parametrize(("query", "size"), [({"fm": "png"}, (100, 50)), ({"w": "800"}, (800, 400)),
                                             ({"w": "30"}, (30, 15)), ({"w": "120", "h": "120", "fit": "cover"},
                                                                       (120, 120))])
def test_svg_is_drawn_at_the_size_asked_a_vector_enlarges(query: dict, size: tuple[int, int]) -> None:
    image = rendered(LOGO, "logo.svg", **query)
    assert image.size == size and image.format == "PNG"
    assert_split(image, tolerance=10)


def test_svg_size_from_its_viewbox_alone() -> None:
    svg = LOGO.replace(b'width="100" height="50" ', b"")
    assert rendered(svg, "logo.svg", fm="png").size == (100, 50)


@pytest.mark.parametrize(
    ("name", "svg", "error"),
    [
        ("billion laughs", b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]>'
                           b'<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>', Undecodable),
        ("external entity", b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                            b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>', Undecodable),
        ("file image", b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
                       b'<image href="file:///etc/passwd" width="10" height="10"/></svg>', Undecodable),
        ("network image", b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
                          b'<image xlink:href="http://169.254.169.254/latest" width="10" height="10"/></svg>',
         Undecodable),
        ("relative image", b'<svg xmlns="http://www.w3.org/2000/svg"><image href="../../etc/hosts"/></svg>',
         Undecodable),
        ("huge viewBox", b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000000 1000000"/>', TooLarge),
        ("deep nesting", b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * 5000 + b"</g>" * 5000 + b"</svg>",
         TooLarge),
        ("not XML", b"<svg xmlns='http://www.w3.org/2000/svg'><rect></svg>", Undecodable),
    ],
)
def test_hostile_svgs_are_refused(name: str, svg: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        render.render(svg, parse("/x.svg", {"fm": ["png"]}).spec, LIMITS)


# Well under MAX_ELEMENTS, yet 9 s a megapixel to draw: 2,000 overlapping translucent squares (what a drawing costs
# cannot be read from its markup).
OVERDRAWN = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">' + "".join(
    f'<rect x="{i % 100}" y="{i * 7 % 100}" width="30" height="30" fill="#{i * 123457 % 0xFFFFFF:06x}" '
    'opacity="0.5"/>' for i in range(2000)) + "</svg>").encode()


def test_a_drawing_that_costs_too_much_is_stopped_at_the_work_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a work limit of 0.3 s, when the overdrawn SVG is asked at 300 px (priced at a few ms, as an empty canvas
    # would be; 0.8 s of drawing), then resvg's child is stopped and the request refused (a hang guard, far above the
    # limit, not a measure of speed)
    import time

    started = time.monotonic()
    with pytest.raises(TooLarge, match="to draw at 300x300"):
        render.render(OVERDRAWN, parse("/x.svg", {"w": ["300"]}).spec, render.Limits(max_work_ms=300))
    assert time.monotonic() - started < 5
    # through the handler: a 413 naming the limit, nothing stored
    memory = MemoryStore()
    memory.add_original("art/overdrawn.svg", OVERDRAWN)
    monkeypatch.setattr(runtime, "store", lambda: memory)
    monkeypatch.setenv("MAX_WORK_MS", "300")
    answer = invoke(api_event("/art/overdrawn.svg", {"w": "300"}))
    assert (answer.status, answer.json["code"]) == (413, "too_large") and "MAX_WORK_MS" in answer.json["message"]
    assert memory.variants == {}
    # the same drawing, small, is drawn
    image = rendered(OVERDRAWN, "x.svg", w="40")
    assert image.size == (40, 40) and len(image.convert("RGB").getcolors(4096) or []) > 50


def test_a_drawing_cut_short_by_the_invocation_s_time_is_a_503() -> None:
    from imageorigin.deadline import Deadline
    from imageorigin.errors import OutOfTime

    spec = parse("/x.svg", {"w": ["300"]}).spec  # 0.8 s of drawing, well within MAX_WORK_MS
    with pytest.raises(OutOfTime, match="draw the SVG"):  # 0.4 s left: stopped by the time, not by the work
        render.render(OVERDRAWN, spec, LIMITS, Deadline.after(400, reserve_ms=0))
    with pytest.raises(OutOfTime, match="draw the SVG"):  # nothing left: not even started
        render.render(OVERDRAWN, spec, LIMITS, Deadline.after(0, reserve_ms=0))


def test_a_drawing_too_large_to_render_is_refused_before_it_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    from imageorigin.render import vector

    monkeypatch.setattr(vector, "draw", lambda *_: pytest.fail("drawn before the render was priced"))
    huge = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000000 1000000"/>'
    with pytest.raises(TooLarge, match="MAX_WORK_MS"):  # 4096x4096 as PNG: about 14 s of work
        render.render(huge, parse("/x.svg", {"fm": ["png"]}).spec, LIMITS)


def test_svg_scripts_never_run_and_never_reach_the_client() -> None:
    svg = LOGO.replace(b"</svg>", b"<script>document.title='owned'</script></svg>")
    image = rendered(svg, "logo.svg", w="50")
    assert image.format == "PNG" and image.size == (50, 25)  # drawn: pixels only


# -- JPEG XL -----------------------------------------------------------------------------------------------------

def test_jpeg_xl_in_and_out() -> None:
    import pillow_jxl  # noqa: F401 - registers the plugin for the fixture's encoder

    data = saved(split(), "JXL", quality=90)
    image = rendered(data, "photo.jxl", w="32")
    assert image.format == "JXL" and image.size == (32, 20)
    assert_split(image)
    out = rendered(saved(split(), "PNG"), "photo.png", w="32", fm="jxl")
    assert out.format == "JXL" and out.size == (32, 20)
    assert_split(out)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "AVIF"),  # Chromium 156
        ("image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,"
         "image/*;q=0.8,*/*;q=0.5", "AVIF"),  # Safari
        ("image/jxl,image/webp,*/*;q=0.8", "WEBP"),
        ("image/jxl,*/*;q=0.8", "JXL"),
    ],
)
def test_auto_orders_jxl_after_avif_and_webp(accept: str, expected: str) -> None:
    spec = parse("/photo.jpg", {"w": ["32"], "fm": ["auto"]}, accept).spec
    out = render.render(saved(split(), "JPEG"), spec, LIMITS)
    assert Image.open(io.BytesIO(out.data)).format == expected


# -- hostile files of each new kind -------------------------------------------------------------------------------

def _hostile() -> dict[str, tuple[bytes, type[Exception]]]:
    bmp = saved(split(), "BMP")
    huge_bmp = bmp[:18] + struct.pack("<ii", 100_000, 100_000) + bmp[26:]  # the header lies: 10 gigapixels
    tiff = saved(split(), "TIFF", compression="tiff_lzw")
    def tag(number: int, value: int) -> bytes:
        return struct.pack("<HHIH", number, 3, 1, value)
    assert tag(256, 64) in tiff and tag(257, 40) in tiff  # the header's width and height, as Pillow writes them
    huge_tiff = tiff.replace(tag(256, 64), tag(256, 65_000), 1).replace(tag(257, 40), tag(257, 60_000), 1)
    ico = saved(split(64, 64), "ICO", sizes=[(64, 64)])
    many_entries = ico[:4] + struct.pack("<H", 65535) + ico[6:]
    import pillow_jxl  # noqa: F401

    jxl = saved(split(), "JXL")
    return {
        "bmp truncated": (bmp[: len(bmp) // 2], Undecodable),
        "bmp lying size": (huge_bmp, TooLarge),
        "tiff truncated": (tiff[: len(tiff) // 2], Undecodable),
        "tiff lying size": (huge_tiff, TooLarge),  # 3.9 gigapixels declared: refused from the header
        "ico truncated": (ico[:40], Undecodable),
        "ico 65535 entries": (many_entries, (TooLarge, Undecodable)),
        "jxl truncated": (jxl[: len(jxl) // 2], Undecodable),
        "svg cut": (LOGO[:60], Undecodable),
    }


@pytest.mark.parametrize("name", sorted(_hostile()))
def test_hostile_files_of_each_new_kind_get_a_clear_4xx(name: str) -> None:
    data, error = _hostile()[name]
    with pytest.raises(error):
        render.render(data, parse("/x", {"w": ["32"], "fm": ["png"]}).spec, LIMITS)


# -- through the handler: the original as it is, pre-warm and ?picture --------------------------------------------

@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    store = MemoryStore()
    monkeypatch.setattr(runtime, "store", lambda: store)
    return store


@pytest.mark.parametrize(("key", "data", "fmt"), [("scan.bmp", saved(split(), "BMP"), "PNG"),
                                                   ("logo.svg", LOGO, "PNG"),
                                                   ("page.tif", saved(split(), "TIFF"), "JPEG")])
def test_with_no_parameters_these_originals_are_rendered_never_served_as_they_are(memory: MemoryStore, key: str,
                                                                                  data: bytes, fmt: str) -> None:
    memory.add_original(key, data)
    answer = invoke(api_event(f"/{key}", {}))
    assert answer.status == 200 and answer.image.format == fmt
    assert answer.headers["Content-Type"] == f"image/{fmt.lower()}"
    assert_split(answer.image, tolerance=45)
    # read once for the first answer; then the rendering is answered from the cache, the original not read again
    reads = [call for call in memory.calls if call == ("get_original", key)]
    assert len(reads) == 1
    assert len([call for call in memory.calls if call[0] == "get_variant"]) == 1  # and its variant looked up once
    again = invoke(api_event(f"/{key}", {}))
    assert again.headers["Server-Timing"].startswith("cache;desc=hit") and again.body == answer.body
    assert [call for call in memory.calls if call == ("get_original", key)] == reads


def test_with_no_parameters_the_bytes_decide_not_the_name(memory: MemoryStore) -> None:
    photo = sample("photos/progressive.jpg")
    memory.add_original("misnamed.bmp", photo)  # a JPEG named .bmp: served as the JPEG it is
    answer = invoke(api_event("/misnamed.bmp", {}))
    assert (answer.status, answer.headers["Content-Type"], answer.body) == (200, "image/jpeg", photo)
    memory.add_original("misnamed.png", saved(split(), "BMP"))  # a BMP named .png: rendered as a BMP is
    answer = invoke(api_event("/misnamed.png", {}))
    assert answer.headers["Content-Type"] == "image/png" and answer.image.format == "PNG"


def test_a_tiff_original_gets_its_ladder_and_picture(memory: MemoryStore) -> None:
    memory.add_original("scans/page.tif", saved(split(1600, 1000), "TIFF", compression="tiff_lzw"))
    answer = invoke(api_event("/scans/page.tif", {"picture": "json"}))
    assert answer.status == 200
    widths = sorted({v["width"] for v in answer.json["variants"]})
    assert widths == [30, 540, 768, 1080, 1200]
    formats = {v["format"] for v in answer.json["variants"]}
    assert formats == {"avif", "webp", "jpeg"}


def test_an_svg_upload_gets_its_ladder_and_picture(memory: MemoryStore) -> None:
    # an SVG's size comes from its markup (it was read as a raster: the pre-warm failed after rendering everything)
    from conftest import FakeContext, load_event

    from imageorigin.handlers import s3_events

    memory.add_original("art/logo.svg", LOGO.replace(b'width="100" height="50"', b'width="1400" height="700"'))
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"]["key"] = "art/logo.svg"
    assert s3_events.lambda_handler(event, FakeContext()) == {"handled": 1}
    answer = invoke(api_event("/art/logo.svg", {"picture": "json"}))
    assert answer.status == 200 and (answer.json["width"], answer.json["height"]) == (1400, 700)
    assert sorted({v["width"] for v in answer.json["variants"]}) == [30, 540, 768, 1080, 1200]
    assert {v["format"] for v in answer.json["variants"]} == {"avif", "webp", "png"}  # PNG: kept as for a graphic
    hit = invoke(api_event("/art/logo.svg", {"w": "540", "fm": "webp"}))
    assert hit.headers["Server-Timing"].startswith("cache;desc=hit") and hit.image.size == (540, 270)


def test_the_sample_photo_as_bmp_keeps_its_colours(memory: MemoryStore) -> None:
    photo = Image.open(io.BytesIO(sample("photos/progressive.jpg"))).convert("RGB")
    memory.add_original("photo.bmp", saved(photo, "BMP"))
    answer = invoke(api_event("/photo.bmp", {"w": "300"}))
    assert answer.image.format == "PNG" and answer.image.size == (300, 200)
    expected = photo.resize((300, 200), Image.Resampling.LANCZOS).getpixel((150, 100))
    got = answer.image.convert("RGB").getpixel((150, 100))
    assert all(abs(a - b) <= 12 for a, b in zip(got, expected, strict=True))


def tiled_tiff(image: Image.Image, tile: int = 16) -> bytes:
    """An uncompressed RGB TIFF stored in tiles, written byte by byte (Pillow writes strips only)."""
    width, height = image.size
    across, down = -(-width // tile), -(-height // tile)
    tiles = []
    for ty in range(down):
        for tx in range(across):
            block = Image.new("RGB", (tile, tile))
            block.paste(image.crop((tx * tile, ty * tile, min(width, tx * tile + tile), min(height, ty * tile + tile))))
            tiles.append(block.tobytes())
    count = len(tiles)
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2),
               (277, 3, 1, 3), (284, 3, 1, 1), (322, 3, 1, tile), (323, 3, 1, tile), (324, 4, count, None),
               (325, 4, count, None)]
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    bits_at, offsets_at = extra_at, extra_at + 6
    counts_at = offsets_at + 4 * count
    data_at = counts_at + 4 * count
    offsets = [data_at + i * len(tiles[0]) for i in range(count)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, number, value in entries:
        if tag == 258:
            value = bits_at
        elif tag == 324:
            value = offsets_at
        elif tag == 325:
            value = counts_at
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 and number == 1 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, number) + packed
    ifd += struct.pack("<I", 0)
    body = struct.pack("<HHH", 8, 8, 8) + struct.pack(f"<{count}I", *offsets)
    body += struct.pack(f"<{count}I", *[len(t) for t in tiles]) + b"".join(tiles)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + body


def test_tiff_in_tiles() -> None:
    data = tiled_tiff(split())
    assert Image.open(io.BytesIO(data)).tag_v2.get(322) == 16  # it really is tiled
    image = rendered(data, "tiled.tif", w="32", fm="png")
    assert image.size == (32, 20)
    assert_split(image, tolerance=10)
