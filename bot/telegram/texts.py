"""Every sentence people see, in one place. All output is Telegram HTML; anything that
came from a person goes through :func:`esc`."""

from __future__ import annotations

import base64
import json
import urllib.parse
from datetime import datetime
from html import escape

from storage import Certificate, Person, PersonStatus, Platform


def esc(value: object) -> str:
    return escape(str(value), quote=False)


def who(person: Person) -> str:
    handle = f" @{esc(person.tg_username)}" if person.tg_username else ""
    return f"{esc(person.display_name)}{handle} (id <code>{person.telegram_id}</code>)"


def day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


WELCOME = (
    "Hi! I hand out TLS client certificates for the OwnTracks location broker.\n\n"
    "1. Send /request to ask for access.\n"
    "2. When an admin approves you, send /getcert in this chat.\n"
    "3. I send a certificate file and, separately, its passphrase, then the steps for your phone."
)

STATUS = {
    None: "You have not asked for access yet. Send /request.",
    PersonStatus.PENDING: "Your request is waiting for an admin.",
    PersonStatus.APPROVED: (
        "You have access as <code>{username}</code>. Send /getcert to get a certificate."
    ),
    PersonStatus.DENIED: "Your last request was denied. You may /request again.",
    PersonStatus.REVOKED: "Your access was revoked. You may /request again.",
}

HELP_EVERYONE = (
    "/start – what I do and where you stand\n"
    "/request – ask for access\n"
    "/getcert [device] – get a certificate (e.g. <code>/getcert ipad</code>)\n"
    "/help – this list"
)
HELP_ADMIN = (
    "\n\nAdmins:\n"
    "/approve &lt;telegram_id&gt; &lt;mqtt_username&gt;\n"
    "/deny &lt;telegram_id&gt; [reason]\n"
    "/revoke &lt;mqtt_username|telegram_id&gt; [reason]\n"
    "/repin – re-send the CA pin to everyone (reply to a certificate file to pin it first)\n"
    "/pending, /users – who waits, who has access"
)

PRIVATE_ONLY = "I hand out certificates only in a private chat. Open a chat with me and try there."
UNKNOWN_COMMAND = "I don't know that command. Here is what you can use:\n\n"
NOT_ADMIN = "Sorry, only admins can do that."
ADMIN_PRIVATE_ONLY = "Admin commands work only in a private chat with me."
SLOW_DOWN = "You're sending messages too fast. Please wait a few seconds."
INTERNAL_ERROR = "Something went wrong on my side (error {ref}). The admins can find it in the log."
PREPARING = "Preparing your certificate…"

REQUEST_SENT = "Thanks! I've asked the admins. I'll tell you when they decide."
REQUEST_ALREADY = "Your request is already with the admins; no need to ask again."
REQUEST_APPROVED_ALREADY = "You already have access. Send /getcert."
ADMIN_NEW_REQUEST = "New access request from {who}."
ADMIN_DECIDED = "{verb} by {admin}: {who}{extra}"

APPROVED_PERSON = (
    "Your access was approved. Your MQTT username is <code>{username}</code>.\n"
    "Send /getcert to get your certificate."
)
DENIED_PERSON = "Your access request was denied.{reason}"
REVOKED_PERSON = "Your access was revoked and your certificates no longer work.{reason}"

ASK_PLATFORM = "Which phone is the certificate for?"
ASK_APPROVE_NAME = (
    "Approve {who} as <code>{username}</code>?\n"
    "For another username send <code>/approve {tid} NAME</code>."
)
ASK_APPROVE_NO_NAME = (
    "I can't suggest a username for {who}. Send <code>/approve {tid} NAME</code>."
)

FILE_CAPTION = (
    "Your OwnTracks certificate for <code>{username}</code> ({device}), valid until {until}.\n"
    "The passphrase follows in the next message. Both messages disappear in {ttl}."
)
SECRET_MESSAGE = (
    "Passphrase for <code>{filename}</code>:\n\n"
    "<tg-spoiler><code>{passphrase}</code></tg-spoiler>"
)
UNDELIVERED = (
    "I couldn't deliver the passphrase, so I cancelled that certificate for your safety. "
    "Please send /getcert again."
)
CA_CAPTION = "The broker's CA certificate (install it and trust it fully; see the steps below)."
PIN_CAPTION = "The same CA as an OwnTracks pin file (.otre) for older app versions."
REPLACED = "\n\nYour previous certificate for this device was revoked."

