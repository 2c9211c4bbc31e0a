"""Offline factory stations, the server's side: delegate a product's line to a station (a
budget, a window, the factory token its fixtures use), list them, revoke one.

A station is given a bundle once: its Ed25519 signing key (for its ledger), a CA of its own
for certificate devices (registered here as a verified CA of the product, so its devices
register themselves on first connection), and the line's secrets it must check offline (the
enrollment token and the fixtures' API key, which it stores only as hashes under its own key).
The server keeps the verify key and the CA certificate.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from lineside.domain.errors import Conflict, InvalidInput, Unauthenticated
from lineside.domain.events import EventType, new_event
from lineside.domain.identifiers import new_id
from lineside.domain.models import (
    AuthorityStatus,
    CertificateAuthorityRecord,
    EnrollmentPolicy,
    Principal,
    Product,
    Scope,
)
from lineside.domain.secret_tokens import SecretKind, generate_secret
from lineside.domain.stations import MAX_BUDGET, MAX_POOL, MAX_WINDOW_DAYS, PoolEntry, Station, genesis_hash
from lineside.domain.text import has_control_characters
from lineside.services.authentication import authenticate_caller
from lineside.services.authorities import authority_record
from lineside.services.context import ServiceContext, not_found, require
from lineside.services.factory_tokens import authenticate_factory_token
from lineside.services.lookups import load_product
from lineside.services.ports import StationCredentials, UnitOfWork

log = logging.getLogger("lineside.stations")
BUNDLE_FORMAT = "lineside-station/1"
MIN_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class StationRequest:
    name: str
    budget: int
    valid_days: float
    enrollment_token: str  # the secret the line's fixtures send: names the factory token
    fixture_api_key: str  # the factory-scoped key the fixtures send (and the station syncs with)
    token_pool: bool = False  # also a pool of device ids with tokens, one per unit of the budget


@dataclass(frozen=True)
class CreatedStation:
    station: Station
    bundle: dict[str, Any]  # shown once: it holds the station's keys and the line's secrets


def create_station(
    ctx: ServiceContext, principal: Principal, product_id: str, request: StationRequest
) -> CreatedStation:
    require(principal, Scope.ADMIN)
    _check_request(request)
    fixtures = _fixture_principal(ctx, principal, request.fixture_api_key)
    now = ctx.clock()
    not_after = now + timedelta(days=request.valid_days)
    with ctx.unit_of_work() as uow:
        product = load_product(uow, principal, product_id)
        token = _served_token(ctx, uow, product, request.enrollment_token)
        station_id = new_id()
        keys = ctx.station_keys.new_credentials(product.id, request.name, now, not_after)
        authority = _station_authority(ctx, product, station_id, keys, now)
        uow.authorities.add(authority, "", now)
        station = Station(
            id=station_id,
            organization_id=product.organization_id,
            product_id=product.id,
            factory_token_id=token.id,
            name=request.name.strip(),
            budget=request.budget,
            not_before=now,
            not_after=not_after,
            verify_key_pem=keys.verify_key_pem,
            authority_id=authority.id,
            created_at=now,
            created_by=principal.actor,
            head_hash=genesis_hash(station_id),
            pool_size=request.budget if request.token_pool else 0,
        )
        uow.stations.add(station)
        pool = _token_pool(ctx, station) if request.token_pool else []
        uow.stations.add_pool([entry for entry, _token in pool])
        uow.events.add(
            _event(EventType.STATION_CREATED, station, principal.actor, now, budget=station.budget)
        )
        organization = uow.organizations.get(product.organization_id, within="/")
        groups = uow.groups.list_for_product(product.id)
        uow.commit()
    assert organization is not None
    log.info("station %s created for product %s (budget %d)", station.id, product.id, station.budget)
    bundle = {
        "format": BUNDLE_FORMAT,
        "server_url": ctx.config.public_url,
        "station": _plain(station),
        "organization": {"id": organization.id, "name": organization.name},
        "product": _plain(product),
        "groups": [_plain(group) for group in groups],
        "factory_token": _plain(token),
        "fixtures": {"api_key_id": fixtures.actor.removeprefix("api_key:")},
        "certificate_authority_pem": keys.ca_certificate_pem,
        "secrets": {
            "enrollment_token": request.enrollment_token,
            "fixture_api_key": request.fixture_api_key,
            "signing_key_pem": keys.signing_key_pem,
            "ca_key_pem": keys.ca_key_pem,
        },
    }
    if pool:  # the tokens of its pool (the server kept their hashes)
        bundle["secrets"]["pool"] = [[entry.device_id, token] for entry, token in pool]
    return CreatedStation(station, bundle)


def _token_pool(ctx: ServiceContext, station: Station) -> list[tuple[PoolEntry, str]]:
    """One device id and token per unit of the budget: the server keeps each token's keyed
    hash (so the device authenticates before its station syncs), the bundle the token."""
    pool = []
    for position in range(station.budget):
        token = generate_secret(SecretKind.DEVICE_TOKEN)
        pool.append((PoolEntry(new_id(), station.id, position, ctx.hasher.hash(token)), token))
    return pool


def _check_request(request: StationRequest) -> None:
    name = request.name.strip()
    if not name or len(name) > 200 or has_control_characters(name):
        raise InvalidInput("name must be 1 to 200 characters on one line.")
    if not 1 <= request.budget <= MAX_BUDGET:
        raise InvalidInput(f"budget must be between 1 and {MAX_BUDGET:,} devices.")
    if not MIN_WINDOW <= timedelta(days=request.valid_days) <= timedelta(days=MAX_WINDOW_DAYS):
        raise InvalidInput(f"valid_days must be between one minute and {MAX_WINDOW_DAYS} days.")
    if request.token_pool and request.budget > MAX_POOL:
        raise InvalidInput(
            f"A station with a token pool may make at most {MAX_POOL:,} devices "
            "(its bundle holds each token)."
        )


def _fixture_principal(ctx: ServiceContext, principal: Principal, api_key: str) -> Principal:
    """The fixtures' key: an API key (not a person's sign-in) of this organization that may
    run the line; the station checks it offline, so it must be one a station can hold."""
    try:
        fixtures = authenticate_caller(ctx, api_key)
    except Unauthenticated:
        raise InvalidInput("fixture_api_key is not a live Lineside API key.") from None
    if not fixtures.actor.startswith("api_key:"):
        raise InvalidInput("fixture_api_key must be an API key (lsk_...), not a sign-in token.")
    if fixtures.organization.id != principal.organization.id or not fixtures.can(Scope.FACTORY):
        raise InvalidInput("fixture_api_key must be a key of this organization with the factory scope.")
    if fixtures.can(Scope.ADMIN):  # the bundle lives on a factory PC: it must not run the org
        raise InvalidInput(
            "fixture_api_key is an admin key, and the bundle goes to the factory: give the fixtures a key "
            "with the factory scope only (POST /api/v1/api-keys)."
        )
    return fixtures


def _served_token(ctx: ServiceContext, uow: UnitOfWork, product: Product, secret: str) -> Any:
    if product.enrollment_policy is EnrollmentPolicy.PREDEFINED:
        raise Conflict(
            "A station makes devices for the units its line enrolls; this product admits only devices "
            "defined beforehand (enrollment policy 'predefined'), which a station cannot see offline."
        )
    try:
        token, token_product = authenticate_factory_token(ctx, uow, secret)
    except Unauthenticated as refused:
        raise InvalidInput(f"enrollment_token: {refused.detail}") from None
    if token_product.id != product.id:
        raise InvalidInput("enrollment_token is a factory token of another product.")
    return token


def _station_authority(
    ctx: ServiceContext, product: Product, station_id: str, keys: StationCredentials, now: datetime
) -> CertificateAuthorityRecord:
    facts = ctx.x509.read_authority(keys.ca_certificate_pem)
    # Verified at once: the server made its key, so possession is not in doubt.
    return authority_record(product, facts, now, AuthorityStatus.VERIFIED, station_id=station_id)


def _plain(value: Any) -> Any:
    """A dataclass as JSON-ready values (datetimes as ISO 8601, enums as their values)."""
    return _jsonable(asdict(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _event(event_type: EventType, station: Station, actor: str, at: datetime, **data: object) -> Any:
    return new_event(event_type, station, actor=actor, at=at, product_id=station.product_id, **data)


def list_stations(ctx: ServiceContext, principal: Principal, product_id: str | None = None) -> list[Station]:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return uow.stations.list(within=principal.organization.path, product_id=product_id)


def get_station(ctx: ServiceContext, principal: Principal, station_id: str) -> Station:
    require(principal, Scope.READ)
    with ctx.unit_of_work(write=False) as uow:
        return load_station(uow, principal, station_id)


def load_station(uow: UnitOfWork, principal: Principal, station_id: str) -> Station:
    station = uow.stations.get(station_id, within=principal.organization.path)
    if station is None:
        raise not_found("station", station_id)
    return station


def revoke_station(
    ctx: ServiceContext, principal: Principal, station_id: str, as_of: datetime | None = None
) -> Station:
    """From ``as_of`` (now by default): no entry dated after it is replayed, and its CA
    registers no new device (the devices its synced ledger named before it keep working).

    A station's key can date an entry as it likes within its window, so when the key may have
    leaked earlier, revoke as of the last moment the station was trusted (its last good sync):
    entries dated after that are refused too. Revoking again can move the time earlier only.
    """
    require(principal, Scope.ADMIN)
    now = ctx.clock()
    at = now if as_of is None else as_of
    with ctx.unit_of_work() as uow:
        station = load_station(uow, principal, station_id)
        if not station.not_before <= at <= now:
            raise InvalidInput("as_of must lie between the station's creation and now.")
        if station.revoked_at is not None and station.revoked_at <= at:
            return station
        uow.stations.revoke(station.id, at)
        if station.authority_id is not None:
            uow.authorities.close_registration(station.authority_id, at)
        uow.events.add(_event(EventType.STATION_REVOKED, station, principal.actor, now, as_of=at.isoformat()))
        uow.commit()
    log.warning("station %s revoked by %s as of %s", station.id, principal.actor, at.isoformat())
    return load_revoked(station, at)


def load_revoked(station: Station, at: datetime) -> Station:
    return Station(**{**station.__dict__, "revoked_at": at})
