"""The Bot API client sends an upload's body in one piece, with our timeouts."""

from __future__ import annotations

import httpx

from bot.telegram.api_request import api_request, body_in_one_piece


async def test_a_multipart_upload_is_read_into_one_piece_before_sending() -> None:
    request = httpx.Request(
        "POST", "http://127.0.0.1:9/bot123:abc/sendDocument",
        data={"chat_id": "42", "caption": "Your certificate"},
        files={"document": ("alice-phone.otrp", b"\x30\x82" + bytes(3200))},
    )
    streamed = [chunk async for chunk in request.stream]  # type: ignore[union-attr]
    assert len(streamed) > 3  # what httpx would write one by one
    await body_in_one_piece(request)
    pieces = [chunk async for chunk in request.stream]  # type: ignore[union-attr]
    assert pieces == [b"".join(streamed)]


def test_the_bot_api_client_uses_the_hook_and_ptbs_defaults_with_our_timeouts() -> None:
    request = api_request(7.0)
    client = request._client  # PTB keeps the httpx client private
    assert client.event_hooks["request"] == [body_in_one_piece]
    timeout = client.timeout
    assert (timeout.connect, timeout.read, timeout.write) == (7.0, 7.0, 7.0)
    assert timeout.pool == 1.0  # PTB's default, as with the builder before
    assert request._media_write_timeout == 28.0
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._max_connections == 256  # PTB's default for Bot API calls
