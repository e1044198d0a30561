"""Admins' notices: each admin reads their own language (not the language of whoever caused
the notice), and the caller learns how many admins received it, so a reminder nobody got is
not marked sent. A real PTB Bot over HTTP against the fake Bot API."""

from __future__ import annotations

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram.handlers.fanout import tell_admins
from bot.telegram.handlers.trust import tell_admins_limit
from bot.texts import speaking, t
from bot.texts import trust as texts
from storage import Person, PersonStatus
from tests.fake_telegram import FakeTelegram

pytestmark = pytest.mark.timeout(60)
EN_ADMIN, RU_ADMIN = 1001, 1002
READS = {EN_ADMIN: "en", RU_ADMIN: "ru"}


async def reads(admin_id: int) -> str:
    return READS[admin_id]


def bot_for(tg: FakeTelegram) -> Bot:
    tg.user(EN_ADMIN, "En")
    tg.user(RU_ADMIN, "Ru")
    return Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url)


async def test_a_russian_persons_cap_is_told_to_an_english_admin_in_english(
    tg: FakeTelegram,
) -> None:
    from datetime import UTC, datetime

    now = datetime(2030, 1, 1, tzinfo=UTC)
    ivan = Person(telegram_id=2001, display_name="Ivan", tg_username=None,
                  status=PersonStatus.APPROVED, mqtt_username="ivan", platform=None,
                  requested_at=now, decided_at=now, decided_by=EN_ADMIN, reason=None,
                  created_at=now, updated_at=now)
    async with bot_for(tg) as bot:
        with speaking("ru"):  # the person who hit the cap reads Russian
            await tell_admins_limit(bot, frozenset(READS), ivan, 5, reads)
    [english] = tg.sent_messages(EN_ADMIN)
    [russian] = tg.sent_messages(RU_ADMIN)
    assert "reached the limit of 5 certificates in 24 hours" in english.text
    assert "лимита сертификатов" in russian.text


async def test_the_button_label_follows_each_admin_and_the_count_skips_blocked_ones(
    tg: FakeTelegram,
) -> None:
    def keyboard() -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton(
            t(texts.BUTTON_CONFIRM_PIN), callback_data="pinok:0123456789abcdef")]])

    async with bot_for(tg) as bot:
        with speaking("ru"):
            told = await tell_admins(bot, READS, reads, lambda: "x", keyboard=keyboard)
        assert told == 2
        labels = {m.chat_id: m.reply_markup["inline_keyboard"][0][0]["text"]  # type: ignore[index]
                  for m in tg.sent_messages()}
        assert labels[EN_ADMIN] == "Confirm and send to every phone"
        assert labels[RU_ADMIN] != labels[EN_ADMIN]
        tg.block(EN_ADMIN)
        assert await tell_admins(bot, READS, reads, lambda: "y") == 1
        tg.block(RU_ADMIN)
        assert await tell_admins(bot, READS, reads, lambda: "z") == 0  # the claim stays open
