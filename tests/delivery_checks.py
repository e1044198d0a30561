"""Shared helpers for the fault and crash tests: drive the real bot through the fake Bot API
and read back what Telegram saw, what the database says and what the CRL on disk lists."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from pki.crl import verify_crl
from tests.fake_telegram import Call, FakeTelegram, FakeUser, SentMessage

PASSPHRASE_RE = re.compile(r"[a-z2-9]{4}(?:-[a-z2-9]{4}){3,}")
BUNDLE_SUFFIXES = (".otrp", ".p12")


def text_of(message: SentMessage) -> str:
    return message.text or message.caption or ""


def count_texts(tg: FakeTelegram, chat_id: int, needle: str) -> int:
    return sum(needle in text_of(m) for m in tg.sent_messages(chat_id))


def ask_platform_question(tg: FakeTelegram, person: FakeUser) -> SentMessage:
    """/getcert for someone whose phone is not known yet: returns the question."""
    before = count_texts(tg, person.id, "Which phone")
    tg.send_text(person, "/getcert")
    tg.wait_for(lambda m: count_texts(tg, person.id, "Which phone") > before, 20)
    return [m for m in tg.sent_messages(person.id) if "Which phone" in text_of(m)][-1]


def bundle_messages(tg: FakeTelegram, chat_id: int | None = None) -> list[SentMessage]:
    """Every PKCS#12 file Telegram accepted (HTTP 200), deleted ones included."""
    return [m for m in tg.sent_messages(chat_id)
            if m.filename is not None and m.filename.endswith(BUNDLE_SUFFIXES)]


def passphrase_messages(tg: FakeTelegram, chat_id: int | None = None) -> list[SentMessage]:
    return [m for m in tg.sent_messages(chat_id) if "Passphrase for" in (m.text or "")]


def passphrase_calls(tg: FakeTelegram, chat_id: int) -> list[Call]:
    """Every attempt to send a passphrase, answered or not."""
    return [c for c in tg.calls_to("sendMessage")
            if c.params.get("chat_id") == chat_id and "Passphrase for" in str(c.params.get("text"))]


@dataclass(frozen=True)
class Delivered:
    """A certificate that reached a chat together with its passphrase."""

    chat_id: int
    serial: str
    file: SentMessage
    secret: SentMessage


def delivered_pairs(tg: FakeTelegram) -> tuple[list[Delivered], list[SentMessage]]:
    """Pair every accepted file with the passphrase that followed it in the same chat.

    Returns (pairs, files without a passphrase). The serial comes from opening the PKCS#12
    with that passphrase, so a pair proves the person holds a usable certificate.
    """
    pairs: list[Delivered] = []
    lonely: list[SentMessage] = []
    chats = {m.chat_id for m in bundle_messages(tg)}
    for chat_id in chats:
        sent = sorted(tg.sent_messages(chat_id), key=lambda m: m.message_id)
        for index, message in enumerate(sent):
            if message not in bundle_messages(tg, chat_id):
                continue
            secret = next((m for m in sent[index + 1:]
                           if f"{message.filename}</code>" in (m.text or "")
                           and "Passphrase for" in (m.text or "")), None)
            following_file = next((m for m in sent[index + 1:] if m.filename == message.filename
                                   ), None)
            if secret is None or (following_file is not None
                                  and following_file.message_id < secret.message_id):
                lonely.append(message)
                continue
            match = PASSPHRASE_RE.search(secret.text or "")
            assert match is not None and message.document is not None
            _key, cert, _chain = pkcs12.load_key_and_certificates(
                message.document, match.group().encode())
            assert cert is not None
            pairs.append(Delivered(chat_id, format(cert.serial_number, "x"), message, secret))
    return pairs, lonely


def db_rows(db_path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def certificates(db_path: Path, telegram_id: int | None = None) -> dict[str, tuple[str, str]]:
    """serial -> (status, revocation_reason) from the database."""
    sql = "SELECT serial, status, coalesce(revocation_reason, '') FROM certificates"
    rows = (db_rows(db_path, sql) if telegram_id is None
            else db_rows(db_path, sql + " WHERE telegram_id = ?", (telegram_id,)))
    return {str(s): (str(st), str(r)) for s, st, r in rows}


def crl_serials(crl_path: Path, ca_certificate: x509.Certificate) -> set[str]:
    """Serials in the CRL on disk, after checking it is the CA's and current."""
    crl = verify_crl(crl_path.read_bytes(), ca_certificate)
    return {format(entry.serial_number, "x") for entry in crl}


def integrity_ok(db_path: Path) -> bool:
    return db_rows(db_path, "PRAGMA integrity_check") == [("ok",)]
