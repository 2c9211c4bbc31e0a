"""What a station reports about itself: budget used, window left, units per state, the
ledger's last sync and entries waiting, warnings at 80% of the budget or the window, and how
the last automatic sync went. As JSON (/status, ``lineside station status --json``), as a
small HTML page (/) and as Prometheus gauges (/metrics).
"""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lineside.domain.stations import StationWarning, warnings_due
from lineside.entrypoints.station.bundle import StationBundle
from lineside.services.context import ServiceContext
from lineside.services.station_local import record_limit_near, station_figures

log = logging.getLogger("lineside.station")
WARNED_FILE = "warned"


@dataclass
class SyncState:
    """How the automatic sync went last; shared by the sync loop and the status page."""

    last_attempt_at: datetime | None = None
    reachable: bool | None = None  # None: not tried yet
    stopped: str | None = None  # the server's stop report, kept until a sync succeeds
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True)
class StationStatus:
    station_id: str
    name: str
    product_id: str
    budget: int
    devices_made: int
    budget_used_ratio: float
    window_closes_at: datetime
    window_seconds_left: float
    devices_by_state: dict[str, int]
    entries_waiting: int
    ledger_head: int
    last_sync_at: datetime | None
    warnings: list[str]
    server_reachable: bool | None
    sync_stopped: str | None

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        for key in ("window_closes_at", "last_sync_at"):
            value = document[key]
            document[key] = value.isoformat() if value is not None else None
        return document


def station_status(
    ctx: ServiceContext, bundle: StationBundle, sync: SyncState | None = None
) -> StationStatus:
    post, now = bundle.post, ctx.clock()
    figures = station_figures(ctx, bundle.organization_id, bundle.product_id)
    due = warnings_due(post.budget, figures.devices_made, post.not_before, post.not_after, now)
    return StationStatus(
        station_id=bundle.station_id,
        name=bundle.station_name,
        product_id=bundle.product_id,
        budget=post.budget,
        devices_made=figures.devices_made,
        budget_used_ratio=figures.devices_made / post.budget,
        window_closes_at=post.not_after,
        window_seconds_left=max((post.not_after - now).total_seconds(), 0.0),
        devices_by_state=figures.devices_by_state,
        entries_waiting=figures.entries_waiting,
        ledger_head=figures.head_sequence,
        last_sync_at=figures.last_synced_at,
        warnings=[_warning_text(warning, post.budget, figures.devices_made) for warning in due],
        server_reachable=sync.reachable if sync else None,
        sync_stopped=sync.stopped if sync else None,
    )


def _warning_text(warning: StationWarning, budget: int, made: int) -> str:
    if warning is StationWarning.BUDGET:
        return f"budget: {made} of {budget} devices made (80% or more): sync, and ask for a new station soon"
    return "window: 80% or more of the station's window has passed: sync, and ask for a new station soon"


def note_warnings(ctx: ServiceContext, bundle: StationBundle, data_dir: Path) -> None:
    """Log each limit's warning once, and record it once as an event (kept across restarts)."""
    post, now = bundle.post, ctx.clock()
    figures = station_figures(ctx, bundle.organization_id, bundle.product_id)
    marker = data_dir / WARNED_FILE
    warned = set(marker.read_text().split()) if marker.exists() else set()
    for warning in warnings_due(post.budget, figures.devices_made, post.not_before, post.not_after, now):
        if warning.value in warned:
            continue
        share = _share(warning, bundle, figures.devices_made, now)
        record_limit_near(ctx, bundle.station_id, bundle.organization_id, warning, share)
        log.warning(
            "station %s: %s", bundle.station_id, _warning_text(warning, post.budget, figures.devices_made)
        )
        warned.add(warning.value)
        marker.write_text(" ".join(sorted(warned)))


def _share(warning: StationWarning, bundle: StationBundle, made: int, now: datetime) -> float:
    post = bundle.post
    if warning is StationWarning.BUDGET:
        return made / post.budget
    return (now - post.not_before).total_seconds() / (post.not_after - post.not_before).total_seconds()


def status_lines(status: StationStatus) -> list[str]:
    """The status as lines of text (the CLI and the HTML page say the same)."""
    states = (
        ", ".join(f"{state} {count}" for state, count in sorted(status.devices_by_state.items())) or "none"
    )
    last = status.last_sync_at.isoformat(timespec="seconds") if status.last_sync_at else "never"
    lines = [
        f"Station {status.name} ({status.station_id}), product {status.product_id}",
        f"Budget: {status.devices_made} of {status.budget} devices ({status.budget_used_ratio:.0%})",
        f"Window: {_duration(status.window_seconds_left)} left "
        f"(closes {status.window_closes_at.isoformat(timespec='seconds')})",
        f"Units: {states}",
        f"Ledger: {status.ledger_head} entries, {status.entries_waiting} waiting; last sync {last}",
    ]
    if status.server_reachable is not None:
        lines.append(f"Server: {'reachable' if status.server_reachable else 'unreachable'}")
    if status.sync_stopped:
        lines.append(f"SYNC STOPPED: {status.sync_stopped}")
    lines.extend(f"WARNING: {warning}" for warning in status.warnings)
    return lines


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m {rest % 60}s"


def status_page(status: StationStatus) -> str:
    items = "\n".join(
        f"<li{' class=warn' if line.startswith(('WARNING', 'SYNC')) else ''}>{html.escape(line)}</li>"
        for line in status_lines(status)
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="10">'
        f"<title>Lineside station {html.escape(status.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}.warn{color:#b00;font-weight:bold}</style>"
        f"</head><body><h1>Lineside station</h1><ul>\n{items}\n</ul></body></html>"
    )


def metrics_text(status: StationStatus) -> str:
    gauges: list[tuple[str, str, dict[str, float]]] = [
        ("lineside_station_budget", "New devices the station may make.", {"": status.budget}),
        ("lineside_station_devices_made", "New devices the station made.", {"": status.devices_made}),
        ("lineside_station_budget_used_ratio", "Share of the budget spent.", {"": status.budget_used_ratio}),
        (
            "lineside_station_window_seconds_left",
            "Seconds until the window closes.",
            {"": status.window_seconds_left},
        ),
        (
            "lineside_station_ledger_entries_waiting",
            "Ledger entries not yet synced.",
            {"": status.entries_waiting},
        ),
        (
            "lineside_station_last_sync_timestamp_seconds",
            "When the ledger last synced (0: never).",
            {"": status.last_sync_at.timestamp() if status.last_sync_at else 0.0},
        ),
        (
            "lineside_station_devices",
            "Devices at the station, by lifecycle state.",
            {f'state="{state}"': count for state, count in status.devices_by_state.items()},
        ),
    ]
    lines: list[str] = []
    for name, help_text, samples in gauges:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [
            f"{name}{{{labels}}} {value}" if labels else f"{name} {value}"
            for labels, value in samples.items()
        ]
    return "\n".join(lines) + "\n"
