"""S3 notification trigger on the originals bucket: created or overwritten -> pre-warm, removed -> purge."""

from __future__ import annotations

from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from .. import ladder, observability, runtime
from ..config import get_settings
from ..deadline import Deadline
from ..errors import ImageServiceError

logger = Logger()
metrics = Metrics()
tracer = observability.tracer(enabled=not get_settings().tracing_disabled)


class RecordsFailed(Exception):
    """Some records could not be handled. Raised so Lambda retries the event (records already done are
    idempotent no-ops), and after the retries sends it to the on-failure destination for replay."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, int]:
    """Every record is handled; faults make the event fail (and be retried), bad uploads are logged and skipped."""
    settings, store, cdn = get_settings(), runtime.store(), runtime.cdn()
    deadline = Deadline(context.get_remaining_time_in_millis)
    failed: list[str] = []
    handled = skipped = 0
    for record in event.records:
        key = unquote_plus(record.s3.get_object.key)  # S3 sends keys URL-encoded, spaces as '+': decode once
        try:
            if record.event_name.startswith("ObjectRemoved"):
                deleted = ladder.purge(key, store.within(deadline), settings, cdn)
                logger.info("purged", extra={"key": key, "deleted": deleted})
                metrics.add_metric(name="VariantsPurged", unit=MetricUnit.Count, value=deleted)
            elif record.event_name.startswith("ObjectCreated"):
                result = ladder.prewarm(key, store, settings, cdn, deadline)
                logger.info("pre-warmed", extra={"key": key, "rendered": result.rendered, "deleted": result.deleted})
                metrics.add_metric(name="VariantsPrewarmed", unit=MetricUnit.Count, value=result.rendered)
            handled += 1
        except ImageServiceError as error:
            if error.status >= 500:  # a fault or too little time: worth a retry
                logger.warning("record failed", extra={"key": key, "code": error.code, "reason": error.message})
                failed.append(key)
            else:  # the upload itself is bad (unsupported, undecodable, too large): a retry would fail the same way
                logger.info("upload skipped", extra={"key": key, "code": error.code, "reason": error.message})
                skipped += 1
        except Exception:  # one bad record must not stop the others; the event fails as a whole below
            logger.exception("record failed", extra={"key": key, "event_name": record.event_name})
            failed.append(key)
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(failed))
    if failed:
        raise RecordsFailed(f"{len(failed)} of {len(failed) + handled} records failed: {failed}")
    return {"handled": handled, **({"skipped": skipped} if skipped else {})}
