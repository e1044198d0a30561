"""Second-admin pin proposals end: after 24 hours, and when any pin is set meanwhile (by
another proposal, the bot's own CA, or the operator's shell in another process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.broker import BrokerOutcome
from bot.core.errors import UserError
from bot.core.rules import Policy
from bot.core.trust import PinGate
from pki import CertificateAuthority
from tests.storage_fixtures import Clock, open_repo

ANN, BEN = 1001, 1002
GONE = "no longer open"


async def refused(host: str | None, port: int, pem: bytes | None) -> BrokerOutcome:
    return BrokerOutcome(False, "the broker does not present it")


@pytest.fixture
async def gate(tmp_path: Path, other_ca: CertificateAuthority) -> AsyncIterator[
        tuple[PinGate, Clock]]:
    clock = Clock(datetime.now(UTC))
    db, repo = await open_repo(tmp_path / "bot.db", clock)
    policy = Policy(admin_ids=frozenset({ANN, BEN}), crl_path=tmp_path / "crl.pem")
    try:
        yield PinGate(repo, other_ca, policy, clock=clock, probe=refused), clock
    finally:
        await db.close()


def foreign(name: str) -> bytes:
    return CertificateAuthority.create(name, key_type="ec-p384").cert_pem


async def test_a_proposal_older_than_a_day_cannot_be_confirmed(
    gate: tuple[PinGate, Clock],
) -> None:
    pins, clock = gate
    decision = await pins.propose(ANN, foreign("Old"))
    assert decision.route == "confirm" and decision.proposal is not None
    clock.advance(hours=24, seconds=1)
    with pytest.raises(UserError, match=GONE):
        await pins.confirm(BEN, decision.proposal.token)


async def test_a_pin_set_meanwhile_ends_the_open_proposals(
    gate: tuple[PinGate, Clock], other_ca: CertificateAuthority,
) -> None:
    pins, clock = gate
    first = (await pins.propose(ANN, foreign("First"))).proposal
    second = (await pins.propose(BEN, foreign("Second"))).proposal
    assert first is not None and second is not None
    clock.advance(minutes=1)
    await pins.confirm(ANN, second.token)  # Ann confirms Ben's: that pin is set
    with pytest.raises(UserError, match=GONE):
        await pins.confirm(BEN, first.token)  # a stale yes must not undo the newer pin
    third = (await pins.propose(ANN, foreign("Third"))).proposal
    assert third is not None
    clock.advance(minutes=1)
    await pins.propose(BEN, other_ca.cert_pem)  # the bot's own CA: pinned at once
    with pytest.raises(UserError, match=GONE):
        await pins.confirm(BEN, third.token)


async def test_a_pin_from_the_operators_shell_ends_them_too(
    gate: tuple[PinGate, Clock],
) -> None:
    pins, clock = gate
    open_one = (await pins.propose(ANN, foreign("Open"))).proposal
    assert open_one is not None
    clock.advance(minutes=1)
    await pins._repo.set_pin(b"\x30\x00", "ab" * 32, by=0)  # another process wrote it
    with pytest.raises(UserError, match=GONE):
        await pins.confirm(BEN, open_one.token)
