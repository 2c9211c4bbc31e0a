"""How many claim codes and passwords one address gets to try: the attacks of issue 11,
replayed against a real ``lineside serve`` with its default limits.

What it measures, all from one client address (127.0.0.1, no trusted proxy):

1. ``--accounts`` accounts (made through the service layer, as accounts made on other
   networks would be) each guess claim codes through ``POST /api/v1/claims`` as fast as
   they can, in parallel, for ``--seconds``: codes evaluated (404), refused (429), per minute.
2. The claim page ``GET /claim/{code}``, signed out, for ``--seconds``: codes evaluated.
3. 16 concurrent wrong guesses of one new account: how many were evaluated.
4. 40 wrong passwords for one account: how many were checked before 429.
5. Sign-ups from the one address: how many were accepted before 429.

Before the fix these were 370 a minute (37 accounts), 4,610 a minute, 13 of 16, 40 of 40 and
unlimited. The bound the settings state is 30 wrong codes per 15-minute window per address.

Reproduce (from the repository root):

    .venv/bin/python bench/guessing.py                     # 37 accounts, 60 s each
    .venv/bin/python bench/guessing.py --seconds 10        # quicker
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from scratch import cpu_model

from lineside.bootstrap import bootstrap
from lineside.services.people import sign_in, sign_up
from lineside.settings import Settings

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def unknown_code() -> str:
    return "lsc_" + secrets.token_urlsafe(20)[:26]


def people(settings: Settings, count: int) -> list[str]:
    """Sign-in tokens of ``count`` accounts, each made from an address of its own."""
    application = bootstrap(settings)
    tokens = []
    for index in range(count):
        email = f"guesser-{index}-{secrets.token_hex(3)}@example.com"
        sign_up(application.services, email, PASSWORD, client_address=f"203.0.113.{index % 250}")
        tokens.append(sign_in(application.services, email, PASSWORD, client_address="198.51.100.1").token)
    application.close()
    return tokens


def guess_claims(url: str, token: str, until: float) -> Counter[int]:
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        while time.monotonic() < until:
            statuses[http.post("/api/v1/claims", json={"code": unknown_code()}).status_code] += 1
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=37)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    directory = Path(tempfile.mkdtemp(prefix="lineside-guessing-"))
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{directory / 'lineside.db'}", data_dir=directory / "data", _env_file=None
    )
    bootstrap(settings, migrate=True).close()
    env = {
        **os.environ,
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        "LINESIDE_PORT": str(port),
        "LINESIDE_MQTT_ENABLED": "0",
        "LINESIDE_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen([sys.executable, "-m", "lineside", "serve", "--no-migrate"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        tokens = people(settings, args.accounts + 2)
        report(url, tokens, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("lineside serve did not start")


def report(url: str, tokens: list[str], seconds: float) -> None:
    """In an order that spends one address's budget step by step (30 per window in all)."""
    with ThreadPoolExecutor(16) as pool, httpx.Client(base_url=url, timeout=60) as http:
        auth = {"Authorization": f"Bearer {tokens[0]}"}
        statuses = list(pool.map(lambda _: _claim(http, auth), range(16)))
    print(f"1. 16 concurrent guesses of one new account: {statuses.count(404)} evaluated (its limit: 10)")
    page: Counter[int] = Counter()
    until = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < until:
            page[http.get(f"/claim/{unknown_code()}").status_code] += 1
    print(f"2. claim page, signed out, {seconds:.0f} s: {page[404]} codes evaluated, {page[429]} refused")
    until = time.monotonic() + seconds
    with ThreadPoolExecutor(len(tokens)) as pool:
        totals = sum(pool.map(lambda token: guess_claims(url, token, until), tokens[2:]), Counter())
    print(
        f"3. {len(tokens) - 2} more accounts at the address, {seconds:.0f} s: {totals[404]} codes evaluated, "
        f"{totals[429]} refused"
    )
    print(f"   codes evaluated from the one address in all: {statuses.count(404) + page[404] + totals[404]}")
    with httpx.Client(base_url=url, timeout=60) as http:
        email = "victim@example.com"
        http.post("/api/v1/users", json={"email": email, "password": PASSWORD})
        wrong = [_sign_in(http, email) for _ in range(40)]
        signups = [_sign_up(http, n) for n in range(20)]
    print(f"4. 40 wrong passwords for one account: {wrong.count(401)} checked, {wrong.count(429)} refused")
    print(
        f"5. 20 more sign-ups from the address: {signups.count(201)} accepted, {signups.count(429)} refused"
    )


def _claim(http: httpx.Client, auth: dict[str, str]) -> int:
    return http.post("/api/v1/claims", json={"code": unknown_code()}, headers=auth).status_code


def _sign_in(http: httpx.Client, email: str) -> int:
    return http.post("/api/v1/auth/token", json={"email": email, "password": "wrong password"}).status_code


def _sign_up(http: httpx.Client, n: int) -> int:
    return http.post(
        "/api/v1/users", json={"email": f"new-{n}@example.com", "password": PASSWORD}
    ).status_code


if __name__ == "__main__":
    main()
