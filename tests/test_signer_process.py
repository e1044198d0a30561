"""The signing worker holds the CA key in memory: it must never outlive the bot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pki import CertificateAuthority
from tests.botproc import BotProcess
from tests.fake_telegram import FakeTelegram

pytestmark = pytest.mark.slow  # starts a bot process


def _signing_workers(parent: int) -> list[int]:
    """Children of ``parent`` that are multiprocessing spawn workers."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(proc.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_bot_leaves_no_signing_worker_behind(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    with FakeTelegram() as tg:
        bot = BotProcess(tg, tmp_path, ca=ca).start()
        assert bot.proc is not None
        workers = _signing_workers(bot.proc.pid)
        assert workers, "the bot started no signing worker"
        bot.kill()  # SIGKILL: no clean-up code runs in the bot
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _running(pid)], "orphaned signing worker"
