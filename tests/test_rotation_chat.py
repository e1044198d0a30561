"""A CA rotation in chat (issue 17, points 1-3): the real bot process over HTTP against the
fake Bot API notices a rotation started from the shell, offers each person on the old CA one
button, delivers a certificate from the next CA on a tap, shows admins ``/rotation``, sends
both CAs on ``/repin``, and does not offer twice after a restart.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import CertificateAuthority
from tests.botproc import (
    ADMIN_ID,
    PASSPHRASE_RE,
    BotProcess,
    approve,
    get_certificate,
    otcert_command,
    wait_text,
)
from tests.fake_telegram import FakeTelegram, SentMessage

pytestmark = pytest.mark.slow  # starts a bot process

OFFER = "switching to a new certificate authority"


def _offers(tg: FakeTelegram, chat_id: int) -> list[SentMessage]:
    return [m for m in tg.sent_messages(chat_id) if OFFER in (m.text or "")]


def test_move_button_rotation_and_repin_with_both_cas(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    ann = tg.user(ADMIN_ID, "Ann")
    alice, bob = tg.user(2301, "Alice", "alice"), tg.user(2302, "Bob", "bob")
    mallory = tg.user(2390, "Mallory", "mallory")
    bot = BotProcess(tg, tmp_path / "bot", ca=ca, env={"OTCERT_LIFECYCLE_CHECK_SECONDS": "1"})
    with bot:
        approve(tg, alice, "alice")
        approve(tg, bob, "bob")
        get_certificate(tg, alice, "android")
        get_certificate(tg, bob, "android")
        started = subprocess.run(
            [*otcert_command(), "ca", "rotate", "start", "--key-type", "ec-p384"],
            cwd=bot.workdir, env=bot.env, capture_output=True, text=True, timeout=120,
        )
        assert started.returncode == 0, started.stderr
        next_ca = x509.load_pem_x509_certificate((bot.data_dir / "ca-next.crt").read_bytes())

        offer = wait_text(tg, alice.id, OFFER, timeout=20)
        wait_text(tg, bob.id, OFFER, timeout=20)
        new_ca = tg.wait_for(lambda m: m.filename == "ca-new.crt", chat_id=alice.id)
        assert x509.load_pem_x509_certificate(new_ca.document or b"") == next_ca
        (_, data), = offer.buttons
        assert data == "rot:move"

        # Forged by someone with nothing to move: no certificate for anyone.
        tg.press_button(mallory, offer.message_id, "rot:move")
        wait_text(tg, mallory.id, "no certificate that needs replacing")
        assert not any(m.filename for m in tg.sent_messages(mallory.id))

        before = {m.message_id for m in tg.sent_messages(alice.id)}
        tg.press_button(alice, offer.message_id, data)
        file_msg = tg.wait_for(
            lambda m: m.message_id not in before and (m.filename or "").endswith(".p12"),
            chat_id=alice.id, timeout=30,
        )
        secret = tg.wait_for(lambda m: m.message_id > file_msg.message_id
                             and "Passphrase for" in m.text, chat_id=alice.id)
        match = PASSPHRASE_RE.search(secret.text)
        assert match, secret.text
        passphrase = match.group()
        _, cert, _ = pkcs12.load_key_and_certificates(file_msg.document or b"",
                                                      passphrase.encode())
        assert cert is not None and cert.issuer == next_ca.subject
        tg.wait_for(lambda m: m.message_id > secret.message_id and " steps</b>" in m.text,
                    chat_id=alice.id)
        # Moved: pressing again gives nothing new.
        tg.press_button(alice, offer.message_id, data)
        wait_text(tg, alice.id, "no certificate that needs replacing")

        tg.send_text(bob, "/rotation")
        wait_text(tg, bob.id, "only admins")
        tg.send_text(ann, "/rotation")
        status = wait_text(tg, ADMIN_ID, "CA rotation under way")
        assert "Not moved yet (1): bob" in status.text

        tg.send_text(ann, "/repin")
        wait_text(tg, ADMIN_ID, "Re-pin done", timeout=30)
        docs = [m for m in tg.sent_messages(bob.id) if m.filename in ("ca.crt", "ca-new.crt")
                and "trust both CAs" in (m.caption or "")]
        got = {x509.load_pem_x509_certificate(m.document or b"") for m in docs}
        assert got == {ca.certificate, next_ca}

    # A restart remembers who was offered: bob still has not moved, yet gets no second offer.
    offers_before = len(_offers(tg, bob.id))
    with bot.start(wait=True):
        assert bot._wait_for_log("rotation check: 0 move offers due", timeout=20), (
            bot.log_text[-3000:])
        tg.send_text(ann, "/pending")
        wait_text(tg, ADMIN_ID, "Nobody is waiting")
        assert len(_offers(tg, bob.id)) == offers_before == 1
