"""Which language each person reads: their /language choice, else what Telegram reports for
them (shipped languages only), else ``OTCERT_DEFAULT_LANGUAGE``.

A small cache keeps this off the database for every update: the stored row is read once per
person and written only when it changes.
"""

from __future__ import annotations

from bot.texts import SHIPPED, primary_subtag, resolve
from storage import Repository

CACHE_MAX = 10_000


class Languages:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._known: dict[int, tuple[str | None, str | None]] = {}

    async def _stored(self, telegram_id: int) -> tuple[str | None, str | None]:
        known = self._known.get(telegram_id)
        if known is None:
            known = await self._repo.get_languages(telegram_id)
            self._remember(telegram_id, known)
        return known

    def _remember(self, telegram_id: int, value: tuple[str | None, str | None]) -> None:
        if len(self._known) >= CACHE_MAX:
            self._known.clear()  # cheap and rare; rows are re-read on demand
        self._known[telegram_id] = value

    async def seen(self, telegram_id: int, language_code: str | None) -> str:
        """The language for an update from this person, whose client reports
        ``language_code``; remembers the code for messages sent to them later."""
        chosen, telegram = await self._stored(telegram_id)
        primary = primary_subtag(language_code)
        if primary is not None and primary != telegram:
            await self._repo.set_telegram_language(telegram_id, primary)
            self._remember(telegram_id, (chosen, primary))
            telegram = primary
        return resolve(chosen, telegram)

    async def of(self, telegram_id: int) -> str:
        """The language to write to this person in when they are not the one asking."""
        chosen, telegram = await self._stored(telegram_id)
        return resolve(chosen, telegram)

    async def choose(self, telegram_id: int, language: str) -> str:
        """/language: remember ``language`` (a shipped one) for this person."""
        if language not in SHIPPED:
            raise ValueError(f"{language!r} is not a shipped language")
        _, telegram = await self._stored(telegram_id)
        await self._repo.set_chosen_language(telegram_id, language)
        self._remember(telegram_id, (language, telegram))
        return language
