"""People without Telegram: how they are numbered, and how nothing tries to message them.

``otcert issue --new`` adds a person (the OwnTracks Recorder, Home Assistant, a grandparent's
phone) who has no Telegram account. The database keys people by Telegram id, so such a
person gets an id no Telegram chat can have: Telegram's user ids are positive and its chat
ids stay above -2,002,147,483,648 (secret chats, the lowest range), so ours start at
``-10**15`` and count down. Everything that messages people asks :func:`has_telegram` first.
"""

from __future__ import annotations

from collections.abc import Iterable

NO_TELEGRAM_FIRST_ID = -(10**15)


def has_telegram(telegram_id: int) -> bool:
    """False for the ids :func:`next_offline_id` hands out (and for the operator, 0)."""
    return telegram_id > 0


def next_offline_id(known_ids: Iterable[int]) -> int:
    """The next free id for a person without Telegram, below every one handed out."""
    lowest = min((i for i in known_ids if i <= NO_TELEGRAM_FIRST_ID), default=None)
    return NO_TELEGRAM_FIRST_ID if lowest is None else lowest - 1
