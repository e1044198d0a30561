"""What the use cases return: plain values the Telegram side and the CLI render."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.broker import BrokerOutcome
from storage import Certificate, Person, Platform


@dataclass(frozen=True)
class IssuedBundle:
    """What /getcert delivers. The passphrase is here and nowhere else."""

    filename: str
    data: bytes = field(repr=False)
    passphrase: str = field(repr=False)
    serial: str
    fingerprint: str
    not_after: datetime
    platform: Platform
    username: str
    device: str
    replaced: int


@dataclass(frozen=True)
class CrlReport:
    """What publishing the CRL did: written or not, and what the broker said."""

    written: bool
    entries: int
    reload: BrokerOutcome | None = None
    kick: BrokerOutcome | None = None
    error: str | None = None  # the raw detail (an exception's text), worded where shown
    kick_skipped: bool = False  # a kick was due but the broker was not reloaded


@dataclass(frozen=True)
class Revocation:
    person: Person
    certificates: list[Certificate]
    crl: CrlReport


@dataclass(frozen=True)
class PinBundle:
    """The certificate people's apps pin, in the forms the apps take."""

    pem: bytes
    der: bytes
    fingerprint: str
    subject: str


@dataclass(frozen=True)
class Listing:
    rows: list[tuple[Person, list[Certificate]]]
    total: int  # everyone, also those beyond the rows


@dataclass(frozen=True)
class RequestOutcome:
    person: Person
    notify_admins: bool
