"""The presence recorder's buffer: latest change per device, connections kept for activation,
nothing lost when a flush fails."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Device
from lineside.services.context import ServiceContext
from lineside.services.presence import Change, PresenceRecorder, may_activate_on_connection

START = datetime(2026, 1, 1, tzinfo=UTC)


def ticking_clock() -> Callable[[], datetime]:
    """Each call one second later than the last."""
    ticks = iter(range(1_000_000))
    return lambda: START + timedelta(seconds=next(ticks))


class DatabaseDown(Exception):
    pass


class _Down:
    def __call__(self, **_kwargs: Any) -> Any:
        raise DatabaseDown("connection refused")


def unreachable_database() -> ServiceContext:
    return cast(ServiceContext, type("Ctx", (), {"unit_of_work": _Down()})())


def test_the_latest_change_of_a_device_wins() -> None:
    recorder = PresenceRecorder(clock=ticking_clock())
    recorder.connected("a")
    recorder.disconnected("a")
    recorder.connected("b")
    recorder.seen("b")

    window = recorder.take()

    assert window.changes == {
        "a": Change(False, START + timedelta(seconds=1)),
        "b": Change(True, START + timedelta(seconds=3)),
    }


def test_a_connection_that_ended_before_the_flush_still_counts_for_activation() -> None:
    recorder = PresenceRecorder(clock=ticking_clock())
    recorder.connected("a")
    recorder.disconnected("a")
    recorder.connected("a")

    window = recorder.take()

    assert window.connected == {"a": START}  # the first connection of the window
    assert window.changes["a"].online is True


def test_being_seen_or_disconnecting_is_not_a_connection() -> None:
    recorder = PresenceRecorder(clock=ticking_clock())
    recorder.seen("a")
    recorder.disconnected("b")

    window = recorder.take()

    assert window.connected == {}
    assert set(window.changes) == {"a", "b"}


def test_taking_the_window_starts_an_empty_one() -> None:
    recorder = PresenceRecorder(clock=ticking_clock())
    recorder.connected("a")

    assert recorder.pending() == 1
    assert recorder.take()
    assert recorder.pending() == 0
    assert not recorder.take()


def test_a_window_put_back_never_overrides_what_was_recorded_since() -> None:
    recorder = PresenceRecorder(clock=ticking_clock())
    recorder.connected("a")
    recorder.connected("b")
    failed = recorder.take()
    recorder.disconnected("a")  # newer than the failed window's change of "a"

    recorder.put_back(failed)
    window = recorder.take()

    assert window.changes["a"].online is False
    assert window.changes["b"].online is True
    assert set(window.connected) == {"a", "b"}
    assert window.connected["a"] == START  # the earliest connection is kept


def test_a_flush_that_fails_keeps_every_change_for_the_next_one() -> None:
    recorder = PresenceRecorder(clock=ticking_clock())
    ids = [new_id() for _ in range(3)]
    for device_id in ids:
        recorder.connected(device_id)
    recorder.disconnected(ids[0])

    with pytest.raises(DatabaseDown):
        recorder.flush(unreachable_database())

    window = recorder.take()
    assert set(window.connected) == set(ids)
    assert {device_id: change.online for device_id, change in window.changes.items()} == {
        ids[0]: False,
        ids[1]: True,
        ids[2]: True,
    }


def test_an_empty_recorder_flushes_without_touching_the_database() -> None:
    flushed = PresenceRecorder().flush(unreachable_database())

    assert (flushed.activated, flushed.updated) == (0, 0)


def test_threads_recording_at_once_lose_no_device() -> None:
    recorder = PresenceRecorder()

    def record(n: int) -> None:
        for i in range(500):
            recorder.connected(f"{n}-{i}")

    threads = [threading.Thread(target=record, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    window = recorder.take()

    assert len(window.changes) == len(window.connected) == 8 * 500


def _device(state: DeviceState) -> Device:
    return Device(
        id=new_id(),
        organization_id=new_id(),
        product_id=new_id(),
        serial_number="SN-1",
        state=state,
        created_at=START,
    )


@pytest.mark.parametrize(
    ("state", "requires_blessing", "activates"),
    [
        (DeviceState.BLESSED, False, True),
        (DeviceState.BLESSED, True, True),
        (DeviceState.DEFINED, False, True),
        (DeviceState.DEFINED, True, False),
        (DeviceState.UNDER_TEST, False, False),
        (DeviceState.FAILED, False, False),
        (DeviceState.ACTIVATED, False, False),
        (DeviceState.REVOKED, False, False),
    ],
)
def test_which_devices_activate_at_their_first_connection(
    state: DeviceState, requires_blessing: bool, activates: bool
) -> None:
    assert may_activate_on_connection(_device(state), requires_blessing) is activates
