"""The API handler end to end on moto: every event in events/, cache hits, headers, redirects and every error."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from urllib.parse import unquote, urlparse

import boto3
import pytest
from botocore.stub import Stubber
from conftest import CACHE, EVENTS, ORIGINALS, ROOT, api_event, invoke, load_event, sample
from PIL import Image

from imageorigin import runtime
from imageorigin.storage import S3Store

# event file -> (status, Content-Type, decoded size or the error's parameter/code)
EXPECTED = {
    "api_resize.json": (200, "image/webp", (300, 245)),
    "api_resize_box.json": (200, "image/jpeg", (245, 200)),
    "api_scale_encoding.json": (200, "image/png", (300, 200)),
    "api_auto_format.json": (200, "image/avif", (400, 300)),
    "api_original.json": (200, "image/webp", (1024, 772)),
    "api_bad_parameter.json": (400, "application/json", "bad_parameter"),
    "api_missing_original.json": (404, "application/json", "not_found"),
    "api_animation.json": (201, "application/json", (480, 320)),  # POST /animations: the GIF made, its size
}


@pytest.fixture(autouse=True)
def stubbable_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's S3 calls on one client the tests can count and stub: a store made with its own client uses
    that client for every call (the deadline is still checked before each one)."""
    made: list[S3Store] = []

    def store() -> S3Store:
        if not made:
            made.append(S3Store(ORIGINALS, CACHE, client=boto3.client("s3", region_name="us-east-1")))
        return made[0]

    monkeypatch.setattr(runtime, "store", store)


def s3_calls() -> Counter[tuple[str, str]]:
    """Count the handler's own S3 calls by (operation, bucket)."""
    calls: Counter[tuple[str, str]] = Counter()
    runtime.store().client.meta.events.register(
        "provide-client-params.s3",
        lambda params, model, **_: calls.update([(model.name, params.get("Bucket", ""))]),
    )
    return calls


