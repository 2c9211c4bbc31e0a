"""SQL repositories of organizations, API keys, products, device groups and events."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, RowMapping, Select, and_, any_, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from lineside.adapters.db import tables as t
from lineside.adapters.db.bulk_insert import bind_processor, insert_rows
from lineside.adapters.db.pages import MAX_BRANCH_ORGANIZATIONS, Branch, branch_page, subtree_ids
from lineside.adapters.db.paging import paged
from lineside.domain.events import DomainEvent
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import (
    ApiKey,
    ApplicationFirmwareAfter,
    DeviceGroup,
    EnrollmentPolicy,
    GroupKind,
    Organization,
    OrganizationKind,
    Product,
    RegistrationIdentity,
    RegistrationPolicy,
    Scope,
)
from lineside.services.ports import EventFilter, Page


def organization_ids_within(path: str | ColumnElement[str]) -> Select[Any]:
    """The ids of the organization at ``path`` and every organization below it (``path`` may
    be a bound parameter, for statements built once)."""
    return select(t.organizations.c.id).where(t.organizations.c.path.startswith(path))


def owned_within(column: ColumnElement[Any], path: str | ColumnElement[str]) -> ColumnElement[bool]:
    return column.in_(organization_ids_within(path))


class SqlRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def _all(self, query: Select[Any]) -> list[Row[Any]]:
        return list(self.connection.execute(query).all())

    def _first(self, query: Select[Any]) -> Row[Any] | None:
        return self.connection.execute(query).first()

    def _one_of(self, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
        """``column IN values``. On PostgreSQL as ``= ANY`` of one bound array: the statement is
        the same text however many values, where an IN list of a new length is compiled by
        SQLAlchemy and parsed by psycopg afresh (most of a station chunk's read time). An IN
        list on SQLite (callers keep it under its bound-parameter limit)."""
        unique = sorted(set(values))
        if self.connection.dialect.name == "postgresql":
            return column == any_(bindparam(None, unique, type_=ARRAY(column.type)))
        return column.in_(unique)


def organization_from_row(row: Row[Any]) -> Organization:
    m = row._mapping
    return Organization(
        id=m["id"],
        name=m["name"],
        parent_id=m["parent_id"],
        path=m["path"],
        created_at=m["created_at"],
        kind=OrganizationKind(m["kind"]),
        device_quota=m["device_quota"],
    )


class SqlOrganizationRepository(SqlRepository):
    def add(self, organization: Organization) -> None:
        self.connection.execute(
            insert(t.organizations).values(
                id=organization.id,
                name=organization.name,
                parent_id=organization.parent_id,
                path=organization.path,
                created_at=organization.created_at,
                kind=organization.kind.value,
                device_quota=organization.device_quota,
            )
        )

    def get(self, organization_id: str, *, within: str) -> Organization | None:
        row = self._first(
            select(t.organizations).where(
                t.organizations.c.id == organization_id, t.organizations.c.path.startswith(within)
            )
        )
        return organization_from_row(row) if row else None

    def set_device_quota(self, organization_id: str, quota: int | None) -> None:
        self.connection.execute(
            update(t.organizations).where(t.organizations.c.id == organization_id).values(device_quota=quota)
        )

    def list(self, *, within: str) -> list[Organization]:
        query = select(t.organizations).where(t.organizations.c.path.startswith(within))
        return [organization_from_row(row) for row in self._all(query.order_by(t.organizations.c.path))]


def _api_key(m: RowMapping | dict[str, Any]) -> ApiKey:
    return ApiKey(
        id=m["id"],
        organization_id=m["organization_id"],
        name=m["name"],
        scopes=frozenset(Scope(scope) for scope in m["scopes"].split(",")),
        prefix=m["prefix"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


# Every API-key request runs this: built once, it skips the statement construction and
# cache-key work that cost as much as the query (see bench/README.md, factory_line.py).
_API_KEY_COLUMNS = tuple(column.name for column in t.api_keys.c)
_ACTIVE_KEY_WITH_ORGANIZATION: Select[Any] = (
    select(*(t.api_keys.c[name].label(f"key_{name}") for name in _API_KEY_COLUMNS), t.organizations)
    .join(t.organizations, t.organizations.c.id == t.api_keys.c.organization_id)
    .where(t.api_keys.c.key_hash == bindparam("key_hash"), t.api_keys.c.revoked_at.is_(None))
)


class SqlApiKeyRepository(SqlRepository):
    def add(self, key: ApiKey, key_hash: str) -> None:
        self.connection.execute(
            insert(t.api_keys).values(
                id=key.id,
                organization_id=key.organization_id,
                name=key.name,
                scopes=",".join(sorted(scope.value for scope in key.scopes)),
                prefix=key.prefix,
                key_hash=key_hash,
                created_at=key.created_at,
            )
        )

    def find_active_by_hash(self, key_hash: str) -> tuple[ApiKey, Organization] | None:
        row = self.connection.execute(_ACTIVE_KEY_WITH_ORGANIZATION, {"key_hash": key_hash}).first()
        if row is None:
            return None
        key_row = {name: row._mapping[f"key_{name}"] for name in _API_KEY_COLUMNS}
        return _api_key(key_row), organization_from_row(row)

    def get(self, key_id: str, *, within: str) -> ApiKey | None:
        row = self._first(
            select(t.api_keys).where(
                t.api_keys.c.id == key_id, owned_within(t.api_keys.c.organization_id, within)
            )
        )
        return _api_key(row._mapping) if row else None

    def list(self, *, within: str) -> list[ApiKey]:
        query = select(t.api_keys).where(owned_within(t.api_keys.c.organization_id, within))
        return [_api_key(row._mapping) for row in self._all(query.order_by(t.api_keys.c.id))]

    def revoke(self, key_id: str, at: datetime) -> None:
        self.connection.execute(update(t.api_keys).where(t.api_keys.c.id == key_id).values(revoked_at=at))


def product_from_row(row: Row[Any]) -> Product:
    m = row._mapping
    return Product(
        id=m["id"],
        organization_id=m["organization_id"],
        name=m["name"],
        metadata_fields=[
            MetadataField(name=f["name"], type=FieldType(f["type"]), required=f["required"])
            for f in m["metadata_fields"]
        ],
        created_at=m["created_at"],
        enrollment_policy=EnrollmentPolicy(m["enrollment_policy"]),
        requires_blessing=bool(m["requires_blessing"]),
        provision_key=m["provision_key"],
        registration_policy=RegistrationPolicy(m["registration_policy"]),
        registration_identity=RegistrationIdentity(m["registration_identity"]),
        reregistration=bool(m["reregistration"]),
    )


class SqlProductRepository(SqlRepository):
    def add(self, product: Product) -> None:
        self.connection.execute(
            insert(t.products).values(
                id=product.id,
                organization_id=product.organization_id,
                name=product.name,
                metadata_fields=[field.as_dict() for field in product.metadata_fields],
                created_at=product.created_at,
                enrollment_policy=product.enrollment_policy.value,
                requires_blessing=product.requires_blessing,
            )
        )

    def set_requires_blessing(self, product_id: str, requires_blessing: bool) -> None:
        self.connection.execute(
            update(t.products)
            .where(t.products.c.id == product_id)
            .values(requires_blessing=requires_blessing)
        )

    def set_registration(
        self,
        product_id: str,
        policy: RegistrationPolicy,
        identity: RegistrationIdentity,
        reregistration: bool,
    ) -> None:
        self.connection.execute(
            update(t.products)
            .where(t.products.c.id == product_id)
            .values(
                registration_policy=policy.value,
                registration_identity=identity.value,
                reregistration=reregistration,
            )
        )

    def set_definition(self, product_id: str, name: str, metadata_fields: Sequence[MetadataField]) -> None:
        self.connection.execute(
            update(t.products)
            .where(t.products.c.id == product_id)
            .values(name=name, metadata_fields=[field.as_dict() for field in metadata_fields])
        )

    def get(self, product_id: str, *, within: str) -> Product | None:
        row = self._first(
            select(t.products).where(
                t.products.c.id == product_id, owned_within(t.products.c.organization_id, within)
            )
        )
        return product_from_row(row) if row else None

    def list(self, *, within: str, cursor: str | None, limit: int) -> Page[Product]:
        query = select(t.products).where(owned_within(t.products.c.organization_id, within))
        return paged(query, t.products.c.id, cursor, limit, self._all, product_from_row)

    def name_taken(self, organization_id: str, name: str) -> bool:
        query = select(t.products.c.id).where(
            t.products.c.organization_id == organization_id, t.products.c.name == name
        )
        return self._first(query) is not None

    def find_by_provision_key(self, provision_key: str) -> tuple[Product, str | None] | None:
        row = self._first(select(t.products).where(t.products.c.provision_key == provision_key))
        return (product_from_row(row), row._mapping["provision_secret_hash"]) if row else None

    def set_provisioning(self, product_id: str, provision_key: str | None, secret_hash: str | None) -> None:
        self.connection.execute(
            update(t.products)
            .where(t.products.c.id == product_id)
            .values(provision_key=provision_key, provision_secret_hash=secret_hash)
        )


def group_from_row(row: Row[Any]) -> DeviceGroup:
    m = row._mapping
    return DeviceGroup(
        id=m["id"],
        organization_id=m["organization_id"],
        product_id=m["product_id"],
        name=m["name"],
        kind=GroupKind(m["kind"]),
        created_at=m["created_at"],
        application_firmware_after=ApplicationFirmwareAfter(m["application_firmware_after"]),
        release_id=m["release_id"],
    )


# Enrollment and blessing each look for the product's line groups: built once.
_GROUPS_OF_PRODUCT = (
    select(t.device_groups)
    .where(t.device_groups.c.product_id == bindparam("product_id"))
    .order_by(t.device_groups.c.id)
)


class SqlDeviceGroupRepository(SqlRepository):
    def add(self, group: DeviceGroup) -> None:
        self.connection.execute(
            insert(t.device_groups).values(
                id=group.id,
                organization_id=group.organization_id,
                product_id=group.product_id,
                name=group.name,
                kind=group.kind.value,
                created_at=group.created_at,
                application_firmware_after=group.application_firmware_after.value,
                release_id=group.release_id,
            )
        )

    def add_unless_name_taken(self, group: DeviceGroup) -> bool:
        # ON CONFLICT DO NOTHING: where two blessings make a product's first production group
        # at once, the second waits for the first and then uses its group instead of failing.
        dialect_insert = postgresql_insert if self.connection.dialect.name == "postgresql" else sqlite_insert
        statement = dialect_insert(t.device_groups).values(
            id=group.id,
            organization_id=group.organization_id,
            product_id=group.product_id,
            name=group.name,
            kind=group.kind.value,
            created_at=group.created_at,
            application_firmware_after=group.application_firmware_after.value,
            release_id=group.release_id,
        )
        unless_taken = statement.on_conflict_do_nothing(index_elements=["product_id", "name"])
        # RETURNING, not rowcount: on PostgreSQL this insert's rowcount is -1 (the repository
        # contract test caught a blessing there that made the group but announced none).
        return self.connection.execute(unless_taken.returning(t.device_groups.c.id)).first() is not None

    def list_for_product(self, product_id: str) -> list[DeviceGroup]:
        rows = self.connection.execute(_GROUPS_OF_PRODUCT, {"product_id": product_id})
        return [group_from_row(row) for row in rows]

    def name_taken(self, product_id: str, name: str) -> bool:
        query = select(t.device_groups.c.id).where(
            t.device_groups.c.product_id == product_id, t.device_groups.c.name == name
        )
        return self._first(query) is not None


def _event(row: Row[Any]) -> DomainEvent:
    m = row._mapping
    return DomainEvent(
        id=m["id"],
        type=m["type"],
        organization_id=m["organization_id"],
        actor=m["actor"],
        occurred_at=m["occurred_at"],
        subject_type=m["subject_type"],
        subject_id=m["subject_id"],
        data=m["data"],
        recorded_at=m["recorded_at"],
    )


def event_row(event: DomainEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "organization_id": event.organization_id,
        "actor": event.actor,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "data": event.data,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
    }


# Built once: the factory line writes four events per unit, and building the statement
# with ``.values()`` each time cost more than executing it.
_INSERT_EVENT = insert(t.events)
_EVENT_COLUMNS = (
    "id",
    "type",
    "organization_id",
    "actor",
    "subject_type",
    "subject_id",
    "data",
    "occurred_at",
    "recorded_at",
)


class SqlEventOutbox(SqlRepository):
    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.added_types: list[str] = []  # for the metrics, once the transaction commits

    def add(self, event: DomainEvent) -> None:
        self.connection.execute(_INSERT_EVENT, event_row(event))
        self.added_types.append(event.type)

    def add_many(self, events: Sequence[DomainEvent], *, recorded_at: datetime | None = None) -> None:
        """In list order (their sequence numbers follow it), straight to the driver
        (adapters.db.bulk_insert: the presence flush writes thousands at once)."""
        if not events:
            return
        insert_rows(self.connection, "events", _EVENT_COLUMNS, self._rows(events, recorded_at))
        self.added_types.extend(event.type for event in events)

    def _rows(self, events: Sequence[DomainEvent], recorded_at: datetime | None) -> Iterator[tuple[Any, ...]]:
        """Each event's values as SQLAlchemy would bind them (its JSON type uses json.dumps;
        times go through the column type: UTC, and SQLite's stored text)."""
        to_time = bind_processor(t.events.c.occurred_at.type, self.connection.dialect)
        for event in events:
            row = event_row(event)
            row["data"] = json.dumps(event.data)
            row["occurred_at"] = to_time(event.occurred_at)
            recorded = recorded_at or event.recorded_at
            row["recorded_at"] = None if recorded is None else to_time(recorded)
            yield tuple(row[name] for name in _EVENT_COLUMNS)

    def list(self, *, within: str, filters: EventFilter, cursor: str | None, limit: int) -> Page[DomainEvent]:
        """A page of the subtree's events in sequence order, read a page at a time
        (adapters.db.pages); one subject's events are few, and read through its index."""
        e = t.events.c
        terms = [e.type == filters.type] if filters.type else []
        subtree = [] if filters.subject_id else subtree_ids(self.connection, within)
        if filters.subject_id or len(subtree) > MAX_BRANCH_ORGANIZATIONS:
            query = select(t.events).where(owned_within(e.organization_id, within), *terms)
            if filters.subject_id:
                query = query.where(e.subject_id == filters.subject_id).with_hint(
                    t.events, "INDEXED BY ix_events_subject_id_sequence", "sqlite"
                )
            return paged(query, e.sequence, cursor, limit, self._all, _event)
        index = (
            "ix_events_organization_id_type_sequence"
            if filters.type
            else "ix_events_organization_id_sequence"
        )
        branches = [Branch(and_(e.organization_id == org, *terms), index) for org in subtree]
        return branch_page(
            self.connection, t.events, e.sequence, branches, cursor=cursor, limit=limit, convert=_event
        )

    def latest(self, *, within: str, limit: int, type: str | None = None) -> builtins.list[DomainEvent]:
        """Per organization of the subtree, its newest ``limit`` (of ``type``) read backwards
        along (organization_id[, type], sequence); the newest ``limit`` of those. A subtree
        too large for that reads the whole table backwards, filtered."""
        e = t.events.c
        of_type = [e.type == type] if type else []
        subtree = subtree_ids(self.connection, within)
        if len(subtree) > MAX_BRANCH_ORGANIZATIONS:
            query = select(t.events).where(owned_within(e.organization_id, within), *of_type)
            rows = self._all(query.order_by(e.sequence.desc()).limit(limit))
        else:
            rows = []
            for organization_id in subtree:
                newest = select(t.events).where(e.organization_id == organization_id, *of_type)
                rows += self._all(newest.order_by(e.sequence.desc()).limit(limit))
            rows.sort(key=lambda row: row.sequence, reverse=True)
        return [_event(row) for row in rows[:limit]]
