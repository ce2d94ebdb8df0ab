"""Get-or-render, and every delivery decision in one place: Cache-Control, inline or redirect, Vary, no-store."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum

from . import formats, render
from .config import Settings
from .deadline import Deadline
from .errors import ImageServiceError, StorageFault
from .formats import Format
from .model import ImageRequest, ResizeSpec, canonicalize
from .storage import SOURCE_ETAG, Blob, Store, strong_etag

log = logging.getLogger(__name__)


class CacheStatus(StrEnum):
    """Where the answer came from: a stored variant, a fresh render, or the original itself."""

    HIT = "hit"
    MISS = "miss"
    ORIGINAL = "original"


class Kind(StrEnum):
    """What an answer is, which decides how long caches may keep it."""

    VARIANT = "variant"  # a stored variant: immutable, for a year
    ORIGINAL = "original"  # the original as it is: it may be replaced, so a day
    UNSTORED = "unstored"  # rendered but not kept (a race with an overwrite, a failed store): never cached
    REDIRECT = "redirect"  # a 302 to where the image is: its target may be presigned, so never cached
    PICTURE = "picture"  # ?picture markup: the ladder may be re-made on an overwrite, so minutes
    MANIFEST = "manifest"  # the ladder's manifest in the cache bucket: always revalidated
    REFUSAL = "refusal"  # a 4xx: briefly, so a storm of bad URLs does not reach the function
    FAULT = "fault"  # a 5xx: never


PICTURE_MAX_AGE = 300


def cache_control(kind: Kind, settings: Settings, expires: int | None = None, now: float | None = None) -> str:
    """The Cache-Control of an answer of this kind; a verified signature's exp= caps how long it may be kept."""
    value = {
        Kind.VARIANT: settings.variant_cache_control,
        Kind.ORIGINAL: settings.original_cache_control,
        Kind.UNSTORED: "no-store",
        Kind.REDIRECT: "private, no-store",
        Kind.PICTURE: f"public, max-age={PICTURE_MAX_AGE}",
        Kind.MANIFEST: "no-cache",
        Kind.REFUSAL: settings.error_cache_control,
        Kind.FAULT: "no-store",
    }[kind]
    if expires is not None and value.startswith("public"):
        left = max(0, expires - int(time.time() if now is None else now))
        value = f"public, max-age={left}"
    return value


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


def limits(settings: Settings) -> render.Limits:
    """The render's limits, from the settings (the one place they meet)."""
    return render.Limits(max_pixels=settings.max_source_pixels, max_side=settings.max_output_side,
                         max_frames=settings.max_frames, max_animation_pixels=settings.max_animation_pixels,
                         max_output_pixels=settings.max_output_pixels, max_work_ms=settings.max_work_ms)


def get_or_render(request: ImageRequest, store: Store, settings: Settings, deadline: Deadline | None = None, *,
                  via_edge: bool = False, expires: int | None = None) -> Delivery:
    """Answer from the cache bucket when the variant is there; else read, render, store and answer.

    A stored variant too large to answer inline is a 302: to its own canonical path when the request came through
    our CloudFront distribution (`via_edge`; the edge then serves it from the bucket), else to PUBLIC_CACHE_URL or
    a presigned URL. Nothing is left stored when the request fails."""
    deadline = deadline or Deadline.unbounded()
    store = store.within(deadline)
    if request.spec is None:
        return _original(request, store, settings, deadline, expires)
    timings = Timings()
    hit = _hit(request, store, settings, timings, via_edge=via_edge, expires=expires)
    if hit is not None:
        return hit
    return _render(request, store, settings, deadline, timings, via_edge=via_edge, expires=expires)


def _hit(request: ImageRequest, store: Store, settings: Settings, timings: Timings, *, via_edge: bool = False,
         expires: int | None = None) -> Delivery | None:
    """The request's variant from the cache bucket, delivered; None when it is not stored."""
    with timings.stage("fetch"):
        cached = _cached_variant(store, request.variant_key(settings.key_version), settings.inline_max_bytes)
    if cached is None:
        return None
    return _deliver(cached, CacheStatus.HIT, request, store, settings, timings, stored=True, via_edge=via_edge,
                    expires=expires)


def _render(request: ImageRequest, store: Store, settings: Settings, deadline: Deadline, timings: Timings, *,
            via_edge: bool = False, expires: int | None = None, original: Blob | None = None) -> Delivery:
    """A variant not in the cache bucket: read the original (unless it was read already), render, store, answer."""
    deadline.check("render the image", settings.time_reserve_ms)
    if original is None:
        with timings.stage("fetch"):
            original = store.get_original(request.key, settings.max_source_bytes)
    with timings.stage("render"):
        rendered = render.render(original.data, request.spec, limits(settings),
                                 Deadline(deadline.remaining_ms, deadline.reserve_ms + settings.time_reserve_ms))
    deadline.check("store the image")
    variant_key = request.variant_key(settings.key_version)
    with timings.stage("store"):
        stored = _store_variant(store, request.key, variant_key, rendered, original.etag, settings)
    blob = Blob(rendered.data, rendered.content_type, strong_etag(rendered.data))
    return _deliver(blob, CacheStatus.MISS, request, store, settings, timings, stored=stored,
                    bytes_in=len(original.data), via_edge=via_edge, expires=expires)


