"""The factory line: factory enrollment tokens, DUT enrollment, test runs, blessing."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from lineside.domain.models import FirmwareRelease
from lineside.entrypoints.api.dependencies import (
    Caller,
    CallerCredentials,
    CredentialsFirst,
    Services,
    as_caller,
    services,
)
from lineside.entrypoints.api.factory_schemas import (
    BlessIn,
    BlessingOut,
    CreatedFactoryTokenOut,
    DutIn,
    DutOut,
    FactoryTokenIn,
    FactoryTokenOut,
    FirmwareView,
    TestRunIn,
    TestRunOut,
)
from lineside.entrypoints.api.schemas import DeviceOut
from lineside.services import factory_line, factory_tokens
from lineside.services.context import ServiceContext
from lineside.services.firmware import release_view

router = APIRouter(prefix="/api/v1", tags=["factory"], route_class=CredentialsFirst)


def _view(ctx: ServiceContext, release: FirmwareRelease | None) -> FirmwareView | None:
    return release_view(ctx, release) if release is not None else None


@router.post("/factory/enrollment-tokens", status_code=status.HTTP_201_CREATED)
def create_factory_token(body: FactoryTokenIn, ctx: Services, caller: Caller) -> CreatedFactoryTokenOut:
    """A factory line's enrollment token for one product. The secret is shown once."""
    created = factory_tokens.create_factory_token(ctx, caller, product_id=body.product_id, name=body.name)
    return CreatedFactoryTokenOut(**FactoryTokenOut.of(created.token).model_dump(), token=created.secret)


@router.get("/factory/enrollment-tokens")
def list_factory_tokens(ctx: Services, caller: Caller) -> list[FactoryTokenOut]:
    """The organization's factory enrollment tokens (no secrets)."""
    return [FactoryTokenOut.of(token) for token in factory_tokens.list_factory_tokens(ctx, caller)]


@router.post("/factory/enrollment-tokens/{token_id}/revoke")
def revoke_factory_token(token_id: str, ctx: Services, caller: Caller) -> FactoryTokenOut:
    """The token stops enrolling DUTs at once."""
    return FactoryTokenOut.of(factory_tokens.revoke_factory_token(ctx, caller, token_id))


@router.post(
    "/factory/duts",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "The unit was already under test: the same device, unchanged."}},
)
async def enroll_dut(body: DutIn, request: Request, response: Response) -> DutOut:
    """A Device Under Test (or its fixture) enrolls with the factory enrollment token itself:
    no API key. The answer names the factory firmware the unit should run."""
    # The line's three routes are async with one threadpool hop each (see as_caller).
    ctx = services(request)
    enrolled = await run_in_threadpool(
        factory_line.enroll_dut,
        ctx,
        body.enrollment_token,
        hardware_id=body.hardware_id,
        serial_number=body.serial_number,
    )
    if not enrolled.created:
        response.status_code = status.HTTP_200_OK
    return DutOut(
        device=DeviceOut.of(enrolled.device), factory_firmware=_view(ctx, enrolled.factory_firmware)
    )


@router.post("/devices/{device_id}/test-runs", status_code=status.HTTP_201_CREATED)
async def record_test_run(
    device_id: str, body: TestRunIn, request: Request, credentials: CallerCredentials
) -> TestRunOut:
    """Record a test run of a Device Under Test: passed or not, and its measurements."""
    work = partial(
        factory_line.record_test_run,
        device_id=device_id,
        passed=body.passed,
        measurements=body.measurements,
        fixture=body.fixture,
        operator=body.operator,
    )
    return TestRunOut.of(await as_caller(request, credentials, work))


@router.get("/devices/{device_id}/test-runs")
def list_test_runs(device_id: str, ctx: Services, caller: Caller) -> list[TestRunOut]:
    """Newest first."""
    return [TestRunOut.of(run) for run in factory_line.list_test_runs(ctx, caller, device_id)]


@router.post("/devices/{device_id}/bless")
async def bless_device(
    device_id: str, request: Request, credentials: CallerCredentials, body: BlessIn | None = None
) -> BlessingOut:
    """Bless a unit whose last test passed (green), or fail one whose last test failed (red)."""
    blessing = await as_caller(request, credentials, partial(factory_line.bless_device, device_id=device_id))
    return BlessingOut(
        result=blessing.result,
        led=blessing.led,
        device=DeviceOut.of(blessing.device),
        application_firmware=_view(services(request), blessing.application_firmware),
    )
