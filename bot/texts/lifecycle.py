"""Sentences of the certificate lifecycle: reminders, renewal, /mycerts, /expiring, and the
admins' expiry watch. English source templates, shown through :func:`bot.texts.t`; Telegram
HTML unless a comment says plain text; ``{placeholders}`` from people are escaped by callers.
"""

from __future__ import annotations

from bot.texts import N_

# --- refusals (domain errors, also printed by the CLI) --------------------------------------
RENEW_UNKNOWN = N_("That certificate is not one of yours, or it no longer works.")
RENEW_NO_DEVICE = N_("You have no working certificate for '{device}'. Send /mycerts to see yours.")
RENEW_WHICH = N_("You have certificates for {devices}. Say which: /renew DEVICE")
RENEW_NONE = N_("You have no working certificate to renew. Send /getcert to get one.")
RENEW_ALREADY = N_(
    "The certificate for '{device}' was already renewed; the new one is in /mycerts."
)
RENEW_TOO_EARLY = N_(
    "Your certificate for '{device}' is valid until {until}. "
    "You can renew it from {opens} on; I'll remind you."
)
REVOKE_NOT_YOURS = N_("That certificate is not one of yours, or it is already revoked.")

# --- reminders -------------------------------------------------------------------------------
REMINDER = N_(
    "⏰ Your certificate for <b>{device}</b> expires on {until} ({days} days left). "
    "After that your phone stops reporting. Tap Renew to get a new one; "
    "the old one keeps working until then."
)
ADMIN_UNRENEWED = N_(
    "⚠️ {who}: the certificate for device <b>{device}</b> expires on {until} "
    "({days} days left) and has not been renewed."
)
INFRA_REMINDER = N_(
    "⚠️ The {what} expires on {until} ({days} days left). {fix}"
)
INFRA_CA = N_("CA certificate")
INFRA_SERVER = N_("broker's server certificate ({where})")
INFRA_ADMIN = N_("bot's broker-admin certificate")
FIX_CA = N_(
    "Start a CA rotation well before: <code>otcert ca rotate start</code>, "
    "then re-pin phones with /repin."
)
FIX_SERVER = N_(
    "Issue a new one with <code>otcert server-cert …</code> and reload Mosquitto."
)
FIX_ADMIN = N_(
    "Restart the bot (at start-up it renews this certificate once fewer than 30 days are "
    "left), or write a new one with <code>otcert broker-admin-cert --out …</code>."
)

# --- buttons (plain text) ----------------------------------------------------------------------
BUTTON_RENEW = N_("🔄 Renew {device}")
BUTTON_REVOKE = N_("🗑 Revoke {device}")
BUTTON_REVOKE_YES = N_("Yes, revoke {device}")

# --- /mycerts ----------------------------------------------------------------------------------
MYCERTS_NONE = N_("You have no working certificate. Send /getcert to get one.")
MYCERTS_HEAD = N_("Your certificates:")
MYCERTS_LINE = N_("• <b>{device}</b> ({phone}): valid until {until}, {days} days left")
MYCERTS_RENEW_FROM = N_(" – renewable from {opens}")
REVOKE_ASK = N_(
    "Revoke the certificate for <b>{device}</b>? The phone that holds it stops working "
    "at once. Your other devices keep working."
)
REVOKE_DONE = N_("Revoked the certificate for <b>{device}</b>. {crl}")
REVOKE_CRL_OK = N_("The broker refuses it from now on.")
REVOKE_CRL_PROBLEM = N_("The broker may still accept it for a while; the admins are told.")
ADMIN_SELF_REVOKED = N_("{who} revoked their certificate for device <b>{device}</b> ({serials}).")

# --- /expiring ---------------------------------------------------------------------------------
EXPIRING_HEAD = N_("Expiring within {days} days ({count}):")
EXPIRING_NONE = N_("Nothing expires within {days} days.")
EXPIRING_LINE = N_("• {until} ({left} d) <code>{username}</code> / {device}{renewed}")
EXPIRING_RENEWED = N_(" – renewed")
EXPIRING_INFRA_LINE = N_("• {until} ({left} d) {what}")
EXPIRING_MORE = N_("… and {count} more (see <code>otcert expiring</code>).")
USAGE_EXPIRING = N_("Usage: /expiring [days]")
USAGE_RENEW = N_("Usage: /renew [device]")

HELP_LIFECYCLE = N_(
    "\n/mycerts – your certificates, renew or revoke one\n"
    "/renew [device] – renew a certificate that expires soon"
)
HELP_ADMIN_LIFECYCLE = N_("\n/expiring [days] – certificates that expire soon")
COMMAND_MYCERTS = N_("your certificates: renew or revoke")
