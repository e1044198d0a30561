"""Every inline button's data: one frozen dataclass per format, a builder and one parser.

Button data comes back from Telegram as a string anyone can forge, so handlers never split it
themselves: :func:`parse` turns it into one of the values below or ``None``. The wire format
is ``<prefix>:<field>:<field>…`` and must stay byte-identical, because buttons already sitting
in chats keep sending it. A new format is a dataclass with a
``PREFIX``, ``fields()``, ``data()`` and ``from_fields()``, registered with :func:`_format`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, Self, TypeVar, get_args

from bot.core.models import Platform
from bot.texts import SHIPPED

MAX_BYTES = 64  # Telegram refuses longer callback_data
SEPARATOR = ":"
TELEGRAM_ID_MAX_DIGITS = 16  # ids reach 2**52 (16 digits)
TELEGRAM_ID_LIMIT = 2**53  # Telegram: ids fit a double exactly

RequestAction = Literal["approve", "deny", "ok", "cancel"]
_REQUEST_ACTIONS: frozenset[str] = frozenset(get_args(RequestAction))


class ButtonData(Protocol):
    """What every format offers: its prefix, its fields in wire order and a parser for them."""

    PREFIX: ClassVar[str]

    def fields(self) -> tuple[str, ...]: ...

    def data(self) -> str: ...

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None: ...


_FORMATS: dict[str, Callable[[Sequence[str]], ButtonData | None]] = {}
B = TypeVar("B", bound=ButtonData)


def _format(cls: type[B]) -> type[B]:
    """Register a format under its prefix, so :func:`parse` knows it."""
    assert cls.PREFIX not in _FORMATS, f"two button formats share the prefix {cls.PREFIX!r}"
    _FORMATS[cls.PREFIX] = cls.from_fields
    return cls


def encode(button: ButtonData) -> str:
    """The wire string of ``button``; raises ValueError beyond Telegram's 64-byte limit."""
    fields = button.fields()
    if any(not f or SEPARATOR in f for f in fields):
        raise ValueError(f"button fields must be non-empty and free of {SEPARATOR!r}")
    text = SEPARATOR.join((button.PREFIX, *fields))
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(f"button data over {MAX_BYTES} bytes: {text[:80]!r}")
    return text


class _Encoded:
    """``data()`` for every format: the wire string :func:`encode` builds."""

    def data(self: ButtonData) -> str:
        return encode(self)


def _platform(text: str) -> Platform | None:
    return Platform(text) if text in {p.value for p in Platform} else None


def parse(raw: str | None) -> ButtonData | None:
    """The value a button carries, or None for anything malformed, unknown or forged."""
    if not raw or len(raw.encode()) > MAX_BYTES:
        return None
    prefix, *fields = raw.split(SEPARATOR)
    from_fields = _FORMATS.get(prefix)
    if from_fields is None or any(not f for f in fields):
        return None
    return from_fields(fields)


def telegram_id(text: str) -> int | None:
    """A Telegram user id written in ASCII digits (``'²'`` and ``'١٢٣'`` pass isdigit())."""
    if not (text.isascii() and text.isdigit()) or len(text) > TELEGRAM_ID_MAX_DIGITS:
        return None
    value = int(text)
    return value if 0 < value < TELEGRAM_ID_LIMIT else None


@_format
@dataclass(frozen=True)
class RequestAnswer(_Encoded):
    """``req:<approve|deny|ok|cancel>:<telegram_id>[:<username>]`` on an admin's copy of a
    request; ``ok`` (approve under ``username``) is the only action that carries a name."""

    PREFIX: ClassVar[str] = "req"

    action: RequestAction
    telegram_id: int
    username: str | None = None

    def fields(self) -> tuple[str, ...]:
        name = () if self.username is None else (self.username,)
        return (self.action, str(self.telegram_id), *name)

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None:
        if len(fields) not in (2, 3) or fields[0] not in _REQUEST_ACTIONS:
            return None
        action: RequestAction = fields[0]  # type: ignore[assignment]
        tid = telegram_id(fields[1])
        named = len(fields) == 3
        if tid is None or fields[1] != str(tid) or named != (action == "ok"):
            return None
        return cls(action, tid, fields[2] if named else None)


