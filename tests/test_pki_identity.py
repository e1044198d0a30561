"""pki.identity: fingerprint, public-key comparison and authority key identifier, each once."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import NameOID

import pki
import pki.bundle
from pki import CertificateAuthority, generate_private_key
from pki.identity import (
    HasPublicKey,
    authority_key_identifier,
    fingerprint_sha256,
    public_key_der,
    same_public_key,
)
from tests.openssl import openssl

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _self_signed(public: object, signer: ec.EllipticCurvePrivateKey, *,
                 ski: bool) -> x509.Certificate:
    """A certificate over ``public`` signed by ``signer``, with or without a SKI."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "identity test")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1))
    )
    if ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public),  # type: ignore[arg-type]
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def world(ca: CertificateAuthority) -> dict[str, HasPublicKey]:
    """Named certificates and keys the tables below pick from."""
    alice_key = generate_private_key("ec-p256")
    other_key = generate_private_key("ec-p256")
    return {
        "ca": ca.certificate,
        "ca key": ca.private_key,
        "ca reissued": _self_signed(ca.private_key.public_key(), other_key, ski=False),
        "alice": ca.issue_client("alice", alice_key, days=2, now=NOW),
        "alice again": ca.issue_client("alice", alice_key, days=5, now=NOW),
        "alice key": alice_key,
        "other key": other_key,
    }


# ---- fingerprint --------------------------------------------------------------------------

def test_the_fingerprint_is_upper_case_colon_separated_sha256_of_the_der(
    ca: CertificateAuthority,
) -> None:
    digest = hashlib.sha256(ca.cert_der).hexdigest().upper()
    expected = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    assert fingerprint_sha256(ca.certificate) == expected
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", expected)


def test_the_fingerprint_reads_as_openssl_shows_it(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    shown = openssl("x509", "-in", tmp_path / "ca.crt", "-noout", "-fingerprint", "-sha256")
    assert shown.stdout.strip().split("=", 1)[1] == fingerprint_sha256(ca.certificate)


@pytest.mark.parametrize("where", [pki.fingerprint_sha256, pki.bundle.fingerprint_sha256])
def test_every_public_name_for_the_fingerprint_is_the_one_helper(where: object) -> None:
    assert where is fingerprint_sha256


def test_the_ca_shows_the_same_fingerprint(ca: CertificateAuthority) -> None:
    assert ca.fingerprint_sha256 == fingerprint_sha256(ca.certificate)


# ---- public keys --------------------------------------------------------------------------

@pytest.mark.parametrize(("first", "second", "same"), [
    ("ca", "ca key", True),
    ("ca key", "ca", True),
    ("ca", "ca reissued", True),  # one CA key, two certificates: the same CA to a verifier
    ("alice", "alice key", True),
    ("alice", "alice again", True),
    ("alice", "other key", False),
    ("ca", "alice", False),
    ("ca key", "alice key", False),
    ("ca reissued", "other key", False),  # the signer's key is not the certificate's key
])
def test_same_public_key_compares_what_the_objects_carry(
    world: dict[str, HasPublicKey], first: str, second: str, same: bool
) -> None:
    assert same_public_key(world[first], world[second]) is same


@pytest.mark.parametrize("name", ["ca", "ca key", "alice", "alice key"])
def test_public_key_der_is_the_subject_public_key_info(
    world: dict[str, HasPublicKey], name: str
) -> None:
    der = public_key_der(world[name])
    loaded = serialization.load_der_public_key(der)
    assert loaded.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo) == der


# ---- authority key identifier --------------------------------------------------------------

Maker = Callable[[ec.EllipticCurvePrivateKey], x509.Certificate]


@pytest.mark.parametrize(("maker", "from_ski"), [
    (lambda key: _self_signed(key.public_key(), key, ski=True), True),
    (lambda key: _self_signed(key.public_key(), key, ski=False), False),
    (lambda key: _self_signed(ed25519.Ed25519PrivateKey.generate().public_key(), key,
                              ski=False), False),
], ids=["with a SKI", "without a SKI", "ed25519 without a SKI"])
def test_the_aki_names_the_issuers_ski_or_else_its_key(maker: Maker, from_ski: bool) -> None:
    issuer = maker(ec.generate_private_key(ec.SECP256R1()))
    aki = authority_key_identifier(issuer)
    derived = x509.AuthorityKeyIdentifier.from_issuer_public_key(
        issuer.public_key())  # type: ignore[arg-type]
    assert aki.key_identifier == derived.key_identifier  # the SKI is made the same way here
    if from_ski:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki == x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        assert aki == derived


def test_an_issuer_with_a_custom_ski_is_named_by_that_ski() -> None:
    """CAs made elsewhere may use any SKI (e.g. a truncated hash): the AKI must copy it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custom ski")])
    issuer = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier(b"\x01\x02\x03\x04"), critical=False)
        .sign(key, hashes.SHA256())
    )
    assert authority_key_identifier(issuer).key_identifier == b"\x01\x02\x03\x04"


def test_a_key_that_cannot_sign_has_no_aki() -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    issuer = _self_signed(x25519.X25519PrivateKey.generate().public_key(), signer, ski=False)
    with pytest.raises(ValueError, match="unsupported key type"):
        authority_key_identifier(issuer)


def test_issued_certificates_and_crls_carry_the_same_aki(ca: CertificateAuthority) -> None:
    client = ca.issue_client("bob", generate_private_key("ec-p256"), days=2, now=NOW)
    crl = pki.build_crl(ca, [], crl_number=1, now=NOW)
    expected = authority_key_identifier(ca.certificate)
    assert client.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value == expected
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value == expected


# ---- one place ---------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", [
    r"\.fingerprint\(\s*hashes\.SHA256\(\)\s*\)",
    r"PublicFormat\.SubjectPublicKeyInfo",
    r"from_issuer_subject_key_identifier",
])
def test_each_idea_is_written_only_in_pki_identity(pattern: str) -> None:
    found = [
        str(path.relative_to(REPO))
        for package in ("bot", "pki", "storage")
        for path in sorted((REPO / package).rglob("*.py"))
        if re.search(pattern, path.read_text()) and path != REPO / "pki" / "identity.py"
    ]
    assert found == []
