"""``lineside ca``: a product's own certificate authorities (factory PKI), over HTTP with an
admin API key, like ``lineside factory`` (docs/factory-pki.md walks through it).

Exit codes:

    0   done
    1   the server refused, or could not be reached (one line on stderr says why)
    2   bad usage, or no API key
    65  a file given is not the PEM it should be (a certificate, a CRL)
    74  a file given cannot be read
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lineside.domain.models import RegistrationIdentity, RegistrationPolicy
from lineside.entrypoints.cli.authorities_client import AuthorityClient
from lineside.entrypoints.cli.common import echo_json
from lineside.entrypoints.cli.factory_client import FactoryClientError, MissingApiKey
from lineside.entrypoints.cli.factory_options import NoApiKey, Refused, json_option, server_option
from lineside.entrypoints.cli.groups import Group

EXIT_NOT_PEM = 65  # sysexits' EX_DATAERR
EXIT_CANNOT_READ = 74  # sysexits' EX_IOERR, as for the other commands' files

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class NotPem(click.ClickException):
    exit_code = EXIT_NOT_PEM


class CannotRead(click.ClickException):
    exit_code = EXIT_CANNOT_READ


def admin_options(command: F) -> F:
    """--server and --api-key (an admin key; a read key lists and shows)."""
    command = click.option(
        "--api-key",
        envvar="LINESIDE_API_KEY",
        show_envvar=True,
        help="An admin API key (better in the environment than on the command line).",
    )(command)
    return server_option(command)


def call(server: str, api_key: str | None, action: Callable[[AuthorityClient], T]) -> T:
    """``action`` on a client of ``server``; its errors become one line and an exit code."""
    try:
        with AuthorityClient(server, api_key) as api:
            return action(api)
    except MissingApiKey as error:
        raise NoApiKey(error.message) from None
    except FactoryClientError as error:
        raise Refused(error.message) from None


PEM_KINDS = {"CERTIFICATE": ("certificate", "x509"), "X509 CRL": ("certificate revocation list", "crl")}


def read_pem(path: Path, label: str) -> str:
    """The file's text if it holds a PEM block of ``label``; one line and 74 or 65 if not."""
    what, tool = PEM_KINDS[label]
    try:
        text = path.read_text(encoding="ascii")
    except OSError as error:
        raise CannotRead(f"{path} cannot be read: {error.strerror or error}.") from None
    except UnicodeDecodeError:
        converted = f"openssl {tool} -inform DER -in {shlex.quote(str(path))} -out file.pem"
        raise NotPem(f"{path} is not a PEM {what} (binary: if it is DER, convert it: {converted}).") from None
    if f"-----BEGIN {label}-----" not in text:
        raise NotPem(f"{path} is not a PEM {what} (no '-----BEGIN {label}-----' line).")
    return text


PemFile = click.Path(path_type=Path)  # read by read_pem: its errors are one line


@click.group(cls=Group)
def ca() -> None:
    """A product's own certificate authorities (factory PKI): register, verify, disable, CRL."""


@ca.command("register")
@click.option("--product", "product_id", required=True, help="The product whose devices the CA signs.")
@click.option(
    "--certificate", type=PemFile, required=True, help="The CA's certificate (root or intermediate), PEM."
)
@json_option
@admin_options
def register(product_id: str, certificate: Path, as_json: bool, server: str, api_key: str | None) -> None:
    """Register a CA for a product: prints its id and the one-time challenge to sign with its key."""
    pem = read_pem(certificate, "CERTIFICATE")
    made = call(server, api_key, lambda api: api.register(product_id, pem))
    if as_json:
        echo_json(made)
        return
    authority_id, challenge = made.get("id"), made.get("challenge")
    click.echo(
        f"certificate authority {authority_id} ({made.get('subject')}) for product {made.get('product_id')}"
    )
    click.echo(f"status: {made.get('status')}; it trusts no device until you prove you hold its key")
    click.echo(f"challenge (shown once, answer by {made.get('challenge_expires_at')}): {challenge}")
    click.echo("Sign a certificate whose subject CN is the challenge with the CA's key, and send it back:")
    key = shlex.quote(str(certificate.with_suffix(".key")))
    for line in (
        "openssl ecparam -name prime256v1 -genkey -noout -out verify.key",
        f"openssl req -new -key verify.key -subj {shlex.quote(f'/CN={challenge}')} -out verify.csr",
        f"openssl x509 -req -in verify.csr -CA {shlex.quote(str(certificate))} -CAkey {key} "
        "-days 1 -out verify.pem",
        f"lineside ca verify {authority_id} --answer verify.pem",
    ):
        click.echo(f"  {line}")


@ca.command("verify")
@click.argument("authority_id")
@click.option(
    "--answer",
    type=PemFile,
    required=True,
    help="The verification certificate: subject CN = the challenge, signed by the CA's key.",
)
@json_option
@admin_options
def verify(authority_id: str, answer: Path, as_json: bool, server: str, api_key: str | None) -> None:
    """Prove possession of the CA's key: from then on, devices it signed may register."""
    pem = read_pem(answer, "CERTIFICATE")
    verified = call(server, api_key, lambda api: api.verify(authority_id, pem))
    if as_json:
        echo_json(verified)
        return
    click.echo(
        f"certificate authority {authority_id} {verified.get('status')}: devices it signed may register"
    )


