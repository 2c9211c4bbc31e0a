"""Mosquitto 2 as Lineside's MQTT broker: building Lineside's plugin for it, writing its
configuration and running it as a child process.

Mosquitto carries the messages (MQTT 5, 3.1.1 and 3.1, about a kilobyte per connection);
the plugin (``mosquitto_plugin.c`` and ``mosquitto_credentials.c``, compiled here on first
use against the machine's own Mosquitto, libcurl, OpenSSL, SQLite and libpq headers) accepts
a device's own token or MQTT password itself, from Lineside's database and server key, asks
Lineside about everything else (``entrypoints/api/routes/broker_hooks/mosquitto_plugin``),
and tells it who arrived and who left.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("lineside.mosquitto")

PLUGIN_SOURCES = tuple(
    Path(__file__).with_name(name)
    for name in ("mosquitto_plugin.c", "mosquitto_credentials.c", "mosquitto_credentials.h")
)
_LIBRARIES = ["-lcurl", "-lcrypto", "-lsqlite3", "-lpq"]
_INCLUDES = ["-I/usr/include/postgresql"]  # Debian's place for libpq-fe.h
BUILD_PACKAGES = (
    "mosquitto mosquitto-dev libmosquitto-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libpq-dev gcc"
)
START_DEADLINE_SECONDS = 15.0
STOP_DEADLINE_SECONDS = 10.0
_LAST_LINES = 20  # of Mosquitto's output, kept to explain a failed start
PID_FILE = "mosquitto.pid"


BUILD_HEADERS = tuple(
    Path(header)
    for header in (
        "/usr/include/mosquitto_broker.h",
        "/usr/include/mosquitto.h",
        "/usr/include/openssl/evp.h",
        "/usr/include/sqlite3.h",
        "/usr/include/postgresql/libpq-fe.h",
    )
)


def missing_for_mosquitto(binary: str, compiler: str = "cc") -> list[str]:
    """What this machine lacks to run Mosquitto with Lineside's plugin (empty: nothing)."""
    missing = [str(header) for header in BUILD_HEADERS if not header.exists()]
    if shutil.which("curl-config") is None:
        missing.append("curl-config")
    return missing + [tool for tool in (binary, compiler) if shutil.which(tool) is None]


class MosquittoError(RuntimeError):
    """Mosquitto or its plugin is missing, does not build, or does not start."""


def plugin_path(directory: Path, compiler: str = "cc") -> Path:
    """The plugin compiled for this machine in ``directory``: built once per version of its
    sources (the file name carries their hash), reused after."""
    digest = hashlib.sha256(b"".join(source.read_bytes() for source in PLUGIN_SOURCES)).hexdigest()
    target = directory / f"lineside_mosquitto-{digest[:12]}.so"
    if target.exists():
        return target
    if shutil.which(compiler) is None:
        raise MosquittoError(f"no C compiler ({compiler}) for the Mosquitto plugin: install {BUILD_PACKAGES}")
    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    sources = [str(source) for source in PLUGIN_SOURCES if source.suffix == ".c"]
    command = [compiler, "-shared", "-fPIC", "-O2", *_INCLUDES, "-o", str(partial), *sources, *_LIBRARIES]
    built = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our own argv)
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        first = next((line for line in built.stderr.splitlines() if "error" in line), built.stderr.strip())
        raise MosquittoError(f"the Mosquitto plugin does not build ({first}): install {BUILD_PACKAGES}")
    partial.replace(target)  # atomic: a concurrent start sees the whole file or none
    return target


@dataclass(frozen=True)
class OwnPasswordCheck:
    """What the plugin needs to accept a device's password without asking Lineside: the
    server key's file (read by the plugin; Mosquitto runs as the same user), the database
    (``sqlite`` path or ``postgres`` libpq string) and the two queries (adapters/db/plugin_queries)."""

    key_file: Path
    database_kind: str
    database: str
    token_query: str
    password_query: str

    def lines(self) -> list[str]:
        return [
            f"plugin_opt_key_file {self.key_file}",
            f"plugin_opt_{self.database_kind} {self.database}",
            f"plugin_opt_token_query {self.token_query}",
            f"plugin_opt_password_query {self.password_query}",
        ]


