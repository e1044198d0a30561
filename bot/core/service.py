"""The use cases: plain Python in and out, no Telegram types.

The service owns the order of operations (validate, sign, record, then deliver) so that
handlers, the CLI and the tests all get the same guarantees. Each use case loads the facts,
asks :mod:`bot.core.rules`, then acts; the CRL is published by :mod:`bot.core.crl`. It keeps
no secret: the key and the passphrase live only in the returned :class:`IssuedBundle`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from bot.broker import BrokerOutcome, run_reload_command
from bot.core import doors, integrity, lifecycle_rules, rules
from bot.core.clock import utcnow
from bot.core.crl import CrlPublisher
from bot.core.errors import UserError
from bot.core.keypool import KeyPool
from bot.core.languages import Languages
from bot.core.results import CrlReport, IssuedBundle, RequestOutcome, Revocation
from bot.core.rules import Policy
from bot.core.service_parts import AdminViews, ChatBookkeeping, PinUseCases
from bot.core.signer import Signer, SignRequest
from bot.core.trust import PinGate
from bot.texts import doors as doors_texts
from bot.texts import errors as texts
from bot.texts import trust as trust_texts
from pki.authority import CertificateAuthority
from pki.bundle import make_passphrase
from pki.identity import fingerprint_sha256
from pki.names import validate_device
from storage import (
    OPERATOR_ID,
    Certificate,
    CertStatus,
    Person,
    PersonStatus,
    Platform,
    Repository,
)

if TYPE_CHECKING:
    from bot.core.rotation import Rotation

IN_FLIGHT_MAX = timedelta(hours=1)  # a delivery the sweep still waits for (crashed handler)


class Service(PinUseCases, ChatBookkeeping, AdminViews):
    """Every use case; the bookkeeping and the admin views live in :mod:`bot.core.service_parts`."""

    def __init__(
        self,
        repo: Repository,
        ca: CertificateAuthority,
        policy: Policy,
        keys: KeyPool,
        *,
        signer: Signer | None = None,
        clock: Callable[[], datetime] = utcnow,
        reload: Callable[[str | None], Awaitable[BrokerOutcome]] = run_reload_command,
    ) -> None:
        self.repo = repo
        self.languages = Languages(repo)  # who reads which language, cached
        self.ca = ca
        self.policy = policy
        self.keys = keys
        self.signer = signer or Signer(ca)
        self._clock = clock
        self._issuing: set[int] = set()
        self._delivering: dict[str, datetime] = {}  # serial -> issued: the sweep waits
        self.crl = CrlPublisher(repo, ca, policy, clock=clock, reload=reload)
        self.pins = PinGate(repo, ca, policy, clock=clock)
        self.rotation: Rotation | None = None  # CA rotation use cases, set by bot.wiring

    # --- who is who (is_admin, _require_admin: ServiceBase) ----------------------------
    async def status(self, telegram_id: int) -> Person | None:
        return await self.repo.get_person(telegram_id)

    # --- access ---------------------------------------------------------------------
    async def request_access(
        self, telegram_id: int, display_name: str, tg_username: str | None
    ) -> RequestOutcome:
        name = rules.clip_reason(display_name) or str(telegram_id)
        person, is_new = await self.repo.request_access(telegram_id, name[:64], tg_username)
        return RequestOutcome(person, is_new)

    def suggest_username(self, person: Person) -> str | None:
        """A username derived from the @username or name, if one passes the rules."""
        return rules.suggested_username(person, self.policy.reserved_usernames)

    async def approve(
        self, actor_id: int | None, telegram_id: int, username: str,
        *, expected: PersonStatus | None = None,
    ) -> Person:
        """``expected``: the status the admin saw (a button on a pending request); checked
        inside the transaction, so approve and deny pressed at once end in one decision."""
        self._require_admin(actor_id)
        name = rules.approvable_username(username, self.policy.reserved_usernames)
        await integrity.refuse_stored_dynsec_client(self.policy.broker_admin, name)
        return await self.repo.approve(
            telegram_id, name, by=actor_id or OPERATOR_ID, expected=expected
        )

    async def add_without_telegram(self, actor_id: int | None, username: str) -> Person:
        """A person who never opens Telegram (a Recorder, a relative's phone), approved at
        once under ``username``; refused if the name is reserved or taken."""
        self._require_admin(actor_id)
        name = rules.approvable_username(username, self.policy.reserved_usernames)
        if await self.repo.get_person_by_username(name) is not None:
            raise UserError(doors_texts.USERNAME_TAKEN, name=name)
        people = await self.repo.list_people()
        new_id = doors.next_offline_id(p.telegram_id for p in people)
        return await self.repo.approve(
            new_id, name, by=actor_id or OPERATOR_ID, display_name=f"{name} (no Telegram)"
        )

    async def deny(self, actor_id: int | None, telegram_id: int, reason: str | None) -> Person:
        self._require_admin(actor_id)
        return await self.repo.deny(
            telegram_id, by=actor_id or OPERATOR_ID, reason=rules.clip_reason(reason)
        )

    async def set_platform(self, telegram_id: int, platform: Platform) -> Person:
        return await self.repo.set_platform(telegram_id, platform)

    # --- certificates -------------------------------------------------------------------
    async def issue(
        self, telegram_id: int, device: str | None = None, *, renews: str | None = None,
        actor: int | None = None, platform: Platform | None = None,
    ) -> IssuedBundle:
        """Sign, pack and record a certificate; the caller delivers it. ``renews``: the serial
        of the owner's certificate this one renews (same device, inside the renewal window);
        it keeps working until its expiry. Renewals pass the same rules as /getcert.
        ``actor`` is who asked (the person by default; ``OPERATOR_ID`` for ``otcert issue``),
        ``platform`` overrides the person's remembered phone for this one certificate."""
        device_name = "" if renews else validate_device(device if device else rules.DEFAULT_DEVICE)
        with self._one_issue_at_a_time(telegram_id):
            if renews:
                device_name = (await self._renewable(telegram_id, renews)).device
            if self.rotation is not None:
                await self.rotation.adopt()  # a rotation started from the shell: sign with it
            grant = await self._grant(telegram_id, device_name, platform)
            key = await self.keys.take()
            now = self._clock()
            passphrase = make_passphrase()
            request = SignRequest(
                username=grant.username,
                days=self.policy.cert_days,
                now=now,
                friendly_name=f"{grant.username} ({device_name})",
                profile=self.policy.pkcs12_profile,
            )
            signing_with = self.signer.ca
            cert, data = await self.signer.sign_and_pack(key, request, passphrase)
            del key
            record = Certificate(
                serial=format(cert.serial_number, "x"),
                telegram_id=telegram_id,
                mqtt_username=grant.username,
                device=device_name,
                fingerprint_sha256=fingerprint_sha256(cert),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                issued_at=now,
                status=CertStatus.ACTIVE,
                issuer=self._issuer_of(cert, signing_with),
            )
            replaced = await self.repo.record_issue(
                record, actor=telegram_id if actor is None else actor, renews=renews
            )
            await self._remember_platform(telegram_id, grant.platform,
                                          telegram_id if actor is None else actor)
            self._delivering[record.serial] = now
        if replaced:
            await self._tell_crl(await self.refresh_crl(), trust_texts.CRL_AFTER_SUPERSEDE)
        ext = "otrp" if grant.platform == Platform.IOS else "p12"
        return IssuedBundle(
            filename=f"{grant.username}-{device_name}.{ext}",
            data=data,
            passphrase=passphrase,
            serial=record.serial,
            fingerprint=record.fingerprint_sha256,
            not_after=record.not_after,
            platform=grant.platform,
            username=grant.username,
            device=device_name,
            replaced=len(replaced),
        )

    def _issuer_of(self, cert: x509.Certificate, signing_with: CertificateAuthority) -> str:
        """The CA that really signed ``cert``: a rotation step may switch the signer's CA
        while the signature is made, so ``signer.ca`` afterwards may be another CA."""
        for ca in (signing_with, self.signer.ca, *self.crl.authorities.accepted):
            with contextlib.suppress(ValueError, TypeError, InvalidSignature):
                cert.verify_directly_issued_by(ca.certificate)
                return ca.fingerprint_sha256
        return signing_with.fingerprint_sha256

    async def _remember_platform(self, telegram_id: int, platform: Platform, by: int) -> None:
        """A person with no phone on record keeps the one their certificate was made for
        (``otcert issue --platform``), so its renewal needs no question that could lose it."""
        person = await self.repo.get_person(telegram_id)
        if person is not None and person.platform is None:
            await self.repo.set_platform(telegram_id, platform, by=by)

    @contextlib.contextmanager
    def _one_issue_at_a_time(self, telegram_id: int) -> Iterator[None]:
        """A second issue for the same person while one runs is refused, not queued."""
        if telegram_id in self._issuing:
            raise UserError(texts.ALREADY_PREPARING)
        self._issuing.add(telegram_id)
        try:
            yield
        finally:
            self._issuing.discard(telegram_id)

    async def _grant(
        self, telegram_id: int, device: str, platform: Platform | None = None
    ) -> rules.IssueGrant:
        """Load the facts the issue rules need and ask them; raises when the answer is no."""
        person = await self.repo.get_person(telegram_id)
        if person is not None and platform is not None:
            person = person.model_copy(update={"platform": platform})
        every = await self.repo.certificates_for(telegram_id)
        try:
            return rules.may_issue(
                person,
                device,
                active=[c for c in every if c.status is CertStatus.ACTIVE],
                last_issued_at=await self.repo.last_issued_at(telegram_id),
                policy=self.policy,
                now=self._clock(),
                issued_recently=[c.issued_at for c in every],
            )
        except rules.DailyLimit as exc:
            if (
                person is not None
                and self.limit_alert is not None
                and await integrity.first_limit_notice(self.repo, telegram_id, exc.since)
            ):
                await self.limit_alert(person)
            raise

    # Set by the Telegram side: admins hear about CRL failures and the daily cap.
    crl_alert: Callable[[CrlReport, str], Awaitable[None]] | None = None
    limit_alert: Callable[[Person], Awaitable[None]] | None = None

    async def _tell_crl(self, report: CrlReport, when: str) -> None:
        if self.crl_alert is not None:
            await self.crl_alert(report, when)

    async def _renewable(self, telegram_id: int, serial: str) -> Certificate:
        """The certificate ``telegram_id`` may renew now (raises the reason if none)."""
        cert = await self.repo.get_certificate(serial)
        renewed = cert is not None and bool(await self.repo.renewed_serials([cert.serial]))
        return lifecycle_rules.check_renewable(
            cert, telegram_id, renewed=renewed, window_days=self.policy.renew_window_days,
            now=self._clock(),
        )

    async def revoke_undelivered(self, serial: str) -> CrlReport:
        """A bundle that did not reach the person must not stay valid: retried, and what is
        still left is caught by :meth:`sweep_undelivered`."""
        self._delivering.pop(serial, None)  # the delivery is over: the sweep may take it
        await integrity.revoke_with_retry(self.repo, serial)
        report = await self.refresh_crl()
        await self._tell_crl(report, trust_texts.CRL_AFTER_UNDELIVERED)
        return report

    async def sweep_undelivered(self) -> int:
        """Revoke certificates still undelivered a few minutes after issue (periodic job)."""
        now = self._clock()
        stale = [
            c for c in integrity.stale_undelivered(
                await self.repo.undelivered_certificates(), now=now)
            if now - self._delivering.get(c.serial, now - IN_FLIGHT_MAX) >= IN_FLIGHT_MAX
        ]
        done = [c for c in stale if await integrity.revoke_with_retry(self.repo, c.serial)]
        if done:
            await self._tell_crl(await self.refresh_crl(), trust_texts.CRL_AFTER_UNDELIVERED)
        return len(done)

    async def confirm_delivery(self, serial: str) -> bool:
        """File and passphrase both reached the person: the certificate is now in use. False
        if it was revoked meanwhile (an admin, a lost-phone revocation): the person is told."""
        self._delivering.pop(serial, None)
        return await self.repo.mark_delivered(serial)

    async def revoke_unfinished_deliveries(self) -> int:
        """At start-up no delivery is in flight, so a certificate still undelivered was cut
        off by a crash: nobody can use it (the key is gone), so it must not stay valid."""
        leftovers = await self.repo.undelivered_certificates()
        for cert in leftovers:
            await self.repo.revoke_certificate(cert.serial, by=None, reason="undelivered")
        return len(leftovers)

    async def find_person(self, target: str) -> Person:
        """Resolve ``<mqtt_username|telegram_id>`` as admins type it."""
        parsed = rules.parse_target(target)
        person: Person | None = None
        if parsed.telegram_id is not None:
            person = await self.repo.get_person(parsed.telegram_id)
        if person is None and parsed.username is not None:
            person = await self.repo.get_person_by_username(parsed.username)
        if person is None:
            raise rules.unknown_target(parsed)
        return person

    async def revoke(self, actor_id: int | None, target: str, reason: str | None) -> Revocation:
        self._require_admin(actor_id)
        person = await self.find_person(target)
        person, certs = await self.repo.revoke_person(
            person.telegram_id, by=actor_id or OPERATOR_ID, reason=rules.clip_reason(reason)
        )
        report = await self.refresh_crl(kick_username=person.mqtt_username)
        return Revocation(person, certs, report)

    async def refresh_crl(self, *, kick_username: str | None = None) -> CrlReport:
        """Rewrite the CRL from the database, then reload the broker, then kick."""
        return await self.crl.publish(kick_username=kick_username)
