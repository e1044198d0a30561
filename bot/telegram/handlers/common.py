"""Shared plumbing for the thin handlers: reaching the service, replying, guarding."""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram import CallbackQuery, Chat, Update, User
from telegram.error import BadRequest
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.core.errors import UserError
from bot.core.models import StorageError
from bot.core.service import Service
from bot.telegram.callbacks import ButtonData, parse, telegram_id
from bot.telegram.lanes import DeliveryLanes
from bot.telegram.render import render_error
from bot.texts import chat, t
from pki.authority import CAError
from pki.bundle import CertificateRejected
from pki.names import InvalidName

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
PEOPLE_ERRORS = (UserError, InvalidName, StorageError, CertificateRejected, CAError)
ARG_MAX = 256  # longer arguments are refused before any parsing


@dataclass
class Runtime:
    """Everything the handlers share, kept in ``application.bot_data``."""

    service: Service
    mqtt_host: str | None
    mqtt_port: int
    secret_ttl: int
    throttle: Throttle = field(default_factory=lambda: Throttle())
    # People whose certificate is being issued or delivered right now (double taps).
    delivering: set[int] = field(default_factory=set)
    lanes: DeliveryLanes = field(default_factory=lambda: DeliveryLanes())


def runtime(context: Context) -> Runtime:
    rt = context.bot_data["runtime"]
    assert isinstance(rt, Runtime)
    return rt


async def reply(update: Update, text: str, **kwargs: Any) -> None:
    message = update.effective_message
    if message is not None:
        await message.reply_html(text, disable_web_page_preview=True, **kwargs)


def is_private(update: Update) -> bool:
    where = update.effective_chat
    return where is not None and where.type == Chat.PRIVATE


def args_of(context: Context) -> list[str]:
    return list(context.args or [])


async def guard_args(update: Update, context: Context) -> bool:
    """Refuse absurdly long input early, with an answer."""
    if sum(len(a) for a in args_of(context)) > ARG_MAX:
        await reply(update, t(chat.TOO_LONG))
        return False
    return True


async def answer_query(
    query: CallbackQuery, text: str | None = None, *, show_alert: bool = False
) -> None:
    """Answer a button press. Telegram refuses answers after ~15 s (a backlog after a restart,
    a forged query id): that must not cancel the work the press asked for."""
    try:
        await query.answer(text, show_alert=show_alert)
    except BadRequest as exc:
        log.info("button press not answered: %s", exc.message)


async def require_admin(update: Update, context: Context) -> bool:
    """Admin commands need an admin *and* a private chat: listings name people and ids."""
    user = update.effective_user
    if user is None or not runtime(context).service.is_admin(user.id):
        await reply(update, t(chat.NOT_ADMIN))
        return False
    if not is_private(update):
        await reply(update, t(chat.ADMIN_PRIVATE_ONLY))
        return False
    return True


class NotATelegramId(UserError):
    """An admin typed something that is not a Telegram user id."""

    def __init__(self, value: str) -> None:
        super().__init__(chat.BAD_TELEGRAM_ID, value=value)


def parse_telegram_id(value: str) -> int:
    tid = telegram_id(value)
    if tid is None:
        raise NotATelegramId(value[:32])
    return tid


class Throttle:
    """Per-person sliding window: a flood gets one polite answer per window, then silence.

    People idle for a whole window are forgotten (checked once per window), so the memory
    follows the people active right now, not everyone who ever wrote.
    """

    def __init__(
        self, limit: int = 20, window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._seen: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}
        self._next_prune = clock() + window

    @property
    def tracked(self) -> int:
        """How many people the throttle currently remembers."""
        return len(self._seen.keys() | self._warned.keys())

    def allow(self, user_id: int) -> tuple[bool, bool]:
        """(allowed, should_warn)."""
        now = self._clock()
        if now >= self._next_prune:
            self._prune(now)
        hits = self._seen.setdefault(user_id, deque())
        while hits and now - hits[0] > self.window:
            hits.popleft()
        if len(hits) < self.limit:
            hits.append(now)
            return True, False
        warned = self._warned.get(user_id)
        if warned is None or now - warned > self.window:
            self._warned[user_id] = now
            return False, True
        return False, False

    def _prune(self, now: float) -> None:
        self._seen = {
            uid: hits for uid, hits in self._seen.items() if hits and now - hits[-1] <= self.window
        }
        self._warned = {uid: at for uid, at in self._warned.items() if now - at <= self.window}
        self._next_prune = now + self.window


async def throttle_updates(update: Update, context: Context) -> None:
    """Runs before every handler (group -1)."""
    user = update.effective_user
    if user is None:
        return
    rt = runtime(context)
    if rt.service.is_admin(user.id):
        return
    allowed, warn = rt.throttle.allow(user.id)
    if allowed:
        return
    if warn:
        if update.callback_query is not None:
            await answer_query(update.callback_query, t(chat.SLOW_DOWN))
        else:
            await reply(update, t(chat.SLOW_DOWN))
    raise ApplicationHandlerStop


# Commands that only read: after a crash they are simply answered again, which spares each
# of them a write transaction (and its fsync) queued behind every delivery's writes.
READ_ONLY_COMMANDS = frozenset({"start", "help", "pending", "users"})


def is_read_only(update: Update) -> bool:
    message = update.message
    if update.callback_query is not None or message is None or not message.text:
        return False
    word = message.text.split(maxsplit=1)[0] if message.text.strip() else ""
    return word.startswith("/") and word[1:].split("@", 1)[0].lower() in READ_ONLY_COMMANDS


async def claim_update(update: Update, context: Context) -> None:
    """After a crash Telegram re-sends updates we may already have acted on; skip those."""
    if is_read_only(update):
        return
    if not await runtime(context).service.claim_update(update.update_id):
        log.info("update %s already handled before a restart; skipped", update.update_id)
        raise ApplicationHandlerStop


async def on_error(update: object, context: Context) -> None:
    """Bugs are logged with a reference; people see only the reference."""
    ref = secrets.token_hex(4)
    log.error("unhandled error %s", ref, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await reply(update, t(chat.INTERNAL_ERROR, ref=ref))
        except Exception:
            log.warning("could not tell the person about error %s", ref)


async def answer_user_error(update: Update, exc: Exception) -> None:
    """Tell the sender what went wrong and how to fix it."""
    await reply(update, render_error(exc))



async def one_optional_arg(update: Update, context: Context, usage: str) -> tuple[bool, str | None]:
    """The start of /getcert and /renew: a private chat, sane input, at most one argument.
    ``(False, None)`` when the person was already answered."""
    if not is_private(update):
        await reply(update, t(chat.PRIVATE_ONLY))
        return False, None
    if not await guard_args(update, context):
        return False, None
    args = args_of(context)
    if len(args) > 1:
        await reply(update, t(usage))
        return False, None
    return True, args[0] if args else None


Button = TypeVar("Button", bound=ButtonData)


async def admin_button(
    update: Update, context: Context, kind: type[Button]
) -> tuple[CallbackQuery, User, Button] | None:
    """An admin's button press of format ``kind``: authority from who pressed, never from the
    data; anyone else, or data of another format, gets an answer and ``None``."""
    query = update.callback_query
    if query is None:
        return None
    presser = query.from_user
    if not runtime(context).service.is_admin(presser.id):
        await answer_query(query, t(chat.NOT_ADMIN), show_alert=True)
        return None
    button = parse(query.data)
    if not isinstance(button, kind):
        await answer_query(query, t(chat.BUTTON_STALE))
        return None
    return query, presser, button
