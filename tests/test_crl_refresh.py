"""An expired CRL makes Mosquitto refuse every client: the bot must rewrite it at start and on
a schedule, and tell the admins (not just a log file) when it cannot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from bot.config import Settings
from pki import CertificateAuthority
from pki.crl import build_crl, crl_pem, verify_crl
from tests.botproc import ADMIN_ID, BotProcess, wait_text
from tests.delivery_checks import (
    count_texts,
)
from tests.fake_telegram import FakeTelegram
from tests.waiting import wait_until

pytestmark = pytest.mark.slow  # starts a bot process

DAY = timedelta(days=1)


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def load_crl(path: Path, ca: CertificateAuthority) -> x509.CertificateRevocationList:
    return verify_crl(path.read_bytes(), ca.certificate)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_nearly_expired_crl_is_replaced_at_start(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    bot = BotProcess(tg, tmp_path / "bot", ca=ca)
    crl_path = bot.data_dir / "crl.pem"
    now = datetime.now(UTC)
    # Written 29 days and 23 hours ago with the default 30 days: one hour left.
    stale = build_crl(ca, [], crl_number=7, now=now - 30 * DAY + timedelta(hours=1))
    crl_path.write_bytes(crl_pem(stale))
    assert stale.next_update_utc is not None and stale.next_update_utc - now < timedelta(hours=2)
    with bot:
        fresh = load_crl(crl_path, ca)
        assert fresh.next_update_utc is not None
        assert fresh.next_update_utc - datetime.now(UTC) > 29 * DAY
        assert fresh.last_update_utc > now - timedelta(hours=1)
        assert crl_pem(fresh) != crl_pem(stale)


def test_scheduled_refresh_runs_and_failures_reach_the_admins(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    admin = tg.user(ADMIN_ID, "Admin")
    del admin
    crl_dir = tmp_path / "shared"
    crl_dir.mkdir()
    crl_path = crl_dir / "crl.pem"
    bot = BotProcess(tg, tmp_path / "bot", ca=ca, env={
        "OTCERT_CRL_PATH": str(crl_path), "OTCERT_CRL_REFRESH_SECONDS": "5",
    })
    with bot:
        first = crl_number(load_crl(crl_path, ca))
        # Nobody revokes anything: only the schedule can bump the CRL number.
        assert wait_until(lambda: crl_number(load_crl(crl_path, ca)) > first, 20), (
            "the CRL was not rewritten on schedule")
        assert count_texts(tg, ADMIN_ID, "CRL refresh failed") == 0

        # The CRL's folder turns into a file: every write fails from now on.
        shutil.rmtree(crl_dir)
        crl_dir.write_text("not a directory")
        alert = wait_text(tg, ADMIN_ID, "scheduled CRL refresh failed", timeout=20)
        assert str(crl_path) in alert.text and "nextUpdate" in alert.text

        # Restarting with the CRL still unwritable: the bot runs, and says so at start.
        bot.stop()
        bot.start()
        wait_text(tg, ADMIN_ID, "start-up CRL refresh failed", timeout=20)

        # Fixed by the operator: the next scheduled run writes a valid CRL again.
        crl_dir.unlink()
        crl_dir.mkdir()
        assert wait_until(crl_path.exists, 20)
        assert load_crl(crl_path, ca).next_update_utc is not None


@pytest.mark.parametrize(("refresh", "days"), [(4, 30), (16 * 86400, 30), (86401, 2)])
def test_refresh_interval_bounds(refresh: int, days: int) -> None:
    with pytest.raises(ValueError, match=r"(?i)crl_refresh"):
        Settings(crl_refresh_seconds=refresh, crl_days=days)


def test_refresh_interval_default_is_well_inside_the_crl_validity() -> None:
    settings = Settings()
    assert settings.crl_refresh_seconds * 4 <= settings.crl_days * 86400
    assert Settings(crl_refresh_seconds=5).crl_refresh_seconds == 5
