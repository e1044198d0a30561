"""CA rotation corner cases a review found: the issuer recorded for a certificate signed while
a rotation step ran, people with several devices, people without Telegram, a crash mid-finish,
and unreadable CA files during a CRL publish. Real files and the real service (no broker)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from telegram.ext import ApplicationBuilder, BaseRateLimiter, CallbackContext

from bot.config import Settings
from bot.core.authorities import FINISHING, AuthorityFiles, _write_marker, archive
from bot.core.errors import UserError
from bot.core.service import Service
from bot.core.signer import Signer, SignRequest
from bot.telegram.handlers import language
from bot.telegram.handlers.common import Runtime
from bot.telegram.handlers.rotation import rotation_check_job
from bot.telegram.limiter import Priority, _priority
from bot.wiring import load_ca, open_service
from pki.identity import fingerprint_sha256
from pki.keys import PrivateKey
from storage import Platform
from tests.fake_telegram import FakeTelegram

pytestmark = pytest.mark.timeout(120)
ADMIN, ALICE, BOB = 1, 2001, 2002


def _settings(monkeypatch: pytest.MonkeyPatch, data: Path) -> Settings:
    for name, value in {
        "DATA_DIR": str(data), "ADMIN_IDS": str(ADMIN), "KEY_POOL_SIZE": "0",
        "SIGNING_WORKERS": "0", "BROKER_RELOAD_COMMAND": "", "KEY_TYPE": "ec-p256",
        "ISSUE_COOLDOWN_SECONDS": "0", "MAX_ISSUES_PER_DAY": "50",
    }.items():
        monkeypatch.setenv(f"OTCERT_{name}", value)
    return Settings()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return _settings(monkeypatch, tmp_path / "data")


async def _person(service: Service, telegram_id: int, name: str, *devices: str) -> list[str]:
    await service.request_access(telegram_id, name.title(), name)
    await service.approve(ADMIN, telegram_id, name)
    await service.set_platform(telegram_id, Platform.ANDROID)
    serials = []
    for device in devices:
        bundle = await service.issue(telegram_id, device)
        await service.confirm_delivery(bundle.serial)
        serials.append(bundle.serial)
    return serials


class StepWhileSigning(Signer):
    """A real signer; a rotation step runs while the signature is being made."""

    step: Callable[[], Awaitable[object]] | None = None

    async def sign_and_pack(
        self, key: PrivateKey, request: SignRequest, passphrase: str
    ) -> tuple[x509.Certificate, bytes]:
        result = await super().sign_and_pack(key, request, passphrase)
        if self.step is not None:
            step, self.step = self.step, None
            await step()
        return result


async def test_a_certificate_signed_as_a_rotation_starts_is_recorded_under_its_signer(
    settings: Settings,
) -> None:
    async with open_service(settings, create_ca=True) as service:
        rotation = service.rotation
        assert rotation is not None
        await _person(service, ALICE, "alice")
        old = rotation.authorities.current
        signer = StepWhileSigning(service.signer.ca)
        service.signer = signer
        signer.step = lambda: rotation.start(key_type="ec-p384", days=400)
        bundle = await service.issue(ALICE, "phone")
        assert rotation.authorities.next is not None  # the start ran mid-signing
        record = await service.repo.get_certificate(bundle.serial)
        assert record is not None and record.issuer == old.fingerprint_sha256
        # Recorded under the old CA, so the person still has to move.
        assert [p.telegram_id for p in await rotation.not_moved()] == [ALICE]


async def test_every_device_on_the_old_ca_must_move_before_finish(settings: Settings) -> None:
    async with open_service(settings, create_ca=True) as service:
        rotation = service.rotation
        assert rotation is not None
        phone, tablet = await _person(service, ALICE, "alice", "phone", "tablet")
        await rotation.start(key_type="ec-p384", days=400)
        [(person, offered)] = await rotation.offers_due()
        assert (person.telegram_id, offered.serial) == (ALICE, phone)

        first = await rotation.move(ALICE)
        await service.confirm_delivery(first.serial)
        assert first.device == "phone"
        assert [p.telegram_id for p in await rotation.not_moved()] == [ALICE]  # the tablet
        status = await rotation.status()
        assert [p.telegram_id for p in status.not_moved] == [ALICE]
        with pytest.raises(UserError):
            await rotation.finish()  # would cut the tablet off

        second = await rotation.move(ALICE)  # the same button again: the next device
        await service.confirm_delivery(second.serial)
        assert second.device == "tablet"
        assert await rotation.not_moved() == []
        with pytest.raises(UserError):
            await rotation.move(ALICE)  # nothing left to move
        assert (await rotation.finish()).authorities.next is None
        active = await service.repo.certificates_for(ALICE, active_only=True)
        assert sorted(c.serial for c in active) == sorted([first.serial, second.serial])
        assert tablet not in {c.serial for c in active}


class PriorityLog(BaseRateLimiter[None]):
    """Lets every call through and notes the send priority it was made at."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Priority]] = []

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(self, callback, args, kwargs, endpoint, data,  # type: ignore[no-untyped-def, override]
                              rate_limit_args):
        self.seen.append((endpoint, _priority.get()))
        return await callback(*args, **kwargs)


