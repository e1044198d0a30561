"""The lifecycle job over a real PTB Application and the fake Bot API, with an injected
clock: an admin reminder nobody received stays open for the next run, and admins read it in
their own language whatever the owner reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from telegram.ext import ApplicationBuilder, BaseRateLimiter, CallbackContext

from bot.core.languages import Languages
from bot.telegram.handlers import language
from bot.telegram.handlers.lifecycle import lifecycle_job
from bot.telegram.limiter import Priority, _priority
from tests.fake_telegram import FakeTelegram
from tests.storage_fixtures import T0
from tests.test_lifecycle_service import ADMIN, ALICE, World, issue, world

__all__ = ["world"]  # the fixture, shared with the lifecycle service tests
pytestmark = pytest.mark.timeout(60)
UNRENEWED = "has not been renewed"


class PriorityLog(BaseRateLimiter[None]):
    """Lets every call through and notes the send priority it was made at."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Priority]] = []

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(self, callback, args, kwargs, endpoint, data,  # type: ignore[no-untyped-def, override]
                              rate_limit_args):
        self.seen.append((endpoint, _priority.get()))
        return await callback(*args, **kwargs)


async def test_an_admin_notice_nobody_got_is_retried_in_the_admins_language(
    world: World, tg: FakeTelegram
) -> None:
    tg.user(ADMIN, "Admin")
    tg.user(ALICE, "Alice")
    await issue(world, ALICE)
    languages = Languages(world.service.repo)
    await languages.seen(ALICE, "ru")  # the owner reads Russian, the admin English
    limiter = PriorityLog()
    app = (ApplicationBuilder().token(tg.token).base_url(tg.base_url)
           .base_file_url(tg.base_file_url).rate_limiter(limiter).build())
    app.bot_data["lifecycle"] = world.lifecycle
    app.bot_data[language.KEY] = languages
    world.clock.now = T0 + timedelta(days=364, hours=12)  # the last threshold: admins hear
    async with app:
        tg.block(ADMIN)
        await lifecycle_job(CallbackContext(app))
        assert [d.certificate.serial for d in await world.lifecycle.due_for_admins()] != []
        tg.unblock(ADMIN)
        await lifecycle_job(CallbackContext(app))
        assert await world.lifecycle.due_for_admins() == []
    [notice] = [m for m in tg.sent_messages(ADMIN) if UNRENEWED in m.text]
    assert "alice" in notice.text.lower()
    [reminder] = tg.sent_messages(ALICE)
    assert "Renew" not in reminder.text  # the owner's reminder is Russian
    # Reminders never jump ahead of a file and passphrase on their way.
    sends = {p for endpoint, p in limiter.seen if endpoint == "sendMessage"}
    assert sends == {Priority.EXTRAS}
