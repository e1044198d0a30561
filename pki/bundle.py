"""What goes to phones: PKCS#12 bundles, their passphrases, CA pins, and checked cert uploads.

The default PKCS#12 profile is "legacy" (3DES, SHA-1 MAC) because iOS and Android's
installer reject OpenSSL 3's default AES/SHA-256 files (see /work/shared/OWNTRACKS.md).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pki.identity import fingerprint_sha256 as fingerprint_sha256  # re-exported: older import
from pki.identity import same_public_key
from pki.keys import PrivateKey, check_key_strength

Pkcs12Profile = Literal["legacy", "modern"]
# OpenSSL's own default (PKCS12_DEFAULT_ITER), what `openssl pkcs12 -export -legacy` uses.
# More rounds buy nothing here: the passphrase is random with ~99 bits of entropy, far beyond
# brute force, while 50,000 rounds cost ~0.25 s of CPU per /getcert (three KDF runs).
PKCS12_KDF_ROUNDS = 2048

# Lower-case letters and digits without look-alikes (0/o, 1/l/i): 31 symbols, typed on a
# phone keyboard without switching case; '-' between groups to keep one's place.
PASSPHRASE_ALPHABET = "".join(sorted(set("abcdefghijklmnopqrstuvwxyz23456789") - set("oli")))
PASSPHRASE_GROUPS = 5
PASSPHRASE_GROUP_LENGTH = 4
PASSPHRASE_ENTROPY_BITS: float = (
    PASSPHRASE_GROUPS * PASSPHRASE_GROUP_LENGTH * math.log2(len(PASSPHRASE_ALPHABET))
)

# An uploaded certificate is a few KiB; anything much larger is a mistake or an attack.
MAX_CERTIFICATE_UPLOAD = 64 * 1024
# Accept certificates whose start lies a little in the future (issuer clock drift).
CLOCK_SKEW = timedelta(minutes=5)
_PEM_BEGIN_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def make_passphrase() -> str:
    """Random passphrase like ``k7mx-94qa-...``; see ``PASSPHRASE_ENTROPY_BITS`` (about 99)."""
    groups = (
        "".join(secrets.choice(PASSPHRASE_ALPHABET) for _ in range(PASSPHRASE_GROUP_LENGTH))
        for _ in range(PASSPHRASE_GROUPS)
    )
    return "-".join(groups)


def _encryption(
    profile: Pkcs12Profile, passphrase: bytes
) -> serialization.KeySerializationEncryption:
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(PKCS12_KDF_ROUNDS)
    if profile == "legacy":
        return (
            builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - what the phones' importers require
            .build(passphrase)
        )
    if profile == "modern":
        return (
            builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(passphrase)
        )
    raise ValueError(f"Unknown PKCS#12 profile {profile!r}; use 'legacy' or 'modern'.")


def pkcs12_bundle(
    certificate: x509.Certificate,
    private_key: PrivateKey,
    ca_certificates: Sequence[x509.Certificate],
    *,
    friendly_name: str,
    passphrase: str,
    profile: Pkcs12Profile = "legacy",
) -> bytes:
    """PKCS#12 with the client cert, its key and the CA chain, always passphrase-protected.

    iOS and Android's old importer refuse a PKCS#12 without a passphrase, so none is made.
    """
    if not passphrase:
        raise ValueError("A PKCS#12 bundle needs a non-empty passphrase.")
    key = check_key_strength(private_key)
    if not same_public_key(certificate, key):
        raise ValueError("The private key does not belong to the certificate.")
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"),
        key,
        certificate,
        list(ca_certificates),
        _encryption(profile, passphrase.encode("utf-8")),
    )


def pin_der(certificate: x509.Certificate) -> bytes:
    """DER bytes of a certificate: the content of an OwnTracks ``.otre`` pin file."""
    return certificate.public_bytes(serialization.Encoding.DER)


def private_key_pem(private_key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM, for files written with ``write_private_file`` (0600)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertificateRejected(ValueError):
    """An uploaded certificate is unusable; the message is meant for people."""


def _looks_like_der_private_key(data: bytes) -> bool:
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:
        return True  # encrypted PKCS#8: a private key all the same
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _parse_single_certificate(data: bytes) -> x509.Certificate:
    if b"-----BEGIN" in data:
        labels = _PEM_BEGIN_RE.findall(data)
        if any(b"PRIVATE KEY" in label for label in labels):
            raise CertificateRejected(
                "This file contains a private key. Never send private keys; "
                "send only the certificate."
            )
        if len(labels) > 1:
            raise CertificateRejected(
                "This file contains several PEM blocks (a chain?); send exactly one certificate."
            )
        if labels != [b"CERTIFICATE"]:
            raise CertificateRejected("This is not a PEM certificate.")
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError:
            raise CertificateRejected("This PEM certificate could not be read.") from None
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        pass
    if _looks_like_der_private_key(data):
        raise CertificateRejected(
            "This file contains a private key. Never send private keys; send only the certificate."
        )
    raise CertificateRejected("This is not a certificate (expected one PEM or DER certificate).")


def load_certificate(
    data: bytes, *, require_ca: bool = False, now: datetime | None = None
) -> x509.Certificate:
    """Parse exactly one PEM or DER certificate from untrusted bytes, or raise
    :class:`CertificateRejected` (garbage, private keys, chains, oversized, expired, non-CA).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CertificateRejected("Expected the bytes of a certificate file.")
    data = bytes(data)
    if len(data) > MAX_CERTIFICATE_UPLOAD:
        raise CertificateRejected(
            f"This file is too large for a certificate ({len(data)} bytes; "
            f"at most {MAX_CERTIFICATE_UPLOAD})."
        )
    if not data.strip():
        raise CertificateRejected("This file is empty.")
    certificate = _parse_single_certificate(data)
    now = now or datetime.now(UTC)
    try:
        if certificate.not_valid_after_utc < now:
            raise CertificateRejected(
                f"This certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}."
            )
        if certificate.not_valid_before_utc > now + CLOCK_SKEW:
            raise CertificateRejected(
                f"This certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d}."
            )
        if require_ca and not _is_ca(certificate):
            raise CertificateRejected(
                "This is not a CA certificate (basicConstraints CA:TRUE missing)."
            )
    except CertificateRejected:
        raise
    except ValueError:  # malformed extensions are parsed lazily
        raise CertificateRejected("This certificate has malformed extensions.") from None
    return certificate


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign
