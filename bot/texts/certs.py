"""Sentences about the certificates the bot knows, people's and its own (issue 14).

English source templates for :func:`bot.texts.t`, shown by the CLI and the bot alike.
"""

from __future__ import annotations

from bot.texts import N_

BAD_SERIAL = N_(
    "'{serial}' is not a certificate serial: give it in hex (with or without colons) or in "
    "decimal."
)
UNKNOWN_SERIAL = N_("No certificate with serial {serial} is known to the bot.")
AMBIGUOUS_SERIAL = N_(
    "'{serial}' names two certificates (read as hex: {hex}; as decimal: {decimal}); "
    "write it with colons or as hex with a letter."
)
NOT_ACTIVE = N_("Certificate {serial} is {status}, not active: nothing to revoke.")
