"""The handlers' tracer: powertools' Tracer when tracing is on; otherwise a no-op, so X-Ray's SDK is never loaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class NoTracer:
    """Stands in for powertools' Tracer with tracing off: its decorators return the function unchanged."""

    def capture_lambda_handler(self, function: Callable[..., Any] | None = None, **_: Any) -> Any:
        return function if function is not None else (lambda f: f)

    def capture_method(self, function: Callable[..., Any] | None = None, **_: Any) -> Any:
        return function if function is not None else (lambda f: f)


def tracer(enabled: bool) -> Any:
    """powertools' Tracer (which imports the X-Ray SDK) only when tracing is enabled."""
    if not enabled:
        return NoTracer()
    from aws_lambda_powertools import Tracer

    return Tracer()
