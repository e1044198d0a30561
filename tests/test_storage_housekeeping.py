"""Audit log, scheduled deletions, pins, CRL numbers, processed updates; model rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pydantic
import pytest

import storage._housekeeping as housekeeping
from storage import (
    OPERATOR_ID,
    AuditEntry,
    Database,
    Person,
    Pin,
    Repository,
    ScheduledDeletion,
)
from storage.models import canonical_serial
from tests.storage_fixtures import ADMIN, T0, Clock, approved, make_cert, open_repo, raw_rows

FP = "AB:" * 31 + "AB"


async def test_every_model_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "bot.db"
    db, repo = await open_repo(path, clock)
    async with db:
        await approved(repo, 1, "alice")
        person = await repo.get_person(1)
        cert = make_cert(1, "alice")
        await repo.record_issue(cert)
        deletion_id = await repo.schedule_deletion(-100123, 77, T0 + timedelta(minutes=15))
        pin = await repo.set_pin(b"\x30\x82der", FP, by=ADMIN)
        log = await repo.audit_log()
    db, repo = await open_repo(path, clock)
    async with db:
        assert isinstance(person, Person) and await repo.get_person(1) == person
        assert await repo.get_certificate(cert.serial) == cert
        assert await repo.pending_deletions() == [
            ScheduledDeletion(id=deletion_id, chat_id=-100123, message_id=77,
                              due_at=T0 + timedelta(minutes=15))
        ]
        assert await repo.current_pin() == pin
        assert await repo.audit_log() == log
        assert all(isinstance(e, AuditEntry) for e in log)


async def test_audit_log_by_person_and_time(repo: Repository, clock: Clock) -> None:
    await repo.add_audit(actor_id=ADMIN, action="repin", subject_id=None, details={"n": 2})
    clock.advance(hours=1)
    await repo.request_access(1, "A", None)
    clock.advance(hours=1)
    await repo.request_access(2, "B", None)
    await repo.add_audit(actor_id=ADMIN, action="note", subject_id=1, details={"ü": ["x", 1]})
    assert [e.action for e in await repo.audit_log()] == ["note", "request", "request", "repin"]
    about_1 = await repo.audit_log(subject_id=1)
    assert [(e.action, e.details) for e in about_1] == [
        ("note", {"ü": ["x", 1]}), ("request", {"previous_status": None})
    ]
    recent = await repo.audit_log(since=T0 + timedelta(minutes=90))
    assert [(e.action, e.subject_id) for e in recent] == [("note", 1), ("request", 2)]
    assert len(await repo.audit_log(limit=1)) == 1
    with pytest.raises(ValueError, match="limit"):
        await repo.audit_log(limit=0)


@pytest.mark.parametrize(
    "details",
    [
        {"passphrase": "k7mx-94qa"},
        {"nested": {"Private_Key": "x"}},
        {"files": ["-----BEGIN PRIVATE KEY-----\nMII..."]},
        {"token": "123:abc"},
        {"raw": b"bytes"},
        {"number": float("nan")},
    ],
)
async def test_audit_refuses_secret_looking_or_non_json_details(
    repo: Repository, details: dict[str, object], tmp_path: Path
) -> None:
    with pytest.raises((ValueError, TypeError)):
        await repo.add_audit(actor_id=1, action="x", subject_id=1, details=details)
    assert raw_rows(tmp_path / "bot.db", "SELECT count(*) FROM audit_log") == [(0,)]


async def test_audit_log_is_append_only(repo: Repository, tmp_path: Path) -> None:
    import sqlite3

    await repo.add_audit(actor_id=1, action="x", subject_id=1)
    conn = sqlite3.connect(tmp_path / "bot.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit_log SET action = 'y'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
    finally:
        conn.close()


async def test_scheduled_deletions(repo: Repository) -> None:
    first = await repo.schedule_deletion(10, 1, T0 + timedelta(minutes=5))
    second = await repo.schedule_deletion(10, 2, T0 + timedelta(minutes=1))
    third = await repo.schedule_deletion(11, 1, T0 + timedelta(hours=1))
    assert [d.id for d in await repo.pending_deletions()] == [second, first, third]
    due = await repo.due_deletions(T0 + timedelta(minutes=5))
    assert [(d.chat_id, d.message_id) for d in due] == [(10, 2), (10, 1)]
    await repo.finish_deletion(second)
    await repo.finish_deletion(second)  # idempotent
    assert [d.id for d in await repo.due_deletions(T0 + timedelta(minutes=5))] == [first]
    # rescheduling the same message keeps one row with the new time
    assert await repo.schedule_deletion(10, 1, T0 + timedelta(days=1)) == first
    assert await repo.due_deletions(T0 + timedelta(hours=2)) == [
        ScheduledDeletion(id=third, chat_id=11, message_id=1, due_at=T0 + timedelta(hours=1))
    ]


async def test_pins_change_only_when_the_fingerprint_changes(
    repo: Repository, clock: Clock
) -> None:
    assert await repo.current_pin() is None
    first = await repo.set_pin(b"one", FP, by=OPERATOR_ID)
    assert first == Pin(der=b"one", fingerprint_sha256="ab" * 32, changed_at=T0,
                        changed_by=OPERATOR_ID)
    clock.advance(days=1)
    assert await repo.set_pin(b"one", FP.lower(), by=ADMIN) == first
    second = await repo.set_pin(b"two", "cd" * 32, by=ADMIN)
    assert second.changed_at == clock.now and await repo.current_pin() == second
    assert [e.action for e in await repo.audit_log()] == ["set_pin", "set_pin"]


async def test_crl_numbers_increase_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        repo = Repository(db)
        assert [await repo.next_crl_number() for _ in range(3)] == [1, 2, 3]
    async with await Database.open(path) as db:
        assert await Repository(db).next_crl_number() == 4


async def test_claim_update_once_even_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        repo = Repository(db)
        assert await repo.claim_update(500) is True
        assert await repo.claim_update(500) is False
        assert await repo.claim_update(501) is True
    async with await Database.open(path) as db:
        repo = Repository(db)
        assert await repo.claim_update(500) is False
        assert await repo.claim_update(7) is True  # ids may restart lower: still new


async def test_claim_update_keeps_only_the_most_recent(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(housekeeping, "PROCESSED_UPDATES_KEPT", 5)
    for update_id in range(100, 112):
        assert await repo.claim_update(update_id) is True
    kept = raw_rows(tmp_path / "bot.db", "SELECT update_id FROM processed_updates ORDER BY seq")
    assert [r[0] for r in kept] == list(range(107, 112))
    assert await repo.claim_update(111) is False


def test_models_refuse_naive_datetimes_and_normalise_to_utc() -> None:
    with pytest.raises(pydantic.ValidationError, match="timezone-aware"):
        ScheduledDeletion(id=1, chat_id=1, message_id=1, due_at=datetime(2030, 1, 1))
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2030, 1, 1, 2, tzinfo=plus_two)
    d = ScheduledDeletion(id=1, chat_id=1, message_id=1, due_at=local)
    assert d.due_at == datetime(2030, 1, 1, tzinfo=UTC) and d.due_at.tzinfo is UTC
    with pytest.raises(pydantic.ValidationError):
        d.chat_id = 2


def test_serials_and_fingerprints_are_canonical() -> None:
    assert canonical_serial("00:0A:Ff") == "aff"
    assert canonical_serial(255) == "ff"
    assert canonical_serial("0") == "0"
    for bad in ("", "0x12", "zz", -1, True):
        with pytest.raises(ValueError):
            canonical_serial(bad)
    with pytest.raises(pydantic.ValidationError):
        Pin(der=b"x", fingerprint_sha256="ab" * 31, changed_at=T0, changed_by=ADMIN)
