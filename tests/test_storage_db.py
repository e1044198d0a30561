"""The file itself: pragmas, migrations, indexes, backup and restore, and no secrets on disk."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from storage import Database, NotFound, Repository, StorageError, restore_database
from storage.db import MIGRATIONS, SCHEMA_VERSION
from tests.storage_fixtures import ADMIN, T0, approved, make_cert, raw_rows
from tests.waiting import async_wait_until


def build_old_database(path: Path, version: int) -> None:
    """A file as an older release left it: the first ``version`` steps, plus some rows."""
    conn = sqlite3.connect(path)
    try:
        for step in MIGRATIONS[:version]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        if version >= 1:
            conn.execute(
                """INSERT INTO people (telegram_id, display_name, tg_username, status,
                       mqtt_username, requested_at, decided_at, decided_by, created_at, updated_at)
                   VALUES (1, 'Alice', 'al', 'approved', 'alice', ?, ?, ?, ?, ?)""",
                (T0.isoformat(), T0.isoformat(), ADMIN, T0.isoformat(), T0.isoformat()),
            )
            cert = make_cert(1, "alice", serial="abc123")
            conn.execute(
                """INSERT INTO certificates (serial, telegram_id, mqtt_username, device,
                       fingerprint_sha256, not_before, not_after, issued_at, status)
                   VALUES (?, 1, 'alice', 'phone', ?, ?, ?, ?, 'active')""",
                (cert.serial, cert.fingerprint_sha256, cert.not_before.isoformat(),
                 cert.not_after.isoformat(), cert.issued_at.isoformat()),
            )
            conn.execute(
                """INSERT INTO audit_log (at, actor_id, action, subject_id, details)
                   VALUES (?, ?, 'approve', 1, '{"mqtt_username": "alice"}')""",
                (T0.isoformat(), ADMIN),
            )
        if version >= 2:
            conn.execute("INSERT INTO counters VALUES ('crl_number', 41)")
            conn.execute("INSERT INTO processed_updates (update_id, claimed_at) VALUES (77, 'x')")
        conn.commit()
    finally:
        conn.close()


def user_version(path: Path) -> int:
    [(version,)] = raw_rows(path, "PRAGMA user_version")
    assert isinstance(version, int)
    return version


async def test_new_file_gets_pragmas_and_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        assert db.SCHEMA_VERSION == SCHEMA_VERSION >= 3
        assert await db.schema_version() == SCHEMA_VERSION
        async with db.reading() as conn:
            for pragma, expected in [("journal_mode", "wal"), ("foreign_keys", 1),
                                     ("busy_timeout", 10_000)]:
                async with conn.execute(f"PRAGMA {pragma}") as cur:
                    assert (await cur.fetchone())[0] == expected  # type: ignore[index]
    assert path.stat().st_mode & 0o777 == 0o600
    assert user_version(path) == SCHEMA_VERSION


async def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        await Database.open(tmp_path / "nope" / "bot.db")


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
async def test_older_schema_migrates_forward_keeping_rows(tmp_path: Path, version: int) -> None:
    path = tmp_path / "bot.db"
    build_old_database(path, version)
    async with await Database.open(path) as db:
        assert await db.schema_version() == SCHEMA_VERSION
        repo = Repository(db)
        if version == 0:
            assert await repo.list_people() == []
            return
        person = await repo.get_person(1)
        assert person is not None and person.mqtt_username == "alice"
        assert person.platform is None and person.decided_at == T0
        cert = await repo.get_certificate("abc123")
        assert cert is not None and cert.telegram_id == 1
        [entry] = await repo.audit_log()
        assert entry.details == {"mqtt_username": "alice"}
        expected_crl = 42 if version >= 2 else 1
        assert await repo.next_crl_number() == expected_crl
        assert await repo.claim_update(77) is (version < 2)
        await repo.set_platform(1, "ios")  # type: ignore[arg-type]  # the new column works


async def test_failed_migration_step_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    build_old_database(path, 2)
    conn = sqlite3.connect(path)
    # A trigger already holding a name step 3 creates: that step fails part-way.
    conn.execute("CREATE TRIGGER audit_log_no_delete AFTER INSERT ON people BEGIN SELECT 1; END")
    conn.commit()
    conn.close()
    with pytest.raises(sqlite3.OperationalError):
        await Database.open(path)
    assert user_version(path) == 2
    columns = [r[1] for r in raw_rows(path, "PRAGMA table_info(people)")]
    assert "platform" not in columns  # the ALTER TABLE of the failed step was rolled back


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer than this program"):
        await Database.open(path)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("SELECT * FROM people WHERE telegram_id = 1", "INTEGER PRIMARY KEY"),
        ("SELECT * FROM people WHERE mqtt_username = 'Alice'", "people_mqtt_username"),
        ("SELECT * FROM people WHERE status = 'pending'", "people_status"),
        ("SELECT * FROM certificates WHERE serial = 'ab'", "sqlite_autoindex_certificates_1"),
        ("SELECT * FROM certificates WHERE status = 'active' AND not_after <= 'x'",
         "certificates_status"),
        ("SELECT * FROM certificates WHERE status IN ('revoked', 'superseded') AND not_after > 'x'",
         "certificates_status"),
        ("SELECT * FROM certificates WHERE telegram_id = 1 AND device = 'p' AND status = 'active'",
         "certificates_owner"),
        # certificates_for(active_only=True), on every /getcert: never the status index.
        ("SELECT * FROM certificates WHERE telegram_id = 1 AND +status = 'active'",
         "certificates_owner"),
        ("SELECT * FROM audit_log WHERE subject_id = 1 AND at >= 'x'", "audit_log_subject_at"),
        ("SELECT * FROM scheduled_deletions WHERE due_at <= 'x'", "scheduled_deletions_due"),
    ],
)
async def test_queries_use_their_index(tmp_path: Path, query: str, index: str) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path):
        pass
    plan = " ".join(str(r[3]) for r in raw_rows(path, f"EXPLAIN QUERY PLAN {query}"))
    assert index in plan, plan


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    tables = [r[0] for r in raw_rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {str(t): raw_rows(path, f"SELECT * FROM {t} ORDER BY 1") for t in tables}


async def test_backup_while_writing_is_consistent_and_restores_equal(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    stop = asyncio.Event()

    async def keep_writing(repo: Repository) -> int:
        n = 0
        while not stop.is_set():
            n += 1
            await repo.request_access(1000 + n, f"P{n}", None)
        return n

    async with await Database.open(path) as db, await Database.open(path) as other:
        writer = asyncio.create_task(keep_writing(Repository(other)))
        await Repository(db).request_access(1, "first", None)  # at least one row in each copy
        snapshots = []
        for i in range(4):
            snapshot = tmp_path / f"snap{i}.db"
            await db.backup(snapshot)
            snapshots.append(snapshot)
            await asyncio.sleep(0.01)
        stop.set()
        written = await writer
        assert written > 0
        final = tmp_path / "final.db"
        await db.backup(final)
        live = dump(path)

    for snapshot in snapshots:
        assert raw_rows(snapshot, "PRAGMA integrity_check") == [("ok",)]
        people = raw_rows(snapshot, "SELECT count(*) FROM people")
        requests = raw_rows(snapshot, "SELECT count(*) FROM audit_log WHERE action = 'request'")
        assert people == requests  # each change and its audit row: together or not at all
        assert not Path(f"{snapshot}-wal").exists()
    assert dump(final) == live

    restored = tmp_path / "restored.db"
    await restore_database(final, restored)
    assert dump(restored) == live
    async with await Database.open(restored) as db:
        assert len(await Repository(db).list_people()) == written + 1


async def test_restore_replaces_the_database_and_drops_its_stale_wal(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    backup = tmp_path / "backup.db"
    async with await Database.open(path) as db:
        await approved(Repository(db), 1, "alice")
        await db.backup(backup)
    # Newer state that the restore must throw away, left in a WAL as a crash would leave it.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("INSERT INTO counters VALUES ('crl_number', 99)")
    conn.commit()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("bot.db", "bot.db-wal", "bot.db-shm"):
        shutil.copy(tmp_path / name, crashed / name)
    conn.close()
    target = crashed / "bot.db"
    await restore_database(backup, target)
    assert not Path(f"{target}-wal").exists()
    assert dump(target) == dump(backup)
    async with await Database.open(target) as db:
        repo = Repository(db)
        assert (await repo.get_person(1)).mqtt_username == "alice"  # type: ignore[union-attr]
        assert await repo.next_crl_number() == 1


async def test_restore_refuses_a_bad_source_and_leaves_the_target(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        await approved(Repository(db), 1, "alice")
        await db.backup(tmp_path / "good.db")
    before = path.read_bytes()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    corrupt = tmp_path / "corrupt.db"
    data = bytearray((tmp_path / "good.db").read_bytes())
    page = 4096
    data[page : 3 * page] = b"\xff" * (2 * page)
    corrupt.write_bytes(bytes(data))
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()

    for bad in (garbage, corrupt, foreign):
        with pytest.raises(StorageError):
            await restore_database(bad, path)
        assert path.read_bytes() == before
    with pytest.raises(NotFound):
        await restore_database(tmp_path / "missing.db", path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def secret_hits(paths: list[Path], needles: list[bytes]) -> list[str]:
    hits = []
    for path in paths:
        if path.exists():
            data = path.read_bytes()
            hits += [f"{path.name}: {n[:12]!r}" for n in needles if n in data]
    return hits


async def test_no_private_key_or_passphrase_reaches_the_file(tmp_path: Path) -> None:
    """A whole life cycle with real keys and PKCS#12, then a byte scan of every file."""
    from cryptography.hazmat.primitives import serialization

    from pki.authority import CertificateAuthority
    from pki.bundle import (
        fingerprint_sha256,
        make_passphrase,
        pin_der,
        pkcs12_bundle,
        private_key_pem,
    )
    from pki.keys import generate_private_key

    ca = CertificateAuthority.create(key_type="ec-p384", days=30)
    path = tmp_path / "bot.db"
    needles = [b"PRIVATE KEY", private_key_pem(ca.private_key)]
    async with await Database.open(path) as db:
        repo = Repository(db)
        await repo.set_pin(pin_der(ca.certificate), fingerprint_sha256(ca.certificate), by=ADMIN)
        await approved(repo, 1, "alice")
        for device in ("phone", "phone", "tablet"):
            key = generate_private_key("ec-p256")
            x509_cert = ca.issue_client("alice", key, days=30)
            passphrase = make_passphrase()
            p12 = pkcs12_bundle(x509_cert, key, [ca.certificate], friendly_name="alice",
                                passphrase=passphrase)
            der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            needles += [passphrase.encode(), der[-40:], p12[-64:]]
            await repo.record_issue(
                make_cert(1, "alice", device=device).model_copy(update={
                    "serial": format(x509_cert.serial_number, "x"),
                    "fingerprint_sha256": fingerprint_sha256(x509_cert).replace(":", "").lower(),
                }))
            await repo.add_audit(actor_id=1, action="delivered", subject_id=1,
                                 details={"device": device, "file": f"alice-{device}.p12"})
        await repo.revoke_person(1, by=ADMIN, reason="test over")
        await db.backup(tmp_path / "backup.db")
        files = [path, Path(f"{path}-wal"), tmp_path / "backup.db"]
        assert secret_hits(files, needles) == []
    assert secret_hits([path], needles) == []


