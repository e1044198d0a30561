"""Storage at scale: storage.Repository on a real SQLite file with 100,000 people and
300,000 certificates (plus their audit rows): approve, look-ups, lists, the CRL query.

Why: the bot reads the person (and often their certificates) on every update, and admins list
everyone; those must stay fast long after the first few hundred people.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Results, Row, median
from bot.telegram.handlers.admin import LIST_MAX_PEOPLE
from storage import Certificate, CertStatus, Database, PersonStatus, Repository
from storage._common import certificate_from_row, to_db

PEOPLE, CERTIFICATES = 100_000, 300_000
QUICK_PEOPLE, QUICK_CERTIFICATES = 20_000, 60_000
PENDING_SHARE = 0.005  # people left pending, to be approved during the benchmark
ENDED_SHARE = 0.1  # certificates superseded or revoked (the CRL's rows)


def _people_rows(count: int, now: datetime) -> list[tuple[Any, ...]]:
    pending_from = int(count * (1 - PENDING_SHARE))
    at = to_db(now - timedelta(days=100))
    rows = []
    for i in range(count):
        tid = 10_000_000 + i
        approved = i < pending_from
        rows.append((
            tid, f"Person {i}", f"handle{i}", "approved" if approved else "pending",
            f"person{i}" if approved else None, at, at if approved else None,
            1000 if approved else None, None, at, at, "ios" if i % 2 else "android",
        ))
    return rows


def _certificate_rows(count: int, approved: int, now: datetime) -> list[tuple[Any, ...]]:
    rng = random.Random(6)
    rows = []
    for j in range(count):
        person = j % approved
        ended = rng.random() < ENDED_SHARE
        issued = now - timedelta(days=rng.randrange(1, 300))
        rows.append((
            f"{rng.getrandbits(127) | (1 << 126):x}", 10_000_000 + person, f"person{person}",
            f"dev{j // approved}", rng.getrandbits(256).to_bytes(32, "big").hex(":").upper(),
            to_db(issued - timedelta(minutes=5)), to_db(issued + timedelta(days=365)),
            to_db(issued), "superseded" if ended else "active",
            to_db(issued + timedelta(days=1)) if ended else None,
            "superseded" if ended else None,
        ))
    rows.sort()  # serial order: primary-key inserts append instead of splitting random pages
    return rows


async def _bulk_load(db: Database, people: int, certificates: int) -> tuple[float, list[str]]:
    """executemany inside one transaction on the Database's own connection."""
    now = datetime.now(UTC)
    person_rows = _people_rows(people, now)
    approved = sum(1 for r in person_rows if r[3] == "approved")
    cert_rows = _certificate_rows(certificates, approved, now)
    audit = [(r[5], 1000, "approve", r[0], "{}") for r in person_rows if r[3] == "approved"]
    audit += [(r[7], r[1], "issue", r[1], "{}") for r in cert_rows]
    start = time.perf_counter()
    async with db.reading() as conn:  # a big page cache for the load only (random-key indexes)
        await conn.execute("PRAGMA cache_size = -262144")
    async with db.transaction() as conn:
        await conn.executemany(
            """INSERT INTO people (telegram_id, display_name, tg_username, status, mqtt_username,
                   requested_at, decided_at, decided_by, reason, created_at, updated_at, platform)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", person_rows)
        await conn.executemany(
            """INSERT INTO certificates (serial, telegram_id, mqtt_username, device,
                   fingerprint_sha256, not_before, not_after, issued_at, status, revoked_at,
                   revocation_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", cert_rows)
        await conn.executemany(
            "INSERT INTO audit_log (at, actor_id, action, subject_id, details) "
            "VALUES (?, ?, ?, ?, ?)", audit)
    async with db.reading() as conn:
        await conn.execute("PRAGMA cache_size = -2000")  # SQLite's default, as the bot runs
    return time.perf_counter() - start, [r[0] for r in cert_rows]


async def _latencies(make: Callable[[int], Awaitable[object]], n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        await make(i)
        out.append(time.perf_counter() - start)
    return out


async def _run(results: Results, people: int, certificates: int, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="otcert-bench-db-") as tmp:
        path = Path(tmp) / "otcert.sqlite3"
        db = await Database.open(path)
        repo = Repository(db)
        load_s, serials = await _bulk_load(db, people, certificates)
        results.add(Row("storage", f"bulk load {people:,} people / {certificates:,} certs",
                        load_s, "s", 1,
                        note="executemany in one transaction on the Database's connection, "
                             "with audit rows"))
        rng = random.Random(7)
        n = 30 if quick else 100
        pending = [p.telegram_id for p in await repo.list_people(PersonStatus.PENDING)]
        approvals = await _latencies(
            lambda i: repo.approve(pending[i], f"newcomer{i}", by=1000), min(n, len(pending)))
        _add(results, "approve (transaction + audit row, fsync)", approvals)
        approved = int(people * (1 - PENDING_SHARE))
        picks = [rng.randrange(approved) for _ in range(n)]
        _add(results, "look up certificate by serial", await _latencies(
            lambda i: repo.get_certificate(serials[rng.randrange(len(serials))]), n))
        _add(results, "look up person by MQTT username", await _latencies(
            lambda i: repo.get_person_by_username(f"person{picks[i]}"), n))
        per_person = await _latencies(
            lambda i: repo.certificates_for(10_000_000 + picks[i], active_only=True), n)
        plain = await _latencies(  # the plan SQLite picked before '+status': few repeats
            lambda i: _active_plain_status(db, 10_000_000 + picks[i]), max(3, n // 10))
        results.add(Row("storage", "a person's active certificates (every /getcert)",
                        median(per_person) * 1e3, "ms", n,
                        ratio=median(plain) / median(per_person),
                        ratio_label="vs the plain 'status =' query",
                        note="'+status' keeps SQLite on the owner index"))
        now = datetime.now(UTC)
        issue = await _latencies(lambda i: repo.record_issue(Certificate(
            serial=f"{rng.getrandbits(120) | (1 << 119):x}", telegram_id=10_000_000 + picks[i],
            mqtt_username=f"person{picks[i]}", device=f"bench{i}",
            fingerprint_sha256=rng.getrandbits(256).to_bytes(32, "big").hex(":").upper(),
            not_before=now, not_after=now + timedelta(days=365), issued_at=now,
            status=CertStatus.ACTIVE)), n)
        _add(results, "record an issue (transaction + audit row, fsync)", issue)
        victims = [p for p in range(approved - 1, 0, -1) if p not in set(picks)][:10]
        revokes = await _latencies(
            lambda i: repo.revoke_person(10_000_000 + victims[i], by=1000, reason="bench"),
            len(victims))
        _add(results, "revoke a person (transaction + audit row, fsync)", revokes)
        list_all = await _latencies(lambda i: repo.list_people(), 2)
        results.add(Row("storage", f"list all {people:,} people", median(list_all), "s",
                        len(list_all), note="what `otcert users` starts with"))
        crl_rows = await _latencies(lambda i: repo.revoked_serials(now), 2)
        results.add(Row("storage", f"CRL query ({int(certificates * ENDED_SHARE):,} rows approx.)",
                        median(crl_rows), "s", len(crl_rows)))
        async def listing() -> None:
            await repo.list_people()
            await repo.active_certificates_by_person()

        users = await _latencies(lambda i: listing(), 2)
        n_plus_one = median(list_all) + people * median(per_person)
        results.add(Row("storage", "admin listing (people + active certificates)", median(users),
                        "s", len(users), ratio=n_plus_one / median(users),
                        ratio_label="vs one query per person (estimated)",
                        note="two queries; `otcert users`"))

        async def first_page() -> None:
            page = await repo.list_people(limit=LIST_MAX_PEOPLE)
            await repo.active_certificates_by_person([p.telegram_id for p in page])
            await repo.count_people()

        paged = await _latencies(lambda i: first_page(), 5)
        results.add(Row("storage", f"admin listing, first {LIST_MAX_PEOPLE} people (/users)",
                        median(paged) * 1e3, "ms", len(paged),
                        ratio=median(users) / median(paged), ratio_label="vs the full listing",
                        note="three queries: a page, its certificates, a count"))
        await db.close()  # the last connection to close checkpoints and removes the WAL
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        results.add(Row("storage", "database size on disk", size, "MB", 1,
                        note=f"{people:,} people, {certificates + n:,} certs, audit rows"))


async def _active_plain_status(db: Database, telegram_id: int) -> list[Certificate]:
    """The query before the '+status' fix, for comparison: SQLite picks the status index,
    which matches most rows."""
    sql = ("SELECT * FROM certificates WHERE telegram_id = ? AND status = 'active' "
           "ORDER BY issued_at, serial")
    async with db.reading() as conn, conn.execute(sql, (telegram_id,)) as cur:
        rows = await cur.fetchall()
    return [certificate_from_row(r) for r in rows]


def _add(results: Results, name: str, seconds: list[float]) -> None:
    results.add(Row("storage", name, median(seconds) * 1e3, "ms", len(seconds)))


def run(results: Results, *, quick: bool) -> None:
    people, certificates = (QUICK_PEOPLE, QUICK_CERTIFICATES) if quick else (
        PEOPLE, CERTIFICATES)
    asyncio.run(_run(results, people, certificates, quick))
