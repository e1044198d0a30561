"""Issue 14 point 4: no single admin can put a new root on every phone.

A real bot process over HTTP against the fake Bot API: a foreign CA uploaded by one of two
admins reaches nobody until the other confirms; the asker and non-admins cannot confirm.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pki import CertificateAuthority
from tests.botproc import ADMIN_ID, BotProcess, approve, wait_text
from tests.fake_telegram import FakeTelegram

pytestmark = pytest.mark.slow  # starts a bot process

SECOND_ADMIN = 1001


def test_a_foreign_ca_reaches_nobody_until_a_second_admin_confirms(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    ann, ben = tg.user(ADMIN_ID, "Ann"), tg.user(SECOND_ADMIN, "Ben")
    hank, mallory = tg.user(2204, "Hank", "hank"), tg.user(2290, "Mallory", "mallory")
    # Nothing listens at the broker address, so the chain check cannot vouch for the CA.
    env = {"OTCERT_MQTT_HOST": "127.0.0.1", "OTCERT_MQTT_PORT": "9"}
    with BotProcess(tg, tmp_path / "bot", ca=ca, admins=(ADMIN_ID, SECOND_ADMIN), env=env):
        approve(tg, hank, "hank")
        foreign = other_ca.certificate.public_bytes(Encoding.DER)
        upload = tg.send_document(ann, "new-ca.der", foreign)
        tg.send_text(ann, "/repin", reply_to_message_id=upload)
        wait_text(tg, ADMIN_ID, "Another admin must confirm")
        ask = wait_text(tg, SECOND_ADMIN, "Ann asks to send a new CA")
        assert "CN=Other CA" in ask.text
        (label, data), = ask.buttons
        assert data is not None and data.startswith("pinok:")

        def hank_cas() -> list[bytes]:
            return [m.document or b"" for m in tg.sent_messages(hank.id) if m.filename == "ca.crt"]

        # The asker pressing the same data, a non-admin forging it, or a made-up token: nothing.
        tg.press_button(ann, ask.message_id, data)
        tg.wait_for_call("answerCallbackQuery", lambda c: "another admin" in str(c.params))
        tg.press_button(mallory, ask.message_id, data)
        tg.wait_for_call("answerCallbackQuery", lambda c: "only admins" in str(c.params))
        tg.press_button(ben, ask.message_id, "pinok:0123456789abcdef")
        tg.wait_for_call("answerCallbackQuery", lambda c: "no longer open" in str(c.params))
        # A round trip through the bot before judging that nothing went out.
        tg.send_text(ann, "/pending")
        wait_text(tg, ADMIN_ID, "Nobody is waiting")
        assert hank_cas() == []
        assert not any("Sending the pin" in m.text for m in tg.sent_messages())

        tg.press_button(ben, ask.message_id, data)
        for admin_id in (ADMIN_ID, SECOND_ADMIN):
            wait_text(tg, admin_id, "Ben confirmed the CA Ann asked for")
        wait_text(tg, SECOND_ADMIN, "Re-pin done", timeout=20)
        tg.wait_for(lambda m: bool(hank_cas()), 20, chat_id=hank.id)
        assert x509.load_pem_x509_certificate(hank_cas()[-1]) == other_ca.certificate
        # Used once: pressing again changes nothing.
        tg.press_button(ben, ask.message_id, data)
        tg.wait_for_call(
            "answerCallbackQuery", lambda c: str(c.params).count("no longer open") >= 1
        )
        del label


def test_one_admin_sends_the_bots_own_ca_but_never_a_foreign_one(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    ann, hank = tg.user(ADMIN_ID, "Ann"), tg.user(2204, "Hank", "hank")
    env = {"OTCERT_MQTT_HOST": "127.0.0.1", "OTCERT_MQTT_PORT": "9"}
    with BotProcess(tg, tmp_path / "bot", ca=ca, env=env):
        approve(tg, hank, "hank")
        foreign = tg.send_document(ann, "x.der", other_ca.certificate.public_bytes(Encoding.DER))
        tg.send_text(ann, "/repin", reply_to_message_id=foreign)
        wait_text(tg, ADMIN_ID, "no second admin to confirm it")
        own = tg.send_document(ann, "ca.crt", ca.certificate.public_bytes(Encoding.PEM))
        tg.send_text(ann, "/repin", reply_to_message_id=own)
        wait_text(tg, ADMIN_ID, "Re-pin done", timeout=20)
        cas = [m.document for m in tg.sent_messages(hank.id) if m.filename == "ca.crt"]
        assert cas and all(
            c is not None and x509.load_pem_x509_certificate(c) == ca.certificate for c in cas
        )
