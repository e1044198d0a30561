"""Which CA issued which certificate: what a CA rotation needs to know (who has moved, who
still depends on the old CA, what each CA's CRL must list)."""

from __future__ import annotations

from dataclasses import dataclass

from storage._common import RepositoryBase, require_text, to_db


@dataclass(frozen=True, slots=True)
class IssuerCount:
    """Working (active) certificates of one CA and how many people hold them."""

    issuer: str
    people: int
    certificates: int


class IssuerRepository(RepositoryBase):
    async def backfill_issuer(self, fingerprint: str) -> int:
        """Certificates recorded before the issuer was kept came from the CA current then;
        called with the current CA before any rotation can change it."""
        fp = require_text(fingerprint, "fingerprint", limit=200)
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE certificates SET issuer = ? WHERE issuer IS NULL", (fp,)
            )
            own = await conn.execute(
                "UPDATE service_certificates SET issuer = ? WHERE issuer IS NULL", (fp,)
            )
            return cur.rowcount + own.rowcount

    async def active_by_issuer(self) -> list[IssuerCount]:
        """Per CA: approved people with working certificates from it, and those certificates."""
        async with self._db.reading() as conn, conn.execute(
            """SELECT c.issuer, COUNT(DISTINCT c.telegram_id), COUNT(*)
               FROM certificates c JOIN people p ON p.telegram_id = c.telegram_id
               WHERE c.status = 'active' AND p.status = 'approved'
               GROUP BY c.issuer"""
        ) as cur:
            rows = await cur.fetchall()
        return [IssuerCount(r[0] or "", r[1], r[2]) for r in rows]

    async def people_with_active_from(self, issuers: frozenset[str]) -> list[int]:
        """Approved people with at least one working certificate from ``issuers`` (the old
        CA): a phone moved while a tablet was not still needs the tablet moved. NULL issuers
        count as old."""
        if not issuers:
            return []
        marks = ",".join("?" * len(issuers))
        sql = f"""SELECT DISTINCT c.telegram_id FROM certificates c
                  JOIN people p ON p.telegram_id = c.telegram_id
                  WHERE c.status = 'active' AND p.status = 'approved'
                    AND (c.issuer IS NULL OR c.issuer IN ({marks}))
                  ORDER BY c.telegram_id"""  # noqa: S608 - only "?" marks are joined in
        async with self._db.reading() as conn, conn.execute(sql, tuple(issuers)) as cur:
            rows = await cur.fetchall()
        return [int(r[0]) for r in rows]

    async def count_active_from(self, issuer: str) -> int:
        """Working certificates from one CA, people's and the bot's own (abort refuses
        while any exist: a broker-server certificate from it would lock every phone out)."""
        async with self._db.reading() as conn, conn.execute(
            """SELECT (SELECT COUNT(*) FROM certificates WHERE status = 'active' AND issuer = ?)
                    + (SELECT COUNT(*) FROM service_certificates
                       WHERE status = 'active' AND issuer = ?)""",
            (issuer, issuer),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def record_rotation_offer(self, telegram_id: int, next_ca: str) -> bool:
        """Remember that ``telegram_id`` was offered a certificate from ``next_ca`` (a restart
        must not offer it again). False when it was already recorded."""
        fp = require_text(next_ca, "next_ca", limit=200)
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                """INSERT OR IGNORE INTO rotation_offers (telegram_id, next_ca, offered_at)
                   VALUES (?, ?, ?)""",
                (int(telegram_id), fp, to_db(self._now())),
            )
            return cur.rowcount > 0

    async def rotation_offered(self, next_ca: str) -> frozenset[int]:
        """Who was already offered a certificate from ``next_ca``."""
        async with self._db.reading() as conn, conn.execute(
            "SELECT telegram_id FROM rotation_offers WHERE next_ca = ?", (next_ca,)
        ) as cur:
            rows = await cur.fetchall()
        return frozenset(int(r[0]) for r in rows)
