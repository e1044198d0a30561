"""Sentences the core raises as domain errors (:class:`bot.core.errors.UserError`).

Each is an English source template for :func:`bot.texts.t`; ``{placeholders}`` are filled
from the error's params where it is shown, by the bot or by the operator's CLI.
"""

from __future__ import annotations

from bot.texts import N_

ONLY_ADMINS = N_("Only admins can do that.")
WHICH_PHONE = N_("Which phone is this certificate for?")

RESERVED_USERNAME = N_(
    "'{name}' is reserved for the bot's own broker identity; choose another username."
)
UNKNOWN_TARGET = N_("Nobody with Telegram id or MQTT username '{target}' is known.")

NO_ACCESS_YET = N_("You don't have access yet. Send /request to ask an admin.")
STILL_PENDING = N_("Your request is still waiting for an admin. I'll tell you when.")
ACCESS_REVOKED = N_("Your access was revoked. Send /request to ask again.")
NO_USABLE_USERNAME = N_("Your account has no usable MQTT username; ask an admin.")
DEVICE_LIMIT = N_(
    "You already have certificates for {count} devices ({devices}), the most allowed. "
    "Use one of those names to replace its certificate, or ask an admin to revoke one."
)
COOLDOWN = N_(
    "You just got a certificate. Please wait {seconds} seconds before asking for another."
)
ALREADY_PREPARING = N_("I'm already preparing your certificate; it will arrive in a moment.")

CRL_NOT_WRITTEN = N_("CRL not written: {error}")
