"""Issue 14 in-process: serial parsing, CRL numbers past the file on disk, the broker-admin
pair recorded and superseded, its key encrypted at rest yet loadable by the kick path."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from bot.broker import BrokerAdmin, admin_tls_context, ensure_admin_identity
from bot.core.crl import crl_number_on_disk
from bot.core.errors import UserError
from bot.core.keypool import KeyPool
from bot.core.own_certs import record_admin_identity, serial_candidates
from bot.core.rules import Policy
from bot.core.service import Service
from pki import CertificateAuthority
from pki.crl import build_crl, write_crl
from storage import Repository

SERIAL_CASES = [
    ("4e42536f", ["4e42536f"]),
    ("4E:42:53:6F", ["4e42536f"]),
    ("0x4e42536f", ["4e42536f"]),
    ("00ab", ["ab"]),
    ("12:34", ["1234"]),  # colons: always hex
    ("1234", ["1234", "4d2"]),  # plain digits: hex or decimal, resolved by what exists
    ("10", ["10", "a"]),
]


@pytest.mark.parametrize(("text", "expected"), SERIAL_CASES)
def test_serial_candidates(text: str, expected: list[str]) -> None:
    assert serial_candidates(text) == expected


@pytest.mark.parametrize("text", ["", "zz", "12::34", "12:", "-5", "1 2"])
def test_serial_candidates_refuse(text: str) -> None:
    with pytest.raises(UserError, match="not a certificate serial"):
        serial_candidates(text)


def _service(repo: Repository, ca: CertificateAuthority, tmp_path: Path) -> Service:
    policy = Policy(admin_ids=frozenset({1}), crl_path=tmp_path / "crl.pem", data_dir=tmp_path)
    return Service(repo, ca, policy, KeyPool("ec-p256", 0))


async def test_crl_number_continues_past_the_crl_on_disk(
    repo: Repository, other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A restored (older) database must not number its CRL below the one already published."""
    write_crl(tmp_path / "crl.pem", build_crl(other_ca, [], crl_number=500),
              other_ca.certificate)
    service = _service(repo, other_ca, tmp_path)
    assert (await service.refresh_crl()).written
    assert crl_number_on_disk(tmp_path / "crl.pem") == 501
    assert (await service.refresh_crl()).written
    assert crl_number_on_disk(tmp_path / "crl.pem") == 502
    assert await repo.crl_number() == 502


async def test_replaced_admin_pair_is_superseded_and_listed_in_the_crl(
    repo: Repository, other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    service = _service(repo, other_ca, tmp_path)
    cert_path, key_path = ensure_admin_identity(other_ca, tmp_path, "otcert-admin")
    first = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
    assert await record_admin_identity(service, tmp_path) == 0
    key_path.chmod(0o640)  # loosened: re-made
    ensure_admin_identity(other_ca, tmp_path, "otcert-admin")
    assert await record_admin_identity(service, tmp_path) == 1
    assert await record_admin_identity(service, tmp_path) == 0  # recorded once
    assert (await service.refresh_crl()).written
    crl = x509.load_pem_x509_crl((tmp_path / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(first) is not None
    active = await repo.service_certificates(active_only=True)
    assert [c.serial for c in active] == [format(
        x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number, "x")]


def test_admin_key_encrypted_at_rest_and_loadable_for_the_kick(
    other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    secret = b"ca key passphrase"
    cert_path, key_path = ensure_admin_identity(other_ca, tmp_path, "otcert-admin",
                                                passphrase=secret)
    assert b"ENCRYPTED" in key_path.read_bytes()
    admin = BrokerAdmin("localhost", 8883, cert_path, key_path, None, tmp_path / "ca.crt",
                        key_password=secret)
    (tmp_path / "ca.crt").write_bytes(other_ca.cert_pem)
    admin_tls_context(admin)  # raises if the key cannot be loaded
    assert "ca key passphrase" not in repr(admin)
    serial = cert_path.read_bytes()
    assert ensure_admin_identity(other_ca, tmp_path, "otcert-admin", passphrase=secret)
    assert cert_path.read_bytes() == serial, "an encrypted pair is kept, not re-made"


def test_plain_admin_key_gets_encrypted_when_a_passphrase_is_set(
    other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, key_path = ensure_admin_identity(other_ca, tmp_path, "otcert-admin")
    before = cert_path.read_bytes()
    ensure_admin_identity(other_ca, tmp_path, "otcert-admin", passphrase=b"now set")
    assert b"ENCRYPTED" in key_path.read_bytes() and cert_path.read_bytes() == before
