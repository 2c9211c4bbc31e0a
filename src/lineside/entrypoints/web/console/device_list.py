"""The console's devices list: find devices by serial, id, MAC or hardware id, metadata and a
dozen filters, newest or oldest first, a page at a time; choose some and export them as CSV
(or, in a static-token batch, their QR labels), disclaim, delete or move them to a group
(asked first, then all or none)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from lineside.adapters.csv_files import csv_text
from lineside.domain.device_specs import normalize_mac
from lineside.domain.errors import DomainError, InvalidInput
from lineside.domain.factory import normalize_hardware_id
from lineside.domain.identifiers import is_uuid
from lineside.domain.lifecycle import DeviceState
from lineside.domain.models import Device, DeviceGroup
from lineside.entrypoints.api.batch_files import labels_file
from lineside.entrypoints.api.dependencies import services
from lineside.entrypoints.api.problems import status_of
from lineside.entrypoints.web.console.seats import PAGE_SIZE, Seat, chosen, product_choices, seat_for, show
from lineside.entrypoints.web.pages import check_csrf, message
from lineside.services import claims, devices, products, static_tokens
from lineside.services.context import ServiceContext
from lineside.services.ports import DeviceFilter
from lineside.services.ports.devices import METADATA_SEARCH_WINDOW

router = APIRouter(prefix="/console", include_in_schema=False)

LABELS = {"labels-zip": "zip", "labels-pdf": "pdf"}
CHOICES = {"online": {"yes": True, "no": False}, "owner": {"claimed": True, "unclaimed": False}}
EXPORT_COLUMNS = (
    "id", "serial_number", "product_id", "state", "group_id", "mac", "hardware_id", "claimed",
    "online", "last_seen_at", "firmware_version", "created_at",
)  # fmt: skip


@dataclass(frozen=True)
class DeviceQuery:
    """The list's filters as the form sends them (all text, all optional)."""

    serial: str = ""
    address: str = ""  # a device id, a MAC or a hardware id
    product: str = ""
    state: str = ""
    group: str = ""
    batch: str = ""
    online: str = ""
    owner: str = ""
    firmware: str = ""
    meta: str = ""  # name=value
    order: str = "oldest"

    def filters(self) -> DeviceFilter:
        """What the form asks for, or InvalidInput naming the field that cannot be read."""
        return DeviceFilter(
            product_id=self.product or None,
            state=_state(self.state),
            serial_number=self.serial.strip() or None,
            batch_id=self.batch.strip() or None,
            group_id=self.group or None,
            hardware_address=_hardware_address(self.address) if self.address.strip() else None,
            online=_choice("online", self.online),
            claimed=_choice("owner", self.owner),
            firmware_version=self.firmware.strip() or None,
            metadata=_metadata(self.meta),
            newest_first=self.order == "newest",
        )

    def link(self, **changes: str) -> str:
        return "?" + urlencode({key: value for key, value in {**asdict(self), **changes}.items() if value})


def _state(text: str) -> DeviceState | None:
    return chosen(DeviceState, text, "state") if text else None


def _choice(name: str, text: str) -> bool | None:
    if not text:
        return None
    if text not in CHOICES[name]:
        raise InvalidInput(f"{name.capitalize()} is one of {', '.join(CHOICES[name])}.")
    return CHOICES[name][text]


def _hardware_address(text: str) -> str:
    return normalize_mac(text) or normalize_hardware_id(text)


def _metadata(text: str) -> tuple[str, str] | None:
    if not text.strip():
        return None
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise InvalidInput("Search metadata as name=value, for example colour=red.")
    return name.strip(), value.strip()


@router.get("/{organization_id}/devices", response_model=None)
async def devices_page(request: Request, organization_id: str, cursor: str = "") -> Response:
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    fields = DeviceQuery.__dataclass_fields__
    query = DeviceQuery(**{k: v for k, v in request.query_params.items() if k in fields})
    address = query.address.strip()
    if is_uuid(address):  # an id is one device: its page
        return RedirectResponse(f"/console/{organization_id}/devices/{address}", status_code=303)
    ctx = services(request)
    context = await run_in_threadpool(_list_context, ctx, seat, query, cursor)
    return show(request, seat, "devices.html", context.pop("status", 200), query=query, **context)


