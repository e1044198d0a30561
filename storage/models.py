"""Pydantic models at the storage boundary: what goes in and comes out of the repository.

No Telegram types here: identities are plain ints, so the bot layer, the CLI and the tests all
speak the same values. Every datetime is timezone-aware UTC; naive datetimes are refused
because a silent local-time guess would shift certificate validity and deletion times.

Who did something (``AuditEntry.actor_id``, ``Person.decided_by``, ``Pin.changed_by``) is
stored one way: a Telegram user id for a person or admin; :data:`OPERATOR_ID` (0) for the
operator at the shell (``otcert ...``), who has no Telegram account; NULL (``None``) for the
bot itself (expiring certificates, revoking one whose passphrase was never delivered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

__all__ = [
    "OPERATOR_ID",
    "AuditEntry",
    "CertStatus",
    "Certificate",
    "Person",
    "PersonStatus",
    "Pin",
    "Platform",
    "ScheduledDeletion",
    "UtcDateTime",
    "canonical_fingerprint",
    "canonical_serial",
]

_HEX_RE = re.compile(r"[0-9a-f]+")

# The operator's shell as an actor. Telegram never gives a user the id 0, so it cannot clash.
OPERATOR_ID = 0


class PersonStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REVOKED = "revoked"


class Platform(StrEnum):
    IOS = "ios"
    ANDROID = "android"


class CertStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


def ensure_utc(value: datetime) -> datetime:
    """Refuse naive datetimes and normalise aware ones to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(ensure_utc)]


def canonical_serial(value: object) -> str:
    """Serial number as lower-case hex without colons or leading zeros (``format(n, "x")``).

    One spelling everywhere, so a serial copied from ``openssl x509 -serial`` (upper case,
    leading zeros) finds the same row as one formatted from cryptography's integer.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a certificate serial number cannot be negative")
        return format(value, "x")
    if not isinstance(value, str):
        raise ValueError("a certificate serial number must be hex text")
    text = value.strip().replace(":", "").lower()
    if not _HEX_RE.fullmatch(text):
        raise ValueError("a certificate serial number must be hex digits")
    return text.lstrip("0") or "0"


def canonical_fingerprint(value: object) -> str:
    """SHA-256 fingerprint as 64 lower-case hex digits (colons and case are forgiven)."""
    if not isinstance(value, str):
        raise ValueError("a SHA-256 fingerprint must be hex text")
    text = value.strip().replace(":", "").lower()
    if len(text) != 64 or not _HEX_RE.fullmatch(text):
        raise ValueError("a SHA-256 fingerprint must be 64 hex digits")
    return text


Serial = Annotated[str, BeforeValidator(canonical_serial)]
Fingerprint = Annotated[str, BeforeValidator(canonical_fingerprint)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Person(_Frozen):
    """Someone who talked to the bot; the Telegram user id is the identity."""

    telegram_id: int
    display_name: str
    tg_username: str | None
    status: PersonStatus
    mqtt_username: str | None
    platform: Platform | None
    requested_at: UtcDateTime | None
    decided_at: UtcDateTime | None
    decided_by: int | None  # an admin's Telegram id or OPERATOR_ID; None until decided
    reason: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class Certificate(_Frozen):
    """A client certificate the bot issued: public facts only, never a key or passphrase."""

    serial: Serial
    telegram_id: int
    mqtt_username: str
    device: str
    fingerprint_sha256: Fingerprint
    not_before: UtcDateTime
    not_after: UtcDateTime
    issued_at: UtcDateTime
    status: CertStatus
    revoked_at: UtcDateTime | None = None
    revocation_reason: str | None = None
    delivered_at: UtcDateTime | None = None  # None: signed, but the passphrase not yet sent
    issuer: str | None = None  # SHA-256 fingerprint of the issuing CA; None: not yet known


@dataclass(frozen=True, slots=True)
class RevokedSerial:
    """What a CRL entry needs, and nothing more: read straight from the database (no
    validation per row), because the CRL is rebuilt from every one of them on each revocation."""

    serial: str
    revoked_at: datetime
    reason: str | None
    issuer: str | None = None  # fingerprint of the issuing CA (None: the current CA)


class AuditEntry(_Frozen):
    """One append-only audit row: who (actor) did what (action) to whom (subject), when.

    ``actor_id``: a Telegram user id, ``OPERATOR_ID`` for the operator's shell, ``None`` for
    the bot itself."""

    id: int
    at: UtcDateTime
    actor_id: int | None
    action: str
    subject_id: int | None
    details: dict[str, Any]


class ScheduledDeletion(_Frozen):
    """A chat message (file, passphrase) to delete at ``due_at``, even across a restart."""

    id: int
    chat_id: int
    message_id: int
    due_at: UtcDateTime


class Pin(_Frozen):
    """The CA certificate (DER) phones currently pin, and when it last changed."""

    der: bytes
    fingerprint_sha256: Fingerprint
    changed_at: UtcDateTime
    changed_by: int  # an admin's Telegram id or OPERATOR_ID
