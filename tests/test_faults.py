"""Telegram misbehaving: 429 with retry_after, 5xx, timeouts, dropped connections, 403
"blocked", faults on getUpdates, and double taps. The real bot runs as a subprocess against the
fake Bot API; the database and the CRL on disk are checked after each case.

One bot serves the whole module (each test uses its own person and targets its faults at that
person's chat), which keeps the module fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import CertificateAuthority
from tests.botproc import BotProcess, approve, wait_text
from tests.delivery_checks import (
    PASSPHRASE_RE,
    ask_platform_question,
    bundle_messages,
    certificates,
    count_texts,
    crl_serials,
    passphrase_calls,
    passphrase_messages,
)
from tests.fake_telegram import Call, FakeTelegram, FakeUser

pytestmark = pytest.mark.slow  # starts a bot process

UNDELIVERED = "couldn't deliver"
BUSY = "already preparing"


@dataclass
class Harness:
    tg: FakeTelegram
    bot: BotProcess
    ca: CertificateAuthority
    next_id: int = 5000

    def person(self) -> FakeUser:
        """A fresh, approved person whose phone is not known yet."""
        self.next_id += 1
        person = self.tg.user(self.next_id, f"P{self.next_id}")
        approve(self.tg, person, f"p{self.next_id}")
        return person

    @property
    def db(self) -> Path:
        return self.bot.data_dir / "otcert.sqlite3"

    @property
    def crl(self) -> Path:
        return self.bot.data_dir / "crl.pem"

    def certs(self, person: FakeUser) -> dict[str, tuple[str, str]]:
        return certificates(self.db, person.id)

    def first_certificate(self, person: FakeUser) -> None:
        """Answer the phone question; wait until the delivery ends (steps or a failure)."""
        question = ask_platform_question(self.tg, person)
        self.tg.press_button(person, question.message_id, "plat:ios:phone")

    def wait_done(self, person: FakeUser, needle: str = "iPhone steps") -> None:
        wait_text(self.tg, person.id, needle, timeout=30)


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority) -> Iterator[Harness]:
    with FakeTelegram() as tg:
        bot = BotProcess(tg, tmp_path_factory.mktemp("faults"), ca=ca, env={
            # Short Bot API timeouts so a held request fails in about a second.
            "OTCERT_TELEGRAM_TIMEOUT_SECONDS": "1",
            "OTCERT_KEY_TYPE": "ec-p256",
        })
        with bot:
            yield Harness(tg, bot, ca)


def assert_delivered_once(h: Harness, person: FakeUser) -> str:
    """Exactly one file and one passphrase arrived, they match, and the DB has that one
    certificate, active. Returns its serial."""
    [file_msg] = bundle_messages(h.tg, person.id)
    [secret] = passphrase_messages(h.tg, person.id)
    match = PASSPHRASE_RE.search(secret.text)
    assert match and file_msg.document is not None
    _key, cert, _ = pkcs12.load_key_and_certificates(file_msg.document, match.group().encode())
    assert cert is not None
    serial = format(cert.serial_number, "x")
    assert h.certs(person) == {serial: ("active", "")}
    return serial


def test_retry_after_is_honoured_for_file_and_passphrase(h: Harness) -> None:
    person = h.person()
    question = ask_platform_question(h.tg, person)
    # Pressing the button edits the question (editMessageText), so the first sendDocument is
    # the file and the first sendMessage is the passphrase.
    h.tg.inject_fault("sendDocument", "429", retry_after=2, chat_id=person.id)
    h.tg.inject_fault("sendMessage", "429", retry_after=1, chat_id=person.id)
    h.tg.press_button(person, question.message_id, "plat:ios:phone")
    h.wait_done(person)
    assert_delivered_once(h, person)
    files = bundle_calls(h, person)
    assert [c.status for c in files] == [429, 200]
    assert files[1].time - files[0].time >= 2.0, "retry_after=2 was not waited out"
    secrets = passphrase_calls(h.tg, person.id)
    assert [c.status for c in secrets] == [429, 200]
    assert secrets[1].time - secrets[0].time >= 1.0, "retry_after=1 was not waited out"


def bundle_calls(h: Harness, person: FakeUser) -> list[Call]:
    """Every attempt to send a PKCS#12 file to ``person``, answered or not."""
    return [c for c in h.tg.calls_to("sendDocument") if c.params.get("chat_id") == person.id
            and any(f.filename.endswith((".otrp", ".p12")) for f in c.files.values())]


