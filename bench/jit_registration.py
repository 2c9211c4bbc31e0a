"""Just-in-time registration over MQTT TLS (issue 16): N devices whose certificates a maker's
registered, verified intermediate CA signed connect to the embedded broker's TLS listener at
once and register themselves on that first connection, beside the plain TLS handshake rate of
the same listener in the same run.

Setup (not timed): a maker's root and intermediate CA and ``--devices`` device keys and
certificates (EC P-256, CN = the serial number, signed by the intermediate) are made once and
cached in ``--cache`` (a temporary directory; ``--fresh-pki`` makes them again), and so is the
listener's server certificate (``adapters.mqtt.tls.ensure_server_certificate``), copied into
each server's data directory so one set of client TLS contexts (each device's certificate
with the intermediate, its key, the server CA) serves every round and backend. Per backend:
a throwaway database with an organization and a product (open registration, no blessing),
then ``python -m lineside serve --no-migrate`` with the embedded broker's TLS listener on a
free port; the intermediate is registered and verified through the API (``POST
/api/v1/products/{id}/certificate-authorities``, then ``/verify`` with a certificate whose CN
is the challenge, signed by the intermediate's key), and a probe device connects until the
listener trusts the CA (it looks every ``LINESIDE_MQTT_RECHECK_SECONDS``).

Rounds, each with ``--concurrency`` connects in flight (the client is a minimal asyncio MQTT
3.1.1 client in this process, sharing the cores with the server):

1. plain TLS handshakes: N handshakes with the devices' certificates, no MQTT: connect, TLS
   handshake, close, until the server has closed too (so its side of the handshake is done;
   it logs a warning for each connection that sent no CONNECT);
2. just-in-time registration: each device connects with its certificate and sends CONNECT
   (client id = ``registered_device_id(product, CN)``, no password); the broker registers it
   before its CONNACK. registrations/s = N / (first connect to last CONNACK); p50/p99 connect
   (TCP connect to CONNACK); the time until the database shows all N activated (the broker
   writes activations with presence, in batches); the server's RSS with all N connected;
3. registered reconnect: the same N devices connect again, now known by their certificate's
   fingerprint: the same connect without the registration;
4. and 5. rounds 1 and 3 again (the machine is shared: each floor is taken twice, apart).

Printed per round: connects/s, p50/p99, and the CPU seconds of the server's processes, of this
client, of PostgreSQL's backends for this run's database, and of everything else (other users)
in its window, and the server's CPU per connect (the figure least moved by a busy machine);
then registrations/s as a share of each floor (the mean of its two rounds) and of the faster
one (target: at least 0.5), the handshake's server CPU per connect over the registration's (the
share a CPU-bound server would reach undisturbed by neighbours), and the peak RSS of the server
and of this client. This client reads TLS into 16 KiB buffers instead of asyncio's 256 KiB per
connection (2.5 GiB for 10,000); the server keeps asyncio's default.

Reproduce (from the repository root):

    .venv/bin/python bench/jit_registration.py                          # SQLite and PostgreSQL, 10,000
    .venv/bin/python bench/jit_registration.py --backend sqlite --devices 1000
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.sslproto
import json
import os
import re
import resource
import shutil
import ssl
import statistics
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from device_auth import HOST, free_port, machine_busy_seconds, process_tree_cpu, running_server
from scratch import bench_parser, each_backend, scratch_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lineside.adapters.mqtt.tls import SERVER_CA_FILE, SERVER_DIRECTORY, ensure_server_certificate
from lineside.bootstrap import bootstrap
from lineside.domain.factory_pki import registered_device_id
from lineside.services.organizations import authenticate_api_key, create_organization
from lineside.services.products import create_product
from lineside.settings import Settings

API = "/api/v1"
SERIAL_PREFIX = "JIT-"
CONNECT_TIMEOUT_SECONDS = 120.0
TRUST_DEADLINE_SECONDS = 60.0
SETTLE_DEADLINE_SECONDS = 120.0
ACTIVATION_DEADLINE_SECONDS = 600.0
CACHE_VERSION = 1
CLIENT_TLS_READ_BUFFER = 16 * 1024  # one TLS record
Key = ec.EllipticCurvePrivateKey


# -- the maker's PKI, made once and cached ---------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench Maker"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def issue(
    subject: str,
    key: Key,
    issuer: tuple[x509.Name, Key] | None,
    *,
    ca: bool,
    days: int,
    path_length: int | None,
) -> x509.Certificate:
    """A certificate as a factory line makes it (tests/support/pki.py does the same)."""
    now = datetime.now(UTC)
    issuer_name, signer = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
        .add_extension(_usage(ca=ca), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Pki:
    """What the cache holds: the intermediate and its key, one PEM file per device (its key,
    its certificate and the intermediate: what the line writes into the device), a probe
    device, and the listener's server CA."""

    intermediate_pem: str
    intermediate_key: Key
    devices: list[tuple[str, Path]]  # (serial number = CN, file)
    probe: tuple[str, Path]
    server_data: Path  # holds mqtt/, to copy into a server's data directory

    @property
    def server_ca(self) -> Path:
        return self.server_data / SERVER_DIRECTORY / SERVER_CA_FILE

    def proof(self, challenge: str) -> str:
        """The verification certificate: CN = the challenge, signed by the intermediate's key."""
        signer = (
            x509.load_pem_x509_certificate(self.intermediate_pem.encode()).subject,
            self.intermediate_key,
        )
        return _pem(issue(challenge, new_key(), signer, ca=False, days=1, path_length=None)).decode()


