"""Everything else that must survive a restart: audit log, message deletions, the CA pin,
the CRL number and the Telegram updates already handled."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from storage._common import (
    RepositoryBase,
    from_db,
    require_int,
    require_opt_int,
    require_text,
    to_db,
    write_audit,
)
from storage.models import AuditEntry, Pin, ScheduledDeletion, canonical_fingerprint

PROCESSED_UPDATES_KEPT = 10_000
AUDIT_LIMIT_MAX = 10_000
CRL_NUMBER = "crl_number"


class HousekeepingRepository(RepositoryBase):
    async def add_audit(
        self,
        *,
        actor_id: int | None,
        action: str,
        subject_id: int | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit row for an action that changes no stored state (e.g. /repin).
        ``actor_id``: a Telegram id, ``OPERATOR_ID`` for the shell, ``None`` for the bot itself.

        ``details`` is stored as given (JSON): never pass keys, passphrases or tokens. Keys
        such as ``passphrase`` or text containing ``PRIVATE KEY`` are refused as a last net.
        """
        require_opt_int(actor_id, "actor_id")
        require_opt_int(subject_id, "subject_id")
        what = require_text(action, "action", limit=64)
        async with self._db.transaction() as conn:
            await write_audit(conn, at=self._now(), actor_id=actor_id, action=what,
                              subject_id=subject_id, details=details)

    async def audit_log(
        self, *, subject_id: int | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first; optionally about one person, since a time."""
        require_opt_int(subject_id, "subject_id")
        count = require_int(limit, "limit")
        if not 0 < count <= AUDIT_LIMIT_MAX:
            raise ValueError(f"limit must be between 1 and {AUDIT_LIMIT_MAX}")
        clauses: list[str] = []
        params: list[object] = []
        if subject_id is not None:
            clauses.append("subject_id = ?")
            params.append(subject_id)
        if since is not None:
            clauses.append("at >= ?")
            params.append(to_db(since))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?"  # noqa: S608 - constant clauses
        async with self._db.reading() as conn, conn.execute(sql, (*params, count)) as cur:
            rows = await cur.fetchall()
        return [
            AuditEntry(id=r["id"], at=from_db(r["at"]), actor_id=r["actor_id"], action=r["action"],
                       subject_id=r["subject_id"], details=json.loads(r["details"]))
            for r in rows
        ]

    async def schedule_deletion(self, chat_id: int, message_id: int, due_at: datetime) -> int:
        """Remember to delete a chat message at ``due_at``; returns the deletion's id.

        Scheduling the same message twice keeps one row (the later due time wins).
        """
        require_int(chat_id, "chat_id")
        require_int(message_id, "message_id")
        due = to_db(due_at)
        async with self._db.transaction() as conn:
            async with conn.execute(
                """INSERT INTO scheduled_deletions (chat_id, message_id, due_at) VALUES (?, ?, ?)
                   ON CONFLICT (chat_id, message_id) DO UPDATE SET due_at = excluded.due_at
                   RETURNING id""",
                (chat_id, message_id, due),
            ) as cur:
                row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    async def add_request_notices(
        self, telegram_id: int, notices: list[tuple[int, int]]
    ) -> None:
        """Remember the admins' copies (chat id, message id) of a person's access request."""
        require_int(telegram_id, "telegram_id")
        async with self._db.transaction() as conn:
            await conn.executemany(
                """INSERT OR IGNORE INTO request_notices (telegram_id, chat_id, message_id)
                   VALUES (?, ?, ?)""",
                [(telegram_id, require_int(c, "chat_id"), require_int(m, "message_id"))
                 for c, m in notices],
            )

    async def take_request_notices(self, telegram_id: int) -> list[tuple[int, int]]:
        """The admins' copies of a request, forgotten as they are handed out (once decided)."""
        require_int(telegram_id, "telegram_id")
        async with self._db.transaction() as conn, conn.execute(
            """DELETE FROM request_notices WHERE telegram_id = ?
                   RETURNING chat_id, message_id""",
            (telegram_id,),
        ) as cur:
            rows = await cur.fetchall()
        return sorted((int(r[0]), int(r[1])) for r in rows)

    async def due_deletions(self, now: datetime) -> list[ScheduledDeletion]:
        """Deletions whose time has come (due_at <= now), earliest first."""
        async with self._db.reading() as conn, conn.execute(
            "SELECT * FROM scheduled_deletions WHERE due_at <= ? ORDER BY due_at, id",
            (to_db(now),),
        ) as cur:
            rows = await cur.fetchall()
        return [_deletion(r) for r in rows]

    async def pending_deletions(self) -> list[ScheduledDeletion]:
        """All deletions not yet finished (to reschedule them after a restart), earliest first."""
        async with self._db.reading() as conn, conn.execute(
            "SELECT * FROM scheduled_deletions ORDER BY due_at, id"
        ) as cur:
            rows = await cur.fetchall()
        return [_deletion(r) for r in rows]

    async def finish_deletion(self, deletion_id: int) -> None:
        """Forget a deletion that was carried out (or is moot). Unknown ids are fine."""
        require_int(deletion_id, "deletion_id")
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM scheduled_deletions WHERE id = ?", (deletion_id,))

    async def set_pin(self, der: bytes, fingerprint_sha256: str, *, by: int) -> Pin:
        """Record the CA certificate phones pin. Setting the same fingerprint again is a no-op
        (``changed_at`` keeps telling when it really changed); earlier pins stay as history.
        ``by``: the admin's Telegram id, or ``OPERATOR_ID`` from the shell."""
        if not isinstance(der, bytes | bytearray) or not der:
            raise TypeError("der must be non-empty bytes")
        fingerprint = canonical_fingerprint(fingerprint_sha256)
        require_int(by, "by")
        now = self._now()
        async with self._db.transaction() as conn:
            async with conn.execute("SELECT * FROM pins ORDER BY id DESC LIMIT 1") as cur:
                row = await cur.fetchone()
            if row is not None and row["fingerprint_sha256"] == fingerprint:
                return _pin(row)
            await conn.execute(
                """INSERT INTO pins (der, fingerprint_sha256, changed_at, changed_by)
                   VALUES (?, ?, ?, ?)""",
                (bytes(der), fingerprint, to_db(now), by),
            )
            previous = None if row is None else row["fingerprint_sha256"]
            await write_audit(conn, at=now, actor_id=by, action="set_pin", subject_id=None,
                              details={"fingerprint_sha256": fingerprint, "previous": previous})
        return Pin(der=bytes(der), fingerprint_sha256=fingerprint, changed_at=now, changed_by=by)

    async def current_pin(self) -> Pin | None:
        async with self._db.reading() as conn, conn.execute(
            "SELECT * FROM pins ORDER BY id DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _pin(row)

    async def next_crl_number(self) -> int:
        """1, 2, 3, ... across restarts: RFC 5280 wants CRL numbers to increase."""
        async with self._db.transaction() as conn:
            async with conn.execute(
                """INSERT INTO counters (name, value) VALUES (?, 1)
                   ON CONFLICT (name) DO UPDATE SET value = value + 1
                   RETURNING value""",
                (CRL_NUMBER,),
            ) as cur:
                row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    async def claim_update(self, update_id: int) -> bool:
        """True the first time a Telegram update id is seen, False on a redelivery.

        Claim before acting: after a crash mid-action the update is skipped rather than done
        twice. Only the last ``PROCESSED_UPDATES_KEPT`` claims are kept, pruned by arrival order
        (not by id: Telegram may restart ids at a random value after a quiet week).
        """
        require_int(update_id, "update_id")
        now = self._now()
        async with self._db.transaction() as conn:
            async with conn.execute(
                """INSERT INTO processed_updates (update_id, claimed_at) VALUES (?, ?)
                   ON CONFLICT (update_id) DO NOTHING
                   RETURNING seq""",
                (update_id, to_db(now)),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return False
            await conn.execute(
                "DELETE FROM processed_updates WHERE seq <= ?",
                (int(row[0]) - PROCESSED_UPDATES_KEPT,),
            )
            return True


def _deletion(row: Any) -> ScheduledDeletion:
    return ScheduledDeletion(id=row["id"], chat_id=row["chat_id"], message_id=row["message_id"],
                             due_at=from_db(row["due_at"]))


def _pin(row: Any) -> Pin:
    return Pin(der=bytes(row["der"]), fingerprint_sha256=row["fingerprint_sha256"],
               changed_at=from_db(row["changed_at"]), changed_by=row["changed_by"])