STEPS_IOS = (
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
STEPS_ANDROID = (
    "<b>Android steps</b>\n"
    "1. Save <code>{ca}</code>, then Settings → Security → Encryption &amp; credentials → "
    "Install a certificate → CA certificate.\n"
    "2. In OwnTracks: Preferences → Connection → Security → Install client certificate; "
    "pick <code>{filename}</code> and type the passphrase. Then choose it by its name.\n"
    "3. Connection: Mode MQTT, Host <code>{host}</code>, Port <code>{port}</code>, TLS on, "
    "Username <code>{username}</code>, Device ID <code>{device}</code>.{link}"
)
CONFIG_LINK = "\n\nOr tap this to fill in the connection settings (no secrets in it): {url}"

REVOKE_DONE = "Revoked {who}: {count} certificate(s)."
CRL_OK = "\nCRL rewritten ({entries} entries)."
CRL_FAILED = "\n⚠️ {error}"
RELOAD_FAILED = "\n⚠️ Broker reload failed: {detail}"
RELOAD_OK = "\nBroker reloaded."
KICK_NONE = (
    "\nNote: Mosquitto keeps sessions that are already connected; this person's phone may "
    "stay connected until it disconnects (new connections are refused)."
)
KICK_OK = "\nLive MQTT sessions ended: {detail}"
KICK_FAILED = (
    "\n⚠️ Could not end live sessions ({detail}); "
    "the phone may stay connected until it disconnects."
)

REPIN_START = "Sending the pin <code>{fingerprint}</code> to {count} people…"
REPIN_SUMMARY = (
    "Re-pin done: {ok} reached, {blocked} blocked the bot{blocked_list}, {failed} failed."
)
REPIN_NEW_PIN = "Pinned certificate set: {subject}\nSHA-256 {fingerprint}"
PIN_CHANGED_BY = (
    "🔐 {admin} changed the pinned certificate to {subject}\nSHA-256 {fingerprint}\n"
    "If you did not expect this, check it before people install it."
)
PIN_HINT = "To make this certificate the pin, reply to the file with /repin."
REPIN_TO_PERSON = "The broker's certificate changed. Install this one (same steps as before)."

NONE_PENDING = "Nobody is waiting."
NO_USERS = "Nobody is known yet."
LIST_TRUNCATED = "… and {more} more. On the server, <code>otcert users</code> lists everyone."
USAGE_APPROVE = "Usage: <code>/approve &lt;telegram_id&gt; &lt;mqtt_username&gt;</code>"
USAGE_DENY = "Usage: <code>/deny &lt;telegram_id&gt; [reason]</code>"
USAGE_REVOKE = "Usage: <code>/revoke &lt;mqtt_username|telegram_id&gt; [reason]</code>"
USAGE_GETCERT = "Usage: <code>/getcert [device]</code>, e.g. <code>/getcert ipad</code>"
BAD_TELEGRAM_ID = "'{value}' is not a Telegram user id (a positive number)."
BUTTON_STALE = "That button is no longer valid."
REQUEST_DECIDED = "This request was already handled (now: {status}). Use a command to change it."


def status_line(person: Person | None) -> str:
    text = STATUS[person.status if person else None]
    return text.format(username=esc(person.mqtt_username) if person else "")


def duration(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"


def config_link(host: str | None, port: int, username: str, device: str) -> str:
    """An ``owntracks:///config?inline=`` link with connection settings, never a secret."""
    if not host:
        return ""
    config = {
        "_type": "configuration",
        "mode": 0,
        "host": host,
        "port": port,
        "tls": True,
        "username": username,
        "deviceId": device,
        "tid": username[:2],
    }
    inline = base64.b64encode(json.dumps(config, separators=(",", ":")).encode()).decode()
    url = "owntracks:///config?inline=" + urllib.parse.quote(inline, safe="")
    return CONFIG_LINK.format(url=esc(url))


def steps(
    platform: Platform, *, ca: str, filename: str, host: str | None, port: int,
    username: str, device: str,
) -> str:
    template = STEPS_IOS if platform == Platform.IOS else STEPS_ANDROID
    return template.format(
        ca=esc(ca), filename=esc(filename), host=esc(host or "(ask your admin)"), port=port,
        username=esc(username), device=esc(device),
        link=config_link(host, port, username, device),
    )


def person_row(person: Person, certs: list[Certificate]) -> str:
    name = f" → <code>{esc(person.mqtt_username)}</code>" if person.mqtt_username else ""
    lines = [f"• {who(person)} [{person.status.value}]{name}"]
    for cert in certs:
        lines.append(
            f"   {esc(cert.device)}: serial {cert.serial[:12]}…, expires {day(cert.not_after)}"
        )
    return "\n".join(lines)
