"""Replacing the CA without a flag day: start (both CAs trusted), move people, finish or abort.

The file steps and their crash-safe order are in :mod:`bot.core.authorities`; the trust files
(bundle, one CRL per CA) are written by the CRL publisher. This module orders the use cases
and keeps a running bot's signer, publisher and service on the right CA.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.core import authorities as files_ops
from bot.core import doors
from bot.core.authorities import Authorities, AuthorityFiles
from bot.core.errors import UserError
from bot.core.results import CrlReport, IssuedBundle
from bot.core.service import Service
from bot.texts import rotation as texts
from pki.authority import CertificateAuthority
from pki.identity import fingerprint_sha256
from pki.keys import CAKeyType
from pki.trust import read_bundle
from storage import OPERATOR_ID, Certificate, Person

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationStatus:
    current: CertificateAuthority
    next: CertificateAuthority | None
    people: dict[str, int]  # CA fingerprint -> approved people with working certs from it
    certificates: dict[str, int]  # CA fingerprint -> working certificates
    not_moved: list[Person]  # something they hold still comes from the old CA


@dataclass(frozen=True)
class RotationStep:
    authorities: Authorities
    report: CrlReport
    archived: Path | None = None


class Rotation:
    """The rotation use cases over one service; ``sync`` adopts changes made elsewhere."""

    def __init__(self, service: Service, files: AuthorityFiles, authorities: Authorities) -> None:
        self.service = service
        self.files = files
        self.authorities = authorities
        self._token = files_ops.state_token(files)
        self._busy = False
        self._lock = asyncio.Lock()
        # Set by the wiring when the bot has its own broker identity (the dynsec admin): it is
        # signed by the current CA, so it must follow when a finish makes another CA current.
        self.on_current_change: Callable[[CertificateAuthority], Awaitable[None]] | None = None

    # --- keeping the live objects on the right CA -----------------------------------------
    async def apply(self, authorities: Authorities) -> None:
        before = self.authorities.current.fingerprint_sha256
        self.authorities = authorities
        self.service.ca = authorities.issuer
        self.service.crl.authorities = authorities
        self.service.pins.own_cas = authorities.accepted
        signer = self.service.signer
        if signer.ca.fingerprint_sha256 != authorities.issuer.fingerprint_sha256:
            signer.ca = authorities.issuer
            if signer.workers > 0:  # the workers hold the old key: start fresh ones
                await signer.stop()
                await signer.start()
        self._token = files_ops.state_token(self.files)
        current = authorities.current
        if self.on_current_change is not None and current.fingerprint_sha256 != before:
            await self.on_current_change(current)

    async def sync(self) -> bool:
        """Reload the CAs when their files changed (a rotation step from the shell)."""
        if self._busy or files_ops.state_token(self.files) == self._token:
            return False
        fresh = await asyncio.to_thread(files_ops.load_authorities, self.files)
        changed = fresh.fingerprints != self.authorities.fingerprints
        await self.apply(fresh)
        if changed:
            log.info("CA rotation state changed: now accepting %s", ", ".join(fresh.fingerprints))
        return changed

    async def adopt(self) -> None:
        """Before a signature: adopt a start or abort made from the shell at once. Cheap when
        nothing changed; a step running in this process applies itself (skipped, so a
        certificate issued from inside a step never waits on the step's own locks); else the
        re-read runs under the CRL locks, so a step in another process is never half-seen."""
        if self._lock.locked() or self.service.crl.locked():
            return
        if files_ops.state_token(self.files) == self._token:
            return
        async with self.service.crl.holding():
            await self.sync()

    async def _publish(self, authorities: Authorities) -> CrlReport:
        """The CRL file and bundle for ``authorities``, then the reload; call with the
        publisher's locks held (:meth:`CrlPublisher.holding`)."""
        self.service.crl.authorities = authorities
        self._busy = True
        try:
            return await self.service.crl.write_and_reload(authorities)
        finally:
            self._busy = False

    # --- the operator's steps ------------------------------------------------------------
    async def start(self, *, key_type: CAKeyType = "rsa4096", days: int = 3650) -> RotationStep:
        # Every step holds the data dir's crl.lock from reading the CA files to the reload: a
        # CRL publish in another process (bot, otcert revoke) never sees a half-made step.
        async with self._lock, self.service.crl.holding():
            await self.sync()
            if self.authorities.rotating:
                raise UserError(texts.ALREADY_ROTATING)
            current = self.authorities.current
            await self.service.repo.backfill_issuer(current.fingerprint_sha256)
            upcoming = await asyncio.to_thread(
                files_ops.create_next, self.files, current, key_type=key_type, days=days
            )
            both = Authorities(current, upcoming)
            report = await self._publish(both)  # CRL file with both CRLs, then the bundle
            if not report.written:
                raise UserError(texts.TRUST_NOT_WRITTEN, error=report.error or "")
            await asyncio.to_thread(
                files_ops.mark_rotating, self.files, upcoming.fingerprint_sha256
            )
            await self.apply(both)
            await self._audit("ca_rotate_start", current=current, next=upcoming)
            return RotationStep(both, report)

    async def finish(self, *, force: bool = False) -> RotationStep:
        async with self._lock, self.service.crl.holding():
            await self.sync()
            old, upcoming = self.authorities.current, self.authorities.next
            if upcoming is None:
                return await self._converge()
            waiting = await self.not_moved()
            if waiting and not force:
                raise UserError(texts.PEOPLE_STILL_ON_OLD, count=len(waiting))
            await self.service.repo.backfill_issuer(old.fingerprint_sha256)
            folder = await asyncio.to_thread(
                files_ops.finish_files, self.files, self.authorities
            )
            only_new = Authorities(upcoming)
            await self.apply(only_new)
            report = await self._publish(only_new)  # bundle without the old CA first, then CRL
            await self._audit("ca_rotate_finish", current=upcoming, next=None,
                              retired=old.fingerprint_sha256, forced=force,
                              left_behind=len(waiting))
            return RotationStep(only_new, report, folder)

    async def abort(self) -> RotationStep:
        async with self._lock, self.service.crl.holding():
            await self.sync()
            upcoming = self.authorities.next
            if upcoming is None:
                return await self._converge()
            used = await self.service.repo.count_active_from(upcoming.fingerprint_sha256)
            if used:
                raise UserError(texts.NEXT_IN_USE, count=used)
            folder = await asyncio.to_thread(files_ops.abort_files, self.files, self.authorities)
            only_old = Authorities(self.authorities.current)
            await self.apply(only_old)
            report = await self._publish(only_old)
            await self._audit("ca_rotate_abort", current=only_old.current, next=None,
                              aborted=upcoming.fingerprint_sha256)
            return RotationStep(only_old, report, folder)

    async def _converge(self) -> RotationStep:
        """No rotation runs; but if a step was cut off after the state changed, the bundle
        may still name a CA that is gone: rewrite it, else say there is nothing to do."""
        bundle = self.service.policy.ca_bundle_path
        on_disk = () if bundle is None else tuple(
            fingerprint_sha256(c) for c in await asyncio.to_thread(read_bundle, bundle)
        )
        if on_disk == self.authorities.fingerprints:
            raise UserError(texts.NOT_ROTATING)
        return RotationStep(self.authorities, await self._publish(self.authorities))

    # --- people ---------------------------------------------------------------------------
    def _old(self) -> frozenset[str]:
        if self.authorities.next is None:
            return frozenset()
        return frozenset({self.authorities.current.fingerprint_sha256})

    async def not_moved(self) -> list[Person]:
        """Approved people with a working certificate from the old CA still to move (one
        device moved is not enough: the others would stop connecting at finish)."""
        people = []
        for telegram_id in await self.service.repo.people_with_active_from(self._old()):
            person = await self.service.repo.get_person(telegram_id)
            if person is not None and await self.old_certificate(telegram_id) is not None:
                people.append(person)
        return people

    async def status(self) -> RotationStatus:
        await self.sync()
        counts = await self.service.repo.active_by_issuer()
        current = self.authorities.current.fingerprint_sha256
        people = {(c.issuer or current): c.people for c in counts}
        certs = {(c.issuer or current): c.certificates for c in counts}
        return RotationStatus(self.authorities.current, self.authorities.next, people, certs,
                              await self.not_moved())

    async def old_certificate(self, telegram_id: int) -> Certificate | None:
        """The person's next working certificate from the old CA to replace (oldest first;
        one renewed from the next CA already is not), None when nothing is left to move."""
        if not self.authorities.rotating:
            return None
        old = self._old()
        active = await self.service.repo.certificates_for(telegram_id, active_only=True)
        on_old = [c for c in active if c.issuer is None or c.issuer in old]
        renewed = await self.service.repo.renewed_serials(c.serial for c in on_old)
        return next((c for c in on_old if c.serial not in renewed), None)

    async def offers_due(self) -> list[tuple[Person, Certificate]]:
        """People with Telegram who must move and were not yet offered it for this next CA
        (remembered in the database, so a restart does not offer twice), with the first
        certificate to replace; people without Telegram are moved with ``otcert issue``."""
        upcoming = self.authorities.next
        if upcoming is None:
            return []
        offered = await self.service.repo.rotation_offered(upcoming.fingerprint_sha256)
        due = []
        for person in await self.not_moved():
            if person.telegram_id in offered or not doors.has_telegram(person.telegram_id):
                continue
            old = await self.old_certificate(person.telegram_id)
            if old is not None:
                due.append((person, old))
        return due

    async def offered(self, telegram_id: int) -> None:
        """The offer reached ``telegram_id`` (or never can: they blocked the bot)."""
        upcoming = self.authorities.next
        if upcoming is not None:
            await self.service.repo.record_rotation_offer(
                telegram_id, upcoming.fingerprint_sha256
            )

    async def move(self, telegram_id: int) -> IssuedBundle:
        """One tap: a certificate from the next CA for the device on the old one (like a
        renewal, not bound to its window); the old certificate is superseded."""
        await self.sync()
        old = await self.old_certificate(telegram_id)
        if old is None:
            raise UserError(texts.NOTHING_TO_MOVE)
        return await self.service.issue(telegram_id, old.device)

    async def _audit(self, action: str, *, current: CertificateAuthority,
                     next: CertificateAuthority | None, **extra: object) -> None:
        details: dict[str, object] = {"current": current.fingerprint_sha256, **extra}
        if next is not None:
            details["next"] = next.fingerprint_sha256
        await self.service.repo.add_audit(
            actor_id=OPERATOR_ID, action=action, subject_id=None, details=details
        )