def test_every_event_file_is_covered() -> None:
    assert sorted(p.name for p in EVENTS.glob("api_*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_event_gives_its_documented_answer(s3: object, name: str) -> None:
    status, content_type, expected = EXPECTED[name]
    answer = invoke(load_event(name))
    assert answer.status == status
    assert answer.headers["Content-Type"] == content_type
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    if status == 200:
        image = answer.image
        assert image.size == expected
        assert Image.MIME[image.format] == content_type
        assert answer.headers["ETag"].startswith('"')
        assert "cache;desc=" in answer.headers["Server-Timing"]
    elif status == 201:  # created: JSON saying where it is; the GIF itself at its url
        created = answer.json
        assert (created["width"], created["height"]) == expected
        assert answer.headers["Location"] == created["url"]
        image = invoke(api_event(urlparse(created["url"]).path.removeprefix("/Prod"))).image  # the stage
        assert (image.format, image.size, image.n_frames) == ("GIF", expected, created["frames"])
    else:
        assert answer.json["code"] == expected
        assert answer.json["message"]
        assert "max-age=" in answer.headers["Cache-Control"]


def test_miss_then_hit_without_reading_the_original(s3: object) -> None:
    # given the sample photo, when asked for a 300 px WebP twice
    calls = s3_calls()
    first = invoke(api_event("/photos/2024/street.jpg", {"w": "300", "fm": "webp"}))
    # then the first is a miss that read the original and stored the variant
    assert first.status == 200 and first.image.format == "WEBP" and first.image.width == 300
    timing = first.headers["Server-Timing"]
    assert timing.startswith("cache;desc=miss") and "fetch;dur=" in timing and "render;dur=" in timing
    assert "store;dur=" in timing
    assert calls[("GetObject", ORIGINALS)] == 1 and calls[("PutObject", CACHE)] == 1
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    calls.clear()

    # and the second, spelled differently, is a hit answered from the cache bucket alone
    second = invoke(api_event("/photos/2024/street.jpg", {"width": "300", "format": "webp", "quality": "80"}))
    assert second.status == 200 and second.body == first.body
    assert second.headers["Server-Timing"].startswith("cache;desc=hit")
    assert second.headers["ETag"] == first.headers["ETag"]
    assert calls == Counter({("GetObject", CACHE): 1})


def test_variant_is_stored_with_its_headers(s3: object) -> None:
    invoke(api_event("/photos/progressive.jpg", {"w": "200"}))
    (stored,) = s3.list_objects_v2(Bucket=CACHE)["Contents"]
    head = s3.head_object(Bucket=CACHE, Key=stored["Key"])
    assert stored["Key"] == "v1/photos/progressive.jpg/w=200,fit=inside,enlarge=0,bg=ffffff,fm=jpeg,q=80"
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["Metadata"]["source-etag"]


def test_auto_format_varies_by_accept(s3: object) -> None:
    avif = invoke(api_event("/graphics/alpha.png", {"w": "200", "fm": "auto"}, accept="image/avif,image/webp,*/*"))
    legacy = invoke(api_event("/graphics/alpha.png", {"w": "200", "fm": "auto"}, accept="image/png,*/*"))
    assert (avif.image.format, legacy.image.format) == ("AVIF", "PNG")
    assert avif.image.mode == legacy.image.mode == "RGBA"  # transparency kept either way
    assert avif.headers["Vary"] == legacy.headers["Vary"] == "Accept"
    fixed = invoke(api_event("/graphics/alpha.png", {"w": "200", "fm": "webp"}))
    assert "Vary" not in fixed.headers


def test_output_too_large_to_answer_inline_redirects_to_the_stored_variant(s3: object, monkeypatch) -> None:
    monkeypatch.setenv("INLINE_MAX_BYTES", "50000")  # the 400 px PNG is about 300 KB
    answer = invoke(api_event("/photos/2024/street.jpg", {"w": "400", "fm": "png"}))
    assert answer.status == 302
    assert answer.headers["Cache-Control"] == "private, no-store"
    location = urlparse(answer.headers["Location"])
    assert "X-Amz-Signature=" in location.query or "Signature=" in location.query
    key = unquote(location.path).split(f"/{CACHE}/", 1)[-1] if CACHE in location.path else unquote(location.path[1:])
    stored = s3.get_object(Bucket=CACHE, Key=key)["Body"].read()
    image = Image.open(io.BytesIO(stored))
    assert (image.format, image.size) == ("PNG", (400, 327))

    # and asked again, it is a hit that redirects straight away
    again = invoke(api_event("/photos/2024/street.jpg", {"w": "400", "fm": "png"}))
    assert again.status == 302 and again.headers["Server-Timing"].startswith("cache;desc=hit")
    assert urlparse(again.headers["Location"]).path == location.path


def test_original_is_served_as_is_with_its_sniffed_type(s3: object) -> None:
    answer = invoke(api_event("/photos/progressive.jpg"))
    assert answer.status == 200 and answer.body == sample("photos/progressive.jpg")
    assert answer.headers["Content-Type"] == "image/jpeg"
    assert answer.headers["Server-Timing"].startswith("cache;desc=original")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"<html><script>alert(1)</script></html>", 415, "unsupported_type"),
        (b"BM" + b"\0" * 60, 422, "undecodable"),  # a BMP (read since issue 15) that is no picture
        (b"8BPS\x00\x01" + b"\0" * 60, 415, "unsupported_type"),
        (sample("photos/2024/street.jpg")[:30_000], 422, "undecodable"),
        (sample("graphics/alpha.png")[:50_000], 422, "undecodable"),
        (b"", 422, "undecodable"),
    ],
)
@pytest.mark.parametrize("query", [{"w": "100"}, {}])
def test_bad_originals_get_a_json_error_and_no_variant(s3: object, body: bytes, status: int, code: str,
                                                      query: dict[str, str]) -> None:
    s3.put_object(Bucket=ORIGINALS, Key="uploads/bad.png", Body=body)
    answer = invoke(api_event("/uploads/bad.png", query))
    assert (answer.status, answer.json["code"]) == (status, code)
    assert s3.list_objects_v2(Bucket=CACHE).get("KeyCount") == 0


