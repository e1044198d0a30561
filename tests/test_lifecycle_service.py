"""The lifecycle use cases over a real database, CA and signer, with an injected clock: a year
passes in milliseconds. Reminders once per threshold, renewal rules, the due query's index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.errors import UserError
from bot.core.keypool import KeyPool
from bot.core.lifecycle import Lifecycle
from bot.core.rules import Policy
from bot.core.service import Service
from bot.core.signer import Signer
from pki import CertificateAuthority
from storage import Database, Platform, Repository
from storage._lifecycle import DUE_SQL
from tests.storage_fixtures import T0, Clock

ADMIN = 1000
ALICE, BOB = 2001, 2002


@dataclass
class World:
    service: Service
    lifecycle: Lifecycle
    clock: Clock
    db: Database


@pytest.fixture
async def world(tmp_path: Path, other_ca: CertificateAuthority) -> AsyncIterator[World]:
    clock = Clock(T0)
    db = await Database.open(tmp_path / "bot.db")
    policy = Policy(admin_ids=frozenset({ADMIN}), cert_days=365, max_devices=1,
                    issue_cooldown=timedelta(0), crl_path=tmp_path / "crl.pem",
                    renew_window_days=30)
    keys = KeyPool("ec-p256", 0)
    signer = Signer(other_ca, workers=0)
    keys.start()
    await signer.start()
    service = Service(Repository(db, clock=clock), other_ca, policy, keys, signer=signer,
                      clock=clock)
    for tid, name in ((ALICE, "alice"), (BOB, "bob")):
        await service.request_access(tid, name.title(), name)
        await service.approve(ADMIN, tid, name)
        await service.set_platform(tid, Platform.ANDROID)
    try:
        yield World(service, Lifecycle(service, reminder_days=(30, 7, 1)), clock, db)
    finally:
        await keys.stop()
        await signer.stop()
        await db.close()


async def issue(w: World, tid: int, *, renews: str | None = None) -> str:
    bundle = await w.service.issue(tid, "phone", renews=renews)
    await w.service.confirm_delivery(bundle.serial)
    return bundle.serial


async def remind_all(w: World) -> list[tuple[str, tuple[int, ...]]]:
    """What one run of the job sends to owners (claimed, then confirmed)."""
    sent = []
    for due in await w.lifecycle.due_for_owners():
        await w.service.repo.claim_reminder(due.certificate.serial, "owner", due.days)
        await w.service.repo.confirm_reminder(due.certificate.serial, "owner", due.days)
        sent.append((due.certificate.serial, due.days))
    return sent


async def test_one_reminder_per_threshold_as_the_year_passes(world: World) -> None:
    serial = await issue(world, ALICE)
    timeline = [(300, []), (340, [(30,)]), (341, []), (359, [(7,)]), (360, []),
                (364.5, [(1,)]), (364.9, [])]
    for day, expected in timeline:
        world.clock.now = T0 + timedelta(days=day)
        sent = await remind_all(world)
        assert [days for s, days in sent if s == serial] == expected, day
    world.clock.now = T0 + timedelta(days=364.5)
    [admins] = await world.lifecycle.due_for_admins()
    assert admins.certificate.serial == serial and admins.days == (1,)


async def test_a_claimed_but_unconfirmed_reminder_is_sent_again_after_a_crash(
    world: World,
) -> None:
    serial = await issue(world, ALICE)
    world.clock.now = T0 + timedelta(days=340)
    await world.service.repo.claim_reminder(serial, "owner", (30,))  # then the crash
    [due] = await world.lifecycle.due_for_owners()
    assert due.days == (30,)
    await world.service.repo.confirm_reminder(serial, "owner", (30,))
    assert await world.lifecycle.due_for_owners() == []


async def test_several_thresholds_due_at_once_are_one_reminder(world: World) -> None:
    serial = await issue(world, ALICE)
    world.clock.now = T0 + timedelta(days=364.5)  # the bot was down for months
    assert await remind_all(world) == [(serial, (30, 7, 1))]
    assert await remind_all(world) == []


async def test_renewal_window_ownership_and_the_old_certificate_staying_valid(
    world: World,
) -> None:
    old = await issue(world, ALICE)
    bob = await issue(world, BOB)
    world.clock.now = T0 + timedelta(days=300)
    with pytest.raises(UserError, match=r"valid until 2031-01-01\. You can renew it from "
                                        r"2030-12-02"):
        await issue(world, ALICE, renews=old)
    world.clock.now = T0 + timedelta(days=340)
    with pytest.raises(UserError, match="not one of yours"):
        await issue(world, BOB, renews=old)  # forged: bob names alice's certificate
    new = await issue(world, ALICE, renews=old)  # max_devices=1: the same device, one slot
    repo = world.service.repo
    assert (await repo.get_certificate(old)).status.value == "active"  # type: ignore[union-attr]
    assert old not in {c.serial for c in await repo.crl_entries(world.clock.now)}
    assert [d.certificate.serial for d in await world.lifecycle.due_for_owners()] == [bob]
    [mine] = await world.lifecycle.my_certificates(ALICE)
    assert mine.certificate.serial == new
    with pytest.raises(UserError, match="already renewed"):
        await issue(world, ALICE, renews=old)
    # Access taken away: nothing may be renewed any more.
    await world.service.revoke(ADMIN, "bob", "left")
    with pytest.raises(UserError):
        await issue(world, BOB, renews=bob)


async def test_an_undelivered_renewal_leaves_the_old_certificate_renewable(world: World) -> None:
    old = await issue(world, ALICE)
    world.clock.now = T0 + timedelta(days=340)
    bundle = await world.service.issue(ALICE, renews=old)
    await world.service.revoke_undelivered(bundle.serial)
    assert [d.certificate.serial for d in await world.lifecycle.due_for_owners()] == [old]
    assert await world.lifecycle.renewal_for(ALICE, None) == old


async def test_the_due_query_filters_inside_the_covering_index(world: World) -> None:
    async with world.db.reading() as conn, conn.execute(
        "EXPLAIN QUERY PLAN " + DUE_SQL, ("a", "b", 30, 10)
    ) as cur:
        plan = " | ".join(str(row[3]) for row in await cur.fetchall())
    assert "SEARCH c USING INDEX certificates_reminders (status=? AND not_after>? AND " \
           "not_after<?)" in plan, plan
    assert "SCAN c" not in plan, plan


async def test_storage_refuses_a_renewal_link_to_someone_elses_certificate(world: World) -> None:
    from storage import InvalidTransition
    from tests.storage_fixtures import make_cert

    bob = await issue(world, BOB)
    forged = make_cert(ALICE, "alice", issued_at=world.clock.now)
    with pytest.raises(InvalidTransition):
        await world.service.repo.record_issue(forged, renews=bob)
    assert [c.serial for c in await world.service.repo.certificates_for(ALICE)] == []


async def test_a_certificate_issued_for_a_phone_renews_without_asking_or_replacing(
    world: World,
) -> None:
    """``otcert issue --platform`` for someone with no phone on record: the renewal must not
    stop at the phone question (whose answer used to replace, i.e. revoke, the old one)."""
    from storage import OPERATOR_ID

    carol = 2003
    await world.service.request_access(carol, "Carol", "carol")
    await world.service.approve(ADMIN, carol, "carol")
    first = await world.service.issue(carol, "phone", actor=OPERATOR_ID, platform=Platform.IOS)
    await world.service.confirm_delivery(first.serial)
    world.clock.now = T0 + timedelta(days=340)
    renewal = await world.service.issue(carol, renews=first.serial)
    assert renewal.platform is Platform.IOS and renewal.replaced == 0
    old = await world.service.repo.get_certificate(first.serial)
    assert old is not None and old.status.value == "active"


async def test_a_failed_self_revocation_still_publishes_what_it_revoked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renewed predecessor is revoked, the new one fails (a fault): the CRL must already
    list the predecessor, or the lost phone keeps connecting with it."""
    old = await issue(world, ALICE)
    world.clock.now = T0 + timedelta(days=340)
    new = await issue(world, ALICE, renews=old)
    repo = world.service.repo
    real = repo.revoke_certificate
    done: list[str] = []

    async def failing(serial: str, **kw: object) -> object:
        if done:  # the second revocation fails
            raise RuntimeError("disk full")
        done.append(serial)
        return await real(serial, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "revoke_certificate", failing)
    with pytest.raises(RuntimeError):
        await world.lifecycle.revoke_own(ALICE, new)
    from pki.crl import verify_crl

    crl = verify_crl(world.service.policy.crl_path.read_bytes(),
                     world.service.ca.certificate)
    revoked = {format(r.serial_number, "x") for r in crl}
    assert revoked == set(done) and len(done) == 1
