"""Originals and variants behind a small protocol: S3 (boto3, honouring AWS_ENDPOINT_URL_S3); its in-memory twin
lives in tests/fakes.py.

S3 calls made through `S3Store.within(deadline)` are bounded by that deadline: each call runs on a client whose
connect and read timeouts and number of attempts fit the time left (one of a few fixed levels, so only a handful of
clients is ever made), none starts when even the smallest level no longer fits (OutOfTime, 503), and a body is read
in chunks with the socket's timeout cut to the time left (OutOfTime when the deadline cut it, StorageFault when S3
stopped sending within its read timeout). Without a deadline the store behaves as it always did."""

from __future__ import annotations

import base64
import copy
import hashlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .deadline import Deadline
from .errors import OriginalNotFound, OutOfTime, StorageFault, TooLarge

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"NoSuchKey", "404", "NotFound"}
SOURCE_ETAG = "source-etag"  # variant metadata: the ETag of the original it was rendered from
CHUNK_BYTES = 256 * 1024  # a body is read at most this much a time, the deadline checked between reads


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


def attachment(filename: str) -> str:
    """A Content-Disposition that downloads under `filename` (a plain ASCII name: quotes and controls left out)."""
    safe = "".join(ch for ch in filename if ch.isascii() and ch.isprintable() and ch not in '"\\')
    return f'attachment; filename="{safe}"'


def strong_etag(data: bytes) -> str:
    """The ETag S3 gives a single-part upload (MD5 hex, quoted), so every cache layer agrees on it."""
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


class Store(Protocol):
    """Where originals are read and variants are kept."""

    def within(self, deadline: Deadline) -> Store:
        """This store with every call bounded by `deadline` (OutOfTime or StorageFault in time); made per request."""

    def get_original(self, key: str, max_bytes: int) -> Blob:
        """The original's bytes; OriginalNotFound, TooLarge (checked before downloading) or StorageFault."""

    def get_variant(self, key: str, max_bytes: int) -> Blob | None:
        """A stored variant, or None; its body is left unread when over max_bytes. StorageFault on failure."""

    def put_variant(self, key: str, data: bytes, content_type: str, cache_control: str,
                    metadata: Mapping[str, str]) -> None:
        """Store a variant whole or not at all; StorageFault on failure."""

    def original_etag(self, key: str) -> str | None:
        """The original's current ETag (unquoted), None if there is none; StorageFault on failure."""

    def variant_metadata(self, key: str) -> Mapping[str, str] | None:
        """What a stored variant records of itself (the original's ETag it was made from, its size...), None if
        it is gone."""

    def list_variants(self, prefix: str) -> list[str]:
        """Every key in the cache bucket under `prefix`."""

    def delete_variants(self, keys: list[str]) -> None:
        """Delete these keys from the cache bucket (missing ones are fine); StorageFault on failure."""

    def original_url(self, key: str, expires: int) -> str:
        """A time-limited URL a client can fetch the original from."""

    def variant_url(self, key: str, expires: int, download: str | None = None) -> str:
        """A time-limited URL a client can fetch a stored variant from; with `download`, one whose answer says
        `Content-Disposition: attachment; filename="<download>"` (browsers save it under that name)."""


@dataclass(frozen=True)
class Limits:
    """How one S3 client is configured: each attempt's connect and read timeouts, and how many attempts a call
    makes (botocore's standard retry mode)."""

    connect_s: float
    read_s: float
    attempts: int

    def worst_ms(self, sends_body: bool = False) -> float:
        """The longest one call can take against an S3 that accepts and never answers, or never accepts.

        Each attempt: connecting (and the TLS handshake) within the connect timeout each, the answer within the
        read timeout (never shorter than the connect timeout here, so a stalled handshake is covered too). A call
        that sends a body also waits up to 1 s for "100 Continue" (botocore asks for it) and may block sending
        for another connect timeout (urllib3 sends under it). Between attempts, the longest sleeps standard mode
        takes (throttled: up to 1 s, then 2 s). Not counted: DNS resolution, and the extra sleep an
        x-amz-retry-after header would ask for (S3 sends none)."""
        attempt_s = self.connect_s + self.read_s + (self.connect_s + 1.0 if sends_body else 0.0)
        backoff_s = sum(min(2.0**i, 20.0) for i in range(self.attempts - 1))
        return (self.attempts * attempt_s + backoff_s) * 1000.0


# The levels a call under a deadline picks from, most generous first: the first whose worst case fits the time left.
# Fixed, so at most len(LEVELS) clients are ever made (making one costs tens of milliseconds).
LEVELS = (  # worst case without / with a body
    Limits(2.0, 5.0, 3),  # 24 s / 33 s
    Limits(2.0, 5.0, 2),  # 15 s / 21 s
    Limits(1.0, 3.0, 2),  # 9 s / 13 s
    Limits(1.0, 3.0, 1),  # 4 s / 6 s
    Limits(0.5, 1.5, 1),  # 2 s / 3.5 s
    Limits(0.1, 0.1, 1),  # 0.2 s / 1.3 s: with less left than this no call is started (OutOfTime)
)
UNBOUNDED = Limits(3.0, 10.0, 4)  # without a deadline, as always: max_attempts=3 retries, 4 attempts
_SENDS_BODY = frozenset({"put_object"})  # the calls botocore sends with "Expect: 100-continue"


