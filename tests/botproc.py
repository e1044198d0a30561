"""Run the real bot (`otcert run`) in a subprocess against the fake Bot API.

Why a subprocess: it exercises the console script, settings from the environment, signal
handling and restarts exactly as an operator runs the bot.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from pki import CertificateAuthority
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage

ADMIN_ID = 1000
READY_LINE = "Application started"


def otcert_command() -> list[str]:
    script = shutil.which("otcert")
    return [script] if script else [sys.executable, "-m", "bot.ops.cli"]


class BotProcess:
    def __init__(
        self,
        tg: FakeTelegram,
        workdir: Path,
        *,
        ca: CertificateAuthority | None = None,
        admins: tuple[int, ...] = (ADMIN_ID,),
        env: dict[str, str] | None = None,
    ) -> None:
        self.tg = tg
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "bot.log"
        self.admins = admins
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        workdir.mkdir(parents=True, exist_ok=True)
        if ca is not None and not (self.data_dir / "ca.crt").exists():
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            ca.save(self.data_dir / "ca.crt", self.data_dir / "ca.key")

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTCERT_")}
        env.update(
            OTCERT_BOT_TOKEN=self.tg.token,
            OTCERT_ADMIN_IDS=",".join(str(a) for a in self.admins),
            OTCERT_DATA_DIR=str(self.data_dir),
            OTCERT_TELEGRAM_API_URL=self.tg.base_url,
            OTCERT_TELEGRAM_FILE_URL=self.tg.base_file_url,
            OTCERT_ISSUE_COOLDOWN_SECONDS="0",
            OTCERT_LOG_LEVEL="DEBUG",
            OTCERT_MQTT_HOST="mqtt.example.org",
            OTCERT_KEY_POOL_SIZE="2",  # 64 keys per start would cost the suite minutes of CPU
        )
        env.update(self.extra_env)
        return env

    def start(self, *, wait: bool = True) -> BotProcess:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*otcert_command(), "run"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait and not self._wait_for_log(READY_LINE, timeout=30):
            code = self.stop()
            raise AssertionError(f"the bot did not start (exit {code}):\n{self.log_text[-3000:]}")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the bot; returns its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def _wait_for_log(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text[self._log_offset:]:
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a crash."""
        self.stop(signal.SIGKILL)

    @property
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> BotProcess:
        return self if self.proc is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---- conversation helpers -------------------------------------------------------------

PASSPHRASE_RE = re.compile(r"[a-z2-9]{4}(?:-[a-z2-9]{4}){3,}")


def texts_to(tg: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text or m.caption or "" for m in tg.sent_messages(chat_id)]


def wait_text(tg: FakeTelegram, chat_id: int, needle: str, timeout: float = 15.0) -> SentMessage:
    return tg.wait_for(
        lambda m: needle in (m.text or m.caption or "") or any(needle in e for e in m.edits),
        timeout,
        chat_id=chat_id,
    )


def approve(tg: FakeTelegram, person: FakeUser, username: str) -> None:
    """An admin approves ``person`` by command (no /request needed); waits for the news."""
    def told() -> int:
        return sum("approved" in (m.text or "") for m in tg.sent_messages(person.id))

    before = told()
    tg.send_text(tg.user(ADMIN_ID, "Admin"), f"/approve {person.id} {username}")
    tg.wait_for(lambda m: told() > before, 20)


def get_certificate(
    tg: FakeTelegram, person: FakeUser, platform: str = "ios", device: str = ""
) -> tuple[SentMessage, str]:
    """Run /getcert (answering the phone question) to the end of the delivery; return
    (file message, passphrase)."""
    sent = tg.sent_messages(person.id)
    last = sent[-1].message_id if sent else 0
    tg.send_text(person, f"/getcert {device}".strip())
    first = tg.wait_for(
        lambda m: m.message_id > last
        and (m.filename is not None or "Which phone" in m.text),
        chat_id=person.id,
        timeout=20,
    )
    if first.filename is None:
        tg.press_button(person, first.message_id, f"plat:{platform}:{device or 'phone'}")
    file_msg = tg.wait_for(
        lambda m: m.message_id > last
        and m.filename is not None
        and m.filename.endswith((".otrp", ".p12")),
        chat_id=person.id,
        timeout=20,
    )
    secret = tg.wait_for(
        lambda m: m.message_id > file_msg.message_id and "Passphrase for" in m.text,
        chat_id=person.id,
    )
    match = PASSPHRASE_RE.search(secret.text or "")
    assert match, secret.text
    # The delivery ends with the phone's steps; only then may the person ask again.
    tg.wait_for(lambda m: m.message_id > secret.message_id and " steps</b>" in m.text,
                chat_id=person.id)
    return file_msg, match.group()