async def test_the_secret_scan_can_see_into_the_wal(tmp_path: Path) -> None:
    """The scan above must be able to fail: a key smuggled into a name is found."""
    path = tmp_path / "bot.db"
    marker = b"-----BEGIN PRIVATE KEY-----"
    async with await Database.open(path) as db:
        await Repository(db).request_access(1, marker.decode(), None)
        assert secret_hits([path, Path(f"{path}-wal")], [marker]) != []
    assert secret_hits([path], [marker]) != []


async def test_cancelled_while_waiting_for_the_write_lock_leaves_no_open_transaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        repo = Repository(db)
        await repo.request_access(1, "A", None)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        task = asyncio.create_task(repo.approve(1, "alice", by=ADMIN))
        # Holding the write lock means its BEGIN IMMEDIATE is queued on the connection.
        assert await async_wait_until(db._lock.locked, 5)
        assert not task.done()  # waiting in busy_timeout
        task.cancel()
        await asyncio.sleep(0)  # the task is now waiting for its ROLLBACK, queued behind BEGIN
        blocker.execute("ROLLBACK")
        blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The queued BEGIN ran after the lock was freed; it must have been rolled back.
        assert (await repo.approve(1, "alice", by=ADMIN)).mqtt_username == "alice"
        await db.close()  # closing twice is harmless
