"""Certificate revocation lists for Mosquitto's ``crlfile``.

Mosquitto 2.0.11 silently drops revocation checks when SIGHUP finds a missing or broken
CRL, and refuses every client once a CRL is past nextUpdate. So a CRL is verified on disk
before it replaces the old one, and every CRL is built with a generous nextUpdate.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.authority import BACKDATE, CertificateAuthority
from pki.files import PUBLIC_MODE, atomic_write

DEFAULT_VALIDITY = timedelta(days=30)
REVOKED_CACHE_SIZE = 262_144


class CRLError(Exception):
    """A CRL could not be built, verified or written; the message is meant for people."""


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate: its serial, when it was revoked and (optionally) why."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None


def _revoked(entry: RevokedEntry) -> x509.RevokedCertificate:
    if entry.serial <= 0:
        raise CRLError(f"Serial numbers are positive; got {entry.serial}.")
    if entry.revoked_at.tzinfo is None:
        raise CRLError("Revocation times must be timezone-aware.")
    return _revoked_entry(entry.serial, entry.revoked_at, entry.reason)


@functools.lru_cache(maxsize=REVOKED_CACHE_SIZE)
def _revoked_entry(
    serial: int, revoked_at: datetime, reason: x509.ReasonFlags | None
) -> x509.RevokedCertificate:
    """Entries never change once revoked, and every revocation rebuilds the whole CRL:
    building each entry once per process halves the rebuild time at 100,000 entries."""
    extensions: list[x509.Extension[x509.ExtensionType]] = []
    # RFC 5280: 'unspecified' should be expressed by leaving the reason out.
    if reason is not None and reason != x509.ReasonFlags.unspecified:
        crl_reason = x509.CRLReason(reason)
        extensions.append(x509.Extension(crl_reason.oid, False, crl_reason))
    # The constructor (not add_extension) avoids copying per call: 100k entries stay fast.
    return x509.RevokedCertificateBuilder(serial, revoked_at, extensions).build()


def build_crl(
    ca: CertificateAuthority,
    entries: Iterable[RevokedEntry],
    *,
    crl_number: int,
    validity: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing ``entries`` (one per serial; the earliest time wins)."""
    if crl_number < 0:
        raise CRLError("The CRL number must not be negative.")
    if validity <= timedelta(0):
        raise CRLError("The CRL validity must be positive.")
    now = now or datetime.now(UTC)
    by_serial: dict[int, RevokedEntry] = {}
    for entry in entries:
        known = by_serial.get(entry.serial)
        if known is None or entry.revoked_at < known.revoked_at:
            by_serial[entry.serial] = entry
    revoked = [_revoked(entry) for entry in by_serial.values()]
    number = x509.CRLNumber(crl_number)
    aki = _authority_key_identifier(ca.certificate)
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(number.oid, False, number),
        x509.Extension(aki.oid, False, aki),
    ]
    # add_revoked_certificate() copies the whole list per call (quadratic); build in one go.
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=ca.certificate.subject,
        last_update=now - BACKDATE,
        next_update=now + validity,
        extensions=extensions,
        revoked_certificates=revoked,
    )
    return builder.sign(ca.private_key, hashes.SHA256())


def _authority_key_identifier(certificate: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise CRLError("The CA certificate has an unsupported key type.") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def verify_crl(
    data: bytes, ca_certificate: x509.Certificate, *, now: datetime | None = None
) -> x509.CertificateRevocationList:
    """Parse a PEM CRL and check it is issued and signed by ``ca_certificate`` and current.

    A stale CRL is an error too: Mosquitto would refuse every client with it.
    """
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError:
        raise CRLError("The CRL is not a readable PEM CRL.") from None
    _check(crl, ca_certificate, now)
    return crl


def _check(
    crl: x509.CertificateRevocationList, ca_certificate: x509.Certificate, now: datetime | None
) -> None:
    if crl.issuer != ca_certificate.subject:
        raise CRLError("The CRL was issued by a different CA.")
    key = ca_certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CRLError("The CA certificate has an unsupported key type.")
    if not crl.is_signature_valid(key):
        raise CRLError("The CRL signature does not verify against the CA.")
    now = now or datetime.now(UTC)
    next_update = crl.next_update_utc
    if next_update is None or next_update <= now:
        raise CRLError("The CRL is past its nextUpdate; the broker would refuse every client.")


def write_crl(
    path: Path, crl: x509.CertificateRevocationList, ca_certificate: x509.Certificate
) -> None:
    """Atomically put ``crl`` at ``path`` (0644), only after the written temp file verifies.

    On any failure the previous file stays as it was and :class:`CRLError` is raised.
    """

    # Verify the CRL in memory (issuer, signature, nextUpdate), then require the temp file
    # to hold exactly its bytes: the file on disk is then a verified CRL, without decoding
    # and parsing 100,000 entries a second time.
    _check(crl, ca_certificate, None)
    pem = crl_pem(crl)

    def check(tmp: Path) -> None:
        if tmp.read_bytes() != pem:
            raise CRLError("The CRL file did not read back as written.")

    try:
        atomic_write(Path(path), pem, mode=PUBLIC_MODE, check=check)
    except OSError as exc:
        raise CRLError(f"Could not write the CRL to {path}: {exc.strerror}.") from None