@_format
@dataclass(frozen=True)
class PlatformChoice(_Encoded):
    """``plat:<ios|android>:<device>``: the presser's phone, for the device they asked for."""

    PREFIX: ClassVar[str] = "plat"

    platform: Platform
    device: str

    def fields(self) -> tuple[str, ...]:
        return (self.platform.value, self.device)

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None:
        platform = _platform(fields[0]) if len(fields) == 2 else None
        return None if platform is None else cls(platform, fields[1])


@_format
@dataclass(frozen=True)
class RotationMove(_Encoded):
    """``rot:move``: the presser asks for their certificate from the next CA. It names nobody,
    so a forged copy can only ever move the presser themselves."""

    PREFIX: ClassVar[str] = "rot"

    def fields(self) -> tuple[str, ...]:
        return ("move",)

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None:
        return cls() if list(fields) == ["move"] else None


@_format
@dataclass(frozen=True)
class RenewPlatformChoice(_Encoded):
    """``rplat:<ios|android>:<serial>``: the presser's phone, asked during a renewal; it
    carries the serial so the choice renews that certificate instead of replacing it."""

    PREFIX: ClassVar[str] = "rplat"

    platform: Platform
    serial: str

    def fields(self) -> tuple[str, ...]:
        return (self.platform.value, self.serial)

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None:
        platform = _platform(fields[0]) if len(fields) == 2 else None
        if platform is None or _serial_field(fields[1]) is None:
            return None
        return cls(platform, fields[1])


@_format
@dataclass(frozen=True)
class LanguageChoice(_Encoded):
    """``lang:<code>``: the presser's chat language, one of the shipped ones."""

    PREFIX: ClassVar[str] = "lang"

    language: str

    def fields(self) -> tuple[str, ...]:
        return (self.language,)

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None:
        if len(fields) != 1 or fields[0] not in SHIPPED:
            return None
        return cls(fields[0])


@_format
@dataclass(frozen=True)
class PinConfirm(_Encoded):
    """``pinok:<token>``: a second admin confirms the uploaded CA an admin asked to send.
    The token only names an open proposal; who may confirm is decided by who pressed."""

    PREFIX: ClassVar[str] = "pinok"

    token: str

    def fields(self) -> tuple[str, ...]:
        return (self.token,)

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None:
        if len(fields) != 1 or len(fields[0]) != 16:
            return None
        if any(ch not in "0123456789abcdef" for ch in fields[0]):
            return None
        return cls(fields[0])


SERIAL_MAX_HEX = 40  # X.509 serials are at most 20 bytes


def _serial_field(text: str) -> str | None:
    """A certificate serial as the bot writes it (lower-case hex, no leading zero)."""
    ok = 0 < len(text) <= SERIAL_MAX_HEX and all(c in "0123456789abcdef" for c in text)
    return text if ok and not text.startswith("0") else None


@dataclass(frozen=True)
class _SerialButton(_Encoded):
    """A button naming one certificate; the service checks that it is the presser's."""

    PREFIX: ClassVar[str]

    serial: str

    def fields(self) -> tuple[str, ...]:
        return (self.serial,)

    @classmethod
    def from_fields(cls, fields: Sequence[str]) -> Self | None:
        if len(fields) != 1 or _serial_field(fields[0]) is None:
            return None
        return cls(fields[0])


@_format
@dataclass(frozen=True)
class RenewCertificate(_SerialButton):
    """``rnw:<serial>``: renew this certificate (reminders and /mycerts)."""

    PREFIX: ClassVar[str] = "rnw"


@_format
@dataclass(frozen=True)
class RevokeAsk(_SerialButton):
    """``rvk:<serial>``: the owner asks to revoke this certificate; a confirmation follows."""

    PREFIX: ClassVar[str] = "rvk"


@_format
@dataclass(frozen=True)
class RevokeConfirm(_SerialButton):
    """``rvky:<serial>``: the owner confirmed revoking this certificate."""

    PREFIX: ClassVar[str] = "rvky"
