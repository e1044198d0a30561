"""The bot's own certificates (broker-server, broker-admin) and revoking any certificate by
serial: recorded like people's, so every certificate the CA signs can be listed and revoked.

Why apart from :mod:`bot.core.service`: these use cases serve the operator's shell and the
start-up, not chat; they share the service's repository, CA and CRL publisher.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from bot.broker.admin_identity import (
    ADMIN_CERT_NAME,
    forget_replaced_admin_certificates,
    replaced_admin_certificates,
)
from bot.core.errors import NotAllowed, UserError
from bot.core.results import CrlReport
from bot.core.service import Service
from bot.texts import certs as texts
from bot.texts import errors as error_texts
from pki.identity import fingerprint_sha256
from storage import (
    BROKER_ADMIN,
    BROKER_SERVER,
    OPERATOR_ID,
    CertStatus,
    ServiceCertificate,
)

_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGITS = re.compile(r"[0-9]+")


def serial_candidates(text: str) -> list[str]:
    """The canonical hex serials ``text`` may mean: hex with colons is hex; plain digits may
    be hex or decimal (both are tried); anything else is refused."""
    raw = text.strip()
    if raw.lower().startswith("0x"):
        raw = raw[2:]
    plain = raw.replace(":", "")
    if not plain or not _HEX.fullmatch(plain) or (":" in raw and "" in raw.split(":")):
        raise UserError(texts.BAD_SERIAL, serial=text)
    as_hex = plain.lower().lstrip("0") or "0"
    if ":" in raw or not _DIGITS.fullmatch(plain):
        return [as_hex]
    as_decimal = format(int(plain), "x")
    return [as_hex] if as_decimal == as_hex else [as_hex, as_decimal]


def subject_of(cert: x509.Certificate) -> str:
    """The CN, else the DNS names and IPs (a server certificate), else the whole subject."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        return str(names[0].value)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return cert.subject.rfc4514_string()
    return ",".join(str(n.value) for n in san)


def _record(
    cert: x509.Certificate, purpose: str, now: datetime, status: CertStatus = CertStatus.ACTIVE,
    *, issuer: str | None = None,
) -> ServiceCertificate:
    return ServiceCertificate(
        serial=format(cert.serial_number, "x"), purpose=purpose, subject=subject_of(cert),
        fingerprint_sha256=fingerprint_sha256(cert), not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc, issued_at=min(now, cert.not_valid_after_utc),
        status=status, revoked_at=None if status is CertStatus.ACTIVE else now,
        revocation_reason=None if status is CertStatus.ACTIVE else "superseded",
        issuer=issuer,
    )


def issuer_of(service: Service, cert: x509.Certificate) -> str | None:
    """The fingerprint of the accepted CA (during a rotation: old or next) that signed
    ``cert``, or None when none of them did."""
    for ca in service.crl.authorities.accepted:
        try:
            cert.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca.fingerprint_sha256
    return None


async def record_admin_identity(service: Service, data_dir: Path) -> int:
    """Record the broker-admin certificate on disk and every one it replaced; the replaced
    ones (and any other active broker-admin record) are superseded. Returns how many ended."""
    now = utc_now(service)
    ended = 0
    for old in await asyncio.to_thread(replaced_admin_certificates, data_dir):
        if (issuer := issuer_of(service, old)) is not None:
            superseded = _record(old, BROKER_ADMIN, now, CertStatus.SUPERSEDED, issuer=issuer)
            ended += await service.repo.record_service_certificate(superseded)
    try:
        current = x509.load_pem_x509_certificate((data_dir / ADMIN_CERT_NAME).read_bytes())
    except (OSError, ValueError):
        current = None
    issuer = None if current is None else issuer_of(service, current)
    if current is not None and issuer is not None:
        record = _record(current, BROKER_ADMIN, now, issuer=issuer)
        await service.repo.record_service_certificate(record)
        ended += len(await service.repo.supersede_service_certificates(
            BROKER_ADMIN, keep=record.serial))
    forget_replaced_admin_certificates(data_dir)
    return ended


