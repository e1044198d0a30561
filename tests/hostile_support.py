"""Helpers shared by the hostile-input, flood and secrets tests: a long-lived bot for a whole
module, fresh identities, database snapshots and the health checks every property ends with."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pki import CertificateAuthority
from tests.botproc import ADMIN_ID, BotProcess
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage

# Distinct people and groups per example, so the per-person throttle never hides an answer.
_person_ids = itertools.count(50_000_001)
_group_ids = itertools.count(1)

Snapshot = dict[str, list[tuple[Any, ...]]]
SNAPSHOT_QUERIES = {
    "people": "SELECT * FROM people ORDER BY telegram_id",
    "certificates": "SELECT * FROM certificates ORDER BY serial",
    "pins": "SELECT * FROM pins ORDER BY id",
}


def fresh_person(tg: FakeTelegram, first_name: str = "Stranger") -> FakeUser:
    return tg.user(next(_person_ids), first_name)


def fresh_group_id() -> int:
    return -1_002_000_000_000 - next(_group_ids)


def database_path(bot: BotProcess) -> Path:
    return bot.data_dir / "otcert.sqlite3"


# Bookkeeping the bot writes after a delivery finishes; not a decision anyone made.
VOLATILE_COLUMNS = frozenset({"delivered_at"})


def snapshot(bot: BotProcess) -> Snapshot:
    """The rows that decide who may do what (read through SQLite, WAL included)."""
    db = sqlite3.connect(f"file:{database_path(bot)}?mode=ro", uri=True)
    try:
        result: Snapshot = {}
        for name, query in SNAPSHOT_QUERIES.items():
            cursor = db.execute(query)
            keep = [i for i, col in enumerate(cursor.description)
                    if col[0] not in VOLATILE_COLUMNS]
            result[name] = [tuple(row[i] for i in keep) for row in cursor.fetchall()]
        return result
    finally:
        db.close()


def people_by_id(snap: Snapshot) -> dict[int, tuple[Any, ...]]:
    return {row[0]: row for row in snap["people"]}


def text_of(message: SentMessage) -> str:
    return message.text or message.caption or ""


def wait_text(tg: FakeTelegram, chat_id: int, needle: str, timeout: float = 15.0) -> SentMessage:
    return tg.wait_for(
        lambda m: needle in text_of(m) or any(needle in e for e in m.edits),
        timeout, chat_id=chat_id,
    )


def wait_answer(tg: FakeTelegram, query_id: str, timeout: float = 10.0) -> None:
    """Block until the bot answered callback query ``query_id``."""
    tg.wait_for_call(
        "answerCallbackQuery",
        lambda c: str(c.params.get("callback_query_id")) == query_id and c.status == 200,
        timeout,
    )


def assert_healthy(bot: BotProcess) -> None:
    """The process is alive and logged no bug."""
    assert bot.proc is not None and bot.proc.poll() is None, "the bot process died"
    log = bot.log_text
    assert "unhandled error" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]


@dataclass
class World:
    """One running bot with a few people in known states."""

    tg: FakeTelegram
    bot: BotProcess
    admin: FakeUser
    approved: FakeUser  # has an iPhone certificate
    pending: FakeUser
    denied: FakeUser


@contextmanager
def running_world(
    workdir: Path, ca: CertificateAuthority, env: dict[str, str] | None = None
) -> Iterator[World]:
    with FakeTelegram() as tg:
        bot = BotProcess(tg, workdir, ca=ca, env=env)
        with bot:
            admin = tg.user(ADMIN_ID, "Admin")
            approved = fresh_person(tg, "Alice")
            pending = fresh_person(tg, "Bob")
            denied = fresh_person(tg, "Carol")
            for person in (approved, pending, denied):
                tg.send_text(person, "/request")
                wait_text(tg, person.id, "asked the admins")
            tg.send_text(admin, f"/approve {approved.id} alice")
            wait_text(tg, approved.id, "approved")
            tg.send_text(admin, f"/deny {denied.id}")
            wait_text(tg, denied.id, "denied")
            tg.send_text(approved, "/getcert")
            question = wait_text(tg, approved.id, "Which phone")
            tg.press_button(approved, question.message_id, "plat:ios:phone")
            wait_text(tg, approved.id, "iPhone steps")
            yield World(tg, bot, admin, approved, pending, denied)
