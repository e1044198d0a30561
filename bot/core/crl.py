"""Publishing the CRL: the one place that writes it, under one lock.

Revocations, superseded certificates, the periodic job and the CLI all end here, so the
file is never written twice at once and the broker always hears about it in the same order.
The lock is two-level: an asyncio lock orders this process, an flock on ``crl.lock`` in the
data dir orders every process (bot, ``otcert revoke``, a cron'd ``otcert crl write``), held
from reading the revoked serials to the rename and the reload, so an older snapshot can never
be renamed over a newer one. CRL numbers grow past the number of the CRL already on disk.

During a CA rotation the file holds one CRL per CA (each lists only what its CA issued) and
the CA bundle (Mosquitto's ``cafile``) is written with it, in the order of :mod:`pki.trust`.
The numbers come from one counter, so every CA's CRL number rises past every number on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509

from bot.broker import BrokerOutcome, kick_sessions
from bot.core import locks
from bot.core.authorities import Authorities
from bot.core.results import CrlReport
from bot.core.rules import Policy
from pki.authority import CertificateAuthority
from pki.crl import CRLError, RevokedEntry, build_crl, write_crl
from pki.trust import write_trust
from storage import Repository

log = logging.getLogger(__name__)

_PEM_BEGIN = b"-----BEGIN X509 CRL-----"
_CRL_REASONS = {
    "superseded": x509.ReasonFlags.superseded,
    "undelivered": x509.ReasonFlags.cessation_of_operation,
}


class CrlPublisher:
    """Rewrites the CRL from the database, then reloads the broker, then kicks."""

    def __init__(
        self,
        repo: Repository,
        ca: CertificateAuthority,
        policy: Policy,
        *,
        clock: Callable[[], datetime],
        reload: Callable[[str | None], Awaitable[BrokerOutcome]],
    ) -> None:
        self._repo = repo
        self._ca = ca
        self._policy = policy
        self._clock = clock
        self._reload = reload
        self._lock = asyncio.Lock()
        # The CAs whose CRLs go into the file (and, with a bundle path, into the bundle);
        # ``refresh`` lets a running bot pick up a rotation started from the shell first.
        self.authorities = Authorities(ca)
        self.refresh: Callable[[], Awaitable[object]] | None = None

    async def publish(self, *, kick_username: str | None = None) -> CrlReport:
        """The order matters: a kicked client reconnects at once, so the broker must
        already have the new CRL."""
        async with self.holding():
            if self.refresh is not None:
                try:  # under the file lock: a rotation step is never half-seen
                    await self.refresh()
                except Exception as exc:
                    # Unreadable CA files must not silence every publish: keep the CAs last
                    # known, and let the failed report reach the admins' alert.
                    log.exception("re-reading the CA files failed; the CRL is not written")
                    count = len(await self._repo.revoked_serials(self._clock()))
                    return CrlReport(False, count, error=str(exc) or type(exc).__name__)
            report = await self.write_and_reload(self.authorities)
            if not report.written:
                return report
            reload = report.reload
        kick = None
        skipped = False
        if kick_username and self._policy.broker_admin is not None:
            # A kicked phone reconnects at once: only a broker that re-read the CRL refuses it.
            if reload is not None and reload.ok:
                kick = await kick_sessions(self._policy.broker_admin, kick_username)
            else:
                skipped = True
        return CrlReport(
            True, report.entries, reload=reload, kick=kick, kick_skipped=skipped
        )

    def locked(self) -> bool:
        """This process holds the publish lock now (a publish or a rotation step runs)."""
        return self._lock.locked()

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """This process's lock and every process's (``crl.lock``): a CA rotation step holds
        it while it changes the CA files and rewrites the CRL file and the bundle."""
        async with self._lock, locks.exclusive(self._lock_path()):
            yield

    async def write_and_reload(self, authorities: Authorities) -> CrlReport:
        """One CRL per accepted CA (and the bundle), then the reload; call with
        :meth:`holding` held."""
        report = await self._write_locked(authorities.accepted, self._policy.crl_path)
        if not report.written:
            return report
        command = self._policy.reload_command
        # None: no command ran, so nobody may read "reloaded" (issue 14).
        reload = await self._reload(command) if command and command.strip() else None
        return CrlReport(True, report.entries, reload=reload)

    def _lock_path(self) -> Path:
        if self._policy.data_dir is not None:
            return self._policy.data_dir / locks.CRL_LOCK_NAME
        crl_path = self._policy.crl_path
        return crl_path.with_name(crl_path.name + ".lock")

    async def _write_locked(
        self, cas: Sequence[CertificateAuthority], path: Path
    ) -> CrlReport:
        """Read, number, build, verify, rename: call with the file lock held. One CRL per
        CA in ``cas``, each numbered past every CRL on disk."""
        now = self._clock()
        await self._repo.mark_expired(now)  # keeps views and device limits honest
        by_issuer = await self._revoked_by_issuer(now)
        wanted = {ca.fingerprint_sha256 for ca in cas}
        count = sum(len(v) for k, v in by_issuer.items() if k in wanted)
        try:
            on_disk = await asyncio.to_thread(crl_number_on_disk, path)
            pairs: list[tuple[x509.CertificateRevocationList, CertificateAuthority]] = []
            numbers: list[int] = []
            for ca in cas:
                number = await self._repo.next_crl_number_above(on_disk)
                numbers.append(number)
                crl = await asyncio.to_thread(
                    build_crl, ca, by_issuer.get(ca.fingerprint_sha256, []),
                    crl_number=number, validity=self._policy.crl_validity, now=now,
                )
                pairs.append((crl, ca))
            await asyncio.to_thread(
                _write_if_newer, path, self._policy.ca_bundle_path, pairs, min(numbers)
            )
        except Exception as exc:
            log.exception("CRL write failed")
            # The raw detail: each reader (an admin's chat, the CLI) words it in their language.
            return CrlReport(False, count, error=str(exc) or type(exc).__name__)
        return CrlReport(True, count)

    async def _revoked_by_issuer(self, now: datetime) -> dict[str, list[RevokedEntry]]:
        """Each CA's CRL lists only what it issued (people's and the bot's own
        certificates); an unknown issuer (a row from before issuers were kept) is the
        current CA."""
        current = self.authorities.current.fingerprint_sha256
        grouped: dict[str, list[RevokedEntry]] = {}
        revoked = await self._repo.revoked_serials(now)
        for r in [*revoked, *await self._repo.revoked_service_serials(now)]:
            grouped.setdefault(r.issuer or current, []).append(
                RevokedEntry(
                    serial=int(r.serial, 16),
                    revoked_at=r.revoked_at,
                    reason=_CRL_REASONS.get(r.reason or ""),
                )
            )
        return grouped


def crl_number_on_disk(path: Path) -> int:
    """The highest CRL number in the PEM file at ``path`` (one CRL per CA), 0 if none."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return 0
    highest = 0
    for block in data.split(_PEM_BEGIN)[1:]:
        try:
            crl = x509.load_pem_x509_crl(_PEM_BEGIN + block)
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except (ValueError, x509.ExtensionNotFound):
            continue  # unreadable: the verified write replaces it
        highest = max(highest, number)
    return highest


def _write_if_newer(
    path: Path,
    bundle: Path | None,
    pairs: Sequence[tuple[x509.CertificateRevocationList, CertificateAuthority]],
    lowest: int,
) -> None:
    """A CRL with a lower number never replaces a higher one (a writer that ignores the lock,
    e.g. an older otcert, may have been faster). ``lowest``: the smallest new number."""
    if crl_number_on_disk(path) >= lowest:
        raise CRLError(f"{path} already holds a CRL numbered {lowest} or higher; not replaced.")
    if bundle is None and len(pairs) == 1:
        crl, ca = pairs[0]
        write_crl(path, crl, ca.certificate)
        return
    write_trust(bundle, path, [(crl, ca.certificate) for crl, ca in pairs])
