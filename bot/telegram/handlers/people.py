"""Handlers everyone may use: /start, /help, /request, /getcert and the phone buttons."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.core.models import Person, PersonStatus
from bot.telegram import render
from bot.telegram.callbacks import PlatformChoice, RenewPlatformChoice, RequestAnswer, parse
from bot.telegram.handlers.common import (
    PEOPLE_ERRORS,
    Context,
    answer_query,
    answer_user_error,
    is_private,
    one_optional_arg,
    reply,
    runtime,
)
from bot.telegram.handlers.delivery import issue_and_deliver, with_retry
from bot.telegram.handlers.language import language_of
from bot.texts import chat, languages, speaking, t
from bot.texts import lifecycle as lifecycle_texts

log = logging.getLogger(__name__)


async def start(update: Update, context: Context) -> None:
    """What the bot does and where the sender stands."""
    user = update.effective_user
    if user is None:
        return
    if not is_private(update):  # a person's status (and username) is nobody else's business
        await reply(update, t(chat.PRIVATE_ONLY))
        return
    person = await runtime(context).service.status(user.id)
    status = render.status_line(person)
    await reply(update, t(chat.WELCOME_AND_STATUS, welcome=t(chat.WELCOME), status=status))


def _help(update: Update, context: Context) -> str:
    """The commands the sender may use (admins see theirs too)."""
    user = update.effective_user
    text = t(chat.HELP_EVERYONE) + t(lifecycle_texts.HELP_LIFECYCLE)
    text += "\n" + t(languages.HELP_LANGUAGE)
    if user is not None and runtime(context).service.is_admin(user.id):
        text += t(chat.HELP_ADMIN) + t(lifecycle_texts.HELP_ADMIN_LIFECYCLE)
    return text


async def help_command(update: Update, context: Context) -> None:
    """The command list; also the answer to any other private message."""
    await reply(update, _help(update, context))


async def unknown_command(update: Update, context: Context) -> None:
    """A command the bot does not know: say so, then list the ones it does."""
    await reply(update, t(chat.UNKNOWN_COMMAND) + _help(update, context))


async def request_access(update: Update, context: Context) -> None:
    """/request: ask the admins for access."""
    user = update.effective_user
    if user is None:
        return
    if not is_private(update):
        await reply(update, t(chat.PRIVATE_ONLY))
        return
    rt = runtime(context)
    try:
        outcome = await rt.service.request_access(user.id, user.full_name, user.username)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    if not outcome.notify_admins:
        approved = outcome.person.status == PersonStatus.APPROVED
        await reply(update, t(chat.REQUEST_APPROVED_ALREADY if approved else chat.REQUEST_ALREADY))
        return
    await reply(update, t(chat.REQUEST_SENT))
    await _notify_admins(context, outcome.person)


async def _notify_admins(context: Context, person: Person) -> None:
    """Every admin gets the request with Approve/Deny; the copies are remembered so that the
    first decision can be shown on all of them."""
    rt = runtime(context)
    tid = person.telegram_id
    sent: list[tuple[int, int]] = []
    for admin_id in sorted(rt.service.policy.admin_ids):
        with speaking(await language_of(context, admin_id)):  # each admin reads their own
            keyboard = InlineKeyboardMarkup(
                [[
                    InlineKeyboardButton(
                        t(chat.BUTTON_APPROVE), callback_data=RequestAnswer("approve", tid).data()
                    ),
                    InlineKeyboardButton(
                        t(chat.BUTTON_DENY), callback_data=RequestAnswer("deny", tid).data()
                    ),
                ]]
            )
            text = t(chat.ADMIN_NEW_REQUEST, who=render.who(person))
        try:
            message = await with_retry(
                lambda admin_id=admin_id, text=text, keyboard=keyboard: (  # type: ignore[misc]
                    context.bot.send_message(
                        admin_id, text, parse_mode=ParseMode.HTML, reply_markup=keyboard
                    )
                ),
                "notify admin",
            )
            sent.append((message.chat_id, message.message_id))
        except TelegramError as exc:
            log.warning("could not notify admin %s: %s", admin_id, type(exc).__name__)
    await rt.service.remember_request_notices(tid, sent)


async def getcert(update: Update, context: Context) -> None:
    """/getcert [device]: issue and deliver a certificate."""
    user = update.effective_user
    where = update.effective_chat
    if user is None or where is None:
        return
    ok, device = await one_optional_arg(update, context, chat.USAGE_GETCERT)
    if ok:
        await issue_and_deliver(context, user.id, where.id, device)


async def platform_button(update: Update, context: Context) -> None:
    """A :class:`PlatformChoice` (or, during a renewal, :class:`RenewPlatformChoice`) pressed:
    the presser picks their own phone, nobody else's."""
    query = update.callback_query
    if query is None:
        return
    user = query.from_user
    choice = parse(query.data)
    if not isinstance(choice, PlatformChoice | RenewPlatformChoice):
        await answer_query(query, t(chat.BUTTON_STALE))
        return
    if not is_private(update):
        await answer_query(query, t(chat.PRIVATE_ONLY), show_alert=True)
        return
    await answer_query(query)
    rt = runtime(context)
    try:
        await rt.service.set_platform(user.id, choice.platform)
    except PEOPLE_ERRORS as exc:
        await context.bot.send_message(user.id, render.error_text(exc))
        return
    answered = t(
        chat.PLATFORM_CHOSEN, question=t(chat.ASK_PLATFORM), phone=render.phone(choice.platform)
    )
    try:
        await query.edit_message_text(answered)
    except TelegramError:
        log.info("could not edit the platform question")
    if isinstance(choice, RenewPlatformChoice):
        await issue_and_deliver(context, user.id, user.id, None, renews=choice.serial)
    else:
        await issue_and_deliver(context, user.id, user.id, choice.device)
