"""S3Store on moto: reads, size refusal before download, atomic writes with headers, faults mapped to 502; under a
deadline, every call against an S3 that hangs ends in time (a local server that never answers stands in for it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from botocore import compat
from botocore.stub import Stubber
from conftest import CACHE, ORIGINALS, sample
from fakes import MemoryStore

from imageorigin.deadline import Deadline
from imageorigin.errors import OriginalNotFound, OutOfTime, StorageFault, TooLarge
from imageorigin.storage import CHUNK_BYTES, LEVELS, Blob, S3Store, limits_for, strong_etag


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


# --- Under a deadline: every call, and every body read, ends in time against an S3 that hangs. ---

DEADLINE_MS = 2000  # the hung-endpoint tests: under the 2 s level, so the smallest (0.1 s timeouts; 1.3 s with a body)
TRICKLE_DEADLINE_MS = 2500  # the level whose read timeout (1.5 s) outlasts the trickle's 0.2 s between bytes
MARGIN_S = 1.5  # how far past the deadline a call may end: a bound, generous for a loaded test machine
STEADY = Deadline(lambda: 20_000, reserve_ms=0)  # always 20 s left: one level, whatever the machine's speed


class Silent:
    """An "S3" on 127.0.0.1 that accepts connections and then, by `mode`: never answers ("hang"), or answers the
    headers of a 1 MB object and its first 1000 bytes, then sends nothing ("stall"), a byte every 0.2 s ("trickle")
    or closes the connection ("short")."""

    def __init__(self, mode: str) -> None:
        import socket
        import threading

        self.mode = mode
        self.connections = 0
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        import threading

        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: object) -> None:
        with conn:
            conn.settimeout(0.1)
            request = b""
            while b"\r\n\r\n" not in request and not self.stop.is_set():
                try:
                    request += conn.recv(65536) or b""
                except TimeoutError:
                    continue
            if self.mode != "hang" and not self.stop.is_set():
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nETag: "abc"\r\n'
                             b"Content-Length: 1000000\r\n\r\n" + b"x" * 1000)
            if self.mode == "short":
                return  # and the connection closes
            while not self.stop.wait(0.2):
                if self.mode == "trickle":
                    conn.sendall(b"x")

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(2)


@pytest.fixture
def silent(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Silent]:
    server = Silent(getattr(request, "param", "hang"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)  # boto3 reads it as each client is made
    yield server
    server.close()


def bounded(deadline_ms: float = DEADLINE_MS) -> S3Store:
    return S3Store(ORIGINALS, CACHE).within(Deadline.after(deadline_ms, reserve_ms=0))


def ends_in_time(call: Callable[[], object], error: type[Exception] | tuple[type[Exception], ...],
                 deadline_ms: float = DEADLINE_MS) -> Exception:
    started = time.monotonic()
    with pytest.raises(error) as caught:
        call()
    assert time.monotonic() - started < deadline_ms / 1000 + MARGIN_S
    return caught.value


CALLS: dict[str, Callable[[S3Store], object]] = {
    "get_original": lambda store: store.get_original("photos/lake.webp", 10_000_000),
    "put_variant": lambda store: store.put_variant("v1/a.jpg/w=1", b"x" * 200_000, "image/webp", "public", {}),
    "original_etag": lambda store: store.original_etag("photos/lake.webp"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_hung_endpoint_ends_by_the_deadline(silent: Silent, name: str) -> None:
    fault = ends_in_time(lambda: CALLS[name](bounded()), (StorageFault, OutOfTime))
    assert fault.status in (502, 503)
    assert silent.connections >= 1  # it was really tried


@pytest.mark.parametrize("silent", ["stall"], indirect=True)
@pytest.mark.parametrize("read1", [True, False], ids=["urllib3-2", "without-read1"])
def test_a_body_that_stops_after_its_headers_is_a_storage_fault_by_the_deadline(
        silent: Silent, read1: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not read1:  # as urllib3 1.26 (the Lambda runtime's) reads: a chunk at a time, no read1
        import urllib3.response

        for cls in (urllib3.response.HTTPResponse, urllib3.response.BaseHTTPResponse):
            monkeypatch.delattr(cls, "read1")
    fault = ends_in_time(lambda: bounded().get_variant("v1/a.jpg/w=1", 10_000_000), StorageFault)
    assert fault.status == 502


@pytest.mark.parametrize("silent", ["trickle"], indirect=True)
def test_a_body_that_never_stops_trickling_is_cut_at_the_deadline(silent: Silent) -> None:
    # every read gets a byte well within the read timeout: only the deadline ends it
    fault = ends_in_time(lambda: bounded(TRICKLE_DEADLINE_MS).get_original("photos/lake.webp", 10_000_000), OutOfTime,
                         TRICKLE_DEADLINE_MS)
    assert fault.status == 503


@pytest.mark.parametrize("silent", ["short"], indirect=True)
def test_a_body_cut_short_is_a_storage_fault(silent: Silent) -> None:
    with pytest.raises(StorageFault, match=r"could not be read whole|of the object's"):
        bounded().get_original("photos/lake.webp", 10_000_000)


def test_a_view_reads_a_large_body_whole_over_a_real_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto's server over HTTP: the chunked read, with the socket's timeout set before each chunk, as against S3
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
        data = bytes(range(256)) * 12_000  # 3 MB: a dozen chunks
        client = boto3.client("s3")
        client.create_bucket(Bucket="socket-originals")
        client.put_object(Bucket="socket-originals", Key="big.jpg", Body=data)
        timeouts: list[float] = []
        real = compat.set_socket_timeout
        monkeypatch.setattr(compat, "set_socket_timeout", lambda raw, s: timeouts.append(s) or real(raw, s))
        view = S3Store("socket-originals", "socket-cache").within(STEADY)
        assert view.get_original("big.jpg", 10_000_000).data == data
        level = limits_for(STEADY.left_ms())
        assert len(timeouts) > 1 and set(timeouts) == {level.read_s}  # read in chunks, the socket bounded for each
    finally:
        server.stop()


def test_no_call_is_started_with_too_little_time_left(silent: Silent) -> None:
    store = bounded(LEVELS[-1].worst_ms() - 1)
    with pytest.raises(OutOfTime, match="too little time left to call storage"):
        store.get_original("photos/lake.webp", 10_000_000)
    with pytest.raises(OutOfTime, match="put_object"):
        bounded(LEVELS[-1].worst_ms(sends_body=True) - 1).put_variant("v1/a.jpg/w=1", b"abc", "image/png", "", {})
    assert silent.connections == 0


@pytest.mark.parametrize("sends_body", [False, True])
def test_every_level_fits_the_time_it_is_chosen_for(sends_body: bool) -> None:
    least = LEVELS[-1].worst_ms(sends_body)
    assert limits_for(least - 1, sends_body) is None
    # arithmetic, not timing: each level's worst case is computed from its configured timeouts and attempts
    for budget in range(int(least), 60_000, 50):
        chosen = limits_for(budget, sends_body)
        assert chosen is not None and chosen.worst_ms(sends_body) <= budget
    assert all(level.connect_s <= level.read_s <= 5 and level.connect_s <= 2 and level.attempts <= 3
               for level in LEVELS)


def test_a_hung_call_on_a_28_s_lambda_ends_with_time_to_answer() -> None:
    left_ms = 28_000 - 1000  # all of it left, 1 s kept back to answer
    assert limits_for(left_ms) == LEVELS[0] and LEVELS[0].worst_ms() == 24_000  # 3 x (2 + 5) s + 1 s + 2 s
    assert limits_for(left_ms, sends_body=True) == LEVELS[1] and LEVELS[1].worst_ms(sends_body=True) == 21_000


def test_the_levels_are_the_clients_configuration(silent: Silent) -> None:
    store = bounded()
    with pytest.raises(StorageFault):
        store.original_etag("photos/lake.webp")
    assert store._clients.made  # (more than one if making the first took so long that a smaller level fitted)
    for level, client in store._clients.made.items():
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (level.connect_s, level.read_s)
        assert config.retries == {"mode": "standard", "total_max_attempts": level.attempts}
        assert client.meta.endpoint_url == silent.endpoint  # AWS_ENDPOINT_URL_S3 honoured


def test_without_a_deadline_the_client_is_configured_as_before(s3: object) -> None:
    config = S3Store(ORIGINALS, CACHE).client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (3, 10)
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}  # max_attempts=3 retries, as before


def test_a_view_reads_writes_lists_and_deletes_as_the_store_does(store: S3Store, s3: object) -> None:
    view = store.within(STEADY)
    key = "photos/2024/street.jpg"  # larger than a chunk: read in several
    assert len(sample(key)) > CHUNK_BYTES
    blob = view.get_original(key, 10_000_000)
    assert blob.data == sample(key) and blob.etag == strong_etag(blob.data)
    assert view.original_etag(key) == strong_etag(blob.data).strip('"')
    view.put_variant("v1/a.jpg/w=1", b"abc", "image/webp", "public", {"source-etag": "x1"})
    assert view.get_variant("v1/a.jpg/w=1", 1000).data == b"abc"
    assert view.get_variant("v1/a.jpg/w=1", 2) == Blob(b"", "image/webp", strong_etag(b"abc"), {"source-etag": "x1"}, 3)
    assert view.variant_metadata("v1/a.jpg/w=1") == {"source-etag": "x1"}
    assert view.list_variants("v1/a.jpg/") == ["v1/a.jpg/w=1"]
    view.delete_variants(["v1/a.jpg/w=1", "v1/a.jpg/w=2"])
    assert view.get_variant("v1/a.jpg/w=1", 1000) is None and view.variant_metadata("v1/a.jpg/w=1") is None
    with pytest.raises(OriginalNotFound):
        view.get_original("nope.jpg", 10_000_000)
    with pytest.raises(TooLarge):
        view.get_original(key, 1000)
    assert "X-Amz-Expires=600" in view.variant_url("v1/a.jpg/w=1", 600)


def test_a_view_lists_page_by_page(store: S3Store) -> None:
    view = store.within(STEADY)
    client = store._clients.get(limits_for(STEADY.left_ms()))  # the client of the view's level
    pages = [({"Contents": [{"Key": "v1/a/w=1"}], "IsTruncated": True, "NextContinuationToken": "t1"}, {}),
             ({"Contents": [{"Key": "v1/a/w=2"}], "IsTruncated": False}, {"ContinuationToken": "t1"})]
    with Stubber(client) as stub:
        for page, token in pages:
            stub.add_response("list_objects_v2", page, {"Bucket": CACHE, "Prefix": "v1/a/", **token})
        assert view.list_variants("v1/a/") == ["v1/a/w=1", "v1/a/w=2"]
        stub.assert_no_pending_responses()


def test_views_share_a_few_clients_whatever_the_time_left(store: S3Store) -> None:
    for left_ms in range(300, 30_000, 700):
        view = store.within(Deadline.after(left_ms, reserve_ms=0))
        assert view._clients is store._clients
        view.original_etag("photos/lake.webp")
    assert 2 <= len(store._clients.made) <= len(LEVELS)


def test_an_unbounded_view_calls_as_the_store_does(store: S3Store) -> None:
    view = store.within(STEADY).within(Deadline.unbounded())
    assert (view.deadline, store.deadline, store.within(STEADY).deadline) == (None, None, STEADY)
    with Stubber(store.client) as stub:  # the store's own client, configured as it always was
        stub.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(StorageFault):
            view.original_etag("photos/lake.webp")


def test_a_given_client_is_kept_under_a_deadline_and_the_deadline_still_checked(s3: object) -> None:
    store = S3Store(ORIGINALS, CACHE, client=s3)
    view = store.within(Deadline.after(20_000))
    assert view.original_etag("photos/lake.webp") is not None and store._clients.made == {}
    with pytest.raises(OutOfTime):
        store.within(Deadline.after(0)).original_etag("photos/lake.webp")


def test_a_fault_under_a_deadline_is_still_a_storage_fault(store: S3Store) -> None:
    view = store.within(STEADY)
    client = store._clients.get(limits_for(STEADY.left_ms()))
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(StorageFault) as caught:
            view.get_original("photos/lake.webp", 10_000_000)
    assert caught.value.status == 502


def test_the_memory_store_is_its_own_view() -> None:
    memory = MemoryStore()
    assert memory.within(Deadline.after(1)) is memory
