"""`otcert users / revoke / audit / backup / restore` against real SQLite files, as subprocesses."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from bot.config import Settings
from bot.wiring import open_service
from pki import CertificateAuthority
from storage import Platform
from tests.openssl import crl_text
from tests.test_cli import base_env, otcert

pytestmark = pytest.mark.slow  # runs `otcert` in a subprocess


def _settings(data: Path) -> Settings:
    return Settings(data_dir=data, admin_ids=frozenset({1000}), key_pool_size=0,
                    issue_cooldown_seconds=0, key_type="ec-p256")


async def seed(data_dir: Path) -> dict[str, str]:
    """alice (iPhone) and bob (Android) approved with one certificate each; carol pending.
    Returns username -> certificate serial."""
    serials: dict[str, str] = {}
    async with open_service(_settings(data_dir)) as service:
        for telegram_id, name, platform in ((2001, "alice", Platform.IOS),
                                            (2002, "bob", Platform.ANDROID)):
            await service.request_access(telegram_id, name.title(), name)
            await service.approve(1000, telegram_id, name)
            await service.set_platform(telegram_id, platform)
            serials[name] = (await service.issue(telegram_id, "phone")).serial
        await service.request_access(2003, "Carol", None)
    return serials


@pytest.fixture
def seeded(tmp_path: Path, other_ca: CertificateAuthority) -> tuple[Path, dict[str, str]]:
    """An EC CA: loading an RSA 4096 key costs ~0.5 s per subprocess."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other_ca.save(data / "ca.crt", data / "ca.key")
    return data, asyncio.run(seed(data))


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_users_lists_people_and_certificates(
    tmp_path: Path, seeded: tuple[Path, dict[str, str]]
) -> None:
    data, serials = seeded
    result = otcert("users", env=base_env(data), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    alice = next(line for line in lines if "alice" in line)
    assert "2001" in alice and "approved" in alice and "(ios)" in alice
    assert any("pending" in line and "Carol" in line for line in lines)
    assert serials["bob"] in result.stdout and serials["alice"] in result.stdout


def test_revoke_by_username_writes_crl_runs_reload_and_audits(
    tmp_path: Path, seeded: tuple[Path, dict[str, str]]
) -> None:
    data, serials = seeded
    marker = tmp_path / "reloaded"
    env = base_env(data, OTCERT_BROKER_RELOAD_COMMAND=f"touch {marker}")
    result = otcert("revoke", "BOB", "--reason", "lost phone", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Revoked bob (Telegram id 2002) and 1 certificate(s)" in result.stdout
    assert "reload: ok" in result.stdout and marker.exists()
    listed = crl_text(data / "crl.pem").upper()
    assert serials["bob"].upper() in listed and serials["alice"].upper() not in listed
    audit = otcert("audit", "--person", "bob", env=env, cwd=tmp_path)
    first = audit.stdout.splitlines()[0]
    assert "revoke" in first and "operator" in first and "lost phone" in first
    assert all("2002" in line for line in audit.stdout.splitlines())

    again = otcert("revoke", "2002", env=env, cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.startswith("otcert: ")
    unknown = otcert("revoke", "mallory", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "mallory" in unknown.stderr


def test_revoke_reports_failed_reload_but_keeps_revocation(
    tmp_path: Path, seeded: tuple[Path, dict[str, str]]
) -> None:
    data, serials = seeded
    env = base_env(data, OTCERT_BROKER_RELOAD_COMMAND="echo broker down >&2; exit 3")
    result = otcert("revoke", "2001", env=env, cwd=tmp_path)
    assert result.returncode == 0
    assert "reload: FAILED" in result.stdout and "exit code 3" in result.stdout
    assert serials["alice"].upper() in crl_text(data / "crl.pem").upper()


def test_audit_filters(tmp_path: Path, seeded: tuple[Path, dict[str, str]]) -> None:
    data, _ = seeded
    env = base_env(data)
    everything = otcert("audit", env=env, cwd=tmp_path).stdout.splitlines()
    assert len(everything) >= 5
    assert len(otcert("audit", "--limit", "2", env=env, cwd=tmp_path).stdout.splitlines()) == 2
    future = otcert("audit", "--since", "2999-01-01", env=env, cwd=tmp_path)
    assert future.stdout.strip() == "No audit entries match."
    bad = otcert("audit", "--since", "yesterday", env=env, cwd=tmp_path)
    assert bad.returncode == 1 and "ISO" in bad.stderr


HOLDER = textwrap.dedent("""
    import select, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 10000")
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0.005)[0]:  # until the test says stop
        conn.execute("INSERT INTO audit_log (at, actor_id, action, subject_id, details) "
                     "VALUES ('2030-01-01T00:00:00+00:00', 1, 'holder', NULL, '{}')")
""")


def test_backup_while_db_is_written_then_restore_into_fresh_dir(
    tmp_path: Path, seeded: tuple[Path, dict[str, str]]
) -> None:
    data, _ = seeded
    archive = tmp_path / "backup.tar.gz"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(data / "otcert.sqlite3")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        result = otcert("backup", str(archive), env=base_env(data), cwd=tmp_path)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("stop\n")
        holder.stdin.close()
        holder.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["ca.crt", "ca.key", "manifest.json", "otcert.sqlite3"]

    fresh = tmp_path / "fresh"
    restored = otcert("restore", str(archive), env=base_env(fresh), cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert (fresh / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (fresh / "ca.crt").read_bytes() == (data / "ca.crt").read_bytes()
    assert (fresh / "crl.pem").exists()
    source_db, copy_db = data / "otcert.sqlite3", fresh / "otcert.sqlite3"
    for table in ("people", "certificates"):
        query = f"SELECT * FROM {table} ORDER BY 1"
        assert rows(copy_db, query) == rows(source_db, query)
    # The audit copy is one consistent snapshot: a prefix of what the writer went on writing.
    copied = rows(copy_db, "SELECT * FROM audit_log ORDER BY id")
    assert copied == rows(source_db, "SELECT * FROM audit_log ORDER BY id")[: len(copied)]
    assert any(r[3] == "holder" for r in copied)

    users = otcert("users", env=base_env(fresh), cwd=tmp_path)
    assert "alice" in users.stdout and "bob" in users.stdout


def _backup(tmp_path: Path, data: Path) -> Path:
    archive = tmp_path / "b.tar.gz"
    assert otcert("backup", str(archive), env=base_env(data), cwd=tmp_path).returncode == 0
    return archive


def test_restore_refuses_to_overwrite_and_damaged_archives(
    tmp_path: Path, seeded: tuple[Path, dict[str, str]]
) -> None:
    data, serials = seeded
    env, archive = base_env(data), _backup(tmp_path, data)
    refused = otcert("restore", str(archive), env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "--force" in refused.stderr

    # After the backup: alice is revoked, bob's phone gets a new certificate (the old one is
    # superseded), carol is approved, gets a certificate and is revoked.
    assert otcert("revoke", "alice", env=env, cwd=tmp_path).returncode == 0

    async def after_the_backup() -> tuple[str, str]:
        async with open_service(_settings(data)) as service:
            bobs_new = (await service.issue(2002, "phone")).serial
            await service.approve(1000, 2003, "carol")
            await service.set_platform(2003, Platform.ANDROID)
            carols = (await service.issue(2003, "phone")).serial
        return bobs_new, carols

    bobs_new, carols = asyncio.run(after_the_backup())
    assert otcert("revoke", "carol", env=env, cwd=tmp_path).returncode == 0
    db = data / "otcert.sqlite3"
    ended_before = rows(db, "SELECT serial, status, revoked_at, revocation_reason FROM "
                            "certificates WHERE status != 'active' ORDER BY serial")

    forced = otcert("restore", str(archive), "--force", env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    # The backup's state comes back, but nothing revoked since is valid again.
    assert rows(db, "SELECT telegram_id, status FROM people ORDER BY telegram_id") == [
        (2001, "revoked"), (2002, "approved"), (2003, "revoked")]
    assert rows(db, "SELECT serial, status, revoked_at, revocation_reason FROM certificates "
                    "WHERE status != 'active' ORDER BY serial") == ended_before
    assert rows(db, f"SELECT status FROM certificates WHERE serial = '{bobs_new}'") == [
        ("active",)]
    assert "Carried over from the replaced database" in forced.stdout
    listed = {e.serial_number for e in x509.load_pem_x509_crl((data / "crl.pem").read_bytes())}
    for serial in (serials["alice"], serials["bob"], carols):
        assert int(serial, 16) in listed
    assert int(bobs_new, 16) not in listed
    audit = rows(db, "SELECT action FROM audit_log WHERE action = 'restore-kept-revocations'")
    assert audit == [("restore-kept-revocations",)]

    # A member changed after the manifest was written: refused before anything is touched.
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            content = src.extractfile(member)
            assert content is not None
            payload = content.read()
            if member.name == "ca.crt":
                payload = payload.replace(b"A", b"B", 1)
            member.size = len(payload)
            dst.addfile(member, io.BytesIO(payload))
    result = otcert("restore", str(damaged), "--force", env=base_env(tmp_path / "x"),
                    cwd=tmp_path)
    assert result.returncode == 1 and "checksum" in result.stderr
    assert not (tmp_path / "x" / "otcert.sqlite3").exists()
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    result = otcert("restore", str(junk), env=base_env(tmp_path / "y"), cwd=tmp_path)
    assert result.returncode == 1 and "not a readable otcert backup" in result.stderr


def test_restore_over_an_unreadable_database_still_works_and_says_what_was_lost(
    tmp_path: Path, seeded: tuple[Path, dict[str, str]]
) -> None:
    data, _ = seeded
    env, archive = base_env(data), _backup(tmp_path, data)
    db = data / "otcert.sqlite3"
    for leftover in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    restored = otcert("restore", str(archive), "--force", env=env, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert "were not carried over" in restored.stderr and "cannot be read" in restored.stderr
    assert rows(db, "SELECT count(*) FROM people") == [(3,)]
