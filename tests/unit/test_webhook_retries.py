"""The retry schedule: backoff with jitter, given up three days after a delivery was made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineside.domain.webhooks import DEFAULT_RETRY_SCHEDULE, RetrySchedule

MADE = datetime(2025, 1, 1, tzinfo=UTC)
SECONDS = [5, 30, 120, 600, 1800, 3600, 7200, 18000, 18000]


def middle() -> float:
    return 0.5  # no jitter: 1 + 0.2 * (2 * 0.5 - 1) == 1


@pytest.mark.parametrize(("attempts", "seconds"), list(enumerate(SECONDS, start=1)))
def test_the_delay_grows_then_settles_at_every_five_hours(attempts: int, seconds: int) -> None:
    assert DEFAULT_RETRY_SCHEDULE.delay_after(attempts) == timedelta(seconds=seconds)
    assert DEFAULT_RETRY_SCHEDULE.next_attempt_at(MADE, attempts, MADE, middle) == MADE + timedelta(
        seconds=seconds
    )


@given(attempts=st.integers(min_value=1, max_value=30), draw=st.floats(min_value=0, max_value=0.999999))
def test_jitter_moves_each_delay_by_at_most_a_fifth(attempts: int, draw: float) -> None:
    delay = DEFAULT_RETRY_SCHEDULE.delay_after(attempts)
    due = DEFAULT_RETRY_SCHEDULE.next_attempt_at(MADE, attempts, MADE, lambda: draw)
    assert due is not None
    assert delay * 0.8 <= due - MADE <= delay * 1.2


def test_jitter_spreads_deliveries_that_failed_together() -> None:
    draws = iter([0.0, 0.25, 0.75, 0.999])
    dues = {DEFAULT_RETRY_SCHEDULE.next_attempt_at(MADE, 3, MADE, lambda: next(draws)) for _ in range(4)}
    assert len(dues) == 4


def test_a_delivery_is_retried_until_three_days_after_it_was_made_then_given_up() -> None:
    now, attempts = MADE, 0
    while (due := DEFAULT_RETRY_SCHEDULE.next_attempt_at(MADE, attempts + 1, now, middle)) is not None:
        now, attempts = due, attempts + 1
    assert now <= MADE + timedelta(days=3)
    assert now > MADE + timedelta(days=3) - timedelta(hours=5)
    assert 15 <= attempts <= 25
    assert DEFAULT_RETRY_SCHEDULE.next_attempt_at(MADE, 1, MADE + timedelta(days=3), middle) is None


def test_a_scaled_schedule_keeps_its_shape() -> None:
    tiny = DEFAULT_RETRY_SCHEDULE.scaled(0.001)
    assert tiny.delay_after(1) == timedelta(milliseconds=5)
    assert tiny.delay_after(50) == timedelta(seconds=18)
    assert tiny.give_up_after == timedelta(days=3) * 0.001
    assert tiny.jitter == DEFAULT_RETRY_SCHEDULE.jitter


def test_an_explicit_schedule_is_followed() -> None:
    schedule = RetrySchedule(delays=(timedelta(seconds=1),), then_every=timedelta(seconds=2), jitter=0)
    assert [schedule.delay_after(n) for n in (1, 2, 3)] == [timedelta(seconds=1), *[timedelta(seconds=2)] * 2]
