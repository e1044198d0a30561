"""End to end: the real `otcert run` over HTTP against the fake Bot API, real openssl and a
real Mosquitto reading the bot's CRL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import CertificateAuthority
from tests.botproc import ADMIN_ID, BotProcess, approve, get_certificate, wait_text
from tests.fake_telegram import FakeTelegram
from tests.mosquitto import Broker, connect_ok, write_client_files
from tests.openssl import pkcs12_info

pytestmark = pytest.mark.slow  # starts a bot process


def test_full_flow_request_approve_getcert_revoke(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority, broker_factory: object
) -> None:
    crl = tmp_path / "shared" / "crl.pem"
    crl.parent.mkdir()
    alice = tg.user(2001, "Alice", username="Alice_M")
    admin = tg.user(ADMIN_ID, "Admin")
    bot = BotProcess(tg, tmp_path / "bot", ca=ca, env={"OTCERT_CRL_PATH": str(crl)})
    with bot:
        assert crl.exists(), "the CRL is written at start"
        broker: Broker = broker_factory(ca, crl_path=crl)  # type: ignore[operator]
        bot.stop()
        bot.extra_env["OTCERT_BROKER_RELOAD_COMMAND"] = f"kill -HUP {broker.pid}"
        bot.start()

        tg.send_text(alice, "/start")
        wait_text(tg, alice.id, "not asked for access")

        tg.send_text(alice, "/request")
        wait_text(tg, alice.id, "asked the admins")
        note = wait_text(tg, ADMIN_ID, "New access request")
        assert "2001" in (note.text or "") and "@Alice_M" in (note.text or "")
        tg.send_text(alice, "/request")
        wait_text(tg, alice.id, "already with the admins")
        assert len([m for m in tg.sent_messages(ADMIN_ID) if "New access" in (m.text or "")]) == 1

        tg.press_button(admin, note.message_id, "req:approve:2001")
        offer = wait_text(tg, ADMIN_ID, "as <code>alice_m</code>?")
        assert offer.message_id == note.message_id
        tg.press_button(admin, note.message_id, "req:ok:2001:alice_m")
        wait_text(tg, alice.id, "Your MQTT username is <code>alice_m</code>")

        file_msg, passphrase = get_certificate(tg, alice, "ios")
        assert file_msg.filename == "alice_m-phone.otrp"
        assert passphrase not in (file_msg.caption or "")
        assert file_msg.document is not None
        key, cert, _chain = pkcs12.load_key_and_certificates(file_msg.document, passphrase.encode())
        assert cert is not None and key is not None
        assert cert.subject.rfc4514_string() == "CN=alice_m"
        p12 = tmp_path / "alice.otrp"
        p12.write_bytes(file_msg.document)
        info = pkcs12_info(p12, passphrase)
        assert "MAC: sha1" in info.stderr + info.stdout
        wait_text(tg, alice.id, "iPhone steps")
        names = {m.filename for m in tg.sent_messages(alice.id) if m.filename}
        assert {"ca.crt", "ca.otre"} <= names

        files = write_client_files(tmp_path / "alice", cert, key, ca.certificate)
        assert connect_ok(broker, files)

        offset = broker.log_offset()
        tg.send_text(admin, "/revoke alice_m lost phone")
        reply = wait_text(tg, ADMIN_ID, "Revoked")
        # SIGHUP is asynchronous: wait until the broker has re-read its files.
        assert broker.wait_for_log("Reloading config", after=offset)
        assert "1 certificate" in (reply.text or "")
        assert "may stay connected" in (reply.text or "")
        wait_text(tg, alice.id, "revoked")
        assert not connect_ok(broker, files), "a revoked certificate must be refused"

        tg.send_text(alice, "/getcert")
        wait_text(tg, alice.id, "revoked")
    db = sqlite3.connect(bot.data_dir / "otcert.sqlite3")
    assert b"PRIVATE KEY" not in (bot.data_dir / "otcert.sqlite3").read_bytes()
    db.close()
    assert tg.token not in bot.log_text
    assert passphrase not in bot.log_text


def test_android_gets_p12_and_secrets_are_deleted(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    bob = tg.user(2002, "Bob", username="bob")
    bot = BotProcess(tg, tmp_path / "bot", ca=ca, env={"OTCERT_SECRET_TTL_SECONDS": "10"})
    with bot:
        approve(tg, bob, "bob")
        file_msg, _passphrase = get_certificate(tg, bob, "android", "tablet")
        assert file_msg.filename == "bob-tablet.p12"
        secret = wait_text(tg, bob.id, "Passphrase for")
        wait_text(tg, bob.id, "Android steps")
        # The secret messages disappear after the TTL, even across a restart.
        bot.stop()
        bot.start()
        tg.wait_for(lambda m: m.deleted and m.message_id == secret.message_id, 30, chat_id=bob.id)
        assert (bob.id, file_msg.message_id) in tg.deleted
        assert (bob.id, secret.message_id) in tg.deleted


def test_non_admins_and_forged_buttons_change_nothing(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    mallory = tg.user(3001, "Mallory", username="mallory")
    tg.user(ADMIN_ID, "Admin")
    bot = BotProcess(tg, tmp_path / "bot", ca=ca)
    with bot:
        tg.send_text(mallory, "/request")
        note = wait_text(tg, ADMIN_ID, "New access request")
        for command in ("/approve 3001 mallory", "/deny 3001", "/revoke 3001", "/repin",
                        "/pending", "/users"):
            tg.send_text(mallory, command)
        tg.wait_for(lambda m: len([x for x in tg.sent_messages(mallory.id)
                                   if "only admins" in (x.text or "")]) >= 6, 20)
        tg.press_button(mallory, note.message_id, "req:ok:3001:mallory")
        tg.press_button(mallory, note.message_id, "req:approve:3001")
        tg.wait_for_call("answerCallbackQuery", lambda c: "only admins" in str(c.params))
        tg.send_text(mallory, "/getcert")
        wait_text(tg, mallory.id, "still waiting")
        assert not any(m.filename for m in tg.sent_messages(mallory.id))
    db = sqlite3.connect(bot.data_dir / "otcert.sqlite3")
    status = db.execute("SELECT status FROM people WHERE telegram_id = 3001").fetchone()
    db.close()
    assert status == ("pending",)


def test_bad_arguments_get_helpful_replies(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    admin = tg.user(ADMIN_ID, "Admin")
    carol = tg.user(2003, "Carol")
    with BotProcess(tg, tmp_path / "bot", ca=ca):
        cases = {
            "/approve": "Usage",
            "/approve 2003": "Usage",
            "/approve abc carol": "not a Telegram user id",
            "/approve 2003 a/b": "not allowed",
            "/approve 2003 otcert-admin": "reserved",
            "/approve 2003 " + "x" * 300: "too long",
            "/deny": "Usage",
            "/deny 999999": "",
            "/revoke": "Usage",
            "/revoke nobody": "Nobody",
            "/frobnicate": "don't know that command",
        }
        for command, needle in cases.items():
            before = len(tg.sent_messages(ADMIN_ID))
            tg.send_text(admin, command)
            reply = tg.wait_for(lambda m, b=before: len(tg.sent_messages(ADMIN_ID)) > b, 15)
            del reply
            last = tg.sent_messages(ADMIN_ID)[-1]
            assert needle in (last.text or ""), (command, last.text)
        tg.send_text(carol, "/getcert ../etc", chat_type="private")
        wait_text(tg, carol.id, "is not allowed")
        tg.send_text(carol, "/getcert")
        wait_text(tg, carol.id, "don't have access")
        tg.send_text(carol, "/getcert", chat_type="group")
        tg.wait_for(lambda m: "private chat" in (m.text or ""), 15)
