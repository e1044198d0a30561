"""Domain errors of the storage layer.

Their messages are meant for people (an admin reads them in Telegram), so they name the
person and say what to do instead. They never contain keys, passphrases or tokens.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: something the caller asked for cannot be done; the text explains why."""


class NotFound(StorageError):
    """The person, certificate or row asked about does not exist."""


class InvalidTransition(StorageError):
    """The requested state change is not allowed from the current state."""


class UsernameTaken(StorageError):
    """Another person already has (or had) this MQTT username, compared case-insensitively."""
