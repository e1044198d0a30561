"""Hostile input at the real bot (`otcert run` against the fake Bot API), property-based.

One bot serves the whole module (start-up costs seconds); hypothesis feeds it many examples.
Every property ends the same way: the process is alive, its log shows no bug, every private
message got an answer (every button press an answerCallbackQuery), and the rows that decide
who may do what (people, certificates, pins) changed only where the sender was allowed to.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki import CertificateAuthority
from pki.bundle import pin_der
from pki.names import validate_username
from tests.botproc import ADMIN_ID
from tests.fake_telegram import FakeTelegram, FakeUser
from tests.hostile_support import (
    World,
    assert_healthy,
    fresh_group_id,
    fresh_person,
    people_by_id,
    running_world,
    snapshot,
    text_of,
    wait_answer,
    wait_text,
)

pytestmark = pytest.mark.slow  # starts a bot process

EXAMPLES = settings(
    max_examples=100, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COMMANDS = ["/start", "/help", "/request", "/getcert", "/approve", "/deny", "/revoke", "/repin",
            "/pending", "/users", "/frobnicate", "/start@otcert_test_bot",
            "/getcert@otcert_test_bot", "/approve@otcert_test_bot", "/getcert@other_bot"]
NASTY = ["\u202e", "\u202egnp.exe", "\x00", "a\x00b", "\u200b", "\ufeff", "🙂" * 30, "<b>",
         "</code>", "&amp;", "%s%n", "{ref}", "{}", "../etc/passwd", "a/b", "+", "#", "$SYS",
         "\n\n", "x" * 10_000, str(10**30), str(-(10**30)), "-5", "0", "²", "١٢٣", "0x10",
         "1e5", " 1000 ", "otcert-admin", "ALICE", "alice"]
ANY_COMMAND = r"/[A-Za-z0-9_]{1,32}"  # what Telegram marks as a bot_command
hostile_arg = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.integers(-(10**30), 10**30).map(str),
    st.text(st.characters(codec="utf-8"), min_size=300, max_size=3000),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("hostile"), ca) as w:
        yield w


def known_args(world: World) -> st.SearchStrategy[str]:
    """Arguments aimed at people who exist: the ones a forger would try."""
    ids = [world.approved.id, world.pending.id, world.denied.id, ADMIN_ID]
    return st.sampled_from([str(i) for i in ids] + ["alice", "bob", "mallory"])


def send_and_expect_reply(tg: FakeTelegram, person: FakeUser, text: str, **kwargs: Any) -> None:
    chat_id = kwargs.get("chat_id") or person.id
    before = len(tg.sent_messages(chat_id))
    tg.send_text(person, text, **kwargs)
    tg.wait_for(lambda m: len(tg.sent_messages(chat_id)) > before, 15, chat_id=chat_id)


def assert_only_own_requests(before: dict[str, Any], after: dict[str, Any],
                             senders: set[int]) -> None:
    """Strangers may only have created their own pending request; nothing else moved."""
    assert after["certificates"] == before["certificates"]
    assert after["pins"] == before["pins"]
    old, new = people_by_id(before), people_by_id(after)
    for telegram_id, row in old.items():
        assert new[telegram_id] == row, f"person {telegram_id} changed"
    for telegram_id in new.keys() - old.keys():
        assert telegram_id in senders
        status, mqtt_username = new[telegram_id][3], new[telegram_id][4]
        assert (status, mqtt_username) == ("pending", None), new[telegram_id]


def test_random_commands_from_strangers_change_nothing(world: World) -> None:
    tg, bot = world.tg, world.bot
    before = snapshot(bot)
    senders: set[int] = set()

    @EXAMPLES
    @given(command=st.sampled_from(COMMANDS) | st.from_regex(ANY_COMMAND, fullmatch=True),
           args=st.lists(hostile_arg | known_args(world), max_size=4),
           in_group=st.booleans(), name=hostile_arg)
    def one_message(command: str, args: list[str], in_group: bool, name: str) -> None:
        person = fresh_person(tg, name[:200] or "x")
        senders.add(person.id)
        text = " ".join([command, *args])
        if in_group:
            group = fresh_group_id()
            send_and_expect_reply(tg, person, text, chat_type="group", chat_id=group)
            assert not any(m.document for m in tg.sent_messages(group))
        else:
            send_and_expect_reply(tg, person, text)

    one_message()
    assert_only_own_requests(before, snapshot(bot), senders)
    assert_healthy(bot)


def callback_data(world: World) -> st.SearchStrategy[str]:
    ids = known_args(world) | hostile_arg
    names = hostile_arg | st.sampled_from(["alice", "bob", "mallory", "otcert-admin", "a" * 80])
    return st.one_of(
        st.text(max_size=100),
        st.builds("req:ok:{}:{}".format, ids, names),
        st.builds("req:{}:{}".format, st.sampled_from(["approve", "deny", "cancel", "ok"]), ids),
        st.builds("plat:{}:{}".format, st.sampled_from(["ios", "android", "IOS", "", "x"]), names),
        st.sampled_from(["plat:ios:phone:extra", "plat:ios", "req:", ":", "", "x" * 200,
                         "req:ok:" + "9" * 80 + ":alice", "plat:ios:" + "p" * 100]),
    )


def test_forged_buttons_from_strangers_are_answered_and_change_nothing(world: World) -> None:
    tg, bot = world.tg, world.bot
    note = wait_text(tg, ADMIN_ID, "New access request")  # an admin's copy to forge presses on
    before = snapshot(bot)

    @EXAMPLES
    @given(data=callback_data(world), on_admin_copy=st.booleans(),
           message_id=st.integers(1, 10**6))
    def one_press(data: str, on_admin_copy: bool, message_id: int) -> None:
        person = fresh_person(tg)
        if on_admin_copy:
            query = tg.press_button(person, note.message_id, data, chat_id=ADMIN_ID)
        else:
            query = tg.press_button(person, message_id, data)
        wait_answer(tg, query)

    one_press()
    assert snapshot(bot) == before
    assert not [m for m in tg.sent_messages() if m.filename and m.filename.endswith(".otrp")
                and m.chat_id != world.approved.id]
    assert_healthy(bot)


def test_group_chats_never_get_certificates(world: World) -> None:
    tg, bot = world.tg, world.bot
    alice = world.approved
    before = snapshot(bot)
    for chat_type in ("group", "supergroup"):
        for text in ("/getcert", "/getcert ipad", "/getcert@otcert_test_bot", "/request"):
            group = fresh_group_id()
            send_and_expect_reply(tg, alice, text, chat_type=chat_type, chat_id=group)
            assert "private chat" in text_of(tg.sent_messages(group)[-1])
        group = fresh_group_id()
        tg.send_text(alice, "/help", chat_type=chat_type, chat_id=group)  # registers the chat
        query = tg.press_button(alice, 1, "plat:android:phone", chat_id=group)
        wait_answer(tg, query)
    assert not any(m.document for m in tg.sent_messages() if m.chat_id < 0)
    assert snapshot(bot) == before
    assert_healthy(bot)


# --- malformed updates -------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)


def valid_message(person: FakeUser) -> dict[str, Any]:
    chat = {"id": person.id, "type": "private", "first_name": person.first_name}
    return {"message_id": 1, "date": 1_700_000_000, "chat": chat, "text": "/start",
            "from": person.to_api(),
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}


@st.composite
def broken_updates(draw: st.DrawFn, person: FakeUser) -> dict[str, Any]:
    """A real-looking update with a field removed or replaced, or pure garbage."""
    if draw(st.booleans()):
        return {draw(st.sampled_from(["message", "callback_query"])): draw(json_values)}
    message = copy.deepcopy(valid_message(person))
    path = draw(st.sampled_from([("message_id",), ("date",), ("chat",), ("chat", "id"),
                                 ("chat", "type"), ("from",), ("from", "id"), ("text",),
                                 ("entities",), ("from", "is_bot"), ("from", "first_name")]))
    target = message
    for key in path[:-1]:
        target = target[key]
    if draw(st.booleans()):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(json_values)
    return {"message": message}


def test_malformed_updates_do_not_deafen_the_bot(world: World) -> None:
    """PTB parses a getUpdates batch at once: one unreadable update used to block them all."""
    tg, bot = world.tg, world.bot

    @EXAMPLES
    @given(data=st.data())
    def one_batch(data: st.DataObject) -> None:
        garbage = fresh_person(tg)
        for update in data.draw(st.lists(broken_updates(garbage), min_size=1, max_size=3)):
            json.dumps(update)  # the fake sends it as JSON
            tg.send_raw_update(update)
        send_and_expect_reply(tg, fresh_person(tg), "/start")

    one_batch()
    assert_healthy(bot)


def test_a_button_press_telegram_will_not_let_us_answer_still_does_its_work(world: World) -> None:
    """Telegram refuses answers to presses older than ~15 s (a backlog after a restart) or
    with a forged id; the phone choice must still lead to the certificate."""
    tg, bot = world.tg, world.bot
    person = fresh_person(tg, "Late")
    tg.send_text(world.admin, f"/approve {person.id} late")
    wait_text(tg, person.id, "approved")
    chat = {"id": person.id, "type": "private", "first_name": person.first_name}
    tg.send_raw_update({"callback_query": {
        "id": "404404", "from": person.to_api(), "chat_instance": "1", "data": "plat:ios:phone",
        "message": {"message_id": 1, "date": 0, "chat": chat}}})
    wait_text(tg, person.id, "Passphrase for")
    assert_healthy(bot)


# --- /repin uploads ----------------------------------------------------------------------
def make_certificate(*, ca: bool, days: tuple[int, int], issuer: CertificateAuthority | None = None,
                     name: str = "Uploaded") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    signer = issuer.private_key if issuer else key
    return builder.sign(signer, hashes.SHA256()), key  # type: ignore[arg-type]


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def upload_and_repin(tg: FakeTelegram, person: FakeUser, content: bytes,
                     filename: str = "ca.crt") -> str:
    """Send a file, reply /repin to it; returns the bot's answer to /repin."""
    before = len(tg.sent_messages(person.id))
    doc = tg.send_document(person, filename, content)
    tg.wait_for(lambda m: len(tg.sent_messages(person.id)) > before, 15, chat_id=person.id)
    before = len(tg.sent_messages(person.id))
    tg.send_text(person, "/repin", reply_to_message_id=doc)
    reply = tg.wait_for(lambda m: len(tg.sent_messages(person.id)) > before, 15,
                        chat_id=person.id)
    del reply
    return text_of(tg.sent_messages(person.id)[before])


