"""The reader's language: chosen per update before any other handler, picked with /language,
looked up for messages that go to someone else (admins, the person an admin decided about).

Every ``t()`` without a language in a handler speaks the language set here for the update
(a context variable, so concurrent updates do not mix); text for another person is built
inside ``with speaking(await language_of(context, their_id))``.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import TelegramError

from bot.core.languages import Languages
from bot.core.service import Service
from bot.telegram import render
from bot.telegram.callbacks import LanguageChoice, parse
from bot.telegram.handlers.common import Context, answer_query, args_of, reply
from bot.texts import (
    LANGUAGE_NAMES,
    SHIPPED,
    default_language,
    reader_language,
    set_reader_language,
    speaking,
    t,
)
from bot.texts import languages as texts

log = logging.getLogger(__name__)

KEY = "languages"
MENU = "command_menu"


def languages(context: Context) -> Languages:
    found = context.bot_data[KEY]
    assert isinstance(found, Languages)
    return found


async def language_of(context: Context, telegram_id: int) -> str:
    """What to write to ``telegram_id`` in when they are not the one being answered."""
    return await languages(context).of(telegram_id)


async def adopt_language(update: Update, context: Context) -> None:
    """Runs first for every update (group -3): the sender's language for all that follows."""
    user = update.effective_user
    if user is None or user.is_bot:
        set_reader_language(None)
        return
    set_reader_language(await languages(context).seen(user.id, user.language_code))


def keyboard() -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(name, callback_data=LanguageChoice(code).data())
        for code, name in LANGUAGE_NAMES.items()
    ]
    return InlineKeyboardMarkup([buttons[i : i + 3] for i in range(0, len(buttons), 3)])


async def language_command(update: Update, context: Context) -> None:
    """/language [code]: buttons in each language's own name, or switch at once."""
    user = update.effective_user
    if user is None:
        return
    args = args_of(context)
    if args:
        code = args[0].lower()
        if code in SHIPPED and len(args) == 1:
            await _switch(context, user.id, update.effective_chat.id if update.effective_chat
                          else user.id, code)
            await reply(update, t(texts.LANGUAGE_SET))
            return
        await reply(update, t(texts.LANGUAGE_UNKNOWN, value=render.esc(args[0][:16])))
    current = LANGUAGE_NAMES[reader_language()]
    await reply(update, t(texts.LANGUAGE_ASK, language=current), reply_markup=keyboard())


async def language_button(update: Update, context: Context) -> None:
    """A :class:`LanguageChoice` pressed: the presser's own language, nobody else's."""
    query = update.callback_query
    if query is None:
        return
    choice = parse(query.data)
    if not isinstance(choice, LanguageChoice):
        await answer_query(query, t(texts.LANGUAGE_UNKNOWN, value="?"))
        return
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    await _switch(context, query.from_user.id, chat_id, choice.language)
    done = t(texts.LANGUAGE_SET)
    await answer_query(query, done)
    try:
        await query.edit_message_text(done)
    except TelegramError:
        log.info("could not edit the language question")


async def _switch(context: Context, telegram_id: int, chat_id: int, language: str) -> None:
    await languages(context).choose(telegram_id, language)
    set_reader_language(language)
    if chat_id == telegram_id:  # a private chat: its command menu follows the choice
        try:
            await context.bot.set_my_commands(
                commands(context.bot_data[MENU], language), scope=BotCommandScopeChat(chat_id)
            )
        except TelegramError as exc:
            log.info("could not set the chat's command menu: %s", type(exc).__name__)


def commands(menu: list[tuple[str, str]], language: str) -> list[BotCommand]:
    """The menu in ``language``: the command names never change, only their descriptions."""
    with speaking(language):
        return [BotCommand(name, t(description)) for name, description in menu]


async def register_commands(bot: Bot, menu: list[tuple[str, str]]) -> None:
    """The command menu in every shipped language (Telegram picks it by the client's
    language_code), and in the default language for everyone else."""
    await bot.set_my_commands(commands(menu, default_language()))
    for code in sorted(SHIPPED):
        await bot.set_my_commands(commands(menu, code), language_code=code)


def install(bot_data: dict[Any, Any], service: Service, menu: list[tuple[str, str]]) -> None:
    """Put the language lookup (and the menu, for /language) where the handlers find it."""
    bot_data[KEY] = service.languages
    bot_data[MENU] = menu
