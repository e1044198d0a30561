"""A fake Telegram Bot API server that the real python-telegram-bot talks HTTP to.

Why: handlers, retries and error paths run through the real PTB client and real HTTP,
without the network. Tests inject user updates and faults, then read back what the bot sent.
The server runs in its own thread and event loop, so sync tests (bot as a subprocess) and
async tests (in-process Application) can both use it. This module is the test-facing API;
behind it: _fake_telegram_http.py (routes, faults), _fake_telegram_api.py (Bot API methods
and state), _fake_telegram_wire.py (value objects, body decoding, Telegram's checks).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from tests._fake_telegram_api import ApiState
from tests._fake_telegram_http import serve
from tests._fake_telegram_wire import (
    BOT_USERNAME,
    DEFAULT_GROUP_CHAT_ID,
    FAULT_KINDS,
    Call,
    CallbackAnswer,
    FakeUser,
    Fault,
    SentMessage,
    UploadedFile,
)

__all__ = [
    "BOT_USERNAME", "DEFAULT_GROUP_CHAT_ID", "Call", "CallbackAnswer", "FakeTelegram",
    "FakeUser", "SentMessage", "UploadedFile",
]

_T = TypeVar("_T")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")


class FakeTelegram:
    """The fake server plus thread-safe injection, recording and waiting for tests."""

    def __init__(
        self, *, bot_id: int = 123456789, token: str | None = None,
        send_limit: int | None = None,
    ) -> None:
        """``send_limit``: answer 429 (retry_after 1) to sends beyond N in one second, as
        Telegram does to a flooding bot; None (default) never limits."""
        self.bot_id = bot_id
        self.token = token or f"{bot_id}:AAH{secrets.token_urlsafe(24)}"
        self.port = 0
        self._state = ApiState(bot_id, self.token)
        self._state.send_limit = send_limit
        self._cond = self._state.cond
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_server: Callable[[], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """PTB's ``base_url``: it appends ``<token>/<method>``."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """PTB's ``base_file_url``: it appends ``<token>/<file_path>``."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    def start(self) -> FakeTelegram:
        """Bind a free port and serve from a background thread."""
        if self._thread is not None:
            raise RuntimeError("FakeTelegram already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._stop_server = loop.run_until_complete(serve(self._state, sock))
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._state.loop = loop
        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise RuntimeError("fake Telegram server failed to start") from errors[0]
        return self

    def stop(self) -> None:
        """End long polls and held requests, close the server, join the thread."""
        loop, thread, stop_server = self._loop, self._thread, self._stop_server
        if loop is None or thread is None or stop_server is None:
            return
        stop_server()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = self._stop_server = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- injecting what people do ----------------------------------------------------------
    def user(
        self, telegram_id: int, first_name: str = "Test", username: str | None = None,
        last_name: str | None = None, language_code: str = "en",
    ) -> FakeUser:
        """A person whose app reports ``language_code``; their private chat becomes known,
        so the bot may write to them."""
        person = FakeUser(telegram_id, first_name, username, last_name, language_code)
        with self._cond:
            self._state.chat_for(person, "private", None)
        return person

    def send_text(
        self, user: FakeUser, text: str, *, chat_type: str = "private",
        chat_id: int | None = None, reply_to_message_id: int | None = None,
    ) -> int:
        """The person sends ``text``; a leading /command gets its bot_command entity."""
        content: dict[str, Any] = {"text": text}
        command = _COMMAND.match(text)
        if command:
            length = len(command.group().encode("utf-16-le")) // 2
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._state.inject_message(user, content, chat_type, chat_id, reply_to_message_id)

    def send_document(
        self, user: FakeUser, filename: str, content: bytes, *, caption: str | None = None,
        reply_to_message_id: int | None = None, mime_type: str = "application/octet-stream",
        chat_type: str = "private", chat_id: int | None = None,
    ) -> int:
        """The person sends a file; the bot can fetch it with getFile and a download."""
        with self._cond:
            document = self._state.store_file(UploadedFile(filename, content, mime_type))
        body: dict[str, Any] = {"document": document}
        if caption is not None:
            body["caption"] = caption
        return self._state.inject_message(user, body, chat_type, chat_id, reply_to_message_id)

    def press_button(
        self, user: FakeUser, message_id: int, data: str, *, chat_id: int | None = None,
    ) -> str:
        """A callback query with any ``data`` (forged data welcome); returns the query id.

        An unknown or deleted message arrives as Telegram's inaccessible message (date 0).
        """
        return self._state.inject_callback(user, message_id, data, chat_id)

    def send_raw_update(self, update: dict[str, Any]) -> int:
        """Queue any payload as-is (hostile tests); the fake assigns ``update_id``."""
        with self._cond:
            return self._state.push_update(dict(update))

    # -- recording -------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        with self._cond:
            return list(self._state.calls)

    def calls_to(self, method: str) -> list[Call]:
        """Every call of one method (case-insensitive, as Telegram treats them)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    @property
    def unknown_methods(self) -> list[str]:
        return [c.method for c in self.calls if c.status == 404]

    def sent_messages(self, chat_id: int | None = None) -> list[SentMessage]:
        """sendMessage and sendDocument results since the last reset, oldest first."""
        with self._cond:
            sent = list(self._state.sent.values())
        return [m for m in sent if chat_id is None or m.chat_id == chat_id]

    @property
    def deleted(self) -> set[tuple[int, int]]:
        """(chat_id, message_id) of every message the bot deleted."""
        with self._cond:
            return set(self._state.deleted)

    @property
    def callback_answers(self) -> list[CallbackAnswer]:
        with self._cond:
            return list(self._state.callback_answers)

    def unconfirmed_updates(self) -> int:
        """Updates the bot has not yet confirmed with a getUpdates offset."""
        with self._cond:
            return len(self._state.updates)

    def reset_calls(self) -> None:
        """Forget recordings (calls, sent, deleted, answers); chats, messages, faults stay."""
        with self._cond:
            self._state.calls.clear()
            self._state.sent.clear()
            self._state.deleted.clear()
            self._state.callback_answers.clear()

    # -- waiting ---------------------------------------------------------------------------
    def wait_for(
        self, predicate: Callable[[SentMessage], bool], timeout: float = 10.0, *,
        chat_id: int | None = None,
    ) -> SentMessage:
        """Block until a sent message (already sent or future) matches; else AssertionError."""
        found = self._wait(lambda: next(
            (m for m in self.sent_messages(chat_id) if predicate(m)), None), timeout)
        if found is None:
            lines = [m.summary() for m in self.sent_messages()] or ["(nothing)"]
            raise AssertionError(
                f"no sent message matched within {timeout} s; the bot sent:\n  "
                + "\n  ".join(lines) + "\n" + self._describe_calls())
        return found

    def wait_for_call(
        self, method: str, predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
    ) -> Call:
        """Block until a call of ``method`` (matching ``predicate``) is recorded."""
        found = self._wait(lambda: next(
            (c for c in self.calls_to(method) if predicate is None or predicate(c)), None),
            timeout)
        if found is None:
            raise AssertionError(
                f"no {method} call matched within {timeout} s\n" + self._describe_calls())
        return found

    async def async_wait_for(
        self, predicate: Callable[[SentMessage], bool], timeout: float = 10.0, *,
        chat_id: int | None = None,
    ) -> SentMessage:
        """``wait_for`` without blocking the test's event loop."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, chat_id=chat_id)

    async def async_wait_for_call(
        self, method: str, predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
    ) -> Call:
        return await asyncio.to_thread(self.wait_for_call, method, predicate, timeout)

    def _wait(self, probe: Callable[[], _T | None], timeout: float) -> _T | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (found := probe()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return found

    def _describe_calls(self) -> str:
        calls = self.calls[-15:]
        lines = [f"{c.method} -> {c.status} {c.fault or ''} {c.error or ''}".rstrip()
                 for c in calls]
        return "last calls: " + (", ".join(lines) or "(none)")

    # -- faults ----------------------------------------------------------------------------
    def inject_fault(
        self, method: str, kind: str, *, times: int = 1, retry_after: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (to ``chat_id``, if given) fail.

        kinds: "429" (retry_after), "500", "502", "timeout" (held, then dropped),
        "drop" (connection closed, no answer), "403" (blocked by the user),
        "lost_reply" (the call is carried out, then the connection drops before the answer).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {sorted(FAULT_KINDS)}")
        with self._cond:
            self._state.faults.append(Fault(method.lower(), kind, times, retry_after, chat_id))

    def limit_sends(self, per_second: int | None) -> None:
        """Change the flood limit (None: none) while the server runs."""
        with self._cond:
            self._state.send_limit = per_second

    def rate_limited(self) -> list[Call]:
        """Every call answered 429 by the send limit (not by an injected fault)."""
        return [c for c in self.calls if c.fault == "rate_limit"]

    def clear_faults(self) -> None:
        with self._cond:
            self._state.faults.clear()

    def block(self, chat_id: int) -> None:
        """Every call aimed at ``chat_id`` answers 403 until ``unblock``."""
        with self._cond:
            self._state.blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        with self._cond:
            self._state.blocked.discard(chat_id)
