"""In-memory twins of the service's ports (S3 store, CDN) for unit tests, the benchmark and make worst."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from imageorigin.errors import OriginalNotFound, StorageFault, TooLarge
from imageorigin.storage import SOURCE_ETAG, Blob, attachment, strong_etag

__all__ = ["SOURCE_ETAG", "MemoryStore", "RecordingCdn"]


@dataclass
class MemoryStore:
    """The in-memory twin of S3Store; counts every call, and can fail puts or gets as a throttled S3 would."""

    originals: dict[str, Blob] = field(default_factory=dict)
    variants: dict[str, Blob] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_puts: bool = False
    fail_gets: int = 0  # the next N get_original calls fail
    fail_etag_checks: bool = False  # original_etag fails, as a HEAD after a store might

    def within(self, deadline: object) -> MemoryStore:
        return self

    def add_original(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.originals[key] = Blob(data, content_type, strong_etag(data))

    def get_original(self, key: str, max_bytes: int) -> Blob:
        self.calls.append(("get_original", key))
        if self.fail_gets:
            self.fail_gets -= 1
            raise StorageFault("storage answered SlowDown for get_object")
        if key not in self.originals:
            raise OriginalNotFound(f"no image at {key!r}")
        blob = self.originals[key]
        if len(blob.data) > max_bytes:
            raise TooLarge(f"the original is {len(blob.data)} bytes; the limit is {max_bytes}")
        return blob

    def get_variant(self, key: str, max_bytes: int) -> Blob | None:
        self.calls.append(("get_variant", key))
        blob = self.variants.get(key)
        if blob is not None and blob.size > max_bytes:
            return Blob(b"", blob.content_type, blob.etag, blob.metadata, blob.size)
        return blob

    def put_variant(self, key: str, data: bytes, content_type: str, cache_control: str,
                    metadata: Mapping[str, str]) -> None:
        self.calls.append(("put_variant", key))
        if self.fail_puts:
            raise StorageFault("storage answered SlowDown for put_object")
        self.variants[key] = Blob(data, content_type, strong_etag(data), dict(metadata))

    def original_etag(self, key: str) -> str | None:
        self.calls.append(("original_etag", key))
        if self.fail_etag_checks:
            raise StorageFault("storage answered InternalError for head_object")
        blob = self.originals.get(key)
        return blob.etag.strip('"') if blob else None

    def variant_metadata(self, key: str) -> Mapping[str, str] | None:
        self.calls.append(("variant_metadata", key))
        blob = self.variants.get(key)
        return dict(blob.metadata) if blob else None

    def list_variants(self, prefix: str) -> list[str]:
        self.calls.append(("list_variants", prefix))
        return sorted(key for key in self.variants if key.startswith(prefix))

    def delete_variants(self, keys: list[str]) -> None:
        self.calls.append(("delete_variants", ",".join(keys)))
        for key in keys:
            self.variants.pop(key, None)

    def original_url(self, key: str, expires: int) -> str:
        return f"memory://originals/{quote(key)}?expires={expires}"

    def variant_url(self, key: str, expires: int, download: str | None = None) -> str:
        disposition = f"&response-content-disposition={quote(attachment(download))}" if download else ""
        return f"memory://cache/{quote(key)}?expires={expires}{disposition}"


@dataclass
class RecordingCdn:
    """The CDN twin: remembers every invalidation."""

    invalidated: list[list[str]] = field(default_factory=list)

    def invalidate(self, paths: list[str]) -> None:
        self.invalidated.append(list(paths))
