"""Certificate lifecycle: what is due for a reminder, the durable reminder marks, renewals.

A reminder is due for threshold T when an active, delivered, not yet renewed certificate has
less than T days left and no *sent* mark for (serial, audience, T). Marks are claimed before a
message goes out and confirmed after, so a crash in between resends once, never skips. The
owners' due query walks the covering ``certificates_reminders`` index over the window only
(the confirmed marks are mirrored in ``certificates.reminded_below``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from storage._common import RepositoryBase, certificate_from_row, to_db
from storage.models import Certificate

Audience = Literal["owner", "admins"]

# A renewal counts while its new certificate is in use; one revoked as undelivered does not.
RENEWED = """EXISTS (SELECT 1 FROM renewals r JOIN certificates n ON n.serial = r.new_serial
                     WHERE r.old_serial = c.serial AND n.status IN ('active', 'expired'))"""

# Owners: filtered inside the covering index certificates_reminders (reminded_below is the
# smallest threshold already confirmed); only the few rows left are checked for a renewal.
DUE_SQL = f"""SELECT c.* FROM certificates c
    WHERE c.status = 'active' AND c.not_after > ? AND c.not_after < ?
      AND c.delivered_at IS NOT NULL
      AND (c.reminded_below IS NULL OR c.reminded_below > ?)
      AND NOT {RENEWED}
    ORDER BY c.not_after, c.serial LIMIT ?"""  # noqa: S608 - constants only

# Admins (one threshold, the smallest: a narrow window): the marks themselves.
DUE_MARKS_SQL = f"""SELECT c.* FROM certificates c
    WHERE c.status = 'active' AND c.not_after > ? AND c.not_after < ?
      AND c.delivered_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM reminders m
                      WHERE m.subject = c.serial AND m.audience = ? AND m.days = ?
                        AND m.sent_at IS NOT NULL)
      AND NOT {RENEWED}
    ORDER BY c.not_after, c.serial LIMIT ?"""  # noqa: S608 - constants only

WINDOW_SQL = f"""SELECT c.*, {RENEWED} AS renewed FROM certificates c
    WHERE c.status = 'active' AND c.not_after > ? AND c.not_after < ?
    ORDER BY c.not_after, c.serial LIMIT ?"""  # noqa: S608 - constants only


@dataclass(frozen=True)
class DueReminder:
    """One certificate and the thresholds (days, largest first) due for it now."""

    certificate: Certificate
    days: tuple[int, ...]


@dataclass(frozen=True)
class ExpiringCertificate:
    """A working certificate inside a window, and whether its renewal exists already."""

    certificate: Certificate
    renewed: bool
    renewals: Sequence[str] = field(default=())


class LifecycleRepository(RepositoryBase):
    async def due_reminders(
        self, now: datetime, thresholds: Iterable[int], *, audience: Audience = "owner",
        limit: int = 5000,
    ) -> list[DueReminder]:
        """Certificates with a reminder due, soonest expiry first; several thresholds due
        at once come back together (one message)."""
        found: dict[str, tuple[Certificate, list[int]]] = {}
        async with self._db.reading() as conn:
            for days in sorted(set(thresholds), reverse=True):
                window = (to_db(now), to_db(now + timedelta(days=days)))
                sql, params = ((DUE_SQL, (*window, days, limit)) if audience == "owner"
                               else (DUE_MARKS_SQL, (*window, audience, days, limit)))
                async with conn.execute(sql, params) as cur:
                    for row in await cur.fetchall():
                        held = found.get(row["serial"])  # decode each certificate once
                        if held is None:
                            held = found[row["serial"]] = (certificate_from_row(row), [])
                        held[1].append(days)
        due = [DueReminder(cert, tuple(days)) for cert, days in found.values()]
        return sorted(due, key=lambda d: (d.certificate.not_after, d.certificate.serial))[:limit]

    async def claim_reminder(self, subject: str, audience: Audience, days: Iterable[int]) -> None:
        """Before sending: the attempt is on record (a crash leaves it unconfirmed)."""
        at = to_db(self._now())
        async with self._db.transaction() as conn:
            await conn.executemany(
                """INSERT INTO reminders (subject, audience, days, claimed_at)
                   VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                [(subject, audience, d, at) for d in days],
            )

    async def confirm_reminder(
        self, subject: str, audience: Audience, days: Iterable[int], outcome: str = "sent"
    ) -> None:
        """After sending (or after giving up for good, e.g. the person blocked the bot)."""
        at = to_db(self._now())
        days = list(days)
        async with self._db.transaction() as conn:
            await conn.executemany(
                """INSERT INTO reminders (subject, audience, days, claimed_at, sent_at, outcome)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (subject, audience, days)
                   DO UPDATE SET sent_at = excluded.sent_at, outcome = excluded.outcome""",
                [(subject, audience, d, at, at, outcome) for d in days],
            )
            if audience == "owner" and days:
                await conn.execute(
                    """UPDATE certificates SET reminded_below = min(coalesce(reminded_below, ?), ?)
                       WHERE serial = ?""",
                    (min(days), min(days), subject),
                )

    async def reminded_days(self, subject: str, audience: Audience) -> set[int]:
        """Thresholds whose reminder for ``subject`` went out (infrastructure certificates)."""
        async with self._db.reading() as conn, conn.execute(
            """SELECT days FROM reminders
               WHERE subject = ? AND audience = ? AND sent_at IS NOT NULL""",
            (subject, audience),
        ) as cur:
            return {int(r[0]) for r in await cur.fetchall()}

    async def expiring_certificates(
        self, now: datetime, within: timedelta, *, limit: int = 1000
    ) -> list[ExpiringCertificate]:
        """Active certificates expiring within ``within``, soonest first (admins' view)."""
        params = (to_db(now), to_db(now + within), limit)
        async with self._db.reading() as conn, conn.execute(WINDOW_SQL, params) as cur:
            rows = await cur.fetchall()
        return [ExpiringCertificate(certificate_from_row(r), bool(r["renewed"])) for r in rows]

    async def renewed_serials(self, serials: Iterable[str]) -> set[str]:
        """Which of ``serials`` have a renewal in use (they leave /mycerts and the reminders)."""
        keys = list(serials)
        if not keys:
            return set()
        marks = ",".join("?" * len(keys))
        sql = f"SELECT c.serial FROM certificates c WHERE c.serial IN ({marks}) AND {RENEWED}"  # noqa: S608
        async with self._db.reading() as conn, conn.execute(sql, keys) as cur:
            return {str(r[0]) for r in await cur.fetchall()}
