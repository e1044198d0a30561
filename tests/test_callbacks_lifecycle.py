"""The lifecycle's button data: a certificate serial per button, anything else refused."""

from __future__ import annotations

import pytest

from bot.telegram.callbacks import RenewCertificate, RevokeAsk, RevokeConfirm, parse

SERIAL = "5c0ffee" + "1" * 33  # 40 hex digits: the longest serial X.509 allows


@pytest.mark.parametrize("button", [RenewCertificate(SERIAL), RevokeAsk("ab"),
                                    RevokeConfirm("1")])
def test_round_trip(button: object) -> None:
    assert parse(button.data()) == button  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw", [
    "rnw:", "rnw:xyz", "rnw:0ab", "rnw:AB", "rnw:ab:cd", "rvk:" + "a" * 41, "rvky:-1",
    "rvky:１２", "rnw: ab",
])
def test_malformed_or_forged_data_is_refused(raw: str) -> None:
    assert parse(raw) is None
