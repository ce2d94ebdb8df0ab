"""POST /animations: animations made from several originals, through the real handler, decoded frame by frame."""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import itertools
import json
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import CACHE, ORIGINALS, FakeContext, api_event, invoke, load_event, png_bytes, sample
from fakes import MemoryStore
from PIL import Image, ImageChops, ImageStat

from imageorigin import animations, render, runtime
from imageorigin.formats import Format
from imageorigin.handlers import s3_events
from imageorigin.render import pipeline
from imageorigin.render.encode import encode_animation
from imageorigin.storage import S3Store

PHOTOS = ["photos/progressive.jpg", "photos/lake.webp", "graphics/alpha.png"]
UPRIGHT = "photos/landscape-exif6.jpg"  # stored 1200x1800 with EXIF orientation 6: displayed 1800x1200
CMYK = "photos/cmyk.jpg"  # CMYK with an ICC profile


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    memory = MemoryStore()
    for key in [*PHOTOS, UPRIGHT, CMYK]:
        memory.add_original(key, sample(key))
    monkeypatch.setattr(runtime, "store", lambda: memory)
    return memory


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()
    real = render.render_animation

    def counting(*args: object, **kwargs: object) -> object:
        counts["animation"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_animation", counting)
    return counts


def post(body: dict | bytes, *, accept: str = "application/json", headers: dict[str, str] | None = None) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return invoke(api_event("/animations", method="POST", accept=accept, body=raw,
                            headers={"Content-Type": "application/json", **(headers or {})}))


def fetch(url: str, accept: str = "image/*") -> object:
    return invoke(api_event(urlsplit(url).path, accept=accept))


def frames(data: bytes) -> tuple[Image.Image, list[Image.Image], list[int]]:
    """The decoded animation, each frame (as RGB) and each frame's duration."""
    image = Image.open(io.BytesIO(data))
    pictures, durations = [], []
    for index in range(image.n_frames):
        image.seek(index)
        pictures.append(image.convert("RGB"))
        durations.append(image.info["duration"])  # WebP sets it when the frame loads
    image.seek(0)
    return image, pictures, durations


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel (0-255) of two pictures, compared at a reduced size (dither-proof)."""
    size = (32, 32)
    diff = ImageChops.difference(a.convert("RGB").resize(size, Image.Resampling.BOX),
                                 b.convert("RGB").resize(size, Image.Resampling.BOX))
    return sum(ImageStat.Stat(diff).mean) / 3


def test_a_gif_of_three_photos_has_their_frames_durations_loop_and_size(store: MemoryStore) -> None:
    answer = post({"keys": PHOTOS, "w": 320, "h": 240, "duration_ms": [200, 300, 400], "loop": 3,
                   "format": "gif"})
    assert answer.status == 201, answer.body
    created = answer.json
    assert created | {"url": "", "download_url": "", "bytes": 0} == {
        "url": "", "download_url": "", "frames": 3, "width": 320, "height": 240, "bytes": 0, "format": "gif"}
    assert answer.headers["Location"] == created["url"]
    path = urlsplit(created["url"]).path
    assert path.startswith("/v1/_animations/") and path.endswith(".gif")
    assert path[1:] in store.variants

    got = fetch(created["url"])
    assert got.status == 200
    assert got.headers["Content-Type"] == "image/gif"
    assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert len(got.body) == created["bytes"]
    image, pictures, durations = frames(got.body)
    assert image.format == "GIF" and image.n_frames == 3 and image.size == (320, 240)
    assert durations == [200, 300, 400]
    assert image.info["loop"] == 3
    assert all(p.size == (320, 240) for p in pictures)
    # each frame is its photo, covered to 4:3
    for key, picture in zip(PHOTOS[:2], pictures, strict=False):
        alone = invoke(api_event("/" + key, {"w": "320", "h": "240", "fit": "cover", "fm": "png"})).image
        assert difference(picture, alone) < 6


def test_the_download_url_saves_the_file_under_a_name(store: MemoryStore) -> None:
    created = post({"keys": PHOTOS[:2], "w": 64, "h": 48, "format": "gif"}).json
    disposition = parse_qs(urlsplit(created["download_url"]).query)["response-content-disposition"]
    assert disposition == ['attachment; filename="animation.gif"']


def test_frames_come_out_upright_and_in_srgb(store: MemoryStore) -> None:
    answer = post({"keys": [UPRIGHT, CMYK], "w": 300, "h": 200, "fit": "contain", "bg": "ff00ff",
                   "format": "webp", "duration_ms": 100})
    assert answer.status == 201, answer.body
    image, pictures, durations = frames(fetch(answer.json["url"]).body)
    assert image.format == "WEBP" and image.size == (300, 200) and durations == [100, 100]
    assert image.info["loop"] == 0
    upright, cmyk = pictures
    # displayed 1800x1200 (3:2): it fills the 3:2 canvas, no bg bars; stored sideways it would be 133x200 in bars
    assert upright.getpixel((5, 100))[:3] != (255, 0, 255) and difference(
        upright, invoke(api_event("/" + UPRIGHT, {"w": "300", "h": "200", "fm": "png"})).image) < 4
    sideways = Image.open(io.BytesIO(sample(UPRIGHT))).convert("RGB").resize((133, 200))
    assert difference(upright.crop((83, 0, 216, 200)), sideways) > 10
    # the CMYK photo is 500x333: padded by a pixel at most; its colours those of the same photo rendered alone
    alone = invoke(api_event("/" + CMYK, {"w": "300", "h": "200", "fm": "png"})).image
    assert alone.size[0] == 300
    assert difference(cmyk.crop((0, 0, *alone.size)), alone) < 4
    naive = Image.open(io.BytesIO(sample(CMYK))).convert("RGB").resize(alone.size)  # no profile: off
    assert difference(naive, alone) > difference(cmyk.crop((0, 0, *alone.size)), alone)


def test_format_auto_is_webp_when_offered_else_gif(store: MemoryStore) -> None:
    body = {"keys": PHOTOS[:2], "w": 40, "h": 30, "format": "auto"}
    assert post(body, accept="image/avif,image/webp,*/*").json["format"] == "webp"
    legacy = post(body, accept="image/png,*/*").json
    assert legacy["format"] == "gif" and legacy["url"].endswith(".gif")


def test_the_same_request_on_the_same_originals_renders_once(store: MemoryStore, renders: Counter) -> None:
    body = {"keys": PHOTOS[:2], "w": 80, "h": 60, "format": "gif", "duration_ms": 250}
    first = post(body)
    puts = [c for c in store.calls if c[0] == "put_variant"]
    again = post({**body, "dither": "floyd-steinberg", "loop": 0, "fit": "cover"})  # the defaults, spelled out
    assert (first.status, again.status) == (201, 201)
    assert again.json == first.json
    assert renders["animation"] == 1
    assert [c for c in store.calls if c[0] == "put_variant"] == puts
    # another version of a member is another animation
    store.add_original(PHOTOS[0], png_bytes(Image.new("RGB", (90, 60), (200, 10, 10))))
    third = post(body)
    assert third.json["url"] != first.json["url"] and renders["animation"] == 2


def test_overwriting_a_member_original_retires_the_animation(store: MemoryStore) -> None:
    from imageorigin import ladder
    from imageorigin.cdn import NoCdn
    from imageorigin.config import get_settings

    member = CMYK  # 500x333: its own pre-warm (the ladder's widths under 500) is quick
    url = post({"keys": [PHOTOS[0], member], "w": 40, "h": 30, "format": "gif"}).json["url"]
    assert fetch(url).status == 200
    ladder.prewarm(member, store, get_settings(), NoCdn())  # an event for the same version: nothing changes
    assert fetch(url).status == 200
    store.add_original(member, png_bytes(Image.new("RGB", (60, 40), (0, 0, 200))))
    ladder.prewarm(member, store, get_settings(), NoCdn())
    gone = fetch(url)
    assert gone.status == 404 and gone.json["code"] == "not_found"
    assert not any("anim-" in key for key in store.variants if key.startswith(f"v1/{member}/"))


def test_deleting_a_member_original_retires_the_animation(store: MemoryStore) -> None:
    from imageorigin import ladder
    from imageorigin.cdn import NoCdn
    from imageorigin.config import get_settings

    url = post({"keys": PHOTOS[:2], "w": 40, "h": 30, "format": "webp"}).json["url"]
    del store.originals[PHOTOS[0]]
    ladder.purge(PHOTOS[0], store, get_settings(), NoCdn())
    assert fetch(url).status == 404


@pytest.mark.parametrize(("body", "status", "named"), [
    ({"keys": ["photos/progressive.jpg"], "w": 10, "h": 10}, 400, "keys"),
    ({"keys": "photos/progressive.jpg", "w": 10}, 400, "keys"),
    ({"keys": ["photos/progressive.jpg", "../x.jpg"], "w": 10}, 400, "keys"),
    ({"keys": PHOTOS[:2]}, 400, "w"),
    ({"keys": PHOTOS[:2], "w": 0}, 400, "w"),
    ({"keys": PHOTOS[:2], "w": 10, "h": 99999}, 400, "h"),
    ({"keys": PHOTOS[:2], "w": 10, "fit": "squash"}, 400, "fit"),
    ({"keys": PHOTOS[:2], "w": 10, "bg": "nope"}, 400, "bg"),
    ({"keys": PHOTOS[:2], "w": 10, "duration_ms": 5}, 400, "duration_ms"),
    ({"keys": PHOTOS[:2], "w": 10, "duration_ms": [100, 100, 100]}, 400, "duration_ms"),
    ({"keys": PHOTOS[:2], "w": 10, "loop": -1}, 400, "loop"),
    ({"keys": PHOTOS[:2], "w": 10, "format": "avif"}, 400, "format"),
    ({"keys": PHOTOS[:2], "w": 10, "dither": "ordered"}, 400, "dither"),
    ({"keys": PHOTOS[:2], "w": 10, "speed": 2}, 400, "speed"),
    (b"not json", 400, "body"),
    ({"keys": ["photos/progressive.jpg", "photos/missing.jpg"], "w": 10}, 404, None),
    ({"keys": PHOTOS[:2] * 51, "w": 10, "h": 10}, 413, "MAX_FRAMES"),
    ({"keys": PHOTOS[:2] * 50, "w": 4096, "h": 4096}, 413, "MAX_OUTPUT_PIXELS"),
])
def test_bad_requests_name_the_field_or_the_limit(store: MemoryStore, body: object, status: int,
                                                  named: str | None) -> None:
    answer = post(body)  # type: ignore[arg-type]
    assert answer.status == status, answer.body
    if status == 400:
        assert answer.json["code"] == "bad_parameter" and answer.json["parameter"] == named
    elif status == 404:
        assert answer.json["code"] == "not_found" and "photos/missing.jpg" in answer.json["message"]
    else:
        assert answer.json["code"] == "too_large" and named in answer.json["message"]


def test_an_undecodable_original_is_422(store: MemoryStore) -> None:
    store.add_original("bad.png", sample("graphics/alpha.png")[:2000])
    answer = post({"keys": [PHOTOS[0], "bad.png"], "w": 40, "h": 30})
    assert answer.status == 422 and answer.json["code"] == "undecodable"
    assert not any("_animations" in key for key in store.variants)


def test_too_much_work_is_413_before_decoding(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_WORK_MS", "50")
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: store)
    answer = post({"keys": PHOTOS, "w": 1000, "h": 1000})
    assert answer.status == 413 and "MAX_WORK_MS" in answer.json["message"]


def test_the_originals_together_are_held_to_one_originals_byte_limit(store: MemoryStore,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # given originals that fit MAX_SOURCE_BYTES one by one but not together, when animated, then 413 naming it
    sizes = [len(store.originals[key].data) for key in PHOTOS]
    monkeypatch.setenv("MAX_SOURCE_BYTES", str(max(sizes) + 1))
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: store)
    answer = post({"keys": PHOTOS, "w": 100, "h": 100})
    assert answer.status == 413 and "MAX_SOURCE_BYTES" in answer.json["message"]
    assert not [key for key in store.variants if "_animations/" in key]


def test_with_signatures_required_creating_needs_the_body_signed(store: MemoryStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNING_KEYS", "old-key,new-key")
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: store)
    body = json.dumps({"keys": PHOTOS[:2], "w": 40, "h": 30}).encode()
    unsigned = post(body)
    assert unsigned.status == 403 and unsigned.json["code"] == "signature_required"
    signature = hmac.new(b"new-key", body, hashlib.sha256).hexdigest()
    assert post(body, headers={"X-Signature": signature}).status == 201
    tampered = post(body.replace(b"30", b"31"), headers={"X-Signature": signature})
    assert tampered.status == 403 and tampered.json["code"] == "bad_signature"


def test_an_unknown_animation_is_a_404_and_other_versions_paths_are_image_requests(store: MemoryStore) -> None:
    assert fetch("/v1/_animations/" + "0" * 64 + ".gif").status == 404
    assert fetch("/v1/_animations/x.gif").status == 404
    assert fetch("/v1/_animations/" + "0" * 64 + ".png").status == 404


def test_other_posts_are_still_refused(store: MemoryStore) -> None:
    answer = invoke(api_event("/photos/progressive.jpg", method="POST", body=b"{}"))
    assert answer.status == 405


def test_a_burst_shares_a_palette_and_leaves_unchanged_areas_transparent() -> None:
    # given three frames of one photo with two small changes, when made into a GIF, then each frame decodes to its
    # picture (within the palette's error) and the two later frames cost a fraction of the first
    base = Image.open(io.BytesIO(sample("photos/progressive.jpg"))).convert("RGB").resize((320, 240))
    second = base.copy()
    second.paste((255, 0, 0), (10, 10, 40, 40))
    third = second.copy()
    third.paste((0, 0, 255), (200, 100, 260, 160))
    shots = [base, second, third]
    burst = encode_animation(shots, [100] * 3, 0, Format.GIF, None, Image.Dither.FLOYDSTEINBERG)
    image, pictures, durations = frames(burst)
    assert image.n_frames == 3 and durations == [100, 100, 100]
    for picture, shot in zip(pictures, shots, strict=True):
        assert difference(picture, shot) < 6  # the same picture, frame by frame
    assert pictures[1].getpixel((20, 20))[0] > 200 and pictures[2].getpixel((230, 130))[2] > 200
    one_frame = encode_animation([base], [100], 0, Format.GIF, None, Image.Dither.FLOYDSTEINBERG)
    assert len(burst) < 1.5 * len(one_frame)  # the two later frames cost a fraction of a frame


def test_gif_dithering_is_a_choice() -> None:
    ramp = Image.linear_gradient("L").resize((160, 160))
    sky = Image.merge("RGB", (ramp.rotate(90), ramp, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM).rotate(45)))
    photo = Image.open(io.BytesIO(sample(PHOTOS[0]))).convert("RGB").resize((160, 160))
    made = {dither: encode_animation([photo.copy(), sky.copy()], [100, 100], 0, Format.GIF, None, dither)
            for dither in (Image.Dither.FLOYDSTEINBERG, Image.Dither.NONE)}
    dithered, flat = (frames(made[d])[1][1] for d in (Image.Dither.FLOYDSTEINBERG, Image.Dither.NONE))
    # a smooth gradient of more than 256 colours: bands without dithering, error diffusion scatters them
    changes = [sum(a != b for a, b in itertools.pairwise(row))
               for row in ([f.getpixel((x, 80)) for x in range(160)] for f in (dithered, flat))]
    assert changes[0] > 3 * changes[1]
    assert difference(dithered, sky) < 3 and difference(flat, sky) < 3
    shared = encode_animation([photo.copy(), sky.copy()], [100, 100], 0, Format.GIF, None, Image.Dither.NONE,
                              shared_palette=True)
    image, pictures, _ = frames(shared)
    assert image.n_frames == 2 and difference(pictures[1], sky) < 6


def test_the_pipeline_prices_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from imageorigin.errors import TooLarge
    from imageorigin.model import Fit, ResizeSpec, canonicalize

    decoded: list[object] = []
    monkeypatch.setattr(pipeline, "decode", lambda *args: decoded.append(args))
    spec = canonicalize(ResizeSpec(2000, 2000, Fit.COVER, Format.GIF, enlarge=True))
    with pytest.raises(TooLarge, match="MAX_OUTPUT_PIXELS"):
        render.render_animation([sample(p) for p in PHOTOS], spec, [100] * 3, 0,
                                render.Limits(max_output_pixels=10_000_000))
    assert decoded == []


def unsigned(answer: dict) -> dict:
    """An answer with its download link's signature and expiry left out (they change with the second it is made)."""
    link = urlsplit(answer["download_url"])
    kept = sorted(p for p in link.query.split("&") if p.split("=")[0] not in ("Signature", "Expires", "X-Amz-Date",
                                                                             "X-Amz-Signature"))
    return {**answer, "download_url": (link.netloc, link.path, kept)}


def test_on_s3_an_overwrite_event_retires_the_animation(s3: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "store", lambda: S3Store(ORIGINALS, CACHE, client=s3))
    answer = post({"keys": [PHOTOS[0], UPRIGHT], "w": 60, "h": 40, "duration_ms": 120, "format": "gif"})
    assert answer.status == 201, answer.body
    url = answer.json["url"]
    key = urlsplit(url).path[1:]
    head = s3.head_object(Bucket=CACHE, Key=key)
    assert head["ContentType"] == "image/gif" and head["CacheControl"].startswith("public")
    download = answer.json["download_url"]
    assert "response-content-disposition=attachment" in download and "animation.gif" in download
    image, _pictures, durations = frames(fetch(url).body)
    assert (image.n_frames, image.size, durations, image.info["loop"]) == (2, (60, 40), [120, 120], 0)
    again = post({"keys": [PHOTOS[0], UPRIGHT], "w": 60, "h": 40, "duration_ms": 120, "format": "gif"}).json
    assert unsigned(again) == unsigned(answer.json)  # the same animation (its link signed anew: another expiry)

    s3.put_object(Bucket=ORIGINALS, Key=UPRIGHT, Body=png_bytes(Image.new("RGB", (30, 20), (0, 90, 0))))
    event = copy.deepcopy(load_event("s3_object_created.json"))
    event["Records"][0]["s3"]["object"]["key"] = UPRIGHT
    assert s3_events.lambda_handler(event, FakeContext()) == {"handled": 1}
    assert fetch(url).status == 404
    assert "Contents" not in s3.list_objects_v2(Bucket=CACHE, Prefix="v1/_animations/")


def test_the_canonical_form_names_every_parameter_and_version() -> None:
    from imageorigin.config import Settings

    request = animations.parse(json.dumps({"keys": PHOTOS[:2], "w": 10, "h": 10}).encode(), "", Settings())
    assert request.format is Format.GIF and request.dither == "floyd-steinberg" and request.durations == (500, 500)
    one, other = request.canonical(["a", "b"]), request.canonical(["a", "c"])
    assert one != other and json.loads(one)["etags"] == ["a", "b"]
