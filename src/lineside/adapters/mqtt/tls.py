"""The embedded broker's TLS listener: its server certificate, and trust in every product CA.

The server certificate is signed by a small CA of its own ("Lineside MQTT server CA"),
generated once into ``{data_dir}/mqtt/`` (``server-ca.pem`` is what devices pin). Client
certificates are optional (a device may still authenticate with its token over TLS); when a
device presents one, it must chain to one of the product CAs kept under
``{data_dir}/ca/<product_id>/ca.cert.pem``. Products made after the broker started get a CA
later, so the store is refreshed (new files only: one directory listing) before each
handshake.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_DIRECTORY = "mqtt"
SERVER_CA_FILE = "server-ca.pem"
_SERVER_CA_KEY_FILE = "server-ca.key.pem"
_SERVER_CERT_FILE = "server.cert.pem"
_SERVER_KEY_FILE = "server.key.pem"
_PRODUCT_CA_FILE = "ca.cert.pem"
_LIFETIME = timedelta(days=3650)
_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class ServerFiles:
    ca_certificate: Path  # give this to devices: it signs the server certificate
    certificate: Path
    key: Path


class ProductCaTrust:
    """Loads each product CA certificate into ``context`` once, as it appears."""

    def __init__(self, context: ssl.SSLContext, directory: Path) -> None:
        self._context = context
        self._directory = directory
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    def refresh(self) -> int:
        """Load the CAs not loaded yet; how many were added."""
        try:
            names = [entry.name for entry in os.scandir(self._directory) if not entry.name.startswith(".")]
        except FileNotFoundError:
            return 0
        added = 0
        with self._lock:
            for name in names:
                path = self._directory / name / _PRODUCT_CA_FILE
                if name in self._loaded or not path.is_file():
                    continue
                self._context.load_verify_locations(cafile=str(path))
                self._loaded.add(name)
                added += 1
        return added

    def trust_registered(self, pems: Iterable[str]) -> int:
        """Makers' registered CAs (factory PKI), each loaded once; how many were added. A
        context cannot forget one: a disabled or deleted CA is refused after the handshake,
        by the registration and the credential checks."""
        added = 0
        with self._lock:
            for pem in pems:
                key = hashlib.sha256(pem.encode()).hexdigest()
                if key in self._loaded:
                    continue
                self._context.load_verify_locations(cadata=pem)
                self._loaded.add(key)
                added += 1
        return added


@dataclass(frozen=True)
class TlsListener:
    port: int
    context: ssl.SSLContext
    trust: ProductCaTrust
    files: ServerFiles


def tls_listener(data_dir: Path, port: int, host: str) -> TlsListener:
    """A server-side TLS context for ``port``, with the server certificate made on first use."""
    files = ensure_server_certificate(data_dir, host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(files.certificate), str(files.key))
    context.verify_mode = ssl.CERT_OPTIONAL
    # A maker may register an intermediate (factory PKI): it is an anchor here, not a link.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    trust = ProductCaTrust(context, data_dir / "ca")
    trust.refresh()
    return TlsListener(port, context, trust, files)


def ensure_server_certificate(data_dir: Path, host: str) -> ServerFiles:
    directory = data_dir / SERVER_DIRECTORY
    files = ServerFiles(
        directory / SERVER_CA_FILE, directory / _SERVER_CERT_FILE, directory / _SERVER_KEY_FILE
    )
    if files.certificate.is_file() and files.key.is_file() and files.ca_certificate.is_file():
        return files
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lineside MQTT server CA")])
    ca = _builder(ca_name, ca_name, ca_key.public_key())
    ca = ca.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    ca_certificate = ca.sign(ca_key, hashes.SHA256())
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lineside MQTT server")])
    server = _builder(server_name, ca_name, server_key.public_key())
    server = server.add_extension(x509.SubjectAlternativeName(_alt_names(host)), critical=False)
    server = server.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    server_certificate = server.sign(ca_key, hashes.SHA256())
    _write(files.key, _key_pem(server_key), 0o600)
    _write(directory / _SERVER_CA_KEY_FILE, _key_pem(ca_key), 0o600)
    _write(files.ca_certificate, ca_certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(files.certificate, server_certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LIFETIME)
    )


def _alt_names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        names.append(x509.DNSName(host))
    else:
        if not address.is_unspecified and str(address) != "127.0.0.1":
            names.append(x509.IPAddress(address))
    return names


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    # Written aside and renamed, so a reader never sees half a file.
    staging = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(staging, path)
