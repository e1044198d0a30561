"""PKCS#12 profiles, passphrases, pins and uploaded-certificate checks, judged by openssl."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import (
    PASSPHRASE_ALPHABET,
    PASSPHRASE_ENTROPY_BITS,
    CertificateAuthority,
    CertificateRejected,
    PrivateKey,
    fingerprint_sha256,
    generate_private_key,
    load_certificate,
    make_passphrase,
    pin_der,
    pkcs12_bundle,
    private_key_pem,
)
from pki.bundle import PKCS12_KDF_ROUNDS
from tests.openssl import openssl, pkcs12_info, pkcs12_to_pem


@pytest.fixture(scope="module")
def alice(ca: CertificateAuthority) -> tuple[x509.Certificate, PrivateKey]:
    key = generate_private_key()
    return ca.issue_client("alice", key), key


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


# ---- passphrases --------------------------------------------------------------------------


def test_passphrase_entropy_and_charset() -> None:
    assert PASSPHRASE_ENTROPY_BITS >= 80
    assert not set("0o1li") & set(PASSPHRASE_ALPHABET)
    assert set(PASSPHRASE_ALPHABET) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert len(set(PASSPHRASE_ALPHABET)) == len(PASSPHRASE_ALPHABET)
    sample = [make_passphrase() for _ in range(200)]
    assert len(set(sample)) == 200
    group = f"[{PASSPHRASE_ALPHABET}]{{4}}"
    for phrase in sample:
        assert re.fullmatch(f"{group}(-{group}){{4}}", phrase)
    # The constant tells the truth about what make_passphrase() produces.
    symbols = len(sample[0].replace("-", ""))
    assert math.isclose(PASSPHRASE_ENTROPY_BITS, symbols * math.log2(len(PASSPHRASE_ALPHABET)))
    # Every symbol of the alphabet shows up (the generator uses all of it).
    assert set("".join(sample).replace("-", "")) == set(PASSPHRASE_ALPHABET)


# ---- PKCS#12 ------------------------------------------------------------------------------


def test_legacy_pkcs12_opens_with_openssl(
    ca: CertificateAuthority, alice: tuple[x509.Certificate, PrivateKey], tmp_path: Path
) -> None:
    cert, key = alice
    passphrase = make_passphrase()
    path = tmp_path / "alice-phone.otrp"
    path.write_bytes(
        pkcs12_bundle(cert, key, [ca.certificate], friendly_name="alice phone",
                      passphrase=passphrase)
    )
    info = pkcs12_info(path, passphrase)
    assert info.returncode == 0, info.stderr
    assert "MAC: sha1" in info.stderr
    assert (
        f"Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration {PKCS12_KDF_ROUNDS}"
        in info.stderr
    )
    assert "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC" in info.stderr
    assert "AES" not in info.stderr
    wrong = pkcs12_info(path, passphrase[:-1] + ("a" if passphrase[-1] != "a" else "b"))
    assert wrong.returncode != 0
    assert "invalid password" in wrong.stderr
    contents = pkcs12_to_pem(path, passphrase)
    assert "friendlyName: alice phone" in contents
    assert contents.count("BEGIN CERTIFICATE") == 2  # client + CA
    assert "BEGIN PRIVATE KEY" in contents


def test_modern_pkcs12_uses_aes(
    ca: CertificateAuthority, alice: tuple[x509.Certificate, PrivateKey], tmp_path: Path
) -> None:
    cert, key = alice
    path = tmp_path / "alice.p12"
    path.write_bytes(
        pkcs12_bundle(cert, key, [ca.certificate], friendly_name="alice",
                      passphrase="abcd-efgh", profile="modern")
    )
    info = pkcs12_info(path, "abcd-efgh", legacy=False)
    assert info.returncode == 0, info.stderr
    assert "AES-256-CBC" in info.stderr
    assert "MAC: sha256" in info.stderr
    assert "3-KeyTripleDES" not in info.stderr
    assert pkcs12_info(path, "abcd-efgX", legacy=False).returncode != 0


def test_pkcs12_round_trips_in_cryptography(
    ca: CertificateAuthority, alice: tuple[x509.Certificate, PrivateKey]
) -> None:
    cert, key = alice
    data = pkcs12_bundle(cert, key, [ca.certificate], friendly_name="alice", passphrase="pw-1")
    loaded = pkcs12.load_pkcs12(data, b"pw-1")
    assert loaded.cert is not None and loaded.cert.certificate == cert
    assert loaded.cert.friendly_name == b"alice"
    assert [c.certificate for c in loaded.additional_certs] == [ca.certificate]
    assert loaded.key is not None
    assert private_key_pem(loaded.key) == private_key_pem(key)  # type: ignore[arg-type]


def test_pkcs12_refuses_bad_input(
    ca: CertificateAuthority, alice: tuple[x509.Certificate, PrivateKey]
) -> None:
    cert, key = alice
    with pytest.raises(ValueError, match="passphrase"):
        pkcs12_bundle(cert, key, [ca.certificate], friendly_name="alice", passphrase="")
    with pytest.raises(ValueError, match="does not belong"):
        pkcs12_bundle(cert, generate_private_key("ec-p256"), [], friendly_name="a",
                      passphrase="x")
    with pytest.raises(ValueError, match="profile"):
        pkcs12_bundle(cert, key, [], friendly_name="a", passphrase="x",
                      profile="weak")  # type: ignore[arg-type]


def test_private_key_pem_is_unencrypted_pkcs8(alice: tuple[x509.Certificate, PrivateKey]) -> None:
    pem = private_key_pem(alice[1])
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert serialization.load_pem_private_key(pem, None).public_key() == alice[1].public_key()


# ---- pins ---------------------------------------------------------------------------------


def test_pin_and_fingerprint_match_openssl(ca: CertificateAuthority, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    openssl("x509", "-in", tmp_path / "ca.crt", "-out", tmp_path / "ca.otre", "-outform", "DER")
    assert pin_der(ca.certificate) == (tmp_path / "ca.otre").read_bytes()
    shown = openssl("x509", "-in", tmp_path / "ca.crt", "-noout", "-fingerprint", "-sha256")
    assert fingerprint_sha256(ca.certificate) == shown.stdout.strip().split("=", 1)[1]
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fingerprint_sha256(ca.certificate))


# ---- load_certificate ---------------------------------------------------------------------


def test_load_certificate_accepts_pem_and_der(ca: CertificateAuthority) -> None:
    assert load_certificate(ca.cert_pem, require_ca=True) == ca.certificate
    assert load_certificate(ca.cert_der, require_ca=True) == ca.certificate
    assert load_certificate(b"\n\n" + ca.cert_pem + b"\n") == ca.certificate


def test_load_certificate_refuses_private_keys(
    ca: CertificateAuthority, alice: tuple[x509.Certificate, PrivateKey]
) -> None:
    key_pem = private_key_pem(alice[1])
    for data in (key_pem, ca.cert_pem + key_pem, key_pem + ca.cert_pem):
        with pytest.raises(CertificateRejected, match="private key"):
            load_certificate(data)
    rsa_traditional = alice[1].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(CertificateRejected, match="private key"):
        load_certificate(ca.cert_pem + rsa_traditional)
    key_der = alice[1].private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(CertificateRejected, match="private key"):
        load_certificate(key_der)


def test_load_certificate_refuses_chains_garbage_and_size(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    with pytest.raises(CertificateRejected, match="several"):
        load_certificate(ca.cert_pem + other_ca.cert_pem)
    with pytest.raises(CertificateRejected, match="not a certificate"):
        load_certificate(b"hello world")
    with pytest.raises(CertificateRejected, match="not a certificate"):
        load_certificate(ca.cert_der + other_ca.cert_der)
    with pytest.raises(CertificateRejected, match="empty"):
        load_certificate(b"")
    with pytest.raises(CertificateRejected, match="could not be read"):
        load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateRejected, match="not a PEM certificate"):
        load_certificate(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    with pytest.raises(CertificateRejected, match="too large"):
        load_certificate(ca.cert_pem + b"\n" * (64 * 1024))


def test_load_certificate_refuses_expired_and_non_ca(
    ca: CertificateAuthority, alice: tuple[x509.Certificate, PrivateKey]
) -> None:
    leaf_pem = _pem(alice[0])
    assert load_certificate(leaf_pem) == alice[0]
    with pytest.raises(CertificateRejected, match="not a CA"):
        load_certificate(leaf_pem, require_ca=True)
    later = ca.certificate.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(CertificateRejected, match="expired"):
        load_certificate(ca.cert_pem, now=later)
    earlier = ca.certificate.not_valid_before_utc - timedelta(days=1)
    with pytest.raises(CertificateRejected, match="not valid before"):
        load_certificate(ca.cert_pem, now=earlier)
