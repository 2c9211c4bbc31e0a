"""A station's bundle (``services.stations.create_station`` wrote it): read, checked, and
turned into what the station's line and its database seed need.

The bundle holds the station's signing key, its CA's key and the line's secrets, so a file
anyone else may read is refused, as ssh refuses a private key others can read.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lineside.domain.factory import FactoryToken
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import (
    ApiKey,
    ApplicationFirmwareAfter,
    DeviceGroup,
    EnrollmentPolicy,
    GroupKind,
    Organization,
    Product,
    RegistrationIdentity,
    RegistrationPolicy,
    Scope,
)
from lineside.domain.secret_tokens import display_prefix
from lineside.services.station_line import StationPost
from lineside.services.station_local import StationSeed
from lineside.services.stations import BUNDLE_FORMAT

PRIVATE_MODE_BITS = stat.S_IRWXG | stat.S_IRWXO


class BundleProblem(Exception):
    """The bundle cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class StationBundle:
    path: Path
    server_url: str
    station_id: str
    station_name: str
    organization_id: str
    product_id: str
    fixture_api_key: str
    ca_certificate_pem: str
    ca_key_pem: str
    post: StationPost
    seed: StationSeed

    def default_data_dir(self) -> Path:
        return self.path.with_name(self.path.name + ".station")


def read_bundle(path: Path) -> StationBundle:
    return bundle_of(path, _document(path))


def bundle_of(path: Path, document: dict[str, Any]) -> StationBundle:
    """The bundle ``document`` (as ``POST .../stations`` answered it), kept at ``path``."""
    try:
        return _bundle(path, document)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BundleProblem(f"{path} is not a complete station bundle ({_what(error)}).") from None


def _document(path: Path) -> dict[str, Any]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BundleProblem(f"{path} cannot be read: {error.strerror}.") from None
    if mode & PRIVATE_MODE_BITS:
        raise BundleProblem(
            f"{path} holds the station's keys but others may read it (mode {stat.S_IMODE(mode):04o}): "
            f"run `chmod 600 {path}`."
        )
    try:
        document = json.loads(text)
    except ValueError:
        raise BundleProblem(
            f"{path} is not JSON: is it the bundle `lineside station create` wrote?"
        ) from None
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        raise BundleProblem(f"{path} is not a station bundle (its format is not {BUNDLE_FORMAT}).")
    return document


def _what(error: Exception) -> str:
    return f"missing {error}" if isinstance(error, KeyError) else str(error)


def _bundle(path: Path, document: dict[str, Any]) -> StationBundle:
    station, secrets = document["station"], document["secrets"]
    product = _product(document["product"])
    post = StationPost(
        station_id=station["id"],
        product_id=product.id,
        budget=int(station["budget"]),
        not_before=_time(station["not_before"]),
        not_after=_time(station["not_after"]),
        signing_key_pem=secrets["signing_key_pem"],
        pool_tokens=dict(_pool(secrets)),
    )
    return StationBundle(
        path=path,
        server_url=str(document["server_url"]).rstrip("/"),
        station_id=station["id"],
        station_name=station["name"],
        organization_id=product.organization_id,
        product_id=product.id,
        fixture_api_key=secrets["fixture_api_key"],
        ca_certificate_pem=document["certificate_authority_pem"],
        ca_key_pem=secrets["ca_key_pem"],
        post=post,
        seed=_seed(document, product, post),
    )


def _seed(document: dict[str, Any], product: Product, post: StationPost) -> StationSeed:
    secrets, created_at = document["secrets"], _time(document["station"]["created_at"])
    organization_id = document["organization"]["id"]
    organization = Organization(
        id=organization_id,
        name=document["organization"]["name"],
        parent_id=None,
        path=f"/{organization_id}/",
        created_at=created_at,
        # The budget is the limit here (station_line checks it once the unit is made), so
        # the installation's quota must not refuse the unit first.
        device_quota=post.budget + 1,
    )
    token = document["factory_token"]
    fixture_key = ApiKey(
        id=document["fixtures"]["api_key_id"],
        organization_id=organization_id,
        name="fixtures (from the station bundle)",
        scopes=frozenset({Scope.FACTORY}),
        prefix=display_prefix(secrets["fixture_api_key"]),
        created_at=created_at,
    )
    return StationSeed(
        organization=organization,
        product=product,
        groups=[_group(group) for group in document["groups"]],
        factory_token=FactoryToken(
            id=token["id"],
            organization_id=token["organization_id"],
            product_id=token["product_id"],
            name=token["name"],
            prefix=token["prefix"],
            created_by=token["created_by"],
            created_at=_time(token["created_at"]),
        ),
        enrollment_token=secrets["enrollment_token"],
        fixture_key=fixture_key,
        fixture_api_key=secrets["fixture_api_key"],
        pool=_pool(secrets),
    )


def _pool(secrets: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(device_id), str(token)) for device_id, token in secrets.get("pool", [])]


def _product(fields: dict[str, Any]) -> Product:
    return Product(
        id=fields["id"],
        organization_id=fields["organization_id"],
        name=fields["name"],
        metadata_fields=[
            MetadataField(item["name"], FieldType(item["type"]), bool(item.get("required", False)))
            for item in fields["metadata_fields"]
        ],
        created_at=_time(fields["created_at"]),
        enrollment_policy=EnrollmentPolicy(fields["enrollment_policy"]),
        requires_blessing=bool(fields["requires_blessing"]),
        provision_key=fields.get("provision_key"),
        registration_policy=RegistrationPolicy(fields["registration_policy"]),
        registration_identity=RegistrationIdentity(fields["registration_identity"]),
        reregistration=bool(fields["reregistration"]),
    )


def _group(fields: dict[str, Any]) -> DeviceGroup:
    return DeviceGroup(
        id=fields["id"],
        organization_id=fields["organization_id"],
        product_id=fields["product_id"],
        name=fields["name"],
        kind=GroupKind(fields["kind"]),
        created_at=_time(fields["created_at"]),
        application_firmware_after=ApplicationFirmwareAfter(fields["application_firmware_after"]),
        release_id=None,  # the station holds no firmware: the server deploys it
    )


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} names no time zone")
    return moment
