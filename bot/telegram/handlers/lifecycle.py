"""/mycerts, /renew, /expiring, the Renew and Revoke buttons, and the lifecycle job that
reminds people (and admins) before certificates expire.

Buttons carry a serial; who may act on it comes from who pressed, checked by the core."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot.core import doors
from bot.core.lifecycle import (
    DueReminder,
    ExpiringView,
    InfraCertificate,
    Lifecycle,
    MyCertificate,
)
from bot.core.lifecycle_rules import days_left
from bot.telegram import render
from bot.telegram.callbacks import RenewCertificate, RevokeAsk, RevokeConfirm, parse
from bot.telegram.handlers.admin import crl_summary
from bot.telegram.handlers.approvals import admin_command
from bot.telegram.handlers.common import (
    PEOPLE_ERRORS,
    Context,
    answer_query,
    answer_user_error,
    is_private,
    one_optional_arg,
    reply,
)
from bot.telegram.handlers.delivery import issue_and_deliver, with_retry
from bot.telegram.handlers.fanout import tell_admins
from bot.telegram.handlers.language import language_of
from bot.telegram.limiter import Priority, send_priority
from bot.texts import chat, speaking, t
from bot.texts import lifecycle as texts

log = logging.getLogger(__name__)

EXPIRING_MAX_LINES = 50
BROADCAST_PAUSE = 0.04  # ~25 reminders a second, under Telegram's 30 messages/s
FIX = {"ca": texts.FIX_CA, "server": texts.FIX_SERVER, "admin": texts.FIX_ADMIN}


def lifecycle_of(app: Application[Any, Any, Any, Any, Any, Any]) -> Lifecycle:
    lc = app.bot_data["lifecycle"]
    assert isinstance(lc, Lifecycle)
    return lc


def renew_button(device: str, serial: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(t(texts.BUTTON_RENEW, device=device),
                                callback_data=RenewCertificate(serial).data())


# --- people --------------------------------------------------------------------------------
async def mycerts(update: Update, context: Context) -> None:
    """/mycerts: working certificates with Renew (inside the window) and Revoke buttons."""
    user = update.effective_user
    if user is None:
        return
    if not is_private(update):
        await reply(update, t(chat.PRIVATE_ONLY))
        return
    mine = await lifecycle_of(context.application).my_certificates(user.id)
    if not mine:
        await reply(update, t(texts.MYCERTS_NONE))
        return
    lines = [t(texts.MYCERTS_HEAD)] + [_mycert_line(m) for m in mine]
    rows = []
    for m in mine:
        device, serial = m.certificate.device, m.certificate.serial
        row = [renew_button(device, serial)] if m.renewable else []
        row.append(InlineKeyboardButton(t(texts.BUTTON_REVOKE, device=device),
                                        callback_data=RevokeAsk(serial).data()))
        rows.append(row)
    await reply(update, "\n".join(lines), reply_markup=InlineKeyboardMarkup(rows))


def _mycert_line(m: MyCertificate) -> str:
    phone = render.phone(m.platform) if m.platform is not None else "?"
    line = t(texts.MYCERTS_LINE, device=render.esc(m.certificate.device), phone=phone,
             until=render.day(m.certificate.not_after), days=m.days_left)
    return line if m.renewable else line + t(texts.MYCERTS_RENEW_FROM,
                                             opens=render.day(m.renew_opens))


async def renew(update: Update, context: Context) -> None:
    """/renew [device]: a new certificate for a device inside the renewal window."""
    user = update.effective_user
    if user is None:
        return
    ok, device = await one_optional_arg(update, context, texts.USAGE_RENEW)
    if not ok:
        return
    try:
        serial = await lifecycle_of(context.application).renewal_for(
            user.id, device.lower() if device else None)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    await issue_and_deliver(context, user.id, user.id, None, renews=serial)


async def renew_pressed(update: Update, context: Context) -> None:
    """Renew pressed (reminder or /mycerts): the core refuses someone else's serial."""
    query = update.callback_query
    if query is None:
        return
    choice = parse(query.data)
    if not isinstance(choice, RenewCertificate):
        await answer_query(query, t(chat.BUTTON_STALE))
        return
    if not is_private(update):
        await answer_query(query, t(chat.PRIVATE_ONLY), show_alert=True)
        return
    await answer_query(query)
    await issue_and_deliver(context, query.from_user.id, query.from_user.id, None,
                            renews=choice.serial)


