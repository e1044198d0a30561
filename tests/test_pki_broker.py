"""Real mosquitto accepts what the pki issues and refuses what it revokes or did not issue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import (
    CertificateAuthority,
    RevokedEntry,
    generate_private_key,
    make_passphrase,
    pkcs12_bundle,
)
from tests.mosquitto import (
    Broker,
    ClientFiles,
    MqttSession,
    connect_ok,
    connect_refused,
    publish,
    write_client_files,
)
from tests.openssl import make_generate_ca_sh_ca

pytestmark = pytest.mark.slow  # starts Mosquitto

BrokerFactory = Callable[..., Broker]


def _certificate(files: ClientFiles) -> x509.Certificate:
    return x509.load_pem_x509_certificate(files.cert.read_bytes())


def _client_from_pkcs12(ca: CertificateAuthority, username: str, directory: Path) -> ClientFiles:
    """Issue like the bot does, then unpack the PKCS#12 the way a phone would."""
    key = generate_private_key()
    passphrase = make_passphrase()
    bundle = pkcs12_bundle(
        ca.issue_client(username, key), key, [ca.certificate],
        friendly_name=f"{username} phone", passphrase=passphrase,
    )
    unpacked_key, cert, extra = pkcs12.load_key_and_certificates(bundle, passphrase.encode())
    assert unpacked_key is not None and cert is not None and extra == [ca.certificate]
    return write_client_files(directory, cert, unpacked_key, ca.certificate)  # type: ignore[arg-type]


def test_fresh_client_accepted_and_foreign_ca_refused(
    ca: CertificateAuthority, other_ca: CertificateAuthority,
    broker_factory: BrokerFactory, tmp_path: Path,
) -> None:
    broker = broker_factory(ca)
    alice = _client_from_pkcs12(ca, "alice", tmp_path / "alice")
    assert connect_ok(broker, alice)
    assert "u'alice'" in broker.log_text  # the CN became the MQTT username

    mallory_key = generate_private_key("ec-p256")
    mallory = write_client_files(
        tmp_path / "mallory", other_ca.issue_client("mallory", mallory_key), mallory_key,
        ca.certificate,
    )
    assert connect_refused(broker, mallory)
    assert "u'mallory'" not in broker.log_text


def test_revoked_client_refused_after_sighup(
    ca: CertificateAuthority, broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = broker_factory(ca)
    alice = _client_from_pkcs12(ca, "alice", tmp_path / "alice")
    bob = _client_from_pkcs12(ca, "bob", tmp_path / "bob")
    assert connect_ok(broker, alice) and connect_ok(broker, bob)

    broker.revoke(_certificate(alice))
    assert connect_refused(broker, alice)
    assert connect_ok(broker, bob)  # only the revoked serial is shut out
    assert broker.running


def test_crl_without_sighup_not_yet_effective(
    ca: CertificateAuthority, broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    """Documents why the bot must signal the broker: mosquitto reads the CRL only on SIGHUP."""
    broker = broker_factory(ca)
    alice = _client_from_pkcs12(ca, "alice", tmp_path / "alice")
    serial = _certificate(alice).serial_number
    broker.write_crl([RevokedEntry(serial, datetime.now(UTC))], reload=False)
    assert connect_ok(broker, alice)
    broker.reload()
    assert connect_refused(broker, alice)


def test_adopted_generate_ca_sh_ca_works_with_broker(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    cert_path, key_path = make_generate_ca_sh_ca(tmp_path)
    adopted = CertificateAuthority.load(cert_path, key_path)
    broker = broker_factory(adopted)
    carol = _client_from_pkcs12(adopted, "carol", tmp_path / "carol")
    assert connect_ok(broker, carol)
    broker.revoke(_certificate(carol))
    assert connect_refused(broker, carol)


def test_acl_confines_publish_to_own_subtree(
    ca: CertificateAuthority, broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = broker_factory(ca)
    alice = _client_from_pkcs12(ca, "alice", tmp_path / "alice")
    bob = _client_from_pkcs12(ca, "bob", tmp_path / "bob")
    with MqttSession(broker, bob) as watcher:
        watcher.subscribe("owntracks/#")
        assert publish(broker, alice, topic="owntracks/bob/phone", message="forged").returncode == 0
        assert publish(broker, alice, topic="owntracks/alice/phone", message="real").returncode == 0
        topic, payload = watcher.messages.get(timeout=5)
        assert (topic, payload) == ("owntracks/alice/phone", b"real")
        assert watcher.messages.empty()
