"""Which language a person reads: the rules (table-driven), what is remembered in the
database, and that a translated template keeps the source's placeholders filled in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.core.languages import Languages
from bot.texts import (
    LANGUAGE_NAMES,
    SHIPPED,
    chat,
    default_language,
    primary_subtag,
    reader_language,
    resolve,
    set_default_language,
    speaking,
    t,
)
from storage import Database, Repository


@pytest.fixture
def default_en() -> Iterator[None]:
    set_default_language("en")
    yield
    set_default_language("en")


@pytest.mark.parametrize(
    ("code", "primary"),
    [("de", "de"), ("de-AT", "de"), ("pt-BR", "pt"), ("DE", "de"), ("zh_Hant_TW", "zh"),
     ("", None), (None, None), ("12", None), ("ру", None), ("-de", None)],
)
def test_primary_subtag(code: str | None, primary: str | None) -> None:
    assert primary_subtag(code) == primary


@pytest.mark.parametrize(
    ("candidates", "default", "expected"),
    [
        (("de",), "en", "de"),
        (("de-AT",), "en", "de"),
        (("pt-BR",), "en", "en"),  # not shipped: the default
        (("pt-BR",), "fr", "fr"),
        ((None,), "nl", "nl"),
        (("ru", "de"), "en", "ru"),  # the /language choice comes first
        ((None, "es-MX"), "en", "es"),  # no choice: what Telegram reports
        (("xx", "fr-CA"), "en", "fr"),
    ],
)
def test_resolve(
    candidates: tuple[str | None, ...], default: str, expected: str, default_en: None
) -> None:
    set_default_language(default)
    assert resolve(*candidates) == expected


def test_default_language_must_be_shipped(default_en: None) -> None:
    with pytest.raises(ValueError, match="not shipped"):
        set_default_language("pt")
    assert default_language() == "en"
    assert Settings(default_language="DE").default_language == "de"
    with pytest.raises(ValueError, match="OTCERT_DEFAULT_LANGUAGE"):
        Settings(default_language="pt")


def test_every_shipped_language_has_its_own_name() -> None:
    assert set(LANGUAGE_NAMES) == SHIPPED >= {"en", "de", "es", "fr", "nl", "ru"}
    assert LANGUAGE_NAMES["de"] == "Deutsch" and LANGUAGE_NAMES["ru"] == "Русский"


def test_speaking_sets_the_language_of_t_without_one(default_en: None) -> None:
    assert t(chat.DONE) == "Done."
    with speaking("de"):
        assert reader_language() == "de"
        assert t(chat.DONE) == "Erledigt."
        assert t(chat.DONE, "fr") == "C'est fait.", "an explicit language wins"
    assert t(chat.DONE) == "Done."
    assert t(chat.DONE, "pt") == "Done.", "no catalog: the English source"


@pytest.mark.parametrize("language", sorted(SHIPPED))
def test_placeholders_are_filled_in_every_language(language: str) -> None:
    text = t(chat.STATUS_APPROVED, language, username="alice")
    assert "<code>alice</code>" in text and "{" not in text


async def test_choice_and_telegram_language_are_remembered(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with await Database.open(path) as db:
        languages = Languages(Repository(db))
        assert await languages.seen(7, "de-CH") == "de"
        assert await languages.of(7) == "de", "what Telegram said is kept for later messages"
        assert await languages.seen(8, "pt-BR") == "en"
        await languages.choose(8, "nl")
        assert await languages.seen(8, "pt-BR") == "nl", "a choice beats Telegram's code"
        with pytest.raises(ValueError):
            await languages.choose(8, "pt")
    async with await Database.open(path) as db:  # a restart: read back from the file
        languages = Languages(Repository(db))
        assert await languages.of(8) == "nl"
        assert await languages.of(7) == "de"
        assert await languages.of(9) == "en", "never seen: the default"
        assert await Repository(db).get_languages(8) == ("nl", "pt")
