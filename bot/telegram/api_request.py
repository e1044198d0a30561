"""The HTTP client for every Bot API call except getUpdates.

PTB's HTTPXRequest with our timeouts and one change: an upload's multipart body is read
into one piece before it is sent. httpx otherwise streams it in a dozen small writes, each
a syscall and a wake-up of the other side; under a burst of /getcert (three uploads each)
that streaming was about a quarter of the bot's CPU. The bodies are small (a PKCS#12 file,
a CA certificate) and already in memory.
"""

from __future__ import annotations

import httpx
from telegram.request import HTTPXRequest

MEDIA_TIMEOUT_FACTOR = 4


async def body_in_one_piece(request: httpx.Request) -> None:
    """httpx event hook: after this the request's stream yields its whole body at once."""
    await request.aread()


def api_request(timeout: float) -> HTTPXRequest:
    return HTTPXRequest(
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        media_write_timeout=MEDIA_TIMEOUT_FACTOR * timeout,
        httpx_kwargs={"event_hooks": {"request": [body_in_one_piece]}},
    )
