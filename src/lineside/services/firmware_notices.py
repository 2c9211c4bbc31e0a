"""Firmware notices: what to tell each member of a group when a release is deployed to it.

A broker runner follows the ``firmware.deployed`` events with a cursor (the events table's
sequence) and publishes each notice on the member's ``devices/{id}/firmware`` topic. The
cursor starts at the newest event when the runner starts: deployments made while no broker
ran are not announced, a device learns of them at its next firmware check over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lineside.domain.mqtt import firmware_notice_topic
from lineside.services.context import ServiceContext
from lineside.services.firmware import image_path

BATCH = 100


@dataclass(frozen=True, slots=True)
class FirmwareNotice:
    topic: str
    payload: dict[str, Any]


def latest_cursor(ctx: ServiceContext) -> int:
    with ctx.unit_of_work(write=False, snapshot=False) as uow:
        return uow.firmware.latest_event_sequence()


def notices_after(ctx: ServiceContext, cursor: int) -> tuple[int, list[FirmwareNotice]]:
    """The notices of deployments after ``cursor`` (a batch of them), and the next cursor."""
    notices: list[FirmwareNotice] = []
    with ctx.unit_of_work(write=False) as uow:
        for sequence, data in uow.firmware.deployed_events_after(cursor, BATCH):
            cursor = sequence
            release = uow.firmware.get_release(str(data.get("release_id", "")))
            if release is None:
                continue
            payload = {
                "release_id": release.id,
                "version": release.version,
                "kind": release.kind.value,
                "sha256": release.sha256,
                "size_bytes": release.size_bytes,
                "download_path": image_path(release.id),
            }
            members = uow.firmware.group_member_ids(str(data.get("group_id", "")))
            notices.extend(FirmwareNotice(firmware_notice_topic(device_id), payload) for device_id in members)
    return cursor, notices
