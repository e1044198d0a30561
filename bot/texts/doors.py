"""Sentences about the other doors in: the OwnTracks config file and people without Telegram.

English source templates for :func:`bot.texts.t` (Telegram HTML unless a comment says plain).
"""

from __future__ import annotations

from bot.texts import N_

# plain text: raised by the core, shown by the bot or by `otcert issue`
USERNAME_TAKEN = N_("The MQTT username '{name}' is already taken; choose another.")

OTRC_CAPTION = N_(
    "Your connection settings for OwnTracks (no secret inside). Open this file with "
    "OwnTracks to fill in host, port, TLS, username and device at once; allow loading "
    "configuration files in the app's settings first if it refuses."
)
