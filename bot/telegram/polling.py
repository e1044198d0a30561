"""Long polling that survives an update PTB cannot parse.

Why: PTB parses a whole getUpdates batch at once; one update it cannot read (a missing field,
a new Bot API field of an unexpected type) makes the batch fail, and since the offset never
moves past it, the same batch fails forever: the bot goes deaf for everyone. This request
class, used only for getUpdates, replaces each unreadable update by an empty one with the same
``update_id`` (logged by id, never by content): PTB handles the rest of the batch as usual,
no handler matches the empty update, and the offset moves on.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from telegram import Update
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, HTTPXRequest, RequestData

log = logging.getLogger(__name__)


def readable_or_placeholder(item: Any) -> dict[str, Any] | None:
    """The update itself if PTB can read it, else ``{"update_id": id}``; None if it has no id."""
    try:
        if _plausible(Update.de_json(item, None)):
            return dict(item)
        raise TypeError("fields of the wrong type")
    except Exception:  # anything PTB cannot read: keep only its id
        update_id = item.get("update_id") if isinstance(item, dict) else None
        if not _is_int(update_id):
            log.warning("dropped an unreadable update without an id")
            return None
        log.warning("update %s could not be read and was skipped", update_id)
        return {"update_id": update_id}


def _plausible(update: Update) -> bool:
    """PTB does not check types; the fields PTB and the handlers rely on must be right."""
    user, chat = update.effective_user, update.effective_chat
    message, query = update.effective_message, update.callback_query
    checks = [
        user is None or (_is_int(user.id) and isinstance(user.first_name, str)),
        chat is None or (_is_int(chat.id) and isinstance(chat.type, str)),
        message is None or (_is_int(message.message_id)
                            and _is_int(getattr(message.chat, "id", None))
                            and isinstance(message.text, str | None)
                            and isinstance(message.entities, tuple)),
        query is None or (isinstance(query.id, str) and isinstance(query.data, str | None)
                          and _is_int(getattr(query.from_user, "id", None))),
    ]
    return all(checks)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class TolerantUpdatesRequest(HTTPXRequest):
    """An HTTPXRequest for getUpdates (PTB's defaults) that never returns a poisoned batch."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(
            url, method, request_data, read_timeout=read_timeout, write_timeout=write_timeout,
            connect_timeout=connect_timeout, pool_timeout=pool_timeout,
        )
        return code, sanitize_updates(payload) if code == HTTPStatus.OK else payload


def sanitize_updates(payload: bytes) -> bytes:
    """A getUpdates answer with every unreadable update replaced by a placeholder."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload  # PTB reports an unreadable answer itself, and retries
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, list):
        return payload
    kept = [readable_or_placeholder(item) for item in result]
    body["result"] = [item for item in kept if item is not None]
    return json.dumps(body).encode()
