"""The certificate identity the bot uses as the dynsec admin.

Why: the bot reaches the plugin with a client certificate from its own CA, so it can issue
and renew that identity itself; renewal must happen before expiry or a CA change silently
breaks every kick.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from bot.core.clock import utcnow
from pki.bundle import private_key_pem
from pki.files import write_private_file, write_public_file
from pki.identity import same_public_key
from pki.keys import PrivateKey, generate_private_key
from pki.names import validate_username

if TYPE_CHECKING:
    from pki.authority import CertificateAuthority

ADMIN_CERT_NAME = "broker-admin.crt"
ADMIN_KEY_NAME = "broker-admin.key"
ADMIN_REPLACED_NAME = "broker-admin.replaced.pem"
ADMIN_RENEW_BEFORE = timedelta(days=30)


def ensure_admin_identity(
    ca: CertificateAuthority,
    data_dir: Path,
    common_name: str,
    *,
    days: int = 825,
    passphrase: bytes | None = None,
) -> tuple[Path, Path]:
    """Return (cert, key) for the dynsec admin, issuing a fresh pair when needed.

    Re-issued when missing, unreadable, for another CN, expiring within 30 days, or not signed
    by ``ca`` (the CA was replaced). The key is encrypted with ``passphrase`` (the CA key's)
    when given. A replaced certificate of ``ca`` is appended to ``broker-admin.replaced.pem``,
    which the service records as superseded (so the CRL lists it) and then removes: a crash in
    between costs nothing. Blocking (RSA key generation): call it in a thread.
    """
    common_name = validate_username(common_name)
    data_dir = Path(data_dir)
    cert_path, key_path = data_dir / ADMIN_CERT_NAME, data_dir / ADMIN_KEY_NAME
    usable = _admin_identity_usable(ca, cert_path, key_path, common_name, passphrase)
    if usable is not None:
        if passphrase is not None and b"ENCRYPTED" not in key_path.read_bytes():
            write_private_file(key_path, _key_pem(usable, passphrase))  # encrypt it now
        return cert_path, key_path
    data_dir.mkdir(parents=True, exist_ok=True)
    _remember_replaced(ca, cert_path, data_dir / ADMIN_REPLACED_NAME)
    key = generate_private_key("rsa2048")
    certificate = ca.issue_client(common_name, key, days=days)
    # Key first: a certificate without its key is useless.
    write_private_file(key_path, _key_pem(key, passphrase))
    write_public_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _key_pem(key: PrivateKey, passphrase: bytes | None) -> bytes:
    if passphrase is None:
        return private_key_pem(key)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def _remember_replaced(ca: CertificateAuthority, cert_path: Path, replaced: Path) -> None:
    """Keep the certificate about to be replaced, if ``ca`` signed it (only then can its CRL
    list it)."""
    try:
        pem = cert_path.read_bytes()
        x509.load_pem_x509_certificate(pem).verify_directly_issued_by(ca.certificate)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return
    with replaced.open("ab") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def _admin_identity_usable(
    ca: CertificateAuthority,
    cert_path: Path,
    key_path: Path,
    common_name: str,
    passphrase: bytes | None,
) -> PrivateKey | None:
    """The identity's key when the pair may be kept, else None."""
    try:
        if key_path.stat().st_mode & 0o077:
            return None  # someone loosened the key's mode: replace it rather than use it
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key_pem = key_path.read_bytes()
        encrypted = b"ENCRYPTED" in key_pem
        key = serialization.load_pem_private_key(key_pem, passphrase if encrypted else None)
        certificate.verify_directly_issued_by(ca.certificate)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return None
    if not same_public_key(certificate, key):
        return None
    if certificate_cn(cert_path) != common_name:
        return None
    if certificate.not_valid_after_utc - utcnow() <= ADMIN_RENEW_BEFORE:
        return None
    return key


def replaced_admin_certificates(data_dir: Path) -> list[x509.Certificate]:
    """The admin certificates replaced since the service last recorded them."""
    try:
        return x509.load_pem_x509_certificates((Path(data_dir) / ADMIN_REPLACED_NAME).read_bytes())
    except (OSError, ValueError):
        return []


def forget_replaced_admin_certificates(data_dir: Path) -> None:
    (Path(data_dir) / ADMIN_REPLACED_NAME).unlink(missing_ok=True)


def certificate_cn(path: Path) -> str | None:
    """The CN of a PEM certificate file, or None if unreadable (the kick uses it too, to never
    kick the bot's own admin identity)."""
    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None

