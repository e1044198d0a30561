"""Delivering a certificate: file first, passphrase only after the file arrived, never both
in one message; anything undelivered is revoked. Secret messages are deleted on schedule,
from the database, so a restart still deletes them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import httpx
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application, ContextTypes

from bot.core import otrc
from bot.core.errors import PlatformNeeded
from bot.core.models import Platform
from bot.core.results import IssuedBundle
from bot.telegram import render
from bot.telegram.callbacks import PlatformChoice, RenewPlatformChoice
from bot.telegram.handlers.common import PEOPLE_ERRORS, Runtime, runtime
from bot.telegram.limiter import Priority, send_priority
from bot.texts import chat, doors, errors, t

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 4
RETRY_AFTER_CAP = 30.0
CA_FILENAME = "ca.crt"
PIN_FILENAME = "ca.otre"


def _surely_not_sent(exc: NetworkError) -> bool:
    """True when the request cannot have been carried out: the connection never opened, or
    Telegram answered with an error. A read timeout or a dropped connection may hide a
    message that did arrive."""
    cause = exc.__cause__
    if cause is None:
        return not isinstance(exc, TimedOut)  # an error status from the server
    return isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


async def with_retry(
    call: Callable[[], Awaitable[T]], what: str, *, resend_if_unsure: bool = True
) -> T:
    """Honour Telegram's retry_after and back off on network errors; give up after a few.

    A secret (file or passphrase) passes ``resend_if_unsure=False``: a second copy of a
    message that did arrive would never be deleted, so an unsure failure is final and the
    caller revokes the certificate instead.
    """
    delay = 0.5
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call()
        except RetryAfter as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            log.info("%s: rate limited, retrying in %.1f s", what, seconds)
            await asyncio.sleep(min(seconds, RETRY_AFTER_CAP))
        except (Forbidden, BadRequest):
            raise
        except NetworkError as exc:  # includes TimedOut
            if attempt == MAX_ATTEMPTS or not (resend_if_unsure or _surely_not_sent(exc)):
                raise
            log.info("%s: %s, retrying in %.1f s", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def platform_keyboard(device: str, renews: str | None = None) -> InlineKeyboardMarkup:
    """One button per phone; the press comes back as a :class:`PlatformChoice`, or during a
    renewal as a :class:`RenewPlatformChoice` (a plain issue would replace the old one)."""
    return InlineKeyboardMarkup(
        [[
            InlineKeyboardButton(
                render.phone(platform),
                callback_data=(RenewPlatformChoice(platform, renews) if renews
                               else PlatformChoice(platform, device)).data(),
            )
            for platform in (Platform.IOS, Platform.ANDROID)
        ]]
    )


async def issue_and_deliver(
    context: ContextTypes.DEFAULT_TYPE, telegram_id: int, chat_id: int, device: str | None,
    *, renews: str | None = None,
) -> None:
    """One at a time per person, from signing to the passphrase: a double-tapped /getcert or
    phone button must not issue a second certificate while the first is still on its way.
    The CA, pin and steps follow outside that: they are neither secret nor one-time."""
    rt = runtime(context)
    bot = context.bot
    if telegram_id in rt.delivering:
        busy = t(errors.ALREADY_PREPARING)
        await with_retry(lambda: bot.send_message(chat_id, busy), "busy notice")
        return
    rt.delivering.add(telegram_id)
    try:
        with rt.service.keys.paused():
            bundle = await _issue_and_send_secrets(
                bot, rt, telegram_id, chat_id, device, renews=renews
            )
    finally:
        rt.delivering.discard(telegram_id)
    if bundle is not None:
        async with rt.lanes.extras():
            with send_priority(Priority.EXTRAS):
                await _send_pin_and_steps(bot, rt, chat_id, bundle)


async def _issue_and_send_secrets(
    bot: Bot, rt: Runtime, telegram_id: int, chat_id: int, device: str | None,
    *, renews: str | None = None,
) -> IssuedBundle | None:
    """The issued bundle once its file and passphrase arrived; None if nothing (more) to do.
    Only issuing and the secrets hold a lane; a refusal or the phone question is sent after."""
    async with rt.lanes.secrets():
        try:
            bundle = await rt.service.issue(telegram_id, device, renews=renews)
        except (PlatformNeeded, *PEOPLE_ERRORS) as exc:
            answer: Exception = exc
        else:
            with send_priority(Priority.SECRET):
                delivered = await _send_secrets(bot, rt, chat_id, bundle)
            return bundle if delivered else None
    if isinstance(answer, PlatformNeeded):
        keyboard = platform_keyboard(answer.device, renews)
        await with_retry(
            lambda: bot.send_message(chat_id, t(chat.ASK_PLATFORM), reply_markup=keyboard),
            "ask platform",
        )
    else:
        refusal = render.error_text(answer)
        await with_retry(lambda: bot.send_message(chat_id, refusal), "issue refusal")
    return None


async def _send_secrets(bot: Bot, rt: Runtime, chat_id: int, bundle: IssuedBundle) -> bool:
    """File, then passphrase; True once both arrived, else the certificate is revoked."""
    caption = t(
        chat.FILE_CAPTION,
        username=render.esc(bundle.username),
        device=render.esc(bundle.device),
        until=render.day(bundle.not_after),
        ttl=render.duration(rt.secret_ttl),
    )
    if bundle.replaced:
        caption += t(chat.REPLACED)
    try:
        file_message = await with_retry(
            lambda: bot.send_document(
                chat_id,
                InputFile(bundle.data, filename=bundle.filename),
                caption=caption,
                parse_mode=ParseMode.HTML,
            ),
            "send certificate file",
            resend_if_unsure=False,
        )
    except TelegramError as exc:
        log.warning(
            "certificate %s not delivered (%s); revoking", bundle.serial, type(exc).__name__
        )
        await _undelivered(bot, rt, chat_id, bundle, None)
        return False
    await schedule_deletion(rt, file_message)

    text = t(
        chat.SECRET_MESSAGE,
        filename=render.esc(bundle.filename), passphrase=render.esc(bundle.passphrase),
    )
    try:
        secret_message = await with_retry(
            lambda: bot.send_message(chat_id, text, parse_mode=ParseMode.HTML),
            "send passphrase",
            resend_if_unsure=False,
        )
    except TelegramError as exc:
        log.warning(
            "passphrase for %s not delivered (%s); revoking", bundle.serial, type(exc).__name__
        )
        await _undelivered(bot, rt, chat_id, bundle, file_message)
        return False
    await schedule_deletion(rt, secret_message)
    if not await rt.service.confirm_delivery(bundle.serial):
        log.warning("certificate %s was revoked while it was being delivered", bundle.serial)
        notice = t(chat.REVOKED_WHILE_DELIVERED)
        try:
            await with_retry(lambda: bot.send_message(chat_id, notice), "revoked notice")
        except TelegramError:
            log.info("could not tell chat that the delivered certificate was revoked")
        return False
    return True


async def _undelivered(
    bot: Bot, rt: Runtime, chat_id: int, bundle: IssuedBundle, file_message: Message | None
) -> None:
    """Revoke a bundle that did not fully arrive, remove its file, and say why."""
    await rt.service.revoke_undelivered(bundle.serial)
    if file_message is not None:
        try:
            await bot.delete_message(chat_id, file_message.message_id)
        except TelegramError:
            log.info("could not delete the orphaned certificate file; the schedule will")
    try:
        notice = t(chat.UNDELIVERED)
        await with_retry(lambda: bot.send_message(chat_id, notice), "undelivered notice")
    except TelegramError:
        log.info("could not tell chat about the undelivered certificate")


async def _send_pin_and_steps(bot: Bot, rt: Runtime, chat_id: int, bundle: IssuedBundle) -> None:
    """The CA and the steps are not secret; a failure here is logged, not fatal."""
    pin = await rt.service.phone_pin()
    try:
        if pin is not None:  # OTCERT_PHONE_CA=none: a public CA, nothing to trust
            await send_pin(bot, chat_id, pin.pem, pin.der)
        if rt.mqtt_host:  # the steps stay last: they say what to do with every file
            await send_otrc(bot, rt, chat_id, bundle)
        await with_retry(
            lambda: bot.send_message(
                chat_id,
                render.steps(
                    bundle.platform, ca=CA_FILENAME if pin else None, filename=bundle.filename,
                    host=rt.mqtt_host, port=rt.mqtt_port, username=bundle.username,
                    device=bundle.device,
                ),
                parse_mode=ParseMode.HTML,
                disable_web_page_preview=True,
            ),
            "send steps",
        )
    except TelegramError as exc:
        log.warning("CA or steps not delivered to a chat: %s", type(exc).__name__)


async def send_otrc(bot: Bot, rt: Runtime, chat_id: int, bundle: IssuedBundle) -> None:
    """The app's connection settings as ``<username>-<device>.otrc`` (never a secret)."""
    assert rt.mqtt_host is not None
    data = otrc.otrc_bytes(
        host=rt.mqtt_host, port=rt.mqtt_port, username=bundle.username, device=bundle.device,
        pkcs_filename=bundle.filename, platform=bundle.platform,
    )
    name = otrc.otrc_filename(bundle.username, bundle.device)
    await with_retry(
        lambda: bot.send_document(
            chat_id, InputFile(data, filename=name), caption=t(doors.OTRC_CAPTION)
        ),
        "send config file",
    )


