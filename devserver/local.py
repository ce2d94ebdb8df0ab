"""Local stand-ins for AWS: environment, seeding the originals bucket, REST API events and a Lambda context."""

from __future__ import annotations

import base64
import mimetypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions" / "resize"))

ORIGINALS = "local-originals"
CACHE = "local-cache"

LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "ORIGINALS_BUCKET": ORIGINALS,
    "CACHE_BUCKET": CACHE,
    "POWERTOOLS_SERVICE_NAME": "imageorigin-local",
    "POWERTOOLS_METRICS_NAMESPACE": "ImageOriginLocal",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "PLAYGROUND": "true",  # the page at GET / is the one the Lambda serves at /_playground with this setting
}
# What `aws --endpoint-url` needs to talk to the embedded S3 (moto accepts any credentials): printed with each command.
AWS_CLI_ENV = "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"


def configure(endpoint: str | None) -> None:
    """Point boto3 at the embedded S3 (when given) and fill in every setting not already in the environment."""
    for name, value in LOCAL_ENV.items():
        os.environ.setdefault(name, value)
    if endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    os.environ.pop("AWS_PROFILE", None)


def seed(client: object, images: Path) -> list[str]:
    """Create both buckets and upload every image under `images`, keyed by its path relative to it."""
    for bucket in (ORIGINALS, CACHE):
        client.create_bucket(Bucket=bucket)
    keys = []
    for path in sorted(p for p in images.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() in (".md", ".txt"):
            continue
        key = path.relative_to(images).as_posix()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        client.put_object(Bucket=ORIGINALS, Key=key, Body=path.read_bytes(), ContentType=content_type)
        keys.append(key)
    return keys


def rest_event(method: str, target: str, headers: dict[str, str], body: bytes | None = None) -> dict:
    """The API Gateway REST proxy event for an HTTP request line: the path stays percent-encoded, as there; a body
    (POST /animations) base64-encoded, as the API's binary media types (*/*) have API Gateway send every body."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True) or None
    return {
        "resource": "/{proxy+}",
        "path": parts.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "pathParameters": {"proxy": parts.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": method, "path": parts.path,
                           "stage": "local", "requestId": os.urandom(8).hex(), "identity": {"sourceIp": "127.0.0.1"}},
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def s3_event(name: str, key: str, etag: str = "") -> dict:
    """An S3 notification for one object, its key URL-encoded as S3 sends it."""
    from urllib.parse import quote_plus

    obj = {"key": quote_plus(key, safe="/"), "sequencer": os.urandom(8).hex().upper()}
    if etag:
        obj["eTag"] = etag
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": ORIGINALS, "arn": f"arn:aws:s3:::{ORIGINALS}"},
               "object": obj},
    }]}


def response_parts(response: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body bytes of a Lambda proxy response."""
    headers = list((response.get("headers") or {}).items())
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers += [(name, value) for value in values]
    raw = response.get("body") or ""
    body = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
    return response["statusCode"], headers, body


@dataclass
class LocalContext:
    """What the handlers and powertools read from a Lambda context (used by make serve, make invoke, tests)."""

    function_name: str = "imageorigin-local"
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:imageorigin-local"
    aws_request_id: str = "local"
    remaining_ms: int = 28_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
