"""Admin handlers after approval: /revoke, /repin (and pinning an uploaded file), listings.

Authority comes from who sent the update, never from its data.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError

from bot.core.models import Person
from bot.core.results import CrlReport, PinBundle
from bot.telegram import render
from bot.telegram.handlers.approvals import admin_command, tell_person
from bot.telegram.handlers.common import (
    PEOPLE_ERRORS,
    Context,
    answer_user_error,
    reply,
    require_admin,
    runtime,
)
from bot.telegram.handlers.delivery import send_pin, with_retry
from bot.telegram.handlers.language import language_of
from bot.telegram.handlers.trust import pin_upload
from bot.telegram.limiter import Priority, send_priority
from bot.texts import chat, errors, speaking, t, trust

log = logging.getLogger(__name__)

REPIN_PAUSE = 0.05  # ~20 people a second, under Telegram's 30 messages/s broadcast limit
MAX_PIN_UPLOAD = 64 * 1024
LIST_CHUNK = 3500
LIST_MAX_PEOPLE = 200  # a chat is no place for more; `otcert users` lists everyone


def crl_error(report: CrlReport) -> str:
    """Why the CRL was not written, in the reader's language."""
    if report.error is None:
        return t(chat.CRL_NOT_WRITTEN)
    return t(errors.CRL_NOT_WRITTEN, error=report.error)


def crl_summary(report: CrlReport, *, kicked_expected: bool) -> str:
    """What a revocation did to the CRL, the broker and live sessions: only what happened."""
    crl = (
        t(chat.CRL_OK, entries=report.entries)
        if report.written
        else t(chat.CRL_FAILED, error=render.esc(crl_error(report)))
    )
    if not report.written:
        reload = ""
    elif report.reload is None:
        reload = t(trust.RELOAD_NOT_CONFIGURED)
    elif report.reload.ok:
        reload = t(trust.RELOAD_DONE)
    else:
        reload = t(chat.RELOAD_FAILED, detail=render.esc(report.reload.detail))
    if not kicked_expected:
        kick = ""
    elif report.kick_skipped:
        kick = t(trust.KICK_SKIPPED_NO_RELOAD)
    elif report.kick is None:
        kick = t(chat.KICK_NONE)
    elif report.kick.ok:
        kick = t(chat.KICK_OK, detail=render.esc(report.kick.detail))
    else:
        kick = t(chat.KICK_FAILED, detail=render.esc(report.kick.detail))
    return crl + reload + kick


async def revoke(update: Update, context: Context) -> None:
    """/revoke <mqtt_username|telegram_id> [reason]: every certificate, then the CRL."""
    command = await admin_command(update, context, chat.USAGE_REVOKE, least=1)
    if command is None:
        return
    user, args = command
    reason = " ".join(args[1:]) or None
    try:
        result = await runtime(context).service.revoke(user.id, args[0], reason)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    done = t(chat.REVOKE_DONE, who=render.who(result.person), count=len(result.certificates))
    await reply(update, done + crl_summary(result.crl, kicked_expected=True))
    person = result.person
    await tell_person(
        context, person, lambda: t(chat.REVOKED_PERSON, reason=render.reason(person.reason))
    )


async def repin(update: Update, context: Context) -> None:
    """/repin: send the CA pin to everyone; as a reply to the admin's own file, pin it first."""
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
                await reply(update, t(chat.PIN_TOO_LARGE))
                return
            file = await replied.document.get_file()
            data = bytes(await file.download_as_bytearray())
            uploaded = await pin_upload(update, context, user, data[: MAX_PIN_UPLOAD + 1])
            if uploaded is None:
                return  # waiting for a second admin, who sends it
            pin = uploaded
        else:
            phone_pin = await rt.service.phone_pin()
            if phone_pin is None:
                await reply(update, t(trust.NO_PHONE_CA))
                return
            pin = phone_pin
        people = await rt.service.pin_recipients(user.id, pin)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    await start_fan_out(context, message.chat_id, pin, people)


