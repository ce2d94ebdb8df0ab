"""API Gateway (REST, proxy) trigger: GET/HEAD /<key>?<params> -> an image, a redirect, or a JSON error."""

from __future__ import annotations

import base64
import json
import re
import warnings
from http import HTTPStatus
from pathlib import Path

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import access, animations, delivery, formats, ladder, observability, picture, runtime, signing
from ..config import Settings, get_settings
from ..deadline import Deadline
from ..delivery import CacheStatus, Delivery, Kind, cache_control
from ..errors import ImageServiceError, MethodNotAllowed
from ..grammars.query import PictureRequest, encode_query
from ..grammars.thumbor import is_thumbor

# Set by the CloudFront distribution on requests it sends this API (an origin custom header): a stored variant
# too large to answer inline is then a 302 to its own canonical path, which the edge serves from the bucket.
EDGE_HEADER = "x-imageorigin-edge"
# PLAYGROUND=true: the static page at /_playground (its files packaged in imageorigin/playground/) and the list of
# originals it shows; it renders nothing itself, every image it shows is an ordinary request under the same policy.
PLAYGROUND = "/_playground"
PLAYGROUND_FILES = Path(__file__).resolve().parent.parent / "playground"
PLAYGROUND_LIST = "originals.json"
PLAYGROUND_MAX_KEYS = 1000
_PLAYGROUND_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                     ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _cors(settings: Settings) -> CORSConfig | None:
    return CORSConfig(allow_origin=settings.cors_allow_origin) if settings.cors_allow_origin else None


logger = Logger()
metrics = Metrics()
# A CORS preflight, answered by the resolver itself, records no metric; powertools would log a warning for each one
# (its documented filter for functions that may publish none).
warnings.filterwarnings("ignore", "No application metrics to publish*")
tracer = observability.tracer(enabled=not get_settings().tracing_disabled)
app = APIGatewayRestResolver(cors=_cors(get_settings()))


ANIMATIONS = "/animations"


@app.route("/[^/]+/_animations/[^/]+", method=["GET", "HEAD"])
@tracer.capture_method
def get_animation() -> Response:
    """GET /<version>/_animations/<sha256>.<ext>: a stored animation, served like any variant (through CloudFront
    this path is the bucket key, so only a miss reaches here); any other version's path is an image request."""
    event = app.current_event
    settings = get_settings()
    if not animations.is_animation_path(event.path, settings):
        return get_image()
    deadline = Deadline(app.lambda_context.get_remaining_time_in_millis)
    answer = animations.deliver(event.path, runtime.store(), settings, deadline)
    return _response(answer, head=event.http_method == "HEAD", if_none_match=event.headers.get("if-none-match"))


@app.post(ANIMATIONS)
@tracer.capture_method
def create_animation() -> Response:
    """POST /animations with a JSON body naming originals: 201 and JSON saying where the stored animation is."""
    event = app.current_event
    settings = get_settings()
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode()
    access.admit_animation(body, event.headers.get(signing.BODY_SIGNATURE.lower()), settings, runtime.signing_keys())
    request = animations.parse(body, event.headers.get("accept", ""), settings)
    deadline = Deadline(app.lambda_context.get_remaining_time_in_millis)
    created = animations.create(request, runtime.store(), settings, deadline)
    metrics.add_metric(name="AnimationRendered", unit=MetricUnit.Count, value=int(created.rendered))
    metrics.add_metric(name="AnimationFound", unit=MetricUnit.Count, value=int(not created.rendered))
    url = _public_base(settings) + created.path
    return Response(status_code=HTTPStatus.CREATED, content_type="application/json",
                    body=json.dumps(created.to_json(url)),
                    headers={"Location": url, "Cache-Control": "no-store", **_common_headers()})


@app.route(".+", method=["GET", "HEAD"])
@tracer.capture_method
def get_image() -> Response:
    event = app.current_event
    settings = get_settings()
    if settings.playground and (event.path == PLAYGROUND or event.path.startswith(PLAYGROUND + "/")):
        return _playground(event.path[len(PLAYGROUND):].lstrip("/"), settings)
    query = event.multi_value_query_string_parameters or {}
    accept = event.headers.get("accept", "")
    thumbor_url = is_thumbor(event.path) and not query
    keys = runtime.signing_keys()
    if thumbor_url:
        admission = access.admit_thumbor(event.path, settings, keys)
    else:
        admission = access.admit_query(event.path, query, accept, settings, keys)
    deadline = Deadline(app.lambda_context.get_remaining_time_in_millis)
    if isinstance(admission.request, PictureRequest):
        return _picture(admission, deadline)
    # through the edge, a too-large variant is a 302 to its canonical path; a thumbor URL's is not one the edge
    # reads, so those get a presigned URL
    via_edge = event.headers.get(EDGE_HEADER) is not None and not thumbor_url
    answer = delivery.get_or_render(admission.request, runtime.store(), settings, deadline, via_edge=via_edge,
                                    expires=admission.expires)
    _record(answer)
    return _response(answer, head=event.http_method == "HEAD", if_none_match=event.headers.get("if-none-match"))


