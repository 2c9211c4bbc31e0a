"""What every benchmark script shares: a throwaway PostgreSQL database, the machine it ran on,
the --backend choice, how it stops, and timing the phases of one call."""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from unittest import mock

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server at ``admin_url``, dropped afterwards."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"lineside_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_database(backend: str, postgres_url: str, prefix: str) -> Iterator[tuple[str, Path]]:
    """A throwaway database of ``backend`` (a file, or a PostgreSQL database on the server at
    ``postgres_url``) and a working directory: (URL, directory), both gone afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if backend == "postgres":
            with postgres_database(postgres_url) as url:
                yield url, workdir
        else:
            yield f"sqlite:///{workdir / 'lineside.db'}", workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_machine() -> None:
    """The lines every report starts with: what ran it, and how busy the machine was."""
    print(f"CPU:    {cpu_model()}, {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print(f"Load:   {os.getloadavg()[0]:.2f} (1-minute load average at start)")


def bench_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the script's docstring as its help, ``--backend`` and
    ``--postgres-url``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="a server to make databases on")
    return parser


def backends_of(args: argparse.Namespace) -> list[str]:
    return ["sqlite", "postgres"] if args.backend == "both" else [args.backend]


def _exit_on_sigterm(_signum: int, _frame: object) -> NoReturn:
    raise SystemExit(143)


def stop_cleanly_on_signals() -> None:
    """SIGTERM and Ctrl-C unwind the stack, so servers stop and scratch databases are dropped."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)


Measured = TypeVar("Measured")


def each_backend(args: argparse.Namespace, measure: Callable[[str], Measured]) -> list[Measured]:
    """``measure`` on each backend of ``--backend``, after the machine header; Ctrl-C or
    SIGTERM unwinds it (servers stopped, scratch databases dropped) and exits with a line."""
    stop_cleanly_on_signals()
    print_machine()
    try:
        return [measure(backend) for backend in backends_of(args)]
    except KeyboardInterrupt:
        raise SystemExit("interrupted: servers stopped, temporary databases dropped") from None


@dataclass
class PhaseClock:
    """Seconds spent inside the wrapped functions during one call, per phase."""

    seconds: dict[str, float] = field(default_factory=dict)

    def wrap(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

        return timed


@contextmanager
def phase_timing(clock: PhaseClock, targets: Sequence[tuple[object, str, str]]) -> Iterator[None]:
    """Time a call's phases by wrapping what it calls: each target is (owner, attribute,
    phase); the originals are restored after."""
    with ExitStack() as stack:
        for owner, name, phase in targets:
            stack.enter_context(mock.patch.object(owner, name, clock.wrap(phase, getattr(owner, name))))
        yield