def test_original_over_the_byte_limit_is_413(s3: object, monkeypatch) -> None:
    monkeypatch.setenv("MAX_SOURCE_BYTES", "100000")
    answer = invoke(api_event("/photos/2024/street.jpg", {"w": "100"}))
    assert (answer.status, answer.json["code"]) == (413, "too_large")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [({"w": "abc"}, "w"), ({"q": "500"}, "q"), ({"w": ["1", "2"]}, "w"), ({"fit": "bogus"}, "fit"),
     ({"fm": "bmp"}, "fm"), ({"zoom": "2"}, "zoom"), ({"w": "1e9"}, "w")],
)
def test_bad_parameters_are_400_naming_the_parameter(s3: object, query: dict, parameter: str) -> None:
    answer = invoke(api_event("/photos/2024/street.jpg", query))
    assert answer.status == 400
    assert answer.json == {"code": "bad_parameter", "parameter": parameter, "message": answer.json["message"]}
    assert parameter in answer.json["message"]


def test_storage_fault_on_the_original_is_502_and_writes_nothing(s3: object) -> None:
    with Stubber(runtime.store().client) as stub:
        stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)  # cache miss
        stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)  # original
        answer = invoke(api_event("/photos/2024/street.jpg", {"w": "100"}))
    assert (answer.status, answer.json["code"]) == (502, "storage_fault")
    assert answer.headers["Cache-Control"] == "no-store"
    assert s3.list_objects_v2(Bucket=CACHE).get("KeyCount") == 0


def test_unexpected_errors_are_a_generic_500(s3: object, monkeypatch) -> None:
    from imageorigin import render as transform

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(transform, "render", broken)
    answer = invoke(api_event("/photos/2024/street.jpg", {"w": "100"}))
    assert answer.status == 500
    assert answer.json == {"code": "internal_error", "message": "internal error"}


def test_if_none_match_gives_304_and_head_gives_headers_only(s3: object) -> None:
    first = invoke(api_event("/photos/progressive.jpg", {"w": "150"}))
    conditional = invoke(api_event("/photos/progressive.jpg", {"w": "150"},
                                   headers={"If-None-Match": first.headers["ETag"]}))
    assert conditional.status == 304 and conditional.body == b""
    head = invoke(api_event("/photos/progressive.jpg", {"w": "150"}, method="HEAD"))
    assert head.status == 200 and head.body == b""
    assert head.headers["ETag"] == first.headers["ETag"]
    assert head.headers["Content-Type"] == "image/jpeg"


def test_writes_are_refused(s3: object) -> None:
    answer = invoke(api_event("/photos/progressive.jpg", method="POST"))
    assert (answer.status, answer.json["code"]) == (405, "method_not_allowed")


def test_multi_level_and_encoded_keys_are_found(s3: object) -> None:
    s3.put_object(Bucket=ORIGINALS, Key="albums/été 2024/café.jpg", Body=sample("photos/progressive.jpg"))
    answer = invoke(api_event("/albums/%C3%A9t%C3%A9%202024/caf%C3%A9.jpg", {"w": "100"}))
    assert answer.status == 200 and answer.image.size == (100, 67)


CANONICAL_200 = "/v1/photos/progressive.jpg/w=200,fit=inside,enlarge=0,bg=ffffff,fm=jpeg,q=80"


