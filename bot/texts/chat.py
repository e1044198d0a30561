"""Every sentence the bot says in Telegram chats, as English source templates.

Shown only through :func:`bot.texts.t` (see :mod:`bot.telegram.render` for the HTML helpers).
Templates are Telegram HTML unless a comment says plain text; ``{placeholders}`` that came
from a person are escaped by the caller.
"""

from __future__ import annotations

from bot.texts import N_

# --- everyone ------------------------------------------------------------------------------
WELCOME = N_(
    "Hi! I hand out TLS client certificates for the OwnTracks location broker.\n\n"
    "1. Send /request to ask for access.\n"
    "2. When an admin approves you, send /getcert in this chat.\n"
    "3. I send a certificate file and, separately, its passphrase, then the steps for your phone."
)
WELCOME_AND_STATUS = N_("{welcome}\n\n{status}")

STATUS_UNKNOWN = N_("You have not asked for access yet. Send /request.")
STATUS_PENDING = N_("Your request is waiting for an admin.")
STATUS_APPROVED = N_(
    "You have access as <code>{username}</code>. Send /getcert to get a certificate."
)
STATUS_DENIED = N_("Your last request was denied. You may /request again.")
STATUS_REVOKED = N_("Your access was revoked. You may /request again.")

HELP_EVERYONE = N_(
    "/start – what I do and where you stand\n"
    "/request – ask for access\n"
    "/getcert [device] – get a certificate (e.g. <code>/getcert ipad</code>)\n"
    "/help – this list"
)
HELP_ADMIN = N_(
    "\n\nAdmins:\n"
    "/approve &lt;telegram_id&gt; &lt;mqtt_username&gt;\n"
    "/deny &lt;telegram_id&gt; [reason]\n"
    "/revoke &lt;mqtt_username|telegram_id&gt; [reason]\n"
    "/repin – re-send the CA pin to everyone (reply to a certificate file to pin it first)\n"
    "/pending, /users – who waits, who has access"
)
UNKNOWN_COMMAND = N_("I don't know that command. Here is what you can use:\n\n")

# The command menu (plain text, set once at start-up).
COMMAND_START = N_("what this bot does and where you stand")
COMMAND_REQUEST = N_("ask for access")
COMMAND_GETCERT = N_("get your certificate: /getcert [device]")
COMMAND_HELP = N_("the commands you can use")

PRIVATE_ONLY = N_(
    "I hand out certificates only in a private chat. Open a chat with me and try there."
)
NOT_ADMIN = N_("Sorry, only admins can do that.")
ADMIN_PRIVATE_ONLY = N_("Admin commands work only in a private chat with me.")
SLOW_DOWN = N_("You're sending messages too fast. Please wait a few seconds.")
TOO_LONG = N_("That is far too long for me. Please keep arguments short.")
INTERNAL_ERROR = N_(
    "Something went wrong on my side (error {ref}). The admins can find it in the log."
)
BUTTON_STALE = N_("That button is no longer valid.")  # plain text (a button answer)
BAD_TELEGRAM_ID = N_("'{value}' is not a Telegram user id (a positive number).")

# --- asking for access ---------------------------------------------------------------------
REQUEST_SENT = N_("Thanks! I've asked the admins. I'll tell you when they decide.")
REQUEST_ALREADY = N_("Your request is already with the admins; no need to ask again.")
REQUEST_APPROVED_ALREADY = N_("You already have access. Send /getcert.")
ADMIN_NEW_REQUEST = N_("New access request from {who}.")
BUTTON_APPROVE = N_("✅ Approve")
BUTTON_APPROVE_AS = N_("✅ Approve as {username}")
BUTTON_DENY = N_("❌ Deny")

# --- the admin's answer --------------------------------------------------------------------
ASK_APPROVE_NAME = N_(
    "Approve {who} as <code>{username}</code>?\n"
    "For another username send <code>/approve {tid} NAME</code>."
)
ASK_APPROVE_NO_NAME = N_(
    "I can't suggest a username for {who}. Send <code>/approve {tid} NAME</code>."
)
APPROVED = N_("Approved {who} as <code>{username}</code>.")
DENIED = N_("Denied {who}.")
APPROVED_BY = N_("Approved by {admin}: {who} as <code>{username}</code>")
DENIED_BY = N_("Denied by {admin}: {who}")
REQUEST_DECIDED = N_(  # plain text (a button answer)
    "This request was already handled (now: {status}). Use a command to change it."
)
REQUEST_STATE_UNKNOWN = N_("unknown")
CANCELLED = N_("Cancelled.")  # plain text (a button answer)
DONE = N_("Done.")  # plain text (a button answer)

APPROVED_PERSON = N_(
    "Your access was approved. Your MQTT username is <code>{username}</code>.\n"
    "Send /getcert to get your certificate."
)
DENIED_PERSON = N_("Your access request was denied.{reason}")
REVOKED_PERSON = N_("Your access was revoked and your certificates no longer work.{reason}")
REASON = N_(" Reason: {reason}")

USAGE_APPROVE = N_("Usage: <code>/approve &lt;telegram_id&gt; &lt;mqtt_username&gt;</code>")
USAGE_DENY = N_("Usage: <code>/deny &lt;telegram_id&gt; [reason]</code>")
USAGE_REVOKE = N_("Usage: <code>/revoke &lt;mqtt_username|telegram_id&gt; [reason]</code>")
USAGE_GETCERT = N_("Usage: <code>/getcert [device]</code>, e.g. <code>/getcert ipad</code>")