def test_server_errors_on_secrets_are_retried(h: Harness) -> None:
    person = h.person()
    question = ask_platform_question(h.tg, person)
    for kind in ("500", "502"):
        h.tg.inject_fault("sendDocument", kind, chat_id=person.id)
    h.tg.inject_fault("sendMessage", "502", chat_id=person.id)
    h.tg.press_button(person, question.message_id, "plat:ios:phone")
    h.wait_done(person)
    assert_delivered_once(h, person)
    tried = [c.fault or c.status for c in bundle_calls(h, person)]
    assert tried == ["500", "502", 200]
    assert [c.fault or c.status for c in passphrase_calls(h.tg, person.id)] == ["502", 200]


@pytest.mark.parametrize("kind", ["lost_reply", "drop", "timeout"])
def test_unsure_secret_sends_are_never_repeated(h: Harness, kind: str) -> None:
    """A send that may have arrived is not sent again: a second copy of a file or passphrase
    would never be deleted. The certificate is revoked and the person asked to retry."""
    person = h.person()
    question = ask_platform_question(h.tg, person)
    h.tg.inject_fault("sendMessage", kind, chat_id=person.id)
    h.tg.press_button(person, question.message_id, "plat:ios:phone")
    wait_text(h.tg, person.id, UNDELIVERED, timeout=40)
    assert len(passphrase_calls(h.tg, person.id)) == 1, "the passphrase was sent twice"
    assert len(passphrase_messages(h.tg, person.id)) == (1 if kind == "lost_reply" else 0)
    [(serial, state)] = h.certs(person).items()
    assert state == ("revoked", "undelivered")
    assert serial in crl_serials(h.crl, h.ca.certificate)


def test_a_file_that_may_have_arrived_is_not_sent_again(h: Harness) -> None:
    person = h.person()
    question = ask_platform_question(h.tg, person)
    h.tg.inject_fault("sendDocument", "lost_reply", chat_id=person.id)
    h.tg.press_button(person, question.message_id, "plat:android:phone")
    wait_text(h.tg, person.id, UNDELIVERED, timeout=40)
    assert len(bundle_calls(h, person)) == 1
    assert passphrase_calls(h.tg, person.id) == []
    [(_, state)] = h.certs(person).items()
    assert state == ("revoked", "undelivered")


@pytest.mark.parametrize(("kind", "times"), [("403", 1), ("500", 4), ("timeout", 1)])
def test_undeliverable_passphrase_revokes_and_says_try_again(
    h: Harness, kind: str, times: int
) -> None:
    person = h.person()
    question = ask_platform_question(h.tg, person)
    h.tg.inject_fault("sendMessage", kind, times=times, chat_id=person.id)
    h.tg.press_button(person, question.message_id, "plat:android:phone")
    notice = wait_text(h.tg, person.id, UNDELIVERED, timeout=40)
    assert "/getcert" in notice.text
    assert passphrase_messages(h.tg, person.id) == []
    [file_msg] = bundle_messages(h.tg, person.id)
    h.tg.wait_for(lambda m: m.deleted and m.message_id == file_msg.message_id, 10,
                  chat_id=person.id)
    [(serial, state)] = h.certs(person).items()
    assert state == ("revoked", "undelivered")
    assert serial in crl_serials(h.crl, h.ca.certificate)
    # The person can simply try again, and this time it works.
    h.tg.send_text(person, "/getcert")
    h.tg.wait_for(lambda m: len(passphrase_messages(h.tg, person.id)) == 1, 30)
    assert sorted(s for s, _ in h.certs(person).values()) == ["active", "revoked"]