def test_a_request_arriving_already_normalized_is_served_and_shares_the_variant(s3: object) -> None:
    # given the path the edge rewrites ?w=200 to, when requested, then it is rendered and stored at that very key
    normalized = invoke(api_event(CANONICAL_200))
    assert normalized.status == 200 and normalized.image.size == (200, 133)
    assert normalized.image.format == "JPEG" and "Vary" not in normalized.headers
    assert normalized.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stored = s3.get_object(Bucket=CACHE, Key=CANONICAL_200[1:])
    assert stored["ETag"] == normalized.headers["ETag"]  # S3 (serving the edge) and the function agree
    # and the query-style request for the same variant is a hit on it
    query_style = invoke(api_event("/photos/progressive.jpg", {"width": "200"}))
    assert query_style.headers["Server-Timing"].startswith("cache;desc=hit")
    assert query_style.body == normalized.body
    # a canonical path spelled otherwise is read the same way; with a query it is refused
    respelled = invoke(api_event("/v1/photos/progressive.jpg/fm=jpeg,w=200"))
    assert respelled.headers["Server-Timing"].startswith("cache;desc=hit")
    refused = invoke(api_event(CANONICAL_200, {"w": "10"}))
    assert (refused.status, refused.json["parameter"]) == (400, "w")


def test_through_the_edge_a_large_output_redirects_to_its_own_canonical_path(s3: object, monkeypatch) -> None:
    monkeypatch.setenv("INLINE_MAX_BYTES", "50000")
    answer = invoke(api_event("/v1/photos/2024/street.jpg/w=400,fm=png", headers={"X-Imageorigin-Edge": "1"}))
    assert answer.status == 302
    assert answer.headers["Location"] == "/v1/photos/2024/street.jpg/w=400,fit=inside,enlarge=0,fm=png"
    assert answer.headers["Cache-Control"] == "private, no-store"  # CloudFront must not keep the redirect
    # CloudFront's next fetch of that path hits the bucket: the variant is there, complete
    stored = s3.get_object(Bucket=CACHE, Key=answer.headers["Location"][1:])
    assert stored["CacheControl"] == "public, max-age=31536000, immutable"
    image = Image.open(io.BytesIO(stored["Body"].read()))
    assert (image.format, image.size) == ("PNG", (400, 327))
    # without the edge's header, the same request redirects to a presigned URL instead
    direct = invoke(api_event("/photos/2024/street.jpg", {"w": "400", "fm": "png"}))
    assert direct.status == 302 and "Signature=" in direct.headers["Location"]


@pytest.mark.parametrize(("path", "query", "status"), [
    ("/photos/progressive.jpg", {"w": "0"}, 400),
    ("/photos/none.jpg", {"w": "10"}, 404),
    ("/photos/%2e%2e/x.jpg", {"w": "10"}, 400),
])
def test_refusals_are_cached_briefly_and_never_stored(s3: object, path: str, query: dict, status: int) -> None:
    answer = invoke(api_event(path, query))
    assert answer.status == status
    directives = dict(d.strip().partition("=")[::2] for d in answer.headers["Cache-Control"].split(","))
    assert "public" in directives and 0 < int(directives["max-age"]) <= 60
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert s3.list_objects_v2(Bucket=CACHE).get("KeyCount", 0) == 0


def test_faults_are_never_cached(s3: object) -> None:
    with Stubber(runtime.store().client) as stub:
        stub.add_client_error("get_object", "InternalError", http_status_code=500)
        stub.add_client_error("get_object", "InternalError", http_status_code=500)
        answer = invoke(api_event("/photos/progressive.jpg", {"w": "10"}))
    assert answer.status == 502 and answer.headers["Cache-Control"] == "no-store"


def test_cors_is_answered_to_browsers_that_ask(s3: object) -> None:
    cross = invoke(api_event("/photos/progressive.jpg", {"w": "50"}, headers={"Origin": "https://app.example"}))
    assert cross.status == 200 and cross.headers["Access-Control-Allow-Origin"] == "*"
    error = invoke(api_event("/photos/progressive.jpg", {"w": "0"}, headers={"Origin": "https://app.example"}))
    assert error.status == 400 and error.headers["Access-Control-Allow-Origin"] == "*"
    same_origin = invoke(api_event("/photos/progressive.jpg", {"w": "50"}))
    assert "Access-Control-Allow-Origin" not in same_origin.headers


