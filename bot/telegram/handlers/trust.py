"""/repin with an uploaded CA: set it when safe, else ask a second admin with a button.

Authority comes from who pressed, never from the button's data: the token only names an open
proposal, and the core refuses non-admins and the asker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update, User

from bot.core.models import Person
from bot.core.results import PinBundle
from bot.core.trust import PinDecision
from bot.telegram import render
from bot.telegram.callbacks import PinConfirm
from bot.telegram.handlers.common import (
    PEOPLE_ERRORS,
    Context,
    admin_button,
    answer_query,
    reply,
    runtime,
)
from bot.telegram.handlers.fanout import LanguageOf, tell_admins
from bot.telegram.handlers.language import language_of
from bot.texts import chat, t
from bot.texts import trust as texts

log = logging.getLogger(__name__)
ALERT_MAX = 190


async def pin_upload(update: Update, context: Context, user: User, data: bytes) -> PinBundle | None:
    """Judge an uploaded CA; the pin to fan out now, or None (waiting or refused: answered)."""
    rt = runtime(context)
    decision = await rt.service.pins.propose(user.id, data, actor_name=user.full_name)
    subject = render.esc(decision.bundle.subject)
    fingerprint = decision.bundle.fingerprint
    admin = render.esc(user.full_name)
    if decision.route == "confirm":
        await _ask_other_admins(context, user, decision)
        await reply(update, t(texts.PIN_WAITING, detail=render.esc(decision.why)))
        return None
    await reply(update, t(chat.REPIN_NEW_PIN, subject=subject, fingerprint=fingerprint))
    await _tell_admins(context, rt.service.policy.admin_ids - {user.id}, lambda: t(
        texts.PIN_SET_BY, admin=admin, subject=subject, fingerprint=fingerprint,
        why=render.esc(decision.why)))
    return decision.bundle


async def _ask_other_admins(context: Context, user: User, decision: PinDecision) -> None:
    proposal = decision.proposal
    assert proposal is not None

    def text() -> str:
        return t(
            texts.PIN_NEEDS_SECOND_ADMIN, admin=render.esc(user.full_name),
            subject=render.esc(decision.bundle.subject),
            fingerprint=decision.bundle.fingerprint, detail=render.esc(decision.why),
        )

    def keyboard() -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton(
            t(texts.BUTTON_CONFIRM_PIN), callback_data=PinConfirm(proposal.token).data()
        )]])

    await tell_admins(context.bot, runtime(context).service.policy.admin_ids - {user.id},
                      lambda admin_id: language_of(context, admin_id), text,
                      keyboard=keyboard, what="pin confirmation request")


async def _tell_admins(
    context: Context, admin_ids: frozenset[int], text: Callable[[], str]
) -> None:
    await tell_admins(context.bot, admin_ids, lambda admin_id: language_of(context, admin_id),
                      text, what="pin notice")


async def confirm_button(update: Update, context: Context) -> None:
    """A :class:`PinConfirm` pressed: a second admin sends the CA to everyone."""
    pressed = await admin_button(update, context, PinConfirm)
    if pressed is None:
        return
    query, presser, button = pressed
    rt = runtime(context)
    try:
        proposal = await rt.service.pins.confirm(presser.id, button.token)
        people = await rt.service.pin_recipients(presser.id, proposal.bundle)
    except PEOPLE_ERRORS as exc:
        await answer_query(query, render.error_text(exc)[:ALERT_MAX], show_alert=True)
        return
    await answer_query(query, t(chat.DONE))
    await _tell_admins(context, rt.service.policy.admin_ids, lambda: t(
        texts.PIN_CONFIRMED_BY, confirmer=render.esc(presser.full_name),
        admin=render.esc(proposal.asker_name or str(proposal.asker_id)),
        subject=render.esc(proposal.bundle.subject),
        fingerprint=proposal.bundle.fingerprint,
    ))
    from bot.telegram.handlers.admin import start_fan_out

    message = query.message
    chat_id = message.chat.id if message is not None else presser.id
    await start_fan_out(context, chat_id, proposal.bundle, people)


async def tell_admins_limit(
    bot: Bot, admin_ids: frozenset[int], person: Person, limit: int,
    language_of_admin: LanguageOf,
) -> None:
    """Someone hit the daily cap (once per person and window): every admin hears of it,
    in their own language (not the language of the person who hit it)."""
    await tell_admins(bot, admin_ids, language_of_admin,
                      lambda: t(texts.DAILY_LIMIT_ADMINS, who=render.who(person), limit=limit),
                      what="daily cap notice")


async def sweep_undelivered_job(context: Context) -> None:
    """JobQueue job: revoke certificates whose delivery never finished, minutes after issue."""
    swept = await runtime(context).service.sweep_undelivered()
    if swept:
        log.warning("revoked %d certificate(s) left undelivered", swept)
