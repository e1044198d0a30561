"""The CA rotation in chat: the move offer and its one button, ``/rotation`` for admins, and
the rotation check job that adopts a rotation started from the shell."""

from __future__ import annotations

import logging
from functools import partial

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.core.rotation import Rotation
from bot.telegram import render
from bot.telegram.callbacks import RotationMove, parse
from bot.telegram.handlers.common import (
    answer_query,
    is_private,
    reply,
    require_admin,
    runtime,
)
from bot.telegram.handlers.delivery import CA_FILENAME, issue_and_deliver, with_retry
from bot.telegram.handlers.language import language_of
from bot.telegram.limiter import Priority, send_priority
from bot.texts import chat, speaking, t
from bot.texts import rotation as texts

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE


def _rotation(context: Context) -> Rotation:
    rotation = runtime(context).service.rotation
    assert rotation is not None, "bot.wiring attaches the rotation"
    return rotation


async def rotation_check_job(context: Context) -> None:
    """Adopt a rotation started or finished from the shell, then offer everyone who still
    depends on the old CA their new certificate (once per rotation, also across restarts)."""
    rotation = _rotation(context)
    await rotation.sync()
    due = await rotation.offers_due()
    log.debug("rotation check: %d move offers due", len(due))
    for person, old in due:
        try:
            # Extras priority, like reminders: a burst of offers never delays a /getcert reply.
            with speaking(await language_of(context, person.telegram_id)), \
                    send_priority(Priority.EXTRAS):
                await send_move_offer(context, person.telegram_id, old.device)
        except Forbidden:
            log.info("person %s blocked the bot; no move offer", person.telegram_id)
        except TelegramError as exc:
            log.info("move offer to %s failed: %s", person.telegram_id, type(exc).__name__)
            continue  # tried again at the next check
        await rotation.offered(person.telegram_id)


async def send_move_offer(context: Context, chat_id: int, device: str) -> None:
    rotation = _rotation(context)
    upcoming = rotation.authorities.next
    assert upcoming is not None
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(t(texts.MOVE_BUTTON), callback_data=RotationMove().data())]]
    )
    await context.bot.send_message(
        chat_id, t(texts.MOVE_OFFER, device=render.esc(device)),
        parse_mode=ParseMode.HTML, reply_markup=keyboard,
    )
    await context.bot.send_document(
        chat_id, InputFile(upcoming.cert_pem, filename="ca-new.crt"),
        caption=t(texts.NEW_CA_CAPTION, fingerprint=upcoming.fingerprint_sha256),
    )


async def move_button(update: Update, context: Context) -> None:
    """One tap: the presser's certificate from the next CA, delivered like a renewal."""
    query = update.callback_query
    if query is None:
        return
    if not isinstance(parse(query.data), RotationMove):
        await answer_query(query, t(chat.BUTTON_STALE))
        return
    if not is_private(update):
        await answer_query(query, t(chat.PRIVATE_ONLY), show_alert=True)
        return
    await answer_query(query)
    rotation = _rotation(context)
    await rotation.sync()
    old = await rotation.old_certificate(query.from_user.id)
    if old is None:
        await context.bot.send_message(query.from_user.id, t(texts.NOTHING_TO_MOVE))
        return
    await issue_and_deliver(context, query.from_user.id, query.from_user.id, old.device)


async def send_rotation_cas(context: Context, chat_id: int) -> None:
    """While a rotation runs, /repin sends both CAs: the phone must trust both for now."""
    rotation = _rotation(context)
    if not rotation.authorities.rotating:
        return
    for ca, which in zip(rotation.authorities.accepted, (texts.WHICH_OLD, texts.WHICH_NEXT),
                         strict=True):
        caption = t(texts.BOTH_CAS_CAPTION, which=t(which), fingerprint=ca.fingerprint_sha256)
        name = CA_FILENAME if which is texts.WHICH_OLD else "ca-new.crt"
        document = InputFile(ca.cert_pem, filename=name)
        await with_retry(
            partial(context.bot.send_document, chat_id, document, caption=caption),
            "send rotation CA",
        )


async def rotation_command(update: Update, context: Context) -> None:
    """/rotation (admins): who is on which CA and who has not moved yet."""
    if not await require_admin(update, context):
        return
    status = await _rotation(context).status()
    cur = status.current.fingerprint_sha256
    if status.next is None:
        await reply(update, t(texts.STATUS_NONE, fingerprint=cur))
        return
    nxt = status.next.fingerprint_sha256
    names = ", ".join(p.mqtt_username or str(p.telegram_id) for p in status.not_moved[:50])
    await reply(update, render.esc(t(
        texts.STATUS_HEAD, old=cur, new=nxt,
        old_people=status.people.get(cur, 0), old_certs=status.certificates.get(cur, 0),
        new_people=status.people.get(nxt, 0), new_certs=status.certificates.get(nxt, 0),
        count=len(status.not_moved), names=names or t(texts.NOBODY),
    )))
