"""Locks on files in the data dir, shared by every process that uses it.

Why: the bot, ``otcert revoke``, ``otcert restore`` and a cron'd ``otcert crl write`` are
separate processes. An asyncio lock orders one process; ``fcntl.flock`` orders them all, and
the kernel drops it when a process dies, so a crash never leaves a stale lock behind.

- ``crl.lock``: held exclusively from reading the revoked serials to the rename and reload.
- ``bot.lock``: held (shared) by every running bot for its lifetime; ``otcert restore`` takes
  it exclusively without waiting, so it refuses while a bot holds the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

CRL_LOCK_NAME = "crl.lock"
BOT_LOCK_NAME = "bot.lock"


class LockBusy(Exception):
    """Another process holds the lock (only raised by the non-waiting variants)."""


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _lock_blocking(path: Path) -> int:
    """Open and lock ``path`` exclusively, waiting as long as it takes; returns the fd."""
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _close_when_done(task: asyncio.Future[int]) -> None:
    if not task.cancelled() and task.exception() is None:
        os.close(task.result())


@contextlib.asynccontextmanager
async def exclusive(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive flock on ``path``; the wait happens in a thread, off the event loop.

    If the waiting task is cancelled, the thread still gets the lock eventually: it is then
    released at once rather than leaked (a leaked fd would block every other process).
    """
    task = asyncio.ensure_future(asyncio.to_thread(_lock_blocking, Path(path)))
    try:
        fd = await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_close_when_done)
        raise
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def exclusive_now(path: Path) -> Iterator[None]:
    """Take an exclusive flock on ``path`` without waiting; :class:`LockBusy` if held."""
    fd = _open_lock_file(Path(path))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(str(path)) from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_blocking(path: Path) -> Iterator[None]:
    """The same exclusive lock as :func:`exclusive`, for synchronous code outside a loop."""
    fd = _lock_blocking(Path(path))
    try:
        yield
    finally:
        os.close(fd)


_held: list[int] = []


def hold_for_lifetime(path: Path) -> None:
    """Take a shared flock on ``path`` and keep it until the process exits (the running bot).

    Shared, so two bots on one data dir are still allowed as before; only an exclusive taker
    (restore) is kept out."""
    fd = _open_lock_file(Path(path))
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)
