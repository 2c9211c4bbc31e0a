"""``lineside org`` and ``lineside keys``."""

from __future__ import annotations

from typing import Any

import click

from lineside.domain.models import Scope
from lineside.entrypoints.cli.common import as_operator, echo_json, opened_application, run_reporting_errors
from lineside.entrypoints.cli.groups import Group
from lineside.services import organizations as service
from lineside.services.quotas import set_device_quota

SCOPES = click.Choice([scope.value for scope in Scope])


@click.group(cls=Group)
def org() -> None:
    """Organizations."""


@org.command("create")
@click.argument("name")
@click.option("--parent", "parent_id", help="Make it a sub-organization of this one.")
@click.option("--json", "as_json", is_flag=True, help="Print {id, api_key} as JSON.")
def org_create(name: str, parent_id: str | None, as_json: bool) -> None:
    """Create an organization and its first admin API key (shown once)."""
    with opened_application() as app:
        ctx = app.services

        def create() -> service.CreatedOrganization:
            parent = service.operator_principal(ctx, parent_id) if parent_id else None
            return service.create_organization(ctx, name, parent=parent)

        created = run_reporting_errors(create)
    organization = created.organization
    if as_json:
        echo_json({"id": organization.id, "name": organization.name, "api_key": created.admin_key.secret})
        return
    click.echo(f"organization {organization.id} ({organization.name})")
    click.echo(f"admin API key (shown once, keep it safe): {created.admin_key.secret}")


@org.command("list")
@click.option("--json", "as_json", is_flag=True)
def org_list(as_json: bool) -> None:
    """Every organization, parents before their children."""
    found = as_operator(service.list_organizations)
    if as_json:
        echo_json([{"id": o.id, "name": o.name, "parent_id": o.parent_id} for o in found])
        return
    for organization in found:
        depth = organization.path.count("/") - 2
        click.echo(f"{'  ' * depth}{organization.id}  {organization.name}")


@org.command("quota")
@click.argument("organization_id")
@click.argument("quota", required=False, type=click.IntRange(min=0))
def org_quota(organization_id: str, quota: int | None) -> None:
    """Set how many devices ORGANIZATION_ID may define (no QUOTA: back to the default)."""
    with opened_application() as app:
        ctx = app.services
        run_reporting_errors(lambda: set_device_quota(ctx, organization_id, quota))
    click.echo(f"quota of {organization_id}: {quota if quota is not None else 'installation default'}")


@click.group(cls=Group)
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--org", "organization_id", required=True, help="Organization id.")
@click.option("--name", default="cli key", show_default=True)
@click.option("--scope", "scopes", type=SCOPES, multiple=True, required=True, help="Repeatable.")
@click.option("--json", "as_json", is_flag=True)
def keys_create(organization_id: str, name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create an API key (shown once)."""
    with opened_application() as app:
        ctx = app.services
        created = run_reporting_errors(
            lambda: service.create_api_key(
                ctx,
                service.operator_principal(ctx, organization_id),
                name=name,
                scopes=frozenset(Scope(s) for s in scopes),
            )
        )
    if as_json:
        echo_json({"id": created.key.id, "api_key": created.secret, "scopes": sorted(scopes)})
        return
    click.echo(f"API key {created.key.id} (shown once, keep it safe): {created.secret}")


@keys.command("list")
@click.option("--org", "organization_id", required=True)
@click.option("--json", "as_json", is_flag=True)
def keys_list(organization_id: str, as_json: bool) -> None:
    """API keys of an organization and its sub-organizations (never the secrets)."""
    with opened_application() as app:
        ctx = app.services
        found = run_reporting_errors(
            lambda: service.list_api_keys(ctx, service.operator_principal(ctx, organization_id))
        )
    rows: list[dict[str, Any]] = [
        {
            "id": k.id,
            "name": k.name,
            "prefix": k.prefix,
            "scopes": sorted(k.scopes),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in found
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        status = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        click.echo(f"{row['id']}  {row['prefix']}…  {','.join(row['scopes'])}  {row['name']}  {status}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key at once."""
    as_operator(lambda ctx, me: service.revoke_api_key(ctx, me, key_id))
    click.echo(f"revoked {key_id}")
