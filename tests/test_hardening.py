"""The service tried as an attacker would: animations at any size, work bounded before it starts, ?picture and
restricted modes under the policy, signatures that verify exactly what they sign, and the smaller promises."""

from __future__ import annotations

import io
from urllib.parse import quote, urlsplit

import pytest
from conftest import api_event, fixture, invoke, sample
from fakes import MemoryStore
from PIL import Image, ImageSequence

from imageorigin import delivery, render, runtime, signing
from imageorigin.config import Settings
from imageorigin.deadline import Deadline
from imageorigin.errors import OutOfTime
from imageorigin.grammars import query as query_grammar
from imageorigin.model import MAX_KEY_BYTES, variant_prefix

EARTH = "animations/earth.gif"  # 400x400, 44 frames
BANNER = "photos/banner.jpg"  # 1201x100: every ladder width its own variant, an eighth of the pixels of a photo


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    store = MemoryStore()
    for key in (EARTH, "photos/progressive.jpg", "graphics/alpha.png"):
        store.add_original(key, sample(key))
    store.add_original(BANNER, fixture("banner.jpg"))
    monkeypatch.setattr(runtime, "store", lambda: store)
    return store


def frames(image: Image.Image) -> list[Image.Image]:
    return [frame.copy() for frame in ImageSequence.Iterator(image)]


def webp_animation(size: int = 64, count: int = 4) -> bytes:
    shots = [Image.new("RGB", (size, size), (40 * i, 200 - 40 * i, 90)) for i in range(count)]
    out = io.BytesIO()
    shots[0].save(out, "WEBP", save_all=True, append_images=shots[1:], duration=[50, 60, 70, 80][:count], loop=0)
    return out.getvalue()


# -- 1. animations at their own size, in every grammar -------------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "query", "accept", "expected"),
    [
        (f"/{EARTH}", {}, "image/*", ("GIF", 44)),  # no parameters: the original itself
        (f"/{EARTH}", {"fm": "webp"}, "image/*", ("WEBP", 44)),
        (f"/{EARTH}", {"fm": "auto"}, "image/avif,image/webp,*/*", ("WEBP", 44)),
        (f"/{EARTH}", {"q": "50"}, "image/*", ("GIF", 44)),
        (f"/{EARTH}", {"fm": "gif"}, "image/*", ("GIF", 44)),
        (f"/{EARTH}", {"w": "400"}, "image/*", ("GIF", 44)),  # its own size
        (f"/{EARTH}", {"w": "100", "fm": "png"}, "image/*", ("PNG", 1)),  # a still format: the first frame
        (f"/unsafe/filters:format(webp)/{EARTH}", {}, "image/*", ("WEBP", 44)),
        (f"/unsafe/filters:grayscale():quality(60)/{EARTH}", {}, "image/*", ("GIF", 44)),
        (f"/unsafe/fit-in/800x800/{EARTH}", {}, "image/*", ("GIF", 44)),  # fit-in never enlarges
        ("/v1/animations/earth.gif/fm=webp,q=80", {}, "image/*", ("WEBP", 44)),  # the canonical path
    ],
)
def test_animations_at_their_own_size_answer_every_frame(memory: MemoryStore, path: str, query: dict,
                                                         accept: str, expected: tuple[str, int]) -> None:
    answer = invoke(api_event(path, query, accept=accept))
    assert answer.status == 200, answer.body[:200]
    image = answer.image
    assert (image.format, getattr(image, "n_frames", 1)) == expected
    assert image.size == (400, 400) or image.size == (100, 100)


@pytest.mark.parametrize("query", [{"w": "400"}, {"fm": "gif", "q": "50"}, {"h": "400", "fit": "cover"}])
def test_a_gif_asked_at_its_own_size_with_nothing_to_change_is_the_original_itself(memory: MemoryStore,
                                                                                  query: dict) -> None:
    # re-quantising its 44 frames could only lose colours (and took 0.6 s): the variant is the stored bytes
    answer = invoke(api_event(f"/{EARTH}", query))
    assert answer.body == sample(EARTH) and answer.headers["Content-Type"] == "image/gif"


def test_a_gif_at_its_own_size_with_a_pixel_changed_is_rendered_again(memory: MemoryStore) -> None:
    answer = invoke(api_event(f"/unsafe/filters:grayscale()/{EARTH}"))
    assert answer.body != sample(EARTH) and (answer.image.n_frames, answer.image.size) == (44, (400, 400))
    assert answer.image.convert("RGB").getextrema() == answer.image.convert("L").convert("RGB").getextrema()


