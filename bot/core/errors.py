"""Errors a person can act on. Handlers show their message; everything else is a bug.

An error carries a template from :mod:`bot.texts.errors` and its params, so the reader's
language can be chosen where it is shown; ``str(exc)`` is the English text.
"""

from __future__ import annotations

from bot.texts import errors as texts
from bot.texts import t


class UserError(Exception):
    """Something the person (or admin) can fix; ``str(exc)`` is shown to them as is."""

    def __init__(self, template: str, /, **params: object) -> None:
        super().__init__(t(template, "en", **params))  # logs and the CLI: always English
        self.template = template
        self.params = params


class NotAllowed(UserError):
    """An admin-only action attempted by someone who is not an admin."""


class PlatformNeeded(UserError):
    """The bot must ask which phone before it can pick the file format."""

    def __init__(self, device: str) -> None:
        super().__init__(texts.WHICH_PHONE)
        self.device = device