async def revoke_pressed(update: Update, context: Context) -> None:
    """Revoke pressed: ask to confirm; confirmed: revoke that device's certificate."""
    query = update.callback_query
    if query is None:
        return
    choice = parse(query.data)
    if not isinstance(choice, RevokeAsk | RevokeConfirm):
        await answer_query(query, t(chat.BUTTON_STALE))
        return
    if not is_private(update):
        await answer_query(query, t(chat.PRIVATE_ONLY), show_alert=True)
        return
    lc = lifecycle_of(context.application)
    user = query.from_user
    try:
        if isinstance(choice, RevokeAsk):
            cert = await lc.certificate_of(user.id, choice.serial)
        else:
            result = await lc.revoke_own(user.id, choice.serial)
    except PEOPLE_ERRORS as exc:
        await answer_query(query, render.error_text(exc), show_alert=True)
        return
    await answer_query(query)
    if isinstance(choice, RevokeAsk):
        yes = InlineKeyboardButton(t(texts.BUTTON_REVOKE_YES, device=cert.device),
                                   callback_data=RevokeConfirm(cert.serial).data())
        await context.bot.send_message(
            user.id, t(texts.REVOKE_ASK, device=render.esc(cert.device)),
            parse_mode=ParseMode.HTML, reply_markup=InlineKeyboardMarkup([[yes]]))
        return
    report = result.report
    fine = report.written and (report.reload is None or report.reload.ok)
    crl = t(texts.REVOKE_CRL_OK if fine else texts.REVOKE_CRL_PROBLEM)
    try:  # the owner's reply failing must not keep the admins from hearing of it
        await context.bot.send_message(
            user.id, t(texts.REVOKE_DONE, device=render.esc(result.device), crl=crl),
            parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        log.info("could not confirm a self-revocation to %s: %s", user.id, type(exc).__name__)
    who = render.who(result.person) if result.person else str(user.id)

    def note() -> str:
        return t(texts.ADMIN_SELF_REVOKED, who=who, device=render.esc(result.device),
                 serials=", ".join(c.serial for c in result.certificates)
                 ) + "\n" + crl_summary(report, kicked_expected=True)

    await _tell_admins(context, lc, note)


# --- admins ----------------------------------------------------------------------------------
async def expiring(update: Update, context: Context) -> None:
    """/expiring [days]: what expires soonest, with owner and whether it was renewed."""
    command = await admin_command(update, context, texts.USAGE_EXPIRING, least=0, most=1)
    if command is None:
        return
    user, args = command
    days = None
    if args:
        if not (args[0].isascii() and args[0].isdigit()) or not 1 <= int(args[0]) <= 3650:
            await reply(update, t(texts.USAGE_EXPIRING))
            return
        days = int(args[0])
    try:
        view = await lifecycle_of(context.application).expiring(user.id, days)
    except PEOPLE_ERRORS as exc:
        await answer_user_error(update, exc)
        return
    await reply(update, expiring_text(view, html=True))


def expiring_text(view: ExpiringView, *, html: bool) -> str:
    """The /expiring listing (also printed by ``otcert expiring``)."""
    now = view.now
    total = len(view.certificates) + len(view.infrastructure)
    if not total:
        return t(texts.EXPIRING_NONE, days=view.days)
    lines = [t(texts.EXPIRING_HEAD, days=view.days, count=total)]
    for item in view.infrastructure:
        lines.append(t(texts.EXPIRING_INFRA_LINE, until=render.day(item.not_after),
                       left=days_left(item.not_after, now), what=infra_name(item)))
    for e in view.certificates[:EXPIRING_MAX_LINES if html else None]:
        c = e.certificate
        lines.append(t(texts.EXPIRING_LINE, until=render.day(c.not_after),
                       left=days_left(c.not_after, now), username=render.esc(c.mqtt_username),
                       device=render.esc(c.device),
                       renewed=t(texts.EXPIRING_RENEWED) if e.renewed else ""))
    if html and len(view.certificates) > EXPIRING_MAX_LINES:
        lines.append(t(texts.EXPIRING_MORE, count=len(view.certificates) - EXPIRING_MAX_LINES))
    return "\n".join(lines)


def infra_name(item: InfraCertificate) -> str:
    if item.kind == "ca":
        return t(texts.INFRA_CA)
    if item.kind == "server":
        return t(texts.INFRA_SERVER, where=render.esc(item.where))
    return t(texts.INFRA_ADMIN)


# --- the job -----------------------------------------------------------------------------------
async def lifecycle_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every OTCERT_LIFECYCLE_CHECK_SECONDS: owners' reminders, admins' notices, infra."""
    with send_priority(Priority.EXTRAS):  # never ahead of a file and passphrase on their way
        await _run_lifecycle_job(context)


async def _run_lifecycle_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    lc = lifecycle_of(context.application)
    bot = context.application.bot
    owners = await lc.due_for_owners()
    log.debug("lifecycle check: %d reminder(s) due", len(owners))
    for due in owners:
        try:
            language = await language_of(context, due.certificate.telegram_id)
            await _remind_owner(bot, lc, due, language)
        except Exception:  # one bad row must not stop everyone else's reminder
            log.exception("reminder for certificate %s failed", due.certificate.serial)
        await asyncio.sleep(BROADCAST_PAUSE)
    try:
        for due in await lc.due_for_admins():
            await _tell_admins_unrenewed(context, lc, due)
    except Exception:  # the infrastructure watch below must still run
        log.exception("telling admins about unrenewed certificates failed")
    for item, days in await lc.infra_due():
        subject = item.subject
        await lc.claim_reminder(subject, "admins", days)

        def text(item: InfraCertificate = item) -> str:
            return t(texts.INFRA_REMINDER, what=infra_name(item),
                     until=render.day(item.not_after),
                     days=days_left(item.not_after, lc.now()), fix=t(FIX[item.kind]))

        if await _tell_admins(context, lc, text):  # nobody got it: the next run retries
            await lc.confirm_reminder(subject, "admins", days)


async def _remind_owner(bot: Bot, lc: Lifecycle, due: DueReminder, language: str) -> None:
    """Claimed before sending, confirmed after: a crash in between resends once."""
    cert = due.certificate
    if not doors.has_telegram(cert.telegram_id):  # `otcert issue --new`: nobody to message
        await lc.confirm_reminder(cert.serial, "owner", due.days, "no-telegram")
        return
    await lc.claim_reminder(cert.serial, "owner", due.days)
    with speaking(language):
        text = t(texts.REMINDER, device=render.esc(cert.device),
                 until=render.day(cert.not_after), days=days_left(cert.not_after, lc.now()))
        keyboard = InlineKeyboardMarkup([[renew_button(cert.device, cert.serial)]])
    try:
        await with_retry(lambda: bot.send_message(
            cert.telegram_id, text, parse_mode=ParseMode.HTML, reply_markup=keyboard),
            "reminder")
    except (Forbidden, BadRequest) as exc:  # blocked the bot, or the chat is gone: for good
        log.info("reminder for %s not delivered: %s", cert.serial, type(exc).__name__)
        await lc.confirm_reminder(cert.serial, "owner", due.days, "undeliverable")
        return
    except TelegramError as exc:  # transient: the claim stays open, the next run retries
        log.info("reminder for %s will be retried: %s", cert.serial, type(exc).__name__)
        return
    await lc.confirm_reminder(cert.serial, "owner", due.days)


async def _tell_admins_unrenewed(context: Context, lc: Lifecycle, due: DueReminder) -> None:
    cert = due.certificate
    await lc.claim_reminder(cert.serial, "admins", due.days)
    person = await lc.person(cert.telegram_id)
    who = render.who(person) if person else render.esc(cert.mqtt_username)

    def text() -> str:
        return t(texts.ADMIN_UNRENEWED, who=who, device=render.esc(cert.device),
                 until=render.day(cert.not_after), days=days_left(cert.not_after, lc.now()))

    if await _tell_admins(context, lc, text):  # nobody got it: the claim stays open
        await lc.confirm_reminder(cert.serial, "admins", due.days)


async def _tell_admins(context: Context, lc: Lifecycle, text: Callable[[], str]) -> int:
    """How many admins received ``text()``, built in each one's language."""
    return await tell_admins(context.bot, lc.service.policy.admin_ids,
                             lambda admin_id: language_of(context, admin_id), text)
