"""Handlers everyone may use: /start, /help, /request, /getcert and the phone buttons."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.telegram import texts
from bot.telegram.handlers.common import (
    PEOPLE_ERRORS,
    Context,
    answer_query,
    answer_user_error,
    args_of,
    guard_args,
    is_private,
    reply,
    runtime,
)
from bot.telegram.handlers.delivery import issue_and_deliver, with_retry
from storage import PersonStatus, Platform

log = logging.getLogger(__name__)


async def start(update: Update, context: Context) -> None:
    user = update.effective_user
    if user is None:
        return
    if not is_private(update):  # a person's status (and username) is nobody else's business
        await reply(update, texts.PRIVATE_ONLY)
        return
    person = await runtime(context).service.status(user.id)
    await reply(update, f"{texts.WELCOME}\n\n{texts.status_line(person)}")


async def help_command(update: Update, context: Context) -> None:
    user = update.effective_user
    text = texts.HELP_EVERYONE
    if user is not None and runtime(context).service.is_admin(user.id):
        text += texts.HELP_ADMIN
    await reply(update, text)


async def unknown_command(update: Update, context: Context) -> None:
    user = update.effective_user
    text = texts.UNKNOWN_COMMAND + texts.HELP_EVERYONE
    if user is not None and runtime(context).service.is_admin(user.id):
        text += texts.HELP_ADMIN
    await reply(update, text)


async def request_access(update: Update, context: Context) -> None:
    user = update.effective_user
    if user is None:
        return
    if not is_private(update):
        await reply(update, texts.PRIVATE_ONLY)
        return
    rt = runtime(context)
    try:
        outcome = await rt.service.request_access(user.id, user.full_name, user.username)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    if not outcome.notify_admins:
        approved = outcome.person.status == PersonStatus.APPROVED
        await reply(update, texts.REQUEST_APPROVED_ALREADY if approved else texts.REQUEST_ALREADY)
        return
    await reply(update, texts.REQUEST_SENT)
    person = outcome.person
    keyboard = InlineKeyboardMarkup(
        [[
            InlineKeyboardButton("✅ Approve", callback_data=f"req:approve:{person.telegram_id}"),
            InlineKeyboardButton("❌ Deny", callback_data=f"req:deny:{person.telegram_id}"),
        ]]
    )
    sent: list[tuple[int, int]] = []
    for admin_id in sorted(rt.service.policy.admin_ids):
        try:
            message = await with_retry(
                lambda admin_id=admin_id: context.bot.send_message(  # type: ignore[misc]
                    admin_id,
                    texts.ADMIN_NEW_REQUEST.format(who=texts.who(person)),
                    parse_mode=ParseMode.HTML,
                    reply_markup=keyboard,
                ),
                "notify admin",
            )
            sent.append((message.chat_id, message.message_id))
        except TelegramError as exc:
            log.warning("could not notify admin %s: %s", admin_id, type(exc).__name__)
    await rt.service.remember_request_notices(person.telegram_id, sent)


async def getcert(update: Update, context: Context) -> None:
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None:
        return
    if not is_private(update):
        await reply(update, texts.PRIVATE_ONLY)
        return
    if not await guard_args(update, context):
        return
    args = args_of(context)
    if len(args) > 1:
        await reply(update, texts.USAGE_GETCERT)
        return
    await issue_and_deliver(context, user.id, chat.id, args[0] if args else None)


async def platform_button(update: Update, context: Context) -> None:
    """``plat:<ios|android>:<device>``: the presser picks their own phone, nobody else's."""
    query = update.callback_query
    if query is None:
        return
    user = query.from_user
    parts = (query.data or "").split(":")
    if len(parts) != 3 or parts[1] not in {p.value for p in Platform}:
        await answer_query(query, texts.BUTTON_STALE)
        return
    if not is_private(update):
        await answer_query(query, texts.PRIVATE_ONLY, show_alert=True)
        return
    await answer_query(query)
    rt = runtime(context)
    try:
        await rt.service.set_platform(user.id, Platform(parts[1]))
    except PEOPLE_ERRORS as exc:
        await context.bot.send_message(user.id, str(exc))
        return
    label = "iPhone" if parts[1] == Platform.IOS else "Android"
    try:
        await query.edit_message_text(f"{texts.ASK_PLATFORM} {label}.")
    except TelegramError:
        log.info("could not edit the platform question")
    await issue_and_deliver(context, user.id, user.id, parts[2])
