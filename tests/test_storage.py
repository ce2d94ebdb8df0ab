"""S3Store on moto: reads, size refusal before download, atomic writes with headers, faults mapped to 502."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from conftest import CACHE, ORIGINALS, sample

from imageorigin.errors import OriginalNotFound, StorageFault, TooLarge
from imageorigin.storage import S3Store, strong_etag


@pytest.fixture
def store(s3: object) -> S3Store:
    return S3Store(ORIGINALS, CACHE)


def test_reads_an_original_with_its_etag(store: S3Store) -> None:
    blob = store.get_original("photos/lake.webp", 10_000_000)
    assert blob.data == sample("photos/lake.webp")
    assert blob.etag == strong_etag(blob.data)


def test_missing_original_is_not_found(store: S3Store) -> None:
    with pytest.raises(OriginalNotFound) as caught:
        store.get_original("nope.jpg", 10_000_000)
    assert caught.value.status == 404


def test_original_over_the_byte_limit_is_refused_before_its_body_is_read(store: S3Store) -> None:
    reads: list[int] = []
    store.client.meta.events.register("after-call.s3.GetObject",
                                      lambda parsed, **_: reads.append(parsed["ContentLength"]))
    with pytest.raises(TooLarge, match="bytes"):
        store.get_original("photos/2024/street.jpg", 100_000)
    assert reads == [len(sample("photos/2024/street.jpg"))]


def test_variant_round_trip_keeps_type_cache_control_and_metadata(store: S3Store, s3: object) -> None:
    store.put_variant("v1/a.jpg/w=1", b"abc", "image/webp", "public, max-age=60", {"source-etag": "x1"})
    head = s3.head_object(Bucket=CACHE, Key="v1/a.jpg/w=1")
    assert (head["ContentType"], head["CacheControl"], head["Metadata"]) == (
        "image/webp", "public, max-age=60", {"source-etag": "x1"})
    blob = store.get_variant("v1/a.jpg/w=1", 1000)
    assert blob.data == b"abc" and blob.etag == strong_etag(b"abc")
    assert store.get_variant("v1/a.jpg/w=2", 1000) is None


def test_a_variant_over_the_read_limit_is_described_but_not_downloaded(store: S3Store) -> None:
    store.put_variant("v1/big/w=1", b"x" * 5000, "image/png", "public", {})
    blob = store.get_variant("v1/big/w=1", 1000)
    assert (blob.data, blob.size, blob.complete) == (b"", 5000, False)
    assert blob.etag == strong_etag(b"x" * 5000)


def test_variants_never_land_in_the_originals_bucket(store: S3Store, s3: object) -> None:
    store.put_variant("v1/x/w=1", b"abc", "image/png", "public", {})
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=ORIGINALS).get("Contents", [])]
    assert "v1/x/w=1" not in keys


@pytest.mark.parametrize("code", ["SlowDown", "InternalError", "AccessDenied", "ServiceUnavailable"])
def test_s3_faults_become_storage_faults(store: S3Store, code: str) -> None:
    with Stubber(store.client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=503)
        with pytest.raises(StorageFault) as caught:
            store.get_original("photos/lake.webp", 10_000_000)
    assert caught.value.status == 502


def test_a_failed_put_leaves_no_variant(store: S3Store, s3: object) -> None:
    with Stubber(store.client) as stub:
        stub.add_client_error("put_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(StorageFault):
            store.put_variant("v1/a.jpg/w=9", b"abc", "image/png", "public", {})
    assert store.get_variant("v1/a.jpg/w=9", 1000) is None


def test_presigned_url_names_the_bucket_and_key(store: S3Store) -> None:
    url = store.variant_url("v1/photos/a b.jpg/w=1", 600)
    assert CACHE in url
    assert "photos/a%20b.jpg/w%3D1" in url
    assert "X-Amz-Expires=600" in url or "Expires=" in url