def test_animated_webp_at_its_own_size_keeps_its_frames_and_timing(memory: MemoryStore) -> None:
    memory.add_original("anim.webp", webp_animation())
    answer = invoke(api_event("/anim.webp", {"q": "70"}))
    image = answer.image
    assert (image.format, image.n_frames, image.size) == ("WEBP", 4, (64, 64))
    durations = []
    for frame in ImageSequence.Iterator(image):
        frame.load()
        durations.append(frame.info["duration"])
    assert durations == [50, 60, 70, 80]


def test_picture_and_prewarm_work_for_an_animated_original(memory: MemoryStore) -> None:
    answer = invoke(api_event(f"/{EARTH}", {"picture": "json"}))
    assert answer.status == 200
    variants = answer.json["variants"]
    assert {v["format"] for v in variants} >= {"webp", "gif"}
    assert max(v["width"] for v in variants) == 400  # never enlarged
    animated = [blob for blob in memory.variants.values() if blob.metadata.get("format") in ("webp", "gif")]
    assert animated and all(Image.open(io.BytesIO(blob.data)).n_frames == 44 for blob in animated
                            if blob.metadata["width"] != "30")


# -- 2. work bounded before it starts ----------------------------------------------------------------------------

def tiny_many_frames() -> bytes:
    shots = [Image.new("RGB", (16, 16), (i * 2, 255 - i * 2, i * 37 % 256)) for i in range(100)]
    out = io.BytesIO()
    shots[0].save(out, "GIF", save_all=True, append_images=shots[1:], duration=20, loop=0)
    return out.getvalue()


@pytest.mark.parametrize(
    ("key", "query", "limit"),
    [
        ("tiny.gif", {"w": "2048", "enlarge": "1"}, "MAX_OUTPUT_PIXELS"),  # 100 frames x 4 MP
        (EARTH, {"w": "4096", "enlarge": "1", "fm": "webp"}, "MAX_OUTPUT_PIXELS"),  # 44 frames x 16.8 MP
        ("graphics/alpha.png", {"w": "4096", "h": "4096", "fit": "fill", "enlarge": "1", "fm": "png"}, "MAX_WORK_MS"),
        ("photos/progressive.jpg", {"w": "4096", "h": "4096", "fit": "fill", "enlarge": "1", "fm": "avif"},
         "MAX_WORK_MS"),
    ],
)
def test_expensive_requests_are_refused_before_any_pixel_is_decoded(memory: MemoryStore, monkeypatch, key: str,
                                                                    query: dict, limit: str) -> None:
    memory.add_original("tiny.gif", tiny_many_frames())
    decoded: list[str] = []
    monkeypatch.setattr(render.pipeline, "decode", lambda *a: decoded.append("decode"))
    answer = invoke(api_event(f"/{key}", query))
    assert (answer.status, answer.json["code"]) == (413, "too_large")
    assert limit in answer.json["message"]
    assert decoded == [] and memory.variants == {}


def test_max_bytes_search_is_bounded_and_priced(memory: MemoryStore) -> None:
    memory.add_original("dot.png", _png(Image.new("RGB", (1, 1), (200, 10, 10))))
    answer = invoke(api_event("/unsafe/4096x4096/filters:max_bytes(1024):format(avif)/dot.png", {}))
    assert (answer.status, answer.json["code"]) == (413, "too_large")  # 5 AVIF encodes of 16.8 MP: refused
    small = invoke(api_event("/unsafe/300x300/filters:max_bytes(1024):format(webp)/photos/progressive.jpg", {}))
    assert small.status == 200 and small.image.size == (300, 300)


def test_too_little_time_for_the_estimated_work_is_503_before_it_starts(memory: MemoryStore) -> None:
    request = query_grammar.parse("/photos/progressive.jpg", {"w": ["1200"], "fm": ["avif"]})
    settings = Settings()
    with pytest.raises(OutOfTime, match="too little time left to render"):
        delivery.get_or_render(request, memory, settings, Deadline.after(settings.time_reserve_ms + 1100))
    assert memory.variants == {}


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# -- 5. ?picture under the policy ---------------------------------------------------------------------------------

def test_unsigned_picture_is_refused_when_signatures_are_required(memory: MemoryStore, monkeypatch) -> None:
    monkeypatch.setenv("SIGNING_KEYS", "k1")
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: memory)
    answer = invoke(api_event("/" + BANNER, {"picture": "json"}))
    assert (answer.status, answer.json["code"]) == (403, "signature_required")
    assert memory.variants == {}  # nothing rendered, nothing stored


