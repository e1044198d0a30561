"""The broker's server certificate as a real, verified TLS handshake shows it.

Shared by `otcert doctor` and the bot's expiry watch, so both verify the broker the same way
(OTCERT_BROKER_CA_FILE, else the bot's CA plus the system store). The first handshake presents
no client certificate: with TLS 1.3 the server's certificate arrives (and is verified) before
the broker refuses the missing one. Only a TLS 1.2 broker that requires one gets a one-day
client certificate, signed once per process and reused until close to its expiry.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.bundle import private_key_pem
from pki.files import write_private_file, write_public_file
from pki.keys import generate_private_key

if TYPE_CHECKING:
    from pki.authority import CertificateAuthority

PROBE_CN = "otcert-doctor"  # reserved: never a person's username
PROBE_TIMEOUT = 5.0
PROBE_RENEW_BEFORE = timedelta(hours=2)  # re-sign the cached probe this long before expiry
_probes: dict[bytes, tuple[x509.Certificate, bytes]] = {}  # CA certificate DER -> probe
_probes_lock = threading.Lock()


def server_context(broker_ca_file: Path | None, bot_ca_file: Path) -> ssl.SSLContext:
    """Verify the broker: ``broker_ca_file`` if set, else the bot's CA plus the system store."""
    if broker_ca_file is not None:
        context = ssl.create_default_context(cafile=str(broker_ca_file))
    else:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(bot_ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _cached_probe(ca: CertificateAuthority, cn: str) -> tuple[x509.Certificate, bytes]:
    """This process's probe certificate and key PEM: one signature, not one per check."""
    ca_der = ca.certificate.public_bytes(serialization.Encoding.DER) + cn.encode()
    with _probes_lock:
        cached = _probes.get(ca_der)
        if cached is None or cached[0].not_valid_after_utc - datetime.now(UTC) \
                < PROBE_RENEW_BEFORE:
            key = generate_private_key("ec-p256")
            cached = (ca.issue_client(cn, key, days=1), private_key_pem(key))
            _probes[ca_der] = cached
        return cached


@contextlib.contextmanager
def probe_identity(ca: CertificateAuthority, cn: str = PROBE_CN) -> Iterator[tuple[Path, Path]]:
    """A one-day client certificate, in a private temp dir removed afterwards."""
    certificate, key_pem = _cached_probe(ca, cn)
    with tempfile.TemporaryDirectory(prefix="otcert-probe-") as tmp:
        cert_path, key_path = Path(tmp) / "probe.crt", Path(tmp) / "probe.key"
        write_private_file(key_path, key_pem)
        write_public_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
        yield cert_path, key_path


def fetch_server_certificate(
    host: str, port: int, *, broker_ca_file: Path | None, ca: CertificateAuthority,
    bot_ca_file: Path, timeout: float = PROBE_TIMEOUT,
) -> x509.Certificate:
    """The verified server certificate at ``host:port``; raises OSError or ssl.SSLError.
    Blocking (network, key generation): call it in a thread."""
    try:
        der = _handshake(host, port, server_context(broker_ca_file, bot_ca_file), timeout)
    except ssl.SSLCertVerificationError:
        raise  # the broker's certificate is wrong: a client certificate changes nothing
    except (ssl.SSLError, ConnectionResetError):  # TLS 1.2 and a required client cert
        context = server_context(broker_ca_file, bot_ca_file)
        with probe_identity(ca) as (cert_path, key_path):
            context.load_cert_chain(str(cert_path), str(key_path))
            der = _handshake(host, port, context, timeout)
    if der is None:
        raise ssl.SSLError("the broker sent no certificate")
    return x509.load_der_x509_certificate(der)


def _handshake(host: str, port: int, context: ssl.SSLContext, timeout: float) -> bytes | None:
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.getpeercert(binary_form=True)
