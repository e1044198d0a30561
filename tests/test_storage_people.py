"""People: every transition, every refusal, uniqueness, and no half-writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import (
    InvalidTransition,
    NotFound,
    PersonStatus,
    Platform,
    Repository,
    UsernameTaken,
)
from tests.storage_fixtures import ADMIN, T0, Clock, approved, make_cert, raw_rows


async def actions(repo: Repository, subject: int) -> list[str]:
    return [e.action for e in reversed(await repo.audit_log(subject_id=subject))]


async def test_new_request_is_pending_and_audited(repo: Repository) -> None:
    person, notify = await repo.request_access(1, "Alice", "alice_tg")
    assert notify is True
    assert person.status is PersonStatus.PENDING
    assert (person.display_name, person.tg_username) == ("Alice", "alice_tg")
    assert person.requested_at == T0 and person.created_at == T0
    assert await repo.get_person(1) == person
    assert await actions(repo, 1) == ["request"]


async def test_repeated_request_while_pending_does_not_notify_but_updates_names(
    repo: Repository, clock: Clock
) -> None:
    await repo.request_access(1, "Alice", None)
    clock.advance(minutes=1)
    person, notify = await repo.request_access(1, "Alice B.", "alice")
    assert notify is False
    assert person.status is PersonStatus.PENDING
    assert (person.display_name, person.tg_username) == ("Alice B.", "alice")
    assert person.requested_at == T0  # the original request time stands
    assert await actions(repo, 1) == ["request"]


async def test_request_from_approved_person_changes_nothing(repo: Repository) -> None:
    await approved(repo, 1, "alice")
    person, notify = await repo.request_access(1, "Person 1", None)
    assert notify is False
    assert person.status is PersonStatus.APPROVED
    assert await actions(repo, 1) == ["request", "approve"]


@pytest.mark.parametrize("end", ["deny", "revoke"])
async def test_denied_or_revoked_person_may_ask_again(repo: Repository, end: str) -> None:
    await approved(repo, 1, "alice") if end == "revoke" else await repo.request_access(1, "A", None)
    if end == "deny":
        await repo.deny(1, by=ADMIN, reason="who are you?")
    else:
        await repo.revoke_person(1, by=ADMIN, reason="left the family")
    person, notify = await repo.request_access(1, "A", None)
    assert notify is True
    assert person.status is PersonStatus.PENDING
    assert person.reason is None and person.decided_by is None
    log = await repo.audit_log(subject_id=1, limit=1)
    assert log[0].action == "request"
    assert log[0].details["previous_status"] == ("denied" if end == "deny" else "revoked")


async def test_approve_pending(repo: Repository, clock: Clock) -> None:
    await repo.request_access(1, "Alice", None)
    clock.advance(hours=1)
    person = await repo.approve(1, "alice", by=ADMIN)
    assert person.status is PersonStatus.APPROVED
    assert person.mqtt_username == "alice"
    assert (person.decided_at, person.decided_by) == (clock.now, ADMIN)
    entry = (await repo.audit_log(subject_id=1, limit=1))[0]
    assert (entry.action, entry.actor_id) == ("approve", ADMIN)
    assert entry.details["mqtt_username"] == "alice"


async def test_approve_denied_person(repo: Repository) -> None:
    await repo.request_access(1, "Alice", None)
    await repo.deny(1, by=ADMIN, reason="not now")
    person = await repo.approve(1, "alice", by=ADMIN)
    assert person.status is PersonStatus.APPROVED and person.reason is None


async def test_approve_unknown_id_creates_the_person(repo: Repository) -> None:
    person = await repo.approve(42, "bob", by=ADMIN, display_name="Bob")
    assert (person.telegram_id, person.display_name, person.status) == (42, "Bob", "approved")
    assert person.requested_at is None
    nameless = await repo.approve(43, "carol", by=ADMIN)
    assert nameless.display_name == "43"
    assert await actions(repo, 42) == ["approve"]


async def test_approving_twice_is_refused(repo: Repository) -> None:
    await approved(repo, 1, "alice")
    with pytest.raises(InvalidTransition, match="already approved"):
        await repo.approve(1, "alice2", by=ADMIN)
    assert (await repo.get_person(1)).mqtt_username == "alice"  # type: ignore[union-attr]


async def test_approving_a_revoked_person_needs_a_new_request(repo: Repository) -> None:
    await approved(repo, 1, "alice")
    await repo.revoke_person(1, by=ADMIN, reason="lost phone")
    with pytest.raises(InvalidTransition, match=r"was revoked: lost phone.*/request again"):
        await repo.approve(1, "alice", by=ADMIN)
    await repo.request_access(1, "Alice", None)
    person = await repo.approve(1, "alice", by=ADMIN)  # their own old name is still theirs
    assert person.status is PersonStatus.APPROVED


async def test_username_is_unique_ignoring_case(repo: Repository) -> None:
    await approved(repo, 1, "Alice")
    await repo.request_access(2, "Other", None)
    with pytest.raises(UsernameTaken, match="alice"):
        await repo.approve(2, "alice", by=ADMIN)
    found = await repo.get_person_by_username("ALICE")
    assert found is not None and found.telegram_id == 1


async def test_username_of_someone_elses_old_certificate_is_taken(repo: Repository) -> None:
    """A renamed person's old CN still names their retained topics: not for someone else."""
    await approved(repo, 1, "alice")
    await repo.record_issue(make_cert(1, "alice"))
    await repo.revoke_person(1, by=ADMIN, reason=None)
    await repo.request_access(1, "Alice", None)
    await repo.approve(1, "alice2", by=ADMIN)
    await repo.request_access(2, "Mallory", None)
    with pytest.raises(UsernameTaken):
        await repo.approve(2, "ALICE", by=ADMIN)


