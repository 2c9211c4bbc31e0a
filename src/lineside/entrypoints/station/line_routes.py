"""The factory API a station serves: the server's paths and bodies (its schema classes), so a
fixture pointed at the station changes nothing but the URL. Each action runs the station's
line (``services.station_line``), which appends it to the ledger in the same transaction."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from lineside.domain.errors import Conflict
from lineside.domain.factory import TestRun
from lineside.domain.models import CredentialType, FirmwareRelease, Principal
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
    DutIn,
    DutOut,
    FirmwareView,
    TestRunIn,
    TestRunOut,
)
from lineside.entrypoints.api.schemas import CredentialIn, CredentialOut, DeviceOut, credential_out
from lineside.services import devices, factory_line, station_line
from lineside.services.context import ServiceContext
from lineside.services.firmware import release_view
from lineside.services.station_line import StationPost

router = APIRouter(prefix="/api/v1", tags=["factory (station)"], route_class=CredentialsFirst)
ONLY_CERTIFICATES = (
    "A station issues certificates, and tokens from its token pool; MQTT passwords need the server."
)


def station_post(request: Request) -> StationPost:
    post: StationPost = request.app.state.station_post
    return post


def _view(ctx: ServiceContext, release: FirmwareRelease | None) -> FirmwareView | None:
    return release_view(ctx, release) if release is not None else None


@router.post(
    "/factory/duts",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "The unit was already under test: the same device, unchanged."}},
)
async def enroll_dut(body: DutIn, request: Request, response: Response) -> DutOut:
    ctx, post = services(request), station_post(request)
    enrolled = await run_in_threadpool(
        station_line.enroll,
        ctx,
        post,
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
    post = station_post(request)

    def work(ctx: ServiceContext, caller: Principal) -> TestRun:
        run: TestRun = station_line.record_test_run(
            ctx,
            post,
            caller,
            device_id,
            passed=body.passed,
            measurements=body.measurements,
            fixture=body.fixture,
            operator=body.operator,
        )
        return run

    return TestRunOut.of(await as_caller(request, credentials, work))


@router.get("/devices/{device_id}/test-runs")
def list_test_runs(device_id: str, ctx: Services, caller: Caller) -> list[TestRunOut]:
    return [TestRunOut.of(run) for run in factory_line.list_test_runs(ctx, caller, device_id)]


@router.post("/devices/{device_id}/bless")
async def bless_device(
    device_id: str, request: Request, credentials: CallerCredentials, body: BlessIn | None = None
) -> BlessingOut:
    post = station_post(request)
    blessing = await as_caller(
        request, credentials, lambda ctx, caller: station_line.bless(ctx, post, caller, device_id)
    )
    return BlessingOut(
        result=blessing.result,
        led=blessing.led,
        device=DeviceOut.of(blessing.device),
        application_firmware=_view(services(request), blessing.application_firmware),
    )


@router.get("/devices/{device_id}")
def get_device(device_id: str, ctx: Services, caller: Caller) -> DeviceOut:
    return DeviceOut.of(devices.get_device(ctx, caller, device_id))


@router.post("/devices/{device_id}/credentials", status_code=status.HTTP_201_CREATED)
def issue_credential(
    device_id: str, body: CredentialIn, request: Request, ctx: Services, caller: Caller
) -> CredentialOut:
    """A certificate from the station's CA (a key made here, or the CSR's), or the unit's token
    from the station's pool."""
    if body.type is CredentialType.TOKEN:
        return credential_out(station_line.issue_pool_token(ctx, station_post(request), caller, device_id))
    if body.type is not CredentialType.X509:
        raise Conflict(ONLY_CERTIFICATES)
    issued = station_line.issue_certificate(ctx, station_post(request), caller, device_id, body.csr)
    return credential_out(issued)