async def record_server_certificate(
    service: Service, cert: x509.Certificate, replaced: x509.Certificate | None
) -> CrlReport | None:
    """Record a new broker-server certificate; the one it replaced (same files) is
    superseded and the CRL rewritten. Other server certificates (other hosts) stay."""
    now = utc_now(service)
    await service.repo.record_service_certificate(
        _record(cert, BROKER_SERVER, now, issuer=issuer_of(service, cert)), by=OPERATOR_ID
    )
    old_issuer = None if replaced is None else issuer_of(service, replaced)
    if replaced is None or old_issuer is None:
        return None
    old = _record(replaced, BROKER_SERVER, now, CertStatus.SUPERSEDED, issuer=old_issuer)
    if not await service.repo.record_service_certificate(old, by=OPERATOR_ID):
        return None
    return await service.refresh_crl()


def utc_now(service: Service) -> datetime:
    return service._clock()


@dataclass(frozen=True)
class SerialRevocation:
    serial: str
    owner: str  # a person's MQTT username, or the purpose of the bot's own certificate
    device: str
    crl: CrlReport


async def revoke_serial(
    service: Service, actor_id: int | None, serial: str, reason: str | None
) -> SerialRevocation:
    """Revoke one certificate by serial, a person's or the bot's own; then the CRL."""
    if actor_id is not None and not service.is_admin(actor_id):
        raise NotAllowed(error_texts.ONLY_ADMINS)
    by = actor_id or OPERATOR_ID
    why = (reason or "").strip()[:500] or "revoked"
    found: list[tuple[str, object]] = []
    for candidate in serial_candidates(serial):
        person_cert = await service.repo.get_certificate(candidate)
        if person_cert is not None:
            found.append((candidate, person_cert))
        own = await service.repo.get_service_certificate(candidate)
        if own is not None:
            found.append((candidate, own))
    if not found:
        raise UserError(texts.UNKNOWN_SERIAL, serial=serial)
    if len({key for key, _ in found}) > 1:
        hex_form, decimal_form = serial_candidates(serial)
        raise UserError(texts.AMBIGUOUS_SERIAL, serial=serial, hex=hex_form, decimal=decimal_form)
    key, cert = found[0]
    status = getattr(cert, "status", None)
    if status is not CertStatus.ACTIVE:
        raise UserError(texts.NOT_ACTIVE, serial=key, status=getattr(status, "value", status))
    if isinstance(cert, ServiceCertificate):
        await service.repo.revoke_service_certificate(key, by=by, reason=why)
        report = await service.refresh_crl()
        return SerialRevocation(key, cert.purpose, cert.subject, report)
    revoked = await service.repo.revoke_certificate(key, by=by, reason=why)
    report = await service.refresh_crl(kick_username=revoked.mqtt_username)
    return SerialRevocation(key, revoked.mqtt_username, revoked.device, report)


@dataclass(frozen=True)
class InventoryRow:
    serial: str
    owner: str
    device: str
    not_before: datetime
    not_after: datetime
    status: str


async def certificate_inventory(service: Service, *, include_all: bool) -> list[InventoryRow]:
    """Every certificate the bot knows (``include_all``) or only the working ones."""
    now = utc_now(service)
    await service.repo.mark_expired(now)
    rows = [
        InventoryRow(c.serial, c.mqtt_username, c.device, c.not_before, c.not_after,
                     c.status.value)
        for c in await service.repo.all_certificates(active_only=not include_all)
    ]
    for own in await service.repo.service_certificates(active_only=False):
        status = own.status.value
        if own.status is CertStatus.ACTIVE and own.not_after <= now:
            status = CertStatus.EXPIRED.value
        if include_all or status == CertStatus.ACTIVE.value:
            rows.append(InventoryRow(own.serial, own.purpose, own.subject, own.not_before,
                                     own.not_after, status))
    return sorted(rows, key=lambda r: (r.not_before, r.serial))
