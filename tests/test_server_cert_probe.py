"""The infrastructure probe reads the broker's certificate without signing a client
certificate each check: TLS 1.3 shows (and verifies) the server's certificate before the
broker refuses the missing client one. Only a TLS-1.2-only handshake needs the signed probe,
and then one per process. Against a real Mosquitto with require_certificate."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from bot.broker import server_cert
from pki import CertificateAuthority
from tests.mosquitto import Broker

pytestmark = pytest.mark.slow  # starts Mosquitto

BrokerFactory = Callable[..., Broker]


@pytest.fixture(autouse=True)
def _no_cached_probe() -> None:
    server_cert._probes.clear()


def fetch(broker: Broker, ca: CertificateAuthority) -> x509.Certificate:
    return server_cert.fetch_server_certificate(
        broker.host, broker.port, broker_ca_file=None, ca=ca, bot_ca_file=broker.ca_path)


def test_tls13_reads_the_server_certificate_without_signing_anything(
    other_ca: CertificateAuthority, broker_factory: BrokerFactory
) -> None:
    broker = broker_factory(other_ca)
    offset = broker.log_offset()
    for _ in range(3):
        cert = fetch(broker, other_ca)
        served = x509.load_pem_x509_certificate(broker.cert_path.read_bytes())
        assert cert == served
    assert server_cert._probes == {}  # nothing was signed
    assert "otcert-doctor" not in broker.log_text[offset:]


def test_a_tls12_only_handshake_signs_one_probe_per_process(
    other_ca: CertificateAuthority, broker_factory: BrokerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = server_cert.server_context

    def tls12_only(broker_ca_file: Path | None, bot_ca_file: Path) -> ssl.SSLContext:
        context = real(broker_ca_file, bot_ca_file)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context

    monkeypatch.setattr(server_cert, "server_context", tls12_only)
    broker = broker_factory(other_ca)
    first = fetch(broker, other_ca)
    [(signed, _)] = server_cert._probes.values()
    second = fetch(broker, other_ca)
    assert first == second
    assert [c for c, _ in server_cert._probes.values()] == [signed]  # reused, not re-signed


def test_an_unverifiable_broker_is_still_refused(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority,
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory(ca)  # signed by a CA the probe is not told to trust
    trusted = tmp_path / "bot-ca.crt"
    trusted.write_bytes(other_ca.cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError):
        server_cert.fetch_server_certificate(
            broker.host, broker.port, broker_ca_file=None, ca=other_ca, bot_ca_file=trusted)
    assert server_cert._probes == {}
