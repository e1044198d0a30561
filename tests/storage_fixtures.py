"""Helpers for the storage tests (fixtures live in each module; conftest.py is not ours)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage import Certificate, CertStatus, Database, Repository

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ADMIN = 9000


class Clock:
    """A hand-driven clock, so time-dependent rules are tested without sleeping."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def make_cert(
    telegram_id: int,
    mqtt_username: str,
    *,
    device: str = "phone",
    serial: str | None = None,
    issued_at: datetime = T0,
    days: int = 365,
) -> Certificate:
    return Certificate(
        serial=serial or secrets.token_hex(16).lstrip("0") or "1",
        telegram_id=telegram_id,
        mqtt_username=mqtt_username,
        device=device,
        fingerprint_sha256=secrets.token_hex(32),
        not_before=issued_at - timedelta(minutes=5),
        not_after=issued_at + timedelta(days=days),
        issued_at=issued_at,
        status=CertStatus.ACTIVE,
    )


async def approved(repo: Repository, telegram_id: int, username: str) -> None:
    """A person who asked and was approved."""
    await repo.request_access(telegram_id, f"Person {telegram_id}", None)
    await repo.approve(telegram_id, username, by=ADMIN)


async def open_repo(path: Path, clock: Clock | None = None) -> tuple[Database, Repository]:
    db = await Database.open(path)
    return db, Repository(db, clock=clock)


def raw_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Read with plain sqlite3, bypassing the code under test."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()
