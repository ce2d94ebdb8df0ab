"""Use cases shared by every trigger: serve an original, or get a variant from the cache or render and store it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from . import transform
from .config import Settings
from .errors import OutOfTime, StorageFault
from .spec import ImageRequest
from .storage import Blob, Store, strong_etag

log = logging.getLogger(__name__)

SOURCE_ETAG = "source-etag"  # variant metadata: the ETag of the original it was rendered from


class CacheStatus(StrEnum):
    """Where the answer came from: a stored variant, a fresh render, or the original itself."""

    HIT = "hit"
    MISS = "miss"
    ORIGINAL = "original"


@dataclass
class Timings:
    """Milliseconds spent per stage, in the order they ran; becomes the Server-Timing header."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + (time.perf_counter() - start) * 1000


@dataclass(frozen=True)
class Delivery:
    """What to answer: the image inline, or a redirect to where it is stored."""

    cache: CacheStatus
    content_type: str
    etag: str
    cache_control: str
    body: bytes | None = None  # None: redirect to `location`
    location: str | None = None
    bytes_in: int = 0
    stored: bool = False
    vary_accept: bool = False
    timings: Timings = field(default_factory=Timings)

    @property
    def size(self) -> int:
        return len(self.body) if self.body is not None else 0


RemainingTime = Callable[[], int]  # milliseconds left in this invocation (Lambda's get_remaining_time_in_millis)


def limits(settings: Settings) -> transform.Limits:
    return transform.Limits(max_pixels=settings.max_source_pixels, max_side=settings.max_output_side,
                            max_frames=settings.max_frames, max_animation_pixels=settings.max_animation_pixels)


def _ensure_time(remaining_ms: RemainingTime | None, needed_ms: float, step: str) -> None:
    """Refuse to start a step the invocation may be killed in the middle of."""
    if remaining_ms is not None and remaining_ms() < needed_ms:
        raise OutOfTime(f"too little time left to {step}; please retry")


def get_or_render(request: ImageRequest, store: Store, settings: Settings,
                  remaining_ms: RemainingTime | None = None) -> Delivery:
    """Answer from the cache bucket when the variant is there; else read, render, store and answer."""
    if request.spec is None:
        return _original(request.key, store, settings)
    timings = Timings()
    variant_key = request.variant_key(settings.key_version)
    vary = request.spec.negotiated

    with timings.stage("fetch"):
        cached = _cached_variant(store, variant_key, settings.inline_max_bytes)
    if cached is not None:
        return _deliver(cached, CacheStatus.HIT, variant_key, store, settings, timings, vary=vary, stored=True)

    _ensure_time(remaining_ms, settings.time_reserve_ms, "render the image")
    with timings.stage("fetch"):
        original = store.get_original(request.key, settings.max_source_bytes)
    with timings.stage("render"):
        rendered = transform.render(original.data, request.spec, limits(settings))
    _ensure_time(remaining_ms, settings.time_reserve_ms / 3, "store the image")
    stored = False
    with timings.stage("store"):
        try:
            store.put_variant(variant_key, rendered.data, rendered.content_type, settings.variant_cache_control,
                              {SOURCE_ETAG: original.etag.strip('"')})
            stored = True
        except StorageFault:
            log.warning("variant not stored; answering it anyway", extra={"variant_key": variant_key},
                        exc_info=True)
    blob = Blob(rendered.data, rendered.content_type, strong_etag(rendered.data))
    return _deliver(blob, CacheStatus.MISS, variant_key, store, settings, timings, vary=vary, stored=stored,
                    bytes_in=len(original.data))


def _cached_variant(store: Store, variant_key: str, max_bytes: int) -> Blob | None:
    """The stored variant; a cache bucket that cannot be read is treated as a miss, not an outage."""
    try:
        return store.get_variant(variant_key, max_bytes)
    except StorageFault:
        log.warning("cache bucket unreadable; rendering instead", extra={"variant_key": variant_key},
                    exc_info=True)
        return None


def _original(key: str, store: Store, settings: Settings) -> Delivery:
    """No transformation asked: the original as it is, if it is an allowed image within the limits."""
    timings = Timings()
    with timings.stage("fetch"):
        original = store.get_original(key, settings.max_source_bytes)
    info = transform.probe(original.data, limits(settings))  # the type we answer with is sniffed, never trusted
    if len(original.data) > settings.inline_max_bytes:
        return Delivery(CacheStatus.ORIGINAL, info.content_type, original.etag, "private, no-store",
                        location=store.original_url(key, settings.presign_expires), timings=timings)
    return Delivery(CacheStatus.ORIGINAL, info.content_type, original.etag, settings.original_cache_control,
                    body=original.data, bytes_in=len(original.data), timings=timings)


def _deliver(variant: Blob, cache: CacheStatus, variant_key: str, store: Store, settings: Settings,
             timings: Timings, *, vary: bool, stored: bool, bytes_in: int = 0) -> Delivery:
    """Inline when the image fits Lambda's response; otherwise a redirect to the stored variant."""
    if variant.size <= settings.inline_max_bytes and variant.complete:
        return Delivery(cache, variant.content_type, variant.etag, settings.variant_cache_control, body=variant.data,
                        bytes_in=bytes_in, stored=stored, vary_accept=vary, timings=timings)
    if not stored:
        raise StorageFault("the image is too large to answer inline and could not be stored")
    return Delivery(cache, variant.content_type, variant.etag, "private, no-store",
                    location=variant_url(variant_key, store, settings), bytes_in=bytes_in, stored=stored,
                    vary_accept=vary, timings=timings)


def variant_url(variant_key: str, store: Store, settings: Settings) -> str:
    """Where a client can fetch a stored variant: the configured public base URL, else a presigned URL."""
    if settings.public_cache_url:
        return f"{settings.public_cache_url}/{quote(variant_key)}"
    return store.variant_url(variant_key, settings.presign_expires)

