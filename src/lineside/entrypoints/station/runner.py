"""``lineside station run``: serve the line, and sync in the background while the link is up.

The sync loop runs in a thread beside uvicorn. An unreachable server is the normal state of
an offline station: it is logged once per outage, at INFO. A stop (an entry the server cannot
believe) is an ERROR, shown on the status page, and not retried automatically: sending the
same entry again cannot change the answer, so the loop waits for a person (``station sync``).
"""

from __future__ import annotations

import logging
import threading

import uvicorn

from lineside.entrypoints.station.app import StationRuntime, create_station_app
from lineside.entrypoints.station.status import note_warnings
from lineside.entrypoints.station.sync import (
    ServerUnreachable,
    StationLink,
    SyncFailed,
    SyncStopped,
    sync_ledger,
)

log = logging.getLogger("lineside.station")
WARNING_CHECK_SECONDS = 30.0  # how often the limits are looked at when the station never syncs


def run_station(runtime: StationRuntime, *, host: str, port: int, sync_every: float) -> None:
    """Until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    loop = threading.Thread(
        target=_sync_loop, args=(runtime, sync_every, stop), name="station-sync", daemon=True
    )
    loop.start()
    config = uvicorn.Config(
        create_station_app(runtime),
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        proxy_headers=False,
    )
    log.info("station %s serving the line on http://%s:%d", runtime.bundle.station_id, host, port)
    try:
        uvicorn.Server(config).run()
    finally:
        stop.set()
        if loop.is_alive():
            loop.join(timeout=5)


def _sync_loop(runtime: StationRuntime, every: float, stop: threading.Event) -> None:
    """Every ``every`` seconds (0: never sync, but still look at the limits)."""
    while not stop.is_set():
        try:
            note_warnings(runtime.application.services, runtime.bundle, runtime.data_dir)
        except Exception:
            log.exception("station %s: the limits could not be checked", runtime.bundle.station_id)
        if every > 0:
            sync_once(runtime)
        stop.wait(every or WARNING_CHECK_SECONDS)


def sync_once(runtime: StationRuntime) -> None:
    """One automatic attempt; never raises (the loop must outlive any one failure)."""
    ctx, bundle, state = runtime.application.services, runtime.bundle, runtime.sync
    if state.stopped is not None:
        return
    try:
        link = StationLink(runtime.server_url, bundle.station_id, bundle.fixture_api_key)
        outcome = sync_ledger(ctx, link)
    except ServerUnreachable as error:
        if state.reachable is not False:
            log.info("station %s: %s; the line keeps running, the ledger waits", bundle.station_id, error)
        _note(runtime, reachable=False)
        return
    except SyncStopped as stopped:
        log.error("station %s: %s", bundle.station_id, stopped)
        _note(runtime, reachable=True, stopped=str(stopped))
        return
    except SyncFailed as error:
        log.warning("station %s: the sync failed: %s", bundle.station_id, error)
        _note(runtime, reachable=True)
        return
    except Exception:
        log.exception("station %s: the sync loop hit an unexpected error", bundle.station_id)
        return
    if state.reachable is False or outcome.uploaded:
        log.info(
            "station %s synced: %d entries uploaded, the server's head is %d",
            bundle.station_id,
            outcome.uploaded,
            outcome.head_sequence,
        )
    _note(runtime, reachable=True)


def _note(runtime: StationRuntime, *, reachable: bool, stopped: str | None = None) -> None:
    state = runtime.sync
    with state.lock:
        state.last_attempt_at = runtime.application.services.clock()
        state.reachable = reachable
        if stopped is not None:
            state.stopped = stopped
