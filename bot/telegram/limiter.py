"""Keeping under Telegram's flood limit instead of hitting it and waiting.

Telegram answers 429 when a bot sends more than about 30 messages a second. Retrying after
the 429 works but costs a second or more per hit, and a burst of /getcert hits it dozens of
times. Every message-sending request passes this limiter instead: at most ``per_second``
sends start in any one-second window, and when more wait, they go in priority order:

- ``REPLY`` (the default): direct answers to what someone just typed (/start, refusals):
  one message each, and a person watching the chat (bench: /start p99 during a burst of 50
  /getcert fell from ~0.8-1 s to a fraction when replies stopped queueing behind secrets);
- ``SECRET``: a certificate file and its passphrase (what a person is waiting for, and the
  pair must not be pulled apart by other deliveries' CA, pin and steps);
- ``EXTRAS``: the CA, the pin, the steps and the config file, and fan-out such as /repin.

The priority travels in a context variable set by the caller (:func:`send_priority`), so
the handlers keep calling the plain ``Bot`` methods. A 429 that still arrives (another
process sharing the token) pauses every send for its ``retry_after``; the caller retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from datetime import timedelta
from enum import IntEnum
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

SENDS_PER_SECOND = 30
WINDOW = 1.005  # seconds: one, and a hair for float rounding
SHAPED_PREFIXES = ("send", "edit", "copy", "forward")


class Priority(IntEnum):
    REPLY = 0
    SECRET = 1
    EXTRAS = 2


_priority: ContextVar[Priority] = ContextVar("send_priority", default=Priority.REPLY)


@contextlib.contextmanager
def send_priority(priority: Priority) -> Iterator[None]:
    """Sends made inside this block (in this task) queue with ``priority``."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


def shaped(endpoint: str) -> bool:
    """Requests that post a message count against the limit; the rest pass untouched."""
    return endpoint.startswith(SHAPED_PREFIXES)


class SendLimiter(BaseRateLimiter[None]):
    """A sliding-window limiter with a priority queue (see the module docstring).

    A send holds its place in the window from the moment it starts until one window after
    its answer came back. Telegram counts a message somewhere between those two moments, so
    no one-second stretch of Telegram's clock can see more than ``per_second`` of ours,
    however late an upload arrives (counting from the start alone let one slow upload and a
    punctual follower meet in the same second)."""

    def __init__(
        self, per_second: int = SENDS_PER_SECOND, window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_window = per_second
        self._window = window
        self._clock = clock
        self._in_flight = 0
        self._finished: deque[float] = deque()  # when the sends in the window got answered
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._paused_until = 0.0
        self._wake: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None

    async def initialize(self) -> None:
        """Nothing yet: the pump starts with the first send, so a start-up that fails (a
        rejected token) leaves no task behind for the closing loop to complain about."""
        self._wake = asyncio.Event()

    async def shutdown(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for _, _, future in self._waiting:
            future.cancel()
        self._waiting.clear()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if not shaped(endpoint) or self._wake is None:
            return await callback(*args, **kwargs)
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name="send-limiter")
        await self._turn(_priority.get())
        try:
            return await callback(*args, **kwargs)
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            raise
        finally:
            self._in_flight -= 1
            self._finished.append(self._clock())
            self._wake.set()

    @property
    def waiting(self) -> int:
        return sum(not f.done() for _, _, f in self._waiting)

    async def _turn(self, priority: Priority) -> None:
        assert self._wake is not None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (int(priority), next(self._order), future))
        self._wake.set()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._in_flight -= 1  # granted, then given up before sending
                self._finished.append(self._clock())
            raise

    async def _run(self) -> None:
        """Hand out turns: the most urgent waiter first, whenever the window has room."""
        assert self._wake is not None
        while True:
            self._wake.clear()
            while self._waiting and self._waiting[0][2].done():
                heapq.heappop(self._waiting)  # its sender gave up (cancelled)
            now = self._clock()
            while self._finished and self._finished[0] <= now - self._window:
                self._finished.popleft()
            if not self._waiting:
                await self._wake.wait()
                continue
            delay: float | None = None
            if self._paused_until > now:
                delay = self._paused_until - now
            elif self._in_flight + len(self._finished) >= self._per_window:
                # room comes back when an answer arrives (wake) or an old one leaves the window
                delay = self._finished[0] + self._window - now if self._finished else None
            else:
                _, _, future = heapq.heappop(self._waiting)
                self._in_flight += 1
                future.set_result(None)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
