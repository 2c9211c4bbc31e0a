"""Offline factory stations: a line that keeps running when the link to the server is down.

A station is delegated a product's line for a while (a device budget, a validity window)
and keeps a ledger of what it did there. Each entry is chained to the one before it by
hash and signed by the station's key; the server replays the ledger as the same actions,
in order, and stops at the first entry it cannot believe::

    server                                   station (the factory, maybe offline)
    ------                                   -------
    create station  --- bundle (0600) --->   run: fixtures enroll, test, bless
      station CA registered for the product      each action -> ledger entry n:
      budget, window, verify key                   hash_n = H(station, n, at, kind, data, hash_n-1)
                                                   signature_n = sign(station key, hash_n)
    sync: entries head+1 ...  <------------  sync (when the server is reachable)
      check chain, signature, window,
      budget, revocation; replay; head = n

The rules here are pure: the hash of an entry, which entry may follow the head, and what
the budget and the window allow. Keys and signatures live in adapters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

MAX_BUDGET = 1_000_000
MAX_WINDOW_DAYS = 90
WARNING_SHARE = 0.8  # warn when this much of the budget or the window is spent
# A station's clock may run a little ahead of the server's; further ahead is forged.
CLOCK_SKEW = timedelta(minutes=5)
MAX_ENTRIES_PER_UPLOAD = 1000
MAX_POOL = 100_000  # device ids with tokens a station may be given (each is in its bundle)


class LedgerKind(StrEnum):
    """The actions a station performs, each replayed on the server as the same action."""

    ENROLL = "enroll"  # a DUT put under test (a new device when created is true)
    TEST_RUN = "test_run"
    BLESS = "bless"  # blessed or failed, as the last test run says
    CERTIFICATE = "certificate"  # a device certificate the station's CA issued
    TOKEN = "token"  # a unit given its device token from the station's pool


@dataclass(frozen=True)
class Station:
    id: str
    organization_id: str
    product_id: str
    factory_token_id: str
    name: str
    budget: int
    not_before: datetime
    not_after: datetime
    verify_key_pem: str  # the station's Ed25519 public key: every ledger entry is signed
    authority_id: str | None  # its CA, registered for the product (certificate devices)
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    head_sequence: int = 0  # the last entry the server replayed
    head_hash: str = ""
    devices_made: int = 0  # as the replayed ledger says (the budget counts these)
    last_sync_at: datetime | None = None
    pool_size: int = 0  # device ids with tokens it was given (token devices)
    warned: str = ""  # the limits a station.limit_near event named already ("budget,window")


@dataclass(frozen=True)
class PoolEntry:
    """A device id a station was given for a token device, and its token's keyed hash."""

    device_id: str
    station_id: str
    position: int
    token_hash: str
    opened_at: datetime | None = None  # first used: a unit enrolled with it, or it connected


@dataclass(frozen=True)
class LedgerEntry:
    sequence: int
    at: datetime
    kind: LedgerKind
    data: dict[str, Any]
    previous_hash: str
    hash: str
    signature: str  # base64 of the station key's signature over bytes.fromhex(hash)


def genesis_hash(station_id: str) -> str:
    """What the first entry chains to: the station's own, so no ledger starts another's."""
    return hashlib.sha256(f"lineside-station\x00{station_id}".encode()).hexdigest()


def entry_hash(
    station_id: str, sequence: int, at: datetime, kind: str, data: dict[str, Any], previous_hash: str
) -> str:
    """SHA-256 of the entry's canonical JSON (sorted keys, no spaces): every field, and the
    hash of the entry before it."""
    document = [station_id, sequence, at.isoformat(), kind, data, previous_hash]
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def chain_problem(
    station_id: str, entry: LedgerEntry, expected_sequence: int, expected_previous: str
) -> str | None:
    """Why ``entry`` cannot follow the entry numbered ``expected_sequence - 1`` whose hash is
    ``expected_previous``, or None. (The signature is checked by the caller, with the key.)"""
    if entry.sequence != expected_sequence:
        return (
            f"it is numbered {entry.sequence} where {expected_sequence} comes next "
            "(a missing, repeated or reordered entry)"
        )
    if entry.previous_hash != expected_previous:
        return "it does not chain to the entry before it (the ledger was altered or forked)"
    recomputed = entry_hash(station_id, entry.sequence, entry.at, entry.kind, entry.data, entry.previous_hash)
    if recomputed != entry.hash:
        return "its contents do not match its hash (the entry was altered)"
    return None


