"""The lifecycle rules (bot/core/lifecycle_rules.py) as tables: days left, due thresholds,
who may renew or revoke what and when. No database, no clock, no bot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core import lifecycle_rules as lr
from bot.core.errors import UserError
from storage import Certificate, CertStatus
from tests.storage_fixtures import make_cert

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
ID = 4242
H = timedelta(hours=1)
D = timedelta(days=1)


def cert(left: timedelta, *, owner: int = ID, status: CertStatus = CertStatus.ACTIVE,
         device: str = "phone", delivered: bool = True) -> Certificate:
    base = make_cert(owner, "alice", device=device, issued_at=NOW - D)
    return base.model_copy(update={"not_after": NOW + left, "status": status,
                                   "delivered_at": NOW if delivered else None})


@pytest.mark.parametrize(("left", "days"), [
    (23 * H, 1), (D, 1), (D + H, 2), (30 * D, 30), (timedelta(seconds=1), 1),
    (timedelta(0), 0), (-D, 0),
])
def test_days_left_rounds_up_and_stops_at_zero(left: timedelta, days: int) -> None:
    assert lr.days_left(NOW + left, NOW) == days


@pytest.mark.parametrize(("left", "already", "due"), [
    (31 * D, (), ()),
    (30 * D, (), ()),  # "under" 30 days: exactly 30 is not yet
    (30 * D - H, (), (30,)),
    (6 * D, (), (30, 7)),  # both due at once: one message
    (6 * D, (30,), (7,)),
    (12 * H, (30, 7), (1,)),
    (12 * H, (30, 7, 1), ()),
    (-H, (), ()),  # expired: nothing to remind
], ids=lambda v: str(v))
def test_due_thresholds(left: timedelta, already: tuple[int, ...], due: tuple[int, ...]) -> None:
    assert lr.due_thresholds(NOW + left, NOW, (30, 7, 1), already) == due


def test_a_threshold_beyond_the_lifetime_is_due_at_the_first_check() -> None:
    assert lr.due_thresholds(NOW + D, NOW, (400,)) == (400,)


@pytest.mark.parametrize(("certificate", "renewed", "message"), [
    (None, False, "not one of yours"),
    (cert(10 * D, owner=999), False, "not one of yours"),  # forged button data
    (cert(10 * D, status=CertStatus.REVOKED), False, "not one of yours"),
    (cert(10 * D, status=CertStatus.SUPERSEDED), False, "not one of yours"),
    (cert(-H), False, "not one of yours"),
    (cert(10 * D), True, "already renewed"),
    (cert(31 * D), False, r"until 2030-07-02\. You can renew it from 2030-06-02"),
], ids=["unknown", "someone else's", "revoked", "superseded", "expired", "renewed", "early"])
def test_who_may_renew_refusals(
    certificate: Certificate | None, renewed: bool, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        lr.check_renewable(certificate, ID, renewed=renewed, window_days=30, now=NOW)


@pytest.mark.parametrize("left", [30 * D, 29 * D, H])
def test_inside_the_window_the_owner_may_renew(left: timedelta) -> None:
    c = cert(left)
    assert lr.check_renewable(c, ID, renewed=False, window_days=30, now=NOW) is c


def test_pick_for_renewal() -> None:
    phone, tablet = cert(5 * D), cert(6 * D, device="tablet")
    assert lr.pick_for_renewal([phone], None) is phone
    assert lr.pick_for_renewal([phone, tablet], "tablet") is tablet
    for working, device, message in (([], None, "no working certificate"),
                                      ([phone, tablet], None, "Say which"),
                                      ([phone], "ipad", "for 'ipad'")):
        with pytest.raises(UserError, match=message):
            lr.pick_for_renewal(working, device)


def test_only_the_owner_may_revoke_an_active_certificate() -> None:
    mine = cert(5 * D)
    assert lr.check_own_revocable(mine, ID) is mine
    for other in (None, cert(5 * D, owner=7), cert(5 * D, status=CertStatus.REVOKED)):
        with pytest.raises(UserError, match="not one of yours"):
            lr.check_own_revocable(other, ID)


def test_working_certificates_one_per_device_without_renewed_or_undelivered() -> None:
    old, new = cert(2 * D), cert(300 * D)
    tablet = cert(9 * D, device="tablet", delivered=False)
    gone = cert(-H, device="watch")
    renewed = {old.serial}
    assert lr.working_certificates([old, new, tablet, gone], renewed, NOW) == [new]
    assert lr.working_certificates([old], set(), NOW) == [old]
