"""`PATCH /api/v1/products/{id}` renames a product and changes its metadata fields (issue 15):
a product with devices only widens its fields (409 otherwise, as problem+json), a taken name
is a 409, a malformed field a 422, another organization's product a 404, a read key or a
viewer a 403; `requires_blessing` alone still works. And the pre-production kind of device
group: made, given application firmware, set to wait for activation."""

from __future__ import annotations

from typing import Any

from lineside.bootstrap import Application
from lineside.domain.lifecycle import DeviceState
from tests.support.api import Tenant, assert_problem, ok, unique
from tests.support.factory import API, keyed
from tests.support.firmware import deploy, deployed, group, member, release, running, set_after
from tests.support.people import Person, new_person
from tests.support.webhooks import events_of

COLOUR = {"name": "colour", "type": "string", "required": False}
BATCH = {"name": "batch", "type": "integer", "required": True}


def patch(caller: Tenant | Person, product_id: str, body: dict[str, Any], **headers: str) -> Any:
    return caller.http.patch(f"{API}/products/{product_id}", json=body, headers={**caller.headers, **headers})


def with_device(tenant: Tenant, fields: list[dict[str, Any]], **metadata: Any) -> dict[str, Any]:
    product = tenant.product(fields=fields)
    tenant.device(product["id"], metadata=metadata)
    return product


def test_an_admin_renames_a_product_and_adds_an_optional_field(tenant: Tenant) -> None:
    product = with_device(tenant, [BATCH], batch=1)
    name = unique("Kettle")

    changed = ok(patch(tenant, product["id"], {"name": name, "metadata_fields": [BATCH, COLOUR]}))

    assert (changed["name"], changed["metadata_fields"]) == (name, [BATCH, COLOUR])
    assert ok(tenant.get(f"{API}/products/{product['id']}"))["name"] == name
    [updated] = events_of(tenant, subject_id=product["id"], type="product.updated")
    assert updated["data"] == {
        "name": name,
        "previous_name": product["name"],
        "metadata_fields": [BATCH, COLOUR],
        "fields_added": ["colour"],
        "fields_removed": [],
        "fields_changed": [],
    }
    made = tenant.device(product["id"], metadata={"batch": 2, "colour": "red"})
    assert made["metadata"] == {"batch": 2, "colour": "red"}


def test_a_product_with_devices_refuses_a_required_field_a_new_type_and_a_field_made_required(
    tenant: Tenant,
) -> None:
    product = with_device(tenant, [COLOUR], colour="red")
    for fields, says in (
        ([COLOUR, BATCH], "a new field 'batch' must be optional"),
        ([{**COLOUR, "required": True}], "'colour' cannot become required"),
        ([{**COLOUR, "type": "integer"}], "'colour' keeps its type (string, not integer)"),
    ):
        problem = assert_problem(patch(tenant, product["id"], {"metadata_fields": fields}), 409)
        assert "The product has 1 device" in problem["detail"] and says in problem["detail"], problem

    assert ok(tenant.get(f"{API}/products/{product['id']}"))["metadata_fields"] == [COLOUR]
    assert events_of(tenant, subject_id=product["id"], type="product.updated") == []


def test_a_field_removed_stays_on_the_devices_that_have_it(tenant: Tenant) -> None:
    product = tenant.product(fields=[COLOUR, {**BATCH, "required": False}])
    device = tenant.device(product["id"], metadata={"colour": "red", "batch": 3})

    assert ok(patch(tenant, product["id"], {"metadata_fields": [{**BATCH, "required": False}]}))

    assert ok(tenant.get(f"{API}/devices/{device['id']}"))["metadata"] == {"colour": "red", "batch": 3}
    refused = tenant.post(
        f"{API}/devices",
        json={"product_id": product["id"], "serial_number": unique("SN"), "metadata": {"colour": "red"}},
    )
    assert "colour" in assert_problem(refused, 422)["detail"]


def test_a_product_without_devices_changes_its_fields_freely(tenant: Tenant) -> None:
    product = tenant.product(fields=[COLOUR])
    fields = [{**COLOUR, "type": "integer", "required": True}, BATCH]

    assert ok(patch(tenant, product["id"], {"metadata_fields": fields}))["metadata_fields"] == fields