@ca.command("list")
@click.option("--product", "product_id", required=True, help="The product.")
@json_option
@admin_options
def list_authorities(product_id: str, as_json: bool, server: str, api_key: str | None) -> None:
    """The product's CAs: id, status, expiry and subject."""
    found = call(server, api_key, lambda api: api.list(product_id))
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo(f"product {product_id} has no certificate authorities")
        return
    rows = [("ID", "STATUS", "EXPIRES", "SUBJECT")]
    rows += [
        (str(a.get("id")), str(a.get("status")), str(a.get("not_after", ""))[:10], str(a.get("subject")))
        for a in found
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        click.echo(
            "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]])
        )


@ca.command("show")
@click.argument("authority_id")
@admin_options
def show(authority_id: str, server: str, api_key: str | None) -> None:
    """One CA, as JSON."""
    echo_json(call(server, api_key, lambda api: api.get(authority_id)))


@ca.command("disable")
@click.argument("authority_id")
@json_option
@admin_options
def disable(authority_id: str, as_json: bool, server: str, api_key: str | None) -> None:
    """Refuse the CA's devices at once (live MQTT sessions end at the broker's next check)."""
    _switched(call(server, api_key, lambda api: api.disable(authority_id)), as_json)


@ca.command("enable")
@click.argument("authority_id")
@json_option
@admin_options
def enable(authority_id: str, as_json: bool, server: str, api_key: str | None) -> None:
    """Trust a disabled CA's devices again."""
    _switched(call(server, api_key, lambda api: api.enable(authority_id)), as_json)


def _switched(authority: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(authority)
    else:
        click.echo(f"certificate authority {authority.get('id')} {authority.get('status')}")


@ca.command("delete")
@click.argument("authority_id")
@admin_options
def delete(authority_id: str, server: str, api_key: str | None) -> None:
    """Delete a CA: the devices it registered stay, but its certificates stop connecting."""
    call(server, api_key, lambda api: api.delete(authority_id))
    click.echo(f"deleted certificate authority {authority_id}")


@ca.command("crl")
@click.argument("authority_id")
@click.option("--crl", "crl_file", type=PemFile, required=True, help="The CA's CRL, PEM, signed by it.")
@json_option
@admin_options
def crl(authority_id: str, crl_file: Path, as_json: bool, server: str, api_key: str | None) -> None:
    """Load the CA's revocation list (it replaces the last): listed devices are cut off."""
    pem = read_pem(crl_file, "X509 CRL")
    loaded = call(server, api_key, lambda api: api.load_crl(authority_id, pem))
    if as_json:
        echo_json(loaded)
        return
    serials, revoked = loaded.get("serials"), loaded.get("certificates_revoked")
    click.echo(
        f"CRL of {authority_id} loaded: {serials} serial{'' if serials == 1 else 's'} refused, "
        f"{revoked} registered device{'' if revoked == 1 else 's'} cut off"
    )


@ca.command("policy")
@click.option("--product", "product_id", required=True, help="The product.")
@click.option(
    "--policy",
    type=click.Choice([p.value for p in RegistrationPolicy]),
    required=True,
    help="open: any device its CAs signed; allow_list: only serials defined first; "
    "approval: held until approved.",
)
@click.option(
    "--identity",
    type=click.Choice([i.value for i in RegistrationIdentity]),
    default=RegistrationIdentity.COMMON_NAME.value,
    show_default=True,
    help="Where the certificate names the device: its subject CN, or the first URI of its SAN.",
)
@click.option(
    "--reregistration/--no-reregistration",
    default=False,
    show_default=True,
    help="Whether a known device may come back with a different certificate.",
)
@json_option
@admin_options
def policy(
    product_id: str,
    policy: str,
    identity: str,
    reregistration: bool,
    as_json: bool,
    server: str,
    api_key: str | None,
) -> None:
    """Set which devices the product's CAs register on first connection, and how."""
    settings = call(
        server,
        api_key,
        lambda api: api.set_registration(
            product_id, policy=policy, identity=identity, reregistration=reregistration
        ),
    )
    if as_json:
        echo_json(settings)
        return
    again = "allowed" if settings.get("reregistration") else "refused"
    click.echo(
        f"product {product_id}: registration {settings.get('policy')}, "
        f"identity {settings.get('identity')}, another certificate for a known device {again}"
    )


@ca.command("approve")
@click.argument("device_id")
@json_option
@admin_options
def approve(device_id: str, as_json: bool, server: str, api_key: str | None) -> None:
    """Approve a device held as pending_approval: it may connect from now on."""
    device = call(server, api_key, lambda api: api.approve(device_id))
    if as_json:
        echo_json(device)
        return
    click.echo(f"device {device_id} approved: {device.get('state')}")