def _picture(admission: access.Admission, deadline: Deadline) -> Response:
    """GET /<key>?picture[=json|html][&alt=...][&sizes=...]: the pre-warmed ladder as a <picture> element or JSON;
    its URLs are signed when the request was (the service's own markup must verify)."""
    request = admission.request
    assert isinstance(request, PictureRequest)
    settings = get_settings()
    manifest = ladder.picture_manifest(request.key, runtime.store().within(deadline), settings, deadline)
    metrics.add_metric(name="PictureServed", unit=MetricUnit.Count, value=1)
    link = _signed_link(admission.expires) if admission.signed else picture.relative
    base = _public_base(settings)
    link = picture.absolute(base, link) if base else link
    headers = {"Cache-Control": cache_control(Kind.PICTURE, settings, admission.expires),
               **_common_headers(*["Accept"] * request.negotiated)}
    if request.as_json:
        return Response(status_code=HTTPStatus.OK, content_type="application/json",
                        body=json.dumps(picture.as_json(manifest, link)), headers=headers)
    markup = picture.html(manifest, alt=request.alt, sizes=request.sizes, link=link, priority=request.priority)
    return Response(status_code=HTTPStatus.OK, content_type="text/html; charset=utf-8", body=markup,
                    headers=headers)


def _public_base(settings: Settings) -> str:
    """Where ?picture's links point: PUBLIC_BASE_URL, else this request's own scheme and host (Host, and
    X-Forwarded-Proto as API Gateway sets it, or CloudFront-Forwarded-Proto), with the stage when the path had one
    (https://abc.execute-api.../Prod); empty (root-relative links) when the Host is missing or malformed."""
    if settings.public_base_url:
        return settings.public_base_url
    event = app.current_event
    host = (event.headers.get("host") or "").strip()
    if not _HOST.fullmatch(host):
        return ""
    proto = (event.headers.get("x-forwarded-proto") or event.headers.get("cloudfront-forwarded-proto")
             or "https").split(",")[0].strip().lower()
    proto = proto if proto in ("http", "https") else "https"
    full = event.request_context.path or ""
    stage = full[: -len(event.path)] if full.endswith(event.path) and full != event.path else ""
    return f"{proto}://{host}{stage}"


def _playground(name: str, settings: Settings) -> Response:
    """The playground's static files, and the originals' keys as JSON for its gallery. Nothing else: its
    previews are ordinary requests, admitted (or refused) like any other."""
    headers = {"Cache-Control": "no-cache", **_common_headers()}
    if name == "":
        name = "index.html"
    if name == PLAYGROUND_LIST:
        body = json.dumps(_originals(settings))
        return Response(status_code=HTTPStatus.OK, content_type="application/json", body=body, headers=headers)
    if name == "index.html" and app.current_event.path.endswith("/"):
        # the page reads everything relative to itself at /_playground: send /_playground/ there
        return Response(status_code=HTTPStatus.FOUND, content_type="text/plain", body="",
                        headers={**headers, "Location": "../_playground"})
    path = PLAYGROUND_FILES / name
    kind = _PLAYGROUND_TYPES.get(path.suffix)
    if "/" in name or name.startswith(".") or kind is None or not path.is_file():
        return _error(HTTPStatus.NOT_FOUND, {"code": "not_found", "message": "no such playground file"})
    return Response(status_code=HTTPStatus.OK, content_type=kind, body=path.read_text(), headers=headers)


