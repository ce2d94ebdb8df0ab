"""One deadline for a whole invocation: how much time is left to work, and OutOfTime (503) when it is too little."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import OutOfTime

RESERVE_MS = 1000.0  # kept back to answer: serialize, base64, return through API Gateway


@dataclass(frozen=True)
class Deadline:
    """The time left in this invocation, less a reserve kept back to answer.

    `remaining_ms` is read on every question (Lambda's `context.get_remaining_time_in_millis` fits as it is), so
    one Deadline serves the whole invocation: every step asks it how long it may take."""

    remaining_ms: Callable[[], float]  # milliseconds until the invocation is killed
    reserve_ms: float = RESERVE_MS  # kept back to answer (serialize, base64, return)

    @classmethod
    def unbounded(cls) -> Deadline:
        """A deadline that never comes (tests, tools, the benchmark): left_ms() is infinite, check() never raises."""
        return cls(_forever, 0.0)

    @classmethod
    def after(cls, ms: float, reserve_ms: float = RESERVE_MS) -> Deadline:
        """As a Lambda context with `ms` left from now would be (monotonic clock), `reserve_ms` kept back."""
        end = time.monotonic() + ms / 1000.0
        return cls(lambda: (end - time.monotonic()) * 1000.0, reserve_ms)

    def left_ms(self) -> float:
        """Milliseconds left to work: the time remaining less the reserve (negative once into the reserve)."""
        return float(self.remaining_ms()) - self.reserve_ms

    def check(self, step: str, need_ms: float = 0.0) -> None:
        """OutOfTime (503) unless `need_ms` are left to work: call it before a step that cannot be cut short."""
        if self.left_ms() < need_ms:
            raise OutOfTime(f"too little time left to {step}; please retry")


def _forever() -> float:
    return math.inf
