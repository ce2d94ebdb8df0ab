"""Shared fixtures: fake AWS on moto, the sample originals loaded, a Lambda context, and response decoding."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from devserver.local import LocalContext
from moto import mock_aws
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EVENTS = ROOT / "events"
CORPUS = ROOT.parent / "shared" / "corpus"

ORIGINALS = "test-originals"
CACHE = "test-cache"

# As on Lambda, the environment exists before the handler module is imported (powertools reads it then).
TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "ORIGINALS_BUCKET": ORIGINALS, "CACHE_BUCKET": CACHE,
    "POWERTOOLS_SERVICE_NAME": "imageorigin-test", "POWERTOOLS_METRICS_NAMESPACE": "ImageOriginTest",
    "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true",
}
os.environ.update(TEST_ENV)
# moto is imported before any boto3 session exists (above, at collection): importing it adds its request hook to
# botocore's built-in handlers, which every session copies when it is made. The default session boto3 keeps is then
# interceptable whichever test makes it first; the s3 fixture below relies on that to reuse it.


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `early` (seconds each, much of it in other processes: a browser, a linter, a benchmark) run
    first. xdist's worksteal gives each worker a contiguous part of this order and moves tests from the end of a
    part only: started first, the long ones never leave a worker running alone at the end while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("early") is None)  # stable: the rest keep their order


def sample_keys() -> list[str]:
    return sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.is_file() and p.suffix != ".md")


def sample(key: str) -> bytes:
    return (SAMPLES / key).read_bytes()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="session", autouse=True)
def aws() -> Iterator[None]:
    """moto's mock of AWS for the whole test process: no test can reach real AWS, whichever fixtures it asks for.
    Started once (starting registers a few hundred URL patterns with `responses`: ~5 ms, which every test paid when
    each started its own); each test still gets an empty AWS (`environment` below)."""
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        yield


@pytest.fixture(autouse=True)
def environment(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs with fake credentials, test bucket names, fresh process-wide singletons and an empty AWS."""
    from moto.core.model_instances import reset_model_data
    from moto.core.models import BackendDict

    from imageorigin import runtime

    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    reset = runtime.reset  # tests may monkeypatch runtime.store; reset through the real module function
    reset()
    BackendDict.reset()  # every moto backend emptied (S3, SSM, Secrets Manager...), as mock_aws does as it starts
    yield
    reset()
    BackendDict.reset()  # and as it stops: the backends, then the register of model instances they keep
    reset_model_data()


@pytest.fixture(scope="session")
def sample_files() -> dict[str, bytes]:
    """The samples, read once per test process."""
    return {key: sample(key) for key in sample_keys()}


@functools.cache
def _test_client() -> object:
    """The tests' own S3 client, one a process (making one costs ~12 ms): moto's hook is in every client, and no test
    registers a handler or a stubber on this one (the service under test makes its own clients, fresh each test)."""
    import boto3

    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def s3(sample_files: dict[str, bytes]) -> object:
    """moto's S3 with both buckets, the originals bucket filled with the samples.

    Every test gets fresh AWS: its backends are emptied as it starts and ends (`environment`). Three costs of the
    set-up are not paid per test: moto's mock is started once a process (`aws`); boto3's default session is kept
    rather than replaced (a new one parses botocore's endpoint and service JSON again, ~0.1 s for each client made
    from it, the handler's included; the tests' credentials and region are fixed, so one session loses no
    isolation); and the buckets and samples go straight into moto's S3 backend rather than through CreateBucket and
    PutObject calls (the same buckets and objects: body, ETag, Content-Type).
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]  # S3 is global: one backend per partition
    for bucket in (ORIGINALS, CACHE):
        backend.create_bucket(bucket, "us-east-1")
    for key, body in sample_files.items():
        put_original(key, body)
    return _test_client()


def put_original(key: str, body: bytes) -> None:
    """An original straight into moto's S3 backend (inside the s3 fixture): the object a PutObject makes, without
    a request's round trip through botocore and moto's HTTP layer."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].put_object(ORIGINALS, key, body)


FakeContext = LocalContext  # the Lambda context stand-in make serve uses too


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@dataclass(frozen=True)
class Answer:
    """A Lambda proxy response, decoded."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def image(self) -> Image.Image:
        image = Image.open(io.BytesIO(self.body))
        image.load()
        return image

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def invoke(event: dict, context: FakeContext | None = None) -> Answer:
    """Run the API handler on an event and decode what it answered."""
    from imageorigin.handlers import api

    response = api.lambda_handler(event, context or FakeContext())
    headers = dict(response.get("headers") or {})
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(values)
    raw = response.get("body") or ""
    body = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
    return Answer(response["statusCode"], headers, body)


def api_event(path: str, query: dict[str, str | list[str]] | None = None, *, accept: str = "image/*",
              method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None) -> dict:
    """A REST API proxy event for `path` (percent-encoded, as API Gateway passes it) built on a real one; a `body`
    arrives base64-encoded, as the API's binary media types (*/*) make API Gateway send every body."""
    event = load_event("api_resize.json")
    multi = {k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()} or None
    event.update(
        path=path,
        httpMethod=method,
        queryStringParameters={k: v[-1] for k, v in multi.items()} if multi else None,
        multiValueQueryStringParameters=multi,
        pathParameters={"proxy": path.lstrip("/")},
    )
    event["headers"] = {**event["headers"], "Accept": accept, **(headers or {})}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    if body is not None:
        event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    return event


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def html_tags(markup: str) -> list[tuple[str, dict[str, str]]]:
    """Every start tag of `markup`, in order, with its attributes (a valueless attribute as "")."""
    parser = _Tags()
    parser.feed(markup)
    return parser.tags
