"""The lifecycle's rules as pure functions: days left, which reminder thresholds are due,
who may renew or revoke which certificate and when. No database, no clock
(tests/test_rules_lifecycle.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bot.core.errors import UserError
from bot.texts import lifecycle as texts
from storage import Certificate, CertStatus

DAY = timedelta(days=1)


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days left, rounded up (23 hours left is "1 day", not "0"); 0 once expired."""
    seconds = (not_after - now).total_seconds()
    return max(0, math.ceil(seconds / DAY.total_seconds()))


def due_thresholds(
    not_after: datetime, now: datetime, thresholds: Iterable[int], already: Iterable[int] = ()
) -> tuple[int, ...]:
    """Thresholds (days, largest first) whose reminder is due: less than T days left, still
    valid, not reminded yet. Several due at once are sent as one message."""
    if not_after <= now:
        return ()
    done = set(already)
    return tuple(sorted(
        (t for t in set(thresholds) if t not in done and not_after - now < t * DAY),
        reverse=True,
    ))


def renewal_opens(cert: Certificate, window_days: int) -> datetime:
    """When renewing becomes possible: ``window_days`` (the largest threshold) before expiry."""
    return cert.not_after - window_days * DAY


def check_renewable(
    cert: Certificate | None, telegram_id: int, *, renewed: bool, window_days: int,
    now: datetime,
) -> Certificate:
    """The certificate ``telegram_id`` may renew now; raises the reason otherwise. Someone
    else's certificate reads like an unknown one: button data can be forged."""
    if (cert is None or cert.telegram_id != telegram_id or cert.status is not CertStatus.ACTIVE
            or cert.not_after <= now):
        raise UserError(texts.RENEW_UNKNOWN)
    if renewed:
        raise UserError(texts.RENEW_ALREADY, device=cert.device)
    opens = renewal_opens(cert, window_days)
    if now < opens:
        raise UserError(texts.RENEW_TOO_EARLY, device=cert.device,
                        until=cert.not_after.strftime("%Y-%m-%d"),
                        opens=opens.strftime("%Y-%m-%d"))
    return cert


def pick_for_renewal(working: Sequence[Certificate], device: str | None) -> Certificate:
    """``/renew [device]``: the named device's working certificate, or the only one."""
    if device is not None:
        for cert in working:
            if cert.device == device:
                return cert
        raise UserError(texts.RENEW_NO_DEVICE, device=device)
    if not working:
        raise UserError(texts.RENEW_NONE)
    if len({c.device for c in working}) > 1:
        raise UserError(texts.RENEW_WHICH, devices=", ".join(sorted({c.device for c in working})))
    return working[0]


def check_own_revocable(cert: Certificate | None, telegram_id: int) -> Certificate:
    """A person may revoke only their own active certificate (a lost phone)."""
    if cert is None or cert.telegram_id != telegram_id or cert.status is not CertStatus.ACTIVE:
        raise UserError(texts.REVOKE_NOT_YOURS)
    return cert


def working_certificates(
    active: Iterable[Certificate], renewed: set[str], now: datetime
) -> list[Certificate]:
    """What /mycerts shows: active, unexpired, delivered, not replaced by a renewal; one per
    device (the newest), soonest expiry first."""
    newest: dict[str, Certificate] = {}
    for cert in active:
        if (cert.status is not CertStatus.ACTIVE or cert.not_after <= now
                or cert.serial in renewed or cert.delivered_at is None):
            continue
        held = newest.get(cert.device)
        if held is None or cert.issued_at > held.issued_at:
            newest[cert.device] = cert
    return sorted(newest.values(), key=lambda c: (c.not_after, c.device))
