"""Every certificate the bot signs stays revocable: retries, the undelivered sweep, the cap.

Why: a bundle that never reached its owner must not stay valid. The first revocation can fail
(a busy database, a full disk for a moment), so it is retried, and a periodic sweep revokes
whatever is still undelivered a few minutes after it was issued instead of waiting for the
next start. The daily cap's notice goes to the admins once per person and window, recorded in
the audit log so a restart does not repeat it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.broker import BrokerAdmin, BrokerOutcome
from bot.broker.dynsec import dynsec_client_exists
from bot.core.errors import UserError
from bot.texts import trust as trust_texts
from storage import (
    Certificate,
    CertStatus,
    InvalidTransition,
    NotFound,
    Repository,
    StorageError,
)

log = logging.getLogger(__name__)

UNDELIVERED_GRACE = timedelta(minutes=5)  # a delivery (with retries) ends well before this
REVOKE_ATTEMPTS = 4
LIMIT_NOTICE = "daily_limit_notice"


async def revoke_with_retry(
    repo: Repository, serial: str, *, attempts: int = REVOKE_ATTEMPTS, pause: float = 0.2
) -> bool:
    """Revoke an undelivered certificate; True once it is no longer active (also when it
    already was not). False after ``attempts`` failures: the sweep tries again later."""
    for attempt in range(1, attempts + 1):
        try:
            await repo.revoke_certificate(serial, by=None, reason="undelivered")
            return True
        except (InvalidTransition, NotFound):
            return True  # revoked, superseded or expired already: nothing valid is left
        except (StorageError, sqlite3.Error, OSError) as exc:
            log.warning("revoking undelivered %s failed (attempt %d): %s", serial, attempt, exc)
            if attempt < attempts:
                await asyncio.sleep(pause * attempt)
    return False


def stale_undelivered(
    certs: Iterable[Certificate], *, now: datetime, grace: timedelta = UNDELIVERED_GRACE
) -> list[Certificate]:
    """Active certificates never delivered and issued more than ``grace`` ago."""
    return [c for c in certs if c.status is CertStatus.ACTIVE and c.issued_at <= now - grace]


async def first_limit_notice(repo: Repository, telegram_id: int, since: datetime) -> bool:
    """True (and recorded) the first time this person hits the cap in this window."""
    earlier = await repo.audit_log(subject_id=telegram_id, since=since, limit=50)
    if any(e.action == LIMIT_NOTICE for e in earlier):
        return False
    await repo.add_audit(actor_id=None, action=LIMIT_NOTICE, subject_id=telegram_id)
    return True


async def refuse_stored_dynsec_client(admin: BrokerAdmin | None, username: str) -> None:
    """With the kick on, a person named like a stored dynsec client would get that client
    deleted at their first revocation: refuse the name. When the plugin cannot be asked the
    approval goes ahead (logged): the broker being down must not stop admins."""
    if admin is None:
        return
    exists = await dynsec_client_exists(admin, username)
    if exists is True:
        raise UserError(trust_texts.USERNAME_IS_DYNSEC_CLIENT, name=username)
    if isinstance(exists, BrokerOutcome):
        log.warning("could not ask dynsec about %r: %s", username, exists.detail)
