"""Admin handlers. Authority comes from who sent the update, never from its data."""

from __future__ import annotations

import asyncio
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError

from bot.core.results import CrlReport, PinBundle
from bot.telegram import texts
from bot.telegram.handlers.common import (
    PEOPLE_ERRORS,
    Context,
    answer_query,
    answer_user_error,
    args_of,
    guard_args,
    parse_telegram_id,
    reply,
    require_admin,
    runtime,
)
from bot.telegram.handlers.delivery import send_pin, with_retry
from storage import Person, PersonStatus

log = logging.getLogger(__name__)

REPIN_PAUSE = 0.05  # ~20 people a second, under Telegram's 30 messages/s broadcast limit
MAX_PIN_UPLOAD = 64 * 1024
LIST_CHUNK = 3500
LIST_MAX_PEOPLE = 200  # a chat is no place for more; `otcert users` lists everyone


async def _tell_person(context: Context, person: Person, text: str) -> None:
    try:
        await with_retry(
            lambda: context.bot.send_message(person.telegram_id, text, parse_mode=ParseMode.HTML),
            "tell person",
        )
    except TelegramError as exc:
        log.info("could not tell person %s: %s", person.telegram_id, type(exc).__name__)


async def _mark_decided(
    context: Context, person: Person, verb: str, admin: str, extra: str
) -> None:
    """Every admin's copy of the request shows who decided."""
    text = texts.ADMIN_DECIDED.format(verb=verb, admin=admin, who=texts.who(person), extra=extra)
    notices = await runtime(context).service.take_request_notices(person.telegram_id)
    for chat_id, message_id in notices:
        try:
            await context.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, parse_mode=ParseMode.HTML
            )
        except TelegramError:
            log.info("could not update an admin's copy of a request")


async def _approve(context: Context, admin_id: int, admin_name: str, tid: int, name: str) -> str:
    person = await runtime(context).service.approve(admin_id, tid, name)
    username = texts.esc(person.mqtt_username)
    await _tell_person(context, person, texts.APPROVED_PERSON.format(username=username))
    await _mark_decided(context, person, "Approved", admin_name, f" as <code>{username}</code>")
    return f"Approved {texts.who(person)} as <code>{username}</code>."


async def _deny(
    context: Context, admin_id: int, admin_name: str, tid: int, reason: str | None
) -> str:
    person = await runtime(context).service.deny(admin_id, tid, reason)
    why = f" Reason: {texts.esc(person.reason)}" if person.reason else ""
    await _tell_person(context, person, texts.DENIED_PERSON.format(reason=why))
    await _mark_decided(context, person, "Denied", admin_name, "")
    return f"Denied {texts.who(person)}."


async def _admin_command(
    update: Update, context: Context, usage: str, *, least: int, most: int | None = None
) -> tuple[User, list[str]] | None:
    """The common start of an admin command: who, in a private chat, with sane arguments."""
    if not await require_admin(update, context) or not await guard_args(update, context):
        return None
    args = args_of(context)
    if len(args) < least or (most is not None and len(args) > most):
        await reply(update, usage)
        return None
    user = update.effective_user
    assert user is not None
    return user, args


async def approve(update: Update, context: Context) -> None:
    command = await _admin_command(update, context, texts.USAGE_APPROVE, least=2, most=2)
    if command is None:
        return
    user, args = command
    try:
        tid = parse_telegram_id(args[0])
        done = await _approve(context, user.id, texts.esc(user.full_name), tid, args[1])
        await reply(update, done)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)


async def deny(update: Update, context: Context) -> None:
    command = await _admin_command(update, context, texts.USAGE_DENY, least=1)
    if command is None:
        return
    user, args = command
    try:
        tid = parse_telegram_id(args[0])
        reason = " ".join(args[1:]) or None
        await reply(update, await _deny(context, user.id, texts.esc(user.full_name), tid, reason))
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)


