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
from bot.core.results import CrlReport
from bot.core.rules import Policy
from bot.texts import errors as texts
from bot.texts import t
from pki.authority import CertificateAuthority
from pki.crl import RevokedEntry, build_crl, write_crl
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

    async def publish(self, *, kick_username: str | None = None) -> CrlReport:
        """The order matters: a kicked client reconnects at once, so the broker must
        already have the new CRL."""
        async with self._lock:
            now = self._clock()
            await self._repo.mark_expired(now)  # keeps views and device limits honest
            entries = await self._revoked_entries(now)
            number = await self._repo.next_crl_number()
            try:
                crl = await asyncio.to_thread(
                    build_crl,
                    self._ca,
                    entries,
                    crl_number=number,
                    validity=self._policy.crl_validity,
                    now=now,
                )
                await asyncio.to_thread(
                    write_crl, self._policy.crl_path, crl, self._ca.certificate
                )
            except Exception as exc:
                log.exception("CRL write failed")
                error = t(texts.CRL_NOT_WRITTEN, error=exc)
                return CrlReport(False, len(entries), error=error)
        command = self._policy.reload_command
        # None: no command ran, so nobody may read "reloaded" (issue 14).
        reload = await self._reload(command) if command and command.strip() else None
        kick = None
        skipped = False
        if kick_username and self._policy.broker_admin is not None:
            # A kicked phone reconnects at once: only a broker that re-read the CRL refuses it.
            if reload is not None and reload.ok:
                kick = await kick_sessions(self._policy.broker_admin, kick_username)
            else:
                skipped = True
        return CrlReport(True, len(entries), reload=reload, kick=kick, kick_skipped=skipped)

    async def _revoked_entries(self, now: datetime) -> list[RevokedEntry]:
        revoked = await self._repo.revoked_serials(now)
        return [
            RevokedEntry(
                serial=int(r.serial, 16),
                revoked_at=r.revoked_at,
                reason=_CRL_REASONS.get(r.reason or ""),
            )
            for r in revoked
        ]
