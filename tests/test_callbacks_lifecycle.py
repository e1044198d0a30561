"""The lifecycle's button data: a certificate serial per button, anything else refused."""

from __future__ import annotations

import pytest

from bot.core.models import Platform
from bot.telegram.callbacks import (
    RenewCertificate,
    RenewPlatformChoice,
    RevokeAsk,
    RevokeConfirm,
    parse,
)

SERIAL = "5c0ffee" + "1" * 33  # 40 hex digits: the longest serial X.509 allows


@pytest.mark.parametrize("button", [RenewCertificate(SERIAL), RevokeAsk("ab"),
                                    RevokeConfirm("1"), RenewPlatformChoice(Platform.IOS, SERIAL)])
def test_round_trip(button: object) -> None:
    assert parse(button.data()) == button  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw", [
    "rnw:", "rnw:xyz", "rnw:0ab", "rnw:AB", "rnw:ab:cd", "rvk:" + "a" * 41, "rvky:-1",
    "rvky:１２", "rnw: ab", "rplat:ios", "rplat:ios:0ab", "rplat:nokia:ab", "rplat:ios:ab:cd",
])
def test_malformed_or_forged_data_is_refused(raw: str) -> None:
    assert parse(raw) is None


def test_the_phone_question_during_a_renewal_keeps_the_serial() -> None:
    """Answering it must renew that certificate, not issue one that replaces it."""
    from bot.telegram.handlers.delivery import platform_keyboard

    [row] = platform_keyboard("phone", SERIAL).inline_keyboard
    assert [parse(b.callback_data) for b in row] == [  # type: ignore[arg-type]
        RenewPlatformChoice(p, SERIAL) for p in (Platform.IOS, Platform.ANDROID)]