def test_a_signed_picture_lists_urls_that_verify(memory: MemoryStore, monkeypatch) -> None:
    monkeypatch.setenv("SIGNING_KEYS", "k1")
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: memory)
    query = {"picture": ["json"]}
    query["s"] = [signing.sign_query(b"k1", BANNER, query)]
    answer = invoke(api_event("/" + BANNER, query))
    assert answer.status == 200
    for variant in answer.json["variants"][:4]:
        _, _, path, raw, _ = urlsplit(variant["url"])
        params: dict[str, list[str]] = {}
        for pair in raw.split("&"):
            name, _, value = pair.partition("=")
            params.setdefault(name, []).append(value)
        image = invoke(api_event(path, params))
        assert image.status == 200 and image.image.width == variant["width"]


# -- 6. signatures verify exactly what they sign ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("signed_key", "sent_path"),
    [
        ("a b.jpg", "/a%2520b.jpg"),  # a signature for "a b" must not open "a%20b"
        ("a%20b.jpg", "/a%20b.jpg"),  # nor the other way round
        ("a+b.jpg", "/a%20b.jpg"),
        ("a b.jpg", "/a+b.jpg"),
        ("a=b.jpg", "/a%253Db.jpg"),
    ],
)
def test_a_query_signature_opens_one_key_only(memory: MemoryStore, monkeypatch, signed_key: str,
                                              sent_path: str) -> None:
    monkeypatch.setenv("SIGNING_KEYS", "k1")
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: memory)
    for key in ("a b.jpg", "a%20b.jpg", "a+b.jpg", "a=b.jpg", "a%3Db.jpg"):
        memory.add_original(key, sample("photos/progressive.jpg"))
    query = {"w": ["100"]}
    query["s"] = [signing.sign_query(b"k1", signed_key, query)]
    answer = invoke(api_event(sent_path, query))
    assert (answer.status, answer.json["code"]) == (403, "bad_signature")
    assert invoke(api_event("/" + quote(signed_key), query)).status == 200  # the key it was made for


def test_a_signature_for_an_original_shaped_like_a_canonical_path_renders_nothing_else(memory: MemoryStore,
                                                                                      monkeypatch) -> None:
    monkeypatch.setenv("SIGNING_KEYS", "k1")
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: memory)
    shaped = "v1/photos/progressive.jpg/w=50,fit=inside,enlarge=0,bg=ffffff,fm=jpeg,q=80"
    memory.add_original(shaped, sample("photos/progressive.jpg"))
    token = {"s": [signing.sign_query(b"k1", shaped, {})]}  # signs the original as it is
    answer = invoke(api_event("/" + shaped, token))
    assert (answer.status, answer.json["code"]) == (403, "bad_signature")
    assert memory.variants == {}


@pytest.mark.parametrize("sent", ["/{sig}/100x100/a%2520b.jpg", "/{sig}/100x100/a%2Bb.jpg",
                                  "/{sig}/100x100/a%252Bb.jpg"])
def test_a_thumbor_signature_opens_one_key_only(memory: MemoryStore, monkeypatch, sent: str) -> None:
    monkeypatch.setenv("SIGNING_KEYS", "k1")
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: memory)
    for key in ("a b.jpg", "a%20b.jpg", "a+b.jpg", "a%2Bb.jpg"):
        memory.add_original(key, sample("photos/progressive.jpg"))
    signature = signing.thumbor_signature(b"k1", "100x100/a%20b.jpg")  # for the key "a b.jpg"
    assert invoke(api_event(f"/{signature}/100x100/a%20b.jpg", {})).status == 200
    answer = invoke(api_event(sent.format(sig=signature), {}))
    assert (answer.status, answer.json["code"]) == (403, "bad_signature")


# -- 8. restricted modes bound the whole variant space --------------------------------------------------------------

@pytest.mark.parametrize("setting", [("ALLOWED_WIDTHS", "100,300"), ("SIZE_STEP", "100")])
@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/photos/progressive.jpg", {"w": "100", "bg": "ff0000"}, "bg"),
        ("/photos/progressive.jpg", {"w": "100", "q": "37"}, "q"),
        ("/unsafe/10x10:200x200/100x100/photos/progressive.jpg", {}, "crop"),
        ("/unsafe/100x100/filters:blur(3)/photos/progressive.jpg", {}, "blur"),
        ("/unsafe/trim:25/100x100/photos/progressive.jpg", {}, "trim"),
    ],
)
def test_restricted_modes_refuse_what_would_multiply_variants(memory: MemoryStore, monkeypatch, setting: tuple,
                                                              path: str, query: dict, named: str) -> None:
    monkeypatch.setenv(*setting)
    runtime.reset()
    monkeypatch.setattr(runtime, "store", lambda: memory)
    answer = invoke(api_event(path, query))
    assert (answer.status, answer.json["code"]) == (403, "signature_required")
    assert named in answer.json["message"] and memory.variants == {}
    allowed = invoke(api_event("/photos/progressive.jpg", {"w": "100", "fm": "webp"}))
    assert allowed.status == 200 and allowed.image.width == 100