def _device_file(path: Path, name: str, signer: tuple[x509.Name, Key], intermediate: bytes) -> None:
    key = new_key()
    certificate = issue(name, key, signer, ca=False, days=365, path_length=None)
    path.write_bytes(_key_pem(key) + _pem(certificate) + intermediate)


def _serial(index: int) -> str:
    return f"{SERIAL_PREFIX}{index:08d}"


def maker_pki(cache: Path, count: int, fresh: bool) -> Pki:
    """The cached PKI for ``count`` devices, made (or topped up) when missing or stale."""
    manifest_path = cache / "manifest.json"
    manifest: dict[str, int | str] = {}
    if manifest_path.is_file() and not fresh:
        manifest = json.loads(manifest_path.read_text())
        expires = datetime.fromisoformat(str(manifest.get("not_after", "1970-01-01T00:00:00+00:00")))
        if manifest.get("version") != CACHE_VERSION or expires < datetime.now(UTC) + timedelta(days=2):
            manifest = {}
    if not manifest:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True, mode=0o700)  # throwaway keys, still private
        (cache / "devices").mkdir()
        root_key, intermediate_key = new_key(), new_key()
        root = issue("Bench Maker Root CA", root_key, None, ca=True, days=3650, path_length=1)
        intermediate = issue(
            "Bench Maker Line CA",
            intermediate_key,
            (root.subject, root_key),
            ca=True,
            days=1825,
            path_length=0,
        )
        (cache / "root.pem").write_bytes(_pem(root))
        (cache / "intermediate.pem").write_bytes(_pem(intermediate))
        (cache / "intermediate.key.pem").write_bytes(_key_pem(intermediate_key))
        ensure_server_certificate(cache / "server-data", HOST)
        manifest = {
            "version": CACHE_VERSION,
            "devices": 0,
            "not_after": (datetime.now(UTC) + timedelta(days=364)).isoformat(),
        }
    intermediate_pem = (cache / "intermediate.pem").read_bytes()
    loaded_key = serialization.load_pem_private_key((cache / "intermediate.key.pem").read_bytes(), None)
    assert isinstance(loaded_key, ec.EllipticCurvePrivateKey)
    signer = (x509.load_pem_x509_certificate(intermediate_pem).subject, loaded_key)
    made = int(manifest["devices"])
    if made < count:
        started = time.perf_counter()
        print(f"... making {count - made:,} device keys and certificates into {cache}", flush=True)
        for index in range(made, count):
            _device_file(cache / "devices" / f"{index:08d}.pem", _serial(index), signer, intermediate_pem)
        manifest["devices"] = count
        print(f"    {time.perf_counter() - started:.1f} s", flush=True)
    probe = cache / "probe.pem"
    if not probe.is_file():
        _device_file(probe, "PROBE-0", signer, intermediate_pem)
    manifest_path.write_text(json.dumps(manifest))
    devices = [(_serial(index), cache / "devices" / f"{index:08d}.pem") for index in range(count)]
    return Pki(intermediate_pem.decode(), loaded_key, devices, ("PROBE-0", probe), cache / "server-data")