def test_a_taken_name_is_a_conflict_and_bad_input_a_422(tenant: Tenant) -> None:
    product, other = tenant.product(), tenant.product()

    problem = assert_problem(patch(tenant, product["id"], {"name": other["name"]}), 409)
    assert f"already has a product named '{other['name']}'" in problem["detail"]
    for body in (
        {"name": ""},
        {"name": 7},
        {"metadata_fields": [COLOUR, COLOUR]},
        {"metadata_fields": [{"name": "id", "type": "string"}]},
        {"metadata_fields": [{"name": "colour", "type": "colour"}]},
        {"metadata_fields": "colour"},
        {"enrollment_policy": "predefined"},
    ):
        assert_problem(patch(tenant, product["id"], body), 422)
    assert ok(tenant.get(f"{API}/products/{product['id']}"))["name"] == product["name"]


def test_only_an_admin_of_the_products_organization_changes_it(tenant: Tenant, make_tenant: Any) -> None:
    product = tenant.product()
    body = {"name": unique("Mine now"), "metadata_fields": [COLOUR]}
    viewer = new_person(tenant.http)
    invited = tenant.created(
        f"{API}/organizations/{tenant.organization_id}/invitations", {"email": viewer.email, "role": "viewer"}
    )
    assert viewer.post(f"{API}/invitations/accept", json={"code": invited["code"]}).status_code == 200

    assert_problem(patch(keyed(tenant, "read"), product["id"], body), 403)
    assert_problem(patch(keyed(tenant, "factory"), product["id"], body), 403)
    assert_problem(
        patch(viewer, product["id"], body, **{"Lineside-Organization": tenant.organization_id}), 403
    )
    assert_problem(patch(make_tenant(), product["id"], body), 404)
    assert_problem(patch(tenant.sub_tenant(), product["id"], body), 404)
    assert ok(tenant.get(f"{API}/products/{product['id']}")) == product


def test_requires_blessing_alone_still_changes_only_that(tenant: Tenant) -> None:
    product = tenant.product(fields=[COLOUR])

    changed = ok(patch(tenant, product["id"], {"requires_blessing": True}))

    assert changed == {**product, "requires_blessing": True}
    [updated] = events_of(tenant, subject_id=product["id"], type="product.updated")
    assert updated["data"] == {"requires_blessing": True}


# -- pre-production groups -----------------------------------------------------------------------


def test_a_pre_production_group_is_made_and_listed(tenant: Tenant) -> None:
    product = tenant.product()["id"]

    made = group(tenant, product, "pre_production")

    assert made["kind"] == "pre_production"
    assert [g["kind"] for g in ok(tenant.get(f"{API}/products/{product}/groups"))] == ["pre_production"]
    refused = tenant.post(
        f"{API}/products/{product}/groups", json={"name": unique("g"), "kind": "preproduction"}
    )
    assert_problem(refused, 422)


def test_the_openapi_document_lists_the_pre_production_kind(tenant: Tenant) -> None:
    schemas = ok(tenant.get("/openapi.json"))["components"]["schemas"]
    assert "pre_production" in schemas["GroupKind"]["enum"]
    assert {"name", "metadata_fields", "requires_blessing"} <= set(schemas["ProductPatchIn"]["properties"])


def test_a_pre_production_group_runs_application_firmware_and_may_wait_for_activation(
    application: Application, tenant: Tenant, client: Any
) -> None:
    product = tenant.product()["id"]
    factory, trial, bench = (
        group(tenant, product, kind)["id"] for kind in ("factory", "pre_production", "development")
    )
    line_firmware, trial_firmware = (
        release(tenant, product, kind="factory", version="0.9-line"),
        release(tenant, product, version="2.0-rc"),
    )
    wrong = assert_problem(deploy(tenant, trial, line_firmware["id"]), 409)["detail"]
    assert "is a pre-production group" in wrong
    wrong = assert_problem(deploy(tenant, factory, trial_firmware["id"]), 409)["detail"]
    assert "deploys only to development, pre-production or production groups" in wrong
    deployed(tenant, factory, line_firmware["id"])
    deployed(tenant, trial, trial_firmware["id"])

    assert ok(set_after(tenant, trial, "activation"))["application_firmware_after"] == "activation"
    assert "pre-production" in assert_problem(set_after(tenant, bench, "activation"), 409)["detail"]
    blessed = member(application, tenant, product, trial, state=DeviceState.BLESSED)
    activated = member(application, tenant, product, trial, state=DeviceState.ACTIVATED)
    assert running(client, blessed) == "0.9-line"
    assert running(client, activated) == "2.0-rc"
