"""The product's rules as pure functions: plain values in, a decision out or a domain error.

No database, no clock, no Telegram: the service loads the facts (the person, their active
certificates, when they last got one, ``now``) and asks here. That keeps every rule in one
place and testable in milliseconds (tests/test_rules.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bot.broker import BrokerAdmin
from bot.core.errors import PlatformNeeded, UserError
from bot.texts import errors as texts
from bot.texts import trust as trust_texts
from pki.bundle import Pkcs12Profile
from pki.names import validate_username
from storage import Certificate, CertStatus, Person, PersonStatus, Platform

DEFAULT_DEVICE = "phone"
REASON_TEXT_MAX = 200
TARGET_ID_MAX_DIGITS = 20  # longer digit runs are no Telegram id


@dataclass(frozen=True)
class Policy:
    """The settings the use cases need, decoupled from how they were read."""

    admin_ids: frozenset[int]
    cert_days: int = 365
    pkcs12_profile: Pkcs12Profile = "legacy"
    max_devices: int = 3
    issue_cooldown: timedelta = timedelta(seconds=30)
    crl_path: Path = Path("data/crl.pem")
    crl_validity: timedelta = timedelta(days=30)
    reload_command: str | None = None
    reserved_usernames: frozenset[str] = frozenset({"otcert-admin"})
    broker_admin: BrokerAdmin | None = None  # set when OTCERT_BROKER_KICK=dynsec
    ca_bundle_path: Path | None = None  # Mosquitto's cafile, written with the CRL file
    # Issue 14: where phones connect (the /repin chain check), what they trust, a daily cap.
    mqtt_host: str | None = None
    mqtt_port: int = 8883
    phone_ca: str = "bot"
    max_issues_per_day: int = 5
    data_dir: Path | None = None  # where the cross-process locks live (issue 14)
    renew_window_days: int = 30  # the largest of OTCERT_RENEW_REMINDER_DAYS


@dataclass(frozen=True)
class IssueGrant:
    """Yes to an issue request, with the facts the certificate is made from."""

    username: str
    platform: Platform
    device: str


# --- who may get a certificate, and when ----------------------------------------------------
def may_issue(
    person: Person | None,
    device: str,
    *,
    active: Iterable[Certificate],
    last_issued_at: datetime | None,
    policy: Policy,
    now: datetime,
    issued_recently: Iterable[datetime] = (),
) -> IssueGrant:
    """Whether ``person`` may get a certificate for ``device`` now; raises the reason if not.

    The checks run in the order a person can act on them: access first, then the phone,
    then the device limit, then the cooldown.
    """
    approved = require_approved(person)
    username = require_usable_username(approved, policy.reserved_usernames)
    if approved.platform is None:
        raise PlatformNeeded(device)
    check_device_limit(device, active, max_devices=policy.max_devices, now=now)
    check_cooldown(last_issued_at, cooldown=policy.issue_cooldown, now=now)
    check_daily_limit(issued_recently, limit=policy.max_issues_per_day, now=now)
    return IssueGrant(username=username, platform=approved.platform, device=device)


def require_approved(person: Person | None) -> Person:
    """The person, if an admin approved them; otherwise what they can do about it."""
    if person is None or person.status is PersonStatus.DENIED:
        raise UserError(texts.NO_ACCESS_YET)
    if person.status is PersonStatus.PENDING:
        raise UserError(texts.STILL_PENDING)
    if person.status is PersonStatus.REVOKED:
        raise UserError(texts.ACCESS_REVOKED)
    return person


def require_usable_username(person: Person, reserved: frozenset[str]) -> str:
    """The person's MQTT username, unless they have none or it names a service identity."""
    if person.mqtt_username is None or person.mqtt_username in reserved:
        raise UserError(texts.NO_USABLE_USERNAME)
    return person.mqtt_username


def devices_in_use(active: Iterable[Certificate], now: datetime) -> set[str]:
    """Devices holding a certificate that still works: expired ones free their slot."""
    return {c.device for c in active if c.status is CertStatus.ACTIVE and c.not_after > now}


