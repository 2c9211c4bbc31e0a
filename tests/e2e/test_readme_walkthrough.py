"""The walk-throughs run as written: every ``sh`` block of the README, of docs/factory.md
and of docs/factory-pki.md, in order, in one bash session against a fresh ``lineside serve``
on free ports, from a fresh directory. The only things set beforehand are those the text
tells the reader to set: for the README where the server answers (``S``) and its MQTT port
(``MQTT_PORT``); for docs/factory.md the server (``LINESIDE``) and an admin key (``ADMIN``);
for docs/factory-pki.md those two, the MQTT TLS listener (``MQTT_HOST``, ``MQTT_TLS_PORT``)
and the server's CA (``SERVER_CA``), on a server with the TLS listener and a trusted proxy
on the loopback, and ``lineside`` on the PATH. A block preceded by ``<!--
readme-walkthrough: skip (why) -->`` is not run (it starts a server, or sets what only the
reader knows). Any command that fails fails the test, naming the command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def serving(tmp_path: Path, **settings_env: str) -> Iterator[dict[str, str]]:
    """A fresh ``lineside serve`` (SQLite) on free ports, with ``settings_env`` beside; the
    environment it runs in, plus ``S`` and ``MQTT_PORT``."""
    data = tmp_path / "server"
    settings = Settings(
        database_url=f"sqlite:///{data / 'lineside.db'}", data_dir=data / "data", _env_file=None
    )
    bootstrap(settings, migrate=True).close()
    port, mqtt_port = free_port(), free_port()
    env = {
        # The reader's defaults, so the broker too (the suite pins one: tests/conftest.py).
        **{name: value for name, value in os.environ.items() if name != "LINESIDE_MQTT_BROKER"},
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        "LINESIDE_PORT": str(port),
        "LINESIDE_MQTT_PORT": str(mqtt_port),
        "LINESIDE_LOG_LEVEL": "warning",
        **settings_env,
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, str]]:
    with serving(tmp_path) as env:
        yield env


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


def admin_key_of(env: dict[str, str], name: str) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "lineside", "org", "create", name, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key: str = json.loads(created.stdout)["api_key"]
    return key


def test_every_shell_block_of_the_factory_pki_guide_runs_in_order(tmp_path: Path) -> None:
    tls_port = free_port()
    proxied = {
        "LINESIDE_MQTT_TLS_PORT": str(tls_port),
        "LINESIDE_CLIENT_CERTIFICATE_HEADER": "X-Client-Certificate",
        "LINESIDE_TRUSTED_PROXIES": "127.0.0.1",
    }
    with serving(tmp_path, **proxied) as server:
        reader = {
            **server,
            "LINESIDE": server["S"],
            "ADMIN": admin_key_of(server, "Factory PKI guide"),
            "MQTT_HOST": "127.0.0.1",
            "MQTT_TLS_PORT": str(tls_port),
            "SERVER_CA": str(Path(server["LINESIDE_DATA_DIR"]) / "mqtt" / "server-ca.pem"),
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{server['PATH']}",  # the lineside command
        }
        result = walk_through("docs/factory-pki.md", reader, tmp_path)

    said = result.stdout.replace(" ", "")
    assert result.blocks >= 12
    assert '"state":"activated"' in said  # registered and activated by its first TLS connection
    assert '"state":"pending_approval"' in said
    assert "approved:defined" in said
    assert "1serialrefused,1registereddevicecutoff" in said
    assert "SN-0001refused:itsserialisontheCRL" in said  # the CRL reached the wire
    assert "SN-0002refused:itsCAisdisabled" in said
    assert "SN-0002connectsagain" in said


def test_the_factory_pki_guide_asks_the_reader_only_for_what_only_they_know() -> None:
    skipped = [
        block for block in shell_blocks((ROOT / "docs/factory-pki.md").read_text()) if block.skipped_because
    ]
    assert len(skipped) == 3
    server_settings, reader, through_a_proxy = (block.text for block in skipped)
    assert "lineside serve" in server_settings
    assert [line.split("=")[0] for line in reader.splitlines()] == [
        "export LINESIDE",
        "export ADMIN",
        "export MQTT_HOST",
        "export SERVER_CA",
    ]
    assert "--cert SN-0002.pem --key SN-0002.key" in through_a_proxy


def test_every_shell_block_of_the_readme_runs_in_order(server: dict[str, str], tmp_path: Path) -> None:
    result = walk_through("README.md", server, tmp_path)
    reader = result.reader
    assert '"activated"' in result.stdout  # the MQTT device's state, as the README says
    assert "yield" in result.stdout  # the simulated line's report
    assert (reader / "batch.zip").stat().st_mode & 0o077 == 0  # the umask kept the secrets private
