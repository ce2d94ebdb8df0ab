"""Use cases shared by every trigger: serve an original, or get a variant from the cache or render and store it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from urllib.parse import quote

from . import spec, transform
from .cdn import Invalidator, NoCdn
from .config import Settings
from .errors import OriginalNotFound, OutOfTime, StorageFault
from .spec import ImageRequest
from .storage import SOURCE_ETAG, Blob, Store, strong_etag

log = logging.getLogger(__name__)


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
                  remaining_ms: RemainingTime | None = None, *, via_edge: bool = False) -> Delivery:
    """Answer from the cache bucket when the variant is there; else read, render, store and answer.

    A stored variant too large to answer inline is a 302: to its own canonical path when the request came through
    our CloudFront distribution (`via_edge`; the edge then serves it from the bucket), else to PUBLIC_CACHE_URL or
    a presigned URL."""
    if request.spec is None:
        return _original(request.key, store, settings)
    timings = Timings()
    variant_key = request.variant_key(settings.key_version)
    vary = request.spec.negotiated

    with timings.stage("fetch"):
        cached = _cached_variant(store, variant_key, settings.inline_max_bytes)
    if cached is not None:
        return _deliver(cached, CacheStatus.HIT, request, store, settings, timings, vary=vary, stored=True,
                        via_edge=via_edge)

    _ensure_time(remaining_ms, settings.time_reserve_ms, "render the image")
    with timings.stage("fetch"):
        original = store.get_original(request.key, settings.max_source_bytes)
    with timings.stage("render"):
        rendered = transform.render(original.data, request.spec, limits(settings))
    _ensure_time(remaining_ms, settings.time_reserve_ms / 3, "store the image")
    with timings.stage("store"):
        stored = _store_variant(store, request.key, variant_key, rendered, original.etag, settings)
    blob = Blob(rendered.data, rendered.content_type, strong_etag(rendered.data))
    delivery = _deliver(blob, CacheStatus.MISS, request, store, settings, timings, vary=vary, stored=stored,
                        bytes_in=len(original.data), via_edge=via_edge)
    if not stored and delivery.body is not None:  # made from bytes since replaced, or not stored: do not cache
        return replace(delivery, cache_control="no-store")
    return delivery


def _store_variant(store: Store, key: str, variant_key: str, rendered: transform.Rendered, source_etag: str,
                   settings: Settings) -> bool:
    """Store a variant, then make sure its original was not replaced meanwhile (a purge may have run between
    our read and our write); if it was, delete what we wrote. True when the variant stays stored."""
    source = source_etag.strip('"')
    try:
        store.put_variant(variant_key, rendered.data, rendered.content_type, settings.variant_cache_control,
                          {SOURCE_ETAG: source})
    except StorageFault:
        log.warning("variant not stored; answering it anyway", extra={"variant_key": variant_key}, exc_info=True)
        return False
    if store.original_etag(key) != source:
        log.info("original replaced while rendering; stale variant removed", extra={"variant_key": variant_key})
        store.delete_variants([variant_key])
        return False
    return True


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


def _deliver(variant: Blob, cache: CacheStatus, request: ImageRequest, store: Store, settings: Settings,
             timings: Timings, *, vary: bool, stored: bool, bytes_in: int = 0, via_edge: bool = False) -> Delivery:
    """Inline when the image fits Lambda's response; otherwise a redirect to the stored variant."""
    if variant.size <= settings.inline_max_bytes and variant.complete:
        return Delivery(cache, variant.content_type, variant.etag, settings.variant_cache_control, body=variant.data,
                        bytes_in=bytes_in, stored=stored, vary_accept=vary, timings=timings)
    if not stored:
        raise StorageFault("the image is too large to answer inline and could not be stored")
    location = (request.canonical_path(settings.key_version) if via_edge
                else variant_url(request, store, settings))
    return Delivery(cache, variant.content_type, variant.etag, "private, no-store", location=location,
                    bytes_in=bytes_in, stored=stored, vary_accept=vary, timings=timings)


def variant_url(request: ImageRequest, store: Store, settings: Settings) -> str:
    """Where a client can fetch a stored variant: under the configured public base URL, else a presigned URL."""
    if settings.public_cache_url:
        return settings.public_cache_url + request.canonical_path(settings.key_version)
    return store.variant_url(request.variant_key(settings.key_version), settings.presign_expires)



MANIFEST = "manifest.json"  # in each original's variant folder: the pre-warmed ladder, for ?picture


@dataclass(frozen=True)
class LadderEntry:
    """One pre-warmed variant as ?picture lists it."""

    query: str  # the canonical query that names it, e.g. w=540&fm=avif
    format: str
    content_type: str
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """What pre-warm made from one version of an original."""

    key: str
    source_etag: str
    width: int
    height: int
    entries: tuple[LadderEntry, ...]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        return cls(raw["key"], raw["source_etag"], raw["width"], raw["height"],
                   tuple(LadderEntry(**entry) for entry in raw["entries"]))


@dataclass(frozen=True)
class PrewarmResult:
    """What one pre-warm did: variants rendered, stale ones deleted."""

    rendered: int
    deleted: int


