"""Shared fixtures. Keep this small: one CA per session (RSA 4096 takes ~1-3 s to make)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pki import CertificateAuthority
from storage import Repository
from tests.dynsec import Phone
from tests.fake_telegram import FakeTelegram
from tests.mosquitto import Broker, ClientFiles
from tests.storage_fixtures import Clock, open_repo


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    """The default kind of CA the bot creates (RSA 4096); read-only, shared by all tests."""
    return CertificateAuthority.create("Test CA")


@pytest.fixture(scope="session")
def other_ca() -> CertificateAuthority:
    """An unrelated CA (EC, fast to make) whose certificates our broker must refuse."""
    return CertificateAuthority.create("Other CA", key_type="ec-p384")


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Start brokers for this test: ``broker_factory(ca, **Broker kwargs)``; all stopped after."""
    started: list[Broker] = []

    def start(authority: CertificateAuthority, **kwargs: Any) -> Broker:
        broker = Broker(authority, tmp_path / f"broker{len(started)}", **kwargs)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def phones() -> Iterator[Callable[[Broker, ClientFiles], Phone]]:
    """Open auto-reconnecting phone-like MQTT sessions; all closed after the test."""
    opened: list[Phone] = []

    def open_phone(broker: Broker, files: ClientFiles) -> Phone:
        opened.append(Phone(broker, files))
        return opened[-1]

    yield open_phone
    for phone in opened:
        phone.close()


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    """A fake Telegram Bot API server for this test."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    """A settable clock for storage tests."""
    return Clock()


@pytest.fixture
async def repo(tmp_path: Path, clock: Clock) -> AsyncIterator[Repository]:
    """A repository over a fresh SQLite file in this test's tmp dir."""
    db, repo = await open_repo(tmp_path / "bot.db", clock)
    async with db:
        yield repo
