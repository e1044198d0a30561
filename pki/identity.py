"""How a certificate or key is recognised: its SHA-256 fingerprint, its public key, and the
authority key identifier it stamps on what it signs.

The CA, the bundle writer, the CRL, the broker's admin identity, the CLI, doctor and the backup
archive all ask these questions; they must get the same answer, so each is answered here once.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "HasPublicKey",
    "authority_key_identifier",
    "fingerprint_sha256",
    "public_key_der",
    "same_public_key",
]

# Keys that may sign certificates (what AuthorityKeyIdentifier.from_issuer_public_key takes).
_ISSUER_KEYS = (
    rsa.RSAPublicKey, ec.EllipticCurvePublicKey, dsa.DSAPublicKey,
    ed25519.Ed25519PublicKey, ed448.Ed448PublicKey,
)


class HasPublicKey(Protocol):
    """A certificate or a private key: anything that carries a public key."""

    def public_key(self) -> PublicKeyTypes: ...


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint as ``AB:CD:...`` (the form openssl and phones display)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def public_key_der(holder: HasPublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate's or private key's public key."""
    return holder.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_public_key(first: HasPublicKey, second: HasPublicKey) -> bool:
    """Whether two certificates or keys carry the same public key (a key and its certificate;
    two certificates of one CA key)."""
    return public_key_der(first) == public_key_der(second)


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI for what ``issuer`` signs: its own subject key identifier when it has one
    (what verifiers match against), else one derived from its public key.

    Raises ``ValueError`` for a public key that cannot sign certificates.
    """
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        key = issuer.public_key()
        if not isinstance(key, _ISSUER_KEYS):
            raise ValueError("The issuer certificate has an unsupported key type.") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