def variant_prefix(key: str, settings: Settings) -> str:
    return f"{settings.key_version}/{key}/"


def ladder(key: str, settings: Settings) -> list[ImageRequest]:
    """The pre-warmed variants of an original: every ladder width in every ladder format, parsed as the API would
    parse `?w=540&fm=avif`, so pre-warm writes exactly the keys requests look up."""
    requests = []
    for width in settings.ladder_widths:
        if width > settings.max_output_side:
            continue
        for fmt in settings.ladder_formats:
            query = {"w": [str(width)]} | ({} if fmt == "original" else {"fm": [fmt]})
            requests.append(spec.parse("/" + quote(key), query, max_side=settings.max_output_side))
    return requests


def prewarm(key: str, store: Store, settings: Settings, cdn: Invalidator) -> PrewarmResult:
    """An original was created or overwritten: delete variants of any other version of it, render the missing
    ladder variants from one decode, and write the manifest. Idempotent: a second run writes nothing."""
    try:
        original = store.get_original(key, settings.max_source_bytes)
    except OriginalNotFound:  # deleted since the event was sent: its removal event purges
        return PrewarmResult(0, 0)
    source = original.etag.strip('"')
    prefix = variant_prefix(key, settings)
    manifest_key = prefix + MANIFEST
    existing = [k for k in store.list_variants(prefix) if "/" not in k[len(prefix):]]
    stale = [k for k in existing if k != manifest_key and store.variant_source(k) != source]
    if stale:
        store.delete_variants(stale)
        cdn.invalidate(_cdn_paths(key, settings))
    present = set(existing) - set(stale)
    old_json = store.get_variant(manifest_key, 1_000_000) if manifest_key in present else None
    known = _entries_of(old_json.data if old_json else None, source)

    wanted = ladder(key, settings)
    # a ladder variant the manifest does not describe (one a request made before this event) is rendered again,
    # so that ?picture can list it with its real size
    missing = [r for r in wanted
               if r.variant_key(settings.key_version) not in present or r.spec.query() not in known]
    rendered = transform.render_many(original.data, [r.spec for r in missing], limits(settings)) if missing else []
    for request, variant in zip(missing, rendered, strict=True):
        store.put_variant(request.variant_key(settings.key_version), variant.data, variant.content_type,
                          settings.variant_cache_control, {SOURCE_ETAG: source})

    made = {r.spec.query(): v for r, v in zip(missing, rendered, strict=True)}
    width, height = transform.upright_size(original.data, limits(settings))
    entries = tuple(_entry(r.spec.query(), made[r.spec.query()]) if r.spec.query() in made
                    else known[r.spec.query()] for r in wanted)
    manifest = Manifest(key, source, width, height, entries).to_json()
    if old_json is None or old_json.data != manifest:
        store.put_variant(manifest_key, manifest, "application/json", "no-cache", {SOURCE_ETAG: source})

    if store.original_etag(key) != source:  # overwritten while we worked: its own event re-does this
        store.delete_variants([r.variant_key(settings.key_version) for r in missing] + [manifest_key])
    return PrewarmResult(len(rendered), len(stale))


def _entries_of(manifest_json: bytes | None, source: str) -> dict[str, LadderEntry]:
    """The entries of a stored manifest, by query, if it describes this version of the original."""
    if manifest_json is None:
        return {}
    try:
        manifest = Manifest.from_json(manifest_json)
    except (ValueError, KeyError, TypeError):
        return {}
    return {e.query: e for e in manifest.entries} if manifest.source_etag == source else {}


def _entry(query: str, variant: transform.Rendered) -> LadderEntry:
    return LadderEntry(query, variant.format, variant.content_type, variant.width, variant.height, len(variant.data))


def purge(key: str, store: Store, settings: Settings, cdn: Invalidator) -> int:
    """An original was deleted: delete every variant of it (and its manifest) and invalidate the CDN."""
    prefix = variant_prefix(key, settings)
    keys = [k for k in store.list_variants(prefix) if "/" not in k[len(prefix):]]
    if keys:
        store.delete_variants(keys)
    cdn.invalidate(_cdn_paths(key, settings))
    return len(keys)


def _cdn_paths(key: str, settings: Settings) -> list[str]:
    """Every URL of an original at the edge: its query-style URLs and its canonical variant paths."""
    encoded = quote(key)
    return [f"/{encoded}", f"/{encoded}?*", f"/{settings.key_version}/{encoded}/*"]


def picture_manifest(key: str, store: Store, settings: Settings) -> Manifest:
    """The pre-warmed ladder of an original, pre-warming it first if that has not happened (yet)."""
    manifest_key = variant_prefix(key, settings) + MANIFEST
    blob = store.get_variant(manifest_key, 1_000_000)
    etag = store.original_etag(key)
    if etag is None:
        raise OriginalNotFound(f"no image at {key!r}")
    if blob is not None:
        manifest = Manifest.from_json(blob.data)
        if manifest.source_etag == etag:
            return manifest
    prewarm(key, store, settings, NoCdn())
    blob = store.get_variant(manifest_key, 1_000_000)
    if blob is None:
        raise StorageFault("the ladder could not be stored")
    return Manifest.from_json(blob.data)
