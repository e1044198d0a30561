"""The OwnTracks configuration file (``.otrc``) sent beside a certificate.

Why one module: the chat delivery, ``otcert issue`` and the inline config link must all say
the same thing. The file holds connection settings only, never a passphrase or password:
it may be forwarded, backed up or opened by anyone who sees the chat.

Keys and who honours them (checked against owntracks/android ``Preferences.kt`` and
owntracks/ios ``Settings``): ``_type``, ``mode`` (0 = MQTT), ``host``, ``port``, ``tls``,
``username``, ``deviceId``, ``tid`` on both apps; ``clientpkcs`` (the name of an imported
``.otrp``) on iOS only; Android ignores keys it does not know and picks its client
certificate by alias from the system store.
"""

from __future__ import annotations

import json
from typing import Any

from storage import Platform

MODE_MQTT = 0


def configuration(
    *, host: str, port: int, username: str, device: str, pkcs_filename: str | None = None,
    platform: Platform | None = None,
) -> dict[str, Any]:
    """The settings as a JSON-ready dict; ``clientpkcs`` only for iOS with a file name."""
    config: dict[str, Any] = {
        "_type": "configuration",
        "mode": MODE_MQTT,
        "host": host,
        "port": port,
        "tls": True,
        "username": username,
        "deviceId": device,
        "tid": tracker_id(username),
    }
    if platform is Platform.IOS and pkcs_filename:
        config["clientpkcs"] = pkcs_filename
    return config


def tracker_id(username: str) -> str:
    """Two letters or digits for the map pin (Android refuses anything else)."""
    letters = [ch for ch in username if ch.isascii() and ch.isalnum()]
    return "".join(letters[:2]) or "ot"


def otrc_filename(username: str, device: str) -> str:
    return f"{username}-{device}.otrc"


def otrc_bytes(**settings: Any) -> bytes:
    """The file's content: indented JSON, so a person opening it can read it."""
    return (json.dumps(configuration(**settings), indent=2) + "\n").encode()
