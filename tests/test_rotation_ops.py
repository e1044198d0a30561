"""A CA rotation as backup, restore, doctor and ``server-cert`` see it (issue 17, point 5).

Real files in a temp data dir, the real CLI entry point; no broker (the broker tests are in
tests/test_rotation_broker.py).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography import x509

from bot.config import Settings
from bot.core.authorities import AuthorityFiles, archived_cas, load_authorities
from bot.ops.cli import main
from bot.ops.doctor import Level
from bot.ops.doctor_rotation import check_trust_files
from bot.wiring import open_service
from pki.identity import fingerprint_sha256
from pki.trust import read_bundle


def _env(monkeypatch: pytest.MonkeyPatch, data: Path) -> Settings:
    for name, value in {
        "DATA_DIR": str(data), "ADMIN_IDS": "1", "CA_KEY_PASSPHRASE": "rotate-me-please",
        "KEY_POOL_SIZE": "0", "SIGNING_WORKERS": "0", "BROKER_RELOAD_COMMAND": "",
    }.items():
        monkeypatch.setenv(f"OTCERT_{name}", value)
    return Settings()


def _start(settings: Settings) -> str:
    async def go() -> str:
        async with open_service(settings) as service:
            assert service.rotation is not None
            step = await service.rotation.start(key_type="ec-p384", days=400)
            assert step.authorities.next is not None
            return step.authorities.next.fingerprint_sha256

    return asyncio.run(go())


def _files(settings: Settings) -> AuthorityFiles:
    return AuthorityFiles(settings.data_dir, settings.ca_passphrase())


@pytest.fixture
def rotating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    settings = _env(monkeypatch, tmp_path / "data")
    assert main(["init"]) == 0
    return settings, _start(settings)


def test_doctor_accepts_the_files_of_a_running_rotation(rotating: tuple[Settings, str]) -> None:
    settings, upcoming = rotating
    findings = check_trust_files(settings)
    assert [f.level for f in findings] == [Level.OK, Level.OK], findings
    assert upcoming in findings[0].sentence


def test_doctor_fails_a_bundle_ca_without_its_crl(rotating: tuple[Settings, str]) -> None:
    settings, upcoming = rotating
    crl = settings.effective_crl_path
    first = crl.read_bytes().split(b"-----END X509 CRL-----")[0] + b"-----END X509 CRL-----\n"
    crl.write_bytes(first)  # the next CA's CRL is gone: Mosquitto would refuse its clients
    failed = [f for f in check_trust_files(settings) if f.level is Level.FAIL]
    assert len(failed) == 1 and upcoming in failed[0].sentence


def test_doctor_fails_a_bundle_without_the_next_ca(rotating: tuple[Settings, str]) -> None:
    settings, upcoming = rotating
    bundle = settings.effective_ca_bundle_path
    bundle.write_bytes(settings.ca_cert_path.read_bytes())
    failed = [f for f in check_trust_files(settings) if f.level is Level.FAIL]
    assert [f.topic for f in failed] == ["CA bundle"] and upcoming in failed[0].sentence


def test_backup_during_a_rotation_restores_both_cas(
    rotating: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, upcoming = rotating
    archive = tmp_path / "backup.tar.gz"
    assert main(["backup", str(archive)]) == 0

    fresh = _env(monkeypatch, tmp_path / "fresh")
    fresh.data_dir.mkdir(mode=0o700)
    assert main(["restore", str(archive)]) == 0
    cas = load_authorities(_files(fresh))
    assert cas.next is not None and cas.next.fingerprint_sha256 == upcoming
    assert cas.current.fingerprint_sha256 == fingerprint_sha256(
        x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes()))
    assert os.stat(_files(fresh).next_key).st_mode & 0o077 == 0
    assert b"ENCRYPTED" in _files(fresh).next_key.read_bytes()


def test_restoring_an_older_backup_archives_the_next_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _env(monkeypatch, tmp_path / "data")
    assert main(["init"]) == 0
    before = tmp_path / "before.tar.gz"
    assert main(["backup", str(before)]) == 0
    upcoming = _start(settings)
    assert main(["restore", "--force", str(before)]) == 0
    files = _files(settings)
    assert load_authorities(files).next is None
    assert not files.next_key.exists() and not files.marker.exists()
    kept = [fingerprint_sha256(x509.load_pem_x509_certificate(p.read_bytes()))
            for p in archived_cas(files)]
    assert kept == [upcoming]  # kept, never deleted


def test_backup_after_finish_keeps_the_retired_ca(
    rotating: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, upcoming = rotating
    old = fingerprint_sha256(x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes()))
    assert main(["ca", "rotate", "finish"]) == 0
    archive = tmp_path / "after.tar.gz"
    assert main(["backup", str(archive)]) == 0
    fresh = _env(monkeypatch, tmp_path / "fresh")
    fresh.data_dir.mkdir(mode=0o700)
    assert main(["restore", str(archive)]) == 0
    files = _files(fresh)
    assert load_authorities(files).current.fingerprint_sha256 == upcoming
    retired = [p for p in archived_cas(files)
               if fingerprint_sha256(x509.load_pem_x509_certificate(p.read_bytes())) == old]
    assert len(retired) == 1 and (retired[0].parent / "ca.key").stat().st_mode & 0o077 == 0
    assert [fingerprint_sha256(c) for c in read_bundle(settings.effective_ca_bundle_path)] == [
        upcoming]


def test_server_cert_during_a_rotation_comes_from_the_next_ca(
    rotating: tuple[Settings, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, upcoming = rotating
    out = tmp_path / "broker"
    capsys.readouterr()
    assert main(["server-cert", "--host", "mqtt.example.org", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "NEXT CA" in said and "must trust the next CA first" in said and upcoming in said
    cert = x509.load_pem_x509_certificate((out / "server.crt").read_bytes())
    next_ca = x509.load_pem_x509_certificate(_files(settings).next_cert.read_bytes())
    cert.verify_directly_issued_by(next_ca)
    assert (out / "ca.crt").read_bytes() == _files(settings).next_cert.read_bytes()

    async def recorded() -> list[str | None]:
        async with open_service(settings) as service:
            return [c.issuer for c in await service.repo.service_certificates(active_only=True)
                    if c.purpose == "broker-server"]

    assert asyncio.run(recorded()) == [upcoming]
    # The broker's certificate now depends on the next CA: abort would lock every phone out.
    assert main(["ca", "rotate", "abort"]) == 1
    assert "1 working certificates" in capsys.readouterr().err


def test_finish_remakes_the_dynsec_admin_pair_under_the_new_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old CA leaves the bundle at finish: an admin pair it signed would make every kick
    fail until a restart, so the pair follows the CA and the old one is recorded ended."""
    settings = _env(monkeypatch, tmp_path / "data")
    monkeypatch.setenv("OTCERT_BROKER_KICK", "dynsec")
    monkeypatch.setenv("OTCERT_BROKER_ADMIN_HOST", "127.0.0.1")
    settings = Settings()
    assert main(["init"]) == 0
    admin_cert = settings.data_dir / "broker-admin.crt"
    old = x509.load_pem_x509_certificate(admin_cert.read_bytes())
    upcoming = _start(settings)
    assert main(["ca", "rotate", "finish", "--force"]) == 0

    new = x509.load_pem_x509_certificate(admin_cert.read_bytes())
    assert new.serial_number != old.serial_number
    new_ca = x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes())
    assert fingerprint_sha256(new_ca) == upcoming
    new.verify_directly_issued_by(new_ca)
    with sqlite3.connect(settings.database_path) as db:
        rows = dict(db.execute(
            "SELECT serial, status FROM service_certificates WHERE purpose = 'broker-admin'"
        ).fetchall())
    assert rows[format(new.serial_number, "x")] == "active"
    assert rows[format(old.serial_number, "x")] != "active"
