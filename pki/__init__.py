"""Pure, synchronous crypto for owntracks-cert-bot (no Telegram, no SQL; I/O only in writers)."""

from pki.authority import CAError, CertificateAuthority, InsecureKeyFile
from pki.bundle import (
    PASSPHRASE_ALPHABET,
    PASSPHRASE_ENTROPY_BITS,
    CertificateRejected,
    Pkcs12Profile,
    load_certificate,
    make_passphrase,
    pin_der,
    pkcs12_bundle,
    private_key_pem,
)
from pki.crl import CRLError, RevokedEntry, build_crl, verify_crl, write_crl
from pki.files import write_private_file, write_public_file
from pki.identity import fingerprint_sha256, public_key_der, same_public_key
from pki.keys import CAKeyType, ClientKeyType, PrivateKey, generate_private_key
from pki.names import InvalidName, validate_device, validate_username

__all__ = [
    "PASSPHRASE_ALPHABET",
    "PASSPHRASE_ENTROPY_BITS",
    "CAError",
    "CAKeyType",
    "CRLError",
    "CertificateAuthority",
    "CertificateRejected",
    "ClientKeyType",
    "InsecureKeyFile",
    "InvalidName",
    "Pkcs12Profile",
    "PrivateKey",
    "RevokedEntry",
    "build_crl",
    "fingerprint_sha256",
    "generate_private_key",
    "load_certificate",
    "make_passphrase",
    "pin_der",
    "pkcs12_bundle",
    "private_key_pem",
    "public_key_der",
    "same_public_key",
    "validate_device",
    "validate_username",
    "verify_crl",
    "write_crl",
    "write_private_file",
    "write_public_file",
]
