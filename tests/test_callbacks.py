"""Button data: what the bot builds parses back to the same value; anything else is None."""

from __future__ import annotations

import pytest

from bot.core.models import Platform
from bot.telegram.callbacks import (
    MAX_BYTES,
    ButtonData,
    PlatformChoice,
    RequestAnswer,
    parse,
    telegram_id,
)

BUILT_BY_THE_BOT: list[tuple[ButtonData, str]] = [
    (RequestAnswer("approve", 2001), "req:approve:2001"),
    (RequestAnswer("deny", 2001), "req:deny:2001"),
    (RequestAnswer("cancel", 2001), "req:cancel:2001"),
    (RequestAnswer("ok", 2001, "alice_m"), "req:ok:2001:alice_m"),
    (RequestAnswer("ok", 999_999_999_999_999, "a" * 32), f"req:ok:{'9' * 15}:{'a' * 32}"),
    (PlatformChoice(Platform.IOS, "phone"), "plat:ios:phone"),
    (PlatformChoice(Platform.ANDROID, "x" * 32), f"plat:android:{'x' * 32}"),
]


@pytest.mark.parametrize(("button", "wire"), BUILT_BY_THE_BOT)
def test_the_wire_format_is_unchanged_and_round_trips(button: ButtonData, wire: str) -> None:
    assert button.data() == wire
    assert len(wire.encode()) <= MAX_BYTES
    assert parse(wire) == button


HOSTILE = [
    "",
    "req",
    "req:",
    "req:approve",
    "req:approve:",
    "req:approve:2001:",
    "req:approve:2001:eve",  # only "ok" carries a name
    "req:deny:2001:eve",
    "req:ok:2001",  # "ok" without a name
    "req:ok:2001:",
    "req:ok:2001:eve:extra",
    "req:APPROVE:2001",
    "req:delete:2001",
    "req:approve:abc",
    "req:approve:-5",
    "req:approve:0",
    "req:approve:00",
    "req:approve:02001",  # not the form the bot writes
    "req:approve:+5",
    "req:approve: 5",
    "req:approve:1e3",
    "req:approve:12345678901234567",  # 17 digits
    "req:approve:9007199254740993",  # 16 digits but over 2**53
    "req:approve:99999999999999999999999",
    "req:approve:²",
    "req:approve:١٢٣",  # Arabic-Indic digits
    "req:approve:１２３",  # fullwidth digits
    "REQ:approve:2001",
    " req:approve:2001",
    "rq:approve:2001",
    "plat",
    "plat:ios",
    "plat:ios:",
    "plat:windows:phone",
    "plat:IOS:phone",
    "plat:ios:phone:extra",
    "plat::phone",
    "plat:android:" + "x" * 60,  # over 64 bytes
    "req:ok:2001:" + "é" * 30,  # 64 characters, but over 64 bytes
    "x" * 65,
    ":",
    "::",
    "forged:never-on-a-button",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_malformed_or_forged_data_parses_to_none(raw: str) -> None:
    assert parse(raw) is None


def test_missing_data_parses_to_none() -> None:
    assert parse(None) is None


@pytest.mark.parametrize(
    "button",
    [
        RequestAnswer("ok", 2001, "a" * 60),  # past 64 bytes
        RequestAnswer("ok", 2001, "ev:e"),  # the separator inside a field
        RequestAnswer("ok", 2001, ""),
        PlatformChoice(Platform.IOS, ""),
        PlatformChoice(Platform.IOS, "x" * 60),
    ],
)
def test_the_builder_refuses_data_telegram_or_the_parser_would_not_take(
    button: RequestAnswer | PlatformChoice,
) -> None:
    with pytest.raises(ValueError):
        button.data()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("2001", 2001), ("9" * 15, 10**15 - 1), ("0", None), ("9" * 16, None),
     (str(2**52), 2**52), ("1234567890123456", 1234567890123456), (str(2**53), None),
     ("", None), ("-1", None), ("٣", None), ("½", None), ("12a", None)],
)
def test_telegram_ids_are_short_positive_ascii_numbers(text: str, expected: int | None) -> None:
    assert telegram_id(text) == expected