def test_repin_uploads_only_a_valid_ca_from_an_admin_changes_the_pin(
    world: World, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    tg, bot, admin = world.tg, world.bot, world.admin
    pins_before = snapshot(bot)["pins"]
    key_pem = other_ca.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    expired, _ = make_certificate(ca=True, days=(-30, -1))
    leaf, _ = make_certificate(ca=False, days=(0, 30), issuer=ca, name="leaf")
    intermediate, _ = make_certificate(ca=True, days=(0, 30), issuer=ca, name="intermediate")
    refused = {
        "private key": key_pem,
        "key and certificate": pem(other_ca.certificate) + key_pem,
        "expired": pem(expired),
        "non-CA": pem(leaf),
        "chain": pem(intermediate) + pem(ca.certificate),
        "20 MB": b"\x30\x82" + b"A" * (20 * 1024 * 1024 - 2),
        "empty": b"",
    }
    answers = {case: upload_and_repin(tg, admin, content) for case, content in refused.items()}
    for case, answer in answers.items():
        assert "Pinned" not in answer and "Sending the pin" not in answer, (case, answer)
    assert "private key" in answers["private key"]
    assert "expired" in answers["expired"]
    assert "not a CA" in answers["non-CA"]
    assert "too large" in answers["20 MB"]

    @EXAMPLES
    @given(content=st.binary(max_size=3000) | st.builds(
        lambda body: b"-----BEGIN CERTIFICATE-----\n" + body + b"\n-----END CERTIFICATE-----\n",
        st.binary(max_size=500)))
    def random_upload(content: bytes) -> None:
        answer = upload_and_repin(tg, admin, content, "random.bin")
        assert "Pinned" not in answer, answer

    random_upload()
    assert snapshot(bot)["pins"] == pins_before

    stranger = fresh_person(tg)
    assert "only admins" in upload_and_repin(tg, stranger, pem(other_ca.certificate))
    assert snapshot(bot)["pins"] == pins_before

    # One admin cannot send a foreign root (issue 14); the bot's own CA is pinned at once.
    answer = upload_and_repin(tg, admin, pem(other_ca.certificate))
    assert "not sent" in answer and "Pinned" not in answer, answer
    assert snapshot(bot)["pins"] == pins_before
    answer = upload_and_repin(tg, admin, pem(ca.certificate))
    assert "Pinned" in answer, answer
    pins = snapshot(bot)["pins"]
    assert pin_der(ca.certificate) in {row[1] for row in pins}
    key_body = b"".join(key_pem.splitlines()[1:-1]).decode()
    assert key_body[:40] not in bot.log_text
    assert_healthy(bot)


def test_admin_hostile_arguments_always_get_an_answer(world: World) -> None:
    """Admins may change things; garbage from them must still never crash the bot."""
    tg, bot, admin = world.tg, world.bot, world.admin
    strangers = [fresh_person(tg) for _ in range(3)]
    # Digits Python's str.isdigit() accepts but int() refuses, or reads as other numbers.
    for command in ("/deny ²", "/revoke ²", "/approve ² bob", "/approve ١٢٣ bob",
                    "/deny ١٢٣", "/revoke ١٢٣"):
        send_and_expect_reply(tg, admin, command)
        assert "Something went wrong" not in text_of(tg.sent_messages(ADMIN_ID)[-1]), command
    target = st.sampled_from([str(p.id) for p in strangers]) | hostile_arg

    @EXAMPLES
    @given(command=st.sampled_from(["/approve", "/deny", "/revoke", "/pending", "/users",
                                    "/getcert", "/repin", "/start"]),
           args=st.lists(target | hostile_arg, max_size=3), press=st.booleans(),
           data=callback_data(world))
    def one_action(command: str, args: list[str], press: bool, data: str) -> None:
        if press:
            wait_answer(tg, tg.press_button(admin, 10**6, data))
        else:
            send_and_expect_reply(tg, admin, " ".join([command, *args]))

    one_action()
    assert_healthy(bot)
    for row in snapshot(bot)["people"]:  # whatever admins typed, only valid names got stored
        assert row[4] is None or validate_username(row[4]) == row[4], row
