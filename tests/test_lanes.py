"""Delivery lanes: a few secrets deliveries at once, and the extras only once none waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress

from bot.telegram.lanes import DeliveryLanes


async def _most_at_once(turn: Callable[[], AbstractAsyncContextManager[None]], n: int) -> int:
    inside = most = 0

    async def one() -> None:
        nonlocal inside, most
        async with turn():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(one() for _ in range(n)))
    return most


async def test_each_lane_caps_how_many_run_at_once() -> None:
    lanes = DeliveryLanes(secrets=3, extras=2)
    assert await _most_at_once(lanes.secrets, 12) == 3
    assert await _most_at_once(lanes.extras, 12) == 2
    assert lanes.secrets_pending == 0


async def test_extras_wait_until_no_secrets_delivery_is_waiting() -> None:
    lanes = DeliveryLanes(secrets=1, extras=2)
    order: list[str] = []
    release = asyncio.Event()

    async def secrets(name: str) -> None:
        async with lanes.secrets():
            order.append(name)
            await release.wait()

    async def extras() -> None:
        async with lanes.extras():
            order.append("extras")

    first = asyncio.create_task(secrets("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(secrets("second"))  # queued behind the first
    late_extras = asyncio.create_task(extras())
    await asyncio.sleep(0.05)
    assert order == ["first"] and lanes.secrets_pending == 2
    release.set()
    await asyncio.gather(first, second, late_extras)
    assert order == ["first", "second", "extras"]


async def test_a_failed_secrets_delivery_frees_its_turn() -> None:
    lanes = DeliveryLanes(secrets=1, extras=1)

    async def failing() -> None:
        async with lanes.secrets():
            raise RuntimeError("upload failed")

    for _ in range(3):
        with suppress(RuntimeError):
            await failing()
    assert lanes.secrets_pending == 0
    async with asyncio.timeout(1):
        async with lanes.extras():
            pass


async def test_a_steady_stream_of_secrets_cannot_hold_the_extras_back_for_good() -> None:
    lanes = DeliveryLanes(secrets=1, extras=1, extras_max_wait=0.2)
    release = asyncio.Event()

    async def endless_secrets() -> None:
        async with lanes.secrets():
            await release.wait()

    holder = asyncio.create_task(endless_secrets())
    await asyncio.sleep(0)
    try:
        async with asyncio.timeout(3):  # without the bound: waits as long as secrets do
            async with lanes.extras():
                assert lanes.secrets_pending == 1
    finally:
        release.set()
        await holder
