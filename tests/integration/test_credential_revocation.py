"""DELETE /api/v1/devices/{id}/credentials: the device's token, MQTT password and
certificates stop at once and it stays defined (new ones can be issued); only admins, and
never another organization's device."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.api import Tenant, assert_problem
from tests.support.factory import keyed

API = "/api/v1"


def test_revoking_credentials_cuts_the_device_off_and_keeps_it(tenant: Tenant) -> None:
    device = tenant.device(tenant.product()["id"])
    token = tenant.created(f"{API}/devices/{device['id']}/credentials", {"type": "token"})["secret"]
    me = {"Authorization": f"Bearer {token}"}
    assert tenant.http.get("/device/v1/me", headers=me).status_code == 200
    assert tenant.delete(f"{API}/devices/{device['id']}/credentials").status_code == 204
    assert tenant.http.get("/device/v1/me", headers=me).status_code == 401
    assert tenant.get(f"{API}/devices/{device['id']}").json()["state"] == "defined"
    again = tenant.created(f"{API}/devices/{device['id']}/credentials", {"type": "token"})["secret"]
    assert tenant.http.get("/device/v1/me", headers={"Authorization": f"Bearer {again}"}).status_code == 200
    types = [
        event["type"] for event in tenant.get(f"{API}/audit-events?subject_id={device['id']}").json()["items"]
    ]
    assert "credentials.revoked" in types


def test_only_an_admin_of_the_maker_revokes_credentials(
    tenant: Tenant, make_tenant: Callable[[], Tenant]
) -> None:
    device = tenant.device(tenant.product()["id"])
    assert_problem(make_tenant().delete(f"{API}/devices/{device['id']}/credentials"), 404)
    assert_problem(keyed(tenant, "read").delete(f"{API}/devices/{device['id']}/credentials"), 403)
