"""Every sentence people see goes through :func:`t`, the one lookup.

Templates are English source strings marked with :func:`N_` (so a gettext extractor finds
them) and kept in the modules of this package; :func:`t` translates a template into the
reader's language through the compiled gettext catalogs in ``bot/texts/locale`` and fills
in its ``{placeholders}``. The reader's language is an explicit argument, or else the one
:func:`speaking` set for the update being handled (the Telegram layer sets it per update),
or else the default. The operator's CLI prints the same domain errors, which is why this
lives beside the configuration and not inside :mod:`bot.telegram`.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
# Every language people can pick, by its own name; English is the source, not a catalog.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "es": "Español",
    "fr": "Français",
    "nl": "Nederlands",
    "ru": "Русский",
}
SHIPPED = frozenset(LANGUAGE_NAMES)

_default = DEFAULT_LANGUAGE
_reader: ContextVar[str | None] = ContextVar("reader_language", default=None)


def N_(template: str) -> str:
    """Mark a template for extraction; it is translated later, where it is shown."""
    return template


def set_default_language(language: str) -> None:
    """``OTCERT_DEFAULT_LANGUAGE``: what people whose language is not shipped read."""
    global _default
    if language not in SHIPPED:
        raise ValueError(f"{language!r} is not shipped; choose one of {sorted(SHIPPED)}")
    _default = language


def default_language() -> str:
    return _default


def primary_subtag(code: str | None) -> str | None:
    """``de-AT`` → ``de``; anything that is not a language tag → ``None``."""
    if not code:
        return None
    primary = code.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary.isascii() and primary.isalpha() and len(primary) <= 8 else None


def resolve(*candidates: str | None) -> str:
    """The first candidate (a Telegram ``language_code`` or a stored choice) that is shipped,
    else the default language."""
    for code in candidates:
        primary = primary_subtag(code)
        if primary in SHIPPED:
            return primary
    return _default


@contextmanager
def speaking(language: str | None) -> Iterator[None]:
    """Within the block, :func:`t` without a language speaks ``language``."""
    token = _reader.set(language)
    try:
        yield
    finally:
        _reader.reset(token)


def set_reader_language(language: str | None) -> None:
    """Set the reader's language for the rest of the current task (one Telegram update)."""
    _reader.set(language)


def reader_language() -> str:
    return _reader.get() or _default


@cache
def _translation(language: str) -> gettext.NullTranslations:
    if language == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def t(template: str, language: str | None = None, /, **params: object) -> str:
    """``template`` in ``language`` with ``params`` filled in (escape them first for HTML)."""
    text = _translation(language or reader_language()).gettext(template)
    return text.format(**params) if params else text
