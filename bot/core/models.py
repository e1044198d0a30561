"""The domain's value types, as the Telegram side and the operator's tools see them.

They are defined once, with their validation, in :mod:`storage.models`; the outer rooms
import them from here so that only the core depends on the persistence layer.
"""

from storage import (
    AuditEntry,
    Certificate,
    CertStatus,
    Person,
    PersonStatus,
    Pin,
    Platform,
    ScheduledDeletion,
    StorageError,
)

__all__ = [
    "AuditEntry",
    "CertStatus",
    "Certificate",
    "Person",
    "PersonStatus",
    "Pin",
    "Platform",
    "ScheduledDeletion",
    "StorageError",
]