def check_device_limit(
    device: str, active: Iterable[Certificate], *, max_devices: int, now: datetime
) -> None:
    """A new device needs a free slot; a device already in use is replaced, not added."""
    devices = devices_in_use(active, now)
    if device not in devices and len(devices) >= max_devices:
        raise UserError(
            texts.DEVICE_LIMIT, count=len(devices), devices=", ".join(sorted(devices))
        )


def cooldown_left(
    last_issued_at: datetime | None, *, cooldown: timedelta, now: datetime
) -> timedelta | None:
    """How long until the next certificate may be issued, or None when it may be now."""
    if last_issued_at is None:
        return None
    wait = last_issued_at + cooldown - now
    return wait if wait > timedelta(0) else None


def check_cooldown(last_issued_at: datetime | None, *, cooldown: timedelta, now: datetime) -> None:
    wait = cooldown_left(last_issued_at, cooldown=cooldown, now=now)
    if wait is not None:
        raise UserError(texts.COOLDOWN, seconds=int(wait.total_seconds()) + 1)


DAY = timedelta(hours=24)


class DailyLimit(UserError):
    """The person got ``OTCERT_MAX_ISSUES_PER_DAY`` certificates in the last 24 hours; each
    re-issue costs a CRL entry and a broker reload. ``since``: the window's oldest issue."""

    def __init__(self, count: int, since: datetime) -> None:
        until = f"{since + DAY:%Y-%m-%d %H:%M} UTC"
        super().__init__(trust_texts.DAILY_LIMIT, count=count, until=until)
        self.count = count
        self.since = since


def check_daily_limit(issued: Iterable[datetime], *, limit: int, now: datetime) -> None:
    """At most ``limit`` certificates in any 24 hours (``/getcert`` and renewals alike)."""
    window = sorted(at for at in issued if now - DAY < at <= now)
    if len(window) >= limit:
        raise DailyLimit(len(window), window[-limit])


def superseded_by(device: str, active: Iterable[Certificate]) -> list[Certificate]:
    """The certificates a new one for ``device`` replaces: the owner's active ones for the
    same device, expired or not, oldest first. Storage applies this same rule inside the
    transaction that records the new certificate (``Repository.record_issue``)."""
    same = (c for c in active if c.status is CertStatus.ACTIVE and c.device == device)
    return sorted(same, key=lambda c: (c.issued_at, c.serial))


# --- usernames ------------------------------------------------------------------------------
def approvable_username(username: str, reserved: frozenset[str]) -> str:
    """The canonical username an admin may approve someone with (raises InvalidName or
    UserError): never one of the bot's own service identities."""
    name = validate_username(username)
    if name in reserved:
        raise UserError(texts.RESERVED_USERNAME, name=name)
    return name


def suggested_username(person: Person, reserved: frozenset[str]) -> str | None:
    """A username derived from the @username or name, if one passes the rules."""
    for candidate in (person.tg_username, person.display_name.split(" ")[0]):
        if not candidate:
            continue
        try:
            name = validate_username(candidate[:32])
        except ValueError:
            continue
        if name not in reserved:
            return name
    return None


# --- what admins type -----------------------------------------------------------------------
def clip_reason(reason: str | None) -> str | None:
    """Free text (a reason, a display name) to store and show again: printable characters
    only, trimmed, at most REASON_TEXT_MAX; None when nothing is left."""
    if reason is None:
        return None
    cleaned = "".join(ch if ch.isprintable() else " " for ch in reason).strip()
    return cleaned[:REASON_TEXT_MAX] or None


@dataclass(frozen=True)
class Target:
    """``<mqtt_username|telegram_id>`` as an admin typed it: the ways to look it up."""

    text: str
    telegram_id: int | None
    username: str | None


def parse_target(typed: str) -> Target:
    """Digits are a Telegram id (ASCII only: not '²' or '١٢٣'); a valid name is a username."""
    text = typed.strip()
    telegram_id = None
    if text.isascii() and text.isdigit() and len(text) <= TARGET_ID_MAX_DIGITS:
        telegram_id = int(text)
    try:
        username: str | None = validate_username(text)
    except ValueError:
        username = None
    return Target(text=text, telegram_id=telegram_id, username=username)


def unknown_target(target: Target) -> UserError:
    """The answer when nobody matches ``target``."""
    return UserError(texts.UNKNOWN_TARGET, target=target.text[:64])
