"""The use cases: plain Python in and out, no Telegram types.

The service owns the order of operations (validate, sign, record, then deliver) so that
handlers, the CLI and the tests all get the same guarantees. It keeps no secret: the key
and the passphrase live only in the returned :class:`IssuedBundle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from bot.broker import BrokerAdmin, BrokerOutcome, kick_sessions, run_reload_command
from bot.core.errors import NotAllowed, PlatformNeeded, UserError
from bot.core.keypool import KeyPool
from bot.core.signer import Signer, SignRequest
from pki.authority import CertificateAuthority
from pki.bundle import (
    Pkcs12Profile,
    fingerprint_sha256,
    load_certificate,
    make_passphrase,
    pin_der,
)
from pki.crl import RevokedEntry, build_crl, write_crl
from pki.names import validate_device, validate_username
from storage import (
    OPERATOR_ID,
    AuditEntry,
    Certificate,
    CertStatus,
    Person,
    PersonStatus,
    Platform,
    Repository,
    ScheduledDeletion,
)

log = logging.getLogger(__name__)

DEFAULT_DEVICE = "phone"
REASON_TEXT_MAX = 200

_CRL_REASONS = {
    "superseded": x509.ReasonFlags.superseded,
    "undelivered": x509.ReasonFlags.cessation_of_operation,
}


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
    written: bool
    entries: int
    reload: BrokerOutcome | None = None
    kick: BrokerOutcome | None = None
    error: str | None = None


@dataclass(frozen=True)
class Revocation:
    person: Person
    certificates: list[Certificate]
    crl: CrlReport


@dataclass(frozen=True)
class PinBundle:
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


def _now() -> datetime:
    return datetime.now(UTC)


def _clip(reason: str | None) -> str | None:
    if reason is None:
        return None
    cleaned = "".join(ch if ch.isprintable() else " " for ch in reason).strip()
    return cleaned[:REASON_TEXT_MAX] or None


class Service:
    def __init__(
        self,
        repo: Repository,
        ca: CertificateAuthority,
        policy: Policy,
        keys: KeyPool,
        *,
        signer: Signer | None = None,
        clock: Callable[[], datetime] = _now,
        reload: Callable[[str | None], Awaitable[BrokerOutcome]] = run_reload_command,
    ) -> None:
        self.repo = repo
        self.ca = ca
        self.policy = policy
        self.keys = keys
        self.signer = signer or Signer(ca)
        self._clock = clock
        self._reload = reload
        self._issuing: set[int] = set()
        self._crl_lock = asyncio.Lock()

    # --- who is who -------------------------------------------------------------------
    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self.policy.admin_ids

    def _require_admin(self, actor_id: int | None) -> None:
        """``None`` is the operator's shell (the CLI), which is trusted."""
        if actor_id is not None and not self.is_admin(actor_id):
            raise NotAllowed("Only admins can do that.")

    async def status(self, telegram_id: int) -> Person | None:
        return await self.repo.get_person(telegram_id)

    # --- access ---------------------------------------------------------------------
    async def request_access(
        self, telegram_id: int, display_name: str, tg_username: str | None
    ) -> RequestOutcome:
        name = _clip(display_name) or str(telegram_id)
        person, is_new = await self.repo.request_access(telegram_id, name[:64], tg_username)
        return RequestOutcome(person, is_new)

    def suggest_username(self, person: Person) -> str | None:
        """A username derived from the @username or name, if one passes the rules."""
        for candidate in (person.tg_username, person.display_name.split(" ")[0]):
            if not candidate:
                continue
            try:
                name = validate_username(candidate[:32])
            except ValueError:
                continue
            if name not in self.policy.reserved_usernames:
                return name
        return None

    async def approve(self, actor_id: int | None, telegram_id: int, username: str) -> Person:
        self._require_admin(actor_id)
        name = validate_username(username)
        if name in self.policy.reserved_usernames:
            raise UserError(
                f"'{name}' is reserved for the bot's own broker identity; choose another username."
            )
        return await self.repo.approve(telegram_id, name, by=actor_id or OPERATOR_ID)

    async def deny(self, actor_id: int | None, telegram_id: int, reason: str | None) -> Person:
        self._require_admin(actor_id)
        return await self.repo.deny(telegram_id, by=actor_id or OPERATOR_ID, reason=_clip(reason))

    async def set_platform(self, telegram_id: int, platform: Platform) -> Person:
        return await self.repo.set_platform(telegram_id, platform)

    # --- certificates -------------------------------------------------------------------
    async def issue(self, telegram_id: int, device: str | None = None) -> IssuedBundle:
        """Sign, pack and record a certificate; the caller delivers it."""
        device_name = validate_device(device if device else DEFAULT_DEVICE)
        with self._one_issue_at_a_time(telegram_id):
            person = await self._issuable_person(telegram_id, device_name)
            assert person.mqtt_username is not None and person.platform is not None
            key = await self.keys.take()
            now = self._clock()
            passphrase = make_passphrase()
            request = SignRequest(
                username=person.mqtt_username,
                days=self.policy.cert_days,
                now=now,
                friendly_name=f"{person.mqtt_username} ({device_name})",
                profile=self.policy.pkcs12_profile,
            )
            cert, data = await self.signer.sign_and_pack(key, request, passphrase)
            del key
            record = Certificate(
                serial=format(cert.serial_number, "x"),
                telegram_id=telegram_id,
                mqtt_username=person.mqtt_username,
                device=device_name,
                fingerprint_sha256=fingerprint_sha256(cert),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                issued_at=now,
                status=CertStatus.ACTIVE,
            )
            replaced = await self.repo.record_issue(record, actor=telegram_id)
        if replaced:
            await self.refresh_crl()
        ext = "otrp" if person.platform == Platform.IOS else "p12"
        return IssuedBundle(
            filename=f"{person.mqtt_username}-{device_name}.{ext}",
            data=data,
            passphrase=passphrase,
            serial=record.serial,
            fingerprint=record.fingerprint_sha256,
            not_after=record.not_after,
            platform=person.platform,
            username=person.mqtt_username,
            device=device_name,
            replaced=len(replaced),
        )

    @contextlib.contextmanager
    def _one_issue_at_a_time(self, telegram_id: int) -> Iterator[None]:
        """A second issue for the same person while one runs is refused, not queued."""
        if telegram_id in self._issuing:
            raise UserError("I'm already preparing your certificate; it will arrive in a moment.")
        self._issuing.add(telegram_id)
        try:
            yield
        finally:
            self._issuing.discard(telegram_id)

    async def _issuable_person(self, telegram_id: int, device: str) -> Person:
        person = await self.repo.get_person(telegram_id)
        if person is None or person.status == PersonStatus.DENIED:
            raise UserError("You don't have access yet. Send /request to ask an admin.")
        if person.status == PersonStatus.PENDING:
            raise UserError("Your request is still waiting for an admin. I'll tell you when.")
        if person.status == PersonStatus.REVOKED:
            raise UserError("Your access was revoked. Send /request to ask again.")
        if person.mqtt_username is None or person.mqtt_username in self.policy.reserved_usernames:
            raise UserError("Your account has no usable MQTT username; ask an admin.")
        if person.platform is None:
            raise PlatformNeeded(device)
        active = await self.repo.certificates_for(telegram_id, active_only=True)
        devices = {c.device for c in active if c.not_after > self._clock()}
        if device not in devices and len(devices) >= self.policy.max_devices:
            raise UserError(
                f"You already have certificates for {len(devices)} devices "
                f"({', '.join(sorted(devices))}), the most allowed. Use one of those names "
                "to replace its certificate, or ask an admin to revoke one."
            )
        last = await self.repo.last_issued_at(telegram_id)
        if last is not None:
            wait = last + self.policy.issue_cooldown - self._clock()
            if wait > timedelta(0):
                raise UserError(
                    f"You just got a certificate. Please wait {int(wait.total_seconds()) + 1} "
                    "seconds before asking for another."
                )
        return person

    async def revoke_undelivered(self, serial: str) -> CrlReport:
        """A bundle that did not reach the person must not stay valid."""
        await self.repo.revoke_certificate(serial, by=None, reason="undelivered")
        return await self.refresh_crl()

    async def confirm_delivery(self, serial: str) -> None:
        """File and passphrase both reached the person: the certificate is now in use."""
        await self.repo.mark_delivered(serial)

    async def revoke_unfinished_deliveries(self) -> int:
        """At start-up no delivery is in flight, so a certificate still undelivered was cut
        off by a crash: nobody can use it (the key is gone), so it must not stay valid."""
        leftovers = await self.repo.undelivered_certificates()
        for cert in leftovers:
            await self.repo.revoke_certificate(cert.serial, by=None, reason="undelivered")
        return len(leftovers)

    async def find_person(self, target: str) -> Person:
        """Resolve ``<mqtt_username|telegram_id>`` as admins type it."""
        text = target.strip()
        person: Person | None = None
        if text.isascii() and text.isdigit() and len(text) <= 20:  # not '²' or '١٢٣'
            person = await self.repo.get_person(int(text))
        if person is None:
            try:
                person = await self.repo.get_person_by_username(validate_username(text))
            except ValueError:
                person = None
        if person is None:
            raise UserError(f"Nobody with Telegram id or MQTT username '{text[:64]}' is known.")
        return person

    async def revoke(self, actor_id: int | None, target: str, reason: str | None) -> Revocation:
        self._require_admin(actor_id)
        person = await self.find_person(target)
        person, certs = await self.repo.revoke_person(
            person.telegram_id, by=actor_id or OPERATOR_ID, reason=_clip(reason)
        )
        report = await self.refresh_crl(kick_username=person.mqtt_username)
        return Revocation(person, certs, report)

    async def refresh_crl(self, *, kick_username: str | None = None) -> CrlReport:
        """Rewrite the CRL from the database, then reload the broker, then kick.

        The order matters: a kicked client reconnects at once, so the broker must already
        have the new CRL.
        """
        async with self._crl_lock:
            now = self._clock()
            await self.repo.mark_expired(now)  # keeps views and device limits honest
            revoked = await self.repo.revoked_serials(now)
            entries = [
                RevokedEntry(
                    serial=int(r.serial, 16),
                    revoked_at=r.revoked_at,
                    reason=_CRL_REASONS.get(r.reason or ""),
                )
                for r in revoked
            ]
            number = await self.repo.next_crl_number()
            try:
                crl = await asyncio.to_thread(
                    build_crl,
                    self.ca,
                    entries,
                    crl_number=number,
                    validity=self.policy.crl_validity,
                    now=now,
                )
                await asyncio.to_thread(write_crl, self.policy.crl_path, crl, self.ca.certificate)
            except Exception as exc:
                log.exception("CRL write failed")
                return CrlReport(False, len(entries), error=f"CRL not written: {exc}")
        reload = await self._reload(self.policy.reload_command)
        kick = None
        if kick_username and self.policy.broker_admin is not None:
            kick = await kick_sessions(self.policy.broker_admin, kick_username)
        return CrlReport(True, len(entries), reload=reload, kick=kick)

    # --- pins -------------------------------------------------------------------------
    async def current_pin(self) -> PinBundle:
        pin = await self.repo.current_pin()
        cert = load_certificate(pin.der) if pin is not None else self.ca.certificate
        return _pin_bundle(cert)

    async def set_pin(self, actor_id: int | None, data: bytes) -> PinBundle:
        self._require_admin(actor_id)
        # Off the loop: a hostile upload may hold a huge key that takes long to check.
        cert = await asyncio.to_thread(load_certificate, data, require_ca=True, now=self._clock())
        bundle = _pin_bundle(cert)
        await self.repo.set_pin(bundle.der, bundle.fingerprint, by=actor_id or OPERATOR_ID)
        return bundle

    async def pin_recipients(self, actor_id: int | None, pin: PinBundle) -> list[Person]:
        """Everyone who must receive ``pin`` now; the re-pin itself is audited here."""
        self._require_admin(actor_id)
        people = await self.repo.list_people(PersonStatus.APPROVED)
        await self.repo.add_audit(
            actor_id=actor_id or OPERATOR_ID, action="repin", subject_id=None,
            details={"fingerprint": pin.fingerprint, "recipients": len(people)},
        )
        return people

    # --- chat bookkeeping (the Telegram side keeps no state of its own) -----------------
    async def claim_update(self, update_id: int) -> bool:
        """True the first time an update is seen; a redelivery after a crash is skipped."""
        return await self.repo.claim_update(update_id)

    async def remember_request_notices(
        self, telegram_id: int, notices: list[tuple[int, int]]
    ) -> None:
        """The admins' copies (chat id, message id) of a request, to mark them decided."""
        await self.repo.add_request_notices(telegram_id, notices)

    async def take_request_notices(self, telegram_id: int) -> list[tuple[int, int]]:
        return await self.repo.take_request_notices(telegram_id)

    async def schedule_deletion(self, chat_id: int, message_id: int, after: timedelta) -> None:
        """Durably: a restart still deletes a secret message when its time comes."""
        await self.repo.schedule_deletion(chat_id, message_id, self._clock() + after)

    async def due_deletions(self) -> list[ScheduledDeletion]:
        return await self.repo.due_deletions(self._clock())

    async def finish_deletion(self, deletion_id: int) -> None:
        await self.repo.finish_deletion(deletion_id)

    # --- admin views ------------------------------------------------------------------
    async def pending(self, actor_id: int | None) -> list[Person]:
        self._require_admin(actor_id)
        return await self.repo.list_people(PersonStatus.PENDING)

    async def people_with_certificates(
        self, actor_id: int | None, *, limit: int | None = None
    ) -> Listing:
        """Everyone (or the first ``limit``) with their active certificates. A chat shows
        a page: at 100,000 people the full listing costs ~15 s of CPU on the event loop."""
        self._require_admin(actor_id)
        people = await self.repo.list_people(limit=limit)
        if limit is None:
            active = await self.repo.active_certificates_by_person()
            total = len(people)
        else:
            active = await self.repo.active_certificates_by_person(
                [p.telegram_id for p in people]
            )
            total = await self.repo.count_people()
        return Listing([(p, active.get(p.telegram_id, [])) for p in people], total)

    async def audit(
        self,
        actor_id: int | None,
        *,
        subject_id: int | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        """The audit log, newest first (for `otcert audit`); admins and the operator only."""
        self._require_admin(actor_id)
        return await self.repo.audit_log(subject_id=subject_id, since=since, limit=limit)


def _pin_bundle(cert: x509.Certificate) -> PinBundle:
    from cryptography.hazmat.primitives.serialization import Encoding

    return PinBundle(
        pem=cert.public_bytes(Encoding.PEM),
        der=pin_der(cert),
        fingerprint=fingerprint_sha256(cert),
        subject=cert.subject.rfc4514_string(),
    )
