"""The pieces behind the new doors, on their own: the .otrc content, ids for people without
Telegram, and the send limiter's order and window (with a clock the test moves)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.core import doors, otrc
from bot.telegram.limiter import Priority, SendLimiter, send_priority, shaped
from storage import Platform
from tests.waiting import async_wait_until

BASE = {"host": "mqtt.example.org", "port": 8883, "username": "jane.doe", "device": "ipad"}


@pytest.mark.parametrize(
    ("platform", "pkcs", "clientpkcs"),
    [
        (Platform.IOS, "jane.doe-ipad.otrp", "jane.doe-ipad.otrp"),
        (Platform.ANDROID, "jane.doe-ipad.p12", None),  # Android picks by alias instead
        (None, "jane.doe-ipad.p12", None),  # the inline link: no file named
        (Platform.IOS, None, None),
    ],
)
def test_otrc_names_the_otrp_only_for_ios(
    platform: Platform | None, pkcs: str | None, clientpkcs: str | None
) -> None:
    config = otrc.configuration(**BASE, pkcs_filename=pkcs, platform=platform)
    assert config.get("clientpkcs") == clientpkcs
    assert config["_type"] == "configuration" and config["mode"] == 0 and config["tls"] is True
    assert (config["username"], config["deviceId"]) == ("jane.doe", "ipad")
    assert not {"password", "passphrase", "pass"} & set(config)


def test_otrc_file_is_json_and_named_after_username_and_device() -> None:
    data = otrc.otrc_bytes(**BASE, pkcs_filename="x.otrp", platform=Platform.IOS)
    assert json.loads(data)["host"] == "mqtt.example.org"
    assert otrc.otrc_filename("jane.doe", "ipad") == "jane.doe-ipad.otrc"


@pytest.mark.parametrize(
    ("username", "tid"),
    [("jane.doe", "ja"), ("a", "a"), ("_-.", "ot"), ("x.y", "xy"), ("42bob", "42")],
)
def test_tracker_id_is_at_most_two_letters_or_digits(username: str, tid: str) -> None:
    assert otrc.tracker_id(username) == tid


@pytest.mark.parametrize(
    ("known", "expected"),
    [
        ([], doors.NO_TELEGRAM_FIRST_ID),
        ([5, 1000, 0], doors.NO_TELEGRAM_FIRST_ID),  # real people and the operator don't count
        ([doors.NO_TELEGRAM_FIRST_ID], doors.NO_TELEGRAM_FIRST_ID - 1),
        ([doors.NO_TELEGRAM_FIRST_ID - 7, 3], doors.NO_TELEGRAM_FIRST_ID - 8),
    ],
)
def test_next_offline_id_counts_down_below_every_telegram_id(
    known: list[int], expected: int
) -> None:
    new = doors.next_offline_id(known)
    assert new == expected and not doors.has_telegram(new)
    assert new < -2_002_147_483_648  # below Telegram's lowest chat id range (secret chats)


@pytest.mark.parametrize(("telegram_id", "reachable"), [(1, True), (7_000_000_000, True),
                                                        (0, False), (-(10**15), False)])
def test_has_telegram(telegram_id: int, reachable: bool) -> None:
    assert doors.has_telegram(telegram_id) is reachable


@pytest.mark.parametrize(
    ("endpoint", "limited"),
    [("sendMessage", True), ("sendDocument", True), ("editMessageText", True),
     ("getMe", False), ("answerCallbackQuery", False), ("deleteMessage", False)],
)
def test_only_sends_are_shaped(endpoint: str, limited: bool) -> None:
    assert shaped(endpoint) is limited


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _send(limiter: SendLimiter, log: list[str], name: str,
                endpoint: str = "sendMessage") -> None:
    async def callback() -> bool:
        log.append(name)
        return True

    await limiter.process_request(callback, (), {}, endpoint, {}, None)


async def test_a_full_window_waits_until_the_clock_moves_past_it() -> None:
    clock = Clock()
    limiter = SendLimiter(per_second=3, window=0.01, clock=clock)
    await limiter.initialize()
    log: list[str] = []
    try:
        tasks = [asyncio.create_task(_send(limiter, log, f"m{i}")) for i in range(5)]
        assert await async_wait_until(lambda: len(log) == 3 and limiter.waiting == 2, 5)
        await _send(limiter, log, "delete", "deleteMessage")  # not a send: not held back
        assert log[-1] == "delete" and len(log) == 4
        clock.now += 0.011  # the first three leave the window
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert sorted(log) == ["delete", "m0", "m1", "m2", "m3", "m4"]
    finally:
        await limiter.shutdown()


async def test_waiting_sends_go_replies_first_then_secrets_then_extras() -> None:
    clock = Clock()
    limiter = SendLimiter(per_second=1, window=0.01, clock=clock)
    await limiter.initialize()
    log: list[str] = []
    try:
        await _send(limiter, log, "first")  # fills the window while the clock stands still

        async def queued(name: str, priority: Priority) -> None:
            with send_priority(priority):
                await _send(limiter, log, name)

        tasks = []
        for name, priority in [("steps", Priority.EXTRAS), ("start", Priority.REPLY),
                               ("file", Priority.SECRET), ("pin", Priority.EXTRAS),
                               ("passphrase", Priority.SECRET)]:
            tasks.append(asyncio.create_task(queued(name, priority)))
            count = len(tasks)
            assert await async_wait_until(lambda n=count: limiter.waiting == n, 5)
        for expected in ["start", "file", "passphrase", "steps", "pin"]:
            clock.now += 0.011
            assert await async_wait_until(lambda e=expected: log[-1] == e, 5), log
        await asyncio.gather(*tasks)
    finally:
        await limiter.shutdown()


async def test_a_429_pauses_every_send_for_its_retry_after() -> None:
    clock = Clock()
    limiter = SendLimiter(per_second=30, window=0.01, clock=clock)
    await limiter.initialize()
    log: list[str] = []

    async def flooded() -> Any:
        raise RetryAfter(1)

    try:
        with pytest.raises(RetryAfter):
            await limiter.process_request(flooded, (), {}, "sendMessage", {}, None)
        task = asyncio.create_task(_send(limiter, log, "later"))
        assert await async_wait_until(lambda: limiter.waiting == 1, 5)
        assert log == []
        clock.now += 1.0
        await asyncio.wait_for(task, 5)
        assert log == ["later"]
    finally:
        await limiter.shutdown()