def _list_context(ctx: ServiceContext, seat: Seat, query: DeviceQuery, cursor: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        **product_choices(ctx, seat),
        "states": list(DeviceState),
        "page": None,
        "search_window": METADATA_SEARCH_WINDOW,
    }
    try:
        context["groups"] = _groups(ctx, seat, query.product)
        context["page"] = devices.list_devices(
            ctx, seat.acting, filters=query.filters(), cursor=cursor or None, limit=PAGE_SIZE
        )
    except DomainError as error:
        context["error"], context["status"] = error.detail, status_of(error)
    return context


def _groups(ctx: ServiceContext, seat: Seat, product_id: str) -> list[DeviceGroup]:
    return products.list_groups(ctx, seat.acting, product_id) if product_id else []


# -- chosen devices --------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkAction:
    title: str
    consequence: str
    button: str


BULK_ACTIONS = {
    "disclaim": BulkAction(
        "Take these devices back from their owners",
        "They leave their owners' accounts at once; their QR codes can claim them again.",
        "Disclaim them",
    ),
    "delete": BulkAction(
        "Delete these devices",
        "They are gone at once: their credentials stop working, they leave their owners' accounts, "
        "and their QR codes will say the device was deleted. Their events stay in the audit log.",
        "Delete them for good",
    ),
    "move": BulkAction(
        "Move these devices to another group",
        "They take the group's firmware and settings from their next check-in.",
        "Move them",
    ),
}


@router.post("/{organization_id}/devices/chosen", response_model=None)
async def chosen_devices(request: Request, organization_id: str) -> Response:
    """Export the chosen devices (or their QR labels), or ask before (and then do) a bulk
    action on them."""
    seat = await run_in_threadpool(seat_for, request, organization_id)
    if not isinstance(seat, Seat):
        return seat
    form = await request.form()
    chosen = [str(value) for value in form.getlist("device")]
    action, group = str(form.get("action", "")), str(form.get("group", ""))
    ctx = services(request)
    try:
        check_csrf(request, str(form.get("csrf", "")))
        if action == "export":
            found = await run_in_threadpool(devices.get_devices, ctx, seat.acting, chosen)
            return _csv(found, organization_id)
        if action in LABELS:  # QR codes of some units of a static-token batch
            batch = str(form.get("batch", ""))
            contents = await run_in_threadpool(static_tokens.chosen_labels, ctx, seat.acting, batch, chosen)
            return await labels_file(request, contents, LABELS[action])
        if action not in BULK_ACTIONS:
            raise InvalidInput("Choose what to do with the devices.")
        if form.get("confirmed") != "yes":
            found = await run_in_threadpool(devices.get_devices, ctx, seat.acting, chosen)
            return show(
                request,
                seat,
                "bulk_confirm.html",
                chosen=found,
                action=action,
                bulk=BULK_ACTIONS[action],
                group=group,
            )
        done = await run_in_threadpool(_act, ctx, seat, action, chosen, group)
    except DomainError as error:
        return message(request, status_of(error), "Not done", error.detail)
    return RedirectResponse(f"/console/{organization_id}/devices?done={action}&count={done}", status_code=303)


def _act(ctx: ServiceContext, seat: Seat, action: str, chosen: list[str], group: str) -> int:
    if action == "disclaim":
        return len(claims.disclaim_devices(ctx, seat.acting, chosen))
    if action == "delete":
        return claims.delete_devices(ctx, seat.acting, chosen)
    return devices.move_to_group(ctx, seat.acting, chosen, group)


def _csv(found: list[Device], organization_id: str) -> Response:
    rows = [EXPORT_COLUMNS] + [_export_row(device) for device in found]
    disposition = f'attachment; filename="devices-{organization_id}.csv"'
    return Response(
        csv_text(rows), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition}
    )


def _export_row(device: Device) -> tuple[str, ...]:
    def text(value: object) -> str:
        return "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)

    return (
        device.id, device.serial_number, device.product_id, device.state.value,
        text(device.group_id), text(device.mac), text(device.hardware_id),
        str(device.is_claimed).lower(), str(device.online).lower(), text(device.last_seen_at),
        text(device.firmware_version), text(device.created_at),
    )  # fmt: skip
