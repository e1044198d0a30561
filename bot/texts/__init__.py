"""Every sentence people see goes through :func:`t`, the one lookup.

Templates are English source strings marked with :func:`N_` (so a gettext extractor finds
them) and kept in the modules of this package; :func:`t` translates a template into the
reader's language and fills in its ``{placeholders}``. Until catalogs ship, every language
reads English. The operator's CLI prints the same domain errors, which is why this lives
beside the configuration and not inside :mod:`bot.telegram`.
"""

from __future__ import annotations

import gettext
from functools import cache

DEFAULT_LANGUAGE = "en"


def N_(template: str) -> str:
    """Mark a template for extraction; it is translated later, where it is shown."""
    return template


@cache
def _translation(language: str) -> gettext.NullTranslations:
    return gettext.NullTranslations()


def t(template: str, language: str | None = None, /, **params: object) -> str:
    """``template`` in ``language`` with ``params`` filled in (escape them first for HTML)."""
    text = _translation(language or DEFAULT_LANGUAGE).gettext(template)
    return text.format(**params) if params else text