@pytest.mark.parametrize("blocked", [True, False])
def test_undeliverable_file_never_sends_the_passphrase(h: Harness, blocked: bool) -> None:
    person = h.person()
    question = ask_platform_question(h.tg, person)
    if blocked:
        h.tg.block(person.id)
    else:
        h.tg.inject_fault("sendDocument", "502", times=4, chat_id=person.id)
    h.tg.press_button(person, question.message_id, "plat:ios:phone")
    h.tg.wait_for_call("sendDocument", lambda c: c.params.get("chat_id") == person.id
                       and c.status != 200 and len(
                           [x for x in h.tg.calls_to("sendDocument")
                            if x.params.get("chat_id") == person.id]) >= (1 if blocked else 4),
                       timeout=30)
    # The revocation is written before the person is told (or, blocked, before we give up).
    h.tg.wait_for_call("sendMessage", lambda c: c.params.get("chat_id") == person.id
                       and UNDELIVERED in str(c.params.get("text")), timeout=30)
    h.tg.unblock(person.id)
    assert passphrase_calls(h.tg, person.id) == [], "a passphrase went out without its file"
    [(serial, state)] = h.certs(person).items()
    assert state == ("revoked", "undelivered")
    assert serial in crl_serials(h.crl, h.ca.certificate)


def test_polling_survives_get_updates_faults(h: Harness) -> None:
    kinds = ("500", "502", "drop", "429")
    for kind in kinds:
        h.tg.inject_fault("getUpdates", kind)
    stranger = h.tg.user(4999, "Stranger")
    # The poll already waiting returns this update; the next polls meet the faults.
    h.tg.send_text(stranger, "/start")
    h.tg.wait_for_call("getUpdates", lambda c: c.fault == "429", timeout=40)
    assert [c.fault for c in h.tg.calls_to("getUpdates") if c.fault] == list(kinds)
    h.tg.send_text(stranger, "/start")
    h.tg.wait_for(lambda m: count_texts(h.tg, stranger.id, "not asked for access") == 2, 40)


def wait_for_throttled_upload(h: Harness, person: FakeUser) -> None:
    h.tg.wait_for_call("sendDocument", lambda c: c.params.get("chat_id") == person.id
                       and c.fault == "429", timeout=20)


def test_double_tapped_getcert_issues_one_certificate(h: Harness) -> None:
    person = h.person()
    h.first_certificate(person)
    h.wait_done(person)
    [first] = h.certs(person)
    # A slow upload (Telegram asks us to wait) is exactly when people tap twice; the second
    # tap comes once the first certificate is signed and on its way.
    h.tg.inject_fault("sendDocument", "429", retry_after=2, chat_id=person.id)
    h.tg.send_text(person, "/getcert")
    wait_for_throttled_upload(h, person)
    h.tg.send_text(person, "/getcert")
    wait_text(h.tg, person.id, BUSY)
    h.tg.wait_for(lambda m: count_texts(h.tg, person.id, "iPhone steps") == 2, 30)
    certs = h.certs(person)
    assert len(certs) == 2, certs
    assert certs[first] == ("superseded", "superseded")
    assert len(passphrase_messages(h.tg, person.id)) == 2
    # And without any delay: both updates in one batch.
    h.tg.send_text(person, "/getcert")
    h.tg.send_text(person, "/getcert")
    h.tg.wait_for(lambda m: count_texts(h.tg, person.id, "iPhone steps") == 3, 30)
    h.tg.wait_for(lambda m: count_texts(h.tg, person.id, BUSY) == 2, 10)
    assert len(h.certs(person)) == 3


def test_double_pressed_phone_button_issues_one_certificate(h: Harness) -> None:
    person = h.person()
    question = ask_platform_question(h.tg, person)
    h.tg.inject_fault("sendDocument", "429", retry_after=1, chat_id=person.id)
    h.tg.press_button(person, question.message_id, "plat:ios:phone")
    wait_for_throttled_upload(h, person)
    h.tg.press_button(person, question.message_id, "plat:ios:phone")
    h.wait_done(person)
    wait_text(h.tg, person.id, BUSY)
    assert len(h.certs(person)) == 1
    assert_delivered_once(h, person)
