"""File names inside an archive, made from serial numbers a caller chose.

A serial number such as ``../x``, ``/etc/passwd`` or ``CON`` must not leave the archive's
folder or trip an operating system when unpacked, and two labels must never share a file.
"""

from __future__ import annotations

import re
import sqlite3

MAX_NAME_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DOTS = re.compile(r"\.{2,}")
_EDGES = "._-"
# Windows refuses these as file names whatever the extension.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)
# UUIDv7 device ids of one batch share their leading (time) digits; the tail is random.
_SUFFIX_LENGTH = 12
_CACHE_KIB = 1024


def archive_name(serial_number: str, device_id: str) -> str:
    """The stem of ``qr/<stem>.png``: only ``[A-Za-z0-9._-]``, no ``..``, never empty."""
    return _clean(serial_number) or _clean(device_id) or "device"


def _clean(text: str) -> str:
    name = _DOTS.sub(".", _UNSAFE.sub("_", text))[:MAX_NAME_LENGTH].strip(_EDGES)
    if name.split(".", 1)[0].lower() in _RESERVED:
        name = "device_" + name
    return name


class UniqueNames:
    """Hands out archive names, renaming a name already given (ignoring case, as macOS and
    Windows do) by appending the device id's random tail, then the whole id, then a count.

    The names given so far live in a private temporary SQLite database: its page cache
    (``_CACHE_KIB``) bounds the memory, where a set would take about 75 bytes a row.
    """

    def __init__(self) -> None:
        # An empty file name: a private database that SQLite deletes on close.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE given (name TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")  # never committed: one transaction saves a third of each insert

    def __enter__(self) -> UniqueNames:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._db.close()

    def claim(self, serial_number: str, device_id: str) -> str:
        stem = archive_name(serial_number, device_id)
        if self._take(stem):
            return stem
        identity = _clean(device_id) or "device"
        for candidate in (f"{stem}-{identity[-_SUFFIX_LENGTH:]}", f"{stem}-{identity}"):
            if self._take(candidate):
                return candidate
        count = 2
        while not self._take(f"{stem}-{identity}-{count}"):
            count += 1
        return f"{stem}-{identity}-{count}"

    def _take(self, name: str) -> bool:
        inserted = self._db.execute("INSERT OR IGNORE INTO given VALUES (?)", (name.lower(),))
        return inserted.rowcount == 1
