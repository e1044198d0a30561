"""Who may put a CA on every phone: the second-admin rule for /repin uploads.

Why: phones are told to trust the pinned CA fully, so one admin (or one stolen admin account)
must not be able to send a root of their own. An uploaded CA goes out at once only when it is
the bot's own CA or the broker presents it (a verified handshake trusting it alone); otherwise
another admin confirms it. Proposals live in memory: a restart drops them, and the confirming
button then says so. They also end after PROPOSAL_TTL, and when any pin is set meanwhile (a
stale "yes" must not undo a newer pin).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bot.broker import BrokerOutcome
from bot.broker.chain import broker_verifies_with
from bot.core.errors import NotAllowed, UserError
from bot.core.results import PinBundle
from bot.core.rules import Policy
from bot.texts import errors as error_texts
from bot.texts import t
from bot.texts import trust as texts
from pki.authority import CertificateAuthority
from pki.bundle import load_certificate, pin_der
from pki.identity import fingerprint_sha256
from storage import OPERATOR_ID, Repository

PinRoute = Literal["own", "broker", "confirm"]
Probe = Callable[[str | None, int, bytes | None], Awaitable[BrokerOutcome]]
MAX_OPEN_PROPOSALS = 16
PROPOSAL_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class PinProposal:
    """An uploaded CA waiting for a second admin."""

    token: str
    asker_id: int
    bundle: PinBundle
    asker_name: str = ""
    opened_at: datetime | None = None


@dataclass(frozen=True)
class PinDecision:
    """What happened to an upload: set now (``own``/``broker``), or waiting (``confirm``)."""

    route: PinRoute
    bundle: PinBundle
    why: str
    proposal: PinProposal | None = None


class PinGate:
    def __init__(
        self,
        repo: Repository,
        ca: CertificateAuthority,
        policy: Policy,
        *,
        clock: Callable[[], datetime],
        probe: Probe | None = None,
    ) -> None:
        self._repo = repo
        self._ca = ca
        self._policy = policy
        self._clock = clock
        self._probe = probe or _probe
        self._open: dict[str, PinProposal] = {}
        # During a CA rotation the next CA is the bot's own too (set by bot.core.rotation).
        self.own_cas: tuple[CertificateAuthority, ...] = (ca,)

    async def propose(self, actor_id: int, data: bytes, *, actor_name: str = "") -> PinDecision:
        """Pin ``data`` now when it is safe, else open a proposal (two admins) or refuse."""
        self._require_admin(actor_id)
        # Off the loop: a hostile upload may hold a huge key that takes long to check.
        cert = await asyncio.to_thread(load_certificate, data, require_ca=True, now=self._clock())
        bundle = pin_bundle(cert)
        if any(cert == own.certificate for own in self.own_cas):
            await self._set(bundle, actor_id, route="own", confirmer=None)
            return PinDecision("own", bundle, t(texts.PIN_IS_OWN_CA))
        where = f"{self._policy.mqtt_host}:{self._policy.mqtt_port}"
        probe = await self._probe(self._policy.mqtt_host, self._policy.mqtt_port, bundle.pem)
        if probe.ok:
            await self._set(bundle, actor_id, route="broker", confirmer=None)
            return PinDecision(
                "broker", bundle, t(texts.PIN_IN_BROKER_CHAIN, where=where, detail=probe.detail)
            )
        if len(self._policy.admin_ids - {actor_id}) == 0:
            raise UserError(texts.PIN_REFUSED_ONE_ADMIN, detail=probe.detail)
        proposal = PinProposal(secrets.token_hex(8), actor_id, bundle, actor_name[:64],
                               self._clock())
        while len(self._open) >= MAX_OPEN_PROPOSALS:
            self._open.pop(next(iter(self._open)))
        self._open[proposal.token] = proposal
        await self._repo.add_audit(
            actor_id=actor_id, action="repin_request", subject_id=None,
            details={"fingerprint": bundle.fingerprint},
        )
        return PinDecision("confirm", bundle, probe.detail, proposal)

    async def confirm(self, actor_id: int, token: str) -> PinProposal:
        """A second admin says yes: the pin is set; the asker cannot confirm their own."""
        self._require_admin(actor_id)
        proposal = self._open.get(token)
        if proposal is not None and not await self._still_open(proposal):
            del self._open[token]
            proposal = None
        if proposal is None:
            raise UserError(texts.PIN_PROPOSAL_GONE)
        if proposal.asker_id == actor_id:
            raise UserError(texts.PIN_OWN_REQUEST)
        del self._open[token]
        await self._set(proposal.bundle, proposal.asker_id, route="confirm", confirmer=actor_id)
        return proposal

    async def phone_pin(
        self, pinned: Callable[[], Awaitable[PinBundle]]
    ) -> PinBundle | None:
        """OTCERT_PHONE_CA: ``bot`` -> the pinned CA, ``none`` -> nothing, else that file."""
        if self._policy.phone_ca == "none":
            return None
        if self._policy.phone_ca == "bot":
            return await pinned()
        data = await asyncio.to_thread(Path(self._policy.phone_ca).read_bytes)
        return pin_bundle(load_certificate(data, now=self._clock()))

    async def _still_open(self, proposal: PinProposal) -> bool:
        """Not older than PROPOSAL_TTL, and no pin was set since it was opened (the operator's
        shell pins from another process, so the stored pin's time is asked)."""
        opened = proposal.opened_at
        if opened is None or self._clock() - opened > PROPOSAL_TTL:
            return False
        current = await self._repo.current_pin()
        return current is None or current.changed_at < opened

    def _require_admin(self, actor_id: int) -> None:
        if actor_id not in self._policy.admin_ids:
            raise NotAllowed(error_texts.ONLY_ADMINS)

    async def _set(
        self, bundle: PinBundle, asker: int, *, route: PinRoute, confirmer: int | None
    ) -> None:
        await self._repo.set_pin(bundle.der, bundle.fingerprint, by=asker or OPERATOR_ID)
        self._open.clear()  # a newer pin ends every open proposal
        await self._repo.add_audit(
            actor_id=confirmer or asker, action="repin_set", subject_id=None,
            details={"fingerprint": bundle.fingerprint, "route": route, "asked_by": asker},
        )


async def _probe(host: str | None, port: int, ca_pem: bytes | None) -> BrokerOutcome:
    return await broker_verifies_with(host, port, ca_pem)


def pin_bundle(cert: x509.Certificate) -> PinBundle:
    """The certificate in the forms the apps take."""
    return PinBundle(
        pem=cert.public_bytes(Encoding.PEM),
        der=pin_der(cert),
        fingerprint=fingerprint_sha256(cert),
        subject=cert.subject.rfc4514_string(),
    )