async def request_button(update: Update, context: Context) -> None:
    """``req:<approve|deny|ok|cancel>:<telegram_id>[:<username>]`` from an admin's copy."""
    query = update.callback_query
    if query is None:
        return
    rt = runtime(context)
    admin = query.from_user
    if not rt.service.is_admin(admin.id):
        await answer_query(query, texts.NOT_ADMIN, show_alert=True)
        return
    parts = (query.data or "").split(":")
    if len(parts) not in (3, 4) or parts[1] not in {"approve", "deny", "ok", "cancel"}:
        await answer_query(query, texts.BUTTON_STALE)
        return
    try:
        tid = parse_telegram_id(parts[2])
        person = await rt.service.status(tid)
        if person is None or person.status != PersonStatus.PENDING:
            # Buttons act on a pending request only; a later decision needs a command.
            state = person.status.value if person else "unknown"
            decided = texts.REQUEST_DECIDED.format(status=state)
            await answer_query(query, decided, show_alert=True)
            return
        if parts[1] == "approve":
            await answer_query(query)
            await _offer_username(context, query.message, tid)
            return
        if parts[1] == "cancel":
            await answer_query(query, "Cancelled.")
            return
        if parts[1] == "ok" and len(parts) == 4:
            result = await _approve(context, admin.id, texts.esc(admin.full_name), tid, parts[3])
        elif parts[1] == "deny":
            result = await _deny(context, admin.id, texts.esc(admin.full_name), tid, None)
        else:
            await answer_query(query, texts.BUTTON_STALE)
            return
    except PEOPLE_ERRORS as exc:
        await answer_query(query, str(exc)[:190], show_alert=True)
        return
    await answer_query(query, "Done.")
    try:
        await query.edit_message_text(result, parse_mode=ParseMode.HTML)
    except TelegramError:
        log.info("could not edit the request message")


async def _offer_username(context: Context, message: object, tid: int) -> None:
    from telegram import Message

    rt = runtime(context)
    person = await rt.service.status(tid)
    if person is None or not isinstance(message, Message):
        return
    name = rt.service.suggest_username(person)
    if name is None:
        await message.edit_text(
            texts.ASK_APPROVE_NO_NAME.format(who=texts.who(person), tid=tid),
            parse_mode=ParseMode.HTML,
        )
        return
    keyboard = InlineKeyboardMarkup(
        [[
            InlineKeyboardButton(f"✅ Approve as {name}", callback_data=f"req:ok:{tid}:{name}"),
            InlineKeyboardButton("❌ Deny", callback_data=f"req:deny:{tid}"),
        ]]
    )
    await message.edit_text(
        texts.ASK_APPROVE_NAME.format(who=texts.who(person), username=texts.esc(name), tid=tid),
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard,
    )


def crl_summary(report: CrlReport, *, kicked_expected: bool) -> str:
    crl = (
        texts.CRL_OK.format(entries=report.entries)
        if report.written
        else texts.CRL_FAILED.format(error=texts.esc(report.error))
    )
    if report.reload is None or report.reload.ok:
        reload = texts.RELOAD_OK if report.reload and report.reload.detail else ""
    else:
        reload = texts.RELOAD_FAILED.format(detail=texts.esc(report.reload.detail))
    if not kicked_expected:
        kick = ""
    elif report.kick is None:
        kick = texts.KICK_NONE
    elif report.kick.ok:
        kick = texts.KICK_OK.format(detail=texts.esc(report.kick.detail))
    else:
        kick = texts.KICK_FAILED.format(detail=texts.esc(report.kick.detail))
    return crl + reload + kick


async def revoke(update: Update, context: Context) -> None:
    command = await _admin_command(update, context, texts.USAGE_REVOKE, least=1)
    if command is None:
        return
    user, args = command
    reason = " ".join(args[1:]) or None
    try:
        result = await runtime(context).service.revoke(user.id, args[0], reason)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    await reply(
        update,
        texts.REVOKE_DONE.format(
            who=texts.who(result.person),
            count=len(result.certificates),
        )
        + crl_summary(result.crl, kicked_expected=True),
    )
    why = f" Reason: {texts.esc(result.person.reason)}" if result.person.reason else ""
    await _tell_person(context, result.person, texts.REVOKED_PERSON.format(reason=why))


