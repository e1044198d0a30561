"""The key pool: keys made ahead at the lowest CPU priority, each handed out once."""

from __future__ import annotations

import asyncio
import os
import threading

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot.core.keypool import KeyPool


def _public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


async def _filled(pool: KeyPool, count: int) -> None:
    for _ in range(500):
        if pool.ready >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the pool held {pool.ready} keys, expected {count}")


async def test_pool_fills_to_its_size_and_hands_out_each_key_once() -> None:
    pool = KeyPool("ec-p256", 4)
    pool.start()
    try:
        await _filled(pool, 4)
        keys = [await pool.take() for _ in range(10)]  # 4 pooled, then refills or made now
        assert all(isinstance(k, ec.EllipticCurvePrivateKey) for k in keys)
        assert len({_public(k) for k in keys}) == 10
        await _filled(pool, 4)
        assert pool.ready == 4
    finally:
        await pool.stop()
    assert pool.ready == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("key-pool")]


async def test_refill_threads_run_at_the_lowest_cpu_priority() -> None:
    pool = KeyPool("ec-p256", 3)
    pool.start()
    try:
        await _filled(pool, 3)
        refillers = [t for t in threading.enumerate() if t.name.startswith("key-pool")]
        assert refillers, "no refill thread found"
        for thread in refillers:
            assert thread.native_id is not None
            assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == 19
    finally:
        await pool.stop()


async def test_an_empty_pool_still_gives_keys_made_on_demand() -> None:
    pool = KeyPool("rsa2048", 0)
    pool.start()  # size 0: nothing made ahead
    assert pool.ready == 0
    key = await pool.take()
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    await pool.stop()


async def test_no_refill_starts_while_a_delivery_holds_the_pool_paused() -> None:
    pool = KeyPool("ec-p256", 3)
    with pool.paused():
        pool.start()
        with pool.paused():  # nested: two deliveries at once
            pass
        await asyncio.sleep(0.3)  # an EC key takes well under a millisecond to make
        assert pool.ready == 0
        key = await pool.take()  # someone waiting still gets a key, made on demand
        assert isinstance(key, ec.EllipticCurvePrivateKey)
    try:
        await _filled(pool, 3)
    finally:
        await pool.stop()
