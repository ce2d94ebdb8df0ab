"""get_or_render on the in-memory store: hits skip the original, misses store, large outputs redirect."""

from __future__ import annotations

import io
import os
from dataclasses import replace

import pytest
from conftest import sample
from fakes import SOURCE_ETAG, MemoryStore
from PIL import Image

from imageorigin import delivery as service
from imageorigin.config import Settings
from imageorigin.errors import StorageFault
from imageorigin.grammars.query import parse

SETTINGS = Settings(originals_bucket="o", cache_bucket="c")


@pytest.fixture
def store() -> MemoryStore:
    memory = MemoryStore()
    memory.add_original("photos/street.jpg", sample("photos/2024/street.jpg"), "image/jpeg")
    return memory


def request(query: dict[str, str], key: str = "photos/street.jpg"):
    return parse("/" + key, {k: [v] for k, v in query.items()})


def test_miss_renders_stores_and_the_next_request_is_a_hit_without_reading_the_original(store: MemoryStore) -> None:
    first = service.get_or_render(request({"w": "300", "fm": "webp"}), store, SETTINGS)
    assert first.cache is service.CacheStatus.MISS and first.stored
    assert Image.open(io.BytesIO(first.body)).size == (300, 245)
    assert set(first.timings.stages) == {"fetch", "render", "store"}
    store.calls.clear()

    second = service.get_or_render(request({"width": "300", "format": "webp", "q": "80"}), store, SETTINGS)
    assert second.cache is service.CacheStatus.HIT
    assert second.body == first.body and second.etag == first.etag
    assert store.calls == [("get_variant", "v1/photos/street.jpg/w=300,fit=inside,enlarge=0,fm=webp,q=80")]


def test_variant_records_the_original_it_was_made_from(store: MemoryStore) -> None:
    service.get_or_render(request({"w": "100"}), store, SETTINGS)
    (variant,) = store.variants.values()
    assert variant.metadata[SOURCE_ETAG] == store.originals["photos/street.jpg"].etag.strip('"')


def test_a_failed_store_still_answers_the_image(store: MemoryStore) -> None:
    store.fail_puts = True
    delivery = service.get_or_render(request({"w": "120"}), store, SETTINGS)
    assert not delivery.stored and Image.open(io.BytesIO(delivery.body)).width == 120
    assert not store.variants


def test_output_too_large_to_answer_inline_is_stored_and_redirected(store: MemoryStore) -> None:
    settings = replace(SETTINGS, inline_max_bytes=10_000)
    delivery = service.get_or_render(request({"w": "300", "fm": "png"}), store, settings)
    assert delivery.body is None and delivery.location.startswith("memory://cache/v1/photos/street.jpg/")
    assert delivery.cache_control == "private, no-store"
    stored = store.variants["v1/photos/street.jpg/w=300,fit=inside,enlarge=0,fm=png"]  # ~150 KB: over 10 KB
    assert Image.open(io.BytesIO(stored.data)).size == (300, 245)  # 2225 * 300 / 2725 = 244.95


def test_redirect_uses_the_public_cache_url_when_configured(store: MemoryStore) -> None:
    settings = replace(SETTINGS, inline_max_bytes=10_000, public_cache_url="https://img-cache.example.com")
    delivery = service.get_or_render(request({"w": "300", "fm": "png"}), store, settings)
    assert delivery.location == "https://img-cache.example.com/v1/photos/street.jpg/w=300,fit=inside,enlarge=0,fm=png"


def test_too_large_and_not_stored_is_a_storage_fault(store: MemoryStore) -> None:
    store.fail_puts = True
    with pytest.raises(StorageFault):
        service.get_or_render(request({"w": "300", "fm": "png"}), store, replace(SETTINGS, inline_max_bytes=10_000))


def test_no_parameters_serve_the_original_bytes(store: MemoryStore) -> None:
    delivery = service.get_or_render(request({}), store, SETTINGS)
    assert delivery.cache is service.CacheStatus.ORIGINAL
    assert delivery.body == sample("photos/2024/street.jpg") and delivery.content_type == "image/jpeg"
    assert delivery.cache_control == SETTINGS.original_cache_control
    assert not store.variants


def test_large_original_is_redirected_not_inlined(store: MemoryStore) -> None:
    delivery = service.get_or_render(request({}), store, replace(SETTINGS, inline_max_bytes=100_000))
    assert delivery.body is None and delivery.location.startswith("memory://originals/photos/street.jpg")


def test_noisy_output_over_the_real_inline_limit_redirects(store: MemoryStore) -> None:
    # given a 1600x1600 noise image, whose PNG is larger than Lambda can return (about 7.7 MB)
    noise = Image.frombytes("RGB", (1600, 1600), os.urandom(1600 * 1600 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG", compress_level=1)
    store.add_original("noise.png", out.getvalue())
    delivery = service.get_or_render(request({"w": "1600"}, key="noise.png"), store, SETTINGS)
    assert delivery.location is not None and delivery.body is None
    stored = store.variants["v1/noise.png/w=1600,fit=inside,enlarge=0,fm=png"]
    assert len(stored.data) > SETTINGS.inline_max_bytes
    assert Image.open(io.BytesIO(stored.data)).size == (1600, 1600)
