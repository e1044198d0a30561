"""MQTT username and device name rules, in one place.

The certificate CN becomes the MQTT username (Mosquitto's ``use_identity_as_username``)
and OwnTracks publishes to ``owntracks/<username>/<device>``. A ``/`` would span topic
levels, ``+`` and ``#`` are wildcards Mosquitto denies outright, and non-ASCII look-alikes
would let one person impersonate another in admin views. So names are a small ASCII set.
"""

from __future__ import annotations

import re

USERNAME_MAX = 64
DEVICE_MAX = 32

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class InvalidName(ValueError):
    """A name a person typed breaks the rules; the message is meant for people."""


def _check(value: object, what: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidName(f"The {what} must be text.")
    if value == "":
        raise InvalidName(f"The {what} must not be empty.")
    if len(value) > max_len:
        raise InvalidName(f"The {what} is too long ({len(value)} characters; at most {max_len}).")
    lowered = value.lower()
    if not lowered.isascii() or not _NAME_RE.fullmatch(lowered):
        raise InvalidName(
            f"The {what} {_quote(value)} is not allowed: use letters a-z, digits and . _ -, "
            "starting with a letter or digit (no spaces, '/', '+' or '#')."
        )
    if lowered in {".", ".."} or ".." in lowered:
        raise InvalidName(f"The {what} {_quote(value)} must not contain '..'.")
    return lowered


def _quote(value: str) -> str:
    """Show a hostile name safely: printable ASCII only, shortened."""
    shown = value[:40].encode("ascii", "backslashreplace").decode("ascii")
    shown = "".join(ch if ch.isprintable() else "?" for ch in shown)
    return f"'{shown}{'…' if len(value) > 40 else ''}'"


def validate_username(value: object) -> str:
    """Return the canonical (lower-case) MQTT username or raise :class:`InvalidName`.

    All-digit names are refused: admins type ``/revoke <username|telegram_id>``, and a
    username that looks like an id would make that ambiguous.
    """
    name = _check(value, "MQTT username", USERNAME_MAX)
    if name.isdigit():
        raise InvalidName(
            f"The MQTT username '{name}' looks like a Telegram id; include at least one letter."
        )
    return name


def validate_device(value: object) -> str:
    """Return the canonical (lower-case) device name or raise :class:`InvalidName`."""
    return _check(value, "device name", DEVICE_MAX)
