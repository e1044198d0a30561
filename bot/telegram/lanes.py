"""How many certificate deliveries run at once, and which part goes first.

A burst of /getcert would otherwise put hundreds of Bot API requests, signing jobs and
database writes in flight together: every one of them, and every other person's /start,
then waits behind all the others (and the HTTP pool's bookkeeping grows with each
connection). Deliveries queue here instead. Secrets (file and passphrase: what the person
is waiting for) run a few at a time, enough to overlap the signing worker with the uploads;
the CA, pin and steps wait until no secrets delivery is waiting (at most a couple of
seconds, so a steady stream of /getcert cannot hold them back for good), then follow in a
smaller lane. Nothing here knows about Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

SECRETS_LANE = 4
# Each extras delivery sends four messages one after the other, so with Telegram's limit
# shaped by bot.telegram.limiter (which already puts them behind secrets and replies) two
# lanes could not keep 30 sends a second busy once each answer takes more than ~70 ms.
EXTRAS_LANE = 8
EXTRAS_MAX_WAIT = 2.0  # seconds the extras yield to secrets before they go anyway


class DeliveryLanes:
    def __init__(
        self, secrets: int = SECRETS_LANE, extras: int = EXTRAS_LANE,
        extras_max_wait: float = EXTRAS_MAX_WAIT,
    ) -> None:
        self._secrets = asyncio.Semaphore(secrets)
        self._extras = asyncio.Semaphore(extras)
        self._extras_max_wait = extras_max_wait
        self._secrets_pending = 0
        self._no_secrets_pending = asyncio.Event()
        self._no_secrets_pending.set()

    @contextlib.asynccontextmanager
    async def secrets(self) -> AsyncIterator[None]:
        """A turn to issue and send a file and its passphrase."""
        self._secrets_pending += 1
        self._no_secrets_pending.clear()
        try:
            async with self._secrets:
                yield
        finally:
            self._secrets_pending -= 1
            if self._secrets_pending == 0:
                self._no_secrets_pending.set()

    @contextlib.asynccontextmanager
    async def extras(self) -> AsyncIterator[None]:
        """A turn for what follows the secrets, once nobody waits for theirs (or after
        ``extras_max_wait`` seconds in any case)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._extras_max_wait):
                await self._no_secrets_pending.wait()
        async with self._extras:
            yield

    @property
    def secrets_pending(self) -> int:
        return self._secrets_pending
