"""Telegram HTML built from the templates in :mod:`bot.texts.chat`, always through ``t()``.

Anything that came from a person (names, reasons, device names, error details) goes through
:func:`esc` before it enters a template.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from datetime import datetime
from html import escape

from bot.core import otrc
from bot.core.models import Certificate, Person, PersonStatus, Platform
from bot.texts import chat, languages, t, trust

STATUS = {
    None: chat.STATUS_UNKNOWN,
    PersonStatus.PENDING: chat.STATUS_PENDING,
    PersonStatus.APPROVED: chat.STATUS_APPROVED,
    PersonStatus.DENIED: chat.STATUS_DENIED,
    PersonStatus.REVOKED: chat.STATUS_REVOKED,
}
PHONES = {Platform.IOS: chat.PHONE_IOS, Platform.ANDROID: chat.PHONE_ANDROID}
STEPS = {Platform.IOS: chat.STEPS_IOS, Platform.ANDROID: chat.STEPS_ANDROID}
STEPS_PUBLIC_CA = {
    Platform.IOS: trust.STEPS_IOS_PUBLIC_CA, Platform.ANDROID: trust.STEPS_ANDROID_PUBLIC_CA
}


def esc(value: object) -> str:
    """``value`` as text that Telegram HTML shows literally."""
    return escape(str(value), quote=False)


def who(person: Person) -> str:
    handle = f" @{esc(person.tg_username)}" if person.tg_username else ""
    return t(
        chat.PERSON, name=esc(person.display_name), handle=handle, telegram_id=person.telegram_id
    )


def day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


def reason(text: str | None) -> str:
    """The `` Reason: …`` tail of a decision, or nothing."""
    return t(chat.REASON, reason=esc(text)) if text else ""


def status_line(person: Person | None) -> str:
    template = STATUS[person.status if person else None]
    return t(template, username=esc(person.mqtt_username) if person else "")


def status_word(status: PersonStatus) -> str:
    """A person's status in the reader's language (admins' listings and button answers)."""
    return t(languages.STATUS_WORDS[status.value])


def phone(platform: Platform) -> str:
    return t(PHONES[platform])


def duration(seconds: int) -> str:
    if seconds >= 120:
        return t(chat.MINUTES, count=seconds // 60)
    return t(chat.SECONDS, count=seconds)


def config_link(host: str | None, port: int, username: str, device: str) -> str:
    """An ``owntracks:///config?inline=`` link with connection settings, never a secret."""
    if not host:
        return ""
    config = otrc.configuration(host=host, port=port, username=username, device=device)
    inline = base64.b64encode(json.dumps(config, separators=(",", ":")).encode()).decode()
    url = "owntracks:///config?inline=" + urllib.parse.quote(inline, safe="")
    return t(chat.CONFIG_LINK, url=esc(url))


def steps(
    platform: Platform, *, ca: str | None, filename: str, host: str | None, port: int,
    username: str, device: str,
) -> str:
    """``ca`` None: the broker's certificate is from a public CA; no trust step."""
    template = STEPS[platform] if ca is not None else STEPS_PUBLIC_CA[platform]
    return t(
        template,
        ca=esc(ca or ""), filename=esc(filename), host=esc(host or t(chat.HOST_UNKNOWN)), port=port,
        username=esc(username), device=esc(device),
        link=config_link(host, port, username, device),
    )


def person_row(person: Person, certs: list[Certificate]) -> str:
    name = (
        t(chat.PERSON_ROW_USERNAME, username=esc(person.mqtt_username))
        if person.mqtt_username
        else ""
    )
    lines = [t(chat.PERSON_ROW, who=who(person), status=status_word(person.status), username=name)]
    for cert in certs:
        lines.append(
            t(
                chat.CERTIFICATE_ROW,
                device=esc(cert.device), serial=cert.serial[:12], until=day(cert.not_after),
            )
        )
    return "\n".join(lines)


def render_error(exc: BaseException) -> str:
    """A domain error as Telegram HTML: its template through ``t()`` with escaped params."""
    template = getattr(exc, "template", None)
    if isinstance(template, str):
        params: dict[str, object] = getattr(exc, "params", None) or {}
        return t(template, **{key: esc(value) for key, value in params.items()})
    return esc(str(exc))


def error_text(exc: BaseException) -> str:
    """The same error as plain text, for button answers and plain messages."""
    template = getattr(exc, "template", None)
    if isinstance(template, str):
        params: dict[str, object] = getattr(exc, "params", None) or {}
        return t(template, **params)
    return str(exc)
