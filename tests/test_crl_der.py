"""The hand-spliced CRL (pki.crl fast path) against cryptography's own CRL builder.

build_crl encodes entries itself and splices them into a frame cryptography signed; the
strongest check is that the bytes are exactly what cryptography's builder makes from the
same inputs (whole DER with an RSA CA: PKCS#1 v1.5 signatures are deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from pki import CertificateAuthority, CRLError, RevokedEntry, _der, build_crl, write_crl
from pki.authority import BACKDATE
from pki.crl import crl_pem
from tests.openssl import crl_text, openssl

NOW = datetime(2031, 5, 6, 7, 8, 9, 654_321, tzinfo=UTC)
VALIDITY = timedelta(days=30)
EDGE_SERIALS = [1, 127, 128, 255, 256, 0x8000, 2**63, 2**64 - 1, 2**158, 2**159 - 1]
EDGE_TIMES = [
    datetime(1950, 1, 1, tzinfo=UTC),
    datetime(2049, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2050, 1, 1, tzinfo=UTC),
    datetime(2050, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # 2049 in UTC
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    NOW,
]
REASONS: list[x509.ReasonFlags | None] = [None, *x509.ReasonFlags]


def reference_crl(
    authority: CertificateAuthority,
    entries: Sequence[RevokedEntry],
    *,
    crl_number: int,
    now: datetime,
    validity: timedelta = VALIDITY,
) -> x509.CertificateRevocationList:
    """The CRL built entirely by cryptography's validating builders (the old way)."""
    chosen: dict[int, RevokedEntry] = {}
    for entry in entries:
        known = chosen.get(entry.serial)
        if known is None or entry.revoked_at < known.revoked_at:
            chosen[entry.serial] = entry
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(now - BACKDATE)
        .next_update(now + validity)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
    builder = builder.add_extension(aki, critical=False)
    for entry in chosen.values():
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason not in (None, x509.ReasonFlags.unspecified):
            assert entry.reason is not None
            revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(authority.private_key, hashes.SHA256())


def assert_same_as_cryptography(
    authority: CertificateAuthority,
    entries: Sequence[RevokedEntry],
    *,
    crl_number: int = 7,
    now: datetime = NOW,
) -> x509.CertificateRevocationList:
    ours = build_crl(authority, entries, crl_number=crl_number, validity=VALIDITY, now=now)
    theirs = reference_crl(authority, entries, crl_number=crl_number, now=now)
    assert ours.tbs_certlist_bytes == theirs.tbs_certlist_bytes
    der = serialization.Encoding.DER
    if isinstance(authority.private_key, rsa.RSAPrivateKey):
        assert ours.public_bytes(der) == theirs.public_bytes(der)
    # Our own PEM (no re-encoding) equals cryptography's re-encoding of the parsed CRL.
    assert crl_pem(ours) == ours.public_bytes(serialization.Encoding.PEM)
    assert ours.is_signature_valid(authority.certificate.public_key())  # type: ignore[arg-type]
    return ours