def window_problem(station: Station, at: datetime, now: datetime) -> str | None:
    """Why an action at ``at`` is outside what the station was delegated, or None."""
    if at < station.not_before:
        return f"it happened at {at.isoformat()}, before the station's window opened"
    if at > station.not_after:
        closed = station.not_after.isoformat()
        return f"it happened at {at.isoformat()}, after the station's window closed ({closed})"
    if at > now + CLOCK_SKEW:
        return f"it is dated {at.isoformat()}, in the future"
    if station.revoked_at is not None and at >= station.revoked_at:
        return f"it happened after the station was revoked ({station.revoked_at.isoformat()})"
    return None


# What each kind of entry's data holds, as the station's line writes it: (key, types, required).
_TEXT, _FLAG, _DOCUMENT, _NOTHING = (str,), (bool,), (dict,), (type(None),)
_DATA_SHAPES: dict[LedgerKind, tuple[tuple[str, tuple[type, ...], bool], ...]] = {
    LedgerKind.ENROLL: (
        ("device_id", _TEXT, True),
        ("hardware_id", _TEXT, True),
        ("serial_number", _TEXT, True),
        ("new_device", _FLAG, True),
    ),
    LedgerKind.TEST_RUN: (
        ("device_id", _TEXT, True),
        ("run_id", _TEXT, True),
        ("passed", _FLAG, True),
        ("measurements", _DOCUMENT, True),
        ("fixture", _TEXT + _NOTHING, False),
        ("operator", _TEXT + _NOTHING, False),
    ),
    LedgerKind.BLESS: (("device_id", _TEXT, True), ("result", _TEXT, True)),
    LedgerKind.CERTIFICATE: (
        ("device_id", _TEXT, True),
        ("fingerprint_sha256", _TEXT, True),
        ("serial_hex", _TEXT, True),
        ("subject", _TEXT, True),
        ("not_before", _TEXT, True),
        ("not_after", _TEXT, True),
    ),
    LedgerKind.TOKEN: (("device_id", _TEXT, True),),
}
_TIMES = ("not_before", "not_after")


def data_problem(kind: LedgerKind, data: dict[str, Any]) -> str | None:
    """Why ``data`` is not what the station's line writes for ``kind`` (a signed entry can
    still be malformed: a station's key in the wrong hands), or None."""
    for key, types, required in _DATA_SHAPES[kind]:
        if key not in data:
            if required:
                return f"its data lacks {key}"
            continue
        if not isinstance(data[key], types) or (types == _TEXT and len(data[key]) > 500):
            return f"its data's {key} is not what a station writes"
    for key in _TIMES if kind is LedgerKind.CERTIFICATE else ():
        try:
            datetime.fromisoformat(data[key])
        except ValueError:
            return f"its data's {key} is not a time"
    return None


def budget_problem(budget: int, devices_made: int) -> str | None:
    """Why one more new device is past the budget, or None."""
    if devices_made >= budget:
        return f"the station's budget of {budget} devices is spent"
    return None


class StationWarning(StrEnum):
    BUDGET = "budget"
    WINDOW = "window"


def warnings_due(
    budget: int, devices_made: int, not_before: datetime, not_after: datetime, now: datetime
) -> list[StationWarning]:
    """Which limits are at least 80% spent."""
    due = []
    if devices_made >= WARNING_SHARE * budget:
        due.append(StationWarning.BUDGET)
    window = (not_after - not_before).total_seconds()
    if window > 0 and (now - not_before).total_seconds() >= WARNING_SHARE * window:
        due.append(StationWarning.WINDOW)
    return due
