"""Each person's chat language: the one picked with /language, and the one Telegram last
reported, so messages sent outside their own updates (admin notices, approvals) are read in
it. A table of its own, because admins and people who never sent /request have no row in
``people``."""

from __future__ import annotations

from storage._common import RepositoryBase, require_int, to_db

LANGUAGE_MAX = 8


def _code(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or not value.isalpha():
        raise ValueError("a language is a short ASCII tag such as 'de'")
    return value[:LANGUAGE_MAX].lower()


class LanguageRepository(RepositoryBase):
    async def get_languages(self, telegram_id: int) -> tuple[str | None, str | None]:
        """(chosen with /language, last reported by Telegram); either may be ``None``."""
        require_int(telegram_id, "telegram_id")
        sql = "SELECT chosen, telegram FROM chat_languages WHERE telegram_id = ?"
        async with self._db.reading() as conn, conn.execute(sql, (telegram_id,)) as cur:
            row = await cur.fetchone()
        return (None, None) if row is None else (row[0], row[1])

    async def set_chosen_language(self, telegram_id: int, language: str | None) -> None:
        await self._upsert(telegram_id, "chosen", _code(language))

    async def set_telegram_language(self, telegram_id: int, language: str | None) -> None:
        await self._upsert(telegram_id, "telegram", _code(language))

    async def _upsert(self, telegram_id: int, column: str, value: str | None) -> None:
        require_int(telegram_id, "telegram_id")
        assert column in ("chosen", "telegram")
        sql = (
            f"INSERT INTO chat_languages (telegram_id, {column}, updated_at) VALUES (?, ?, ?) "  # noqa: S608
            f"ON CONFLICT (telegram_id) DO UPDATE SET {column} = excluded.{column}, "
            "updated_at = excluded.updated_at"
        )
        async with self._db.transaction() as conn:
            await conn.execute(sql, (telegram_id, value, to_db(self._now())))