@dataclass(frozen=True)
class MosquittoConfig:
    """What ``lineside serve`` tells Mosquitto: where to listen, and where Lineside is."""

    host: str
    port: int
    plugin: Path
    lineside_url: str
    secret: str
    recheck_seconds: float
    pid_file: Path
    # None: Lineside answers every CONNECT (an in-memory database, which the plugin cannot open).
    own_check: OwnPasswordCheck | None = None
    user: str = field(default_factory=lambda: pwd.getpwuid(os.geteuid()).pw_name)

    def render(self) -> str:
        return "\n".join(
            [
                "# Written by lineside serve at each start; edits are lost.",
                # Started as root, Mosquitto would become the user 'mosquitto', who cannot
                # read the plugin in Lineside's data directory: it stays who started it.
                f"user {self.user}",
                # The plugin's ticks (presence, revocation) never fire per listener (2.0.11).
                "per_listener_settings false",
                "allow_anonymous false",
                "persistence false",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "connection_messages false",  # a line per connect: a storm would flood the log
                # Sessions of clients gone a day are dropped (the embedded broker forgets them at
                # a restart), so nobody can pile them up for ever.
                "persistent_client_expiration 1d",
                f"pid_file {self.pid_file}",
                f"listener {self.port} {self.host}",
                f"plugin {self.plugin}",
                f"plugin_opt_url {self.lineside_url}",
                f"plugin_opt_secret {self.secret}",
                f"plugin_opt_recheck_seconds {self.recheck_seconds:g}",
                *(self.own_check.lines() if self.own_check else []),
                "",
            ]
        )

    def write(self, path: Path) -> Path:
        """Owner-only (it holds the hook secret, perhaps a database password), replaced whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self.render())
        partial.replace(path)
        return path


class MosquittoProcess:
    """``mosquitto -c CONFIG`` as a child process; its output goes to Lineside's log."""

    def __init__(self, binary: str, config: Path) -> None:
        self._binary, self._config = binary, config
        self._process: subprocess.Popen[str] | None = None
        self._forwarding: threading.Thread | None = None
        self._last: deque[str] = deque(maxlen=_LAST_LINES)

    def start(self, host: str, port: int, deadline: float = START_DEADLINE_SECONDS) -> None:
        """Returns once Mosquitto accepts connections on ``host:port``; MosquittoError if it
        exits or does not listen in time."""
        executable = shutil.which(self._binary)
        if executable is None:
            raise MosquittoError(f"{self._binary} is not installed: install {BUILD_PACKAGES}")
        stop_leftover(self._config.with_name(PID_FILE), self._config)
        self._process = subprocess.Popen(  # noqa: S603 (the configured binary, our own argv)
            [executable, "-c", str(self._config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._forwarding = threading.Thread(
            target=self._forward_output, name="lineside-mosquitto-log", daemon=True
        )
        self._forwarding.start()
        until = time.monotonic() + deadline
        while not _accepts(host, port):
            if self._process.poll() is not None:
                raise MosquittoError(f"mosquitto exited ({self._process.returncode}): {self.last_output()}")
            if time.monotonic() > until:
                self.stop()
                raise MosquittoError(f"mosquitto did not listen on {host}:{port} in {deadline:g} s")
            time.sleep(0.05)  # polling a port Mosquitto is about to open; nothing to wait on

    def stop(self, timeout: float = STOP_DEADLINE_SECONDS) -> None:
        """SIGTERM (Mosquitto closes every connection), then SIGKILL after ``timeout``."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._forwarding is not None:
            self._forwarding.join(timeout)  # it ends at the output's end, with the process
        if self._process.stdout is not None:
            self._process.stdout.close()

    def last_output(self) -> str:
        return " | ".join(self._last) or "no output"

    def _forward_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip()
            self._last.append(line)
            log.info("%s", line)


def stop_leftover(pid_file: Path, config: Path, deadline: float = STOP_DEADLINE_SECONDS) -> None:
    """Stops a Mosquitto a killed ``lineside serve`` left behind (it would hold the port): the
    process its pid file names, if it still runs this very configuration."""
    try:
        pid = int(pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if str(config).encode() not in command:
        return  # the pid was reused by something else
    log.warning("stopping the Mosquitto (pid %d) a previous lineside serve left running", pid)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        until = time.monotonic() + deadline
        while Path(f"/proc/{pid}").exists() and time.monotonic() < until:
            time.sleep(0.05)  # waiting for a process that is not our child to exit
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