async def test_failed_approve_leaves_no_trace(repo: Repository, tmp_path: Path) -> None:
    await approved(repo, 1, "alice")
    await repo.request_access(2, "Bob", None)
    before = raw_rows(tmp_path / "bot.db", "SELECT * FROM people WHERE telegram_id = 2")
    audit_before = raw_rows(tmp_path / "bot.db", "SELECT count(*) FROM audit_log")
    with pytest.raises(UsernameTaken):
        await repo.approve(2, "Alice", by=ADMIN)
    assert raw_rows(tmp_path / "bot.db", "SELECT * FROM people WHERE telegram_id = 2") == before
    assert raw_rows(tmp_path / "bot.db", "SELECT count(*) FROM audit_log") == audit_before
    # and the connection is usable again (the transaction was rolled back, not left open)
    assert (await repo.approve(2, "bob", by=ADMIN)).status is PersonStatus.APPROVED


async def test_deny_only_from_pending(repo: Repository) -> None:
    with pytest.raises(NotFound):
        await repo.deny(5, by=ADMIN)
    await repo.request_access(1, "Alice", None)
    person = await repo.deny(1, by=ADMIN, reason="x" * 2000)
    assert person.status is PersonStatus.DENIED
    assert person.reason == "x" * 500
    with pytest.raises(InvalidTransition, match="already denied"):
        await repo.deny(1, by=ADMIN)
    await approved(repo, 2, "bob")
    with pytest.raises(InvalidTransition, match="/revoke"):
        await repo.deny(2, by=ADMIN)
    await repo.revoke_person(2, by=ADMIN, reason=None)
    with pytest.raises(InvalidTransition, match="revoked"):
        await repo.deny(2, by=ADMIN)


async def test_revoke_person_refusals(repo: Repository) -> None:
    with pytest.raises(NotFound):
        await repo.revoke_person(5, by=ADMIN, reason=None)
    await repo.request_access(1, "Alice", None)
    with pytest.raises(InvalidTransition, match="not been approved"):
        await repo.revoke_person(1, by=ADMIN, reason=None)
    await repo.deny(1, by=ADMIN)
    with pytest.raises(InvalidTransition, match="denied"):
        await repo.revoke_person(1, by=ADMIN, reason=None)
    await approved(repo, 2, "bob")
    await repo.revoke_person(2, by=ADMIN, reason="gone")
    with pytest.raises(InvalidTransition, match="already revoked"):
        await repo.revoke_person(2, by=ADMIN, reason="again")
    assert await actions(repo, 2) == ["request", "approve", "revoke"]


async def test_set_platform(repo: Repository) -> None:
    with pytest.raises(NotFound):
        await repo.set_platform(1, Platform.IOS)
    await repo.request_access(1, "Alice", None)
    assert (await repo.set_platform(1, Platform.IOS)).platform is Platform.IOS
    assert (await repo.set_platform(1, Platform.IOS)).platform is Platform.IOS
    assert (await repo.set_platform(1, Platform.ANDROID)).platform is Platform.ANDROID
    assert (await actions(repo, 1)).count("set_platform") == 2


async def test_list_people_by_status(repo: Repository, clock: Clock) -> None:
    await repo.request_access(1, "A", None)
    clock.advance(seconds=1)
    await approved(repo, 2, "b")
    clock.advance(seconds=1)
    await repo.request_access(3, "C", None)
    assert [p.telegram_id for p in await repo.list_people()] == [1, 2, 3]
    assert [p.telegram_id for p in await repo.list_people(PersonStatus.PENDING)] == [1, 3]
    assert [p.telegram_id for p in await repo.list_people(PersonStatus.APPROVED)] == [2]
    assert await repo.list_people(PersonStatus.REVOKED) == []


async def test_inputs_are_type_checked(repo: Repository) -> None:
    with pytest.raises(TypeError):
        await repo.get_person("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await repo.request_access(True, "A", None)
    with pytest.raises(ValueError, match="empty"):
        await repo.request_access(1, "  ", None)
    with pytest.raises(TypeError):
        await repo.approve(1, None, by=ADMIN)  # type: ignore[arg-type]
    assert await repo.list_people() == []