async def repin(update: Update, context: Context) -> None:
    if not await require_admin(update, context):
        return
    user = update.effective_user
    message = update.effective_message
    assert user is not None and message is not None
    rt = runtime(context)
    try:
        replied = message.reply_to_message
        if (
            replied is not None
            and replied.document is not None
            and replied.from_user is not None
            and replied.from_user.id == user.id  # the admin's own upload, nobody else's
        ):
            if (replied.document.file_size or 0) > MAX_PIN_UPLOAD:
                await reply(update, "That file is too large to be a certificate.")
                return
            file = await replied.document.get_file()
            data = bytes(await file.download_as_bytearray())
            pin = await rt.service.set_pin(user.id, data[: MAX_PIN_UPLOAD + 1])
            await reply(
                update,
                texts.REPIN_NEW_PIN.format(
                    subject=texts.esc(pin.subject), fingerprint=pin.fingerprint
                ),
            )
            await _tell_other_admins(context, user.id, texts.PIN_CHANGED_BY.format(
                admin=texts.esc(user.full_name), subject=texts.esc(pin.subject),
                fingerprint=pin.fingerprint,
            ))
        else:
            pin = await rt.service.current_pin()
        people = await rt.service.pin_recipients(user.id, pin)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    await reply(update, texts.REPIN_START.format(fingerprint=pin.fingerprint, count=len(people)))
    context.application.create_task(_fan_out_pin(context, message.chat_id, pin, people))


async def _tell_other_admins(context: Context, actor_id: int, text: str) -> None:
    """Phones are told to trust the pin fully: every admin sees who changed it."""
    for admin_id in sorted(runtime(context).service.policy.admin_ids - {actor_id}):
        try:
            await context.bot.send_message(admin_id, text, parse_mode=ParseMode.HTML)
        except TelegramError as exc:
            log.info("could not tell admin %s about the pin: %s", admin_id, type(exc).__name__)


async def _fan_out_pin(
    context: Context, admin_chat: int, pin: PinBundle, people: list[Person]
) -> None:
    ok = failed = 0
    blocked: list[str] = []
    for person in people:
        try:
            await send_pin(context.bot, person.telegram_id, pin.pem, pin.der, texts.REPIN_TO_PERSON)
            ok += 1
        except Forbidden:
            blocked.append(person.mqtt_username or str(person.telegram_id))
        except TelegramError as exc:
            log.info("re-pin to %s failed: %s", person.telegram_id, type(exc).__name__)
            failed += 1
        await asyncio.sleep(REPIN_PAUSE)
    blocked_list = f" ({texts.esc(', '.join(blocked))})" if blocked else ""
    await with_retry(
        lambda: context.bot.send_message(
            admin_chat,
            texts.REPIN_SUMMARY.format(
                ok=ok, blocked=len(blocked), blocked_list=blocked_list, failed=failed
            ),
            parse_mode=ParseMode.HTML,
        ),
        "re-pin summary",
    )


async def document_received(update: Update, context: Context) -> None:
    """A file in a private chat: admins are told how to pin it, others get the help."""
    user = update.effective_user
    if user is not None and runtime(context).service.is_admin(user.id):
        await reply(update, texts.PIN_HINT)
        return
    from bot.telegram.handlers.people import help_command

    await help_command(update, context)


async def pending(update: Update, context: Context) -> None:
    if not await require_admin(update, context):
        return
    user = update.effective_user
    assert user is not None
    people = await runtime(context).service.pending(user.id)
    if not people:
        await reply(update, texts.NONE_PENDING)
        return
    await _send_long(update, [f"• {texts.who(p)}" for p in people])


async def users(update: Update, context: Context) -> None:
    if not await require_admin(update, context):
        return
    user = update.effective_user
    assert user is not None
    listing = await runtime(context).service.people_with_certificates(
        user.id, limit=LIST_MAX_PEOPLE
    )
    if not listing.rows:
        await reply(update, texts.NO_USERS)
        return
    lines = [texts.person_row(p, certs) for p, certs in listing.rows]
    await _send_long(update, lines, total=listing.total)


async def _send_long(update: Update, lines: list[str], *, total: int | None = None) -> None:
    """Telegram caps a message at 4096 characters: split on line boundaries; a chat is no
    place for thousands of rows, so long listings end with a pointer to the CLI. ``total``:
    how many rows there are when ``lines`` is already only the first page."""
    total = len(lines) if total is None else total
    lines = lines[:LIST_MAX_PEOPLE]
    if total > len(lines):
        lines = [*lines, texts.LIST_TRUNCATED.format(more=total - len(lines))]
    chunk: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) > LIST_CHUNK and chunk:
            await reply(update, "\n".join(chunk))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        await reply(update, "\n".join(chunk))
