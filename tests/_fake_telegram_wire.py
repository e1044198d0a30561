"""Wire level of the fake Telegram server: value objects, body decoding, Telegram's checks.

Why separate: these pieces are plain functions and data, shared by the Bot API state
(_fake_telegram_api.py) and the test-facing facade (fake_telegram.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

BOT_USERNAME = "otcert_test_bot"
BOT_FIRST_NAME = "OTCert Test"
DEFAULT_GROUP_CHAT_ID = -1001000000001
FAULT_KINDS = frozenset({"429", "500", "502", "timeout", "drop", "403", "lost_reply"})
TIMEOUT_FAULT_HOLD = 60.0  # longer than any client timeout a test uses; cut short by stop()
MAX_TEXT, MAX_CAPTION, MAX_DOWNLOAD = 4096, 1024, 20 * 1024 * 1024
# Fields whose form values stay strings; every other form value is JSON-decoded when it can be.
_STRING_FIELDS = frozenset({
    "text", "caption", "parse_mode", "callback_query_id", "file_id", "document", "url",
    "action", "inline_message_id", "language_code", "description", "short_description", "name",
})
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_HTML_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "code", "pre", "blockquote", "tg-emoji",
})
Json = dict[str, Any]


@dataclass(frozen=True)
class FakeUser:
    """A Telegram person the test speaks as."""

    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str = "en"

    def to_api(self) -> Json:
        """The Bot API ``User`` object."""
        user: Json = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        user["language_code"] = self.language_code
        return user


@dataclass(frozen=True)
class UploadedFile:
    """A file sent in one call (by the bot, multipart) or by a person."""

    filename: str
    content: bytes
    mime_type: str


@dataclass(frozen=True)
class Call:
    """One request the bot made. ``status`` is 0 when no HTTP answer was given."""

    method: str
    params: Json
    files: dict[str, UploadedFile]
    time: float
    status: int
    fault: str | None = None  # an injected fault kind, "blocked", or None
    error: str | None = None  # the error description answered, if any


@dataclass(frozen=True)
class SentMessage:
    """A message the bot sent, as it stands now (edits and deletion applied)."""

    message_id: int
    chat_id: int
    text: str = ""  # current text as the bot wrote it (markup included); empty for documents
    caption: str = ""
    document: bytes | None = None
    filename: str | None = None
    mime_type: str | None = None
    parse_mode: str | None = None
    reply_markup: Json | None = None
    deleted: bool = False
    edits: tuple[str, ...] = ()  # texts set by editMessageText, oldest first

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """(label, callback_data) of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b.get("text", ""), b.get("callback_data")) for row in rows for b in row]

    def summary(self) -> str:
        """One line for assertion messages."""
        body = self.text or f"[document {self.filename}] {self.caption}"
        flags = " (deleted)" if self.deleted else ""
        return f"chat {self.chat_id} #{self.message_id}{flags}: {body[:120]!r}"


@dataclass(frozen=True)
class CallbackAnswer:
    """An answerCallbackQuery the bot made."""

    callback_query_id: str
    text: str | None
    show_alert: bool


@dataclass
class Fault:
    """A pending injected failure; ``chat_id`` None matches any chat."""

    method: str  # lower case
    kind: str
    remaining: int
    retry_after: int
    chat_id: int | None


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    upload: UploadedFile


class ApiError(Exception):
    """A Bot API error answer (``ok: false``)."""

    def __init__(self, status: int, description: str, *, fault: str | None = None,
                 parameters: Json | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.fault = status, description, fault
        self.parameters = parameters

    def payload(self) -> Json:
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


async def read_params(request: web.Request) -> tuple[Json, dict[str, UploadedFile]]:
    """Decode JSON, url-encoded and multipart bodies (plus the query string) alike."""
    params: Json = {k: _decode(k, v) for k, v in request.query.items()}
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("JSON body is not an object")
        params.update({k: _decode(k, v) if isinstance(v, str) else v for k, v in body.items()})
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[name] = UploadedFile(value.filename, value.file.read(), value.content_type)
            else:
                params[name] = _decode(name, str(value))
    return params, files


def _decode(name: str, value: str) -> Any:
    """PTB sends every non-string parameter JSON-encoded (numbers, markup, lists)."""
    if name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def int_param(params: Json, name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: wrong parameter {name}") from None


def chat_id_of(params: Json) -> int | None:
    value = params.get("chat_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def inline_markup(params: Json) -> Json | None:
    """The inline keyboard a message will carry, checked like Telegram checks it."""
    markup = params.get("reply_markup")
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    for row in markup["inline_keyboard"]:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def set_markup(message: Json, markup: Json | None) -> None:
    if markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = markup


def document_object(stored: StoredFile) -> Json:
    upload = stored.upload
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
            "file_name": upload.filename, "mime_type": upload.mime_type,
            "file_size": len(upload.content)}


def commands_key(params: Json) -> str:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)


def without_reply(message: Json) -> Json:
    return {k: v for k, v in message.items() if k != "reply_to_message"}


def now() -> int:
    return int(time.time())


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _TelegramHtml(HTMLParser):
    """Telegram's HTML parse mode: only its tags, properly nested; collects the plain text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open_tags: list[str] = []
        self.text: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS or (tag == "span" and ("class", "tg-spoiler") not in attrs):
            self.problem = self.problem or f'Unsupported start tag "{tag}"'
        self.open_tags.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problem = self.problem or f'Unsupported start tag "{tag}"'

    def handle_endtag(self, tag: str) -> None:
        if not self.open_tags or self.open_tags[-1] != tag:
            self.problem = self.problem or f'Unexpected end tag "{tag}"'
        else:
            self.open_tags.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def plain_text(text: str, parse_mode: Any) -> str:
    """The text users would see; raises Telegram's error for HTML it would refuse.

    Markdown modes are passed through unchecked.
    """
    if str(parse_mode or "").upper() != "HTML":
        return text
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.problem is None and parser.open_tags:
        parser.problem = f'Can\'t find end tag corresponding to start tag "{parser.open_tags[-1]}"'
    if parser.problem:
        raise ApiError(400, f"Bad Request: can't parse entities: {parser.problem}")
    return "".join(parser.text)