def limits_for(left_ms: float, sends_body: bool = False) -> Limits | None:
    """The most generous level whose worst case fits in `left_ms`; None when not even the smallest does."""
    return next((level for level in LEVELS if level.worst_ms(sends_body) <= left_ms), None)


class _Clients:
    """The boto3 clients a store and its views share, one per Limits, each made on first use (never at import).

    A client handed to S3Store is used for every call, whatever the level: it is the caller's, so it is never
    reconfigured (the deadline is still checked before each call and while reading a body)."""

    def __init__(self, client: S3Client | None) -> None:
        self.given = client
        self.made: dict[Limits, S3Client] = {}
        self._lock = threading.Lock()

    def get(self, limits: Limits) -> S3Client:
        if self.given is not None:
            return self.given
        client = self.made.get(limits)
        if client is None:
            with self._lock:
                client = self.made.get(limits)
                if client is None:
                    client = self.made[limits] = _make_client(limits)
        return client

    def any(self) -> S3Client:
        """A client already made if there is one (presigning needs no network, so any will do)."""
        if self.given is not None:
            return self.given
        return next(iter(self.made.values()), None) or self.get(UNBOUNDED)


def _make_client(limits: Limits) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": limits.attempts},
                    connect_timeout=limits.connect_s, read_timeout=limits.read_s, signature_version="s3v4")
    return boto3.client("s3", config=config)  # AWS_ENDPOINT_URL_S3, region and credentials: boto3's own lookup


def _bound_read(body: Any, seconds: float) -> bool:
    """Make the next read of a streaming body give up after `seconds`, by setting its socket's timeout (the reach
    into urllib3 that botocore's StreamingBody.set_socket_timeout makes, without its log). True when the next read
    is so bounded, or cannot wait at all (a body already in memory: moto's, stubs'); False when it reads from a
    network whose socket is out of reach."""
    import urllib3.response
    from botocore.compat import set_socket_timeout

    raw = getattr(body, "_raw_stream", body)
    if not isinstance(raw, urllib3.response.HTTPResponse):  # what botocore reads from, urllib3 1.26 and 2
        return True
    try:
        set_socket_timeout(raw, seconds)
    except AttributeError:
        return bool(raw.closed)
    return True


def _is_timeout(exc: BaseException) -> bool:
    import urllib3.exceptions
    from botocore.exceptions import ReadTimeoutError

    return isinstance(exc, (TimeoutError, ReadTimeoutError, urllib3.exceptions.TimeoutError))


