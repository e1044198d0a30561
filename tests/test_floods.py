"""Floods: one person hammering the bot is slowed down with one clear answer per window, gets
no more certificates than the limits allow, and does not silence the bot for anyone else.

The Throttle is also checked on its own with an explicit clock (no sleeping): its memory
follows the people active now, not everyone who ever wrote."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.telegram.handlers.common import Throttle
from bot.texts import chat, t
from pki import CertificateAuthority
from tests.botproc import ADMIN_ID
from tests.fake_telegram import FakeTelegram
from tests.hostile_support import (
    World,
    assert_healthy,
    database_path,
    fresh_person,
    running_world,
    text_of,
    wait_text,
)

pytestmark = pytest.mark.slow  # starts a bot process

COOLDOWN = 2
MAX_DEVICES = 3
FLOOD = 500
PACE = 0.005  # 200 messages a second: fast, yet spread over the bot's issuing time
STARVED = 10.0  # seconds without an answer that mean a bystander was starved


class Clock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_throttle_allows_the_limit_then_warns_once_per_window() -> None:
    clock = Clock()
    throttle = Throttle(limit=20, window=10.0, clock=clock)
    results = [throttle.allow(7) for _ in range(FLOOD)]
    assert [allowed for allowed, _ in results].count(True) == 20
    assert [warn for _, warn in results].count(True) == 1  # even at monotonic time ~0
    clock.now += 10.5
    again = [throttle.allow(7) for _ in range(FLOOD)]
    assert [allowed for allowed, _ in again].count(True) == 20
    assert [warn for _, warn in again].count(True) == 1


def test_throttle_forgets_idle_people() -> None:
    clock = Clock(1000.0)
    throttle = Throttle(limit=20, window=10.0, clock=clock)
    for person in range(10_000):
        throttle.allow(person)
    for _ in range(30):
        throttle.allow(42)
    assert throttle.tracked == 10_000
    clock.now += 25  # everyone idle for more than a window
    throttle.allow(99)
    assert throttle.tracked == 1
    # The forgetting did not reset anyone active: a flooder within the window stays limited.
    for _ in range(25):
        throttle.allow(99)
    clock.now += 10.5
    assert throttle.allow(99) == (True, False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority) -> Iterator[World]:
    env = {"OTCERT_ISSUE_COOLDOWN_SECONDS": str(COOLDOWN),
           "OTCERT_MAX_DEVICES": str(MAX_DEVICES)}
    with running_world(tmp_path_factory.mktemp("flood"), ca, env) as w:
        yield w


def issued_at(db_path: Path, telegram_id: int) -> list[tuple[datetime, str, str]]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT issued_at, device, status FROM certificates WHERE telegram_id = ? "
            "ORDER BY issued_at", (telegram_id,)).fetchall()
    finally:
        db.close()
    return [(datetime.fromisoformat(at), device, status) for at, device, status in rows]


def wait_until_quiet(tg: FakeTelegram, timeout: float = 60.0, quiet: float = 1.0) -> None:
    """Block until the bot has taken every update and sent nothing new for ``quiet`` s."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while True:
        count = len(tg.calls)
        if tg.unconfirmed_updates() or count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        assert time.monotonic() < deadline, f"{tg.unconfirmed_updates()} updates still queued"
        time.sleep(0.1)


def reply_times(tg: FakeTelegram, chat_id: int) -> list[float]:
    return [c.time for c in tg.calls_to("sendMessage")
            if c.params.get("chat_id") == chat_id and c.status == 200]


def test_a_flood_is_throttled_limited_and_does_not_silence_others(world: World) -> None:
    tg, bot = world.tg, world.bot
    flooder = world.approved  # approved, iPhone known, one certificate already
    bystanders = [fresh_person(tg, f"Bystander{n}") for n in range(3)]
    before = len(tg.sent_messages(flooder.id))
    kinds = ["/getcert", "/getcert ipad", "/getcert tablet", "/getcert watch", "/getcert car",
             "/start", "hello", "/request", "/help"]
    sent_at: dict[int, float] = {}
    positions = [5, FLOOD // 2, FLOOD - 5]
    for n in range(FLOOD):
        tg.send_text(flooder, kinds[n % len(kinds)])
        time.sleep(PACE)
        if n in positions:
            bystander = bystanders[positions.index(n)]
            sent_at[bystander.id] = time.time()
            tg.send_text(bystander, "/start")
    # Others are answered while the flood is being worked through. The bound is deliberately
    # loose (the flood alone takes ~2 s here): it catches starvation, not slowness.
    for person in bystanders:
        wait_text(tg, person.id, "Hi!", timeout=30)
        assert reply_times(tg, person.id)[0] - sent_at[person.id] < STARVED
    wait_until_quiet(tg)

    to_flooder = tg.sent_messages(flooder.id)[before:]
    slow_downs = [m for m in to_flooder if text_of(m) == t(chat.SLOW_DOWN)]
    times = reply_times(tg, flooder.id)
    windows = 1 + int((max(times) - min(times)) // 10)
    assert slow_downs, "the flood got no 'too fast' answer"
    assert len(slow_downs) <= windows, [text_of(m)[:40] for m in to_flooder]
    assert len(to_flooder) <= windows * 30, "a flood must not be answered message by message"

    certificates = issued_at(database_path(bot), flooder.id)
    active_devices = {device for _, device, status in certificates if status == "active"}
    assert len(active_devices) <= MAX_DEVICES
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(certificates)]
    assert all(gap >= COOLDOWN - 0.01 for gap in gaps), gaps
    assert_healthy(bot)


def test_admins_are_not_throttled(world: World) -> None:
    tg, bot = world.tg, world.bot
    before = len(tg.sent_messages(ADMIN_ID))
    for _ in range(60):
        tg.send_text(world.admin, "/help")
    tg.wait_for(lambda m: len(tg.sent_messages(ADMIN_ID)) >= before + 60, 30)
    assert not [m for m in tg.sent_messages(ADMIN_ID) if text_of(m) == t(chat.SLOW_DOWN)]
    assert_healthy(bot)
