"""Upload events pre-warm the ladder; overwrites and deletes purge it; the race and retries are safe; <picture>."""

from __future__ import annotations

import io
import json
from collections import Counter
from urllib.parse import urlsplit

import pytest
from botocore.stub import Stubber
from conftest import CACHE, ORIGINALS, FakeContext, api_event, fixture, html_tags, invoke, load_event, png_bytes, sample
from fakes import MemoryStore, RecordingCdn
from PIL import Image, ImageStat

from imageorigin import delivery as service
from imageorigin import ladder, render, runtime
from imageorigin.cdn import CloudFrontInvalidator
from imageorigin.config import Settings
from imageorigin.grammars.query import parse
from imageorigin.handlers import api, s3_events
from imageorigin.render import pipeline

KEY = "photos/summer trip/beach.jpg"  # the events send it as photos/summer+trip/beach.jpg
PATH = "/photos/summer%20trip/beach.jpg"
LADDER = [(w, fm) for w in (1200, 1080, 768, 540, 30) for fm in ("avif", "webp", None)]
RED = png_bytes(Image.new("RGB", (900, 600), (220, 20, 20)))
# A real photo as wide as the ladder's widest member needs (each width its own variant) and no taller than a banner:
# a ladder of it costs an eighth of one of a 1201x800 photo, and these tests render a dozen ladders.
BANNER = fixture("banner.jpg")  # 1201x100


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts every variant the transform renders, by the path it took."""
    counts: Counter[str] = Counter()
    render_one, render_many = render.render, render.render_many

    def counting_render(data: bytes, spec: object, *args: object) -> object:
        counts["single"] += 1
        return render_one(data, spec, *args)

    def counting_many(data: bytes, specs: list, *args: object) -> list:
        counts["ladder"] += len(specs)
        return render_many(data, specs, *args)

    for module in (render, pipeline):  # the package's name, and the one the ladder's own fallbacks call
        monkeypatch.setattr(module, "render", counting_render)
    monkeypatch.setattr(render, "render_many", counting_many)
    return counts


@pytest.fixture
def uploaded(s3: object) -> object:
    s3.put_object(Bucket=ORIGINALS, Key=KEY, Body=BANNER)
    return s3


def s3_event(name: str) -> dict:
    return s3_events.lambda_handler(load_event(name), FakeContext())


def variants(s3: object, key: str = KEY) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=CACHE, Prefix=f"v1/{key}/").get("Contents", [])]


def ladder_query(width: int, fm: str | None) -> dict[str, str]:
    return {"w": str(width)} | ({"fm": fm} if fm else {})


def writes(store: object) -> Counter[str]:
    counts: Counter[str] = Counter()
    store.client.meta.events.register("provide-client-params.s3",
                                      lambda model, **_: counts.update([model.name]))
    return counts


def test_created_event_prewarms_the_ladder_and_every_ladder_request_is_then_a_hit(uploaded: object,
                                                                                   renders: Counter) -> None:
    # given an upload, when its ObjectCreated event is handled
    assert s3_event("s3_object_created.json") == {"handled": 1}
    # then the 15 ladder variants and the manifest are stored under the decoded key
    assert len(variants(uploaded)) == 16 and f"v1/{KEY}/{ladder.MANIFEST}" in variants(uploaded)
    assert renders == Counter(ladder=15)  # one ladder render, from one decode
    renders.clear()
    # and every ladder URL a page asks for is a cache hit, with no render at all
    for width, fm in LADDER:
        answer = invoke(api_event(PATH, ladder_query(width, fm)))
        assert answer.status == 200 and answer.headers["Server-Timing"].startswith("cache;desc=hit")
        image = answer.image
        assert image.width == min(width, 1201)
        assert image.format == (fm or "jpeg").upper()
    assert renders == Counter()


def test_auto_format_requests_hit_the_prewarmed_variants(uploaded: object, renders: Counter) -> None:
    s3_event("s3_object_created.json")
    renders.clear()
    answer = invoke(api_event(PATH, {"w": "540", "fm": "auto"}, accept="image/avif,image/webp,*/*"))
    assert answer.headers["Server-Timing"].startswith("cache;desc=hit") and answer.image.format == "AVIF"
    assert renders == Counter()


def test_keys_in_events_are_decoded_exactly_once(s3: object) -> None:
    s3.put_object(Bucket=ORIGINALS, Key="a b+c%41.jpg", Body=BANNER)
    event = load_event("s3_object_created.json")
    event["Records"][0]["s3"]["object"]["key"] = "a+b%2Bc%2541.jpg"
    s3_events.lambda_handler(event, FakeContext())
    assert len(variants(s3, "a b+c%41.jpg")) == 16


def test_overwrite_replaces_every_variant_with_one_of_the_new_bytes(uploaded: object) -> None:
    s3_event("s3_object_created.json")
    invoke(api_event(PATH, {"w": "333"}))  # an ad-hoc variant of the old original, outside the ladder
    # when the original is overwritten with a red picture and its event handled
    uploaded.put_object(Bucket=ORIGINALS, Key=KEY, Body=RED)
    s3_event("s3_object_created.json")
    # then the ad-hoc variant is gone and every ladder variant is red
    assert f"v1/{KEY}/w=333,fit=inside,enlarge=0,bg=ffffff,fm=jpeg,q=80" not in variants(uploaded)
    assert len(variants(uploaded)) == 16
    for width, fm in LADDER:
        answer = invoke(api_event(PATH, ladder_query(width, fm)))
        r, g, b = ImageStat.Stat(answer.image.convert("RGB")).mean
        assert r > 180 and g < 60 and b < 60, (width, fm)
        assert answer.image.width == min(width, 900)


def test_removal_leaves_no_variant(uploaded: object) -> None:
    s3_event("s3_object_created.json")
    invoke(api_event(PATH, {"w": "333"}))
    uploaded.delete_object(Bucket=ORIGINALS, Key=KEY)
    assert s3_event("s3_object_removed.json") == {"handled": 1}
    assert variants(uploaded) == []
    assert invoke(api_event(PATH, {"w": "540"})).status == 404


def test_a_redelivered_event_writes_nothing(uploaded: object, renders: Counter) -> None:
    s3_event("s3_object_created.json")
    renders.clear()
    calls = writes(runtime.store())
    s3_event("s3_object_created.json")
    assert renders == Counter()
    assert calls["PutObject"] == 0 and calls["DeleteObjects"] == 0


def test_a_record_that_fails_once_is_retried_and_the_others_are_not_redone(monkeypatch: pytest.MonkeyPatch,
                                                                          renders: Counter) -> None:
    memory = MemoryStore()
    memory.add_original("first.jpg", BANNER)
    memory.add_original("second.jpg", RED)
    monkeypatch.setattr(runtime, "store", lambda: memory)
    event = load_event("s3_object_created.json")
    event["Records"] = [dict(event["Records"][0], s3={**event["Records"][0]["s3"], "object": {"key": key}})
                        for key in ("first.jpg", "second.jpg")]
    memory.fail_gets = 1  # S3 throttles the first record's read once
    with pytest.raises(s3_events.RecordsFailed, match=r"first\.jpg"):
        s3_events.lambda_handler(event, FakeContext())
    assert renders == Counter(ladder=15)  # the second record was done
    renders.clear()
    # when Lambda retries the event
    assert s3_events.lambda_handler(event, FakeContext()) == {"handled": 2}
    # then only the failed record is rendered
    assert renders == Counter(ladder=15)
    assert {k.split("/")[1] for k in memory.variants} == {"first.jpg", "second.jpg"}


def test_a_render_of_the_old_bytes_finishing_after_the_purge_is_not_kept() -> None:
    # given an API request that read the old original, and an overwrite + pre-warm that runs while it renders
    settings = Settings(originals_bucket="o", cache_bucket="c")

    class RacingStore(MemoryStore):
        def put_variant(self, key: str, *args: object, **kwargs: object) -> None:
            if "w=300" in key and self.originals["a.jpg"].data != RED:
                self.add_original("a.jpg", RED)  # the overwrite lands ...
                ladder.prewarm("a.jpg", self, settings, RecordingCdn())  # ... and its event is handled
            super().put_variant(key, *args, **kwargs)

    store = RacingStore()
    store.add_original("a.jpg", sample("photos/progressive.jpg"))
    delivery = service.get_or_render(parse("/a.jpg", {"w": ["300"]}), store, settings)
    # then the old render is answered once but neither kept nor cacheable
    assert delivery.cache_control == "no-store"
    assert "v1/a.jpg/w=300,fit=inside,enlarge=0,bg=ffffff,fm=jpeg,q=80" not in store.variants
    # and the next request renders the new bytes
    again = service.get_or_render(parse("/a.jpg", {"w": ["300"]}), store, settings)
    r, g, _ = ImageStat.Stat(Image.open(io.BytesIO(again.body)).convert("RGB")).mean
    assert r > 180 and g < 60


def test_the_cdn_is_invalidated_on_overwrite_and_delete() -> None:
    settings = Settings(originals_bucket="o", cache_bucket="c")
    store, cdn = MemoryStore(), RecordingCdn()
    store.add_original("p/a b.jpg", BANNER)
    ladder.prewarm("p/a b.jpg", store, settings, cdn)
    assert cdn.invalidated == []  # a first upload has nothing cached at the edge
    store.add_original("p/a b.jpg", RED)
    ladder.prewarm("p/a b.jpg", store, settings, cdn)
    ladder.purge("p/a b.jpg", store, settings, cdn)
    assert cdn.invalidated == [["/p/a%20b.jpg", "/p/a%20b.jpg?*", "/v1/p/a%20b.jpg/*"]] * 2


def test_cloudfront_invalidation_request() -> None:
    import boto3

    client = boto3.client("cloudfront", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("create_invalidation", {"Invalidation": {"Id": "I1", "Status": "InProgress",
                                                                   "CreateTime": "2026-11-21T10:00:00Z",
                                                                   "InvalidationBatch": {
                                                                       "Paths": {"Quantity": 1, "Items": ["/a"]},
                                                                       "CallerReference": "x"}}},
                          {"DistributionId": "E123", "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/a"]},
                                                                           "CallerReference": stub_any()}})
        CloudFrontInvalidator("E123", client).invalidate(["/a"])


def stub_any() -> object:
    from botocore.stub import ANY

    return ANY


def test_picture_element_lists_the_prewarmed_ladder(uploaded: object, renders: Counter) -> None:
    s3_event("s3_object_created.json")
    renders.clear()
    answer = invoke(api_event(PATH, {"picture": "", "alt": "A beach <at noon>"}, accept="text/html"))
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
    found = html_tags(answer.body.decode())
    tags = {tag: attrs for tag, attrs in found if tag != "source"}
    sources = [attrs for tag, attrs in found if tag == "source"]
    assert [s["type"] for s in sources] == ["image/avif", "image/webp"]
    img = tags["img"]
    assert (img["width"], img["height"], img["loading"], img["decoding"]) == ("1200", "100", "lazy", "async")
    assert img["alt"] == "A beach <at noon>" and img["sizes"]
    # every srcset URL is a pre-warmed variant: a hit of the width it claims
    for srcset in [s["srcset"] for s in sources] + [img["srcset"]]:
        for candidate in srcset.split(", "):
            url, width = candidate.rsplit(" ", 1)
            _, _, path, query, _ = urlsplit(url)  # absolute URLs: markup that works where it is pasted
            params = dict(pair.split("=") for pair in query.split("&"))
            got = invoke(api_event(path, params))
            assert got.headers["Server-Timing"].startswith("cache;desc=hit")
            assert f"{got.image.width}w" == width
    assert renders == Counter()


def test_picture_as_json_and_on_demand(uploaded: object) -> None:
    # no event has been handled: ?picture pre-warms first
    answer = invoke(api_event(PATH, {"picture": ""}, accept="application/json"))
    manifest = json.loads(answer.body)
    assert answer.status == 200 and manifest["width"] == 1201 and manifest["height"] == 100
    assert len(manifest["variants"]) == 15
    for variant in manifest["variants"][:4]:
        _, _, path, query, _ = urlsplit(variant["url"])
        got = invoke(api_event(path, dict(pair.split("=") for pair in query.split("&"))))
        assert (got.image.width, got.image.height, len(got.body)) == (variant["width"], variant["height"],
                                                                      variant["bytes"])
        assert got.headers["Content-Type"] == variant["content_type"]


def test_picture_answers_publish_their_metric(uploaded: object, monkeypatch: pytest.MonkeyPatch) -> None:
    # a ?picture answer records PictureServed (so powertools has a metric to flush, not an empty-metrics warning)
    recorded: list[tuple[str, float]] = []
    monkeypatch.setattr(api.metrics, "add_metric", lambda name, unit, value, **_: recorded.append((name, value)))
    assert invoke(api_event(PATH, {"picture": ""})).status == 200
    assert recorded == [("PictureServed", 1)]


def test_picture_refuses_other_parameters_and_missing_originals(uploaded: object) -> None:
    assert invoke(api_event(PATH, {"picture": "", "w": "3"})).json["parameter"] == "w"
    assert invoke(api_event("/nope.jpg", {"picture": ""})).status == 404


def test_presets_are_addressable_by_name(s3: object) -> None:
    photo = "/photos/progressive.jpg"  # 1201x800: taller than the banner, so the square thumb needs no enlarging
    answer = invoke(api_event(photo, {"preset": "thumb", "fm": "webp"}))
    assert answer.status == 200 and answer.image.size == (150, 150) and answer.image.format == "WEBP"
    same = invoke(api_event(photo, {"w": "150", "h": "150", "fit": "cover", "fm": "webp"}))
    assert same.headers["Server-Timing"].startswith("cache;desc=hit")  # one variant for both spellings
    assert invoke(api_event(photo, {"preset": "huge"})).json["parameter"] == "preset"


def test_ladder_variants_requested_before_the_event_still_appear_in_the_picture(uploaded: object) -> None:
    # given a visitor who asked for a ladder size before the upload event was handled
    assert invoke(api_event(PATH, {"w": "540", "fm": "avif"})).status == 200
    # when the event is handled, then ?picture lists every ladder variant, that one included
    s3_event("s3_object_created.json")
    manifest = json.loads(invoke(api_event(PATH, {"picture": ""}, accept="application/json")).body)
    assert len(manifest["variants"]) == 15
    assert any(v["url"].endswith("w=540&fm=avif") for v in manifest["variants"])
