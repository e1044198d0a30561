"""CRL writes ordered across processes (issue 14, point 2): the bot and two `otcert revoke`
processes revoke at the same time, next to two low-priority `otcert crl write` runs (cron),
and the CRL on disk still lists every revocation after each round.

Why real processes: the asyncio lock already orders one process; only separate processes
show whether an older snapshot can be renamed over a newer one. 20,000 earlier revocations
make each CRL build take long enough for the writers to overlap.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from bot.core.clock import utcnow
from pki import CertificateAuthority
from storage import Certificate, CertStatus, Database, Repository
from tests.botproc import ADMIN_ID, BotProcess
from tests.fake_telegram import FakeTelegram
from tests.test_cli import base_env, otcert_command
from tests.waiting import wait_until

pytestmark = pytest.mark.slow  # starts a bot process and otcert processes

ROUNDS = 8
FILLER = 20_000


async def _seed(db_path: Path, people: int) -> None:
    """``people`` approved people (user0, user1, ...) with one active certificate each, and a
    filler person with FILLER revoked certificates."""
    db = await Database.open(db_path)
    repo = Repository(db)
    now = utcnow()
    try:
        for index in range(people + 1):
            telegram_id = 5000 + index
            await repo.request_access(telegram_id, f"User {index}", None)
            await repo.approve(telegram_id, f"user{index}", by=ADMIN_ID)
            await repo.record_issue(Certificate(
                serial=secrets.token_hex(16), telegram_id=telegram_id,
                mqtt_username=f"user{index}", device="phone",
                fingerprint_sha256=secrets.token_hex(32), not_before=now,
                not_after=now + timedelta(days=30), issued_at=now, status=CertStatus.ACTIVE,
                delivered_at=now,
            ), actor=ADMIN_ID)
    finally:
        await db.close()
    conn = sqlite3.connect(db_path)
    with conn:
        at, until = now.isoformat(timespec="microseconds"), (now + timedelta(days=30)).isoformat(
            timespec="microseconds")
        conn.executemany(
            """INSERT INTO certificates (serial, telegram_id, mqtt_username, device,
                   fingerprint_sha256, not_before, not_after, issued_at, status, revoked_at,
                   revocation_reason, delivered_at)
               VALUES (?, ?, ?, 'old', ?, ?, ?, ?, 'revoked', ?, 'old', ?)""",
            [(secrets.token_hex(16), 5000 + people, f"user{people}", "0" * 64, at, until, at,
              at, at) for _ in range(FILLER)],
        )
    conn.close()


def _revoked_in_db(db_path: Path) -> set[int]:
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT serial FROM certificates WHERE status = 'revoked'").fetchall()
    finally:
        conn.close()
    return {int(serial, 16) for (serial,) in rows}


def _listed_in_crl(path: Path) -> set[int]:
    crl = x509.load_pem_x509_crl(path.read_bytes())
    return {entry.serial_number for entry in crl}


def test_crl_on_disk_lists_every_revocation_when_cli_and_bot_revoke_at_once(
    tg: FakeTelegram, tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    bot = BotProcess(tg, tmp_path / "bot", ca=other_ca)
    asyncio.run(_seed(bot.data_dir / "otcert.sqlite3", 3 * ROUNDS))
    env = base_env(bot.data_dir, OTCERT_BOT_TOKEN=tg.token)
    crl_path = bot.data_dir / "crl.pem"
    admin = tg.user(ADMIN_ID, "Admin")
    with bot:
        for round_ in range(ROUNDS):
            first, second, third = (f"user{3 * round_ + k}" for k in range(3))
            # A cron'd `otcert crl write` at low priority: a slow writer with its own snapshot.
            commands = [["nice", "-n", "19", *otcert_command(), "crl", "write"],
                        [*otcert_command(), "revoke", first],
                        ["nice", "-n", "10", *otcert_command(), "crl", "write"],
                        [*otcert_command(), "revoke", second]]
            cli = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
                   for command in commands]
            done_before = _revoke_replies(tg)
            tg.send_text(admin, f"/revoke {third} gone")
            for proc in cli:
                _, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
            tg.wait_for(_replied_after(tg, done_before), 60, chat_id=ADMIN_ID)
            missing = _revoked_in_db(bot.data_dir / "otcert.sqlite3") - _listed_in_crl(crl_path)
            assert not missing, f"round {round_}: {len(missing)} revoked serial(s) not in the CRL"
    assert "Traceback" not in bot.log_text


def _replied_after(tg: FakeTelegram, before: int) -> Callable[[object], bool]:
    return lambda _message: _revoke_replies(tg) > before


def _revoke_replies(tg: FakeTelegram) -> int:
    return sum("certificate(s)" in (m.text or "") for m in tg.sent_messages(ADMIN_ID))


def test_a_revocation_waits_for_another_writer_and_numbers_past_its_crl(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    """Another process holds crl.lock and writes a CRL (without the new revocation, numbered
    far ahead) while `otcert revoke` runs: the revoke waits, then writes a CRL listing its
    serial with a higher number, instead of racing it."""
    import fcntl
    import os

    from pki.crl import build_crl, write_crl

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other_ca.save(data / "ca.crt", data / "ca.key")
    db_path = data / "otcert.sqlite3"
    asyncio.run(_seed(db_path, 1))
    crl_path = data / "crl.pem"
    fd = os.open(data / "crl.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = subprocess.Popen([*otcert_command(), "revoke", "user0"], env=base_env(data),
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert wait_until(lambda: _status(db_path, "user0") == "revoked", timeout=60)
        stale = build_crl(other_ca, [], crl_number=1_000_000)  # the other writer's snapshot
        write_crl(crl_path, stale, other_ca.certificate)
    finally:
        os.close(fd)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert _revoked_in_db(db_path) <= {entry.serial_number for entry in crl}
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > 1_000_000


def _status(db_path: Path, username: str) -> str | None:
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute("SELECT status FROM people WHERE mqtt_username = ?",
                           (username,)).fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])
