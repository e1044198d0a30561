"""Issue 8 through the bot: `/revoke` ends the person's live MQTT session (dynsec kick) on a
real Mosquitto, leaves everyone else connected, and still stands when the kick is off or fails."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import CertificateAuthority, verify_crl
from tests.botproc import ADMIN_ID, BotProcess, approve, get_certificate, wait_text
from tests.dynsec import Phone, dynsec_config, needs_dynsec
from tests.fake_telegram import FakeTelegram, FakeUser
from tests.mosquitto import Broker, ClientFiles, _free_port, write_client_files
from tests.waiting import wait_until

pytestmark = [needs_dynsec, pytest.mark.slow]  # starts a bot process


def phone_files(
    tg: FakeTelegram, person: FakeUser, username: str, ca: CertificateAuthority, tmp_path: Path
) -> ClientFiles:
    """Approve ``person``, fetch a certificate through the bot, unpack it like a phone."""
    approve(tg, person, username)
    file_msg, passphrase = get_certificate(tg, person, "android")
    assert file_msg.document is not None
    key, cert, _ = pkcs12.load_key_and_certificates(file_msg.document, passphrase.encode())
    assert key is not None and cert is not None
    return write_client_files(tmp_path / username, cert, key, ca.certificate)  # type: ignore[arg-type]


def start_bot(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority, broker: Broker, **env: str
) -> BotProcess:
    tg.user(ADMIN_ID, "Admin")
    settings = {
        "OTCERT_CRL_PATH": str(broker.crl_path),
        "OTCERT_BROKER_RELOAD_COMMAND": f"kill -HUP {broker.pid}",
        "OTCERT_BROKER_ADMIN_HOST": "localhost",
        "OTCERT_BROKER_ADMIN_PORT": str(broker.port),
        **env,
    }
    return BotProcess(tg, tmp_path / "bot", ca=ca, env=settings).start()


def revoke(tg: FakeTelegram, target: str) -> str:
    admin = tg.user(ADMIN_ID, "Admin")
    tg.send_text(admin, f"/revoke {target} test")
    return wait_text(tg, ADMIN_ID, "Revoked", timeout=30).text


def test_revoke_kicks_only_that_person_and_keeps_them_out(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority,
    broker_factory: Callable[..., Broker], phones: Callable[[Broker, ClientFiles], Phone],
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path))
    with start_bot(tg, tmp_path, ca, broker, OTCERT_BROKER_KICK="dynsec"):
        bob_files = phone_files(tg, tg.user(2101, "Bob", "bob"), "bob", ca, tmp_path)
        alice_files = phone_files(tg, tg.user(2102, "Alice", "alice"), "alice", ca, tmp_path)
        bob = phones(broker, bob_files)
        alice = phones(broker, alice_files)
        bob.publish("owntracks/bob/phone")

        started = time.monotonic()
        reply = revoke(tg, "bob")
        assert "Live MQTT sessions ended" in reply, reply
        assert bob.disconnected.wait(10), "bob's live session was not ended"
        kicked_after = time.monotonic() - started
        # bob's client retries every 0.1-0.2 s: each retry must be refused, none may get in.
        assert wait_until(lambda: bob.connect_failures >= 2, 15), (
            "bob never retried, so nothing was proven")
        assert bob.connects == 1 and bob.disconnects == ["Administrative action"]
        assert alice.disconnects == [] and alice.connects == 1
        alice.publish("owntracks/alice/phone")
    print(f"bob kicked {kicked_after:.2f} s after /revoke was sent")


def test_revocation_stands_when_the_kick_is_off_or_fails(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority,
    broker_factory: Callable[..., Broker], phones: Callable[[Broker, ClientFiles], Phone],
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path))
    unreachable = {"OTCERT_BROKER_KICK": "dynsec", "OTCERT_BROKER_ADMIN_PORT": str(_free_port())}
    with start_bot(tg, tmp_path, ca, broker, **unreachable) as bot:
        carol_files = phone_files(tg, tg.user(2103, "Carol", "carol"), "carol", ca, tmp_path)
        dave_files = phone_files(tg, tg.user(2104, "Dave", "dave"), "dave", ca, tmp_path)
        carol = phones(broker, carol_files)

        reply = revoke(tg, "carol")
        assert "Could not end live sessions" in reply, reply
        assert "CRL rewritten" in reply
        assert not carol.disconnected.wait(1), "nothing should have ended carol's session"
        bot.stop()

        bot.extra_env["OTCERT_BROKER_KICK"] = "off"
        bot.start()
        dave = phones(broker, dave_files)
        reply = revoke(tg, "dave")
        assert "may stay connected" in reply, reply
        assert not dave.disconnected.wait(1)

    db = sqlite3.connect(bot.data_dir / "otcert.sqlite3")
    rows = dict(db.execute("SELECT mqtt_username, status FROM people").fetchall())
    revoked_serials = {
        int(s, 16) for (s,) in db.execute("SELECT serial FROM certificates WHERE status='revoked'")
    }
    db.close()
    assert rows == {"carol": "revoked", "dave": "revoked"}
    crl = verify_crl(broker.crl_path.read_bytes(), ca.certificate)
    assert {r.serial_number for r in crl} == revoked_serials and len(revoked_serials) == 2
