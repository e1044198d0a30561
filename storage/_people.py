"""People: access requests and admin decisions, each change with its audit row."""

from __future__ import annotations

import aiosqlite

from storage._common import (
    DISPLAY_NAME_MAX,
    REASON_MAX,
    RepositoryBase,
    clip_opt,
    describe,
    fetch_person,
    person_from_row,
    require_int,
    require_text,
    to_db,
    write_audit,
)
from storage.errors import InvalidTransition, NotFound, UsernameTaken
from storage.models import Person, PersonStatus, Platform

TG_USERNAME_MAX = 64


class PeopleRepository(RepositoryBase):
    async def get_person(self, telegram_id: int) -> Person | None:
        require_int(telegram_id, "telegram_id")
        async with self._db.reading() as conn:
            return await fetch_person(conn, telegram_id)

    async def get_person_by_username(self, mqtt_username: str) -> Person | None:
        """Look up by MQTT username, ignoring case (the column is COLLATE NOCASE)."""
        require_text(mqtt_username, "mqtt_username")
        async with self._db.reading() as conn:
            sql = "SELECT * FROM people WHERE mqtt_username = ?"
            async with conn.execute(sql, (mqtt_username,)) as cur:
                row = await cur.fetchone()
        return None if row is None else person_from_row(row)

    async def list_people(
        self, status: PersonStatus | None = None, *, limit: int | None = None
    ) -> list[Person]:
        """People in the order they first appeared, optionally only those with ``status``,
        at most ``limit`` of them (a chat listing must not build 100,000 models)."""
        sql = "SELECT * FROM people"
        params: list[str | int] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(PersonStatus(status).value)
        sql += " ORDER BY created_at, telegram_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(require_int(limit, "limit"))
        async with self._db.reading() as conn, conn.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [person_from_row(r) for r in rows]

    async def count_people(self) -> int:
        async with self._db.reading() as conn, conn.execute("SELECT count(*) FROM people") as cur:
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def request_access(
        self, telegram_id: int, display_name: str, tg_username: str | None
    ) -> tuple[Person, bool]:
        """Record a /request. The bool says whether admins should hear about it.

        New, denied and revoked people become pending (True). A repeated request while
        pending, or from someone already approved, changes nothing but the names (False),
        so a person cannot spam the admins.
        """
        require_int(telegram_id, "telegram_id")
        name = require_text(display_name, "display_name", limit=DISPLAY_NAME_MAX)
        handle = clip_opt(tg_username, "tg_username", TG_USERNAME_MAX)
        now = self._now()
        async with self._db.transaction() as conn:
            person = await fetch_person(conn, telegram_id)
            if person is None:
                await conn.execute(
                    """INSERT INTO people (telegram_id, display_name, tg_username, status,
                           requested_at, created_at, updated_at)
                       VALUES (?, ?, ?, 'pending', ?, ?, ?)""",
                    (telegram_id, name, handle, to_db(now), to_db(now), to_db(now)),
                )
                await write_audit(conn, at=now, actor_id=telegram_id, action="request",
                                  subject_id=telegram_id, details={"previous_status": None})
                return await _reload(conn, telegram_id), True
            if person.status in (PersonStatus.PENDING, PersonStatus.APPROVED):
                if (person.display_name, person.tg_username) != (name, handle):
                    await conn.execute(
                        """UPDATE people SET display_name = ?, tg_username = ?, updated_at = ?
                           WHERE telegram_id = ?""",
                        (name, handle, to_db(now), telegram_id),
                    )
                    person = await _reload(conn, telegram_id)
                return person, False
            await conn.execute(
                """UPDATE people SET display_name = ?, tg_username = ?, status = 'pending',
                       requested_at = ?, decided_at = NULL, decided_by = NULL, reason = NULL,
                       updated_at = ?
                   WHERE telegram_id = ?""",
                (name, handle, to_db(now), to_db(now), telegram_id),
            )
            await write_audit(conn, at=now, actor_id=telegram_id, action="request",
                              subject_id=telegram_id,
                              details={"previous_status": person.status.value,
                                       "previous_reason": person.reason})
            return await _reload(conn, telegram_id), True

    async def approve(
        self, telegram_id: int, mqtt_username: str, *, by: int, display_name: str | None = None,
        expected: PersonStatus | None = None,
    ) -> Person:
        """Grant access under ``mqtt_username`` (already canonical; the service validates it).

        Allowed from pending, denied, or for an unknown id (an admin adding a known person,
        created with ``display_name`` or the id as name). Revoked people must /request again.
        """
        require_int(telegram_id, "telegram_id")
        require_int(by, "by")
        username = require_text(mqtt_username, "mqtt_username")
        name = None if display_name is None else require_text(
            display_name, "display_name", limit=DISPLAY_NAME_MAX)
        now = self._now()
        async with self._db.transaction() as conn:
            person = await fetch_person(conn, telegram_id)
            if expected is not None and (person is None or person.status is not expected):
                # Decided by someone else since the admin looked (a concurrent deny).
                raise InvalidTransition(
                    _not_pending_message(person) if person is not None
                    else f"Nobody with Telegram id {telegram_id} asked for access."
                )
            if person is not None and person.status is PersonStatus.APPROVED:
                raise InvalidTransition(
                    f"{describe(person)} is already approved "
                    f"(MQTT username '{person.mqtt_username}')."
                )
            if person is not None and person.status is PersonStatus.REVOKED:
                raise InvalidTransition(
                    f"{describe(person)} was revoked: {person.reason or 'no reason given'}. "
                    "They must send /request again before they can be approved."
                )
            await _require_username_free(conn, username, telegram_id)
            if person is None:
                await conn.execute(
                    """INSERT INTO people (telegram_id, display_name, status, mqtt_username,
                           decided_at, decided_by, created_at, updated_at)
                       VALUES (?, ?, 'approved', ?, ?, ?, ?, ?)""",
                    (telegram_id, name or str(telegram_id), username, to_db(now), by,
                     to_db(now), to_db(now)),
                )
                previous = None
            else:
                await conn.execute(
                    """UPDATE people SET status = 'approved', mqtt_username = ?, decided_at = ?,
                           decided_by = ?, reason = NULL, updated_at = ?
                       WHERE telegram_id = ?""",
                    (username, to_db(now), by, to_db(now), telegram_id),
                )
                previous = person.status.value
            await write_audit(conn, at=now, actor_id=by, action="approve", subject_id=telegram_id,
                              details={"mqtt_username": username, "previous_status": previous})
            return await _reload(conn, telegram_id)

    async def deny(self, telegram_id: int, *, by: int, reason: str | None = None) -> Person:
        """Refuse a pending request; the person may /request again later."""
        require_int(telegram_id, "telegram_id")
        require_int(by, "by")
        why = clip_opt(reason, "reason", REASON_MAX)
        now = self._now()
        async with self._db.transaction() as conn:
            person = await _existing(conn, telegram_id)
            if person.status is not PersonStatus.PENDING:
                raise InvalidTransition(_not_pending_message(person))
            await conn.execute(
                """UPDATE people SET status = 'denied', decided_at = ?, decided_by = ?,
                       reason = ?, updated_at = ?
                   WHERE telegram_id = ?""",
                (to_db(now), by, why, to_db(now), telegram_id),
            )
            await write_audit(conn, at=now, actor_id=by, action="deny", subject_id=telegram_id,
                              details={"reason": why})
            return await _reload(conn, telegram_id)

    async def set_platform(
        self, telegram_id: int, platform: Platform, *, by: int | None = None
    ) -> Person:
        """Remember which phone the person uses, so /getcert asks only once. ``by``: who
        chose it when not the person (the operator's ``otcert issue --platform``)."""
        require_int(telegram_id, "telegram_id")
        chosen = Platform(platform)
        now = self._now()
        async with self._db.transaction() as conn:
            person = await _existing(conn, telegram_id)
            if person.platform is chosen:
                return person
            await conn.execute(
                "UPDATE people SET platform = ?, updated_at = ? WHERE telegram_id = ?",
                (chosen.value, to_db(now), telegram_id),
            )
            await write_audit(conn, at=now, actor_id=telegram_id if by is None else by,
                              action="set_platform",
                              subject_id=telegram_id, details={"platform": chosen.value})
            return await _reload(conn, telegram_id)


