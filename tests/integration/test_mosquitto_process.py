"""The Mosquitto child of ``lineside serve``: a real Mosquitto a killed server left behind is
stopped at the next start (it would hold the port), and nothing else ever is."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from lineside.adapters.mqtt.mosquitto import PID_FILE, stop_leftover
from tests.support.mosquitto import require_mosquitto
from tests.support.mqtt import wait_for
from tests.support.server import free_port


def leftover(home: Path) -> subprocess.Popen[bytes]:
    """A Mosquitto run on a configuration in ``home`` with a pid file, as serve writes it."""
    config = home / "mosquitto.conf"
    user = pwd.getpwuid(os.geteuid()).pw_name  # as serve writes it: no privilege drop
    lines = [f"listener {free_port()} 127.0.0.1", f"pid_file {home / PID_FILE}", f"user {user}"]
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stderr=subprocess.DEVNULL)
    wait_for((home / PID_FILE).exists, what="the pid file")
    return process


def test_a_leftover_mosquitto_of_this_configuration_is_stopped(tmp_path: Path) -> None:
    require_mosquitto()
    process = leftover(tmp_path)

    stop_leftover(tmp_path / PID_FILE, tmp_path / "mosquitto.conf")

    assert process.wait(timeout=10) == 0


def test_a_pid_file_naming_another_process_stops_nothing(tmp_path: Path) -> None:
    (tmp_path / PID_FILE).write_text(str(os.getpid()))  # this test process: not a Mosquitto of ours

    stop_leftover(tmp_path / PID_FILE, tmp_path / "mosquitto.conf")

    assert Path(f"/proc/{os.getpid()}").exists()
