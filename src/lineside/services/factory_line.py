"""The factory line: a DUT enrolls, fixtures record test runs, and the unit is blessed.

Electric Imp's Connected Factory, phase one::

    fixture/DUT: POST factory/duts (factory token + hardware id) -> under_test, factory firmware
    fixture:     POST devices/{id}/test-runs (passed, measurements)
    fixture:     POST devices/{id}/bless
                   last run passed -> blessed, production group, LED green
                   last run failed -> failed (can be enrolled and tested again), LED red

Blessing is permanent, and it clears the unit's factory enrollment so that it cannot be
reused. Every state change is one conditional update, so two fixtures racing on one unit
(a retry, a second station) never both move it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from lineside.domain.device_specs import DeviceSpec, new_device, serial_number_problem, spec_problems
from lineside.domain.errors import Conflict, InvalidInput, PermissionDenied
from lineside.domain.events import EventType, new_event
from lineside.domain.factory import (
    MAX_LABEL_LENGTH,
    BlessingResult,
    FactoryToken,
    TestRun,
    blessing_result,
    check_measurements,
    normalize_hardware_id,
)
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState, Transition, apply_transition, is_allowed, reachable_from
from lineside.domain.models import (
    Device,
    DeviceGroup,
    EnrollmentPolicy,
    FirmwareRelease,
    GroupKind,
    Principal,
    Product,
    Scope,
)
from lineside.domain.text import has_control_characters
from lineside.services.context import ServiceContext, require
from lineside.services.factory_tokens import authenticate_factory_token
from lineside.services.firmware import assigned_release
from lineside.services.lookups import load_device
from lineside.services.ports import UnitOfWork
from lineside.services.products import group_created_event
from lineside.services.quotas import check_device_quota

PRODUCTION_GROUP_NAME = "Production"
# Units already off the line: nothing in the factory may touch them again.
# From the lifecycle table: the states from which no path leads back under test (blessed,
# activated, revoked), and those only a blessing leads to (blessed, activated).
_S = DeviceState
_OFF_THE_LINE = frozenset(state for state in _S if _S.UNDER_TEST not in reachable_from(state))
_BLESSED_ALREADY = frozenset(reachable_from(_S.BLESSED, without=frozenset({Transition.REVOKE})))
_ENROLLING = (Transition.ENROLL, Transition.RETEST)


def _moved_concurrently() -> Conflict:
    return Conflict("The device changed state at the same time (another fixture?); read it and retry.")


# -- enrollment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolledDut:
    device: Device
    factory_firmware: FirmwareRelease | None
    created: bool  # False: the unit was already under test (a fixture's retry), nothing changed
    new_device: bool = False  # a device was defined for it (what a station's budget counts)


def enroll_dut(
    ctx: ServiceContext, enrollment_token: str, *, hardware_id: str, serial_number: str | None = None
) -> EnrolledDut:
    """Put the unit with ``hardware_id`` under test on the token's product line.

    The product's enrollment policy decides about a hardware id it does not know: ``create``
    defines a device for it (serial number = hardware id unless given), ``predefined``
    refuses. A device defined by serial number alone gets its hardware id here.
    """
    hardware_id = normalize_hardware_id(hardware_id)
    serial_problem = serial_number_problem(serial_number) if serial_number is not None else None
    if serial_problem:
        raise InvalidInput(f"serial_number {serial_problem}.")
    with ctx.unit_of_work() as uow:
        token, product = authenticate_factory_token(ctx, uow, enrollment_token)
        enrolled = enroll_unit(ctx, uow, token, product, hardware_id, serial_number)
        if enrolled.created:
            uow.commit()
    return enrolled


def enroll_unit(
    ctx: ServiceContext,
    uow: UnitOfWork,
    token: FactoryToken,
    product: Product,
    hardware_id: str,
    serial_number: str | None,
    *,
    actor: str | None = None,
    new_device_id: str | None = None,
    firmware: bool = True,
) -> EnrolledDut:
    """Enrollment inside ``uow`` (not committed), for a caller that authenticated the token:
    the server's line, a station's, and the replay of a station's ledger (which names the
    actor and the id the station gave a new device, and needs no firmware: nobody reads it)."""
    release = assigned_release if firmware else _no_release
    actor = actor or f"factory_token:{token.id}"
    device = _find_unit(uow, product, hardware_id, serial_number)
    if device is not None and device.state is DeviceState.UNDER_TEST:
        return EnrolledDut(device, release(uow, device), created=False)
    new = device is None
    if device is None:
        device = _define_unit(ctx, uow, product, hardware_id, serial_number, actor, new_device_id)
        _put_under_test(ctx, uow, device, product, token, actor)
        uow.devices.add(device)
    else:
        previous = device.state
        _put_under_test(ctx, uow, device, product, token, actor)
        if not uow.devices.save_state_if(device, previous):
            raise _moved_concurrently()
    return EnrolledDut(device, release(uow, device), created=True, new_device=new)


def _no_release(uow: UnitOfWork, device: Device) -> FirmwareRelease | None:
    return None


def _find_unit(uow: UnitOfWork, product: Product, hardware_id: str, serial: str | None) -> Device | None:
    device = uow.devices.find_by_hardware_id(product.id, hardware_id)
    if device is not None:
        if serial is not None and serial != device.serial_number:
            raise Conflict(
                f"Hardware id '{hardware_id}' belongs to the device with serial number "
                f"'{device.serial_number}', not '{serial}'."
            )
        return device
    if serial is None:
        return None
    device = uow.devices.find_by_serial_number(product.id, serial)
    if device is None:
        return None
    if device.hardware_id is not None:
        raise Conflict(
            f"Serial number '{serial}' belongs to the device with hardware id '{device.hardware_id}', "
            f"not '{hardware_id}'."
        )
    uow.devices.set_hardware_id(device.id, hardware_id)
    device.hardware_id = hardware_id
    return device


def _define_unit(
    ctx: ServiceContext,
    uow: UnitOfWork,
    product: Product,
    hardware_id: str,
    serial: str | None,
    actor: str,
    device_id: str | None = None,
) -> Device:
    """A new device for an unknown unit, not yet written: enrollment writes it under test."""
    if product.enrollment_policy is EnrollmentPolicy.PREDEFINED:
        raise PermissionDenied(
            f"Product '{product.name}' admits only devices defined beforehand, and no device with "
            f"hardware id '{hardware_id}' is defined: define it first (POST /api/v1/devices with "
            "its hardware_id), or enroll it with the serial number of a device defined without one."
        )
    spec = DeviceSpec(serial_number=serial if serial is not None else hardware_id)
    problems = spec_problems(spec, product.metadata_fields)
    if problems:
        detail = "; ".join(f"{p.column} {p.reason}" for p in problems)
        raise InvalidInput(f"A device cannot be made for this unit: {detail}. Define it beforehand.")
    check_device_quota(ctx, uow, product.organization_id, 1)
    now = ctx.clock()
    device = new_device(product, spec, now, None, device_id)
    device.hardware_id = hardware_id
    uow.events.add(
        new_event(
            EventType.DEVICE_DEFINED,
            device,
            actor=actor,
            at=now,
            product_id=product.id,
            serial_number=device.serial_number,
            hardware_id=hardware_id,
        )
    )
    return device


def _put_under_test(
    ctx: ServiceContext, uow: UnitOfWork, device: Device, product: Product, token: FactoryToken, actor: str
) -> None:
    """Enroll (or, after a failure, retest) ``device`` in memory and record the event."""
    if device.state in _OFF_THE_LINE:
        raise Conflict(
            f"The device is {device.state.value}: it has left the factory line and cannot be enrolled again."
        )
    transition = next(step for step in _ENROLLING if is_allowed(step, device.state))
    event = apply_transition(
        device, transition, at=ctx.clock(), actor=actor, data={"factory_token_id": token.id}
    )
    factory_group = _first_group(uow, product.id, GroupKind.FACTORY)
    if factory_group is not None:
        device.group_id = factory_group.id
    device.factory_token_id = token.id
    uow.events.add(event)
    # The line's figures per token ("where used"); the product's arrival is counted with the device.
    uow.activity.count_at(device.organization_id, device.product_id, device.state.value, f"token:{token.id}")


def _first_group(uow: UnitOfWork, product_id: str, kind: GroupKind) -> DeviceGroup | None:
    # Groups are listed oldest first: with several of a kind, the first one made is the line's.
    return next((group for group in uow.groups.list_for_product(product_id) if group.kind is kind), None)


# -- test runs ------------------------------------------------------------------------------


def checked_label(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    if len(text) > MAX_LABEL_LENGTH or has_control_characters(text):
        raise InvalidInput(f"{what} must be at most {MAX_LABEL_LENGTH} characters on one line.")
    return text.strip() or None


def record_test_run(
    ctx: ServiceContext,
    principal: Principal,
    device_id: str,
    *,
    passed: bool,
    measurements: dict[str, Any] | None = None,
    fixture: str | None = None,
    operator: str | None = None,
) -> TestRun:
    """One result for a unit under test; the last one decides its blessing."""
    require(principal, Scope.FACTORY)
    fixture, operator = checked_label(fixture, "fixture"), checked_label(operator, "operator")
    measurements = check_measurements(measurements or {})
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        run = record_run(
            ctx,
            uow,
            device,
            principal.actor,
            passed=passed,
            measurements=measurements,
            fixture=fixture,
            operator=operator,
        )
        uow.commit()
    return run


def record_run(
    ctx: ServiceContext,
    uow: UnitOfWork,
    device: Device,
    actor: str,
    *,
    passed: bool,
    measurements: dict[str, Any],
    fixture: str | None,
    operator: str | None,
    run_id: str | None = None,
) -> TestRun:
    """A test run of ``device`` inside ``uow`` (not committed), its labels and measurements
    already checked; a station's replayed run keeps the station's id."""
    if not is_allowed(Transition.BLESS, device.state):  # a test run decides a blessing
        raise Conflict(
            f"Only a device under test can be tested; this one is {device.state.value}."
            + (" Enroll it again to retest it." if is_allowed(Transition.RETEST, device.state) else "")
        )
    run = TestRun(
        id=run_id or new_id(),
        device_id=device.id,
        organization_id=device.organization_id,
        passed=passed,
        measurements=measurements,
        fixture=fixture,
        operator=operator,
        recorded_by=actor,
        created_at=ctx.clock(),
    )
    first = uow.test_runs.latest_for_device(device.id, since=None) is None
    uow.test_runs.add(run)
    uow.activity.record_test_run(
        device.organization_id, device.product_id, sources=_sources(run, device), passed=passed, first=first
    )
    # The measurements stay with the run: an event says what happened, not every reading.
    uow.events.add(
        new_event(
            EventType.DEVICE_TESTED,
            device,
            actor=actor,
            at=run.created_at,
            test_run_id=run.id,
            passed=passed,
            fixture=fixture,
        )
    )
    return run


def _sources(run: TestRun, device: Device) -> list[str]:
    """Where a run's figures are also counted: its fixture and the factory token the unit
    enrolled with (the overview's yield per fixture and per token)."""
    sources = [] if run.fixture is None else [f"fixture:{run.fixture}"]
    return sources + ([] if device.factory_token_id is None else [f"token:{device.factory_token_id}"])


def list_test_runs(ctx: ServiceContext, principal: Principal, device_id: str) -> list[TestRun]:
    """Newest first."""
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        device = load_device(uow, principal, device_id)
        return uow.test_runs.list_for_device(device.id)


# -- blessing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blessing:
    result: BlessingResult
    device: Device
    application_firmware: FirmwareRelease | None

    @property
    def led(self) -> Literal["green", "red"]:
        return self.result.led


def bless_device(ctx: ServiceContext, principal: Principal, device_id: str) -> Blessing:
    """Bless a unit whose last test run (since it last went under test) passed; fail it
    otherwise. Blessed units join the product's production group, made on first need."""
    require(principal, Scope.FACTORY)
    with ctx.unit_of_work() as uow:
        device = load_device(uow, principal, device_id)
        blessing = bless_unit(ctx, uow, device, principal.actor)
        uow.commit()
    return blessing


def bless_unit(
    ctx: ServiceContext, uow: UnitOfWork, device: Device, actor: str, *, firmware: bool = True
) -> Blessing:
    """The blessing (or failure) of ``device`` inside ``uow``, not committed (without the
    firmware it is to run when the caller does not need it)."""
    if not is_allowed(Transition.BLESS, device.state):
        raise Conflict(_not_blessable(device))
    last_run = uow.test_runs.latest_for_device(device.id, since=device.timeline.get("under_test_at"))
    if last_run is None:
        raise Conflict("The device has no test run since it was enrolled: record a test run first.")
    result = blessing_result(last_run)
    now = ctx.clock()
    if result is BlessingResult.BLESSED:
        group_id = _production_group(uow, device, actor, now).id
        data = {"test_run_id": last_run.id, "group_id": group_id}
        event = apply_transition(device, Transition.BLESS, at=now, actor=actor, data=data)
        device.group_id = group_id
        device.factory_token_id = None  # the factory enrollment is spent
    else:
        data = {"test_run_id": last_run.id}
        event = apply_transition(device, Transition.FAIL, at=now, actor=actor, data=data)
    if not uow.devices.save_state_if(device, DeviceState.UNDER_TEST):
        raise _moved_concurrently()
    uow.events.add(event)
    blessed = result is BlessingResult.BLESSED
    return Blessing(result, device, assigned_release(uow, device) if blessed and firmware else None)


def _not_blessable(device: Device) -> str:
    if device.state in _BLESSED_ALREADY:
        return f"The device is already {device.state.value}: blessing is permanent and happens once."
    return f"Only a device under test can be blessed; this one is {device.state.value}."


def _production_group(uow: UnitOfWork, device: Device, actor: str, now: datetime) -> DeviceGroup:
    """The product's production group, made (and announced) by the first blessing that needs it."""
    existing = _first_group(uow, device.product_id, GroupKind.PRODUCTION)
    if existing is not None:
        return existing
    group = DeviceGroup(
        id=new_id(),
        organization_id=device.organization_id,
        product_id=device.product_id,
        name=PRODUCTION_GROUP_NAME,
        kind=GroupKind.PRODUCTION,
        created_at=now,
    )
    if not uow.groups.add_unless_name_taken(group):
        # A concurrent blessing made it first, or a group of another kind bears the name.
        existing = _first_group(uow, device.product_id, GroupKind.PRODUCTION)
        if existing is not None:
            return existing
        group = replace(group, name=f"{PRODUCTION_GROUP_NAME} ({group.id[-8:]})")
        uow.groups.add(group)
    uow.events.add(group_created_event(group, actor))
    return group