def client_context(pki: Pki, device_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # TLS 1.2 or 1.3, the server's certificate checked
    context.load_verify_locations(cafile=str(pki.server_ca))
    context.load_cert_chain(str(device_file))
    return context


# -- a minimal MQTT 3.1.1 client over TLS --------------------------------------------------------


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str) -> bytes:
    """CONNECT with username = client id and no password: the certificate is the credential."""
    body = (
        _string("MQTT") + bytes([4, 0x82]) + struct.pack("!H", 120) + _string(client_id) + _string(client_id)
    )
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


@dataclass
class Device:
    name: str
    context: ssl.SSLContext
    client_id: str = ""
    writer: asyncio.StreamWriter | None = None

    async def handshake(self, port: int) -> bool:
        """TLS handshake, then close and wait until the server closed too."""
        _, writer = await asyncio.open_connection(HOST, port, ssl=self.context, server_hostname=HOST)
        writer.close()
        with suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        return True

    async def come_online(self, port: int) -> bool:
        """TLS, CONNECT, CONNACK: True when accepted (the connection stays open)."""
        reader, writer = await asyncio.open_connection(HOST, port, ssl=self.context, server_hostname=HOST)
        self.writer = writer
        writer.write(connect_packet(self.client_id))
        connack = await reader.readexactly(4)
        return connack[0] == 0x20 and connack[3] == 0

    async def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            with suppress(ConnectionError, ssl.SSLError, OSError):
                writer.write(b"\xe0\x00")  # DISCONNECT
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 10.0)


# -- rounds ----------------------------------------------------------------------------------


@dataclass
class Round:
    name: str
    latencies: list[float] = field(default_factory=list)
    refused: int = 0
    failed: int = 0
    elapsed: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0
    database_cpu: float = 0.0  # PostgreSQL's backends serving this run's database
    started: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_per_connect(self) -> float:
        return self.server_cpu / max(self.ok, 1)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies) or [0.0]
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))]

    def line(self) -> str:
        other = max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu - self.database_cpu)
        database = f", PostgreSQL {self.database_cpu:4.1f}" if self.database_cpu else ""
        median = statistics.median(self.latencies) if self.latencies else 0.0
        return (
            f"  {self.name:<24} {self.rate:>7,.0f}/s  {self.ok:>6,} ok"
            f" {self.refused} refused {self.failed} failed"
            f"  p50 {median * 1000:6.1f} ms  p99 {self.percentile(0.99) * 1000:7.1f} ms"
            f"  ({self.elapsed:5.2f} s; CPU s: server {self.server_cpu:5.1f}, client {self.client_cpu:4.1f}"
            f"{database}, others {other:4.1f}; server {self.cpu_per_connect * 1000:.2f} ms/connect)"
        )


@dataclass(frozen=True)
class Server:
    pid: int
    database: str | None  # the PostgreSQL database's name; None on SQLite

    def database_cpu(self) -> float:
        """CPU seconds of the live PostgreSQL backends connected to this run's database."""
        if self.database is None:
            return 0.0
        ticks, total = os.sysconf("SC_CLK_TCK"), 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with suppress(OSError):
                    title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if title.startswith("postgres: ") and f" {self.database} " in title:
                        fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                        total += (int(fields[11]) + int(fields[12])) / ticks
        return total


