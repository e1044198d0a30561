"""Private keys generated ahead of time in worker threads.

RSA key generation costs tens of milliseconds with a wide spread; a small pool takes it
off the /getcert path and keeps it off the event loop. Keys live in memory only and each
one is handed out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pki.keys import ClientKeyType, PrivateKey, generate_private_key

log = logging.getLogger(__name__)


class KeyPool:
    def __init__(self, key_type: ClientKeyType, size: int) -> None:
        self.key_type = key_type
        self.size = size
        self._keys: asyncio.Queue[PrivateKey] = asyncio.Queue(maxsize=max(size, 1))
        self._refill: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.size > 0 and self._refill is None:
            self._refill = asyncio.create_task(self._fill_forever(), name="key-pool-refill")

    async def stop(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill
            self._refill = None
        while not self._keys.empty():
            self._keys.get_nowait()

    async def take(self) -> PrivateKey:
        """A fresh key: from the pool when one is ready, else made now in a thread."""
        try:
            return self._keys.get_nowait()
        except asyncio.QueueEmpty:
            return await asyncio.to_thread(generate_private_key, self.key_type)

    @property
    def ready(self) -> int:
        return self._keys.qsize()

    async def _fill_forever(self) -> None:
        while True:
            try:
                key = await asyncio.to_thread(generate_private_key, self.key_type)
            except Exception:
                log.exception("key generation failed; retrying in 1 s")
                await asyncio.sleep(1)
                continue
            await self._keys.put(key)
