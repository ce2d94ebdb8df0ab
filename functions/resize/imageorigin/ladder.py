"""Pre-warm, purge and the manifest: the responsive ladder made when an original arrives, gone when it goes."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import quote

from . import render
from .cdn import Invalidator, NoCdn
from .config import Settings
from .deadline import Deadline
from .delivery import Kind, cache_control, limits, variant_metadata
from .errors import OriginalNotFound, StorageFault
from .grammars import query as query_grammar
from .model import ImageRequest, animations_marked, variant_prefix
from .storage import SOURCE_ETAG, Store

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"  # in each original's variant folder: the pre-warmed ladder, for ?picture
MANIFEST_MAX_BYTES = 1_000_000


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


def prefix(key: str, settings: Settings) -> str:
    return variant_prefix(key, settings.key_version)


def ladder(key: str, settings: Settings) -> list[ImageRequest]:
    """The pre-warmed variants of an original: every ladder width in every ladder format, parsed as the API would
    parse `?w=540&fm=avif`, so pre-warm writes exactly the keys requests look up."""
    requests = []
    for width in settings.ladder_widths:
        if width > settings.max_output_side:
            continue
        for fmt in settings.ladder_formats:
            query = {"w": [str(width)]} | ({} if fmt == "original" else {"fm": [fmt]})
            requests.append(query_grammar.parse("/" + quote(key), query, max_side=settings.max_output_side))
    return requests


def prewarm(key: str, store: Store, settings: Settings, cdn: Invalidator,
            deadline: Deadline | None = None) -> PrewarmResult:
    """An original was created or overwritten: delete variants of any other version of it, render the missing
    ladder variants from one decode, and write the manifest. Idempotent: a second run renders nothing, and a run
    after one that failed half-way renders only what that one did not store."""
    deadline = deadline or Deadline.unbounded()
    store = store.within(deadline)
    try:
        original = store.get_original(key, settings.max_source_bytes)
    except OriginalNotFound:  # deleted since the event was sent: its removal event purges
        return PrewarmResult(0, 0)
    source = original.etag.strip('"')
    folder = prefix(key, settings)
    manifest_key = folder + MANIFEST
    existing = [k for k in store.list_variants(folder) if "/" not in k[len(folder):]]
    heads = {k: store.variant_metadata(k) for k in existing if k != manifest_key}
    stale = [k for k, meta in heads.items() if meta is None or meta.get(SOURCE_ETAG) != source]
    if stale:
        # animation markers of another version go too, and the animations they name (made of that version)
        animations = animations_marked(stale, settings.key_version)
        store.delete_variants(animations + stale)
        cdn.invalidate(cdn_paths(key, settings) + ["/" + k for k in animations])

    wanted = ladder(key, settings)
    known = {r.variant_key(settings.key_version): _entry_of(r, heads.get(r.variant_key(settings.key_version)))
             for r in wanted if r.variant_key(settings.key_version) in heads and
             r.variant_key(settings.key_version) not in stale}
    known = {k: v for k, v in known.items() if v is not None}
    missing = [r for r in wanted if r.variant_key(settings.key_version) not in known]
    rendered = (render.render_many(original.data, [r.spec for r in missing], limits(settings), deadline)
                if missing else [])
    for request, variant in zip(missing, rendered, strict=True):
        variant_key = request.variant_key(settings.key_version)
        store.put_variant(variant_key, variant.data, variant.content_type, settings.variant_cache_control,
                          variant_metadata(source, variant))
        known[variant_key] = _entry(request, variant.format.value, variant.content_type, variant.width,
                                    variant.height, len(variant.data))

    width, height = render.upright_size(original.data, limits(settings))
    entries = tuple(known[r.variant_key(settings.key_version)] for r in wanted)
    manifest = Manifest(key, source, width, height, entries).to_json()
    old = store.get_variant(manifest_key, MANIFEST_MAX_BYTES) if manifest_key in existing else None
    if old is None or old.data != manifest:
        store.put_variant(manifest_key, manifest, "application/json", cache_control(Kind.MANIFEST, settings),
                          {SOURCE_ETAG: source})

    if store.original_etag(key) != source:  # overwritten while we worked: its own event re-does this
        store.delete_variants([r.variant_key(settings.key_version) for r in missing] + [manifest_key])
    return PrewarmResult(len(rendered), len(stale))


def _entry(request: ImageRequest, fmt: str, content_type: str, width: int, height: int, size: int) -> LadderEntry:
    assert request.spec is not None
    return LadderEntry(request.spec.query(), fmt, content_type, width, height, size)


def _entry_of(request: ImageRequest, meta: Mapping[str, str] | None) -> LadderEntry | None:
    """A ladder entry rebuilt from what a stored variant records of itself (None: it records too little)."""
    try:
        assert request.spec is not None and meta is not None
        return _entry(request, meta["format"], meta["media-type"], int(meta["width"]), int(meta["height"]),
                      int(meta["bytes"]))
    except (AssertionError, KeyError, ValueError):
        return None


def purge(key: str, store: Store, settings: Settings, cdn: Invalidator) -> int:
    """An original was deleted: delete every variant of it (and its manifest) and invalidate the CDN."""
    folder = prefix(key, settings)
    keys = [k for k in store.list_variants(folder) if "/" not in k[len(folder):]]
    animations = animations_marked(keys, settings.key_version)  # made of it: they go with it
    if keys:
        store.delete_variants(animations + keys)
    cdn.invalidate(cdn_paths(key, settings) + ["/" + k for k in animations])
    return len(keys)


def cdn_paths(key: str, settings: Settings) -> list[str]:
    """Every URL of an original at the edge: its query-style URLs and its canonical variant paths."""
    encoded = quote(key)
    return [f"/{encoded}", f"/{encoded}?*", f"/{settings.key_version}/{encoded}/*"]


def picture_manifest(key: str, store: Store, settings: Settings, deadline: Deadline | None = None) -> Manifest:
    """The pre-warmed ladder of an original, pre-warming it first if that has not happened (yet)."""
    manifest_key = prefix(key, settings) + MANIFEST
    blob = store.get_variant(manifest_key, MANIFEST_MAX_BYTES)
    etag = store.original_etag(key)
    if etag is None:
        raise OriginalNotFound(f"no image at {key!r}")
    if blob is not None:
        manifest = Manifest.from_json(blob.data)
        if manifest.source_etag == etag:
            return manifest
    prewarm(key, store, settings, NoCdn(), deadline)
    blob = store.get_variant(manifest_key, MANIFEST_MAX_BYTES)
    if blob is None:
        raise StorageFault("the ladder could not be stored")
    return Manifest.from_json(blob.data)
