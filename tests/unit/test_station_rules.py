"""The pure rules of offline stations (domain.stations): an entry's hash, which entry may
follow the head, the window, the budget, and when a station is warned."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lineside.domain.stations import (
    CLOCK_SKEW,
    LedgerEntry,
    LedgerKind,
    Station,
    StationWarning,
    budget_problem,
    chain_problem,
    entry_hash,
    genesis_hash,
    warnings_due,
    window_problem,
)

OPENED = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CLOSES = OPENED + timedelta(days=10)
STATION_ID = "station-1"


def station(**changes: object) -> Station:
    made = Station(
        id=STATION_ID, organization_id="o", product_id="p", factory_token_id="t", name="line 1",
        budget=100, not_before=OPENED, not_after=CLOSES, verify_key_pem="", authority_id=None,
        created_at=OPENED, created_by="api_key:k",
    )  # fmt: skip
    return replace(made, **changes)  # type: ignore[arg-type]


def entry(sequence: int = 1, previous: str | None = None, **data: object) -> LedgerEntry:
    previous = previous if previous is not None else genesis_hash(STATION_ID)
    at = OPENED + timedelta(minutes=sequence)
    body = {"device_id": "d", **data}
    digest = entry_hash(STATION_ID, sequence, at, "enroll", body, previous)
    return LedgerEntry(sequence, at, LedgerKind.ENROLL, body, previous, digest, "signature")


def test_an_entry_s_hash_is_stable_and_covers_every_field() -> None:
    args = (STATION_ID, 1, OPENED, "enroll", {"b": 1, "a": [1, 2]}, "0" * 64)
    assert entry_hash(*args) == entry_hash(STATION_ID, 1, OPENED, "enroll", {"a": [1, 2], "b": 1}, "0" * 64)
    # Pinned: a station and the server compute it apart, and ledgers written before a change
    # to the canonical form must still verify after it.
    assert entry_hash(*args) == "1f7528af670c882977acc514a9ebcbd42150d5472d471a2671c116f00959a7e9"
    changed = [
        ("other", 1, OPENED, "enroll", {"b": 1, "a": [1, 2]}, "0" * 64),
        (STATION_ID, 2, OPENED, "enroll", {"b": 1, "a": [1, 2]}, "0" * 64),
        (STATION_ID, 1, OPENED + timedelta(microseconds=1), "enroll", {"b": 1, "a": [1, 2]}, "0" * 64),
        (STATION_ID, 1, OPENED, "bless", {"b": 1, "a": [1, 2]}, "0" * 64),
        (STATION_ID, 1, OPENED, "enroll", {"b": 2, "a": [1, 2]}, "0" * 64),
        (STATION_ID, 1, OPENED, "enroll", {"b": 1, "a": [1, 2]}, "1" * 64),
    ]
    assert len({entry_hash(*a) for a in changed} | {entry_hash(*args)}) == len(changed) + 1


def test_each_station_s_ledger_starts_from_its_own_genesis() -> None:
    assert genesis_hash("a") != genesis_hash("b") and genesis_hash("a") == genesis_hash("a")


def test_the_next_entry_chains_to_the_head() -> None:
    first = entry(1)
    assert chain_problem(STATION_ID, first, 1, genesis_hash(STATION_ID)) is None
    second = entry(2, previous=first.hash)
    assert chain_problem(STATION_ID, second, 2, first.hash) is None


@pytest.mark.parametrize(
    ("made", "why"),
    [
        (lambda e: replace(e, sequence=3), "reordered"),
        (lambda e: replace(e, previous_hash="f" * 64), "does not chain"),
        (lambda e: replace(e, data={"device_id": "other"}), "do not match its hash"),
        (lambda e: replace(e, at=e.at + timedelta(seconds=1)), "do not match its hash"),
        (lambda e: replace(e, kind=LedgerKind.BLESS), "do not match its hash"),
    ],
)
def test_a_broken_entry_says_why(made: object, why: str) -> None:
    first = entry(1)
    second = entry(2, previous=first.hash)
    problem = chain_problem(STATION_ID, made(second), 2, first.hash)  # type: ignore[operator]
    assert problem is not None and why in problem


def test_another_station_s_entry_does_not_chain_here() -> None:
    assert chain_problem("station-2", entry(1), 1, genesis_hash(STATION_ID)) is not None


def test_the_window_admits_only_what_happened_inside_it_and_before_revocation() -> None:
    now = OPENED + timedelta(days=1)
    assert window_problem(station(), OPENED, now) is None
    assert "before the station's window opened" in (
        window_problem(station(), OPENED - timedelta(seconds=1), now) or ""
    )
    late = CLOSES + timedelta(seconds=1)
    assert "after the station's window closed" in (
        window_problem(station(), late, CLOSES + timedelta(days=1)) or ""
    )
    assert window_problem(station(), now + CLOCK_SKEW, now) is None
    assert "in the future" in (window_problem(station(), now + CLOCK_SKEW + timedelta(seconds=1), now) or "")
    revoked = station(revoked_at=now)
    assert window_problem(revoked, now - timedelta(seconds=1), now) is None
    assert "revoked" in (window_problem(revoked, now, now) or "")


def test_the_budget_counts_new_devices() -> None:
    assert budget_problem(3, 2) is None
    assert "budget of 3 devices is spent" in (budget_problem(3, 3) or "")


def test_a_station_is_warned_at_80_percent_of_either_limit() -> None:
    early = OPENED + timedelta(days=1)
    assert warnings_due(100, 79, OPENED, CLOSES, early) == []
    assert warnings_due(100, 80, OPENED, CLOSES, early) == [StationWarning.BUDGET]
    assert warnings_due(100, 0, OPENED, CLOSES, OPENED + timedelta(days=8)) == [StationWarning.WINDOW]
    assert warnings_due(100, 0, OPENED, CLOSES, OPENED + timedelta(days=7, hours=23)) == []
    both = warnings_due(5, 4, OPENED, CLOSES, OPENED + timedelta(days=9))
    assert both == [StationWarning.BUDGET, StationWarning.WINDOW]
