"""The station's own sync (entrypoints.station.sync) against the server over a real socket,
with two chunks in flight: every entry lands once and in order, a forged entry in a later
chunk stops the sync there with the chunk behind it changing nothing, and a server whose
head is behind the station's marks is sent what it lacks. Chunks of 4 here, so a ledger of
a few dozen entries is many chunks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import func, select, update

from lineside.adapters.db import tables as t
from lineside.entrypoints.station import sync as station_sync
from lineside.entrypoints.station.sync import StationLink, SyncStopped, sync_ledger
from lineside.services.station_local import mark_synced
from tests.integration.test_stations import Line
from tests.support.api import Tenant
from tests.support.stations import StationSite, station_site

CHUNK = 4


@pytest.fixture
def line(tenant: Tenant) -> Line:
    return Line(tenant)


@pytest.fixture
def made(line: Line) -> dict[str, Any]:
    return line.station()


@pytest.fixture
def site(made: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StationSite]:
    monkeypatch.setattr(station_sync, "CHUNK", CHUNK)
    with station_site(made["bundle"], tmp_path / "station") as station:
        yield station


def link(client: httpx.Client, made: dict[str, Any]) -> StationLink:
    return StationLink(
        str(client.base_url), made["station"]["id"], made["bundle"]["secrets"]["fixture_api_key"]
    )


def local_marks(site: StationSite) -> int:
    """The highest sequence the station has marked synced (0: none)."""
    c = t.station_ledger.c
    with site.application.engine.connect() as connection:
        return int(
            connection.execute(select(func.max(c.sequence)).where(c.synced_at.is_not(None))).scalar() or 0
        )


def test_every_chunk_lands_once_and_in_order(
    client: httpx.Client, line: Line, made: dict[str, Any], site: StationSite
) -> None:
    units = [site.unit(passed=n % 4 != 0) for n in range(10)]  # 30 entries: 8 chunks
    uploaded: list[int] = []

    outcome = sync_ledger(site.ctx, link(client, made), uploaded.append)

    assert (outcome.server_head, outcome.uploaded, outcome.head_sequence) == (0, 30, 30)
    assert uploaded == [CHUNK] * 7 + [2]
    assert local_marks(site) == 30
    synced = sorted(line.events("station.synced"), key=lambda e: e["data"]["from_sequence"])
    assert [(e["data"]["from_sequence"], e["data"]["through_sequence"]) for e in synced] == [
        (start, min(start + CHUNK - 1, 30)) for start in range(1, 31, CHUNK)
    ]
    states = [line.device(u).json()["state"] for u in units]
    assert states == ["failed" if n % 4 == 0 else "blessed" for n in range(10)]
    assert sync_ledger(site.ctx, link(client, made)).uploaded == 0


def test_a_forged_entry_in_a_later_chunk_stops_there_and_the_chunk_behind_it_changes_nothing(
    client: httpx.Client, line: Line, made: dict[str, Any], site: StationSite
) -> None:
    units = [site.unit() for _ in range(10)]
    forger = ed25519.Ed25519PrivateKey.generate()
    forged = site.entries()[17]  # entry 18, the fifth chunk's second: the sixth is in flight
    with site.application.engine.begin() as connection:
        connection.execute(
            update(t.station_ledger)
            .where(t.station_ledger.c.sequence == forged.sequence)
            .values(signature=base64.b64encode(forger.sign(bytes.fromhex(forged.hash))).decode())
        )

    with pytest.raises(SyncStopped) as stopped:
        sync_ledger(site.ctx, link(client, made))

    assert (stopped.value.stopped_at, stopped.value.head_sequence) == (18, 17)
    assert "forged" in stopped.value.reason
    assert local_marks(site) == 17
    assert line.shown(made["station"]["id"])["head_sequence"] == 17
    assert [e["data"]["sequence"] for e in line.events("station.sync_stopped")] == [18]
    assert line.device(units[5]).json()["state"] == "under_test"  # entry 16 enrolled it, 17 tested it
    assert len(line.devices()) == 6


def test_a_server_behind_the_stations_marks_is_sent_what_it_lacks(
    client: httpx.Client, line: Line, made: dict[str, Any], site: StationSite
) -> None:
    units = [site.unit() for _ in range(6)]
    assert line.synced(made["station"]["id"], site.entries()[:6])["head_sequence"] == 6
    mark_synced(site.ctx, 15)  # as if the server were restored from a backup taken at entry 6

    outcome = sync_ledger(site.ctx, link(client, made))

    assert (outcome.server_head, outcome.uploaded, outcome.head_sequence) == (6, 12, 18)
    assert [line.device(u).json()["state"] for u in units] == ["blessed"] * 6
