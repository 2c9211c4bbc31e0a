"""The service tier: use cases called directly, on the in-memory fakes of ``tests/fakes.py``.

No database, no server, no sockets: each test builds its own world in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lineside.domain.metadata import MetadataField
from lineside.domain.models import EnrollmentPolicy, Principal, Product, Scope
from lineside.services import organizations, people, products
from lineside.services.context import ServiceContext
from lineside.services.organizations import authenticate_api_key
from tests.fakes import FakeDatabase, SteppingClock, fake_services


@dataclass
class World:
    services: ServiceContext
    database: FakeDatabase
    clock: SteppingClock


@dataclass
class Maker:
    """An organization and its admin, as a service test acts for them."""

    world: World
    admin: Principal

    @property
    def services(self) -> ServiceContext:
        return self.world.services

    def key(self, scope: Scope) -> Principal:
        created = organizations.create_api_key(
            self.services, self.admin, name=f"{scope.value} key", scopes=frozenset({scope})
        )
        return authenticate_api_key(self.services, created.secret)

    def product(
        self,
        name: str = "Sensor",
        *,
        fields: list[MetadataField] | None = None,
        policy: EnrollmentPolicy = EnrollmentPolicy.CREATE,
        requires_blessing: bool = False,
    ) -> Product:
        return products.create_product(
            self.services,
            self.admin,
            name=name,
            fields=fields or [],
            enrollment_policy=policy,
            requires_blessing=requires_blessing,
        )


@pytest.fixture
def world() -> World:
    clock = SteppingClock()
    services, database = fake_services(clock=clock)
    return World(services, database, clock)


def new_maker(world: World, name: str = "Acme") -> Maker:
    created = organizations.create_organization(world.services, name)
    return Maker(world, authenticate_api_key(world.services, created.admin_key.secret))


@pytest.fixture
def maker(world: World) -> Maker:
    return new_maker(world)


@pytest.fixture
def rival(world: World) -> Maker:
    """Another organization on the same installation: it must never see the maker's things."""
    return new_maker(world, "Rival")


def owner_of(world: World, email: str = "owner@example.com") -> Principal:
    """A person who bought a device: signed up, signed in, acting for their own organization."""
    people.sign_up(world.services, email, "a long enough password", client_address="198.51.100.7")
    signed_in = people.sign_in(world.services, email, "a long enough password", client_address="198.51.100.7")
    return people.authenticate_user_token(world.services, signed_in.token)


@pytest.fixture
def owner(world: World) -> Principal:
    return owner_of(world)