async def run_round(
    name: str,
    devices: list[Device],
    concurrency: int,
    server: Server,
    step: Callable[[Device], Awaitable[bool]],
) -> Round:
    gate = asyncio.Semaphore(concurrency)
    result = Round(name)

    async def one(device: Device) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                accepted = await asyncio.wait_for(step(device), CONNECT_TIMEOUT_SECONDS)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
                result.failed += 1
                return
            taken = time.perf_counter() - started
        if accepted:
            result.latencies.append(taken)
        else:
            result.refused += 1

    server_cpu, machine_cpu, client_cpu, database_cpu = (
        process_tree_cpu(server.pid),
        machine_busy_seconds(),
        time.process_time(),
        server.database_cpu(),
    )
    result.started = time.perf_counter()
    await asyncio.gather(*(one(device) for device in devices))
    result.elapsed = time.perf_counter() - result.started
    result.server_cpu = process_tree_cpu(server.pid) - server_cpu
    result.database_cpu = server.database_cpu() - database_cpu
    result.machine_cpu = machine_busy_seconds() - machine_cpu
    result.client_cpu = time.process_time() - client_cpu
    print(result.line(), flush=True)
    return result


# -- the server and its database ------------------------------------------------------------------


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def count_devices(database_url: str, state: str | None = None) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = "SELECT count(*) FROM devices WHERE serial_number LIKE :prefix"
            if state is not None:
                query += " AND state = :state"
            found = connection.execute(text(query), {"prefix": f"{SERIAL_PREFIX}%", "state": state})
            return int(found.scalar_one())
    finally:
        engine.dispose()


async def wait_for_activations(database_url: str, expected: int) -> float:
    """perf_counter time at which the database showed ``expected`` activated devices."""
    deadline = time.perf_counter() + ACTIVATION_DEADLINE_SECONDS
    while time.perf_counter() < deadline:
        if await asyncio.to_thread(count_devices, database_url, "activated") >= expected:
            return time.perf_counter()
        await asyncio.sleep(0.05)  # polling the database for a condition, with a deadline
    raise SystemExit(f"not all {expected} devices were activated within {ACTIVATION_DEADLINE_SECONDS:.0f} s")


