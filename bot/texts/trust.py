"""Sentences about trust and revocation integrity (issue 14): who may put a CA on phones,
what a CRL publication really did, limits and races."""

from __future__ import annotations

from bot.texts import N_

# --- /repin with an uploaded CA ------------------------------------------------------------
PIN_IS_OWN_CA = N_("It is the bot's own CA.")
PIN_IN_BROKER_CHAIN = N_("The broker at {where} presents it ({detail}).")
PIN_NEEDS_SECOND_ADMIN = N_(
    "🔐 {admin} asks to send a new CA to every phone: {subject}\nSHA-256 {fingerprint}\n"
    "It is not the bot's CA and the broker does not present it ({detail}). "
    "Nothing is sent until another admin confirms."
)
PIN_WAITING = N_(
    "That CA is not the bot's own and the broker does not present it ({detail}). "
    "Another admin must confirm it; nothing is sent until then."
)
PIN_REFUSED_ONE_ADMIN = N_(
    "That CA is not the bot's own and the broker does not present it ({detail}), and there "
    "is no second admin to confirm it, so it is not sent."
)
BUTTON_CONFIRM_PIN = N_("Confirm and send to every phone")
PIN_CONFIRMED_BY = N_(
    "🔐 {confirmer} confirmed the CA {admin} asked for: {subject}\nSHA-256 {fingerprint}"
)
PIN_SET_BY = N_(
    "🔐 {admin} changed the pinned certificate to {subject}\nSHA-256 {fingerprint}\n{why}"
)
PIN_OWN_REQUEST = N_("You asked for this CA; another admin must confirm it.")
PIN_PROPOSAL_GONE = N_("That request is no longer open (confirmed, replaced or the bot restarted).")

# --- what a CRL publication did --------------------------------------------------------------
RELOAD_DONE = N_("\nBroker reloaded (the reload command succeeded).")
RELOAD_NOT_CONFIGURED = N_(
    "\nNo reload command is configured: the broker reads the new CRL only when it is "
    "reloaded or restarted."
)
KICK_SKIPPED_NO_RELOAD = N_(
    "\n⚠️ Live sessions were not ended: the broker was not reloaded, so the phone would "
    "reconnect at once with a certificate the running broker still accepts."
)
KICK_WITHOUT_RELOAD_COMMAND = N_(
    "OTCERT_BROKER_KICK=dynsec needs OTCERT_BROKER_RELOAD_COMMAND: a kick without a reload "
    "lets the phone reconnect at once."
)
CRL_AFTER_SUPERSEDE = N_("post-replacement")
CRL_AFTER_UNDELIVERED = N_("undelivered-certificate")

# --- limits and races ------------------------------------------------------------------------
DAILY_LIMIT = N_(
    "You got {count} certificates in the last 24 hours, the most allowed. "
    "Please try again after {until}."
)
DAILY_LIMIT_ADMINS = N_(
    "⚠️ {who} reached the limit of {limit} certificates in 24 hours."
)
USERNAME_IS_DYNSEC_CLIENT = N_(
    "The username {name} exists as a client in the broker's dynamic-security plugin; "
    "pick another one (ending its sessions would delete that client)."
)

# --- OTCERT_PHONE_CA=none: the broker's certificate is from a public CA -----------------------
STEPS_IOS_PUBLIC_CA = N_(
    "<b>iPhone steps</b>\n"
    "1. In OwnTracks, allow loading files: Settings → allow external configuration/files "
    "(new app versions turn this off by default).\n"
    "2. Tap <code>{filename}</code> → share → OwnTracks. In OwnTracks: Settings → TLS → "
    "Client certificate → choose it and type the passphrase.\n"
    "3. Settings: Mode MQTT, Host <code>{host}</code>, Port <code>{port}</code>, TLS on, "
    "Username <code>{username}</code>, Device ID <code>{device}</code>.{link}"
)
STEPS_ANDROID_PUBLIC_CA = N_(
    "<b>Android steps</b>\n"
    "1. In OwnTracks: Preferences → Connection → Security → Install client certificate; "
    "pick <code>{filename}</code> and type the passphrase. Then choose it by its name.\n"
    "2. Connection: Mode MQTT, Host <code>{host}</code>, Port <code>{port}</code>, TLS on, "
    "Username <code>{username}</code>, Device ID <code>{device}</code>.{link}"
)
NO_PHONE_CA = N_(
    "OTCERT_PHONE_CA is none: the broker's certificate comes from a public CA, so phones "
    "need no CA and there is nothing to send."
)
