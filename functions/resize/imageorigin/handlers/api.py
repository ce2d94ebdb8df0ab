"""API Gateway (REST, proxy) trigger: GET/HEAD /<key>?<params> -> an image, a redirect, or a JSON error."""

from __future__ import annotations

import json
from http import HTTPStatus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import observability, picture, runtime, service, spec
from ..config import get_settings
from ..errors import BadParameter, ImageServiceError, MethodNotAllowed
from ..service import Delivery

logger = Logger()
metrics = Metrics()
tracer = observability.tracer(enabled=not get_settings().tracing_disabled)
app = APIGatewayRestResolver()

_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff"}


@app.route(".+", method=["GET", "HEAD"])
@tracer.capture_method
def get_image() -> Response:
    event = app.current_event
    settings = get_settings()
    query = event.multi_value_query_string_parameters or {}
    if "picture" in query:
        return _picture(event.path, query, event.headers.get("accept", ""))
    request = spec.parse(
        event.path,
        query,
        event.headers.get("accept", ""),
        max_side=settings.max_output_side,
        presets=settings.presets,
    )
    delivery = service.get_or_render(request, runtime.store(), settings,
                                     app.lambda_context.get_remaining_time_in_millis)
    _record(delivery)
    return _response(delivery, head=event.http_method == "HEAD", if_none_match=event.headers.get("if-none-match"))


def _picture(path: str, query: dict[str, list[str]], accept: str) -> Response:
    """GET /<key>?picture[&alt=...][&sizes=...]: the pre-warmed ladder as a <picture> element, or JSON."""
    for name, values in query.items():
        if name not in ("picture", "alt", "sizes"):
            raise BadParameter(name, "only alt and sizes go with picture")
        if len(values) != 1:
            raise BadParameter(name, "given more than once")
    manifest = service.picture_manifest(spec.parse_key(path), runtime.store(), get_settings())
    headers = {"Cache-Control": "public, max-age=300", "Vary": "Accept", **_COMMON_HEADERS}
    if "application/json" in accept:
        return Response(status_code=HTTPStatus.OK, content_type="application/json",
                        body=json.dumps(picture.as_json(manifest)), headers=headers)
    markup = picture.html(manifest, alt=query.get("alt", [""])[0], sizes=query.get("sizes", [""])[0])
    return Response(status_code=HTTPStatus.OK, content_type="text/html; charset=utf-8", body=markup,
                    headers=headers)


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
                    headers={"Cache-Control": cache_control, **_COMMON_HEADERS})


def _response(delivery: Delivery, *, head: bool, if_none_match: str | None) -> Response:
    headers = {
        "Cache-Control": delivery.cache_control,
        "ETag": delivery.etag,
        "Server-Timing": _server_timing(delivery),
        **_COMMON_HEADERS,
    }
    if delivery.vary_accept:
        headers["Vary"] = "Accept"
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