async def test_offers_skip_people_without_telegram_and_go_at_extras_priority(
    settings: Settings, tg: FakeTelegram
) -> None:
    tg.user(ALICE, "Alice")
    async with open_service(settings, create_ca=True) as service:
        rotation = service.rotation
        assert rotation is not None
        await _person(service, ALICE, "alice", "phone")
        offline = await service.add_without_telegram(ADMIN, "recorder")
        bundle = await service.issue(offline.telegram_id, "recorder", platform=Platform.ANDROID)
        await service.confirm_delivery(bundle.serial)
        await rotation.start(key_type="ec-p384", days=400)
        assert {p.telegram_id for p in await rotation.not_moved()} == {
            ALICE, offline.telegram_id}  # still shown as waiting to the admins
        assert [p.telegram_id for p, _ in await rotation.offers_due()] == [ALICE]

        limiter = PriorityLog()
        app = (ApplicationBuilder().token(tg.token).base_url(tg.base_url)
               .base_file_url(tg.base_file_url).rate_limiter(limiter).build())
        app.bot_data["runtime"] = Runtime(service=service, mqtt_host=None, mqtt_port=8883,
                                          secret_ttl=60)
        language.install(app.bot_data, service, [])
        async with app:
            await rotation_check_job(CallbackContext(app))
        assert await rotation.offers_due() == []
        sends = {p for endpoint, p in limiter.seen if endpoint.startswith("send")}
        assert sends == {Priority.EXTRAS}, limiter.seen


async def _started(settings: Settings) -> tuple[str, str]:
    async with open_service(settings, create_ca=True) as service:
        assert service.rotation is not None
        old = service.rotation.authorities.current.fingerprint_sha256
        step = await service.rotation.start(key_type="ec-p384", days=400)
        assert step.authorities.next is not None
        return old, step.authorities.next.fingerprint_sha256


def test_load_ca_rolls_a_finish_cut_off_after_the_key_forward(settings: Settings) -> None:
    _, upcoming = asyncio.run(_started(settings))
    files = AuthorityFiles(settings.data_dir, settings.ca_passphrase())
    # finish_files up to the crash: archived, marked finishing, the key moved, not the cert.
    from bot.core.authorities import load_authorities

    cas = load_authorities(files)
    archive(files, cas.current, files.cert, files.key, "retired")
    _write_marker(files, FINISHING, retired=cas.current.fingerprint_sha256)
    os.replace(files.next_key, files.key)

    ca = load_ca(settings)  # what `otcert init` and `otcert run` do first
    assert ca.fingerprint_sha256 == upcoming
    assert not files.marker.exists() and not files.next_cert.exists()


async def test_unreadable_ca_files_fail_the_publish_with_the_raw_error(
    settings: Settings,
) -> None:
    await _started(settings)
    async with open_service(settings) as service:
        rotation = service.rotation
        assert rotation is not None
        known = rotation.authorities.fingerprints
        files = AuthorityFiles(settings.data_dir, settings.ca_passphrase())
        files.next_cert.write_bytes(b"not a certificate")  # changed: the publish re-reads
        report = await service.refresh_crl()
        assert not report.written and report.error
        assert rotation.authorities.fingerprints == known  # the last known CAs are kept
        assert service.crl.authorities.fingerprints == known
        assert fingerprint_sha256(rotation.authorities.issuer.certificate) == known[-1]


async def test_an_issue_adopts_a_rotation_started_from_the_shell_first(
    settings: Settings,
) -> None:
    async with open_service(settings, create_ca=True) as bot:
        await _person(bot, ALICE, "alice")
        _, upcoming = await _started(settings)  # `otcert ca rotate start`, another service
        bundle = await bot.issue(ALICE, "phone")  # no CRL publish or check job ran between
        record = await bot.repo.get_certificate(bundle.serial)
        assert record is not None and record.issuer == upcoming
        assert bot.signer.ca.fingerprint_sha256 == upcoming