class S3Store:
    """Two buckets: originals (read only) and cache (read and write). Clients are made on first use.

    `within(deadline)` gives a view bounded by the deadline, sharing this store's clients; made once per request."""

    def __init__(self, originals_bucket: str, cache_bucket: str, client: S3Client | None = None) -> None:
        self.originals_bucket = originals_bucket
        self.cache_bucket = cache_bucket
        self._clients = _Clients(client)
        self._deadline: Deadline | None = None

    def within(self, deadline: Deadline) -> S3Store:
        """A view of this store, sharing its clients, whose every call ends by `deadline` (OutOfTime or
        StorageFault). An unbounded deadline is no deadline: the view calls as this store does."""
        view = copy.copy(self)
        view._deadline = None if math.isinf(deadline.left_ms()) else deadline
        return view

    @property
    def deadline(self) -> Deadline | None:
        return self._deadline

    @property
    def client(self) -> S3Client:
        """The client of calls made without a deadline (calls under one use the client of their level)."""
        return self._clients.get(UNBOUNDED)

    def get_original(self, key: str, max_bytes: int) -> Blob:
        try:
            response, limits = self._get(self.originals_bucket, key)
        except _NoSuchKey:
            raise OriginalNotFound(f"no image at {key!r}") from None
        size = response["ContentLength"]
        if size > max_bytes:
            response["Body"].close()
            raise TooLarge(f"the original is {size} bytes; the limit is {max_bytes}")
        return Blob(self._read(response, limits, "the original"), response.get("ContentType", ""),
                    response.get("ETag", ""), response.get("Metadata", {}))

    def get_variant(self, key: str, max_bytes: int) -> Blob | None:
        try:
            response, limits = self._get(self.cache_bucket, key)
        except _NoSuchKey:
            return None
        size = response["ContentLength"]
        if size > max_bytes:
            response["Body"].close()
            data = b""
        else:
            data = self._read(response, limits, "the variant")
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

    def variant_metadata(self, key: str) -> Mapping[str, str] | None:
        try:
            head = self._call("head_object", Bucket=self.cache_bucket, Key=key)
        except _NoSuchKey:
            return None
        return dict(head.get("Metadata", {}))

    def list_variants(self, prefix: str) -> list[str]:
        keys: list[str] = []
        params: dict[str, Any] = {"Bucket": self.cache_bucket, "Prefix": prefix}
        try:
            while True:  # a page a call, each bounded on its own
                page = self._call("list_objects_v2", **params)
                keys += [item["Key"] for item in page.get("Contents", [])]
                if not page.get("IsTruncated"):
                    return keys
                params["ContinuationToken"] = page["NextContinuationToken"]
        except (StorageFault, _NoSuchKey) as exc:
            raise StorageFault("the cache bucket could not be listed") from exc

    def delete_variants(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3 deletes at most 1000 keys a call
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            response = self._call("delete_objects", Bucket=self.cache_bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                raise StorageFault(f"{len(response['Errors'])} variants could not be deleted")

    def original_url(self, key: str, expires: int) -> str:
        return self._presign(self.originals_bucket, key, expires)

    def variant_url(self, key: str, expires: int, download: str | None = None) -> str:
        return self._presign(self.cache_bucket, key, expires, download)

    def _presign(self, bucket: str, key: str, expires: int, download: str | None = None) -> str:
        client = self.client if self._deadline is None else self._clients.any()
        params = {"Bucket": bucket, "Key": key}
        if download is not None:  # S3 answers the presigned GET with this header (response-content-disposition)
            params["ResponseContentDisposition"] = attachment(download)
        return client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)

    def _limits(self, operation: str) -> Limits:
        """The level this call runs at: unbounded without a deadline, else the most generous that fits."""
        if self._deadline is None:
            return UNBOUNDED
        sends_body = operation in _SENDS_BODY
        limits = limits_for(self._deadline.left_ms(), sends_body)
        if limits is None:
            self._deadline.check(f"call storage ({operation})", LEVELS[-1].worst_ms(sends_body))
            limits = LEVELS[-1]  # only when the time left grew back since
        return limits

    def _client_for(self, operation: str) -> tuple[S3Client, Limits]:
        """The client to make this call with, and its level. Making a client takes time (tens of milliseconds, more
        on the first), so once it is at hand the level is chosen again with what is left then, until it holds."""
        limits = self._limits(operation)
        client = self._clients.get(limits)
        if self._deadline is not None and self._clients.given is None:
            while (again := self._limits(operation)) != limits:  # only ever a smaller level: it ends
                limits, client = again, self._clients.get(again)
        return client, limits

    def _get(self, bucket: str, key: str) -> tuple[Any, Limits]:
        return self._send("get_object", Bucket=bucket, Key=key)

    def _call(self, operation: str, **params: Any) -> Any:
        return self._send(operation, **params)[0]

    def _send(self, operation: str, **params: Any) -> tuple[Any, Limits]:
        """The call's response and the level it was made at; StorageFault (or _NoSuchKey) when it failed."""
        from botocore.exceptions import BotoCoreError, ClientError

        client, limits = self._client_for(operation)
        try:
            return getattr(client, operation)(**params), limits
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _MISSING:
                raise _NoSuchKey from None
            raise StorageFault(f"storage answered {code or 'an error'} for {operation}") from exc
        except BotoCoreError as exc:  # timeouts and connection failures, after the level's attempts
            raise StorageFault(f"storage could not be reached for {operation}") from exc

    def _read(self, response: Any, limits: Limits, what: str) -> bytes:
        """The whole body. Under a deadline: a chunk at a time (one socket read each where urllib3 allows), the
        socket's timeout cut to the time left before each, so a stalled or trickling body ends by the deadline:
        OutOfTime when the deadline cut the wait, StorageFault when S3 went silent for the level's read timeout,
        broke the connection or sent less than it announced."""
        import urllib3.exceptions
        from botocore.exceptions import BotoCoreError

        body = response["Body"]
        deadline = self._deadline
        if deadline is None:
            try:
                return body.read()
            except (BotoCoreError, OSError, urllib3.exceptions.HTTPError) as exc:
                raise StorageFault("the object could not be read whole from storage") from exc
        # urllib3 2's read1 makes one recv at most, so a body trickling in cannot hold a read past its timeout;
        # urllib3 1.26 (the Lambda runtime's) has no read1, and a read then waits for the whole chunk
        read = getattr(getattr(body, "_raw_stream", None), "read1", None) or body.read
        step = f"read {what} from storage"
        expected = response.get("ContentLength")
        chunks: list[bytes] = []
        received = 0
        cut = False
        try:
            while expected is None or received < int(expected):  # not one read more: the stream closes at its end
                left_s = deadline.left_ms() / 1000.0
                cut = left_s < limits.read_s
                if _bound_read(body, max(min(limits.read_s, left_s), 0.001)):
                    deadline.check(step)  # any time left will do: the socket gives up at the deadline
                else:
                    deadline.check(step, limits.read_s * 1000.0)  # a read could wait the whole read timeout
                chunk = read(CHUNK_BYTES)
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
        except OutOfTime:
            body.close()
            raise
        except (BotoCoreError, OSError, urllib3.exceptions.HTTPError) as exc:
            body.close()
            if cut and _is_timeout(exc):
                raise OutOfTime(f"too little time left to {step}; please retry") from exc
            raise StorageFault("the object could not be read whole from storage") from exc
        if expected is not None and received != int(expected):
            raise StorageFault(f"storage sent {received} of the object's {expected} bytes")
        return b"".join(chunks)
