"""The bot's own certificates (broker-server, broker-admin) and the CRL number's floor.

Why apart from people's certificates: these have a purpose instead of an owner, yet the
same CA signs them, so they must be listed and revoked like the rest (a replaced
broker-admin pair left valid would stay a working dynsec admin login).
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from storage._common import (
    REASON_MAX,
    RepositoryBase,
    certificate_from_row,
    from_db,
    from_db_opt,
    require_opt_int,
    require_text,
    to_db,
    write_audit,
)
from storage._housekeeping import CRL_NUMBER
from storage.errors import InvalidTransition, NotFound
from storage.models import (
    Certificate,
    CertStatus,
    RevokedSerial,
    Serial,
    UtcDateTime,
    _Frozen,
    canonical_serial,
)

BROKER_SERVER = "broker-server"
BROKER_ADMIN = "broker-admin"
PURPOSES = (BROKER_SERVER, BROKER_ADMIN)


class ServiceCertificate(_Frozen):
    """A certificate the bot made for itself; ``subject`` is its CN or host names."""

    serial: Serial
    purpose: str
    subject: str
    fingerprint_sha256: str
    not_before: UtcDateTime
    not_after: UtcDateTime
    issued_at: UtcDateTime
    status: CertStatus
    revoked_at: UtcDateTime | None = None
    revocation_reason: str | None = None
    issuer: str | None = None  # SHA-256 fingerprint of the signing CA (issue 17)


def _from_row(row: aiosqlite.Row) -> ServiceCertificate:
    return ServiceCertificate(
        serial=row["serial"], purpose=row["purpose"], subject=row["subject"],
        fingerprint_sha256=row["fingerprint_sha256"], not_before=from_db(row["not_before"]),
        not_after=from_db(row["not_after"]), issued_at=from_db(row["issued_at"]),
        status=CertStatus(row["status"]), revoked_at=from_db_opt(row["revoked_at"]),
        revocation_reason=row["revocation_reason"], issuer=row["issuer"],
    )


async def _fetch(conn: aiosqlite.Connection, serial: str) -> ServiceCertificate | None:
    sql = "SELECT * FROM service_certificates WHERE serial = ?"
    async with conn.execute(sql, (serial,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _from_row(row)


class ServiceCertificateRepository(RepositoryBase):
    async def record_service_certificate(
        self, cert: ServiceCertificate, *, by: int | None = None
    ) -> bool:
        """Remember ``cert``; one already recorded keeps its row, except that an active row is
        ended when ``cert`` says it is no longer active. True when something changed."""
        if cert.purpose not in PURPOSES:
            raise ValueError(f"unknown certificate purpose {cert.purpose!r}")
        now = self._now()
        async with self._db.transaction() as conn:
            current = await _fetch(conn, cert.serial)
            if current is None:
                await conn.execute(
                    """INSERT INTO service_certificates (serial, purpose, subject,
                           fingerprint_sha256, not_before, not_after, issued_at, status,
                           revoked_at, revocation_reason, issuer)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (cert.serial, cert.purpose, cert.subject, cert.fingerprint_sha256,
                     to_db(cert.not_before), to_db(cert.not_after), to_db(cert.issued_at),
                     cert.status.value, to_db(cert.revoked_at or now)
                     if cert.status is not CertStatus.ACTIVE else None,
                     cert.revocation_reason, cert.issuer),
                )
            elif current.status is CertStatus.ACTIVE and cert.status is not CertStatus.ACTIVE:
                await _end(conn, cert.serial, cert.status, now, cert.revocation_reason)
            else:
                return False
            await write_audit(conn, at=now, actor_id=by, action="record_service_certificate",
                              subject_id=None,
                              details={"serial": cert.serial, "purpose": cert.purpose,
                                       "subject": cert.subject, "status": cert.status.value})
            return True

    async def supersede_service_certificates(
        self, purpose: str, *, keep: str, by: int | None = None
    ) -> list[str]:
        """End every active certificate of ``purpose`` except ``keep`` (its replacement)."""
        keep_serial = canonical_serial(keep)
        now = self._now()
        async with self._db.transaction() as conn:
            async with conn.execute(
                """UPDATE service_certificates SET status = 'superseded', revoked_at = ?,
                       revocation_reason = 'superseded'
                   WHERE purpose = ? AND status = 'active' AND serial != ?
                   RETURNING serial""",
                (to_db(now), purpose, keep_serial),
            ) as cur:
                ended = [str(r[0]) for r in await cur.fetchall()]
            if ended:
                await write_audit(conn, at=now, actor_id=by, action="supersede_service_cert",
                                  subject_id=None,
                                  details={"purpose": purpose, "serials": ended,
                                           "by_serial": keep_serial})
            return ended

    async def revoke_service_certificate(
        self, serial: str, *, by: int | None, reason: str
    ) -> ServiceCertificate:
        key = canonical_serial(serial)
        require_opt_int(by, "by")
        why = require_text(reason, "reason", limit=REASON_MAX)
        now = self._now()
        async with self._db.transaction() as conn:
            current = await _fetch(conn, key)
            if current is None:
                raise NotFound(f"No certificate with serial {key} is recorded.")
            if current.status is not CertStatus.ACTIVE:
                raise InvalidTransition(
                    f"Certificate {key} is {current.status.value}, not active; nothing to revoke."
                )
            await _end(conn, key, CertStatus.REVOKED, now, why)
            await write_audit(conn, at=now, actor_id=by, action="revoke_certificate",
                              subject_id=None,
                              details={"serial": key, "purpose": current.purpose, "reason": why})
            updated = await _fetch(conn, key)
            assert updated is not None
            return updated

    async def get_service_certificate(self, serial: str) -> ServiceCertificate | None:
        async with self._db.reading() as conn:
            return await _fetch(conn, canonical_serial(serial))

    async def service_certificates(self, *, active_only: bool) -> list[ServiceCertificate]:
        sql = "SELECT * FROM service_certificates"
        if active_only:
            sql += " WHERE status = 'active'"
        async with self._db.reading() as conn, conn.execute(sql + " ORDER BY issued_at") as cur:
            rows = await cur.fetchall()
        return [_from_row(r) for r in rows]

    async def all_certificates(self, *, active_only: bool) -> list[Certificate]:
        """People's certificates for ``otcert certs``, oldest first."""
        sql = "SELECT * FROM certificates"
        if active_only:
            sql += " WHERE status = 'active'"
        async with self._db.reading() as conn, conn.execute(
            sql + " ORDER BY issued_at, serial"
        ) as cur:
            rows = await cur.fetchall()
        return [certificate_from_row(r) for r in rows]

    async def revoked_service_serials(self, now: datetime) -> list[RevokedSerial]:
        """The bot's own ended certificates still valid at ``now``: they belong in the CRL."""
        async with self._db.reading() as conn, conn.execute(
            """SELECT serial, revoked_at, revocation_reason, issuer FROM service_certificates
               WHERE status IN ('revoked', 'superseded') AND not_after > ?
               ORDER BY revoked_at, serial""",
            (to_db(now),),
        ) as cur:
            rows = await cur.fetchall()
        return [RevokedSerial(r[0], from_db(r[1]) if r[1] else now, r[2], r[3]) for r in rows]

    async def crl_number(self) -> int:
        """The last CRL number handed out (0 before the first)."""
        async with self._db.reading() as conn, conn.execute(
            "SELECT value FROM counters WHERE name = ?", (CRL_NUMBER,)
        ) as cur:
            row = await cur.fetchone()
        return 0 if row is None else int(row[0])

    async def next_crl_number_above(self, floor: int) -> int:
        """The next CRL number, and more than ``floor`` (the number of the CRL already on disk,
        which may come from a newer database replaced by a restore)."""
        async with self._db.transaction() as conn:
            async with conn.execute(
                """INSERT INTO counters (name, value) VALUES (?, max(1, ? + 1))
                   ON CONFLICT (name) DO UPDATE SET value = max(value + 1, ? + 1)
                   RETURNING value""",
                (CRL_NUMBER, floor, floor),
            ) as cur:
                row = await cur.fetchone()
            assert row is not None
            return int(row[0])


async def _end(
    conn: aiosqlite.Connection, serial: str, status: CertStatus, at: datetime, reason: str | None
) -> None:
    await conn.execute(
        """UPDATE service_certificates SET status = ?, revoked_at = ?, revocation_reason = ?
           WHERE serial = ? AND status = 'active'""",
        (status.value, to_db(at), reason or status.value, serial),
    )