def _not_pending_message(person: Person) -> str:
    who = describe(person)
    if person.status is PersonStatus.APPROVED:
        return f"{who} is already approved; use /revoke to take access away."
    if person.status is PersonStatus.DENIED:
        return f"{who} was already denied; there is no pending request."
    return f"{who} was revoked and has no pending request."


async def _existing(conn: aiosqlite.Connection, telegram_id: int) -> Person:
    person = await fetch_person(conn, telegram_id)
    if person is None:
        raise NotFound(f"Nobody with Telegram id {telegram_id} is known to the bot.")
    return person


async def _reload(conn: aiosqlite.Connection, telegram_id: int) -> Person:
    person = await fetch_person(conn, telegram_id)
    assert person is not None, "row vanished inside its own transaction"
    return person


async def _require_username_free(
    conn: aiosqlite.Connection, username: str, telegram_id: int
) -> None:
    """Refuse a username another person has now or had on any certificate (case-insensitive).

    Handing out an old username would give the newcomer the earlier owner's topics.
    """
    async with conn.execute(
        """SELECT telegram_id FROM people WHERE mqtt_username = ? AND telegram_id != ?
           UNION ALL
           SELECT telegram_id FROM certificates
           WHERE mqtt_username = ? COLLATE NOCASE AND telegram_id != ?
           LIMIT 1""",
        (username, telegram_id, username, telegram_id),
    ) as cur:
        row = await cur.fetchone()
    if row is not None:
        raise UsernameTaken(
            f"The MQTT username '{username}' is already taken by someone else; choose another."
        )

