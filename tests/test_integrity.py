"""Issue 14 points 3 and 6 through the real service, database, CA and CRL file: what the CRL
report claims, CRL failures reaching admins, the daily cap's notice, approve and deny at once,
the retried and swept revocation of undelivered certificates, 16-digit Telegram ids."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.broker import BrokerAdmin
from bot.core import integrity
from bot.core.errors import UserError
from bot.core.keypool import KeyPool
from bot.core.results import CrlReport
from bot.core.rules import Policy
from bot.core.service import Service
from bot.core.signer import Signer
from bot.telegram.callbacks import RequestAnswer, parse, telegram_id
from bot.telegram.handlers.admin import crl_summary
from pki import CertificateAuthority, verify_crl
from storage import CertStatus, InvalidTransition, Person, PersonStatus, Platform, Repository
from tests.storage_fixtures import Clock, open_repo

ADMIN = 1000
BIG_ID = 2**52  # 4503599627370496: 16 digits


class World:
    def __init__(self, service: Service, repo: Repository, clock: Clock, crl: Path) -> None:
        self.service, self.repo, self.clock, self.crl = service, repo, clock, crl
        self.crl_alerts: list[tuple[CrlReport, str]] = []
        self.limit_alerts: list[Person] = []

        async def crl_alert(report: CrlReport, when: str) -> None:
            self.crl_alerts.append((report, when))

        async def limit_alert(person: Person) -> None:
            self.limit_alerts.append(person)

        service.crl_alert = crl_alert
        service.limit_alert = limit_alert

    async def person(self, telegram_id: int, name: str) -> None:
        await self.service.request_access(telegram_id, name.title(), name)
        await self.service.approve(ADMIN, telegram_id, name)
        await self.service.set_platform(telegram_id, Platform.ANDROID)


@pytest.fixture
async def world(tmp_path: Path, other_ca: CertificateAuthority) -> AsyncIterator[World]:
    yield await _world(tmp_path, other_ca)


_OPEN: list[object] = []


async def _world(
    tmp_path: Path, ca: CertificateAuthority, **policy: object
) -> World:
    clock = Clock()
    tmp_path.mkdir(parents=True, exist_ok=True)
    db, repo = await open_repo(tmp_path / "bot.db", clock)
    _OPEN.append(db)
    crl = tmp_path / "crl.pem"
    settings = Policy(admin_ids=frozenset({ADMIN}), crl_path=crl, issue_cooldown=timedelta(0))
    settings = replace(settings, **policy)  # type: ignore[arg-type]
    signer = Signer(ca)
    await signer.start()
    service = Service(repo, ca, settings, KeyPool("ec-p256", 0), signer=signer, clock=clock)
    return World(service, repo, clock, crl)


@pytest.fixture(autouse=True)
async def _close_databases() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()  # type: ignore[attr-defined]


# --- point 3: say what happened ------------------------------------------------------------
async def test_without_a_reload_command_nobody_reads_reloaded(world: World) -> None:
    report = await world.service.refresh_crl(kick_username="bob")
    assert report.written and report.reload is None
    text = crl_summary(report, kicked_expected=True)
    assert "reloaded" not in text.lower().replace("only when it is reloaded", "")
    assert "No reload command is configured" in text


async def test_the_kick_waits_for_a_successful_reload(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    # An admin that would answer "connection refused" if it were ever asked.
    admin = BrokerAdmin(host="127.0.0.1", port=9, cert_path=tmp_path / "a.crt",
                        key_path=tmp_path / "a.key", ca_file=None, bot_ca_file=tmp_path / "c")
    failing = await _world(tmp_path / "f", other_ca, reload_command="exit 3", broker_admin=admin)
    report = await failing.service.refresh_crl(kick_username="bob")
    assert report.reload is not None and not report.reload.ok
    assert report.kick is None and report.kick_skipped
    text = crl_summary(report, kicked_expected=True)
    assert "reload failed" in text and "not ended" in text and "reloaded (" not in text
    working = await _world(tmp_path / "w", other_ca, reload_command="true", broker_admin=admin)
    report = await working.service.refresh_crl(kick_username="bob")
    assert report.reload is not None and report.reload.ok and not report.kick_skipped
    assert report.kick is not None  # asked (and failed: nobody listens), after the reload
    assert "Broker reloaded (the reload command succeeded)" in crl_summary(
        report, kicked_expected=True)


async def test_a_crl_failure_after_a_supersede_or_undelivered_reaches_the_admins(
    world: World,
) -> None:
    await world.person(2001, "alice")
    first = await world.service.issue(2001, "phone")
    await world.service.confirm_delivery(first.serial)
    world.crl.mkdir()  # the CRL path is now a directory: every write fails
    await world.service.issue(2001, "phone")  # replaces the first
    assert [(r.written, w) for r, w in world.crl_alerts] == [(False, "post-replacement")]
    third = await world.service.issue(2001, "tablet")
    await world.service.revoke_undelivered(third.serial)
    assert [w for _, w in world.crl_alerts][-1] == "undelivered-certificate"
    assert not world.crl_alerts[-1][0].written


def test_run_refuses_a_kick_without_a_reload_command(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTCERT_")}
    env.update(OTCERT_BOT_TOKEN="1:x", OTCERT_ADMIN_IDS="1", OTCERT_BROKER_KICK="dynsec",
               OTCERT_MQTT_HOST="127.0.0.1", OTCERT_DATA_DIR=str(tmp_path / "d"),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-m", "bot.ops.cli", "run"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "OTCERT_BROKER_RELOAD_COMMAND" in lines[0], done.stderr


# --- point 6: the daily cap, told once ------------------------------------------------------
async def test_the_daily_cap_refuses_and_tells_the_admins_once(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    world = await _world(tmp_path, other_ca, max_issues_per_day=2)
    await world.person(2002, "bob")
    for device in ("a", "b"):
        await world.service.issue(2002, device)
    for _ in range(3):
        with pytest.raises(UserError, match="most allowed"):
            await world.service.issue(2002, "a")
    assert [p.telegram_id for p in world.limit_alerts] == [2002]
    world.clock.advance(hours=24, seconds=1)
    await world.service.issue(2002, "a")  # a new window


# --- point 6: approve and deny pressed at the same moment -----------------------------------
async def test_approve_and_deny_at_once_end_in_exactly_one_decision(world: World) -> None:
    for round_ in range(20):
        tid = 3000 + round_
        await world.service.request_access(tid, "Racer", None)
        calls = [
            world.service.approve(ADMIN, tid, f"racer{round_}", expected=PersonStatus.PENDING),
            world.service.deny(ADMIN, tid, None),
        ]
        if round_ % 2:
            calls.reverse()
        results = await asyncio.gather(*calls, return_exceptions=True)
        won = [r for r in results if isinstance(r, Person)]
        lost = [r for r in results if isinstance(r, InvalidTransition)]
        assert len(won) == 1 and len(lost) == 1, results
        final = await world.repo.get_person(tid)
        assert final is not None and final.status is won[0].status
        decisions = [e for e in await world.repo.audit_log(subject_id=tid)
                     if e.action in ("approve", "deny")]
        assert len(decisions) == 1


# --- point 6: undelivered certificates never stay valid -------------------------------------
class FlakyRepository(Repository):
    """The real repository whose first ``fail`` revocations hit a locked database."""

    fail = 0

    async def revoke_certificate(self, serial: str, *, by: int | None, reason: str):  # type: ignore[no-untyped-def]
        if self.fail:
            self.fail -= 1
            raise sqlite3.OperationalError("database is locked")
        return await super().revoke_certificate(serial, by=by, reason=reason)


async def test_a_failed_revocation_is_retried_and_the_sweep_catches_the_rest(
    world: World, other_ca: CertificateAuthority
) -> None:
    await world.person(2003, "carol")
    flaky = FlakyRepository(world.repo._db, clock=world.clock)
    world.service.repo = flaky
    first = await world.service.issue(2003, "phone")
    flaky.fail = 2
    await world.service.revoke_undelivered(first.serial)
    assert (await _status(world, first.serial)) is CertStatus.REVOKED

    second = await world.service.issue(2003, "tablet")
    flaky.fail = integrity.REVOKE_ATTEMPTS  # every retry fails: left for the sweep
    await world.service.revoke_undelivered(second.serial)
    assert (await _status(world, second.serial)) is CertStatus.ACTIVE
    delivered = await world.service.issue(2003, "watch")
    await world.service.confirm_delivery(delivered.serial)
    assert await world.service.sweep_undelivered() == 0  # too young to judge
    world.clock.advance(minutes=6)
    assert await world.service.sweep_undelivered() == 1
    assert (await _status(world, second.serial)) is CertStatus.REVOKED
    assert (await _status(world, delivered.serial)) is CertStatus.ACTIVE
    crl = verify_crl(world.crl.read_bytes(), other_ca.certificate)
    assert crl.get_revoked_certificate_by_serial_number(int(second.serial, 16)) is not None


async def _status(world: World, serial: str) -> CertStatus:
    certs = await world.repo.certificates_for(2003)
    return next(c.status for c in certs if c.serial == serial)


# --- point 6: Telegram ids up to 2**52 ------------------------------------------------------
async def test_sixteen_digit_telegram_ids_are_accepted(world: World) -> None:
    assert telegram_id(str(BIG_ID)) == BIG_ID
    assert telegram_id("1" * 17) is None
    assert parse(RequestAnswer("ok", BIG_ID, "big").data()) == RequestAnswer("ok", BIG_ID, "big")
    from bot.telegram.handlers.common import parse_telegram_id

    assert parse_telegram_id(str(BIG_ID)) == BIG_ID
    await world.person(BIG_ID, "big")
    stored = await world.repo.get_person(BIG_ID)
    assert stored is not None and stored.telegram_id == BIG_ID
    with pytest.raises(ValueError, match="out of range"):
        await world.repo.get_person(2**63)


async def test_a_crl_failure_is_kept_raw_and_worded_by_each_reader(world: World) -> None:
    """Published while a Russian speaker acted: the report keeps the exception's text, the
    admin alert speaks the admin's language and the CLI's English stays English."""
    from bot.core.errors import UserError
    from bot.telegram.handlers.admin import crl_error
    from bot.texts import errors as error_texts
    from bot.texts import speaking

    world.crl.mkdir()
    with speaking("ru"):
        report = await world.service.refresh_crl()
        refused = UserError(error_texts.CRL_NOT_WRITTEN, error="x")
    assert not report.written and report.error is not None
    assert report.error.isascii() and "CRL not written" not in report.error
    assert str(refused) == "CRL not written: x"  # str() is English whoever was reading
    with speaking("en"):
        assert crl_error(report) == f"CRL not written: {report.error}"
    with speaking("ru"):
        assert not crl_error(report).startswith("CRL not written")


async def test_the_sweep_waits_for_a_delivery_in_flight_and_a_revoked_one_is_not_marked(
    world: World,
) -> None:
    """A slow delivery (Telegram retries) is not revoked under it by the sweep; and one an
    admin revoked meanwhile is reported back, not marked delivered."""
    await world.person(2004, "dora")
    slow = await world.service.issue(2004, "phone")
    world.clock.advance(minutes=6)  # past the sweep's grace, still being sent
    assert await world.service.sweep_undelivered() == 0
    assert await world.service.confirm_delivery(slow.serial)
    assert not await world.service.confirm_delivery(slow.serial)  # once
    tablet = await world.service.issue(2004, "tablet")
    await world.service.revoke(ADMIN, "dora", "lost")  # while the tablet's was on its way
    assert not await world.service.confirm_delivery(tablet.serial)
    stored = await world.repo.get_certificate(tablet.serial)
    assert stored is not None and stored.delivered_at is None
    assert stored.status is CertStatus.REVOKED
