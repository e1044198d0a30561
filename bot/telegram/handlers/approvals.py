"""The admins' answer to an access request: /approve, /deny and the buttons on a request.

Authority comes from who sent the update, never from its data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update, User
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.core import doors
from bot.core.models import Person, PersonStatus
from bot.telegram import render
from bot.telegram.callbacks import RequestAnswer
from bot.telegram.handlers.common import (
    PEOPLE_ERRORS,
    Context,
    admin_button,
    answer_query,
    answer_user_error,
    args_of,
    guard_args,
    parse_telegram_id,
    reply,
    require_admin,
    runtime,
)
from bot.telegram.handlers.delivery import with_retry
from bot.telegram.handlers.language import language_of
from bot.texts import chat, speaking, t

log = logging.getLogger(__name__)

ALERT_MAX = 190  # Telegram cuts button alerts at 200 characters


async def tell_person(context: Context, person: Person, text: str | Callable[[], str]) -> None:
    """A decision about someone reaches them (``text`` built in their language when it is a
    callable); a blocked bot is logged, not an error. People added by ``otcert issue --new``
    have no Telegram: nothing is sent to them."""
    if not doors.has_telegram(person.telegram_id):
        return
    if callable(text):
        with speaking(await language_of(context, person.telegram_id)):
            text = text()
    try:
        await with_retry(
            lambda: context.bot.send_message(person.telegram_id, text, parse_mode=ParseMode.HTML),
            "tell person",
        )
    except TelegramError as exc:
        log.info("could not tell person %s: %s", person.telegram_id, type(exc).__name__)


async def admin_command(
    update: Update, context: Context, usage: str, *, least: int, most: int | None = None
) -> tuple[User, list[str]] | None:
    """The common start of an admin command: who, in a private chat, with sane arguments."""
    if not await require_admin(update, context) or not await guard_args(update, context):
        return None
    args = args_of(context)
    if len(args) < least or (most is not None and len(args) > most):
        await reply(update, t(usage))
        return None
    user = update.effective_user
    assert user is not None
    return user, args


async def _mark_decided(context: Context, person: Person, text: Callable[[], str]) -> None:
    """Every admin's copy of the request shows who decided, in that admin's language."""
    notices = await runtime(context).service.take_request_notices(person.telegram_id)
    for chat_id, message_id in notices:
        with speaking(await language_of(context, chat_id)):
            said = text()
        try:
            await context.bot.edit_message_text(
                said, chat_id=chat_id, message_id=message_id, parse_mode=ParseMode.HTML
            )
        except TelegramError:
            log.info("could not update an admin's copy of a request")


async def _approve(
    context: Context, admin_id: int, admin_name: str, tid: int, name: str,
    expected: PersonStatus | None = None,
) -> str:
    """Approve, tell the person and the other admins; the answer for the deciding admin."""
    person = await runtime(context).service.approve(admin_id, tid, name, expected=expected)
    username = render.esc(person.mqtt_username)
    await tell_person(context, person, lambda: t(chat.APPROVED_PERSON, username=username))
    await _mark_decided(
        context, person,
        lambda: t(chat.APPROVED_BY, admin=admin_name, who=render.who(person), username=username),
    )
    return t(chat.APPROVED, who=render.who(person), username=username)


async def _deny(
    context: Context, admin_id: int, admin_name: str, tid: int, reason: str | None
) -> str:
    """Deny, tell the person and the other admins; the answer for the deciding admin."""
    person = await runtime(context).service.deny(admin_id, tid, reason)
    await tell_person(
        context, person, lambda: t(chat.DENIED_PERSON, reason=render.reason(person.reason))
    )
    await _mark_decided(
        context, person, lambda: t(chat.DENIED_BY, admin=admin_name, who=render.who(person))
    )
    return t(chat.DENIED, who=render.who(person))


async def approve(update: Update, context: Context) -> None:
    """/approve <telegram_id> <mqtt_username>."""
    command = await admin_command(update, context, chat.USAGE_APPROVE, least=2, most=2)
    if command is None:
        return
    user, args = command
    try:
        tid = parse_telegram_id(args[0])
        done = await _approve(context, user.id, render.esc(user.full_name), tid, args[1])
        await reply(update, done)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)


async def deny(update: Update, context: Context) -> None:
    """/deny <telegram_id> [reason]."""
    command = await admin_command(update, context, chat.USAGE_DENY, least=1)
    if command is None:
        return
    user, args = command
    try:
        tid = parse_telegram_id(args[0])
        reason = " ".join(args[1:]) or None
        await reply(update, await _deny(context, user.id, render.esc(user.full_name), tid, reason))
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)


async def request_button(update: Update, context: Context) -> None:
    """A :class:`RequestAnswer` pressed on an admin's copy of a pending request."""
    pressed = await admin_button(update, context, RequestAnswer)
    if pressed is None:
        return
    query, admin, button = pressed
    rt = runtime(context)
    admin_name, tid = render.esc(admin.full_name), button.telegram_id
    try:
        person = await rt.service.status(tid)
        if person is None or person.status != PersonStatus.PENDING:
            # Buttons act on a pending request only; a later decision needs a command.
            state = render.status_word(person.status) if person else t(chat.REQUEST_STATE_UNKNOWN)
            await answer_query(query, t(chat.REQUEST_DECIDED, status=state), show_alert=True)
            return
        if button.action == "approve":
            await answer_query(query)
            await _offer_username(context, query.message, person)
            return
        if button.action == "cancel":
            await answer_query(query, t(chat.CANCELLED))
            return
        if button.action == "ok" and button.username is not None:
            result = await _approve(
                context, admin.id, admin_name, tid, button.username, PersonStatus.PENDING
            )
        else:
            result = await _deny(context, admin.id, admin_name, tid, None)
    except PEOPLE_ERRORS as exc:
        await answer_query(query, render.error_text(exc)[:ALERT_MAX], show_alert=True)
        return
    await answer_query(query, t(chat.DONE))
    try:
        await query.edit_message_text(result, parse_mode=ParseMode.HTML)
    except TelegramError:
        log.info("could not edit the request message")


async def _offer_username(context: Context, message: object, person: Person) -> None:
    """Turn the request into a one-tap approval under a suggested username, if one fits."""
    if not isinstance(message, Message):
        return
    tid = person.telegram_id
    name = runtime(context).service.suggest_username(person)
    if name is None:
        await message.edit_text(
            t(chat.ASK_APPROVE_NO_NAME, who=render.who(person), tid=tid),
            parse_mode=ParseMode.HTML,
        )
        return
    keyboard = InlineKeyboardMarkup(
        [[
            InlineKeyboardButton(
                t(chat.BUTTON_APPROVE_AS, username=name),
                callback_data=RequestAnswer("ok", tid, name).data(),
            ),
            InlineKeyboardButton(
                t(chat.BUTTON_DENY), callback_data=RequestAnswer("deny", tid).data()
            ),
        ]]
    )
    await message.edit_text(
        t(chat.ASK_APPROVE_NAME, who=render.who(person), username=render.esc(name), tid=tid),
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard,
    )
