"""Which updates are claimed (written down once, so a redelivery after a crash is skipped):
everything that may change state; read-only commands are answered again instead, without
a write transaction each."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pki import CertificateAuthority
from tests.botproc import ADMIN_ID, BotProcess, wait_text
from tests.fake_telegram import FakeTelegram

pytestmark = pytest.mark.slow  # starts a bot process


def _claims(bot: BotProcess) -> int:
    with sqlite3.connect(f"file:{bot.data_dir / 'otcert.sqlite3'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM processed_updates").fetchone()[0])


def test_read_only_commands_skip_the_claim_and_state_changes_take_it(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    with FakeTelegram() as tg, BotProcess(tg, tmp_path, ca=ca) as bot:
        alice, admin = tg.user(4242, "Alice"), tg.user(ADMIN_ID, "Admin")
        before = _claims(bot)
        tg.send_text(alice, "/start")
        wait_text(tg, alice.id, "Send /request")
        tg.send_text(alice, "/help@otcert_test_bot")
        wait_text(tg, alice.id, "/getcert")
        tg.send_text(admin, "/pending")
        wait_text(tg, ADMIN_ID, "Nobody is waiting")
        assert _claims(bot) == before
        tg.send_text(alice, "/request")
        wait_text(tg, alice.id, "I've asked the admins")
        tg.send_text(alice, "/start now")
        wait_text(tg, alice.id, "waiting")
        assert _claims(bot) == before + 1
