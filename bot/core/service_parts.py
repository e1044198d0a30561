"""The plainer parts of the service: what every use case shares (who is an admin), the chat's
bookkeeping (the Telegram side keeps no state of its own), the admins' read-only views and
the pins.
:class:`bot.core.service.Service` is built from them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography import x509

from bot.core import doors
from bot.core.crl import CrlPublisher
from bot.core.errors import NotAllowed, UserError
from bot.core.results import Listing, PinBundle
from bot.core.rules import Policy
from bot.core.trust import PinGate
from bot.texts import errors as texts
from bot.texts import trust as trust_texts
from pki.bundle import load_certificate, pin_der
from pki.identity import fingerprint_sha256
from storage import OPERATOR_ID, AuditEntry, Person, PersonStatus, Repository, ScheduledDeletion


class ServiceBase:
    """What the parts need from the service: its repository, policy and clock."""

    repo: Repository
    policy: Policy
    _clock: Callable[[], datetime]

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self.policy.admin_ids

    def _require_admin(self, actor_id: int | None) -> None:
        """``None`` is the operator's shell (the CLI), which is trusted."""
        if actor_id is not None and not self.is_admin(actor_id):
            raise NotAllowed(texts.ONLY_ADMINS)


class ChatBookkeeping(ServiceBase):
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


class AdminViews(ServiceBase):
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


class PinUseCases(ServiceBase):
    """Pins: what phones are sent to trust, who may change it, who receives it."""

    pins: PinGate
    crl: CrlPublisher

    async def current_pin(self) -> PinBundle:
        pin = await self.repo.current_pin()
        # Not self.ca: during a CA rotation that is the next CA, which the broker's server
        # certificate may not come from yet; phones verify the broker with the current one.
        current = self.crl.authorities.current.certificate
        cert = load_certificate(pin.der) if pin is not None else current
        return _pin_bundle(cert)

    async def phone_pin(self) -> PinBundle | None:
        """What phones are sent to trust (OTCERT_PHONE_CA): the pinned CA (``bot``), nothing
        (``none``: a public CA) or the operator's PEM file."""
        return await self.pins.phone_pin(self.current_pin)

    async def set_pin(self, actor_id: int | None, data: bytes) -> PinBundle:
        """The operator's shell pins directly; an admin goes through the second-admin rule
        (:class:`PinGate`), and a CA that needs a confirmation is not pinned here."""
        self._require_admin(actor_id)
        if actor_id is not None:
            decision = await self.pins.propose(actor_id, data)
            if decision.route == "confirm":
                raise UserError(trust_texts.PIN_WAITING, detail=decision.why)
            return decision.bundle
        # Off the loop: a hostile upload may hold a huge key that takes long to check.
        cert = await asyncio.to_thread(load_certificate, data, require_ca=True, now=self._clock())
        bundle = _pin_bundle(cert)
        await self.repo.set_pin(bundle.der, bundle.fingerprint, by=actor_id or OPERATOR_ID)
        return bundle

    async def pin_recipients(self, actor_id: int | None, pin: PinBundle) -> list[Person]:
        """Everyone who must receive ``pin`` now; the re-pin itself is audited here."""
        self._require_admin(actor_id)
        people = [
            p for p in await self.repo.list_people(PersonStatus.APPROVED)
            if doors.has_telegram(p.telegram_id)
        ]
        await self.repo.add_audit(
            actor_id=actor_id or OPERATOR_ID, action="repin", subject_id=None,
            details={"fingerprint": pin.fingerprint, "recipients": len(people)},
        )
        return people


def _pin_bundle(cert: x509.Certificate) -> PinBundle:
    from cryptography.hazmat.primitives.serialization import Encoding

    return PinBundle(
        pem=cert.public_bytes(Encoding.PEM),
        der=pin_der(cert),
        fingerprint=fingerprint_sha256(cert),
        subject=cert.subject.rfc4514_string(),
    )
