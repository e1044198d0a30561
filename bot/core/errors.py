"""Errors a person can act on. Handlers show their message; everything else is a bug."""

from __future__ import annotations


class UserError(Exception):
    """Something the person (or admin) can fix; ``str(exc)`` is shown to them as is."""


class NotAllowed(UserError):
    """An admin-only action attempted by someone who is not an admin."""


class PlatformNeeded(UserError):
    """The bot must ask which phone before it can pick the file format."""

    def __init__(self, device: str) -> None:
        super().__init__("Which phone is this certificate for?")
        self.device = device