def _store_variant(store: Store, key: str, variant_key: str, rendered: render.Rendered, source_etag: str,
                   settings: Settings) -> bool:
    """Store a variant, then make sure its original was not replaced meanwhile (a purge may have run between our
    read and our write). When it was, or when that cannot be known, or the write failed, the variant is deleted
    (best effort): True only when it stays stored and is known to be of the current original."""
    source = source_etag.strip('"')
    try:
        store.put_variant(variant_key, rendered.data, rendered.content_type, settings.variant_cache_control,
                          variant_metadata(source, rendered))
        if store.original_etag(key) == source:
            return True
        log.info("original replaced while rendering; stale variant removed", extra={"variant_key": variant_key})
    except ImageServiceError as error:  # StorageFault or OutOfTime: what was written, if anything, must go
        log.warning("variant not kept; answering it anyway", extra={"variant_key": variant_key,
                                                                    "reason": error.message})
    try:
        store.delete_variants([variant_key])
    except ImageServiceError:
        log.error("a variant that could not be confirmed could not be deleted", extra={"variant_key": variant_key})
    return False


def variant_metadata(source_etag: str, rendered: render.Rendered) -> dict[str, str]:
    """What a stored variant records of itself: the original it was made from, and its size (for the manifest)."""
    return {SOURCE_ETAG: source_etag, "format": rendered.format.value, "media-type": rendered.content_type,
            "width": str(rendered.width), "height": str(rendered.height), "frames": str(rendered.frames),
            "bytes": str(len(rendered.data))}


def _cached_variant(store: Store, variant_key: str, max_bytes: int) -> Blob | None:
    """The stored variant; a cache bucket that cannot be read is treated as a miss, not an outage."""
    try:
        return store.get_variant(variant_key, max_bytes)
    except StorageFault:
        log.warning("cache bucket unreadable; rendering instead", extra={"variant_key": variant_key},
                    exc_info=True)
        return None


def _original(request: ImageRequest, store: Store, settings: Settings, deadline: Deadline,
              expires: int | None) -> Delivery:
    """No transformation asked: the original as it is, if it is an allowed image within the limits that browsers
    show as it is; any other (BMP, TIFF, ICO, SVG, HEIC) is rendered in the format keeping it means.

    A key whose extension names one of those is looked up among the variants first, so its cached rendering is
    answered without reading the original; otherwise the original is read once, and its bytes decide."""
    timings = Timings()
    named = formats.named_by_key(request.key)
    guessed = _kept(request, named) if named is not None and named.decoder and not named.web_safe else None
    if guessed is not None:
        hit = _hit(guessed, store, settings, timings, expires=expires)
        if hit is not None:
            return hit
    with timings.stage("fetch"):
        original = store.get_original(request.key, settings.max_source_bytes)
    sniffed = formats.sniff(original.data[:formats.SNIFF_BYTES])
    if sniffed is not None and sniffed.decoder and not sniffed.web_safe:
        kept = _kept(request, sniffed)
        if kept != guessed:  # the bytes are not what the key's extension said: that variant is not looked up yet
            hit = _hit(kept, store, settings, timings, expires=expires)
            if hit is not None:
                return hit
        return _render(kept, store, settings, deadline, timings, expires=expires, original=original)
    info = render.probe(original.data, limits(settings))  # the type we answer with is sniffed, never trusted
    if len(original.data) > settings.inline_max_bytes:
        return Delivery(CacheStatus.ORIGINAL, info.content_type, original.etag,
                        cache_control(Kind.REDIRECT, settings),
                        location=store.original_url(request.key, settings.presign_expires), timings=timings)
    return Delivery(CacheStatus.ORIGINAL, info.content_type, original.etag,
                    cache_control(Kind.ORIGINAL, settings, expires), body=original.data,
                    bytes_in=len(original.data), timings=timings)


def _kept(request: ImageRequest, original_format: formats.ImageFormat) -> ImageRequest:
    """The request for an original in the format keeping it means (a BMP's PNG, a TIFF's JPEG ...)."""
    return replace(request, spec=canonicalize(ResizeSpec(format=original_format.keep_as or Format.PNG)))


def _deliver(variant: Blob, cache: CacheStatus, request: ImageRequest, store: Store, settings: Settings,
             timings: Timings, *, stored: bool, bytes_in: int = 0, via_edge: bool = False,
             expires: int | None = None) -> Delivery:
    """Inline when the image fits Lambda's response; otherwise a redirect to the stored variant."""
    vary = request.negotiated
    if variant.size <= settings.inline_max_bytes and variant.complete:
        kind = Kind.VARIANT if stored else Kind.UNSTORED
        return Delivery(cache, variant.content_type, variant.etag, cache_control(kind, settings, expires),
                        body=variant.data, bytes_in=bytes_in, stored=stored, vary_accept=vary, timings=timings)
    if not stored:
        raise StorageFault("the image is too large to answer inline and could not be stored")
    location = (request.canonical_path(settings.key_version) if via_edge and request.has_canonical_path(
        settings.key_version) else variant_url(request, store, settings))
    return Delivery(cache, variant.content_type, variant.etag, cache_control(Kind.REDIRECT, settings),
                    location=location, bytes_in=bytes_in, stored=stored, vary_accept=vary, timings=timings)


def variant_url(request: ImageRequest, store: Store, settings: Settings) -> str:
    """Where a client can fetch a stored variant: under the configured public base URL, else a presigned URL."""
    if settings.public_cache_url and request.has_canonical_path(settings.key_version):
        return settings.public_cache_url + request.canonical_path(settings.key_version)
    return store.variant_url(request.variant_key(settings.key_version), settings.presign_expires)