def open_connections(http: httpx.Client) -> float:
    found = re.search(r"^lineside_mqtt_connections (\S+)$", http.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def wait_until_closed(http: httpx.Client) -> None:
    """Until the broker has wound down every connection of the previous round."""
    deadline = time.perf_counter() + SETTLE_DEADLINE_SECONDS
    while time.perf_counter() < deadline:
        if await asyncio.to_thread(open_connections, http) == 0:
            return
        await asyncio.sleep(0.1)  # polling the server's gauge, with a deadline
    raise SystemExit("the broker still counts open connections")


def prepare(database_url: str, data_dir: Path, pki: Pki) -> tuple[str, str]:
    """Migrate; an organization and a product (open registration by default): (API key, product id).
    The listener's server certificate is the cached one, so the client contexts fit every run."""
    shutil.copytree(pki.server_data / SERVER_DIRECTORY, data_dir / SERVER_DIRECTORY)
    app = bootstrap(Settings(database_url=database_url, data_dir=data_dir), migrate=True)
    try:
        ctx = app.services
        secret = create_organization(ctx, "bench").admin_key.secret
        product = create_product(ctx, authenticate_api_key(ctx, secret), name="bench", fields=[])
    finally:
        app.close()
    return secret, product.id


def register_ca(http: httpx.Client, api_key: str, product_id: str, pki: Pki) -> None:
    """What the maker does through the API: register the intermediate, prove possession."""
    headers = {"Authorization": f"Bearer {api_key}"}
    made = http.post(
        f"{API}/products/{product_id}/certificate-authorities",
        json={"certificate": pki.intermediate_pem},
        headers=headers,
    )
    if made.status_code != 201:
        raise SystemExit(f"registering the CA answered {made.status_code}: {made.text[:300]}")
    body = made.json()
    verified = http.post(
        f"{API}/certificate-authorities/{body['id']}/verify",
        json={"verification_certificate": pki.proof(body["challenge"])},
        headers=headers,
    )
    if verified.status_code != 200 or verified.json().get("status") != "verified":
        raise SystemExit(f"verifying the CA answered {verified.status_code}: {verified.text[:300]}")


async def wait_for_trust(probe: Device, port: int) -> tuple[float, str]:
    """Seconds until the listener trusts the newly verified CA (the probe device registers),
    and the TLS version and cipher it connected with."""
    started = time.perf_counter()
    while time.perf_counter() - started < TRUST_DEADLINE_SECONDS:
        try:
            accepted = await asyncio.wait_for(probe.come_online(port), 10.0)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            accepted = False
        tls = probe.writer.get_extra_info("ssl_object") if probe.writer is not None else None
        cipher = tls.cipher() if isinstance(tls, ssl.SSLObject) else None
        spoken = f"{tls.version()}, {cipher[0]}" if isinstance(tls, ssl.SSLObject) and cipher else ""
        await probe.close()
        if accepted:
            return time.perf_counter() - started, spoken
        await asyncio.sleep(0.2)  # polling for the broker's next look at verified CAs, with a deadline
    raise SystemExit(f"the TLS listener did not trust the verified CA within {TRUST_DEADLINE_SECONDS:.0f} s")


# -- one backend -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    backend: str
    rounds: dict[str, Round]
    activated_after: float
    rss_connected: int
    rss_peak: int


async def rounds(
    url: str,
    devices: list[Device],
    probe: Device,
    tls_port: int,
    server: Server,
    http: httpx.Client,
    concurrency: int,
) -> Outcome:
    trusted, spoken = await wait_for_trust(probe, tls_port)
    print(f"  the listener trusted the verified CA after {trusted:.1f} s ({spoken})", flush=True)
    found: dict[str, Round] = {}

    async def handshake(device: Device) -> bool:
        return await device.handshake(tls_port)

    async def online(device: Device) -> bool:
        return await device.come_online(tls_port)

    found["floor"] = await run_round("TLS handshake (floor)", devices, concurrency, server, handshake)
    await wait_until_closed(http)
    rss_idle = rss_bytes(server.pid)
    jit = found["jit"] = await run_round("just-in-time register", devices, concurrency, server, online)
    registered = await asyncio.to_thread(count_devices, url)
    activated_at = await wait_for_activations(url, jit.ok)
    rss_connected = rss_bytes(server.pid)
    print(
        f"  {registered:,} devices registered; all {jit.ok:,} activated"
        f" {activated_at - jit.started:.2f} s after the first connect;"
        f" server RSS {rss_idle / 2**20:.0f} MiB idle,"
        f" {rss_connected / 2**20:.0f} MiB with {jit.ok:,} connected",
        flush=True,
    )
    await asyncio.gather(*(device.close() for device in devices))
    await wait_until_closed(http)
    for name, title, step in (
        ("known", "registered reconnect", online),
        ("floor2", "TLS handshake (again)", handshake),
        ("known2", "registered (again)", online),
    ):
        found[name] = await run_round(title, devices, concurrency, server, step)
        await asyncio.gather(*(device.close() for device in devices))
        await wait_until_closed(http)
    if registered != len(devices):
        raise SystemExit(f"{registered} devices registered, not {len(devices)}")
    return Outcome("", found, activated_at - jit.started, rss_connected, rss_bytes(server.pid, "VmHWM"))


def run_backend(
    backend: str,
    args: argparse.Namespace,
    pki: Pki,
    contexts: list[ssl.SSLContext],
    probe_context: ssl.SSLContext,
) -> Outcome:
    postgres_url, concurrency = args.postgres_url, args.concurrency
    print(f"\n{backend}: {len(contexts):,} devices, {concurrency} connects in flight", flush=True)
    with ExitStack() as stack:
        url, workdir = stack.enter_context(scratch_database(backend, postgres_url, "lineside-bench-jit-"))
        api_key, product_id = prepare(url, workdir / "data", pki)
        tls_port, http_port = free_port(), free_port()
        pid = stack.enter_context(
            running_server(
                url,
                workdir,
                1,
                http_port,
                LINESIDE_MQTT_ENABLED="1",
                LINESIDE_MQTT_PORT=str(free_port()),
                LINESIDE_MQTT_TLS_PORT=str(tls_port),
            )
        )
        http = stack.enter_context(
            httpx.Client(base_url=f"http://{HOST}:{http_port}", trust_env=False, timeout=30.0)
        )
        register_ca(http, api_key, product_id, pki)
        devices = [
            Device(name, context, registered_device_id(product_id, name))
            for (name, _), context in zip(pki.devices, contexts, strict=True)
        ]
        probe = Device(pki.probe[0], probe_context, registered_device_id(product_id, pki.probe[0]))
        server = Server(pid, make_url(url).database if backend == "postgres" else None)
        outcome = asyncio.run(rounds(url, devices, probe, tls_port, server, http, concurrency))
    outcome.backend = backend
    report(outcome)
    return outcome


@dataclass
class Summary:
    handshakes: float  # mean of the two handshake rounds, per second
    reconnects: float  # mean of the two registered reconnect rounds, per second

    @property
    def floor(self) -> float:
        """The stricter floor: the faster of the two."""
        return max(self.handshakes, self.reconnects)


def summarize(outcome: Outcome) -> Summary:
    found = outcome.rounds
    return Summary(
        (found["floor"].rate + found["floor2"].rate) / 2, (found["known"].rate + found["known2"].rate) / 2
    )


def report(outcome: Outcome) -> None:
    found = outcome.rounds
    jit, summary = found["jit"], summarize(outcome)
    median = statistics.median(jit.latencies or [0.0])
    print(
        f"  registrations/s  {jit.rate:,.0f}  (p50 {median * 1000:.0f} ms,"
        f" p99 {jit.percentile(0.99) * 1000:.0f} ms per connect, TCP connect to CONNACK)"
    )
    print(
        f"  share of plain TLS handshakes ({summary.handshakes:,.0f}/s, mean of 2 rounds):"
        f" {jit.rate / summary.handshakes:.2f}"
    )
    print(
        f"  share of registered reconnects ({summary.reconnects:,.0f}/s, mean of 2 rounds):"
        f" {jit.rate / summary.reconnects:.2f}"
    )
    print(f"  against the faster floor: {jit.rate / summary.floor:.2f} (target at least 0.5)")
    handshake_cpu = (found["floor"].cpu_per_connect + found["floor2"].cpu_per_connect) / 2
    print(
        f"  server CPU per connect: {jit.cpu_per_connect * 1000:.2f} ms registering,"
        f" {handshake_cpu * 1000:.2f} ms per plain handshake: {handshake_cpu / jit.cpu_per_connect:.2f}"
        " (the share a CPU-bound server would reach on an idle machine)"
    )
    print(
        f"  server peak RSS  {outcome.rss_peak / 2**20:.0f} MiB ({outcome.rss_connected / 2**20:.0f} MiB"
        f" with all {jit.ok:,} connected); this client's peak RSS"
        f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--devices", type=int, default=10_000, help="devices that register [10000]")
    parser.add_argument("--concurrency", type=int, default=200, help="connects in flight [200]")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "lineside-bench-jit-pki",
        help="where the maker's PKI and the device certificates are kept between runs",
    )
    parser.add_argument(
        "--fresh-pki", action="store_true", help="make the PKI again instead of the cached one"
    )
    args = parser.parse_args()
    # The load generator's own memory only: asyncio allocates max_size per TLS connection.
    asyncio.sslproto.SSLProtocol.max_size = CLIENT_TLS_READ_BUFFER
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the sockets here and in the server
    if hard < args.devices + 1000:
        raise SystemExit(f"the file limit ({hard}) is too low for {args.devices:,} connections")
    pki = maker_pki(args.cache, args.devices, args.fresh_pki)
    started = time.perf_counter()
    contexts = [client_context(pki, path) for _, path in pki.devices]
    probe_context = client_context(pki, pki.probe[1])
    print(
        f"... {len(contexts):,} client TLS contexts in {time.perf_counter() - started:.1f} s;"
        f" file limit {hard} (was {soft})"
    )
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    print(f"Date:   {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {memory:.0f} GiB RAM; {ssl.OPENSSL_VERSION}")
    each_backend(args, lambda backend: run_backend(backend, args, pki, contexts, probe_context))


if __name__ == "__main__":
    main()
