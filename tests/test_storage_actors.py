"""Who did it, stored one way: a Telegram id, OPERATOR_ID (0) for the operator's shell, NULL
for the bot itself; older files that wrote NULL for the shell are converted on open."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from storage import OPERATOR_ID, Database, Repository
from storage.db import MIGRATIONS
from tests.storage_fixtures import ADMIN, T0, Clock, approved, make_cert, raw_rows

FP = "ab" * 32
Action = Callable[[Repository, int], Awaitable[object]]


async def _approve(repo: Repository, by: int) -> object:
    await repo.request_access(1, "Alice", None)
    return await repo.approve(1, "alice", by=by)


async def _deny(repo: Repository, by: int) -> object:
    await repo.request_access(1, "Alice", None)
    return await repo.deny(1, by=by, reason="no")


async def _revoke(repo: Repository, by: int) -> object:
    await approved(repo, 1, "alice")
    return await repo.revoke_person(1, by=by, reason="lost phone")


async def _set_pin(repo: Repository, by: int) -> object:
    return await repo.set_pin(b"der", FP, by=by)


async def _repin(repo: Repository, by: int) -> object:
    return await repo.add_audit(actor_id=by, action="repin", subject_id=None)


SHELL_OR_ADMIN: list[tuple[str, Action, str | None]] = [
    # action, how, the column besides the audit log that names the actor
    ("approve", _approve, "SELECT decided_by FROM people WHERE telegram_id = 1"),
    ("deny", _deny, "SELECT decided_by FROM people WHERE telegram_id = 1"),
    ("revoke", _revoke, "SELECT decided_by FROM people WHERE telegram_id = 1"),
    ("set_pin", _set_pin, "SELECT changed_by FROM pins"),
    ("repin", _repin, None),
]


@pytest.mark.parametrize("actor", [OPERATOR_ID, ADMIN], ids=["operator", "admin"])
@pytest.mark.parametrize(("action", "how", "column"), SHELL_OR_ADMIN,
                         ids=[row[0] for row in SHELL_OR_ADMIN])
async def test_an_operator_or_admin_action_stores_its_actor(
    tmp_path: Path, action: str, how: Action, column: str | None, actor: int
) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        await how(Repository(db, clock=Clock()), actor)
    assert raw_rows(path, f"SELECT actor_id FROM audit_log WHERE action = '{action}'") == [
        (actor,)]
    if column is not None:
        assert raw_rows(path, column) == [(actor,)]


async def _expire(repo: Repository) -> None:
    await approved(repo, 1, "alice")
    await repo.record_issue(make_cert(1, "alice", days=1))
    assert await repo.mark_expired(T0 + timedelta(days=2)) == 1


async def _undelivered(repo: Repository) -> None:
    await approved(repo, 1, "alice")
    cert = make_cert(1, "alice")
    await repo.record_issue(cert)
    await repo.revoke_certificate(cert.serial, by=None, reason="undelivered")


@pytest.mark.parametrize(("action", "how"), [
    ("expire", _expire),
    ("revoke_certificate", _undelivered),
])
async def test_what_the_bot_does_by_itself_has_no_actor(
    tmp_path: Path, action: str, how: Callable[[Repository], Awaitable[None]]
) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        await how(Repository(db, clock=Clock()))
    assert raw_rows(path, f"SELECT actor_id FROM audit_log WHERE action = '{action}'") == [
        (None,)]


@pytest.mark.parametrize("how", [_revoke, _set_pin], ids=["revoke", "set_pin"])
async def test_the_shell_is_never_stored_as_null(tmp_path: Path, how: Action) -> None:
    async with await Database.open(tmp_path / "bot.db") as db:
        with pytest.raises(TypeError, match="must be an int"):
            await how(Repository(db, clock=Clock()), None)  # type: ignore[arg-type]


# ---- older files ---------------------------------------------------------------------------

# (action, actor as version 4 stored it, actor after the migration)
OLD_AUDIT_ROWS: list[tuple[str, int | None, int | None]] = [
    ("revoke", None, OPERATOR_ID),  # `otcert revoke` wrote NULL
    ("set_pin", None, OPERATOR_ID),
    ("repin", None, OPERATOR_ID),
    ("restore-kept-revocations", None, OPERATOR_ID),
    ("approve", 0, OPERATOR_ID),  # `otcert approve` always wrote 0
    ("revoke", ADMIN, ADMIN),
    ("expire", None, None),  # the bot itself
    ("revoke_certificate", None, None),  # an undelivered certificate
    ("request", 7, 7),
]


def _version_4_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        for step in MIGRATIONS[:4]:
            for statement in step:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 4")
        at = T0.isoformat()
        for action, actor, _ in OLD_AUDIT_ROWS:
            conn.execute("INSERT INTO audit_log (at, actor_id, action, subject_id, details) "
                         "VALUES (?, ?, ?, NULL, '{}')", (at, actor, action))
        for telegram_id, status, decided_by in [(1, "revoked", None), (2, "pending", None),
                                                (3, "revoked", ADMIN), (4, "approved", 0)]:
            conn.execute(
                """INSERT INTO people (telegram_id, display_name, status, decided_by,
                       created_at, updated_at) VALUES (?, 'x', ?, ?, ?, ?)""",
                (telegram_id, status, decided_by, at, at))
        conn.execute("INSERT INTO pins (der, fingerprint_sha256, changed_at, changed_by) "
                     "VALUES (x'00', ?, ?, NULL)", (FP, at))
        conn.commit()
    finally:
        conn.close()


async def test_an_older_file_gets_the_one_representation(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    _version_4_file(path)
    async with await Database.open(path) as db:
        pin = await Repository(db).current_pin()
    assert pin is not None and pin.changed_by == OPERATOR_ID
    rows = raw_rows(path, "SELECT action, actor_id FROM audit_log ORDER BY id")
    assert rows == [(action, after) for action, _, after in OLD_AUDIT_ROWS]
    assert raw_rows(path, "SELECT telegram_id, decided_by FROM people ORDER BY telegram_id") == [
        (1, OPERATOR_ID), (2, None), (3, ADMIN), (4, OPERATOR_ID)]


async def test_the_audit_log_is_append_only_again_after_the_conversion(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    _version_4_file(path)
    async with await Database.open(path):
        pass
    conn = sqlite3.connect(path)
    try:
        for statement in ("UPDATE audit_log SET actor_id = 1", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    finally:
        conn.close()


# ---- how `otcert audit` shows it -----------------------------------------------------------

@pytest.mark.parametrize(("actor", "shown"), [
    (OPERATOR_ID, "operator"),
    (None, "bot"),
    (ADMIN, str(ADMIN)),
])
def test_otcert_audit_names_each_kind_of_actor(actor: int | None, shown: str) -> None:
    from bot.ops.cli_ops import actor_label

    assert actor_label(actor) == shown
