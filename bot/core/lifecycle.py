"""Lifecycle use cases: what is due for a reminder, /mycerts, revoking one's own certificate,
/expiring, and the expiry of the bot's own infrastructure (CA, broker server, broker admin).

Renewal itself is :meth:`Service.issue` with ``renews=``: the same rules, cooldown and limits
as /getcert. Decisions live in :mod:`bot.core.lifecycle_rules`; this module loads the facts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509

from bot.core import lifecycle_rules as lr
from bot.core.results import CrlReport
from bot.core.service import Service
from pki.identity import fingerprint_sha256
from storage import Certificate, DueReminder, ExpiringCertificate, Person, Platform
from storage._lifecycle import Audience

__all__ = ["DueReminder", "ExpiringCertificate", "InfraCertificate", "Lifecycle"]

log = logging.getLogger(__name__)

InfraKind = Literal["ca", "server", "admin"]
REVOKED_BY_OWNER = "revoked by its owner (lost device)"


@dataclass(frozen=True)
class InfraCertificate:
    """One of the bot's own certificates; ``subject`` keys its reminder marks, so a new
    certificate (another fingerprint) is reminded afresh."""

    kind: InfraKind
    where: str
    not_after: datetime
    fingerprint: str

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.fingerprint}"


@dataclass(frozen=True)
class MyCertificate:
    certificate: Certificate
    platform: Platform | None
    days_left: int
    renew_opens: datetime
    renewable: bool


@dataclass(frozen=True)
class OwnRevocation:
    person: Person | None
    device: str
    certificates: list[Certificate]
    report: CrlReport


@dataclass(frozen=True)
class ExpiringView:
    days: int
    now: datetime
    certificates: list[ExpiringCertificate]
    infrastructure: list[InfraCertificate]


ServerProbe = Callable[[], Awaitable[x509.Certificate | None]]


class Lifecycle:
    def __init__(
        self,
        service: Service,
        *,
        reminder_days: Sequence[int] = (30, 7, 1),
        infra_days: Sequence[int] = (60, 30, 7, 1),
        admin_cert_path: Path | None = None,
        server_probe: ServerProbe | None = None,
        server_where: str = "",
    ) -> None:
        self.service = service
        self.repo = service.repo
        self.reminder_days = tuple(sorted(set(reminder_days), reverse=True))
        self.infra_days = tuple(sorted(set(infra_days), reverse=True))
        self.admin_cert_path = admin_cert_path
        self.server_probe = server_probe
        self.server_where = server_where

    def now(self) -> datetime:
        return self.service._clock()

    @property
    def window_days(self) -> int:
        return max(self.reminder_days)

    # --- people --------------------------------------------------------------------------
    async def my_certificates(self, telegram_id: int) -> list[MyCertificate]:
        now = self.now()
        person = await self.repo.get_person(telegram_id)
        active = await self.repo.certificates_for(telegram_id, active_only=True)
        renewed = await self.repo.renewed_serials(c.serial for c in active)
        out = []
        for cert in lr.working_certificates(active, renewed, now):
            opens = lr.renewal_opens(cert, self.window_days)
            out.append(MyCertificate(cert, person.platform if person else None,
                                     lr.days_left(cert.not_after, now), opens, now >= opens))
        return out

    async def renewal_for(self, telegram_id: int, device: str | None) -> str:
        """``/renew [device]``: the serial to renew (raises when there is none, or too early)."""
        mine = [m.certificate for m in await self.my_certificates(telegram_id)]
        cert = lr.pick_for_renewal(mine, device)
        lr.check_renewable(cert, telegram_id, renewed=False, window_days=self.window_days,
                           now=self.now())
        return cert.serial

    async def certificate_of(self, telegram_id: int, serial: str) -> Certificate:
        """The presser's own active certificate (for the confirmation question)."""
        return lr.check_own_revocable(await self.repo.get_certificate(serial), telegram_id)

    async def revoke_own(self, telegram_id: int, serial: str) -> OwnRevocation:
        """A lost phone: every active certificate of that device (a renewed predecessor too,
        which the lost phone may still hold); the owner's other devices keep working."""
        cert = await self.certificate_of(telegram_id, serial)
        active = await self.repo.certificates_for(telegram_id, active_only=True)
        revoked: list[Certificate] = []
        try:
            for same in (c for c in active if c.device == cert.device):
                revoked.append(await self.repo.revoke_certificate(
                    same.serial, by=telegram_id, reason=REVOKED_BY_OWNER))
        except BaseException:
            if revoked:  # a later one failing must not keep these off the CRL
                await self.service.refresh_crl(kick_username=cert.mqtt_username)
            raise
        report = await self.service.refresh_crl(kick_username=cert.mqtt_username)
        person = await self.repo.get_person(telegram_id)
        return OwnRevocation(person, cert.device, revoked, report)

    # --- reminders -----------------------------------------------------------------------
    async def due_for_owners(self, limit: int = 5000) -> list[DueReminder]:
        return await self.repo.due_reminders(self.now(), self.reminder_days, limit=limit)

    async def due_for_admins(self, limit: int = 5000) -> list[DueReminder]:
        """Certificates at the smallest threshold and still not renewed: admins hear once."""
        return await self.repo.due_reminders(
            self.now(), (min(self.reminder_days),), audience="admins", limit=limit
        )

    async def claim_reminder(
        self, subject: str, audience: Audience, days: Iterable[int]
    ) -> None:
        """Recorded before the message is sent: a crash then costs one duplicate at most."""
        await self.repo.claim_reminder(subject, audience, days)

    async def confirm_reminder(
        self, subject: str, audience: Audience, days: Iterable[int], outcome: str = "sent"
    ) -> None:
        """After sending (or for good when it cannot be delivered): never reminded again."""
        await self.repo.confirm_reminder(subject, audience, days, outcome)

    async def person(self, telegram_id: int) -> Person | None:
        return await self.repo.get_person(telegram_id)

    # --- admins --------------------------------------------------------------------------
    async def expiring(self, actor_id: int | None, days: int | None = None) -> ExpiringView:
        self.service._require_admin(actor_id)
        span = days if days is not None else self.window_days
        now = self.now()
        certs = await self.repo.expiring_certificates(now, timedelta(days=span))
        infra = [i for i in await self.infrastructure() if i.not_after - now < timedelta(days=span)]
        return ExpiringView(span, now, certs, sorted(infra, key=lambda i: i.not_after))

    async def infrastructure(self) -> list[InfraCertificate]:
        """The CA, the broker-admin certificate (when the bot has one) and the broker's
        server certificate as a verified TLS handshake shows it (when a host is set)."""
        found = [_infra("ca", "", self.service.ca.certificate)]
        if self.admin_cert_path is not None:
            try:
                admin = x509.load_pem_x509_certificate(self.admin_cert_path.read_bytes())
            except (OSError, ValueError):
                admin = None
            if admin is not None:
                found.append(_infra("admin", str(self.admin_cert_path), admin))
        if self.server_probe is not None:
            try:
                server = await self.server_probe()
            except Exception as exc:  # the probe's failure must not stop the reminders
                log.warning("broker certificate probe failed: %s", exc)
                server = None
            if server is not None:
                found.append(_infra("server", self.server_where, server))
        return found

    async def infra_due(self) -> list[tuple[InfraCertificate, tuple[int, ...]]]:
        now = self.now()
        due = []
        for item in await self.infrastructure():
            done = await self.repo.reminded_days(item.subject, "admins")
            days = lr.due_thresholds(item.not_after, now, self.infra_days, done)
            if days:
                due.append((item, days))
        return due


def _infra(kind: InfraKind, where: str, cert: x509.Certificate) -> InfraCertificate:
    return InfraCertificate(kind, where, cert.not_valid_after_utc, fingerprint_sha256(cert))