# -- 9. the smaller promises ------------------------------------------------------------------------------------------

def test_a_failed_check_after_the_store_leaves_no_variant(memory: MemoryStore) -> None:
    memory.fail_etag_checks = True
    answer = invoke(api_event("/photos/progressive.jpg", {"w": "120"}))
    assert answer.status == 200 and answer.image.width == 120
    assert answer.headers["Cache-Control"] == "no-store"
    assert memory.variants == {}


def test_a_png_with_a_bad_crc_is_422_resized_as_it_is_as_is(memory: MemoryStore) -> None:
    data = bytearray(_png(Image.new("RGB", (64, 64), (10, 120, 200))))
    at = data.index(b"IDAT") + 8
    data[at] ^= 0x01  # inside the pixel data: only its CRC says so
    memory.add_original("bad.png", bytes(data))
    for query in ({}, {"w": "32"}, {"fm": "webp"}):
        answer = invoke(api_event("/bad.png", query))
        assert (answer.status, answer.json["code"]) == (422, "undecodable"), query
    assert memory.variants == {}


def test_public_messages_never_name_library_exceptions(memory: MemoryStore) -> None:
    memory.add_original("cut.jpg", sample("photos/progressive.jpg")[:5000])
    answer = invoke(api_event("/cut.jpg", {"w": "100"}))
    assert answer.status == 422
    for name in ("OSError", "SyntaxError", "ValueError", "EOFError", "Error)"):
        assert name not in answer.json["message"]


def test_head_answers_the_length_the_get_would_have(memory: MemoryStore) -> None:
    got = invoke(api_event("/photos/progressive.jpg", {"w": "150"}))
    head = invoke(api_event("/photos/progressive.jpg", {"w": "150"}, method="HEAD"))
    assert head.status == 200 and head.body == b""
    assert int(head.headers["Content-Length"]) == len(got.body)


def test_keys_near_the_limit_have_variant_keys_within_it(memory: MemoryStore) -> None:
    key = "k/" + "x" * (MAX_KEY_BYTES - 2 - 4) + ".jpg"
    memory.add_original(key, sample("photos/progressive.jpg"))
    answer = invoke(api_event("/" + key, {"w": "80", "fm": "webp"}))
    assert answer.status == 200 and answer.image.width == 80
    (stored,) = memory.variants
    assert len(stored.encode()) <= MAX_KEY_BYTES and stored.startswith(variant_prefix(key, "v1"))
    again = invoke(api_event("/" + key, {"w": "80", "fm": "webp"}))
    assert again.headers["Server-Timing"].startswith("cache;desc=hit")


def test_a_bad_upload_is_skipped_not_retried(memory: MemoryStore) -> None:
    from conftest import FakeContext, load_event

    from imageorigin.handlers import s3_events

    memory.add_original("uploads/readme.txt", b"hello, not an image")
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"]["key"] = "uploads/readme.txt"
    result = s3_events.lambda_handler(event, FakeContext())  # no exception: nothing to retry
    assert result == {"handled": 0, "skipped": 1}
    assert memory.variants == {}


def test_a_retry_after_a_half_done_prewarm_renders_only_what_is_missing(memory: MemoryStore, monkeypatch) -> None:
    from imageorigin import ladder

    settings = Settings()
    calls = {"n": 0}
    put = memory.put_variant

    def failing_put(key: str, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 6:
            raise delivery.StorageFault("storage answered SlowDown for put_object")
        put(key, *args)

    monkeypatch.setattr(memory, "put_variant", failing_put)
    with pytest.raises(delivery.StorageFault):
        ladder.prewarm(BANNER, memory, settings, _NoCdn())
    monkeypatch.setattr(memory, "put_variant", put)
    rendered: list[int] = []
    many = render.render_many
    monkeypatch.setattr(render, "render_many", lambda data, specs, *a: rendered.append(len(specs)) or many(
        data, specs, *a))
    result = ladder.prewarm(BANNER, memory, settings, _NoCdn())
    assert result.rendered == 15 - 5 and rendered == [10]


class _NoCdn:
    def invalidate(self, paths: list[str]) -> None:
        return None
