"""The fake Telegram server speaks enough Bot API for the real PTB, and fails like Telegram.

Why: every bot test trusts this fake; if it drifted from what PTB sends or expects, bot tests
would pass against a Telegram that does not exist.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fake_telegram import DEFAULT_GROUP_CHAT_ID, FakeTelegram

pytestmark = pytest.mark.timeout(60)
AnyApp = Application[Any, Any, Any, Any, Any, Any]


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def direct_bot(tg: FakeTelegram, token: str | None = None) -> Bot:
    return Bot(token or tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url)


@asynccontextmanager
async def running_app(
    tg: FakeTelegram, *handlers: BaseHandler[Any, Any, Any]
) -> AsyncIterator[AnyApp]:
    """A bare PTB Application polling the fake, as the bot does."""
    app = (ApplicationBuilder().token(tg.token).base_url(tg.base_url)
           .base_file_url(tg.base_file_url).build())
    for handler in handlers:
        app.add_handler(handler)
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
    await update.effective_message.reply_text(f"echo: {update.effective_message.text}",
                                              reply_markup=keyboard)


async def test_messages_arrive_and_replies_are_recorded(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice", username="alice")
    async with running_app(tg, MessageHandler(filters.TEXT, echo)):
        sent_id = tg.send_text(alice, "hello")
        reply = await tg.async_wait_for(lambda m: m.text == "echo: hello")
    assert reply.chat_id == alice.id
    assert reply.message_id > sent_id  # ids grow per chat, across both sides
    assert reply.buttons == [("Again", "again")]
    call = tg.calls_to("sendMessage")[0]
    assert call.params["chat_id"] == alice.id and call.status == 200


async def test_commands_with_bot_username_and_groups(tg: FakeTelegram) -> None:
    async def show_args(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"args={context.args}")

    admin = tg.user(1002, "Admin")
    async with running_app(tg, CommandHandler("approve", show_args)):
        tg.send_text(admin, "/approve@otcert_test_bot 42 alice")
        await tg.async_wait_for(lambda m: m.text == "args=['42', 'alice']", chat_id=admin.id)
        tg.send_text(admin, "/approve 7", chat_type="supergroup")
        in_group = await tg.async_wait_for(lambda m: m.text == "args=['7']")
        tg.send_text(admin, "/approve@some_other_bot 9", chat_type="supergroup")
        tg.send_text(admin, "/approve 8", chat_type="supergroup")
        await tg.async_wait_for(lambda m: m.text == "args=['8']")
    assert in_group.chat_id == DEFAULT_GROUP_CHAT_ID
    assert not [m for m in tg.sent_messages() if m.text == "args=['9']"]


async def test_document_round_trip_through_get_file(tg: FakeTelegram) -> None:
    async def take_file(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.document is not None
        data = bytes(await (await message.document.get_file()).download_as_bytearray())
        await message.reply_document(data, filename=f"back-{message.document.file_name}",
                                     caption=hashlib.sha256(data).hexdigest())

    content = bytes(range(256)) * 40
    bob = tg.user(1003, "Bob")
    async with running_app(tg, MessageHandler(filters.Document.ALL, take_file)):
        tg.send_document(bob, "ca.crt", content, caption="my CA")
        back = await tg.async_wait_for(lambda m: m.document is not None)
    assert back.document == content
    assert back.filename == "back-ca.crt"
    assert back.caption == hashlib.sha256(content).hexdigest()
    assert tg.calls_to("getFile")[0].status == 200


async def test_callback_answer_and_edit(tg: FakeTelegram) -> None:
    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer(f"got {query.data}")
        await query.edit_message_text(f"pressed {query.data}")

    carol = tg.user(1004, "Carol")
    async with running_app(tg, MessageHandler(filters.TEXT, echo),
                           CallbackQueryHandler(on_button)):
        tg.send_text(carol, "menu")
        menu = await tg.async_wait_for(lambda m: m.text == "echo: menu")
        query_id = tg.press_button(carol, menu.message_id, "forged:never-on-a-button")
        edited = await tg.async_wait_for(lambda m: bool(m.edits))
    assert edited.message_id == menu.message_id
    assert edited.text == "pressed forged:never-on-a-button"
    assert edited.buttons == []  # Telegram drops the keyboard when an edit omits it
    [answer] = tg.callback_answers
    assert (answer.callback_query_id, answer.text) == (query_id, "got forged:never-on-a-button")


async def test_long_polling_waits_instead_of_spinning(tg: FakeTelegram) -> None:
    async with running_app(tg):
        await tg.async_wait_for_call("getUpdates")
        before = len(tg.calls_to("getUpdates"))
        await asyncio.sleep(1.0)
        polls = len(tg.calls_to("getUpdates")) - before
    assert polls <= 4  # timeout=1: one or two polls per idle second, not hundreds


async def test_offset_confirms_updates_and_long_poll_wakes(tg: FakeTelegram) -> None:
    dave = tg.user(1005, "Dave")
    async with direct_bot(tg) as bot:
        first, second = tg.send_text(dave, "one"), tg.send_text(dave, "two")
        updates = await bot.get_updates(timeout=0)
        assert [u.message.message_id for u in updates if u.message] == [first, second]
        assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) != ()
        assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()
        assert await bot.get_updates(timeout=0) == ()  # confirmed ones never come back
        waiting = asyncio.create_task(bot.get_updates(timeout=20))
        await asyncio.sleep(0.2)
        third = await asyncio.to_thread(tg.send_text, dave, "three")
        woken = await asyncio.wait_for(waiting, 10)  # not the 20 s poll timeout
        assert [u.message.message_id for u in woken if u.message] == [third]


async def test_raw_updates_and_allowed_updates(tg: FakeTelegram) -> None:
    hostile = {"message": {"message_id": 1, "date": 0, "chat": {"id": 77, "type": "private"},
                           "text": "/start", "from": {"id": 77, "is_bot": False,
                                                       "first_name": "x" * 5000}}}
    async with direct_bot(tg) as bot:
        first = tg.send_raw_update(hostile)
        second = tg.send_raw_update({"edited_message": hostile["message"]})
        only_messages = await bot.get_updates(timeout=0, allowed_updates=["message"])
        assert [u.update_id for u in only_messages] == [first]
        everything = await bot.get_updates(timeout=0, allowed_updates=[])
        assert [u.update_id for u in everything] == [first, second]


async def test_no_update_is_handled_twice(tg: FakeTelegram) -> None:
    erin = tg.user(1006, "Erin")
    async with running_app(tg, MessageHandler(filters.TEXT, echo)):
        for n in range(3):
            tg.send_text(erin, f"m{n}")
        await tg.async_wait_for(lambda m: m.text == "echo: m2")
        tg.send_text(erin, "last")
        await tg.async_wait_for(lambda m: m.text == "echo: last")
    assert [m.text for m in tg.sent_messages(erin.id)] == [
        "echo: m0", "echo: m1", "echo: m2", "echo: last"]


async def test_wrong_token_is_refused(tg: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with direct_bot(tg, token="987654321:AAHwrongwrongwrongwrongwrongwrong0"):
            pass
    assert tg.calls[-1].status == 401


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.parametrize(("kind", "error"), [
    ("429", RetryAfter), ("500", NetworkError), ("502", NetworkError),
    ("drop", NetworkError), ("timeout", TimedOut), ("403", Forbidden),
])
async def test_faults_surface_as_ptb_exceptions(
    tg: FakeTelegram, kind: str, error: type[Exception]
) -> None:
    frank = tg.user(1007, "Frank")
    tg.inject_fault("sendMessage", kind, retry_after=7, chat_id=frank.id)
    async with direct_bot(tg) as bot:
        with pytest.raises(error) as caught:
            await bot.send_message(frank.id, "x", read_timeout=0.5)
        await bot.send_message(frank.id, "after the fault")  # times=1: the next call passes
    if kind == "429":
        assert isinstance(caught.value, RetryAfter)
        # an int today (deprecated), a timedelta under PTB_TIMEDELTA
        assert caught.value.retry_after in (7, dtm.timedelta(seconds=7))
    faulted = tg.calls_to("sendMessage")[0]
    assert faulted.fault == kind and faulted.params["text"] == "x"
    assert [m.text for m in tg.sent_messages()] == ["after the fault"]


async def test_fault_for_one_chat_and_blocking(tg: FakeTelegram) -> None:
    gina, hugo = tg.user(1008, "Gina"), tg.user(1009, "Hugo")
    tg.inject_fault("sendMessage", "500", times=2, chat_id=hugo.id)
    tg.block(gina.id)
    async with direct_bot(tg) as bot:
        with pytest.raises(Forbidden, match="blocked by the user"):
            await bot.send_message(gina.id, "hi")
        for _ in range(2):
            with pytest.raises(NetworkError):
                await bot.send_message(hugo.id, "hi")
        await bot.send_message(hugo.id, "third time")
        tg.unblock(gina.id)
        await bot.send_message(gina.id, "welcome back")
    assert [c.fault for c in tg.calls_to("sendMessage")] == [
        "blocked", "500", "500", None, None]


async def test_telegram_errors_bots_trip_over(tg: FakeTelegram) -> None:
    ivan = tg.user(1010, "Ivan")
    async with direct_bot(tg) as bot:
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(5555, "never spoke to the bot")
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(ivan.id, "/approve <telegram_id>", parse_mode="HTML")
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(ivan.id, "x", reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("long", callback_data="x" * 65)]]))
        message = await bot.send_message(ivan.id, "<b>ok</b> &lt;3", parse_mode="HTML")
        assert message.text == "ok <3"
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("ok <3", ivan.id, message.message_id)
        assert await bot.delete_message(ivan.id, message.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await bot.delete_message(ivan.id, message.message_id)
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("sendTelepathy")
    assert tg.deleted == {(ivan.id, message.message_id)}
    assert tg.sent_messages(ivan.id)[-1].deleted
    assert tg.unknown_methods == ["sendTelepathy"]


async def test_commands_chat_and_actions(tg: FakeTelegram) -> None:
    judy = tg.user(1011, "Judy", username="judy")
    async with direct_bot(tg) as bot:
        assert await bot.set_my_commands([BotCommand("start", "Say hello")])
        assert [c.command for c in await bot.get_my_commands()] == ["start"]
        assert await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()
        chat = await bot.get_chat(judy.id)
        assert (chat.id, chat.username) == (judy.id, "judy")
        assert await bot.send_chat_action(judy.id, "upload_document")
        assert await bot.log_out() and await bot.close()


def test_wait_for_timeout_lists_what_was_sent(tg: FakeTelegram) -> None:
    kim = tg.user(1012, "Kim")
    with pytest.raises(AssertionError, match="no sent message matched"):
        tg.wait_for(lambda m: True, timeout=0.1)

    async def send() -> None:
        async with direct_bot(tg) as bot:
            await bot.send_message(kim.id, "something else")

    asyncio.run(send())
    with pytest.raises(AssertionError, match="something else"):
        tg.wait_for(lambda m: m.text == "the thing", timeout=0.1)
    assert tg.wait_for_call("sendMessage").params["text"] == "something else"
    tg.reset_calls()
    assert tg.calls == [] and tg.sent_messages() == []
