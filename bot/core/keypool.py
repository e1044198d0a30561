"""Private keys generated ahead of time in worker threads.

RSA key generation costs tens of milliseconds with a wide spread; a small pool takes it
off the /getcert path and keeps it off the event loop. Keys live in memory only and each
one is handed out once.

Refills wait while certificates are being delivered (``paused``) and then run in threads at
the lowest CPU priority (nice 19, per thread on Linux): after a burst of 50 /getcert, ~4 s of
RSA key generation would otherwise compete with the deliveries and answers still in flight.
A key someone is waiting for (pool empty) is made at once, at normal priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from pki.keys import ClientKeyType, PrivateKey, generate_private_key

log = logging.getLogger(__name__)


def _lowest_priority() -> None:
    """Thread initializer: nice 19 for this thread only (Linux threads have their own)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class KeyPool:
    def __init__(self, key_type: ClientKeyType, size: int) -> None:
        self.key_type = key_type
        self.size = size
        self._keys: asyncio.Queue[PrivateKey] = asyncio.Queue(maxsize=max(size, 1))
        self._refills: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        if self.size <= 0 or self._refills:
            return
        workers = min(os.cpu_count() or 1, self.size)
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="key-pool", initializer=_lowest_priority
        )
        self._refills = [
            asyncio.create_task(self._fill_forever(self._executor), name=f"key-pool-refill-{i}")
            for i in range(workers)
        ]

    async def stop(self) -> None:
        for task in self._refills:
            task.cancel()
        for task in self._refills:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._refills = []
        if self._executor is not None:
            executor, self._executor = self._executor, None
            # Wait for a key still being made, off the loop: no thread outlives the pool.
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        while not self._keys.empty():
            self._keys.get_nowait()

    async def take(self) -> PrivateKey:
        """A fresh key: from the pool when one is ready, else made now in a thread."""
        try:
            return self._keys.get_nowait()
        except asyncio.QueueEmpty:
            return await asyncio.to_thread(generate_private_key, self.key_type)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No new refills start while any caller is inside (a delivery in flight)."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    @property
    def ready(self) -> int:
        return self._keys.qsize()

    async def _fill_forever(self, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._idle.wait()
            try:
                key = await loop.run_in_executor(executor, generate_private_key, self.key_type)
            except Exception:
                log.exception("key generation failed; retrying in 1 s")
                await asyncio.sleep(1)
                continue
            await self._keys.put(key)
