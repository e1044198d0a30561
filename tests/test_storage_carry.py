"""A restore keeps what happened after the backup: storage.carry on real SQLite files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from storage import OPERATOR_ID, Database, Repository
from storage.carry import carry_revocations
from tests.storage_fixtures import approved, make_cert, raw_rows

NOW = datetime.now(UTC)


async def _backup_then_old(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A backup (staged), then more history in the live database (old)."""
    old, staged = tmp_path / "live.sqlite3", tmp_path / "staged.sqlite3"
    serials: dict[str, str] = {}
    async with await Database.open(old) as db:
        repo = Repository(db)
        await approved(repo, 1, "ann")
        await approved(repo, 2, "ben")
        await repo.request_access(3, "Cat", None)
        ann, ben = make_cert(1, "ann", issued_at=NOW), make_cert(2, "ben", issued_at=NOW)
        for cert in (ann, ben):
            await repo.record_issue(cert)
        await repo.mark_delivered(ann.serial)  # ben's delivery finishes after the backup
        serials.update(ann=ann.serial, ben=ben.serial)
        await db.backup(staged)
        # After the backup:
        await repo.revoke_person(1, by=1000, reason="lost phone")
        await repo.request_access(1, "Ann", None)  # asks again: pending, not approved
        await repo.mark_delivered(ben.serial)
        await repo.approve(3, "cat", by=1000)
        cat = make_cert(3, "cat", issued_at=NOW)
        await repo.record_issue(cat)
        await repo.revoke_certificate(cat.serial, by=1000, reason="stolen")
        serials["cat"] = cat.serial
        await repo.schedule_deletion(3, 77, NOW)
    return old, staged, serials


def _status(path: Path, table: str, key: str, value: object) -> object:
    [(status,)] = raw_rows(path, f"SELECT status FROM {table} WHERE {key} = '{value}'")
    return status


async def test_everything_after_the_backup_is_kept_and_nothing_given_back(
    tmp_path: Path,
) -> None:
    old, staged, _ = await _backup_then_old(tmp_path)
    before = raw_rows(old, "SELECT serial, status, revoked_at, revocation_reason, delivered_at "
                           "FROM certificates ORDER BY serial")
    carried = carry_revocations(old, staged, same_ca=True, now=NOW)
    assert carried.skipped is None
    assert (carried.people, carried.certificates, carried.imported) == (1, 1, 1)
    assert _status(staged, "people", "telegram_id", 1) == "pending"  # re-request after revoke
    # Approved after the backup: the backup's (less privileged) 'pending' stays.
    assert _status(staged, "people", "telegram_id", 3) == "pending"
    after = raw_rows(staged, "SELECT serial, status, revoked_at, revocation_reason, "
                             "delivered_at FROM certificates ORDER BY serial")
    assert after == before  # revoked, delivered and imported rows exactly as recorded
    assert raw_rows(staged, "SELECT chat_id, message_id FROM scheduled_deletions") == [(3, 77)]
    assert raw_rows(staged, "SELECT actor_id FROM audit_log "  # the operator restored
                            "WHERE action = 'restore-kept-revocations'") == [(OPERATOR_ID,)]


async def test_a_revoked_certificate_stays_listed_even_when_its_owners_name_is_taken(
    tmp_path: Path,
) -> None:
    """The backup comes from before a fresh start: someone else has 'zed' in it."""
    old, staged = tmp_path / "live.sqlite3", tmp_path / "staged.sqlite3"
    async with await Database.open(staged) as db:
        await approved(Repository(db), 40, "zed")
    async with await Database.open(old) as db:
        repo = Repository(db)
        await approved(repo, 41, "zed")
        revoked, valid = make_cert(41, "zed", issued_at=NOW), make_cert(
            41, "zed", device="ipad", issued_at=NOW)
        for cert in (revoked, valid):
            await repo.record_issue(cert)
        await repo.revoke_certificate(revoked.serial, by=None, reason="lost")
    carried = carry_revocations(old, staged, same_ca=True, now=NOW)
    assert (carried.imported, carried.left_out) == (1, 1)  # the valid one cannot come along
    assert raw_rows(staged, "SELECT status, mqtt_username FROM people WHERE telegram_id = 41"
                    ) == [("revoked", None)]
    assert _status(staged, "certificates", "serial", revoked.serial) == "revoked"


async def test_another_ca_imports_nothing_and_an_unreadable_file_is_reported(
    tmp_path: Path,
) -> None:
    old, staged, serials = await _backup_then_old(tmp_path)
    carried = carry_revocations(old, staged, same_ca=False, now=NOW)
    assert carried.imported == 0 and carried.left_out == 1  # cat's certificate, still valid
    assert raw_rows(staged, f"SELECT count(*) FROM certificates WHERE serial = "
                            f"'{serials['cat']}'") == [(0,)]
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database" * 64)
    assert "cannot be read" in (carry_revocations(junk, staged, same_ca=True, now=NOW).skipped
                                or "")
    with sqlite3.connect(staged) as conn:  # unchanged by the failed attempt
        assert conn.execute("SELECT count(*) FROM audit_log WHERE action = "
                            "'restore-kept-revocations'").fetchone() == (1,)


async def test_an_older_backup_is_brought_up_to_date_before_the_carry(tmp_path: Path) -> None:
    """A backup from an older version: the carried rows must fit this program's schema."""
    from bot.ops.archive import _bring_up_to_date
    from tests.test_storage_db import build_old_database

    old, _, _ = await _backup_then_old(tmp_path)
    staged = tmp_path / "v3.sqlite3"
    build_old_database(staged, 3)  # alice (id 1, certificate abc123), before delivered_at
    await _bring_up_to_date(staged)
    carried = carry_revocations(old, staged, same_ca=True, now=NOW)
    assert carried.skipped is None and carried.imported == 3  # ann's, ben's and cat's
    assert raw_rows(staged, "SELECT count(*) FROM certificates") == [(4,)]