def test_cors_can_be_switched_off_or_narrowed() -> None:
    from imageorigin.config import Settings
    from imageorigin.handlers import api

    assert api._cors(Settings(cors_allow_origin="")) is None
    narrowed = api._cors(Settings(cors_allow_origin="https://shop.example"))
    assert narrowed.to_dict(narrowed.allowed_origin("https://shop.example"))["Access-Control-Allow-Origin"] == \
        "https://shop.example"
    assert narrowed.allowed_origin("https://evil.example") is None


def test_with_one_allowed_origin_caches_keep_answers_per_origin(s3: object, monkeypatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "https://shop.example")
    auto = invoke(api_event("/photos/progressive.jpg", {"w": "50", "fm": "auto"}, accept="image/webp"))
    assert auto.image.format == "WEBP" and auto.headers["Vary"] == "Accept, Origin"
    error = invoke(api_event("/photos/progressive.jpg", {"w": "0"}))
    assert error.headers["Vary"] == "Origin"


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/photos/%2e%2e/photos/progressive.jpg", 400, "bad_key"),  # %2e%2e is '..' once decoded
    ("/photos/%2E%2E%2Fprogressive.jpg", 400, "bad_key"),
    ("/photos/%252e%252e/progressive.jpg", 404, "not_found"),  # decoded once: a literal '%2e%2e' folder
    ("/photos//progressive.jpg", 400, "bad_key"),
    ("/photos/./progressive.jpg", 400, "bad_key"),
    ("/photos/progressive.jpg%00.png", 400, "bad_key"),
    ("/photos%5Cprogressive.jpg", 400, "bad_key"),
    ("/photos/%FF.jpg", 400, "bad_key"),
    ("/photos/100%.jpg", 400, "bad_key"),
    ("/" + "a" * 1021 + ".jpg", 400, "bad_key"),
])
def test_unsafe_keys_are_refused_and_decoded_exactly_once(s3: object, path: str, status: int, code: str) -> None:
    answer = invoke(api_event(path, {"w": "100"}))
    assert (answer.status, answer.json["code"]) == (status, code)


def test_an_encoded_slash_is_a_slash_and_keys_only_ever_name_originals(s3: object) -> None:
    assert invoke(api_event("/photos%2Fprogressive.jpg", {"w": "100"})).image.size == (100, 67)
    s3.put_object(Bucket=CACHE, Key="private/cache-only.jpg", Body=sample("photos/progressive.jpg"))
    answer = invoke(api_event("/private/cache-only.jpg", {"w": "100"}))
    assert (answer.status, answer.json["code"]) == (404, "not_found")  # the cache bucket is never read as originals


PREFLIGHT = """
import json, sys
import imageorigin.handlers.api as api
event = json.load(open(sys.argv[1]))
event.update(httpMethod="OPTIONS", path="/photos/a.jpg", queryStringParameters=None,
             multiValueQueryStringParameters=None)
event["headers"] = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "t", 1769, "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:t"
answer = api.lambda_handler(event, Context())
print(answer["statusCode"], answer["multiValueHeaders"]["Access-Control-Allow-Origin"][0])
"""


def test_a_preflight_logs_no_empty_metrics_warning() -> None:
    # given a fresh process, as on Lambda, when a browser's CORS preflight (answered by the resolver, no metric)
    # arrives, then the answer allows the origin and stderr carries no powertools "No application metrics" warning
    env = dict(os.environ, POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_NAMESPACE="test",
               AWS_DEFAULT_REGION="us-east-1")
    out = subprocess.run([sys.executable, "-c", PREFLIGHT, str(EVENTS / "api_resize.json")],
                         capture_output=True, text=True, cwd=ROOT / "functions" / "resize", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["204", "*"]
    assert "No application metrics" not in out.stderr
