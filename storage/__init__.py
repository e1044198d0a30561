"""Persistence for owntracks-cert-bot: one SQLite file, pydantic models at the boundary."""

from storage._lifecycle import DueReminder, ExpiringCertificate
from storage._service_certificates import (
    BROKER_ADMIN,
    BROKER_SERVER,
    ServiceCertificate,
)
from storage.db import SCHEMA_VERSION, Database, restore_database
from storage.errors import InvalidTransition, NotFound, StorageError, UsernameTaken
from storage.models import (
    OPERATOR_ID,
    AuditEntry,
    Certificate,
    CertStatus,
    Person,
    PersonStatus,
    Pin,
    Platform,
    RevokedSerial,
    ScheduledDeletion,
)
from storage.repo import Repository

__all__ = [
    "BROKER_ADMIN",
    "BROKER_SERVER",
    "OPERATOR_ID",
    "SCHEMA_VERSION",
    "AuditEntry",
    "CertStatus",
    "Certificate",
    "Database",
    "DueReminder",
    "ExpiringCertificate",
    "InvalidTransition",
    "NotFound",
    "Person",
    "PersonStatus",
    "Pin",
    "Platform",
    "Repository",
    "RevokedSerial",
    "ScheduledDeletion",
    "ServiceCertificate",
    "StorageError",
    "UsernameTaken",
    "restore_database",
]
