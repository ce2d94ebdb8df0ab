"""Deadline: the time left less the reserve, OutOfTime (503) when a step needs more, and one that never comes."""

from __future__ import annotations

import math
import time

import pytest

from imageorigin.deadline import Deadline
from imageorigin.errors import OutOfTime


def test_left_is_the_time_remaining_less_the_reserve() -> None:
    deadline = Deadline(lambda: 5000, reserve_ms=1200)
    assert deadline.left_ms() == 3800
    assert Deadline(lambda: 500, reserve_ms=1000).left_ms() == -500  # already into the reserve


def test_the_reserve_defaults_to_a_second() -> None:
    assert Deadline(lambda: 28_000).left_ms() == 27_000


def test_the_remaining_time_is_asked_every_time() -> None:
    remaining = iter([10_000, 4_000])
    deadline = Deadline(lambda: next(remaining), reserve_ms=0)
    assert (deadline.left_ms(), deadline.left_ms()) == (10_000, 4_000)


def test_check_is_out_of_time_503_naming_the_step() -> None:
    deadline = Deadline(lambda: 1500, reserve_ms=1000)
    deadline.check("render the image", 500)  # exactly enough
    with pytest.raises(OutOfTime) as caught:
        deadline.check("render the image", 501)
    assert caught.value.status == 503
    assert caught.value.code == "out_of_time"
    assert str(caught.value) == "too little time left to render the image; please retry"


def test_check_without_a_need_only_fails_once_into_the_reserve() -> None:
    Deadline(lambda: 1000, reserve_ms=1000).check("answer")
    with pytest.raises(OutOfTime):
        Deadline(lambda: 999, reserve_ms=1000).check("answer")


def test_after_counts_down_on_the_monotonic_clock() -> None:
    deadline = Deadline.after(2000, reserve_ms=500)
    first = deadline.left_ms()
    assert 1400 < first <= 1500
    time.sleep(0.05)
    assert deadline.left_ms() < first
    assert Deadline.after(28_000).reserve_ms == Deadline(lambda: 0).reserve_ms  # as a Lambda context would be


def test_after_a_past_time_is_out_of_time() -> None:
    with pytest.raises(OutOfTime):
        Deadline.after(0, reserve_ms=0).check("store the image", 1)


def test_unbounded_never_runs_out() -> None:
    deadline = Deadline.unbounded()
    assert deadline.left_ms() == math.inf
    deadline.check("render the image", 10**12)


def test_a_deadline_is_frozen() -> None:
    deadline = Deadline.unbounded()
    with pytest.raises(AttributeError):
        deadline.reserve_ms = 5  # type: ignore[misc]
