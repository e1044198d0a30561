"""Shared plumbing for the repository modules: time and row conversion, input checks, audit."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from storage.db import Database
from storage.models import Certificate, CertStatus, Person, PersonStatus, Platform, ensure_utc

REASON_MAX = 500
DISPLAY_NAME_MAX = 256
TEXT_MAX = 256

# Keys that must never reach the audit log: it stores whatever callers pass, so this is a
# last net under the rule "details never contain secrets", not the rule itself.
_SECRET_KEYS = frozenset(
    {"passphrase", "password", "private_key", "key_pem", "secret", "token", "bot_token"}
)


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_db(value: datetime) -> str:
    """Fixed-width UTC ISO-8601, so text order in SQL equals time order."""
    if not isinstance(value, datetime):
        raise TypeError("expected a datetime")
    return ensure_utc(value).isoformat(timespec="microseconds")


def to_db_opt(value: datetime | None) -> str | None:
    return None if value is None else to_db(value)


def from_db(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def from_db_opt(value: str | None) -> datetime | None:
    return None if value is None else from_db(value)


def require_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not -(2**63) <= value < 2**63:  # SQLite's INTEGER; Telegram ids reach 2**52
        raise ValueError(f"{what} is out of range")
    return value


def require_opt_int(value: object, what: str) -> int | None:
    return None if value is None else require_int(value, what)


def require_text(value: object, what: str, *, limit: int = TEXT_MAX) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value[:limit]


def clip_opt(value: object, what: str, limit: int) -> str | None:
    """Optional free text (reasons, @usernames), cut to a sane length."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, not {type(value).__name__}")
    return value[:limit] or None


def describe(person: Person) -> str:
    """How a person is named in messages for admins: name, @username and id."""
    handle = f" @{person.tg_username}" if person.tg_username else ""
    return f"{person.display_name}{handle} (id {person.telegram_id})"


def person_from_row(row: aiosqlite.Row) -> Person:
    return Person(
        telegram_id=row["telegram_id"],
        display_name=row["display_name"],
        tg_username=row["tg_username"],
        status=PersonStatus(row["status"]),
        mqtt_username=row["mqtt_username"],
        platform=None if row["platform"] is None else Platform(row["platform"]),
        requested_at=from_db_opt(row["requested_at"]),
        decided_at=from_db_opt(row["decided_at"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
        created_at=from_db(row["created_at"]),
        updated_at=from_db(row["updated_at"]),
    )


def certificate_from_row(row: aiosqlite.Row) -> Certificate:
    return Certificate(
        serial=row["serial"],
        telegram_id=row["telegram_id"],
        mqtt_username=row["mqtt_username"],
        device=row["device"],
        fingerprint_sha256=row["fingerprint_sha256"],
        not_before=from_db(row["not_before"]),
        not_after=from_db(row["not_after"]),
        issued_at=from_db(row["issued_at"]),
        status=CertStatus(row["status"]),
        revoked_at=from_db_opt(row["revoked_at"]),
        revocation_reason=row["revocation_reason"],
        delivered_at=from_db_opt(row["delivered_at"]),
        issuer=row["issuer"],
    )


def _refuse_secrets(value: object, path: str) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit details keys must be str (at {path})")
            if key.lower() in _SECRET_KEYS:
                raise ValueError(f"audit details must not contain secrets (key {path}.{key})")
            _refuse_secrets(inner, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            _refuse_secrets(inner, f"{path}[{index}]")
    elif isinstance(value, str) and "PRIVATE KEY" in value:
        raise ValueError(f"audit details must not contain a private key (at {path})")
    elif isinstance(value, bytes | bytearray):
        raise TypeError(f"audit details must be JSON values, not bytes (at {path})")


def encode_details(details: Mapping[str, Any] | None) -> str:
    """JSON text for an audit row; refuses non-JSON values and anything that looks secret."""
    if details is None:
        return "{}"
    if not isinstance(details, Mapping):
        raise TypeError("audit details must be a dict")
    _refuse_secrets(details, "details")
    return json.dumps(dict(details), sort_keys=True, ensure_ascii=False, allow_nan=False)


async def write_audit(
    conn: aiosqlite.Connection,
    *,
    at: datetime,
    actor_id: int | None,
    action: str,
    subject_id: int | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one audit row on ``conn``; call it inside the transaction of the change itself."""
    await conn.execute(
        "INSERT INTO audit_log (at, actor_id, action, subject_id, details) VALUES (?, ?, ?, ?, ?)",
        (to_db(at), actor_id, action, subject_id, encode_details(details)),
    )


async def fetch_person(conn: aiosqlite.Connection, telegram_id: int) -> Person | None:
    async with conn.execute("SELECT * FROM people WHERE telegram_id = ?", (telegram_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else person_from_row(row)


class RepositoryBase:
    """Holds the database and the clock every repository part uses."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None) -> None:
        if not isinstance(db, Database):
            raise TypeError("Repository needs a storage.db.Database")
        self._db = db
        self._clock = clock or now_utc

    def _now(self) -> datetime:
        return ensure_utc(self._clock())
