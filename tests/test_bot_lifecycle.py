"""Issue 13 end to end: the real `otcert run` over HTTP with the fake Bot API and a real
Mosquitto. Short lifetimes come from the settings (OTCERT_CERT_DAYS=1 with reminders at 2 and
1 days: every certificate is due at once, and always inside the renewal window)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import CertificateAuthority
from tests.botproc import ADMIN_ID, BotProcess, approve, get_certificate, wait_text
from tests.delivery_checks import certificates, db_rows, text_of
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.mosquitto import Broker, ClientFiles, connect_ok, connect_refused, write_client_files
from tests.waiting import wait_until

pytestmark = pytest.mark.slow  # starts a bot process (and Mosquitto)

SHORT = {"OTCERT_CERT_DAYS": "1", "OTCERT_RENEW_REMINDER_DAYS": "2,1"}
REMINDER = "Tap Renew"
UNRENEWED = "has not been renewed"


def reminders(tg: FakeTelegram, chat_id: int) -> list[SentMessage]:
    return [m for m in tg.sent_messages(chat_id) if REMINDER in text_of(m)]


def job_runs(bot: BotProcess) -> int:
    return bot.log_text.count("lifecycle check:")


def wait_job_runs(bot: BotProcess, more: int) -> None:
    """Let the job run ``more`` further times (it logs each run)."""
    target = job_runs(bot) + more
    assert wait_until(lambda: job_runs(bot) >= target, 30), bot.log_text[-2000:]


def unpack(message: SentMessage, passphrase: str, ca: CertificateAuthority,
           where: Path) -> tuple[str, ClientFiles]:
    assert message.document is not None
    key, cert, _ = pkcs12.load_key_and_certificates(message.document, passphrase.encode())
    assert key is not None and cert is not None
    files = write_client_files(where, cert, key, ca.certificate)  # type: ignore[arg-type]
    return format(cert.serial_number, "x"), files


def test_reminded_once_per_threshold_across_restart_sigkill_and_blocked_people(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    tg.user(ADMIN_ID, "Admin")
    alice, bob, carol = (tg.user(2201, "Alice", "alice"), tg.user(2202, "Bob", "bob"),
                         tg.user(2203, "Carol", "carol"))
    bot = BotProcess(tg, tmp_path / "bot", ca=ca,
                     env={**SHORT, "OTCERT_LIFECYCLE_CHECK_SECONDS": "3600"})
    with bot:  # the job runs once at start, before anyone has a certificate
        assert wait_until(lambda: job_runs(bot) >= 1, 30)
        for person in (alice, bob, carol):
            approve(tg, person, person.first_name.lower())
            get_certificate(tg, person, "android")
        assert not any(reminders(tg, p.id) for p in (alice, bob, carol))

    # Bob blocked the bot; the reminder to carol hangs, and the bot is killed right then.
    tg.block(bob.id)
    tg.inject_fault("sendMessage", "timeout", chat_id=carol.id)
    bot.extra_env["OTCERT_LIFECYCLE_CHECK_SECONDS"] = "1"
    bot.start()
    tg.wait_for_call("sendMessage", lambda c: c.fault == "timeout", timeout=30)
    bot.kill()
    # Certificates issued within one second share not_after; the job then goes by serial, so
    # alice's reminder may come before or after carol's hanging one.
    assert len(reminders(tg, alice.id)) <= 1 and not reminders(tg, carol.id)

    bot.start()
    wait_text(tg, carol.id, REMINDER, timeout=30)
    wait_job_runs(bot, 3)
    bot.stop()
    bot.start()  # and a clean restart
    wait_job_runs(bot, 3)
    bot.stop()

    # One message per certificate, carrying both thresholds (2 and 1 days were due at once).
    for person in (alice, carol):
        [message] = reminders(tg, person.id)
        assert "expires on" in message.text and "days left" in message.text
        assert [label for label, _ in message.buttons] == ["🔄 Renew phone"]
    assert not reminders(tg, bob.id)  # blocked: skipped, and the job went on to carol
    marks = db_rows(bot.data_dir / "otcert.sqlite3",
                    "SELECT audience, days, outcome FROM reminders ORDER BY audience, days")
    assert marks.count(("owner", 1, "sent")) == 2 and marks.count(("owner", 2, "sent")) == 2
    assert marks.count(("owner", 1, "undeliverable")) == 1
    # The admins heard once per certificate that reached the last threshold unrenewed.
    notices = [m for m in tg.sent_messages(ADMIN_ID) if UNRENEWED in text_of(m)]
    assert len(notices) == 3, [m.summary() for m in notices]


def test_renew_revoke_and_forged_buttons_at_mosquitto(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority,
    broker_factory: Callable[..., Broker],
) -> None:
    broker = broker_factory(ca, server_days=10)  # the infra watch sees it through TLS
    admin = tg.user(ADMIN_ID, "Admin")
    alice, mallory = tg.user(2301, "Alice", "alice"), tg.user(2302, "Mallory", "mallory")
    env = {**SHORT, "OTCERT_CRL_PATH": str(broker.crl_path),
           "OTCERT_BROKER_RELOAD_COMMAND": f"kill -HUP {broker.pid}",
           "OTCERT_LIFECYCLE_CHECK_SECONDS": "3600",
           "OTCERT_MQTT_HOST": broker.host, "OTCERT_MQTT_PORT": str(broker.port)}
    with BotProcess(tg, tmp_path / "bot", ca=ca, env=env) as bot:
        db = bot.data_dir / "otcert.sqlite3"
        # The broker's server certificate has 10 days left: 60 and 30 are due, one message.
        infra = wait_text(tg, ADMIN_ID, "broker's server certificate", timeout=30)
        assert "10 days left" in infra.text and "otcert server-cert" in infra.text
        approve(tg, alice, "alice")
        approve(tg, mallory, "mallory")
        old_serial, old_phone = unpack(*get_certificate(tg, alice, "ios"), ca, tmp_path / "p0")
        tablet_serial, tablet = unpack(*get_certificate(tg, alice, "ios", "tablet"), ca,
                                       tmp_path / "t0")
        get_certificate(tg, mallory, "android")

        # Forged buttons from mallory naming alice's certificates change nothing.
        before = certificates(db)
        for data in (f"rnw:{old_serial}", f"rvk:{tablet_serial}", f"rvky:{tablet_serial}"):
            tg.press_button(mallory, 1, data)
        tg.wait_for(lambda m: "not one of yours" in text_of(m), 20, chat_id=mallory.id)
        assert wait_until(lambda: sum("not one of yours" in str(a) for a in tg.callback_answers)
                          >= 2, 20)
        assert certificates(db) == before
        assert not [m for m in tg.sent_messages(alice.id) if "Revoke the certificate" in m.text]

        # /mycerts -> Renew phone: a new file and passphrase; old and new both connect.
        tg.send_text(alice, "/mycerts")
        listing = wait_text(tg, alice.id, "Your certificates")
        labels = dict(listing.buttons)
        assert set(labels) == {"🔄 Renew phone", "🗑 Revoke phone", "🔄 Renew tablet",
                               "🗑 Revoke tablet"}
        tg.press_button(alice, listing.message_id, str(labels["🔄 Renew phone"]))
        renewed = tg.wait_for(lambda m: m.filename == "alice-phone.otrp"
                              and m.message_id > listing.message_id, 30, chat_id=alice.id)
        secret = tg.wait_for(lambda m: m.message_id > renewed.message_id
                             and "Passphrase for <code>alice-phone.otrp</code>" in m.text,
                             20, chat_id=alice.id)
        passphrase = secret.text.split("<code>")[-1].split("</code>")[0]
        new_serial, new_phone = unpack(renewed, passphrase, ca, tmp_path / "p1")
        assert new_serial != old_serial
        assert connect_ok(broker, new_phone) and connect_ok(broker, old_phone)
        assert certificates(db)[old_serial][0] == "active"
        # The renewed one leaves /mycerts (one line per device).
        tg.send_text(alice, "/mycerts")
        again = tg.wait_for(lambda m: "Your certificates" in m.text
                            and m.message_id > secret.message_id, 20, chat_id=alice.id)
        assert again.text.count("alice") == 0 and again.text.count("phone</b>") == 1
        assert f"rnw:{new_serial}" in dict(again.buttons).values()

        # /mycerts -> Revoke tablet -> Yes: the tablet fails, the phone still connects.
        tg.press_button(alice, listing.message_id, str(labels["🗑 Revoke tablet"]))
        ask = wait_text(tg, alice.id, "Revoke the certificate for <b>tablet</b>")
        [(label, data)] = ask.buttons
        assert label == "Yes, revoke tablet"
        offset = broker.log_offset()
        tg.press_button(alice, ask.message_id, str(data))
        wait_text(tg, alice.id, "Revoked the certificate for <b>tablet</b>", timeout=30)
        assert broker.wait_for_log("Reloading config", after=offset)
        assert connect_refused(broker, tablet)
        assert connect_ok(broker, new_phone) and connect_ok(broker, old_phone)
        wait_text(tg, admin.id, "revoked their certificate for device <b>tablet</b>")
        assert len([m for m in tg.sent_messages(ADMIN_ID)
                    if "broker's server certificate" in text_of(m)]) == 1

        # Admins see what expires (alice's renewed phone marked), non-admins are refused.
        tg.send_text(admin, "/expiring")
        listing = wait_text(tg, ADMIN_ID, "Expiring within 2 days")
        assert "<code>alice</code> / phone – renewed" in listing.text
        assert "<code>mallory</code> / phone" in listing.text
        assert "broker's server certificate" not in listing.text  # 10 days: outside 2 days
        tg.send_text(admin, "/expiring 30")
        wait_text(tg, ADMIN_ID, "broker's server certificate (127.0.0.1")
        tg.send_text(mallory, "/expiring")
        wait_text(tg, mallory.id, "only admins")


def test_renewing_outside_the_window_is_refused_with_the_date(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    dave: FakeUser = tg.user(2401, "Dave", "dave")
    with BotProcess(tg, tmp_path / "bot", ca=ca, env={"OTCERT_CERT_DAYS": "365"}) as bot:
        approve(tg, dave, "dave")
        file_msg, passphrase = get_certificate(tg, dave, "android")
        serial = unpack(file_msg, passphrase, ca, tmp_path / "d")[0]
        tg.send_text(dave, "/renew")
        refusal = wait_text(tg, dave.id, "You can renew it from")
        assert "valid until" in refusal.text
        tg.press_button(dave, file_msg.message_id, f"rnw:{serial}")
        tg.wait_for(lambda m: m.message_id > refusal.message_id
                    and "You can renew it from" in m.text, 20, chat_id=dave.id)
        tg.send_text(dave, "/mycerts")
        listing = wait_text(tg, dave.id, "renewable from")
        assert [label for label, _ in listing.buttons] == ["🗑 Revoke phone"]
        # Bad input gets a clear answer and changes nothing.
        admin = tg.user(ADMIN_ID, "Admin")
        for who, command, needle in (
            (dave, "/renew ../etc", "no working certificate for"),
            (dave, "/renew a b", "Usage: /renew"),
            (dave, "/renew " + "x" * 300, "too long"),
            (admin, "/expiring abc", "Usage: /expiring"),
            (admin, "/expiring 0", "Usage: /expiring"),
            (admin, "/expiring 1 2", "Usage: /expiring"),
        ):
            before = len(tg.sent_messages(who.id))
            tg.send_text(who, command)
            tg.wait_for(lambda m, b=before, w=who: len(tg.sent_messages(w.id)) > b, 15)
            assert needle in tg.sent_messages(who.id)[-1].text, (command,
                                                                 tg.sent_messages(who.id)[-1])
        tg.send_text(dave, "/mycerts", chat_type="group")
        tg.wait_for(lambda m: "private chat" in m.text, 15)
        assert len(certificates(bot.data_dir / "otcert.sqlite3")) == 1


def test_a_renewal_that_must_ask_for_the_phone_still_renews(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    """No phone on record (an older `otcert issue`): Renew asks which phone, and the answer
    renews that certificate; the old one keeps working (it used to be replaced, i.e. revoked)."""
    import sqlite3

    erin = tg.user(2501, "Erin", "erin")
    with BotProcess(tg, tmp_path / "bot", ca=ca, env=SHORT) as bot:
        db = bot.data_dir / "otcert.sqlite3"
        approve(tg, erin, "erin")
        old_serial = unpack(*get_certificate(tg, erin, "android"), ca, tmp_path / "e0")[0]
        conn = sqlite3.connect(db, timeout=10)
        with conn:
            conn.execute("UPDATE people SET platform = NULL WHERE telegram_id = ?", (erin.id,))
        conn.close()
        last = tg.sent_messages(erin.id)[-1].message_id
        tg.send_text(erin, "/renew")
        question = tg.wait_for(lambda m: m.message_id > last and "Which phone" in m.text, 20,
                               chat_id=erin.id)
        labels = dict(question.buttons)
        assert [str(d) for d in labels.values()] == [f"rplat:ios:{old_serial}",
                                                     f"rplat:android:{old_serial}"]
        tg.press_button(erin, question.message_id, str(labels["Android"]))
        renewed = tg.wait_for(lambda m: m.filename == "erin-phone.p12"
                              and m.message_id > question.message_id, 30, chat_id=erin.id)
        wait_text(tg, erin.id, "Passphrase for <code>erin-phone.p12</code>")
        rows = certificates(db, erin.id)
        assert rows[old_serial][0] == "active", rows
        assert len(rows) == 2 and renewed.document is not None


def test_a_lost_phone_reaches_the_admins_in_their_language_even_if_the_owner_blocked_us(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    """A Russian-speaking owner revokes, then the reply to them fails (they blocked the bot):
    the English admin still hears of it, in English."""
    tg.user(ADMIN_ID, "Admin")
    fedor = tg.user(2601, "Fedor", "fedor")
    with BotProcess(tg, tmp_path / "bot", ca=ca, env=SHORT) as bot:
        approve(tg, fedor, "fedor")
        serial = unpack(*get_certificate(tg, fedor, "android"), ca, tmp_path / "f0")[0]
        fedor = tg.user(2601, "Fedor", "fedor", language_code="ru")  # his app now says ru
        tg.block(fedor.id)
        tg.press_button(fedor, 1, f"rvky:{serial}")
        notice = wait_text(tg, ADMIN_ID, "revoked their certificate for device", timeout=30)
        assert "<b>phone</b>" in notice.text and serial in notice.text
        assert certificates(bot.data_dir / "otcert.sqlite3", fedor.id)[serial][0] == "revoked"
