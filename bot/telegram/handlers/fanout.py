"""Telling every admin something, each in their own language, and knowing whether anyone
heard: a reminder mark is confirmed only once at least one admin received it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.telegram.handlers.delivery import with_retry
from bot.texts import speaking

log = logging.getLogger(__name__)

LanguageOf = Callable[[int], Awaitable[str]]


async def tell_admins(
    bot: Bot, admin_ids: Iterable[int], language_of: LanguageOf, render: Callable[[], str],
    *, keyboard: Callable[[], InlineKeyboardMarkup] | None = None, what: str = "admin notice",
) -> int:
    """Send ``render()`` (and ``keyboard()``), built in each admin's language, to every admin;
    how many received it. One admin's failure never stops the others."""
    told = 0
    for admin_id in sorted(admin_ids):
        with speaking(await language_of(admin_id)):
            text = render()
            markup = keyboard() if keyboard is not None else None
        try:
            await with_retry(
                lambda a=admin_id, said=text, m=markup: bot.send_message(  # type: ignore[misc]
                    a, said, parse_mode=ParseMode.HTML, reply_markup=m),
                what,
            )
        except TelegramError as exc:
            log.warning("could not send %s to admin %s: %s", what, admin_id, type(exc).__name__)
            continue
        told += 1
    return told
