"""Issue 14 point 7: the CA key stays out of the broker's reach.

- The real bot (`otcert run`) is non-dumpable: a process of the same uid without extra
  capabilities cannot read its /proc/<pid>/environ, while it can read an ordinary process's.
- deploy/compose.yaml shares no pid namespace and no uid with the broker; its CRL watcher and
  the bot's reload command (run here with sh, paths swapped for temp dirs) really HUP and
  acknowledge. Docker itself is not run here (no daemon on the test machine).
- deploy/otcert.service allows setpriority back after denying @resources.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from pki import CertificateAuthority
from tests import botproc
from tests.botproc import BotProcess
from tests.fake_telegram import FakeTelegram
from tests.waiting import wait_until

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
NO_CAPS = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]
needs_setpriv = pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")


def readable_environ(pid: int) -> bool:
    """As this uid with no capabilities at all: the position of a compromised broker."""
    done = subprocess.run([*NO_CAPS, "cat", f"/proc/{pid}/environ"], capture_output=True,
                          timeout=10, check=False)
    return done.returncode == 0 and b"=" in done.stdout


def test_make_undumpable_sets_the_kernel_flag() -> None:
    code = ("from bot.hardening import is_dumpable, make_undumpable;"
            "assert is_dumpable() is True; assert make_undumpable(); "
            "assert is_dumpable() is False")
    env = {**os.environ, "PYTHONPATH": str(DEPLOY.parent)}
    subprocess.run([shutil.which("python3") or "python3", "-c", code], env=env, check=True,
                   timeout=30)


@pytest.mark.slow
@needs_setpriv
def test_the_running_bot_is_not_readable_by_a_process_of_its_own_user(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = subprocess.Popen([*NO_CAPS, "sleep", "60"])
    try:
        assert wait_until(lambda: readable_environ(plain.pid), 10), "control must be readable"
    finally:
        plain.kill()
        plain.wait()
    command = botproc.otcert_command()
    monkeypatch.setattr(botproc, "otcert_command", lambda: [*NO_CAPS, *command])
    with BotProcess(tg, tmp_path / "bot", ca=ca) as bot:
        assert bot.proc is not None
        assert not readable_environ(bot.proc.pid)
        status = Path(f"/proc/{bot.proc.pid}/status").read_text()
        assert "setpriv" not in status.splitlines()[0]  # the bot itself, not the wrapper


# --- deploy/compose.yaml -----------------------------------------------------------------
def compose() -> dict[str, dict[str, dict[str, object]]]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_shares_no_pid_namespace_and_no_uid_with_the_broker() -> None:
    services = compose()["services"]
    bot, broker = services["otcert"], services["mosquitto"]
    assert "pid" not in bot and "pid" not in broker
    assert bot["build"]["args"]["OTCERT_UID"] != "1883"  # type: ignore[index]
    env = bot["environment"]
    assert isinstance(env, dict) and "kill" not in env["OTCERT_BROKER_RELOAD_COMMAND"]
    assert "reload-ack:/reload-ack:ro" in bot["volumes"]  # type: ignore[operator]
    assert "crl:/crl:ro" in broker["volumes"]  # type: ignore[operator]


def _shell(text: str, tmp: Path) -> str:
    """Compose's ``$$`` is a literal ``$``; the container paths become temp dirs."""
    return (text.replace("$$", "$").replace("/reload-ack", str(tmp / "ack"))
            .replace("/crl/", str(tmp / "crl") + "/"))


@pytest.mark.slow  # the give-up case waits out the command's 8 s
def test_the_crl_watcher_reloads_and_the_reload_command_waits_for_it(tmp_path: Path) -> None:
    (tmp_path / "ack").mkdir()
    (tmp_path / "crl").mkdir()
    crl = tmp_path / "crl" / "crl.pem"
    crl.write_text("first")
    (tmp_path / "crl" / "ca-bundle.pem").write_text("bundle")  # the broker waits for both
    hups = tmp_path / "hups"
    fake_broker = f"sh -c 'trap \"echo hup >> {hups}\" HUP; while :; do sleep 0.1; done'"
    services = compose()["services"]
    watcher = _shell(str(services["mosquitto"]["command"][2]), tmp_path)  # type: ignore[index]
    watcher = watcher.replace("mosquitto -c /mosquitto/config/mosquitto.conf", fake_broker)
    reload = _shell(str(services["otcert"]["environment"]["OTCERT_BROKER_RELOAD_COMMAND"]),  # type: ignore[index]
                    tmp_path)
    running = subprocess.Popen(["sh", "-c", watcher], start_new_session=True)
    try:
        assert wait_until(lambda: (tmp_path / "ack" / "crl.ack").exists(), 10)
        (tmp_path / "crl" / "new").write_text("second")
        os.rename(tmp_path / "crl" / "new", crl)  # as the bot writes it: a new inode
        done = subprocess.run(["sh", "-c", reload], timeout=15, check=False)
        assert done.returncode == 0
        # The trap runs when the broker's current sleep ends: wait for it, then count.
        assert wait_until(lambda: hups.exists() and "hup" in hups.read_text(), 5)
        assert hups.read_text().count("hup") == 1
        # Nothing new: the command gives up (a failed reload, told to the admins).
        (tmp_path / "ack" / "crl.ack").write_text("0\n")
        assert subprocess.run(["sh", "-c", reload], timeout=15, check=False).returncode == 1
    finally:
        os.killpg(running.pid, signal.SIGTERM)
        running.wait(10)


def test_the_systemd_unit_allows_setpriority_after_denying_resources() -> None:
    lines = [line.strip() for line in (DEPLOY / "otcert.service").read_text().splitlines()]
    filters = [line.split("=", 1)[1] for line in lines if line.startswith("SystemCallFilter=")]
    assert filters[0].startswith("@system-service")  # allow-list: later lines add or remove
    deny = next(i for i, f in enumerate(filters) if f.startswith("~") and "@resources" in f)
    assert any("setpriority" in f.split() for f in filters[deny + 1:] if not f.startswith("~"))
