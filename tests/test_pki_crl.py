"""CRL build, verification and the atomic, verify-before-replace write."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import (
    CertificateAuthority,
    CRLError,
    RevokedEntry,
    build_crl,
    verify_crl,
    write_crl,
)
from pki.crl import crl_pem
from tests.openssl import crl_text, openssl

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_build_crl_lists_entries_for_openssl(ca: CertificateAuthority, tmp_path: Path) -> None:
    entries = [
        RevokedEntry(0x1234ABCD, NOW - timedelta(days=1), x509.ReasonFlags.key_compromise),
        RevokedEntry(2**158 + 7, NOW - timedelta(hours=2)),
        RevokedEntry(99, NOW, x509.ReasonFlags.unspecified),
    ]
    crl = build_crl(ca, entries, crl_number=42, now=datetime.now(UTC))
    path = tmp_path / "crl.pem"
    write_crl(path, crl, ca.certificate)
    text = crl_text(path)
    assert "Serial Number: 1234ABCD" in text
    assert f"Serial Number: {2**158 + 7:X}" in text
    assert "Serial Number: 63" in text  # 99
    assert "Key Compromise" in text
    assert "CRL Number" in text and "42" in text
    assert "Authority Key Identifier" in text
    assert text.count("Serial Number:") == 3
    assert "Unspecified" not in text  # RFC 5280: leave the reason out instead
    assert crl.get_revoked_certificate_by_serial_number(0x1234ABCD) is not None
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    checked = openssl("crl", "-in", path, "-CAfile", tmp_path / "ca.crt", "-noout")
    assert "verify OK" in checked.stdout + checked.stderr


def test_crl_times_and_number(ca: CertificateAuthority) -> None:
    crl = build_crl(ca, [], crl_number=7, validity=timedelta(days=3), now=NOW)
    assert crl.last_update_utc == NOW - timedelta(minutes=5)
    assert crl.next_update_utc == NOW + timedelta(days=3)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value
    assert number.crl_number == 7
    assert len(crl) == 0
    assert crl.issuer == ca.certificate.subject


def test_duplicate_serials_listed_once(ca: CertificateAuthority) -> None:
    entries = [RevokedEntry(5, NOW), RevokedEntry(5, NOW - timedelta(days=2))]
    crl = build_crl(ca, entries, crl_number=1, now=NOW)
    assert len(crl) == 1
    revoked = crl.get_revoked_certificate_by_serial_number(5)
    assert revoked is not None
    assert revoked.revocation_date_utc == NOW - timedelta(days=2)


def test_build_refuses_bad_entries(ca: CertificateAuthority) -> None:
    with pytest.raises(CRLError, match="positive"):
        build_crl(ca, [RevokedEntry(0, NOW)], crl_number=1)
    with pytest.raises(CRLError, match="timezone"):
        build_crl(ca, [RevokedEntry(1, datetime(2030, 1, 1))], crl_number=1)
    with pytest.raises(CRLError, match="negative"):
        build_crl(ca, [], crl_number=-1)
    with pytest.raises(CRLError, match="validity"):
        build_crl(ca, [], crl_number=1, validity=timedelta(0))


def test_hundred_thousand_entries(other_ca: CertificateAuthority) -> None:
    entries = (RevokedEntry(serial, NOW) for serial in range(1, 100_001))
    crl = build_crl(other_ca, entries, crl_number=1)
    parsed = verify_crl(crl_pem(crl), other_ca.certificate)
    assert len(parsed) == 100_000
    assert parsed.get_revoked_certificate_by_serial_number(100_000) is not None


def test_verify_refuses_foreign_stale_and_garbage(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    good = crl_pem(build_crl(ca, [], crl_number=1))
    assert len(verify_crl(good, ca.certificate)) == 0
    with pytest.raises(CRLError, match="different CA"):
        verify_crl(good, other_ca.certificate)
    # Same issuer name, other key: only the signature check can tell.
    impostor = CertificateAuthority.create(
        ca.certificate.subject.rfc4514_string().removeprefix("CN="), key_type="ec-p384"
    )
    forged = crl_pem(build_crl(impostor, [], crl_number=1))
    with pytest.raises(CRLError, match="signature"):
        verify_crl(forged, ca.certificate)
    stale = crl_pem(build_crl(ca, [], crl_number=1, now=datetime.now(UTC) - timedelta(days=40)))
    with pytest.raises(CRLError, match="nextUpdate"):
        verify_crl(stale, ca.certificate)
    with pytest.raises(CRLError, match="readable"):
        verify_crl(b"", ca.certificate)
    der = build_crl(ca, [], crl_number=1).public_bytes(serialization.Encoding.DER)
    with pytest.raises(CRLError, match="readable"):
        verify_crl(der, ca.certificate)


def test_write_crl_is_0644_and_replaces(ca: CertificateAuthority, tmp_path: Path) -> None:
    path = tmp_path / "crl.pem"
    write_crl(path, build_crl(ca, [RevokedEntry(1, NOW)], crl_number=1), ca.certificate)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    write_crl(path, build_crl(ca, [RevokedEntry(2, NOW)], crl_number=2), ca.certificate)
    parsed = verify_crl(path.read_bytes(), ca.certificate)
    assert [r.serial_number for r in parsed] == [2]
    assert [p.name for p in tmp_path.iterdir()] == ["crl.pem"]


def test_write_crl_keeps_old_file_when_verification_fails(
    ca: CertificateAuthority, other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    path = tmp_path / "crl.pem"
    write_crl(path, build_crl(ca, [RevokedEntry(1, NOW)], crl_number=1), ca.certificate)
    before = path.read_bytes()
    foreign = build_crl(other_ca, [], crl_number=2)
    with pytest.raises(CRLError, match="different CA"):
        write_crl(path, foreign, ca.certificate)
    stale = build_crl(ca, [], crl_number=3, now=datetime.now(UTC) - timedelta(days=31))
    with pytest.raises(CRLError, match="nextUpdate"):
        write_crl(path, stale, ca.certificate)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["crl.pem"]  # no temp file left behind


def test_write_crl_into_missing_directory_is_crl_error(ca: CertificateAuthority,
                                                       tmp_path: Path) -> None:
    with pytest.raises(CRLError, match="Could not write"):
        write_crl(tmp_path / "missing" / "crl.pem", build_crl(ca, [], crl_number=1),
                  ca.certificate)