serials = st.one_of(
    st.integers(1, 4),  # a small pool: duplicates, and cached serials seen with new times
    st.sampled_from(EDGE_SERIALS),
    st.integers(1, 2**159 - 1),
)
times = st.one_of(
    st.sampled_from(EDGE_TIMES),
    st.datetimes(
        min_value=datetime(1950, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
        ),
    ),
)
nows = st.datetimes(
    min_value=datetime(1951, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
)
entry_lists = st.lists(st.builds(RevokedEntry, serials, times, st.sampled_from(REASONS)),
                       max_size=12)


@settings(max_examples=60, deadline=None)
@given(entries=entry_lists, crl_number=st.integers(0, 2**64), now=nows)
def test_rsa_crl_is_byte_identical_to_cryptography(
    ca: CertificateAuthority, entries: list[RevokedEntry], crl_number: int, now: datetime
) -> None:
    assert_same_as_cryptography(ca, entries, crl_number=crl_number, now=now)


@settings(max_examples=40, deadline=None)
@given(entries=entry_lists)
def test_ec_crl_has_cryptography_tbs(
    other_ca: CertificateAuthority, entries: list[RevokedEntry]
) -> None:
    assert_same_as_cryptography(other_ca, entries)


def test_edge_cases_and_every_reason(ca: CertificateAuthority) -> None:
    entries = [
        RevokedEntry(serial, time, reason)
        for serial, time, reason in zip(
            EDGE_SERIALS, EDGE_TIMES * 2, REASONS * 2, strict=False
        )
    ]
    entries += [RevokedEntry(1, NOW - timedelta(days=1)), RevokedEntry(1, NOW)]  # duplicates
    crl = assert_same_as_cryptography(ca, entries)
    assert len(crl) == len(EDGE_SERIALS)
    assert assert_same_as_cryptography(ca, []).public_bytes(serialization.Encoding.DER)


def test_cached_entries_follow_new_times_and_reasons(other_ca: CertificateAuthority) -> None:
    """The entry cache is keyed by serial: a new time or reason must not reuse old bytes."""
    first = RevokedEntry(424242, NOW - timedelta(days=3), x509.ReasonFlags.superseded)
    assert_same_as_cryptography(other_ca, [first])
    for changed in (
        RevokedEntry(424242, NOW - timedelta(days=3, microseconds=-1), first.reason),
        RevokedEntry(424242, NOW - timedelta(days=2), first.reason),
        RevokedEntry(424242, NOW - timedelta(days=2), x509.ReasonFlags.key_compromise),
        RevokedEntry(424242, NOW - timedelta(days=2), None),
    ):
        crl = assert_same_as_cryptography(other_ca, [changed])
        revoked = crl.get_revoked_certificate_by_serial_number(424242)
        assert revoked is not None
        assert revoked.revocation_date_utc == changed.revoked_at.replace(microsecond=0)


def test_long_form_lengths_match(other_ca: CertificateAuthority) -> None:
    """Over 64 KiB of entries: the three-byte DER lengths of the list and the TBS."""
    entries = [
        RevokedEntry(2**127 + i * 7919, NOW - timedelta(minutes=i), REASONS[i % len(REASONS)])
        for i in range(2_000)
    ]
    crl = assert_same_as_cryptography(other_ca, entries)
    assert len(crl.tbs_certlist_bytes) > 0x10000


@pytest.mark.parametrize("authority_name", ["ca", "other_ca"])
def test_openssl_verifies_and_reads_entries(
    authority_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    authority: CertificateAuthority = request.getfixturevalue(authority_name)
    entries = [
        RevokedEntry(0xC0FFEE, NOW, x509.ReasonFlags.key_compromise),
        RevokedEntry(2**159 - 1, datetime(2060, 1, 2, 3, 4, 5, tzinfo=UTC),
                     x509.ReasonFlags.cessation_of_operation),
        RevokedEntry(0x80, NOW),
    ]
    path, ca_path = tmp_path / "crl.pem", tmp_path / "ca.crt"
    write_crl(path, build_crl(authority, entries, crl_number=3), authority.certificate)
    ca_path.write_bytes(authority.cert_pem)
    checked = openssl("crl", "-in", path, "-CAfile", ca_path, "-noout")
    assert "verify OK" in checked.stdout + checked.stderr
    text = crl_text(path)
    assert "Serial Number: C0FFEE" in text
    assert "Key Compromise" in text
    assert f"Serial Number: {2**159 - 1:X}" in text
    assert "Jan  2 03:04:05 2060 GMT" in text and "Cessation Of Operation" in text
    assert "Serial Number: 0080" in text or "Serial Number: 80" in text
    assert text.count("Serial Number:") == 3


def test_write_uses_the_right_bytes_for_an_older_crl(
    other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    """write_crl reuses build_crl's DER only for the CRL it belongs to."""
    older = build_crl(other_ca, [RevokedEntry(11, NOW)], crl_number=1)
    newer = build_crl(other_ca, [RevokedEntry(12, NOW)], crl_number=2)
    path = tmp_path / "crl.pem"
    write_crl(path, older, other_ca.certificate)
    assert path.read_bytes() == older.public_bytes(serialization.Encoding.PEM)
    write_crl(path, newer, other_ca.certificate)
    assert path.read_bytes() == newer.public_bytes(serialization.Encoding.PEM)
    assert [r.serial_number for r in x509.load_pem_x509_crl(path.read_bytes())] == [12]


def test_write_refuses_a_crl_signed_by_an_impostor(
    other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    """Same issuer name, other key: the signature check on build_crl's own bytes catches it."""
    impostor = CertificateAuthority.create("Other CA", key_type="ec-p384")
    assert impostor.certificate.subject == other_ca.certificate.subject
    forged = build_crl(impostor, [RevokedEntry(5, NOW)], crl_number=1)
    with pytest.raises(CRLError, match="signature"):
        write_crl(tmp_path / "crl.pem", forged, other_ca.certificate)
    assert list(tmp_path.iterdir()) == []


def test_refuses_entries_cryptography_cannot_encode(other_ca: CertificateAuthority) -> None:
    with pytest.raises(CRLError, match="1950"):
        build_crl(other_ca, [RevokedEntry(1, datetime(1949, 12, 31, tzinfo=UTC))], crl_number=1)
    mixed = [RevokedEntry(3, NOW), RevokedEntry(3, datetime(2030, 1, 1))]
    with pytest.raises(CRLError, match="timezone"):
        build_crl(other_ca, mixed, crl_number=1)
    odd_reason = RevokedEntry(4, NOW, "superseded")  # type: ignore[arg-type]
    with pytest.raises(CRLError, match="reason"):
        build_crl(other_ca, [odd_reason], crl_number=1)
    for too_long in (2**159, 2**160, 2**200):  # more than 20 octets as a DER INTEGER
        with pytest.raises(CRLError, match="159 bits"):
            build_crl(other_ca, [RevokedEntry(too_long, NOW)], crl_number=1)
    build_crl(other_ca, [RevokedEntry(2**159 - 1, NOW)], crl_number=1)  # the largest allowed


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65_535, 65_536, 5_000_000])
def test_der_lengths_round_trip(length: int) -> None:
    """Short and long form lengths as DER requires them (minimal), read back exactly."""
    encoded = _der.tlv(_der.SEQUENCE, bytes(length))
    assert _der.read(encoded) == (_der.SEQUENCE, len(encoded) - length, len(encoded))
    expected_size = 1 if length < 128 else 1 + (length.bit_length() + 7) // 8
    assert len(encoded) - length == 1 + expected_size
    with pytest.raises(ValueError):
        _der.read(encoded[:-1] if length else encoded[:1])
