"""Admin flows end to end: deny by button, two admins, /pending and /users, limits,
superseding, re-pin, the audit log, and state that survives a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from bot.telegram.handlers.admin import LIST_MAX_PEOPLE
from pki import CertificateAuthority, verify_crl
from storage import Database, Repository
from tests.botproc import ADMIN_ID, BotProcess, approve, get_certificate, wait_text
from tests.fake_telegram import FakeTelegram

pytestmark = pytest.mark.slow  # starts a bot process

SECOND_ADMIN = 1001


def rows(bot: BotProcess, query: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(bot.data_dir / "otcert.sqlite3")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_deny_by_button_is_shown_on_every_admins_copy(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    admin, other = tg.user(ADMIN_ID, "Ann"), tg.user(SECOND_ADMIN, "Ben")
    eve = tg.user(2201, "Eve", "eve")
    with BotProcess(tg, tmp_path / "bot", ca=ca, admins=(ADMIN_ID, SECOND_ADMIN)):
        tg.send_text(eve, "/request")
        mine = wait_text(tg, ADMIN_ID, "New access request")
        wait_text(tg, SECOND_ADMIN, "New access request")
        tg.press_button(admin, mine.message_id, "req:deny:2201")
        wait_text(tg, eve.id, "denied")
        wait_text(tg, SECOND_ADMIN, "Denied by Ann")
        # A second decision on the same request is refused, not applied twice.
        tg.press_button(other, mine.message_id, "req:ok:2201:eve")
        tg.wait_for_call("answerCallbackQuery", lambda c: "already handled" in str(c.params))
        del admin
    assert rows_status(tmp_path, 2201) == "denied"


def rows_status(tmp_path: Path, telegram_id: int) -> str:
    db = sqlite3.connect(tmp_path / "bot" / "data" / "otcert.sqlite3")
    try:
        (status,) = db.execute(
            "SELECT status FROM people WHERE telegram_id = ?", (telegram_id,)
        ).fetchone()
        return str(status)
    finally:
        db.close()


def test_views_limits_superseding_and_restart(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    admin = tg.user(ADMIN_ID, "Ann")
    finn, gina = tg.user(2202, "Finn", "finn"), tg.user(2203, "Gina")
    env = {"OTCERT_MAX_DEVICES": "2"}
    with BotProcess(tg, tmp_path / "bot", ca=ca, env=env) as bot:
        tg.send_text(gina, "/request")
        wait_text(tg, ADMIN_ID, "New access request")
        tg.send_text(admin, "/pending")
        wait_text(tg, ADMIN_ID, "Gina")

        approve(tg, finn, "finn")
        first, _ = get_certificate(tg, finn, "ios", "phone")
        get_certificate(tg, finn, "ios", "ipad")
        tg.send_text(finn, "/getcert watch")
        wait_text(tg, finn.id, "the most allowed")
        # The same device again replaces (and revokes) the old certificate.
        again, _ = get_certificate(tg, finn, "ios", "phone")
        assert again.message_id != first.message_id
        wait_text(tg, finn.id, "previous certificate for this device was revoked")

        tg.send_text(admin, "/users")
        listing = wait_text(tg, ADMIN_ID, "[approved] → <code>finn</code>")
        assert "phone:" in listing.text and "ipad:" in listing.text

        bot.stop()
        bot.start()
        tg.send_text(finn, "/start")
        wait_text(tg, finn.id, "You have access as <code>finn</code>")
        tg.send_text(admin, "/revoke 2202 left")
        wait_text(tg, ADMIN_ID, "2 certificate(s)")
        bot.stop()
        bot.start()
        tg.send_text(finn, "/getcert")
        wait_text(tg, finn.id, "revoked")

    statuses = sorted(str(s) for (s,) in rows(bot, "SELECT status FROM certificates"))
    assert statuses == ["revoked", "revoked", "superseded"]
    crl = verify_crl((bot.data_dir / "crl.pem").read_bytes(), ca.certificate)
    serials = {int(str(s), 16) for (s,) in rows(bot, "SELECT serial FROM certificates")}
    assert {r.serial_number for r in crl} == serials
    actions = {str(a) for (a,) in rows(bot, "SELECT action FROM audit_log")}
    assert {"request", "approve", "issue", "revoke"} <= actions, actions


def test_repin_with_an_uploaded_ca_reaches_everyone_and_counts_blocked(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    admin = tg.user(ADMIN_ID, "Ann")
    ben = tg.user(SECOND_ADMIN, "Ben")
    hank, iris = tg.user(2204, "Hank", "hank"), tg.user(2205, "Iris", "iris")
    with BotProcess(tg, tmp_path / "bot", ca=ca, admins=(ADMIN_ID, SECOND_ADMIN)):
        approve(tg, hank, "hank")
        approve(tg, iris, "iris")
        tg.block(iris.id)

        new_pin = other_ca.certificate.public_bytes(Encoding.DER)
        upload = tg.send_document(admin, "new-ca.der", new_pin)
        tg.send_text(admin, "/repin", reply_to_message_id=upload)
        # A foreign CA needs a second admin (issue 14); every admin sees who asked and who
        # confirmed, and the summary goes to the one who confirmed.
        ask = wait_text(tg, SECOND_ADMIN, "Ann asks to send a new CA")
        assert "CN=Other CA" in ask.text
        tg.press_button(ben, ask.message_id, str(ask.buttons[0][1]))
        wait_text(tg, ADMIN_ID, "Ben confirmed the CA Ann asked for")
        summary = wait_text(tg, SECOND_ADMIN, "Re-pin done", timeout=20)
        assert "1 reached" in summary.text and "1 blocked" in summary.text
        assert "iris" in summary.text
        pins = [m for m in tg.sent_messages(hank.id) if m.filename == "ca.crt"]
        assert pins and pins[-1].document is not None
        assert x509.load_pem_x509_certificate(pins[-1].document) == other_ca.certificate

        last = tg.sent_messages(ADMIN_ID)[-1].message_id
        junk = tg.send_document(admin, "junk.der", b"\x30\x82not a certificate")
        tg.send_text(admin, "/repin", reply_to_message_id=junk)
        refusal = tg.wait_for(lambda m: m.message_id > last, chat_id=ADMIN_ID)
        assert "certificate" in refusal.text.lower() and "Re-pin" not in refusal.text
        tg.unblock(iris.id)
        # /getcert now ships the new pin.
        file_msg, passphrase = get_certificate(tg, hank, "android")
        assert file_msg.document is not None
        _, cert, _ = pkcs12.load_key_and_certificates(file_msg.document, passphrase.encode())
        assert cert is not None and cert.issuer == ca.certificate.subject
        wait_text(tg, hank.id, "Android steps")
        latest = [m for m in tg.sent_messages(hank.id) if m.filename == "ca.otre"][-1]
        assert latest.document == other_ca.certificate.public_bytes(Encoding.DER)


def test_users_lists_one_page_and_says_how_many_more(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    """A big deployment's /users must not build everyone's rows on the event loop."""
    admin = tg.user(ADMIN_ID, "Ann")
    bot = BotProcess(tg, tmp_path / "bot", ca=ca)
    bot.start()
    bot.stop()  # the database now exists, at the current schema

    async def seed() -> None:
        async with await Database.open(bot.data_dir / "otcert.sqlite3") as db:
            repo = Repository(db)
            for i in range(LIST_MAX_PEOPLE + 7):
                await repo.request_access(30_000 + i, f"Person {i}", None)

    asyncio.run(seed())
    with bot:
        tg.send_text(admin, "/users")
        wait_text(tg, ADMIN_ID, "… and 7 more")
        listed = "\n".join(m.text or "" for m in tg.sent_messages(ADMIN_ID))
        assert "Person 0" in listed and f"Person {LIST_MAX_PEOPLE - 1}" in listed
        assert f"Person {LIST_MAX_PEOPLE} (" not in listed
