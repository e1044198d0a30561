"""CertificateAuthority: create, save/load (file modes, passphrases), adopt, issue."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import (
    CAError,
    CertificateAuthority,
    InsecureKeyFile,
    InvalidName,
    generate_private_key,
)
from pki.authority import BACKDATE
from tests.openssl import make_generate_ca_sh_ca, openssl, verify, x509_text


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def ec_ca() -> CertificateAuthority:
    return CertificateAuthority.create("EC CA", key_type="ec-p384")


# ---- creating -----------------------------------------------------------------------------


def test_created_rsa_ca_has_ca_extensions(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert = ca.certificate
    assert isinstance(ca.private_key, rsa.RSAPrivateKey)
    assert ca.private_key.key_size == 4096
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    text = x509_text(tmp_path / "ca.crt")
    assert "CA:TRUE" in text
    assert "Certificate Sign, CRL Sign" in text
    assert "sha256WithRSAEncryption" in text
    # A self-signed CA verifies against itself.
    assert verify(tmp_path / "ca.crt", tmp_path / "ca.crt").returncode == 0


def test_created_ec_ca(ec_ca: CertificateAuthority) -> None:
    assert isinstance(ec_ca.private_key, ec.EllipticCurvePrivateKey)
    assert ec_ca.private_key.curve.name == "secp384r1"
    assert ec_ca.certificate.subject.rfc4514_string() == "CN=EC CA"


def test_views_match_openssl(ca: CertificateAuthority, tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    openssl("x509", "-in", tmp_path / "ca.crt", "-outform", "DER", "-out", tmp_path / "ca.der")
    assert (tmp_path / "ca.der").read_bytes() == ca.cert_der
    shown = openssl("x509", "-in", tmp_path / "ca.crt", "-noout", "-fingerprint", "-sha256").stdout
    assert shown.strip().split("=", 1)[1] == ca.fingerprint_sha256


# ---- saving and loading -------------------------------------------------------------------


def test_save_writes_key_0600_and_loads_back(ec_ca: CertificateAuthority, tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "ca.crt", tmp_path / "ca.key"
    ec_ca.save(cert_path, key_path)
    assert _mode(key_path) == 0o600
    assert _mode(cert_path) == 0o644
    assert b"ENCRYPTED" not in key_path.read_bytes()
    loaded = CertificateAuthority.load(cert_path, key_path)
    assert loaded.certificate == ec_ca.certificate
    assert loaded.fingerprint_sha256 == ec_ca.fingerprint_sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key"]  # no temp left


def test_save_with_passphrase_encrypts(ec_ca: CertificateAuthority, tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "ca.crt", tmp_path / "ca.key"
    ec_ca.save(cert_path, key_path, passphrase=b"correct horse")
    assert _mode(key_path) == 0o600
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in key_path.read_bytes()
    loaded = CertificateAuthority.load(cert_path, key_path, passphrase=b"correct horse")
    assert loaded.certificate == ec_ca.certificate
    with pytest.raises(CAError, match="wrong passphrase") as wrong:
        CertificateAuthority.load(cert_path, key_path, passphrase=b"battery staple")
    assert "battery" not in str(wrong.value)
    with pytest.raises(CAError, match="encrypted"):
        CertificateAuthority.load(cert_path, key_path)


def test_empty_passphrase_refused(ec_ca: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(CAError, match="empty"):
        ec_ca.save(tmp_path / "ca.crt", tmp_path / "ca.key", passphrase=b"")
    assert not (tmp_path / "ca.key").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_load_refuses_readable_key_file(
    ec_ca: CertificateAuthority, tmp_path: Path, mode: int
) -> None:
    cert_path, key_path = tmp_path / "ca.crt", tmp_path / "ca.key"
    ec_ca.save(cert_path, key_path)
    key_path.chmod(mode)
    with pytest.raises(InsecureKeyFile, match="chmod 600"):
        CertificateAuthority.load(cert_path, key_path)
    key_path.chmod(0o400)  # read-only for the owner is fine (generate-CA.sh does this)
    CertificateAuthority.load(cert_path, key_path)


def test_load_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(CAError, match="Cannot read"):
        CertificateAuthority.load(tmp_path / "nope.crt", tmp_path / "nope.key")


def test_key_must_match_certificate(
    ca: CertificateAuthority, ec_ca: CertificateAuthority
) -> None:
    other_key = ec_ca.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CAError, match="does not belong"):
        CertificateAuthority.from_pem(ca.cert_pem, other_key)


def test_non_ca_certificate_refused(ec_ca: CertificateAuthority) -> None:
    key = generate_private_key("ec-p256")
    leaf = ec_ca.issue_client("alice", key)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CAError, match="not a CA"):
        CertificateAuthority.from_pem(_pem(leaf), key_pem)


def test_garbage_pem_refused(ec_ca: CertificateAuthority) -> None:
    with pytest.raises(CAError, match="certificate"):
        CertificateAuthority.from_pem(b"not a cert", b"not a key")
    with pytest.raises(CAError, match="private key"):
        CertificateAuthority.from_pem(ec_ca.cert_pem, b"not a key")


def test_adopts_generate_ca_sh_ca(tmp_path: Path) -> None:
    cert_path, key_path = make_generate_ca_sh_ca(tmp_path)
    assert "Key Usage" not in x509_text(cert_path)  # the quirk we must accept
    adopted = CertificateAuthority.load(cert_path, key_path)
    assert isinstance(adopted.certificate.signature_hash_algorithm, hashes.SHA512)
    key = generate_private_key()
    cert = adopted.issue_client("bob", key)
    (tmp_path / "bob.crt").write_bytes(_pem(cert))
    assert verify(cert_path, tmp_path / "bob.crt", purpose="sslclient").returncode == 0
    # A passphrase configured for an unencrypted key still loads it (re-saved encrypted).
    again = CertificateAuthority.load(cert_path, key_path, passphrase=b"later")
    again.save(tmp_path / "new.crt", tmp_path / "new.key", passphrase=b"later")
    assert b"ENCRYPTED" in (tmp_path / "new.key").read_bytes()


# ---- client certificates ------------------------------------------------------------------


def test_client_certificate_profile(ca: CertificateAuthority, tmp_path: Path) -> None:
    key = generate_private_key()
    now = datetime.now(UTC)
    cert = ca.issue_client("Alice", key, days=30, now=now)
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    assert cert.issuer == ca.certificate.subject
    assert 0 < cert.serial_number < 2**159
    assert cert.not_valid_before_utc == (now - BACKDATE).replace(microsecond=0)
    assert cert.not_valid_after_utc == (now + timedelta(days=30)).replace(microsecond=0)
    ext = cert.extensions
    constraints = ext.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "alice.crt").write_bytes(_pem(cert))
    assert verify(tmp_path / "ca.crt", tmp_path / "alice.crt", purpose="sslclient").returncode == 0
    assert verify(tmp_path / "ca.crt", tmp_path / "alice.crt", purpose="sslserver").returncode != 0


def test_serials_are_unique(ec_ca: CertificateAuthority) -> None:
    key = generate_private_key("ec-p256")
    serials = {ec_ca.issue_client("alice", key).serial_number for _ in range(20)}
    assert len(serials) == 20


@pytest.mark.parametrize("key_type", ["rsa3072", "ec-p256"])
def test_other_client_key_types_verify(
    ec_ca: CertificateAuthority, tmp_path: Path, key_type: str
) -> None:
    key = generate_private_key(key_type)  # type: ignore[arg-type]
    cert = ec_ca.issue_client("carol", key)
    (tmp_path / "ca.crt").write_bytes(ec_ca.cert_pem)
    (tmp_path / "c.crt").write_bytes(_pem(cert))
    assert verify(tmp_path / "ca.crt", tmp_path / "c.crt", purpose="sslclient").returncode == 0


def test_unsupported_keys_refused(ec_ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="Unknown key type"):
        generate_private_key("dsa1024")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unsupported key type"):
        ec_ca.issue_client("alice", ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="too small"):
        ec_ca.issue_client("alice", weak)


def test_lifetime_clamped_to_ca(ec_ca: CertificateAuthority) -> None:
    key = generate_private_key("ec-p256")
    ca_end = ec_ca.certificate.not_valid_after_utc
    cert = ec_ca.issue_client("dave", key, days=100_000)
    assert cert.not_valid_after_utc == ca_end
    with pytest.raises(CAError, match="expired"):
        ec_ca.issue_client("dave", key, now=ca_end + timedelta(days=1))
    with pytest.raises(CAError, match="at least one day"):
        ec_ca.issue_client("dave", key, days=0)


HOSTILE_USERNAMES = [
    "a/b", "+", "#", "../x", "a" * 65, "\u202eevil", "", "nul\x00", "\u0430lice", "a b", "..",
    "12345",
]


@pytest.mark.parametrize("username", HOSTILE_USERNAMES)
def test_hostile_usernames_refused(ec_ca: CertificateAuthority, username: str) -> None:
    key = generate_private_key("ec-p256")
    with pytest.raises(InvalidName):
        ec_ca.issue_client(username, key)


# ---- server certificates ------------------------------------------------------------------


def test_server_certificate(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, key = ca.issue_server(["mqtt.example.org", "localhost"], ["127.0.0.1", "::1"])
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mqtt.example.org", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= timedelta(days=825) + BACKDATE
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "server.crt").write_bytes(_pem(cert))
    ok = verify(tmp_path / "ca.crt", tmp_path / "server.crt", purpose="sslserver")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    host_check = openssl(
        "verify", "-CAfile", tmp_path / "ca.crt", "-verify_hostname", "mqtt.example.org",
        tmp_path / "server.crt", check=False,
    )
    assert host_check.returncode == 0
    wrong_host = openssl(
        "verify", "-CAfile", tmp_path / "ca.crt", "-verify_hostname", "evil.example.org",
        tmp_path / "server.crt", check=False,
    )
    assert wrong_host.returncode != 0


def test_server_certificate_limits(ec_ca: CertificateAuthority) -> None:
    with pytest.raises(CAError, match="825"):
        ec_ca.issue_server(["a.example"], days=826)
    with pytest.raises(CAError, match="at least one"):
        ec_ca.issue_server([])
    with pytest.raises(CAError, match="DNS name"):
        ec_ca.issue_server(["bad host/"])
    with pytest.raises(CAError, match="IP address"):
        ec_ca.issue_server([], ["300.1.1.1"])
