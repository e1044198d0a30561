"""The reminder job's query at 100,000 people with 300,000 certificates (issue 13).

The job runs every OTCERT_LIFECYCLE_CHECK_SECONDS (an hour by default); at a steady state the
expiries are spread over the year, so ~8 % of the certificates sit inside the 30-day window,
nearly all already reminded. What must stay fast is finding the few that crossed a threshold
since the last run: a range of the covering index (status, not_after, reminded_below), never
a scan of every certificate in Python (measured side by side).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Results, Row, median
from bench.storage_bench import _people_rows
from storage import Database, Repository
from storage._common import certificate_from_row, to_db
from storage._lifecycle import DUE_SQL

PEOPLE, CERTIFICATES = 100_000, 300_000
QUICK_PEOPLE, QUICK_CERTIFICATES = 20_000, 60_000
THRESHOLDS = (30, 7, 1)
NEW_PER_THRESHOLD = 40  # ~300,000 / 365 / 24 certificates cross each threshold per hour


def _cert_rows(count: int, approved: int, now: datetime) -> list[tuple[Any, ...]]:
    """Expiries spread evenly over the coming year; every row active and delivered."""
    rng = random.Random(13)
    rows = []
    for j in range(count):
        person = j % approved
        not_after = now + timedelta(seconds=rng.randrange(1, 365 * 86400))
        issued = not_after - timedelta(days=365)
        rows.append((f"{rng.getrandbits(127) | (1 << 126):x}", 10_000_000 + person,
                     f"person{person}", f"dev{j // approved}",
                     rng.getrandbits(256).to_bytes(32, "big").hex(),
                     to_db(issued), to_db(not_after), to_db(issued), "active", to_db(issued)))
    rows.sort()
    return rows


def _marks(rows: list[tuple[Any, ...]], now: datetime) -> tuple[list[tuple[Any, ...]],
                                                                  list[tuple[Any, ...]]]:
    """Reminders already sent for every threshold a certificate crossed, except the newest
    NEW_PER_THRESHOLD crossings per threshold (what one hourly run finds): the marks, and
    (reminded_below, serial) for the certificates, as confirming them writes both."""
    at = to_db(now)
    marks, below = [], {}
    for days in THRESHOLDS:
        edge = to_db(now + timedelta(days=days))
        inside = sorted((r for r in rows if r[6] < edge), key=lambda r: r[6], reverse=True)
        for r in inside[NEW_PER_THRESHOLD:]:
            marks.append((r[0], "owner", days, at, at, "sent"))
            below[r[0]] = min(below.get(r[0], days), days)
    return marks, [(b, serial) for serial, b in below.items()]


async def _timed(make: Any, n: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(n):
        start = time.perf_counter()
        out = await make()
        times.append(time.perf_counter() - start)
    return median(times), out


async def _run(results: Results, people: int, certificates: int, quick: bool) -> None:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="otcert-bench-lifecycle-") as tmp:
        db = await Database.open(Path(tmp) / "otcert.sqlite3")
        repo = Repository(db)
        person_rows = _people_rows(people, now)
        approved = sum(1 for r in person_rows if r[3] == "approved")
        rows = _cert_rows(certificates, approved, now)
        async with db.transaction() as conn:
            await conn.executemany(
                """INSERT INTO people (telegram_id, display_name, tg_username, status,
                       mqtt_username, requested_at, decided_at, decided_by, reason, created_at,
                       updated_at, platform) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                person_rows)
            await conn.executemany(
                """INSERT INTO certificates (serial, telegram_id, mqtt_username, device,
                       fingerprint_sha256, not_before, not_after, issued_at, status,
                       delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)
            marks, below = _marks(rows, now)
            await conn.executemany(
                """INSERT INTO reminders (subject, audience, days, claimed_at, sent_at, outcome)
                   VALUES (?, ?, ?, ?, ?, ?)""", marks)
            await conn.executemany(
                "UPDATE certificates SET reminded_below = ? WHERE serial = ?", below)
        n = 3 if quick else 7
        steady, due = await _timed(lambda: repo.due_reminders(now, THRESHOLDS), n)
        results.add(Row("lifecycle", f"reminders due, steady state ({people:,} people / "
                        f"{certificates:,} certs)", steady * 1e3, "ms", n,
                        note=f"{len(due)} found; the window's other rows already reminded",
                        target="well under 1 s", met=steady < 0.5))

        async def python_scan() -> int:
            """The baseline: every active certificate into Python, filtered there."""
            async with db.reading() as conn, conn.execute(
                    "SELECT * FROM certificates WHERE status = 'active'") as cur:
                certs = [certificate_from_row(r) for r in await cur.fetchall()]
            edge = now + timedelta(days=max(THRESHOLDS))
            return sum(1 for c in certs if now < c.not_after < edge)

        scan, _ = await _timed(python_scan, 1)
        results.rows[-1] = Row(**{**results.rows[-1].__dict__, "ratio": scan / steady,
                                  "ratio_label": "vs loading every certificate into Python"})
        async with db.reading() as conn, conn.execute(
                "EXPLAIN QUERY PLAN " + DUE_SQL, (to_db(now), to_db(now), 30, 10)) as cur:
            plan = "; ".join(str(r[3]) for r in await cur.fetchall())
        print(f"  plan: {plan}", flush=True)
        async with db.transaction() as conn:
            await conn.execute("DELETE FROM reminders")
            await conn.execute("UPDATE certificates SET reminded_below = NULL")
        first, due = await _timed(lambda: repo.due_reminders(now, THRESHOLDS), n)
        results.add(Row("lifecycle", "reminders due, first run (nothing reminded yet)",
                        first * 1e3, "ms", n,
                        note=f"{len(due):,} found (the job sends at most 5,000 per run)",
                        target="well under 1 s", met=first < 1.0))
        serial = rows[0][0]
        mark, _ = await _timed(lambda: _claim_confirm(repo, serial), 20)
        results.add(Row("lifecycle", "claim + confirm one reminder mark (2 transactions, fsync)",
                        mark * 1e3, "ms", 20))
        window, listed = await _timed(
            lambda: repo.expiring_certificates(now, timedelta(days=7), limit=100_000), n)
        results.add(Row("lifecycle", "/expiring 7 days (with 'renewed' per row)", window * 1e3,
                        "ms", n, note=f"{len(listed):,} certificates"))
        await db.close()


async def _claim_confirm(repo: Repository, serial: str) -> None:
    await repo.claim_reminder(serial, "owner", (99,))
    await repo.confirm_reminder(serial, "owner", (99,))


def run(results: Results, *, quick: bool) -> None:
    people, certificates = (QUICK_PEOPLE, QUICK_CERTIFICATES) if quick else (
        PEOPLE, CERTIFICATES)
    asyncio.run(_run(results, people, certificates, quick))
