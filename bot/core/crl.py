"""Publishing the CRL: the one place that writes it, under one lock.

Revocations, superseded certificates, the periodic job and the CLI all end here, so the
file is never written twice at once and the broker always hears about it in the same order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from cryptography import x509

from bot.broker import BrokerOutcome, kick_sessions
from bot.core.authorities import Authorities
from bot.core.results import CrlReport
from bot.core.rules import Policy
from bot.texts import errors as texts
from bot.texts import t
from pki.authority import CertificateAuthority
from pki.crl import RevokedEntry, build_crl, write_crl
from pki.trust import write_trust
from storage import Repository

log = logging.getLogger(__name__)

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
        async with self._lock:
            if self.refresh is not None:
                await self.refresh()
            now = self._clock()
            await self._repo.mark_expired(now)  # keeps views and device limits honest
            by_issuer = await self._revoked_by_issuer(now)
            entries = [e for group in by_issuer.values() for e in group]
            try:
                pairs = []
                for ca in self.authorities.accepted:
                    number = await self._repo.next_crl_number()
                    crl = await asyncio.to_thread(
                        build_crl,
                        ca,
                        by_issuer.get(ca.fingerprint_sha256, []),
                        crl_number=number,
                        validity=self._policy.crl_validity,
                        now=now,
                    )
                    pairs.append((crl, ca.certificate))
                bundle = self._policy.ca_bundle_path
                if bundle is None:
                    await asyncio.to_thread(write_crl, self._policy.crl_path, *pairs[0])
                else:
                    await asyncio.to_thread(write_trust, bundle, self._policy.crl_path, pairs)
            except Exception as exc:
                log.exception("CRL write failed")
                error = t(texts.CRL_NOT_WRITTEN, error=exc)
                return CrlReport(False, len(entries), error=error)
        reload = await self._reload(self._policy.reload_command)
        kick = None
        if kick_username and self._policy.broker_admin is not None:
            kick = await kick_sessions(self._policy.broker_admin, kick_username)
        return CrlReport(True, len(entries), reload=reload, kick=kick)

    async def _revoked_by_issuer(self, now: datetime) -> dict[str, list[RevokedEntry]]:
        """Each CA's CRL lists only what it issued; unknown issuer: the current CA."""
        current = self.authorities.current.fingerprint_sha256
        grouped: dict[str, list[RevokedEntry]] = {}
        for r in await self._repo.revoked_serials(now):
            grouped.setdefault(r.issuer or current, []).append(
                RevokedEntry(
                    serial=int(r.serial, 16),
                    revoked_at=r.revoked_at,
                    reason=_CRL_REASONS.get(r.reason or ""),
                )
            )
        return grouped
