"""The manufacturing lifecycle of a device, as data.

Ownership (which organization holds a device, claimed or not) is deliberately not part of
this diagram: a device can be claimed before it ever connects.

::

          define
            |
            v
       +---------+  enroll   +------------+  bless   +---------+
       | defined |---------->| under_test |--------->| blessed |
       +---------+           +------------+          +---------+
            |                  |      ^                   |
            |              fail|      |retest             | activate
            |                  v      |                   v
            |               +--------+            +-----------+
            +-------------->| failed |            | activated |
            |   activate    +--------+            +-----------+
            +-----------------------------------------^
                                  (static tokens, no factory)

    register by certificate under the approval policy (factory PKI):
        pending_approval --approve--> defined

    revoke: every state except revoked --> revoked   (terminal; rejecting a pending device)

Blessing is permanent: nothing leads from blessed or activated back to the line.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from lineside.domain.errors import IllegalTransition
from lineside.domain.events import DomainEvent, EventType, new_event


class DeviceState(StrEnum):
    DEFINED = "defined"
    UNDER_TEST = "under_test"
    BLESSED = "blessed"
    FAILED = "failed"
    ACTIVATED = "activated"
    REVOKED = "revoked"
    # Registered by its own certificate under the approval policy: held until a person (or
    # a webhook's receiver, through the API) approves it; it cannot connect meanwhile.
    PENDING_APPROVAL = "pending_approval"


class Transition(StrEnum):
    """Each value is the past participle used in messages and event names."""

    ENROLL = "enrolled"
    RETEST = "retested"
    BLESS = "blessed"
    FAIL = "failed"
    ACTIVATE = "activated"
    REVOKE = "revoked"
    APPROVE = "approved"


_S = DeviceState
_T = Transition

TRANSITIONS: dict[tuple[Transition, DeviceState], DeviceState] = {
    (_T.ENROLL, _S.DEFINED): _S.UNDER_TEST,
    (_T.RETEST, _S.FAILED): _S.UNDER_TEST,
    (_T.BLESS, _S.UNDER_TEST): _S.BLESSED,
    (_T.FAIL, _S.UNDER_TEST): _S.FAILED,
    (_T.ACTIVATE, _S.DEFINED): _S.ACTIVATED,
    (_T.ACTIVATE, _S.BLESSED): _S.ACTIVATED,
    (_T.APPROVE, _S.PENDING_APPROVAL): _S.DEFINED,
    **{(_T.REVOKE, state): _S.REVOKED for state in _S if state is not _S.REVOKED},
}

# The timestamp a device keeps for the moment it entered each state.
STATE_TIMESTAMP_FIELD: dict[DeviceState, str] = {state: f"{state.value}_at" for state in _S}


def next_state(transition: Transition, current: DeviceState) -> DeviceState:
    """The state ``transition`` leads to from ``current``, or IllegalTransition."""
    try:
        return TRANSITIONS[(transition, current)]
    except KeyError:
        raise IllegalTransition(transition.value, current.value) from None


def allowed_transitions(current: DeviceState) -> list[Transition]:
    return [transition for (transition, state) in TRANSITIONS if state is current]


def is_allowed(transition: Transition, current: DeviceState) -> bool:
    return (transition, current) in TRANSITIONS


def reachable_from(start: DeviceState, *, without: frozenset[Transition] = frozenset()) -> set[DeviceState]:
    """Every state the table leads to from ``start`` (``start`` included), not taking the
    transitions ``without``."""
    seen, frontier = {start}, [start]
    while frontier:
        current = frontier.pop()
        for transition in allowed_transitions(current):
            following = TRANSITIONS[(transition, current)]
            if transition not in without and following not in seen:
                seen.add(following)
                frontier.append(following)
    return seen


TRANSITION_EVENTS: dict[Transition, EventType] = {
    _T.ENROLL: EventType.DEVICE_ENROLLED,
    _T.RETEST: EventType.DEVICE_RETESTED,
    _T.BLESS: EventType.DEVICE_BLESSED,
    _T.FAIL: EventType.DEVICE_FAILED,
    _T.ACTIVATE: EventType.DEVICE_ACTIVATED,
    _T.REVOKE: EventType.DEVICE_REVOKED,
    _T.APPROVE: EventType.DEVICE_APPROVED,
}


def event_type_for(transition: Transition) -> EventType:
    return TRANSITION_EVENTS[transition]


class LifecycleSubject(Protocol):
    id: str
    organization_id: str
    state: DeviceState
    timeline: dict[str, datetime | None]


def apply_transition(
    device: LifecycleSubject,
    transition: Transition,
    *,
    at: datetime,
    actor: str,
    data: dict[str, Any] | None = None,
) -> DomainEvent:
    """Move ``device`` along the table, stamp the time, and return the event that says so.

    Raises IllegalTransition (and changes nothing) when the table has no such step.
    """
    previous = device.state
    device.state = next_state(transition, previous)
    # A retest re-enters under_test: the latest entry wins.
    device.timeline[STATE_TIMESTAMP_FIELD[device.state]] = at
    extra = {key: value for key, value in (data or {}).items() if key not in ("from", "to")}
    return new_event(
        event_type_for(transition),
        device,
        actor=actor,
        at=at,
        **{"from": previous.value, "to": device.state.value, **extra},
    )
