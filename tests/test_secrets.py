"""Secrets: after every flow at DEBUG, no bot token, passphrase or private key is in the log,
in what admins were told, or in the database files; the CA key file is 0600, encrypted when a
passphrase is configured, and the bot refuses to start when others may read it."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import CertificateAuthority
from tests.botproc import ADMIN_ID, BotProcess
from tests.fake_telegram import FakeTelegram, FakeUser
from tests.hostile_support import fresh_person, text_of, wait_text

pytestmark = pytest.mark.slow  # starts a bot process

PASSPHRASE_RE = re.compile(r"Passphrase for .*?<code>([^<]+)</code></tg-spoiler>", re.S)
ERROR_REF_RE = re.compile(r"\(error ([0-9a-f]{8})\)")


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def pem_body_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM block: any one of them in the open is a leak."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")
            and len(line) >= 40]


def get_certificate(tg: FakeTelegram, person: FakeUser, platform: str, device: str) -> None:
    before = len(tg.sent_messages(person.id))
    tg.send_text(person, f"/getcert {device}")
    first = tg.wait_for(lambda m: len(tg.sent_messages(person.id)) > before, 20,
                        chat_id=person.id)
    del first
    newest = tg.sent_messages(person.id)[before]
    if "Which phone" in text_of(newest):
        tg.press_button(person, newest.message_id, f"plat:{platform}:{device}")
    tg.wait_for(lambda m: " steps</b>" in text_of(m) and m.message_id > newest.message_id, 20,
                chat_id=person.id)


def request(tg: FakeTelegram, person: FakeUser) -> int:
    """/request; returns the id of the first admin's copy of the request."""
    tg.send_text(person, "/request")
    wait_text(tg, person.id, "asked the admins")
    note = wait_text(tg, ADMIN_ID, f"<code>{person.id}</code>)")
    return note.message_id


def run_every_flow(tg: FakeTelegram, bot: BotProcess, own_ca: CertificateAuthority) -> str:
    """Every flow once; returns the error reference the forced internal error produced."""
    admin = tg.user(ADMIN_ID, "Admin")
    alice, bob, carol, dave = (fresh_person(tg, n) for n in ("Alice", "Bob", "Carol", "Dave"))
    tg.send_text(alice, "/start")
    wait_text(tg, alice.id, "Hi!")
    note = request(tg, alice)
    tg.press_button(admin, note, f"req:approve:{alice.id}")
    wait_text(tg, ADMIN_ID, "as <code>alice</code>?")
    tg.press_button(admin, note, f"req:ok:{alice.id}:alice")
    wait_text(tg, alice.id, "approved")
    request(tg, bob)
    tg.send_text(admin, f"/approve {bob.id} bob")
    wait_text(tg, bob.id, "approved")
    note = request(tg, carol)
    tg.press_button(admin, note, f"req:deny:{carol.id}")
    wait_text(tg, carol.id, "denied")
    request(tg, dave)
    tg.send_text(admin, f"/deny {dave.id} no reason at all")
    wait_text(tg, dave.id, "denied")

    get_certificate(tg, alice, "ios", "phone")
    get_certificate(tg, alice, "ios", "phone")  # a replacement
    get_certificate(tg, bob, "android", "tablet")
    for command, needle in (("/pending", ""), ("/users", "alice"), ("/approve x", "Usage"),
                            ("/revoke nobody", "Nobody"), ("/frobnicate", "know that")):
        before = len(tg.sent_messages(ADMIN_ID))
        tg.send_text(admin, command)
        tg.wait_for(lambda m, b=before: len(tg.sent_messages(ADMIN_ID)) > b, 15)
        assert needle in text_of(tg.sent_messages(ADMIN_ID)[-1]), command
    # The bot's own CA: a foreign one would wait for a second admin (tests/test_trust_repin.py).
    doc = tg.send_document(admin, "new-ca.crt", own_ca.certificate.public_bytes(
        serialization.Encoding.PEM))
    tg.send_text(admin, "/repin", reply_to_message_id=doc)
    wait_text(tg, ADMIN_ID, "Re-pin done")
    tg.send_text(admin, "/revoke alice lost phone")
    wait_text(tg, ADMIN_ID, "Revoked")
    wait_text(tg, alice.id, "revoked")

    # A bug mid-issue, after the key and passphrase exist: a trigger makes the audit row fail.
    db = sqlite3.connect(bot.data_dir / "otcert.sqlite3")
    db.execute("""CREATE TRIGGER forced_failure BEFORE INSERT ON audit_log
                  WHEN NEW.action = 'issue' BEGIN SELECT RAISE(ABORT, 'forced'); END""")
    db.commit()
    try:
        tg.send_text(bob, "/getcert watch")
        failure = wait_text(tg, bob.id, "Something went wrong")
    finally:
        db.execute("DROP TRIGGER forced_failure")
        db.commit()
        db.close()
    match = ERROR_REF_RE.search(text_of(failure))
    assert match, text_of(failure)
    assert text_of(failure).count(" ") < 30, "the person sees the reference, nothing more"
    return match.group(1)


