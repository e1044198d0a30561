"""Bot API state and methods of the fake Telegram server (see tests/fake_telegram.py).

Why: answer PTB the way Telegram does, including the errors real bots trip over (unknown
chat, bad HTML, edits that change nothing, callback data over 64 bytes, stale queries).
All state is guarded by ``ApiState.cond``; aiohttp handlers run in the server's own loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests._fake_telegram_wire import (
    BOT_FIRST_NAME,
    BOT_USERNAME,
    DEFAULT_GROUP_CHAT_ID,
    MAX_CAPTION,
    MAX_DOWNLOAD,
    MAX_TEXT,
    OPT_IN_UPDATES,
    ApiError,
    Call,
    CallbackAnswer,
    FakeUser,
    Fault,
    Json,
    SentMessage,
    StoredFile,
    UploadedFile,
    chat_id_of,
    commands_key,
    document_object,
    inline_markup,
    int_param,
    now,
    plain_text,
    set_markup,
    utf16_len,
    without_reply,
)


class ApiState:
    """Chats, messages, updates, files and recordings, plus the Bot API methods on them."""

    def __init__(self, bot_id: int, token: str) -> None:
        self.bot_id, self.token = bot_id, token
        self.cond = threading.Condition()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.updates_event: asyncio.Event | None = None
        # recordings (cleared by reset_calls)
        self.calls: list[Call] = []
        self.sent: dict[tuple[int, int], SentMessage] = {}
        self.deleted: set[tuple[int, int]] = set()
        self.callback_answers: list[CallbackAnswer] = []
        # behaviour
        self.faults: list[Fault] = []
        self.blocked: set[int] = set()
        self.send_limit: int | None = None  # sends per second before Telegram answers 429
        self._send_times: collections.deque[float] = collections.deque()
        # the world as Telegram knows it
        self.chats: dict[int, Json] = {}
        self.messages: dict[tuple[int, int], Json] = {}  # every live message, people's too
        self.updates: list[Json] = []
        self.allowed_updates: list[str] = []
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[str, list[Json]] = {}
        self.open_queries: set[str] = set()
        self._last_message_id: dict[int, int] = {}
        self._update_ids = itertools.count(1)
        self._serial = itertools.count(1)
        self._sync_methods: dict[str, Callable[[Json, dict[str, UploadedFile]], Any]] = {
            name.lower(): method for name, method in {
                "getMe": self._get_me, "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info, "setMyCommands": self._set_commands,
                "getMyCommands": self._get_commands, "deleteMyCommands": self._delete_commands,
                "sendMessage": self._send_message, "sendDocument": self._send_document,
                "sendChatAction": self._send_chat_action, "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "getFile": self._get_file, "getChat": self._get_chat,
                "close": self._true, "logOut": self._true,
            }.items()
        }

    # -- injection helpers (caller holds cond unless stated) --------------------------------
    def chat_for(self, user: FakeUser, chat_type: str, chat_id: int | None) -> Json:
        """Register and return the chat a person writes in."""
        if chat_type == "private":
            if chat_id not in (None, user.id):
                raise ValueError("a private chat's id is the person's Telegram id")
            chat = {k: v for k, v in user.to_api().items()
                    if k in ("id", "first_name", "last_name", "username")}
            chat["type"] = "private"
        elif chat_type in ("group", "supergroup"):
            chat_id = DEFAULT_GROUP_CHAT_ID if chat_id is None else chat_id
            if chat_id >= 0:
                raise ValueError("group chat ids are negative")
            chat = {"id": chat_id, "type": chat_type, "title": "Test group"}
        else:
            raise ValueError(f"chat_type must be private, group or supergroup, not {chat_type!r}")
        self.chats[chat["id"]] = chat
        return chat

    def inject_message(self, user: FakeUser, content: Json, chat_type: str,
                       chat_id: int | None, reply_to: int | None) -> int:
        """Queue a message from a person (takes the lock); returns its message id."""
        with self.cond:
            chat = self.chat_for(user, chat_type, chat_id)
            message: Json = {"date": now(), "chat": chat, "from": user.to_api(), **content}
            if reply_to is not None:
                target = self.messages.get((chat["id"], reply_to))
                if target is None:
                    raise ValueError(f"no message {reply_to} in chat {chat['id']} to reply to")
                message["reply_to_message"] = without_reply(target)
            message_id = self._remember(chat["id"], message)
            self.push_update({"message": dict(message)})
            return message_id

    def inject_callback(self, user: FakeUser, message_id: int, data: str,
                        chat_id: int | None) -> str:
        """Queue a callback query (takes the lock); returns the query id."""
        with self.cond:
            chat_id = user.id if chat_id is None else chat_id
            message = self.messages.get((chat_id, message_id))
            if message is None:  # Telegram's InaccessibleMessage
                chat = self.chats.get(chat_id) or {"id": chat_id, "type": "private"}
                message = {"chat": chat, "message_id": message_id, "date": 0}
            query_id = str(4_000_000 + next(self._serial))
            self.open_queries.add(query_id)
            self.push_update({"callback_query": {
                "id": query_id, "from": user.to_api(), "message": dict(message),
                "chat_instance": str(abs(chat_id) * 1000 + 7), "data": data,
            }})
            return query_id

    def store_file(self, upload: UploadedFile) -> Json:
        """Keep a file for getFile and downloads; returns its ``Document`` object."""
        serial = next(self._serial)
        stored = StoredFile(f"BQAC{serial:06d}{secrets.token_hex(6)}", f"AgAD{serial:06d}", upload)
        self.files[stored.file_id] = stored
        return document_object(stored)

    def push_update(self, update: Json) -> int:
        update["update_id"] = update_id = next(self._update_ids)
        self.updates.append(update)
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                self.loop.call_soon_threadsafe(self.wake_pollers)
        return update_id

    def wake_pollers(self) -> None:
        """Loop thread only: release every waiting getUpdates."""
        if self.updates_event is not None:
            self.updates_event.set()
            self.updates_event = asyncio.Event()

    def is_method(self, name: str) -> bool:
        """Whether ``name`` (lower case) is a Bot API method the fake speaks."""
        return name in self._sync_methods or name == "getupdates"

    def take_fault(self, name: str, params: Json) -> Fault | None:
        """The injected fault this call of ``name`` triggers, if any (cond held)."""
        chat_id = chat_id_of(params)
        for fault in self.faults:
            if fault.method == name and fault.chat_id in (None, chat_id):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def run_method(self, name: str, params: Json,
                   files: dict[str, UploadedFile]) -> tuple[int, Json, str | None]:
        """Run a synchronous method (cond held): (HTTP status, payload, fault name)."""
        try:
            handler = self._sync_methods.get(name)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            if chat_id_of(params) in self.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user", fault="blocked")
            if name.startswith("send"):
                self._count_send()
            return 200, {"ok": True, "result": handler(params, files)}, None
        except ApiError as err:
            return err.status, err.payload(), err.fault

    def _count_send(self) -> None:
        """Telegram's flood limit: past ``send_limit`` sends in one second, 429 for a second."""
        if self.send_limit is None:
            return
        now_s = time.monotonic()
        while self._send_times and self._send_times[0] <= now_s - 1.0:
            self._send_times.popleft()
        if len(self._send_times) >= self.send_limit:
            raise ApiError(429, "Too Many Requests: retry after 1", fault="rate_limit",
                           parameters={"retry_after": 1})
        self._send_times.append(now_s)

    def record(self, call: Call) -> None:
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()

    # -- Bot API methods (cond held, except getUpdates) -------------------------------------
    @property
    def bot_user(self) -> Json:
        return {"id": self.bot_id, "is_bot": True, "first_name": BOT_FIRST_NAME,
                "username": BOT_USERNAME}

    def _get_me(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    async def get_updates(self, params: Json) -> list[Json]:
        """Long polling: answer as soon as an update is pending or ``timeout`` passes."""
        offset = int_param(params, "offset", 0)
        limit = min(max(int_param(params, "limit", 100), 1), 100)
        timeout = max(0.0, float(params.get("timeout") or 0))
        with self.cond:
            if isinstance(params.get("allowed_updates"), list):
                self.allowed_updates = list(params["allowed_updates"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self.cond:
                batch = self._pending_updates(offset, limit)
            remaining = deadline - loop.time()
            event, stopping = self.updates_event, self.stopping
            if batch or remaining <= 0 or event is None or (stopping and stopping.is_set()):
                return batch
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _pending_updates(self, offset: int, limit: int) -> list[Json]:
        if offset < 0:  # Telegram: keep the last -offset updates, forget the rest
            self.updates = self.updates[offset:]
        elif offset > 0:  # confirms every update below offset
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        return [u for u in self.updates if self._wanted(u)][:limit]

    def _wanted(self, update: Json) -> bool:
        kind = next((k for k in update if k != "update_id"), None)
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in OPT_IN_UPDATES

    def _delete_webhook(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        if params.get("drop_pending_updates"):
            self.updates.clear()
        return True

    def _get_webhook_info(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        return {"url": "", "has_custom_certificate": False,
                "pending_update_count": len(self.updates)}

    def _set_commands(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or not all(
                isinstance(c, dict) and c.get("command") and c.get("description")
                for c in commands):
            raise ApiError(400, "Bad Request: commands are invalid")
        self.commands[commands_key(params)] = commands
        return True

    def _get_commands(self, params: Json, files: dict[str, UploadedFile]) -> list[Json]:
        return self.commands.get(commands_key(params), [])

    def _delete_commands(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        self.commands.pop(commands_key(params), None)
        return True

    def _send_message(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        plain = plain_text(text, params.get("parse_mode"))
        if utf16_len(plain) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        message = self._bot_message(params, {"text": plain})
        self._remember_sent(message, params, text=text)
        return message

    def _send_document(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        upload = files.get("document")
        if upload is not None:
            if not upload.content:
                raise ApiError(400, "Bad Request: file must be non-empty")
            document = self.store_file(upload)
        else:
            stored = self.files.get(str(params.get("document")))
            if stored is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            upload, document = stored.upload, document_object(stored)
        caption = str(params.get("caption") or "")
        plain = plain_text(caption, params.get("parse_mode"))
        if utf16_len(plain) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        content: Json = {"document": document, **({"caption": plain} if plain else {})}
        message = self._bot_message(params, content)
        self._remember_sent(message, params, caption=caption, document=upload.content,
                            filename=upload.filename, mime_type=upload.mime_type)
        return message

    def _send_chat_action(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        self._target_chat(params)
        if not params.get("action"):
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _delete_message(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        key = (self._target_chat(params)["id"], int_param(params, "message_id", 0))
        if self.messages.pop(key, None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        self.deleted.add(key)
        if key in self.sent:
            self.sent[key] = replace(self.sent[key], deleted=True)
        return True

    def _answer_callback_query(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self.open_queries:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired "
                                "or query ID is invalid")
        self.open_queries.discard(query_id)
        text = params.get("text")
        self.callback_answers.append(CallbackAnswer(
            query_id, None if text is None else str(text), bool(params.get("show_alert"))))
        return True

    def _edit_message_text(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        key, message = self._own_message(params, "edit")
        text = params.get("text")
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        plain = plain_text(text, params.get("parse_mode"))
        markup = inline_markup(params)
        if message["text"] == plain and message.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
        message.update(text=plain, edit_date=now())
        set_markup(message, markup)
        if key in self.sent:
            old = self.sent[key]
            self.sent[key] = replace(old, text=text, edits=(*old.edits, text),
                                     parse_mode=params.get("parse_mode"), reply_markup=markup)
        return message

    def _edit_message_reply_markup(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        key, message = self._own_message(params, "edit")
        markup = inline_markup(params)
        if message.get("reply_markup") == markup:
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
        message["edit_date"] = now()
        set_markup(message, markup)
        if key in self.sent:
            self.sent[key] = replace(self.sent[key], reply_markup=markup)
        return message

    def _get_file(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.upload.content) > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.upload.content), "file_path": f"documents/{stored.file_id}"}

    def _get_chat(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        gifts = dict.fromkeys(("unlimited_gifts", "limited_gifts", "unique_gifts",
                               "premium_subscription", "gifts_from_channels"), True)
        return {**self._target_chat(params), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": gifts}

    def _true(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        return True

    # -- helpers for the methods -----------------------------------------------------------
    def _target_chat(self, params: Json) -> Json:
        chat = self.chats.get(chat_id_of(params) or 0)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _own_message(self, params: Json, verb: str) -> tuple[tuple[int, int], Json]:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: the fake does not support inline messages")
        key = (self._target_chat(params)["id"], int_param(params, "message_id", 0))
        message = self.messages.get(key)
        if message is None:
            raise ApiError(400, f"Bad Request: message to {verb} not found")
        if message["from"]["id"] != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return key, message

    def _bot_message(self, params: Json, content: Json) -> Json:
        chat = self._target_chat(params)
        message: Json = {"date": now(), "chat": chat, "from": self.bot_user, **content}
        reply = params.get("reply_parameters")
        reply = reply if isinstance(reply, dict) else {}
        reply_to = reply.get("message_id", params.get("reply_to_message_id"))
        if reply_to is not None:
            target = self.messages.get((chat["id"], int(reply_to)))
            if target is not None:
                message["reply_to_message"] = without_reply(target)
            elif not (reply.get("allow_sending_without_reply")
                      or params.get("allow_sending_without_reply")):
                raise ApiError(400, "Bad Request: message to be replied not found")
        set_markup(message, inline_markup(params))
        self._remember(chat["id"], message)
        return message

    def _remember(self, chat_id: int, message: Json) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        message["message_id"] = message_id
        self.messages[(chat_id, message_id)] = message
        return message_id

    def _remember_sent(self, message: Json, params: Json, **content: Any) -> None:
        markup = params.get("reply_markup")
        key = (message["chat"]["id"], message["message_id"])
        self.sent[key] = SentMessage(
            key[1], key[0], parse_mode=params.get("parse_mode"),
            reply_markup=markup if isinstance(markup, dict) else None, **content)
