"""Owners: scan a unit's QR label, open the claim page, sign up, claim; one gives it back."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from lineside.entrypoints.cli.demo_env import DemoFailed, DemoWorld
from lineside.entrypoints.cli.demo_http import DemoApi
from lineside.entrypoints.cli.demo_qr import UnreadableLabel, read_qr_png
from lineside.entrypoints.cli.demo_story import StoryState, Unit

# A throwaway account in a throwaway database; each owner gets a random one anyway.
_PASSWORD_BYTES = 12


def claim_by_qr(world: DemoWorld, state: StoryState) -> str:
    """Half the plugs (at least one) are claimed, each by a new owner; the first is unclaimed."""
    units = state.units[: max(1, len(state.units) // 2)]
    owners: list[tuple[Unit, str]] = []
    with DemoApi(world.api_url) as anyone:
        for number, unit in enumerate(units, start=1):
            code = _scan(anyone, unit)
            token = _sign_up(anyone, f"owner{number}-{secrets.token_hex(3)}@demo.example")
            with anyone.as_(token) as owner:
                claimed = owner.json("POST", "/api/v1/claims", 201, json={"code": code})
            if claimed["id"] != unit.device_id:
                raise DemoFailed(f"claim: the label of {unit.serial_number} claimed another device")
            owners.append((unit, token))
            state.claimed += 1
        first, token = owners[0]
        with anyone.as_(token) as owner:
            owner.json("DELETE", f"/api/v1/devices/{first.device_id}/claim")
            if list(owner.devices()):
                raise DemoFailed("unclaim: the device is still in its owner's account")
        state.unclaimed += 1
    return (
        f"{state.claimed} labels scanned (QR decoded), {state.claimed} owners signed up and claimed;"
        f" the owner of {first.serial_number} unclaimed it"
    )


def _scan(anyone: DemoApi, unit: Unit) -> str:
    """The claim code behind a label, the way a phone gets it: decode, open the page."""
    try:
        url = read_qr_png(unit.label_png)
    except UnreadableLabel as error:
        raise DemoFailed(f"label of {unit.serial_number}: {error}") from None
    path = urlsplit(url).path
    page = anyone.call("GET", path)
    if unit.serial_number not in page.text:
        raise DemoFailed(f"the claim page of {unit.serial_number} does not show its serial number")
    return path.rsplit("/", 1)[-1]


def _sign_up(anyone: DemoApi, email: str) -> str:
    password = secrets.token_urlsafe(_PASSWORD_BYTES)
    anyone.json("POST", "/api/v1/users", 201, json={"email": email, "password": password})
    signed_in = anyone.json("POST", "/api/v1/auth/token", json={"email": email, "password": password})
    token: str = signed_in["access_token"]
    return token
