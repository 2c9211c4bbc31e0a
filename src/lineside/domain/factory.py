"""The connected factory's own records: factory enrollment tokens, test runs, production
enrollment tokens, and the rules about them that need no database.

::

    factory line (factory token, lsf_...)          field or factory activation
    ------------------------------------          ----------------------------
    DUT presents token + hardware id -> under_test
    fixture records test runs
    bless: last run passed -> blessed (green)      plan id + token id (/v5/enroll)
           last run failed -> failed  (red)         blessed device presents them -> activated
                                                    fixture polls the token: pending -> claimed
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from lineside.domain.errors import InvalidInput

# A MAC (with or without separators) or a chip id in hex: what a fixture reads off a unit.
_HARDWARE_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z:._-]{0,63}\Z")
MAX_LABEL_LENGTH = 200  # test fixture and operator names
MAX_MEASUREMENT_VALUES = 1000  # keys, numbers and strings of one test run, all counted


def normalize_hardware_id(text: str) -> str:
    """The hardware id as stored: trimmed and lower-cased, so ``00:1A:..`` and ``00:1a:..``
    are one unit. Letters, digits and ``: . _ -``, at most 64 characters."""
    hardware_id = text.strip()
    # Checked before lower-casing: a few non-ASCII letters lower-case to ASCII ones.
    if not _HARDWARE_ID.match(hardware_id):
        raise InvalidInput(
            "hardware_id must be 1 to 64 letters, digits or ':', '.', '_', '-' (a MAC or a chip id), "
            "starting with a letter or digit."
        )
    return hardware_id.lower()


def check_measurements(measurements: dict[str, Any]) -> dict[str, Any]:
    """A test run's readings as given, unless they hold NUL (which PostgreSQL's JSON cannot
    store) or more than MAX_MEASUREMENT_VALUES values (a run records readings, not logs)."""
    pending: list[Any] = [measurements]
    seen = 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > MAX_MEASUREMENT_VALUES:
            raise InvalidInput(f"measurements hold at most {MAX_MEASUREMENT_VALUES} values.")
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and "\x00" in value:
            raise InvalidInput("measurements must not contain NUL characters.")
    return measurements


@dataclass(frozen=True)
class FactoryToken:
    """A factory line's enrollment token: admits Devices Under Test of one product."""

    id: str
    organization_id: str
    product_id: str
    name: str
    prefix: str  # enough of the secret to recognise it in a list
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class TestRun:
    """One result a test fixture recorded for a Device Under Test."""

    __test__ = False  # not a pytest test class, whatever its name says

    id: str
    device_id: str
    organization_id: str
    passed: bool
    measurements: dict[str, Any]
    fixture: str | None
    operator: str | None
    recorded_by: str
    created_at: datetime


class BlessingResult(StrEnum):
    BLESSED = "blessed"
    FAILED = "failed"

    @property
    def led(self) -> Literal["green", "red"]:
        """The colour the fixture lights, as Electric Imp's blessing code does."""
        return "green" if self is BlessingResult.BLESSED else "red"


def blessing_result(last_run: TestRun) -> BlessingResult:
    return BlessingResult.BLESSED if last_run.passed else BlessingResult.FAILED


class ClaimStatus(StrEnum):
    """What a fixture polling a production token learns."""

    PENDING = "pending"  # not used yet, still valid
    CLAIMED = "claimed"  # a device activated with it
    EXPIRED = "expired"  # never used, and now too old to be


@dataclass(frozen=True)
class ProductionToken:
    """A production enrollment token (Electric Imp's plan id + token id): short-lived and
    single-use. Only the token id's keyed hash is kept; the plan id travels with it."""

    id: str
    organization_id: str
    product_id: str | None  # None: any product of the organization's subtree
    plan_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    device_id: str | None = field(default=None)

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def claim_status(self, now: datetime) -> ClaimStatus:
        if self.used_at is not None:
            return ClaimStatus.CLAIMED
        return ClaimStatus.EXPIRED if self.is_expired(now) else ClaimStatus.PENDING
