"""API Gateway (REST, proxy) trigger: GET/HEAD /<key>?<params> -> an image, a redirect, or a JSON error."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import replace
from http import HTTPStatus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import access, observability, picture, runtime, service, spec
from ..config import Settings, get_settings
from ..errors import ImageServiceError, MethodNotAllowed
from ..service import Delivery

# Set by the CloudFront distribution on requests it sends this API (an origin custom header): a stored variant
# too large to answer inline is then a 302 to its own canonical path, which the edge serves from the bucket.
EDGE_HEADER = "x-imageorigin-edge"


def _cors(settings: Settings) -> CORSConfig | None:
    return CORSConfig(allow_origin=settings.cors_allow_origin) if settings.cors_allow_origin else None


logger = Logger()
metrics = Metrics()
# A CORS preflight, answered by the resolver itself, records no metric; powertools would log a warning for each one
# (its documented filter for functions that may publish none).
warnings.filterwarnings("ignore", "No application metrics to publish*")
tracer = observability.tracer(enabled=not get_settings().tracing_disabled)
app = APIGatewayRestResolver(cors=_cors(get_settings()))


@app.route(".+", method=["GET", "HEAD"])
@tracer.capture_method
def get_image() -> Response:
    event = app.current_event
    settings = get_settings()
    query = event.multi_value_query_string_parameters or {}
    accept = event.headers.get("accept", "")
    thumbor_url = spec.is_thumbor(event.path) and not query
    if "picture" in query and not thumbor_url:
        return _picture(spec.parse_picture(event.path, query, accept))
    keys = runtime.signing_keys()
    if thumbor_url:
        request = access.admit_thumbor(event.path, settings, keys)
    else:
        request = access.admit_query(event.path, query, accept, settings, keys)
    # through the edge, a too-large variant is a 302 to its canonical path; a thumbor URL's is not one the edge
    # reads, so those get a presigned URL
    via_edge = event.headers.get(EDGE_HEADER) is not None and not thumbor_url
    delivery = service.get_or_render(request, runtime.store(), settings,
                                     app.lambda_context.get_remaining_time_in_millis, via_edge=via_edge)
    delivery = _within_expiry(delivery, query)
    _record(delivery)
    return _response(delivery, head=event.http_method == "HEAD", if_none_match=event.headers.get("if-none-match"))


def _within_expiry(delivery: Delivery, query: dict[str, list[str]]) -> Delivery:
    """A signed URL with exp= is not kept by caches past its expiry (admit_query checked it is a Unix time)."""
    if "exp" not in query or not delivery.cache_control.startswith("public"):
        return delivery
    left = max(0, int(query["exp"][0]) - int(time.time()))
    return replace(delivery, cache_control=f"public, max-age={left}")


def _picture(request: spec.PictureRequest) -> Response:
    """GET /<key>?picture[=json|html][&alt=...][&sizes=...]: the pre-warmed ladder as a <picture> element or JSON."""
    manifest = service.picture_manifest(request.key, runtime.store(), get_settings())
    metrics.add_metric(name="PictureServed", unit=MetricUnit.Count, value=1)
    headers = {"Cache-Control": "public, max-age=300", **_common_headers(*["Accept"] * request.negotiated)}
    if request.as_json:
        return Response(status_code=HTTPStatus.OK, content_type="application/json",
                        body=json.dumps(picture.as_json(manifest)), headers=headers)
    markup = picture.html(manifest, alt=request.alt, sizes=request.sizes)
    return Response(status_code=HTTPStatus.OK, content_type="text/html; charset=utf-8", body=markup,
                    headers=headers)


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
    cache_control = get_settings().error_cache_control if status < HTTPStatus.INTERNAL_SERVER_ERROR else "no-store"
    return Response(status_code=int(status), content_type="application/json", body=json.dumps(body),
                    headers={"Cache-Control": cache_control, **_common_headers()})


def _response(delivery: Delivery, *, head: bool, if_none_match: str | None) -> Response:
    headers = {
        "Cache-Control": delivery.cache_control,
        "ETag": delivery.etag,
        "Server-Timing": _server_timing(delivery),
        **_common_headers(*["Accept"] * delivery.vary_accept),
    }
    if delivery.location is not None:
        headers["Location"] = delivery.location
        return Response(status_code=HTTPStatus.FOUND, content_type=delivery.content_type, body="", headers=headers)
    if if_none_match and delivery.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=HTTPStatus.NOT_MODIFIED, content_type=delivery.content_type, body=None,
                        headers=headers)
    return Response(status_code=HTTPStatus.OK, content_type=delivery.content_type,
                    body=b"" if head else delivery.body, headers=headers)


def _server_timing(delivery: Delivery) -> str:
    entries = [f"cache;desc={delivery.cache}"]
    entries += [f"{stage};dur={ms:.1f}" for stage, ms in delivery.timings.stages.items()]
    return ", ".join(entries)


def _record(delivery: Delivery) -> None:
    metrics.add_metric(name="CacheHit", unit=MetricUnit.Count, value=int(delivery.cache is service.CacheStatus.HIT))
    metrics.add_metric(name="CacheMiss", unit=MetricUnit.Count,
                       value=int(delivery.cache is service.CacheStatus.MISS))
    if "render" in delivery.timings.stages:
        metrics.add_metric(name="RenderTime", unit=MetricUnit.Milliseconds, value=delivery.timings.stages["render"])
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=delivery.bytes_in)
    metrics.add_metric(name="BytesOut", unit=MetricUnit.Bytes, value=delivery.size)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