async def send_rotation_cas(context: Context, chat_id: int) -> None:
    """Both CAs while a CA rotation runs (see :mod:`bot.telegram.handlers.rotation`)."""
    from bot.telegram.handlers.rotation import send_rotation_cas as send_both

    await send_both(context, chat_id)


async def start_fan_out(
    context: Context, admin_chat: int, pin: PinBundle, people: list[Person]
) -> None:
    """Say how many will get ``pin``, then send it in the background."""
    await context.bot.send_message(
        admin_chat, t(chat.REPIN_START, fingerprint=pin.fingerprint, count=len(people)),
        parse_mode=ParseMode.HTML,
    )
    with send_priority(Priority.EXTRAS):  # the task copies this context
        context.application.create_task(_fan_out_pin(context, admin_chat, pin, people))


async def _fan_out_pin(
    context: Context, admin_chat: int, pin: PinBundle, people: list[Person]
) -> None:
    """Send the pin to each person at a pace Telegram accepts, then report to the admin."""
    ok = failed = 0
    blocked: list[str] = []
    for person in people:
        try:
            with speaking(await language_of(context, person.telegram_id)):
                await send_pin(
                    context.bot, person.telegram_id, pin.pem, pin.der, t(chat.REPIN_TO_PERSON)
                )
                await send_rotation_cas(context, person.telegram_id)
            ok += 1
        except Forbidden:
            blocked.append(person.mqtt_username or str(person.telegram_id))
        except TelegramError as exc:
            log.info("re-pin to %s failed: %s", person.telegram_id, type(exc).__name__)
            failed += 1
        await asyncio.sleep(REPIN_PAUSE)
    names = t(chat.REPIN_BLOCKED_LIST, names=render.esc(", ".join(blocked))) if blocked else ""
    summary = t(chat.REPIN_SUMMARY, ok=ok, blocked=len(blocked), blocked_list=names, failed=failed)
    await with_retry(
        lambda: context.bot.send_message(admin_chat, summary, parse_mode=ParseMode.HTML),
        "re-pin summary",
    )


async def document_received(update: Update, context: Context) -> None:
    """A file in a private chat: admins are told how to pin it, others get the help."""
    user = update.effective_user
    if user is not None and runtime(context).service.is_admin(user.id):
        await reply(update, t(chat.PIN_HINT))
        return
    from bot.telegram.handlers.people import help_command

    await help_command(update, context)


async def pending(update: Update, context: Context) -> None:
    """/pending: who waits for an answer."""
    if not await require_admin(update, context):
        return
    user = update.effective_user
    assert user is not None
    people = await runtime(context).service.pending(user.id)
    if not people:
        await reply(update, t(chat.NONE_PENDING))
        return
    await _send_long(update, [t(chat.PENDING_ROW, who=render.who(p)) for p in people])


async def users(update: Update, context: Context) -> None:
    """/users: everyone known, with their certificates (the first LIST_MAX_PEOPLE)."""
    if not await require_admin(update, context):
        return
    user = update.effective_user
    assert user is not None
    listing = await runtime(context).service.people_with_certificates(
        user.id, limit=LIST_MAX_PEOPLE
    )
    if not listing.rows:
        await reply(update, t(chat.NO_USERS))
        return
    lines = [render.person_row(p, certs) for p, certs in listing.rows]
    await _send_long(update, lines, total=listing.total)


async def _send_long(update: Update, lines: list[str], *, total: int | None = None) -> None:
    """Telegram caps a message at 4096 characters: split on line boundaries; a chat is no
    place for thousands of rows, so long listings end with a pointer to the CLI. ``total``:
    how many rows there are when ``lines`` is already only the first page."""
    total = len(lines) if total is None else total
    lines = lines[:LIST_MAX_PEOPLE]
    if total > len(lines):
        lines = [*lines, t(chat.LIST_TRUNCATED, more=total - len(lines))]
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