def test_no_secret_in_logs_admin_messages_or_database(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority
) -> None:
    bot = BotProcess(tg, tmp_path / "bot", ca=ca, env={"OTCERT_LOG_LEVEL": "DEBUG"})
    with bot:
        ref = run_every_flow(tg, bot, ca)
        db_files = {p.name: p.read_bytes() for p in bot.data_dir.glob("otcert.sqlite3*")}
    db_files.update({p.name + " (stopped)": p.read_bytes()
                     for p in bot.data_dir.glob("otcert.sqlite3*")})
    assert "otcert.sqlite3-wal" in db_files, "the WAL was checked while the bot ran"

    sent = tg.sent_messages()
    passphrases = [p for m in sent for p in PASSPHRASE_RE.findall(m.text)]
    assert len(passphrases) == 3, [m.summary() for m in sent]
    client_keys: list[bytes] = []
    for message in sent:
        if message.document and message.filename and message.filename.endswith((".otrp", ".p12")):
            key = next(k for k, _, _ in (
                _try_load(message.document, p) for p in passphrases) if k is not None)
            client_keys.append(key)
    assert len(client_keys) == 3
    ca_key = (bot.data_dir / "ca.key").read_bytes()
    secrets = [tg.token, tg.token.split(":", 1)[1], *passphrases, "PRIVATE KEY",
               *pem_body_lines(ca_key)[:5]]
    for key in client_keys:
        secrets += pem_body_lines(key)[:3]

    log = bot.log_text
    assert f"unhandled error {ref}" in log and "Traceback" in log, "the bug is in the log"
    to_admins = [text_of(m) for m in sent if m.chat_id == ADMIN_ID]
    to_admins += [e for m in sent if m.chat_id == ADMIN_ID for e in m.edits]
    to_admins += [a.text or "" for a in tg.callback_answers]
    for secret in secrets:
        assert secret not in log, f"log leaks {secret[:12]}…"
        assert not [t for t in to_admins if secret in t], f"an admin saw {secret[:12]}…"
        for name, content in db_files.items():
            assert secret.encode() not in content, f"{name} holds {secret[:12]}…"
    assert "PRIVATE KEY" not in "".join(text_of(m) for m in sent)


def _try_load(data: bytes, passphrase: str) -> tuple[bytes | None, None, None]:
    try:
        key, _cert, _chain = pkcs12.load_key_and_certificates(data, passphrase.encode())
    except ValueError:
        return None, None, None
    assert key is not None
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()), None, None


# --- the CA key file ---------------------------------------------------------------------
def assert_encrypted_key(key_path: Path, passphrase: bytes) -> None:
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    pem = key_path.read_bytes()
    assert b"ENCRYPTED" in pem
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, password=b"not the passphrase")
    serialization.load_pem_private_key(pem, password=passphrase)


@pytest.mark.parametrize("via", ["variable", "file"])
def test_new_ca_key_is_encrypted_with_the_configured_passphrase(
    tg: FakeTelegram, tmp_path: Path, via: str
) -> None:
    passphrase = "correct horse battery staple 42"
    if via == "variable":
        env = {"OTCERT_CA_KEY_PASSPHRASE": passphrase}
    else:
        secret_file = tmp_path / "ca-passphrase"
        secret_file.write_text(passphrase + "\n")
        secret_file.chmod(0o600)
        env = {"OTCERT_CA_KEY_PASSPHRASE_FILE": str(secret_file)}
    bot = BotProcess(tg, tmp_path / "bot", env=env)  # no CA yet: the bot makes one
    with bot:
        wait_for_start(tg, bot)
    assert_encrypted_key(bot.data_dir / "ca.key", passphrase.encode())
    bot.start()  # and it loads it again
    bot.stop()
    assert passphrase not in bot.log_text

    bot.extra_env = {"OTCERT_CA_KEY_PASSPHRASE": "Zq7-not-it"}
    code, output = start_and_fail(bot)
    assert code != 0 and "passphrase" in output and "Traceback" not in output
    assert "Zq7-not-it" not in output


def wait_for_start(tg: FakeTelegram, bot: BotProcess) -> None:
    person = fresh_person(tg)
    tg.send_text(person, "/start")
    wait_text(tg, person.id, "Hi!")


def start_and_fail(bot: BotProcess) -> tuple[int, str]:
    offset = len(bot.log_text)
    bot.start(wait=False)
    assert bot.proc is not None
    code = bot.proc.wait(60)
    bot.proc = None
    return code, bot.log_text[offset:]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_refuses_to_start_when_others_may_read_the_ca_key(
    tg: FakeTelegram, tmp_path: Path, ca: CertificateAuthority, mode: int
) -> None:
    bot = BotProcess(tg, tmp_path / "bot", ca=ca)
    os.chmod(bot.data_dir / "ca.key", mode)
    code, output = start_and_fail(bot)
    assert code != 0
    assert "chmod 600" in output, output
    assert "Traceback" not in output
    assert not tg.calls_to("getUpdates"), "it stopped before talking to Telegram"
