"""Races: the same decision taken twice at once must happen exactly once.

Both within one Database (tasks sharing a connection) and across separate Database objects
on the same file (separate connections and threads, as two processes would be).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from storage import (
    CertStatus,
    Database,
    InvalidTransition,
    Person,
    PersonStatus,
    Repository,
    UsernameTaken,
)
from tests.storage_fixtures import ADMIN, approved, make_cert

PEOPLE = range(1, 11)


@pytest.fixture
async def repos(tmp_path: Path) -> AsyncIterator[list[Repository]]:
    """Four repositories, each over its own Database on one file."""
    async with AsyncExitStack() as stack:
        dbs = [await stack.enter_async_context(await Database.open(tmp_path / "bot.db"))
               for _ in range(4)]
        yield [Repository(db) for db in dbs]


def split(results: Sequence[object]) -> tuple[list[object], list[BaseException]]:
    errors = [r for r in results if isinstance(r, BaseException)]
    return [r for r in results if not isinstance(r, BaseException)], errors


async def approve_race(approvers: list[Repository]) -> None:
    for telegram_id in PEOPLE:
        await approvers[0].request_access(telegram_id, f"P{telegram_id}", None)
    results = await asyncio.gather(
        *(
            approvers[i % len(approvers)].approve(tid, f"user{tid}-{i}", by=ADMIN + i)
            for tid in PEOPLE
            for i in range(2)
        ),
        return_exceptions=True,
    )
    winners, errors = split(results)
    assert len(winners) == len(PEOPLE)
    assert all(isinstance(w, Person) and w.status is PersonStatus.APPROVED for w in winners)
    assert {w.telegram_id for w in winners} == set(PEOPLE)  # type: ignore[attr-defined]
    assert all(isinstance(e, InvalidTransition) for e in errors), errors
    log = await approvers[0].audit_log(limit=1000)
    assert sum(e.action == "approve" for e in log) == len(PEOPLE)
    for telegram_id in PEOPLE:  # stored username is the winner's, its audit row agrees
        person = await approvers[0].get_person(telegram_id)
        [entry] = [e for e in log if e.action == "approve" and e.subject_id == telegram_id]
        assert person is not None and entry.details["mqtt_username"] == person.mqtt_username


async def test_concurrent_approvals_on_one_database(tmp_path: Path) -> None:
    async with await Database.open(tmp_path / "bot.db") as db:
        await approve_race([Repository(db)])


async def test_concurrent_approvals_on_separate_databases(repos: list[Repository]) -> None:
    await approve_race(repos)


async def test_concurrent_requests_notify_admins_once(repos: list[Repository]) -> None:
    results = await asyncio.gather(*(r.request_access(1, "A", None) for r in repos * 2))
    assert sorted(notify for _, notify in results) == [False] * 7 + [True]
    assert len(await repos[0].audit_log()) == 1


async def test_same_username_for_two_people_at_once(repos: list[Repository]) -> None:
    await repos[0].request_access(1, "A", None)
    await repos[0].request_access(2, "B", None)
    results = await asyncio.gather(
        repos[1].approve(1, "Sam", by=ADMIN), repos[2].approve(2, "sam", by=ADMIN),
        return_exceptions=True,
    )
    winners, errors = split(results)
    assert len(winners) == 1 and len(errors) == 1 and isinstance(errors[0], UsernameTaken)


async def test_concurrent_issues_leave_one_active_certificate(repos: list[Repository]) -> None:
    await approved(repos[0], 1, "alice")
    certs = [make_cert(1, "alice") for _ in range(8)]
    await asyncio.gather(*(repos[i % 4].record_issue(c) for i, c in enumerate(certs)))
    stored = await repos[0].certificates_for(1)
    assert len(stored) == 8
    assert [c.status for c in stored].count(CertStatus.ACTIVE) == 1
    assert len(await repos[0].crl_entries(certs[0].issued_at)) == 7


async def test_crl_numbers_and_update_claims_are_unique(repos: list[Repository]) -> None:
    numbers = await asyncio.gather(*(r.next_crl_number() for r in repos * 5))
    assert sorted(numbers) == list(range(1, 21))
    claims = await asyncio.gather(*(r.claim_update(update_id) for r in repos
                                    for update_id in (7, 8, 9)))
    assert sum(claims) == 3


async def test_reads_do_not_wait_for_a_write_transaction_nor_see_it(tmp_path: Path) -> None:
    """A /start during a burst of deliveries: its read must not queue behind their writes."""
    async with await Database.open(tmp_path / "bot.db") as db:
        repo = Repository(db)
        await repo.request_access(1, "Alice", None)
        inside, release = asyncio.Event(), asyncio.Event()

        async def slow_writer() -> None:
            async with db.transaction() as conn:
                await conn.execute(
                    "UPDATE people SET display_name = 'Changed' WHERE telegram_id = 1")
                inside.set()
                await release.wait()

        writer = asyncio.create_task(slow_writer())
        await inside.wait()
        try:
            async with asyncio.timeout(5):  # before the fix: waits for the writer, forever
                person = await repo.get_person(1)
        finally:
            release.set()
            await writer
        assert person is not None and person.display_name == "Alice"  # not the uncommitted name
        person = await repo.get_person(1)
        assert person is not None and person.display_name == "Changed"
