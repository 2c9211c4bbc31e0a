"""The README's walk-throughs run as written: every ``sh`` block, in order, in one bash
session against a fresh ``lineside serve`` on free ports, from a fresh directory. The only
things set beforehand are the two the text tells the reader to set: where the server
answers (``S``) and its MQTT port (``MQTT_PORT``). A block preceded by
``<!-- readme-walkthrough: skip (why) -->`` is not run (it starts a server, or needs files
only the reader has). Any command that fails fails the test, naming the command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lineside.bootstrap import bootstrap
from lineside.settings import Settings
from tests.support.mqtt import wait_for
from tests.support.server import free_port

ROOT = Path(__file__).parents[2]
SKIP = re.compile(r"<!-- readme-walkthrough: skip \((?P<why>[^)]*)\) -->\s*$")
FENCE = re.compile(r"^```(?P<language>\S*)\s*$")


@dataclass(frozen=True)
class Block:
    line: int  # where it starts in the file
    text: str
    skipped_because: str | None


def shell_blocks(markdown: str) -> list[Block]:
    lines = markdown.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None or not opening.group("language"):
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        if opening.group("language") == "sh":
            before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            skip = SKIP.match(before)
            blocks.append(
                Block(index + 1, "\n".join(lines[index + 1 : end]), skip.group("why") if skip else None)
            )
        index = end + 1
    return blocks


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, str]]:
    data = tmp_path / "server"
    settings = Settings(
        database_url=f"sqlite:///{data / 'lineside.db'}", data_dir=data / "data", _env_file=None
    )
    bootstrap(settings, migrate=True).close()
    port, mqtt_port = free_port(), free_port()
    env = {
        **os.environ,
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        "LINESIDE_PORT": str(port),
        "LINESIDE_MQTT_PORT": str(mqtt_port),
        "LINESIDE_LOG_LEVEL": "warning",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "lineside", "serve", "--no-migrate"], env=env, stdout=log, stderr=log
    )
    try:
        wait_for(lambda: _answers(port) or process.poll() is not None, 30, "lineside serve")
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        yield {**env, "S": f"http://127.0.0.1:{port}", "MQTT_PORT": str(mqtt_port)}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _answers(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_readme_splits_into_runnable_and_explained_blocks() -> None:
    blocks = shell_blocks((ROOT / "README.md").read_text())
    assert sum(block.skipped_because is None for block in blocks) >= 6
    assert all(block.skipped_because for block in blocks if "make run" in block.text)


def test_every_shell_block_of_the_readme_runs_in_order(server: dict[str, str], tmp_path: Path) -> None:
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / ".venv").symlink_to(ROOT / ".venv")
    runnable = [
        block for block in shell_blocks((ROOT / "README.md").read_text()) if block.skipped_because is None
    ]
    script = "\n".join(
        [
            "set -euo pipefail",
            "trap 'echo \"README command failed (exit $?): $BASH_COMMAND\" >&2' ERR",
            *(f"echo '# README.md line {block.line}' >&2\n{block.text}" for block in runnable),
        ]
    )

    result = subprocess.run(
        ["bash", "-c", script],
        cwd=reader,
        env=server,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, f"{result.stderr[-4000:]}\n--- stdout ---\n{result.stdout[-2000:]}"
    assert result.stderr.count("# README.md line") == len(runnable)  # every block ran
    assert '"activated"' in result.stdout  # the MQTT device's state, as the README says
    assert "yield" in result.stdout  # the simulated line's report
    assert (reader / "batch.zip").stat().st_mode & 0o077 == 0  # the umask kept the secrets private
