"""The certificate identity the bot uses as the dynsec admin.

Why: the bot reaches the plugin with a client certificate from its own CA, so it can issue
and renew that identity itself; renewal must happen before expiry or a CA change silently
breaks every kick.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from bot.core.clock import utcnow
from pki.bundle import private_key_pem
from pki.files import write_private_file, write_public_file
from pki.identity import same_public_key
from pki.keys import generate_private_key
from pki.names import validate_username

if TYPE_CHECKING:
    from pki.authority import CertificateAuthority

ADMIN_CERT_NAME = "broker-admin.crt"
ADMIN_KEY_NAME = "broker-admin.key"
ADMIN_RENEW_BEFORE = timedelta(days=30)


def ensure_admin_identity(
    ca: CertificateAuthority, data_dir: Path, common_name: str, *, days: int = 825
) -> tuple[Path, Path]:
    """Return (cert, key) for the dynsec admin, issuing a fresh pair when needed.

    Re-issued when missing, unreadable, for another CN, expiring within 30 days, or not signed
    by ``ca`` (the CA was replaced). Blocking (RSA key generation): call it in a thread.
    """
    common_name = validate_username(common_name)
    data_dir = Path(data_dir)
    cert_path, key_path = data_dir / ADMIN_CERT_NAME, data_dir / ADMIN_KEY_NAME
    if _admin_identity_usable(ca, cert_path, key_path, common_name):
        return cert_path, key_path
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_private_key("rsa2048")
    certificate = ca.issue_client(common_name, key, days=days)
    # Key first: a certificate without its key is useless.
    write_private_file(key_path, private_key_pem(key))
    write_public_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _admin_identity_usable(
    ca: CertificateAuthority, cert_path: Path, key_path: Path, common_name: str
) -> bool:
    try:
        if key_path.stat().st_mode & 0o077:
            return False  # someone loosened the key's mode: replace it rather than use it
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate.verify_directly_issued_by(ca.certificate)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    if not same_public_key(certificate, key):
        return False
    if certificate_cn(cert_path) != common_name:
        return False
    return certificate.not_valid_after_utc - utcnow() > ADMIN_RENEW_BEFORE


def certificate_cn(path: Path) -> str | None:
    """The CN of a PEM certificate file, or None if unreadable (the kick uses it too, to never
    kick the bot's own admin identity)."""
    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None