# --- delivering a certificate (plain text unless it has markup) ----------------------------
ASK_PLATFORM = N_("Which phone is the certificate for?")
PLATFORM_CHOSEN = N_("{question} {phone}.")
PHONE_IOS = N_("iPhone")
PHONE_ANDROID = N_("Android")

FILE_CAPTION = N_(
    "Your OwnTracks certificate for <code>{username}</code> ({device}), valid until {until}.\n"
    "The passphrase follows in the next message. Both messages disappear in {ttl}."
)
REPLACED = N_("\n\nYour previous certificate for this device was revoked.")
MINUTES = N_("{count} minutes")
SECONDS = N_("{count} seconds")
SECRET_MESSAGE = N_(
    "Passphrase for <code>{filename}</code>:\n\n"
    "<tg-spoiler><code>{passphrase}</code></tg-spoiler>"
)
UNDELIVERED = N_(
    "I couldn't deliver the passphrase, so I cancelled that certificate for your safety. "
    "Please send /getcert again."
)
REVOKED_WHILE_DELIVERED = N_(
    "This certificate was revoked while I was sending it, so it will not work. "
    "Please send /getcert again."
)
CA_CAPTION = N_(
    "The broker's CA certificate (install it and trust it fully; see the steps below)."
)
PIN_CAPTION = N_("The same CA as an OwnTracks pin file (.otre) for older app versions.")

STEPS_IOS = N_(
    "<b>iPhone steps</b>\n"
    "1. In OwnTracks, allow loading files: Settings → allow external configuration/files "
    "(new app versions turn this off by default).\n"
    "2. Tap <code>{ca}</code> above, then Settings → Profile Downloaded → Install. Then "
    "Settings → General → About → Certificate Trust Settings → turn on full trust for it.\n"
    "3. Tap <code>{filename}</code> → share → OwnTracks. In OwnTracks: Settings → TLS → "
    "Client certificate → choose it and type the passphrase.\n"
    "4. Settings: Mode MQTT, Host <code>{host}</code>, Port <code>{port}</code>, TLS on, "
    "Username <code>{username}</code>, Device ID <code>{device}</code>.{link}"
)
STEPS_ANDROID = N_(
    "<b>Android steps</b>\n"
    "1. Save <code>{ca}</code>, then Settings → Security → Encryption &amp; credentials → "
    "Install a certificate → CA certificate.\n"
    "2. In OwnTracks: Preferences → Connection → Security → Install client certificate; "
    "pick <code>{filename}</code> and type the passphrase. Then choose it by its name.\n"
    "3. Connection: Mode MQTT, Host <code>{host}</code>, Port <code>{port}</code>, TLS on, "
    "Username <code>{username}</code>, Device ID <code>{device}</code>.{link}"
)
HOST_UNKNOWN = N_("(ask your admin)")
CONFIG_LINK = N_("\n\nOr tap this to fill in the connection settings (no secrets in it): {url}")

# --- revoking and the CRL ------------------------------------------------------------------
REVOKE_DONE = N_("Revoked {who}: {count} certificate(s).")
CRL_OK = N_("\nCRL rewritten ({entries} entries).")
CRL_FAILED = N_("\n⚠️ {error}")
RELOAD_FAILED = N_("\n⚠️ Broker reload failed: {detail}")
KICK_NONE = N_(
    "\nNote: Mosquitto keeps sessions that are already connected; this person's phone may "
    "stay connected until it disconnects (new connections are refused)."
)
KICK_OK = N_("\nLive MQTT sessions ended: {detail}")
KICK_FAILED = N_(
    "\n⚠️ Could not end live sessions ({detail}); "
    "the phone may stay connected until it disconnects."
)
CRL_PROBLEM = N_(
    "⚠️ The {when} CRL refresh failed: {detail}\n"
    "Mosquitto refuses every client once the CRL passes its nextUpdate; please fix this."
)
CRL_NOT_WRITTEN = N_("the CRL was not written")
CRL_WRITTEN_RELOAD_FAILED = N_("the CRL was written but the broker reload failed: {detail}")
CRL_AT_START_UP = N_("start-up")
CRL_SCHEDULED = N_("scheduled")

# --- the CA pin ----------------------------------------------------------------------------
REPIN_START = N_("Sending the pin <code>{fingerprint}</code> to {count} people…")
REPIN_SUMMARY = N_(
    "Re-pin done: {ok} reached, {blocked} blocked the bot{blocked_list}, {failed} failed."
)
REPIN_BLOCKED_LIST = N_(" ({names})")
REPIN_NEW_PIN = N_("Pinned certificate set: {subject}\nSHA-256 {fingerprint}")
PIN_HINT = N_("To make this certificate the pin, reply to the file with /repin.")
PIN_TOO_LARGE = N_("That file is too large to be a certificate.")
REPIN_TO_PERSON = N_(
    "The broker's certificate changed. Install this one (same steps as before)."
)

# --- listings ------------------------------------------------------------------------------
NONE_PENDING = N_("Nobody is waiting.")
NO_USERS = N_("Nobody is known yet.")
LIST_TRUNCATED = N_(
    "… and {more} more. On the server, <code>otcert users</code> lists everyone."
)
PERSON = N_("{name}{handle} (id <code>{telegram_id}</code>)")
PENDING_ROW = N_("• {who}")
PERSON_ROW = N_("• {who} [{status}]{username}")
PERSON_ROW_USERNAME = N_(" → <code>{username}</code>")
CERTIFICATE_ROW = N_("   {device}: serial {serial}…, expires {until}")
