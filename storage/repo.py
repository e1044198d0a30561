"""The repository: every query the bot needs, with each state change and its audit row in one
transaction. Split by topic into private modules; this class is the one public entry point."""

from __future__ import annotations

from storage._certificates import CertificateRepository
from storage._housekeeping import HousekeepingRepository
from storage._issuers import IssuerRepository
from storage._languages import LanguageRepository
from storage._lifecycle import LifecycleRepository
from storage._people import PeopleRepository
from storage._service_certificates import ServiceCertificateRepository

__all__ = ["Repository"]


class Repository(
    PeopleRepository,
    CertificateRepository,
    HousekeepingRepository,
    LanguageRepository,
    LifecycleRepository,
    ServiceCertificateRepository,
    IssuerRepository,
):
    """``Repository(db)``; an optional ``clock=`` (returning aware datetimes) serves tests."""
