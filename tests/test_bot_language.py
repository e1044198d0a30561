"""The chat speaks the person's language, end to end: the real bot over HTTP against the
fake Bot API, each person's app reporting its ``language_code``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pki import CertificateAuthority
from tests.botproc import ADMIN_ID, BotProcess, texts_to, wait_text
from tests.fake_telegram import FakeTelegram, FakeUser

pytestmark = pytest.mark.slow  # starts a bot process

PASSPHRASE_RE = re.compile(r"[a-z2-9]{4}(?:-[a-z2-9]{4}){3,}")


def approve_by_command(tg: FakeTelegram, person: FakeUser, username: str, told: str) -> None:
    tg.send_text(tg.user(ADMIN_ID, "Admin"), f"/approve {person.id} {username}")
    wait_text(tg, person.id, told, timeout=20)


def test_german_person_gets_german_start_help_and_whole_delivery(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    greta = tg.user(3001, "Greta", username="greta", language_code="de-AT")
    with BotProcess(tg, tmp_path / "bot", ca=ca, env={"OTCERT_SECRET_TTL_SECONDS": "10"}) as bot:
        tg.send_text(greta, "/start")
        start = wait_text(tg, greta.id, "Hallo! Ich verteile TLS-Client-Zertifikate")
        assert "Du hast noch keinen Zugang beantragt" in start.text
        tg.send_text(greta, "/help")
        helped = wait_text(tg, greta.id, "/request – Zugang beantragen")
        assert "/language – die Sprache wählen" in helped.text
        assert "/getcert [device]" in helped.text, "commands never change with the language"

        approve_by_command(tg, greta, "greta", "Dein MQTT-Benutzername ist <code>greta</code>")
        tg.send_text(greta, "/getcert")
        question = wait_text(tg, greta.id, "Für welches Telefon ist das Zertifikat?")
        assert question.reply_markup is not None
        labels = [b["text"] for row in question.reply_markup["inline_keyboard"] for b in row]
        assert labels == ["iPhone", "Android"]
        tg.press_button(greta, question.message_id, "plat:android:phone")

        file_msg = tg.wait_for(lambda m: m.filename is not None and m.filename.endswith(".p12"),
                               20, chat_id=greta.id)
        assert file_msg.filename == "greta-phone.p12", "file names never change"
        assert "Dein OwnTracks-Zertifikat für <code>greta</code>" in (file_msg.caption or "")
        assert "10 Sekunden" in (file_msg.caption or "")
        secret = wait_text(tg, greta.id, "Passphrase für <code>greta-phone.p12</code>")
        assert secret.message_id != file_msg.message_id
        passphrase = PASSPHRASE_RE.search(secret.text or "")
        assert passphrase is not None and passphrase.group() not in (file_msg.caption or "")
        steps = wait_text(tg, greta.id, "<b>Schritte für Android</b>")
        assert "Verschlüsselung &amp; Anmeldedaten" in steps.text
        assert "Client-Zertifikat installieren" in steps.text
        captions = {m.filename: m.caption or "" for m in tg.sent_messages(greta.id) if m.filename}
        assert "Das CA-Zertifikat des Brokers" in captions["ca.crt"]
        assert "OwnTracks-Pin-Datei" in captions["ca.otre"]
        everything = "\n".join(texts_to(tg, greta.id))
        for english in ("Passphrase for", "Android steps", "Your OwnTracks certificate",
                        "Which phone", "Send /request"):
            assert english not in everything

        tg.wait_for(lambda m: m.deleted and m.message_id == secret.message_id, 30,
                    chat_id=greta.id)
        assert (greta.id, file_msg.message_id) in tg.deleted
        assert passphrase.group() not in bot.log_text


def test_unshipped_language_gets_english_and_the_menu_is_per_language(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    paulo = tg.user(3002, "Paulo", language_code="pt-BR")
    with BotProcess(tg, tmp_path / "bot", ca=ca):
        tg.send_text(paulo, "/start")
        wait_text(tg, paulo.id, "Hi! I hand out TLS client certificates")
    menus = {
        str(c.params.get("language_code") or ""): c.params["commands"]
        for c in tg.calls_to("setMyCommands") if not c.params.get("scope")
    }
    assert set(menus) == {"", "en", "de", "es", "fr", "nl", "ru"}
    names = {tuple(c["command"] for c in commands) for commands in menus.values()}
    assert names == {("start", "request", "getcert", "help", "language")}, "names never change"
    assert "Zugang beantragen" in [c["description"] for c in menus["de"]]
    assert "ask for access" in [c["description"] for c in menus[""]]

def test_language_command_switches_and_survives_a_restart(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    anna = tg.user(3003, "Anna", language_code="en-US")
    admin = tg.user(ADMIN_ID, "Admin", language_code="fr")
    bot = BotProcess(tg, tmp_path / "bot", ca=ca)
    with bot:
        tg.send_text(anna, "/language")
        ask = wait_text(tg, anna.id, "Which language should I use? (Now: English)")
        assert ask.reply_markup is not None
        labels = [b["text"] for row in ask.reply_markup["inline_keyboard"] for b in row]
        assert labels == ["English", "Deutsch", "Español", "Français", "Nederlands", "Русский"]
        tg.press_button(anna, ask.message_id, "lang:nl")
        wait_text(tg, anna.id, "Vanaf nu schrijf ik je in het Nederlands.")
        tg.press_button(anna, ask.message_id, "lang:xx")  # forged: changes nothing
        tg.send_text(admin, "/start")  # the admin's app says French: remembered for later
        wait_text(tg, ADMIN_ID, "Bonjour")
    with bot:  # a restart: the choice is read back from the database
        tg.send_text(anna, "/start")
        wait_text(tg, anna.id, "Je hebt nog geen toegang aangevraagd")
        tg.send_text(anna, "/request")
        wait_text(tg, anna.id, "Bedankt!")
        note = wait_text(tg, ADMIN_ID, "Nouvelle demande d'accès")
        assert note.reply_markup is not None
        labels = [b["text"] for row in note.reply_markup["inline_keyboard"] for b in row]
        assert labels == ["✅ Approuver", "❌ Refuser"]
        tg.send_text(anna, "/language ru")
        wait_text(tg, anna.id, "Теперь я буду писать вам по-русски.")
        tg.send_text(anna, "/start")
        wait_text(tg, anna.id, "Ваш запрос ожидает администратора.")