def _originals(settings: Settings) -> dict[str, object]:
    """The originals' keys (up to PLAYGROUND_MAX_KEYS), and what the page needs to build URLs that work here."""
    client = runtime.store().client  # type: ignore[attr-defined]  # S3Store's
    keys: list[dict[str, object]] = []
    truncated = False
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.originals_bucket):
        for item in page.get("Contents", []):
            if len(keys) == PLAYGROUND_MAX_KEYS:
                truncated = True
                break
            keys.append({"key": item["Key"], "bytes": item["Size"], "etag": item["ETag"].strip('"'),
                         "modified": item["LastModified"].isoformat()})
        if truncated:
            break
    return {"originals": keys, "truncated": truncated,
            "signatures_required": access.signatures_required(settings, runtime.signing_keys()),
            "ladder_widths": list(settings.ladder_widths), "max_output_side": settings.max_output_side,
            "formats": list(formats.MENU), "animation_formats": list(formats.ANIMATED_MENU)}


def _signed_link(expires: int | None) -> picture.Link:
    """Links signed with the first active key, expiring with the request that asked for them."""
    secret = runtime.signing_keys()[0]

    def link(key: str, query: str) -> str:
        pairs = [tuple(pair.split("=", 1)) for pair in query.split("&") if pair]
        pairs += [(signing.EXPIRES, str(expires))] if expires is not None else []
        params = {name: [value] for name, value in pairs}
        signature = signing.sign_query(secret, key, params)
        return picture.relative(key, encode_query([*pairs, (signing.SIGNATURE, signature)]))

    return link


def _common_headers(*vary: str) -> dict[str, str]:
    """On every answer: no MIME sniffing, and Vary naming `vary` plus Origin when CORS admits one origin only
    (caches must then keep answers per Origin)."""
    origin = get_settings().cors_allow_origin
    names = [*vary, *(["Origin"] if origin and origin != "*" else [])]
    return {"X-Content-Type-Options": "nosniff", **({"Vary": ", ".join(names)} if names else {})}


@app.route(".+", method=["POST", "PUT", "PATCH", "DELETE"])
def refuse_write() -> Response:
    raise MethodNotAllowed("only GET and HEAD are served")


@app.exception_handler(ImageServiceError)
def on_service_error(error: ImageServiceError) -> Response:
    metrics.add_metric(name=f"Error{error.status // 100}xx", unit=MetricUnit.Count, value=1)
    if error.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.warning("request failed", extra={"code": error.code, "reason": error.message}, exc_info=error)
    else:
        logger.info("request refused", extra={"code": error.code, "reason": error.message})
    return _error(error.status, error.to_body())


@app.exception_handler(Exception)
def on_unexpected(error: Exception) -> Response:
    logger.exception("unhandled error")
    metrics.add_metric(name="Error5xx", unit=MetricUnit.Count, value=1)
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, {"code": "internal_error", "message": "internal error"})


def _error(status: HTTPStatus, body: dict[str, object]) -> Response:
    kind = Kind.REFUSAL if status < HTTPStatus.INTERNAL_SERVER_ERROR else Kind.FAULT
    return Response(status_code=int(status), content_type="application/json", body=json.dumps(body),
                    headers={"Cache-Control": cache_control(kind, get_settings()), **_common_headers()})


def _response(answer: Delivery, *, head: bool, if_none_match: str | None) -> Response:
    headers = {
        "Cache-Control": answer.cache_control,
        "ETag": answer.etag,
        "Server-Timing": _server_timing(answer),
        **_common_headers(*["Accept"] * answer.vary_accept),
    }
    if answer.location is not None:
        headers["Location"] = answer.location
        return Response(status_code=HTTPStatus.FOUND, content_type=answer.content_type, body="", headers=headers)
    if if_none_match and answer.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=HTTPStatus.NOT_MODIFIED, content_type=answer.content_type, body=None,
                        headers=headers)
    if head:  # headers only, with the length the GET would have
        headers["Content-Length"] = str(answer.size)
    return Response(status_code=HTTPStatus.OK, content_type=answer.content_type,
                    body=b"" if head else answer.body, headers=headers)


def _server_timing(answer: Delivery) -> str:
    entries = [f"cache;desc={answer.cache}"]
    entries += [f"{stage};dur={ms:.1f}" for stage, ms in answer.timings.stages.items()]
    return ", ".join(entries)


def _record(answer: Delivery) -> None:
    metrics.add_metric(name="CacheHit", unit=MetricUnit.Count, value=int(answer.cache is CacheStatus.HIT))
    metrics.add_metric(name="CacheMiss", unit=MetricUnit.Count,
                       value=int(answer.cache is CacheStatus.MISS))
    if "render" in answer.timings.stages:
        metrics.add_metric(name="RenderTime", unit=MetricUnit.Milliseconds, value=answer.timings.stages["render"])
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=answer.bytes_in)
    metrics.add_metric(name="BytesOut", unit=MetricUnit.Bytes, value=answer.size)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
