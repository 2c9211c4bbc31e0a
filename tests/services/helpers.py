"""Steps several service tests take: a unit blessed on the line, a batch of static tokens."""

from __future__ import annotations

from lineside.domain.models import Device, StaticTokenBatch
from lineside.services import devices, factory_line, factory_tokens, static_tokens
from lineside.services.claims import claim_url
from lineside.services.static_tokens import BatchContents
from tests.services.conftest import Maker


def blessed_unit(maker: Maker, product_id: str, hardware_id: str = "unit-1") -> Device:
    token = factory_tokens.create_factory_token(maker.services, maker.admin, product_id=product_id).secret
    device = factory_line.enroll_dut(maker.services, token, hardware_id=hardware_id).device
    factory_line.record_test_run(maker.services, maker.admin, device.id, passed=True)
    return factory_line.bless_device(maker.services, maker.admin, device.id).device


def static_batch(maker: Maker, count: int = 3, product_id: str | None = None) -> StaticTokenBatch:
    product_id = product_id or maker.product(f"Batch product {len(maker.world.database.tables.products)}").id
    return static_tokens.create_static_tokens(maker.services, maker.admin, product_id, count=count)


def exported(maker: Maker, batch: StaticTokenBatch) -> list[dict[str, str | None]]:
    """Export the batch, keeping every row as the zip would (a list, read to the end)."""

    def build(contents: BatchContents) -> list[dict[str, str | None]]:
        return [
            {"device_id": row.device_id, "token": row.device_token, "claim_url": row.claim_url}
            for row in contents.rows
        ]

    return static_tokens.export_batch(maker.services, maker.admin, batch.id, build)


def claim_code_of(maker: Maker, device_id: str) -> str:
    device = devices.get_device(maker.services, maker.admin, device_id)
    return claim_url(maker.services, device.id, device.claim_generation).rsplit("/", 1)[1]
