"""The walk-throughs run as written: every ``sh`` block of the README, and of
docs/factory.md, in order, in one bash session against a fresh ``lineside serve`` on free
ports, from a fresh directory. The only things set beforehand are those the text tells the
reader to set: for the README where the server answers (``S``) and its MQTT port
(``MQTT_PORT``); for docs/factory.md the server (``LINESIDE``) and an admin key (``ADMIN``).
A block preceded by ``<!-- readme-walkthrough: skip (why) -->`` is not run (it starts a
server, or sets what only the reader knows). Any command that fails fails the test, naming
the command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
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
FENCE = re.compile(r"^\s*```(?P<language>\S*)\s*$")  # blocks inside list items are indented


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
        end = next(i for i in range(index + 1, len(lines)) if lines[i].lstrip().startswith("```"))
        if opening.group("language") == "sh":
            before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            skip = SKIP.match(before)
            blocks.append(
                Block(
                    index + 1,
                    textwrap.dedent("\n".join(lines[index + 1 : end])),
                    skip.group("why") if skip else None,
                )
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


def test_every_shell_block_of_the_factory_guide_runs_in_order(server: dict[str, str], tmp_path: Path) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "lineside", "org", "create", "Factory guide", "--json"],
        env=server,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    admin = json.loads(created.stdout)["api_key"]

    result = walk_through("docs/factory.md", {**server, "LINESIDE": server["S"], "ADMIN": admin}, tmp_path)

    assert result.blocks >= 9
    assert '"result":"blessed"' in result.stdout.replace(" ", "")
    assert '"status":"claimed"' in result.stdout.replace(" ", "")  # the unit activated with its token
    assert '"application_firmware_after":"activation"' in result.stdout.replace(" ", "")


def test_the_factory_guide_asks_the_reader_only_for_the_server_and_an_admin_key() -> None:
    skipped = [
        block for block in shell_blocks((ROOT / "docs/factory.md").read_text()) if block.skipped_because
    ]
    assert [block.text.split("=")[0] for block in skipped] == ["export LINESIDE"]
    assert "export ADMIN=" in skipped[0].text and skipped[0].text.count("export") == 2


def test_the_readme_splits_into_runnable_and_explained_blocks() -> None:
    blocks = shell_blocks((ROOT / "README.md").read_text())
    assert sum(block.skipped_because is None for block in blocks) >= 6
    assert all(block.skipped_because for block in blocks if "make run" in block.text)


@dataclass(frozen=True)
class WalkedThrough:
    blocks: int  # how many ran
    stdout: str
    reader: Path  # the directory they ran in


def walk_through(document: str, env: dict[str, str], tmp_path: Path) -> WalkedThrough:
    """Run the document's runnable ``sh`` blocks in order, in one bash session."""
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / ".venv").symlink_to(ROOT / ".venv")
    runnable = [
        block for block in shell_blocks((ROOT / document).read_text()) if block.skipped_because is None
    ]
    script = "\n".join(
        [
            "set -euo pipefail",
            f"trap 'echo \"{document}: command failed (exit $?): $BASH_COMMAND\" >&2' ERR",
            *(f"echo '# {document} line {block.line}' >&2\n{block.text}" for block in runnable),
        ]
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=reader, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n--- stdout ---\n{result.stdout[-2000:]}"
    assert result.stderr.count(f"# {document} line") == len(runnable)  # every block ran
    return WalkedThrough(len(runnable), result.stdout, reader)


def test_every_shell_block_of_the_readme_runs_in_order(server: dict[str, str], tmp_path: Path) -> None:
    result = walk_through("README.md", server, tmp_path)
    reader = result.reader
    assert '"activated"' in result.stdout  # the MQTT device's state, as the README says
    assert "yield" in result.stdout  # the simulated line's report
    assert (reader / "batch.zip").stat().st_mode & 0o077 == 0  # the umask kept the secrets private
