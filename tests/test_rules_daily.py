"""OTCERT_MAX_ISSUES_PER_DAY as a table (issue 14 point 6): plain values in, a decision out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core import rules
from bot.core.rules import Policy
from tests.test_rules import NOW, person

H = timedelta(hours=1)
CAP = Policy(admin_ids=frozenset({1}), issue_cooldown=timedelta(0), max_issues_per_day=3)


@pytest.mark.parametrize(
    ("issued_ago", "refused", "free_again_in"),
    [
        ((), False, None),
        ((1 * H, 2 * H), False, None),
        ((1 * H, 2 * H, 3 * H), True, 21 * H),  # the third newest leaves the window first
        ((1 * H, 2 * H, 3 * H, 30 * H), True, 21 * H),  # older than 24 h does not count
        ((1 * H, 2 * H, 24 * H), False, None),  # exactly 24 h ago is outside the window
        ((1 * H, 5 * H, 6 * H, 7 * H), True, 18 * H),
        ((-1 * H, 1 * H, 2 * H), False, None),  # a clock skewed into the future is ignored
    ],
)
def test_daily_cap(
    issued_ago: tuple[timedelta, ...], refused: bool, free_again_in: timedelta | None
) -> None:
    issued = [NOW - ago for ago in issued_ago]
    if not refused:
        grant = rules.may_issue(person(), "phone", active=[], last_issued_at=None, policy=CAP,
                                now=NOW, issued_recently=issued)
        assert grant.username == "alice"
        return
    with pytest.raises(rules.DailyLimit) as caught:
        rules.may_issue(person(), "phone", active=[], last_issued_at=None, policy=CAP, now=NOW,
                        issued_recently=issued)
    assert free_again_in is not None
    assert caught.value.since + rules.DAY == NOW + free_again_in
    assert f"{(NOW + free_again_in):%Y-%m-%d %H:%M}" in str(caught.value)


def test_the_default_cap_is_five() -> None:
    assert Policy(admin_ids=frozenset()).max_issues_per_day == 5