async def send_pin(
    bot: Bot, chat_id: int, pem: bytes, der: bytes, caption: str | None = None
) -> None:
    """The CA as ``ca.crt`` and as an OwnTracks pin file ``ca.otre``."""
    await with_retry(
        lambda: bot.send_document(
            chat_id, InputFile(pem, filename=CA_FILENAME), caption=caption or t(chat.CA_CAPTION)
        ),
        "send CA",
    )
    await with_retry(
        lambda: bot.send_document(
            chat_id, InputFile(der, filename=PIN_FILENAME), caption=t(chat.PIN_CAPTION)
        ),
        "send pin",
    )


async def schedule_deletion(rt: Runtime, message: Message) -> None:
    """Recorded in the database, so the deletion survives a restart."""
    await rt.service.schedule_deletion(
        message.chat_id, message.message_id, timedelta(seconds=rt.secret_ttl)
    )


async def delete_due_messages(context: ContextTypes.DEFAULT_TYPE) -> None:
    """JobQueue job: delete every secret message whose time has come."""
    app: Application = context.application  # type: ignore[type-arg]
    rt = app.bot_data["runtime"]
    assert isinstance(rt, Runtime)
    for item in await rt.service.due_deletions():
        try:
            await app.bot.delete_message(item.chat_id, item.message_id)
        except (BadRequest, Forbidden) as exc:
            # Already gone, too old, or the person blocked us: nothing more we can do.
            log.info("scheduled deletion %s dropped: %s", item.id, type(exc).__name__)
        except TelegramError as exc:
            log.info("scheduled deletion %s will be retried: %s", item.id, type(exc).__name__)
            continue
        await rt.service.finish_deletion(item.id)
