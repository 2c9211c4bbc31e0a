"""The lifecycle table, and the one function that moves a device along it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from lineside.domain.errors import Conflict, IllegalTransition
from lineside.domain.lifecycle import (
    STATE_TIMESTAMP_FIELD,
    TRANSITIONS,
    DeviceState,
    LifecycleSubject,
    Transition,
    allowed_transitions,
    apply_transition,
    event_type_for,
    is_allowed,
    next_state,
    reachable_from,
)

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
ALL_PAIRS = list(itertools.product(Transition, DeviceState))
ALLOWED_PAIRS = [pair for pair in ALL_PAIRS if pair in TRANSITIONS]
ILLEGAL_PAIRS = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]


@dataclass
class FakeDevice:
    state: DeviceState
    id: str = "device-1"
    organization_id: str = "org-1"
    timeline: dict[str, datetime | None] = field(default_factory=dict)


def device_in(state: DeviceState) -> FakeDevice:
    return FakeDevice(state=state, timeline={"defined_at": T0})


def _pair_id(pair: tuple[Transition, DeviceState]) -> str:
    return f"{pair[0].name.lower()}-from-{pair[1].value}"


def test_the_fake_device_satisfies_the_lifecycle_subject_protocol() -> None:
    subject: LifecycleSubject = device_in(DeviceState.DEFINED)
    assert subject.state is DeviceState.DEFINED


def test_the_table_names_exactly_the_documented_steps() -> None:
    s, t = DeviceState, Transition
    expected = {
        (t.ENROLL, s.DEFINED): s.UNDER_TEST,
        (t.RETEST, s.FAILED): s.UNDER_TEST,
        (t.BLESS, s.UNDER_TEST): s.BLESSED,
        (t.FAIL, s.UNDER_TEST): s.FAILED,
        (t.ACTIVATE, s.DEFINED): s.ACTIVATED,
        (t.ACTIVATE, s.BLESSED): s.ACTIVATED,
        (t.REVOKE, s.DEFINED): s.REVOKED,
        (t.REVOKE, s.UNDER_TEST): s.REVOKED,
        (t.REVOKE, s.BLESSED): s.REVOKED,
        (t.REVOKE, s.FAILED): s.REVOKED,
        (t.REVOKE, s.ACTIVATED): s.REVOKED,
        (t.APPROVE, s.PENDING_APPROVAL): s.DEFINED,
        (t.REVOKE, s.PENDING_APPROVAL): s.REVOKED,
    }
    assert expected == TRANSITIONS


@pytest.mark.parametrize("pair", ALLOWED_PAIRS, ids=_pair_id)
def test_an_allowed_transition_leads_where_the_table_says(pair: tuple[Transition, DeviceState]) -> None:
    transition, state = pair
    device = device_in(state)

    apply_transition(device, transition, at=T0 + timedelta(minutes=1), actor="test")

    assert device.state is TRANSITIONS[pair]
    assert next_state(transition, state) is TRANSITIONS[pair]


@pytest.mark.parametrize("pair", ILLEGAL_PAIRS, ids=_pair_id)
def test_an_illegal_transition_raises_naming_action_and_state_and_changes_nothing(
    pair: tuple[Transition, DeviceState],
) -> None:
    transition, state = pair
    device = device_in(state)
    timeline_before = dict(device.timeline)

    with pytest.raises(IllegalTransition) as raised:
        apply_transition(device, transition, at=T0 + timedelta(minutes=1), actor="test")

    assert raised.value.action == transition.value
    assert raised.value.state == state.value
    assert f"'{state.value}'" in raised.value.detail
    assert transition.value in raised.value.detail
    assert device.state is state
    assert device.timeline == timeline_before


def test_an_illegal_transition_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        next_state(Transition.BLESS, DeviceState.DEFINED)


@pytest.mark.parametrize("transition", list(Transition), ids=lambda t: t.name.lower())
def test_revoked_is_terminal(transition: Transition) -> None:
    with pytest.raises(IllegalTransition):
        next_state(transition, DeviceState.REVOKED)
    assert allowed_transitions(DeviceState.REVOKED) == []


@pytest.mark.parametrize("state", [DeviceState.BLESSED, DeviceState.ACTIVATED], ids=str)
def test_blessed_and_activated_devices_never_go_back_to_the_line(state: DeviceState) -> None:
    reachable = {state}
    frontier = [state]
    while frontier:
        current = frontier.pop()
        for transition in allowed_transitions(current):
            target = TRANSITIONS[(transition, current)]
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert DeviceState.DEFINED not in reachable
    assert DeviceState.UNDER_TEST not in reachable
    assert DeviceState.FAILED not in reachable


@pytest.mark.parametrize("state", list(DeviceState), ids=str)
def test_allowed_transitions_are_exactly_the_table_rows_leaving_a_state(state: DeviceState) -> None:
    expected = {transition for (transition, source) in TRANSITIONS if source is state}
    assert set(allowed_transitions(state)) == expected


@pytest.mark.parametrize("pair", ALLOWED_PAIRS, ids=_pair_id)
def test_apply_transition_stamps_the_new_state_and_returns_a_past_tense_event(
    pair: tuple[Transition, DeviceState],
) -> None:
    transition, state = pair
    device = device_in(state)
    at = T0 + timedelta(hours=2)

    event = apply_transition(device, transition, at=at, actor="api_key:k1", data={"station": "7"})

    target = TRANSITIONS[pair]
    assert device.timeline[STATE_TIMESTAMP_FIELD[target]] == at
    assert STATE_TIMESTAMP_FIELD[target] == f"{target.value}_at"
    if target is not DeviceState.DEFINED:  # approval makes a pending device defined now
        assert device.timeline["defined_at"] == T0
    assert event.type == f"device.{transition.value}" == event_type_for(transition)
    assert event.data == {"from": state.value, "to": target.value, "station": "7"}
    assert event.subject_type == "device"
    assert event.subject_id == device.id
    assert event.organization_id == device.organization_id
    assert event.actor == "api_key:k1"
    assert event.occurred_at == at


def test_event_names_are_past_participles() -> None:
    assert {event_type_for(t) for t in Transition} == {
        "device.enrolled",
        "device.retested",
        "device.blessed",
        "device.failed",
        "device.activated",
        "device.revoked",
        "device.approved",
    }


def test_the_event_data_lists_from_and_to_before_the_callers_own_data() -> None:
    device = device_in(DeviceState.DEFINED)
    event = apply_transition(device, Transition.ENROLL, at=T0, actor="test", data={"fixture": "A"})
    assert list(event.data) == ["from", "to", "fixture"]


def test_a_retest_after_failure_restamps_under_test_at() -> None:
    device = device_in(DeviceState.DEFINED)
    first, failed, second = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)

    apply_transition(device, Transition.ENROLL, at=first, actor="test")
    apply_transition(device, Transition.FAIL, at=failed, actor="test")
    event = apply_transition(device, Transition.RETEST, at=second, actor="test")

    assert device.state is DeviceState.UNDER_TEST
    assert device.timeline["under_test_at"] == second
    assert device.timeline["failed_at"] == failed
    assert event.type == "device.retested"
    assert event.data == {"from": "failed", "to": "under_test"}


def test_a_full_factory_run_leaves_a_stamp_for_every_state_it_passed() -> None:
    device = device_in(DeviceState.DEFINED)
    steps = [Transition.ENROLL, Transition.BLESS, Transition.ACTIVATE, Transition.REVOKE]
    for minute, transition in enumerate(steps, start=1):
        apply_transition(device, transition, at=T0 + timedelta(minutes=minute), actor="test")

    assert device.state is DeviceState.REVOKED
    assert device.timeline == {
        "defined_at": T0,
        "under_test_at": T0 + timedelta(minutes=1),
        "blessed_at": T0 + timedelta(minutes=2),
        "activated_at": T0 + timedelta(minutes=3),
        "revoked_at": T0 + timedelta(minutes=4),
    }


def test_each_event_gets_its_own_id() -> None:
    device = device_in(DeviceState.DEFINED)
    enrolled = apply_transition(device, Transition.ENROLL, at=T0, actor="test")
    failed = apply_transition(device, Transition.FAIL, at=T0, actor="test")
    assert enrolled.id != failed.id


def test_the_callers_data_cannot_rewrite_where_the_device_came_from_or_went() -> None:
    device = device_in(DeviceState.DEFINED)
    event = apply_transition(
        device, Transition.ENROLL, at=T0, actor="test", data={"from": "blessed", "to": "revoked"}
    )
    assert event.data == {"from": "defined", "to": "under_test"}


def test_reachability_follows_the_table() -> None:
    assert reachable_from(DeviceState.BLESSED) == {
        DeviceState.BLESSED,
        DeviceState.ACTIVATED,
        DeviceState.REVOKED,
    }
    assert DeviceState.UNDER_TEST in reachable_from(DeviceState.FAILED)
    assert DeviceState.UNDER_TEST not in reachable_from(DeviceState.ACTIVATED)
    without_revoke = reachable_from(DeviceState.DEFINED, without=frozenset({Transition.REVOKE}))
    assert DeviceState.REVOKED not in without_revoke
    assert is_allowed(Transition.RETEST, DeviceState.FAILED)
    assert not is_allowed(Transition.BLESS, DeviceState.FAILED)
