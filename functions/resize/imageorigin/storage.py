"""Originals and variants behind a small protocol: S3 (boto3, honouring AWS_ENDPOINT_URL_S3) and an in-memory twin."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from .errors import OriginalNotFound, StorageFault, TooLarge

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"NoSuchKey", "404", "NotFound"}
SOURCE_ETAG = "source-etag"  # variant metadata: the ETag of the original it was rendered from


class _NoSuchKey(Exception):
    """S3 has no object at that key (internal: each caller decides what a missing object means)."""


@dataclass(frozen=True)
class Blob:
    """An object's bytes and the headers that travel with it."""

    data: bytes
    content_type: str
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    size: int = -1  # the object's size; data is empty when it was larger than the caller wanted to read

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.data))

    @property
    def complete(self) -> bool:
        return len(self.data) == self.size


def strong_etag(data: bytes) -> str:
    """The ETag S3 gives a single-part upload (MD5 hex, quoted), so every cache layer agrees on it."""
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


class Store(Protocol):
    """Where originals are read and variants are kept."""

    def get_original(self, key: str, max_bytes: int) -> Blob:
        """The original's bytes; OriginalNotFound, TooLarge (checked before downloading) or StorageFault."""

    def get_variant(self, key: str, max_bytes: int) -> Blob | None:
        """A stored variant, or None; its body is left unread when over max_bytes. StorageFault on failure."""

    def put_variant(self, key: str, data: bytes, content_type: str, cache_control: str,
                    metadata: Mapping[str, str]) -> None:
        """Store a variant whole or not at all; StorageFault on failure."""

    def original_etag(self, key: str) -> str | None:
        """The original's current ETag (unquoted), None if there is none; StorageFault on failure."""

    def variant_source(self, key: str) -> str | None:
        """The ETag of the original a stored variant was made from (its metadata), None if it is gone."""

    def list_variants(self, prefix: str) -> list[str]:
        """Every key in the cache bucket under `prefix`."""

    def delete_variants(self, keys: list[str]) -> None:
        """Delete these keys from the cache bucket (missing ones are fine); StorageFault on failure."""

    def original_url(self, key: str, expires: int) -> str:
        """A time-limited URL a client can fetch the original from."""

    def variant_url(self, key: str, expires: int) -> str:
        """A time-limited URL a client can fetch a stored variant from."""


class S3Store:
    """Two buckets: originals (read only) and cache (read and write). The client is made on first use."""

    def __init__(self, originals_bucket: str, cache_bucket: str, client: S3Client | None = None) -> None:
        self.originals_bucket = originals_bucket
        self.cache_bucket = cache_bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10,
                            signature_version="s3v4")
            self._client = boto3.client("s3", config=config)
        return self._client

    def get_original(self, key: str, max_bytes: int) -> Blob:
        try:
            response = self._call("get_object", Bucket=self.originals_bucket, Key=key)
        except _NoSuchKey:
            raise OriginalNotFound(f"no image at {key!r}") from None
        size = response["ContentLength"]
        if size > max_bytes:
            response["Body"].close()
            raise TooLarge(f"the original is {size} bytes; the limit is {max_bytes}")
        return Blob(self._read(response), response.get("ContentType", ""), response.get("ETag", ""),
                    response.get("Metadata", {}))

    def get_variant(self, key: str, max_bytes: int) -> Blob | None:
        try:
            response = self._call("get_object", Bucket=self.cache_bucket, Key=key)
        except _NoSuchKey:
            return None
        size = response["ContentLength"]
        if size > max_bytes:
            response["Body"].close()
            data = b""
        else:
            data = self._read(response)
        return Blob(data, response.get("ContentType", ""), response.get("ETag", ""), response.get("Metadata", {}),
                    size)

    def put_variant(self, key: str, data: bytes, content_type: str, cache_control: str,
                    metadata: Mapping[str, str]) -> None:
        digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        self._call("put_object", Bucket=self.cache_bucket, Key=key, Body=data, ContentType=content_type,
                   CacheControl=cache_control, Metadata=dict(metadata), ContentMD5=digest)

    def original_etag(self, key: str) -> str | None:
        try:
            return self._call("head_object", Bucket=self.originals_bucket, Key=key)["ETag"].strip('"')
        except _NoSuchKey:
            return None

    def variant_source(self, key: str) -> str | None:
        try:
            head = self._call("head_object", Bucket=self.cache_bucket, Key=key)
        except _NoSuchKey:
            return None
        return head.get("Metadata", {}).get(SOURCE_ETAG, "")

    def list_variants(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.cache_bucket, Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise StorageFault("the cache bucket could not be listed") from exc

    def delete_variants(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3 deletes at most 1000 keys a call
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            response = self._call("delete_objects", Bucket=self.cache_bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                raise StorageFault(f"{len(response['Errors'])} variants could not be deleted")

    def original_url(self, key: str, expires: int) -> str:
        return self._presign(self.originals_bucket, key, expires)

    def variant_url(self, key: str, expires: int) -> str:
        return self._presign(self.cache_bucket, key, expires)

    def _presign(self, bucket: str, key: str, expires: int) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )

    def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _MISSING:
                raise _NoSuchKey from None
            raise StorageFault(f"storage answered {code or 'an error'} for {operation}") from exc
        except BotoCoreError as exc:
            raise StorageFault(f"storage could not be reached for {operation}") from exc

    @staticmethod
    def _read(response: Any) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return response["Body"].read()
        except (BotoCoreError, OSError) as exc:
            raise StorageFault("the object could not be read whole from storage") from exc


@dataclass
class MemoryStore:
    """The in-memory twin of S3Store, for unit tests and the benchmark; counts every call."""

    originals: dict[str, Blob] = field(default_factory=dict)
    variants: dict[str, Blob] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_puts: bool = False
    fail_gets: int = 0  # the next N get_original calls fail, as a throttled S3 would

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
        blob = self.originals.get(key)
        return blob.etag.strip('"') if blob else None

    def variant_source(self, key: str) -> str | None:
        self.calls.append(("variant_source", key))
        blob = self.variants.get(key)
        return blob.metadata.get(SOURCE_ETAG, "") if blob else None

    def list_variants(self, prefix: str) -> list[str]:
        self.calls.append(("list_variants", prefix))
        return sorted(key for key in self.variants if key.startswith(prefix))

    def delete_variants(self, keys: list[str]) -> None:
        self.calls.append(("delete_variants", ",".join(keys)))
        for key in keys:
            self.variants.pop(key, None)

    def original_url(self, key: str, expires: int) -> str:
        return f"memory://originals/{quote(key)}?expires={expires}"

    def variant_url(self, key: str, expires: int) -> str:
        return f"memory://cache/{quote(key)}?expires={expires}"
