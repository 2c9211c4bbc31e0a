"""``lineside provisioning``: a product's MQTT provisioning key and secret, and re-opening a
provisioned device (see docs/mqtt-provisioning.md)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from lineside.entrypoints.cli.common import as_operator, echo_json, staged_output
from lineside.entrypoints.cli.groups import Group
from lineside.services import product_provisioning
from lineside.services.product_provisioning import ProvisioningSettings


@click.group(cls=Group)
def provisioning() -> None:
    """MQTT provisioning (ThingsBoard-compatible) of a product's devices."""


def _shown(settings: ProvisioningSettings) -> dict[str, Any]:
    shown = asdict(settings)
    shown["policy"] = settings.policy.value
    if settings.provision_secret is None:
        del shown["provision_secret"]
    return shown


@provisioning.command("enable")
@click.argument("product_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the key and secret as JSON here (mode 0600) instead of printing the secret.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def provisioning_enable(product_id: str, out: Path | None, force: bool) -> None:
    """Enable provisioning with a new secret, or rotate it; shows the secret once."""
    with staged_output(out, force) as staged:

        def keep_secret(configured: ProvisioningSettings) -> None:
            if staged is not None:
                staged.write_and_sync(json.dumps(_shown(configured), indent=2).encode() + b"\n")

        settings = as_operator(
            lambda ctx, me: product_provisioning.configure_provisioning(ctx, me, product_id, keep_secret)
        )
        if staged is not None:
            staged.publish()
    if out is None:
        echo_json(_shown(settings))
        return
    click.echo(f"provisioning of product {product_id} enabled; key and secret written to {out}")


@provisioning.command("show")
@click.argument("product_id")
def provisioning_show(product_id: str) -> None:
    """The product's provision key, whether provisioning is enabled, and its policy."""
    settings = as_operator(lambda ctx, me: product_provisioning.get_provisioning(ctx, me, product_id))
    echo_json(_shown(settings))


@provisioning.command("disable")
@click.argument("product_id")
def provisioning_disable(product_id: str) -> None:
    """Forget the secret: every request with it fails from now on."""
    as_operator(lambda ctx, me: product_provisioning.disable_provisioning(ctx, me, product_id))
    click.echo(f"Provisioning of product {product_id} is disabled.")


@provisioning.command("reprovision")
@click.argument("device_id")
def provisioning_reprovision(device_id: str) -> None:
    """Let a provisioned device provision once more; revokes every credential it holds."""
    as_operator(lambda ctx, me: product_provisioning.allow_reprovisioning(ctx, me, device_id))
    click.echo(f"Device {device_id} may provision once more; its credentials are revoked.")
