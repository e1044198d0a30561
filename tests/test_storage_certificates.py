"""Certificates: issue, supersede, revoke, expire, and what the CRL must list."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from storage import (
    CertStatus,
    InvalidTransition,
    NotFound,
    PersonStatus,
    Repository,
    StorageError,
)
from tests.storage_fixtures import ADMIN, T0, Clock, approved, make_cert, raw_rows


async def test_certificate_round_trip(repo: Repository) -> None:
    await approved(repo, 1, "alice")
    cert = make_cert(1, "alice", serial="0A:1B:FF")
    assert cert.serial == "a1bff"  # canonical: lower-case, no colons, no leading zeros
    assert await repo.record_issue(cert) == []
    assert await repo.get_certificate("0a1bff") == cert
    assert await repo.get_certificate("A1BFF") == cert
    assert await repo.get_certificate("not hex") is None
    assert await repo.get_certificate("ffff") is None
    assert await repo.certificates_for(1) == [cert]
    assert await repo.last_issued_at(1) == T0
    assert await repo.last_issued_at(2) is None
    entry = (await repo.audit_log(subject_id=1, limit=1))[0]
    assert entry.action == "issue" and entry.actor_id == 1 and entry.details["serial"] == "a1bff"


async def test_new_certificate_supersedes_the_same_device_only(
    repo: Repository, clock: Clock
) -> None:
    await approved(repo, 1, "alice")
    phone = make_cert(1, "alice", device="phone")
    tablet = make_cert(1, "alice", device="tablet")
    await repo.record_issue(phone)
    await repo.record_issue(tablet)
    clock.advance(days=1)
    newer = make_cert(1, "alice", device="phone", issued_at=clock.now)
    superseded = await repo.record_issue(newer, actor=ADMIN)
    assert [c.serial for c in superseded] == [phone.serial]
    assert superseded[0].status is CertStatus.SUPERSEDED
    assert superseded[0].revoked_at == clock.now
    assert superseded[0].revocation_reason == "superseded"
    active = await repo.certificates_for(1, active_only=True)
    assert {c.serial for c in active} == {tablet.serial, newer.serial}
    assert [c.serial for c in await repo.crl_entries(clock.now)] == [phone.serial]
    assert await repo.last_issued_at(1) == clock.now
    entry = (await repo.audit_log(subject_id=1, limit=1))[0]
    assert entry.actor_id == ADMIN and entry.details["superseded"] == [phone.serial]


async def test_issue_refused_unless_approved(repo: Repository) -> None:
    with pytest.raises(NotFound):
        await repo.record_issue(make_cert(1, "alice"))
    await repo.request_access(1, "Alice", None)
    with pytest.raises(InvalidTransition, match="not approved"):
        await repo.record_issue(make_cert(1, "alice"))
    await repo.approve(1, "alice", by=ADMIN)
    await repo.revoke_person(1, by=ADMIN, reason=None)
    with pytest.raises(InvalidTransition, match="status: revoked"):
        await repo.record_issue(make_cert(1, "alice"))
    assert await repo.certificates_for(1) == []


async def test_issue_refused_for_another_username(repo: Repository) -> None:
    await approved(repo, 1, "alice")
    with pytest.raises(InvalidTransition, match="'bob'"):
        await repo.record_issue(make_cert(1, "bob"))
    with pytest.raises(ValueError, match="active"):
        await repo.record_issue(make_cert(1, "alice").model_copy(update={"status": "revoked"}))


async def test_duplicate_serial_rolls_back_the_supersede(repo: Repository, tmp_path: Path) -> None:
    """The supersede UPDATE has run when the INSERT fails: the rollback must undo it."""
    await approved(repo, 1, "alice")
    first = make_cert(1, "alice")
    await repo.record_issue(first)
    audit_rows = raw_rows(tmp_path / "bot.db", "SELECT count(*) FROM audit_log")
    with pytest.raises(StorageError, match="already recorded"):
        await repo.record_issue(make_cert(1, "alice", serial=first.serial))
    assert (await repo.get_certificate(first.serial)) == first  # still active
    assert await repo.crl_entries(T0) == []
    assert raw_rows(tmp_path / "bot.db", "SELECT count(*) FROM audit_log") == audit_rows


async def test_revoke_person_revokes_every_active_certificate(
    repo: Repository, clock: Clock
) -> None:
    await approved(repo, 1, "alice")
    await approved(repo, 2, "bob")
    old = make_cert(1, "alice")
    await repo.record_issue(old)
    phone = make_cert(1, "alice")  # supersedes `old`
    tablet = make_cert(1, "alice", device="tablet")
    await repo.record_issue(phone)
    await repo.record_issue(tablet)
    bobs = make_cert(2, "bob")
    await repo.record_issue(bobs)
    clock.advance(hours=2)
    person, revoked = await repo.revoke_person(1, by=ADMIN, reason="lost phone")
    assert person.status is PersonStatus.REVOKED and person.reason == "lost phone"
    assert {c.serial for c in revoked} == {phone.serial, tablet.serial}
    assert all(c.status is CertStatus.REVOKED and c.revoked_at == clock.now for c in revoked)
    assert all(c.revocation_reason == "lost phone" for c in revoked)
    again = await repo.get_certificate(old.serial)
    assert again is not None and again.status is CertStatus.SUPERSEDED  # untouched
    assert (await repo.get_certificate(bobs.serial)).status is CertStatus.ACTIVE  # type: ignore[union-attr]
    crl = {c.serial for c in await repo.crl_entries(clock.now)}
    assert crl == {old.serial, phone.serial, tablet.serial}


async def test_revoke_certificate_only_once(repo: Repository, clock: Clock) -> None:
    await approved(repo, 1, "alice")
    cert = make_cert(1, "alice")
    await repo.record_issue(cert)
    revoked = await repo.revoke_certificate(cert.serial.upper(), by=None, reason="undelivered")
    assert revoked.status is CertStatus.REVOKED and revoked.revocation_reason == "undelivered"
    with pytest.raises(InvalidTransition, match="is revoked"):
        await repo.revoke_certificate(cert.serial, by=ADMIN, reason="again")
    with pytest.raises(NotFound):
        await repo.revoke_certificate("abcdef", by=ADMIN, reason="x")
    with pytest.raises(NotFound):
        await repo.revoke_certificate("xyz", by=ADMIN, reason="x")
    entry = (await repo.audit_log(subject_id=1, limit=1))[0]
    assert (entry.action, entry.actor_id) == ("revoke_certificate", None)
    # the person keeps access: only this certificate is gone
    assert (await repo.get_person(1)).status is PersonStatus.APPROVED  # type: ignore[union-attr]


async def test_crl_drops_expired_and_mark_expired(repo: Repository, clock: Clock) -> None:
    await approved(repo, 1, "alice")
    short = make_cert(1, "alice", device="a", days=1)
    long = make_cert(1, "alice", device="b", days=30)
    active_short = make_cert(1, "alice", device="c", days=2)
    for cert in (short, long, active_short):
        await repo.record_issue(cert)
    await repo.revoke_certificate(short.serial, by=ADMIN, reason="x")
    await repo.revoke_certificate(long.serial, by=ADMIN, reason="x")
    assert {c.serial for c in await repo.crl_entries(T0)} == {short.serial, long.serial}
    later = T0 + timedelta(days=3)
    assert [c.serial for c in await repo.crl_entries(later)] == [long.serial]
    clock.now = later
    assert await repo.mark_expired(later) == 1
    assert await repo.mark_expired(later) == 0
    expired = await repo.get_certificate(active_short.serial)
    assert expired is not None and expired.status is CertStatus.EXPIRED
    assert (await repo.get_certificate(short.serial)).status is CertStatus.REVOKED  # type: ignore[union-attr]
    assert await repo.certificates_for(1, active_only=True) == []
    with pytest.raises(InvalidTransition, match="expired"):
        await repo.revoke_certificate(active_short.serial, by=ADMIN, reason="late")


async def test_naive_datetimes_are_refused(repo: Repository) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await repo.crl_entries(T0.replace(tzinfo=None))



async def test_delivery_is_tracked_and_unfinished_ones_are_found(repo: Repository) -> None:
    await approved(repo, 11, "dora")
    first, second = make_cert(11, "dora"), make_cert(11, "dora", device="ipad")
    await repo.record_issue(first)
    await repo.record_issue(second)
    undelivered = {c.serial for c in await repo.undelivered_certificates()}
    assert undelivered == {first.serial, second.serial}
    await repo.mark_delivered(first.serial)
    stored = await repo.get_certificate(first.serial)
    assert stored is not None and stored.delivered_at is not None
    await repo.mark_delivered(first.serial)  # idempotent: the first time stays
    assert await repo.get_certificate(first.serial) == stored
    assert [c.serial for c in await repo.undelivered_certificates()] == [second.serial]
    await repo.revoke_certificate(second.serial, by=None, reason="undelivered")
    assert await repo.undelivered_certificates() == []


async def test_request_notices_are_handed_out_once(repo: Repository) -> None:
    await repo.add_request_notices(5, [(1000, 7), (1001, 3)])
    await repo.add_request_notices(5, [(1000, 7)])  # the same copy twice is one copy
    await repo.add_request_notices(6, [(1000, 8)])
    assert await repo.take_request_notices(5) == [(1000, 7), (1001, 3)]
    assert await repo.take_request_notices(5) == []
    assert await repo.take_request_notices(6) == [(1000, 8)]


async def test_active_certificates_are_grouped_by_person_in_one_query(repo: Repository) -> None:
    await approved(repo, 21, "erin")
    await approved(repo, 22, "fred")
    phone, ipad = make_cert(21, "erin"), make_cert(21, "erin", device="ipad")
    fred = make_cert(22, "fred")
    for cert in (phone, ipad, fred):
        await repo.record_issue(cert)
    await repo.revoke_certificate(ipad.serial, by=None, reason="lost")
    grouped = await repo.active_certificates_by_person()
    assert {tid: [c.serial for c in certs] for tid, certs in grouped.items()} == {
        21: [phone.serial], 22: [fred.serial]}
    # A page of a listing: only the people asked about.
    page = await repo.active_certificates_by_person([22, 999])
    assert {tid: [c.serial for c in certs] for tid, certs in page.items()} == {
        22: [fred.serial]}
    assert await repo.active_certificates_by_person([]) == {}


async def test_people_are_listed_a_page_at_a_time_with_the_total(repo: Repository) -> None:
    for telegram_id in (41, 42, 43):
        await approved(repo, telegram_id, f"user{telegram_id}")
    people = await repo.list_people()
    assert [p.telegram_id for p in await repo.list_people(limit=2)] == [
        p.telegram_id for p in people[:2]]
    assert await repo.list_people(limit=0) == []
    assert await repo.count_people() == len(people) >= 3


async def test_revoked_serials_are_the_crl_entries_lightly(repo: Repository, clock: Clock) -> None:
    await approved(repo, 31, "gail")
    old, new = make_cert(31, "gail"), make_cert(31, "gail")
    kept = make_cert(31, "gail", device="ipad")
    for cert in (old, kept):
        await repo.record_issue(cert)
    await repo.record_issue(new)  # supersedes old
    await repo.revoke_certificate(kept.serial, by=None, reason="lost")
    full = await repo.crl_entries(clock.now)
    light = await repo.revoked_serials(clock.now)
    assert [(c.serial, c.revoked_at, c.revocation_reason) for c in full] == [
        (r.serial, r.revoked_at, r.reason) for r in light]
    assert {r.reason for r in light} == {"superseded", "lost"}
