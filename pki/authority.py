"""The certificate authority: create a new one or adopt an existing one, and issue certificates.

Adopting matters: operators who followed the OwnTracks booklet already have a ``ca.crt`` and an
unencrypted ``ca.key`` from ``generate-CA.sh`` (SHA-512, no keyUsage) and phones that trust it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.files import write_private_file, write_public_file
from pki.identity import authority_key_identifier, fingerprint_sha256, same_public_key
from pki.keys import (
    CAKeyType,
    ClientKeyType,
    PrivateKey,
    check_key_strength,
    generate_ca_key,
    generate_private_key,
)
from pki.names import validate_username

# Clocks on phones and brokers drift; a certificate valid "from now" can look not-yet-valid.
BACKDATE = timedelta(minutes=5)
# Apple refuses TLS server certificates valid for longer than this.
MAX_SERVER_DAYS = 825
_SIGNATURE_HASH = hashes.SHA256()
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DNS_RE = re.compile(rf"(\*\.)?({_LABEL}\.)*{_LABEL}")


class CAError(Exception):
    """The CA cannot be created, loaded or used; the message is meant for people."""


class InsecureKeyFile(CAError):
    """The CA key file is readable by group or others."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _public_key(certificate: x509.Certificate) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CAError("The CA certificate has an unsupported key type (use RSA or EC).")
    return key


def _check_is_ca(certificate: x509.Certificate) -> None:
    """Refuse a certificate that cannot sign client certificates and CRLs."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise CAError(
            "The CA certificate has no basicConstraints CA:TRUE: it is not a CA certificate."
        ) from None
    if not constraints.ca:
        raise CAError("The given certificate is not a CA certificate (basicConstraints CA:FALSE).")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # generate-CA.sh CAs have no keyUsage: every use is allowed
    if not (usage.key_cert_sign and usage.crl_sign):
        raise CAError("The CA certificate's keyUsage does not allow signing certificates and CRLs.")


def _load_key(key_pem: bytes, passphrase: bytes | None) -> PrivateKey:
    if passphrase == b"":
        raise CAError("The CA key passphrase is empty; unset it or give a real passphrase.")
    try:
        key = serialization.load_pem_private_key(key_pem, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise CAError(
                "The CA key is encrypted: set OTCERT_CA_KEY_PASSPHRASE (or _FILE)."
            ) from None
        # A passphrase was configured but the key (e.g. from generate-CA.sh) is not encrypted.
        # Accept it: the key is usable, and save() encrypts it from then on.
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in key_pem:
            raise CAError("The CA key could not be decrypted: wrong passphrase.") from None
        raise CAError("The CA key file is not a readable PEM private key.") from None
    try:
        return check_key_strength(key)
    except ValueError as exc:
        raise CAError(f"The CA key cannot be used: {exc}") from None


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate with its private key; verified to match and to be a CA."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def __post_init__(self) -> None:
        _check_is_ca(self.certificate)
        _public_key(self.certificate)  # an unsupported key type is refused with a clear message
        if not same_public_key(self.certificate, self.private_key):
            raise CAError("The CA key does not belong to the CA certificate.")

    # ---- creating and loading ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        common_name: str = "OwnTracks cert bot CA",
        *,
        key_type: CAKeyType = "rsa4096",
        days: int = 3650,
    ) -> CertificateAuthority:
        """A new self-signed CA that may only sign end-entity certificates (pathlen 0)."""
        if not common_name or len(common_name) > 64:
            raise CAError("The CA name must be 1 to 64 characters.")
        if days < 1:
            raise CAError("The CA lifetime must be at least one day.")
        key = generate_ca_key(key_type)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _utcnow()
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False
            )
            .sign(key, _SIGNATURE_HASH)
        )
        return cls(certificate, key)

    @classmethod
    def from_pem(
        cls, cert_pem: bytes, key_pem: bytes, passphrase: bytes | None = None
    ) -> CertificateAuthority:
        """Adopt a CA from PEM bytes (checks: key decrypts, matches the cert, cert is a CA)."""
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise CAError("The CA certificate is not a readable PEM certificate.") from None
        return cls(certificate, _load_key(key_pem, passphrase))

    @classmethod
    def load(
        cls, cert_path: Path, key_path: Path, passphrase: bytes | None = None
    ) -> CertificateAuthority:
        """Adopt a CA from files; refuses a key file that group or others can read."""
        cert_path, key_path = Path(cert_path), Path(key_path)
        try:
            key_stat = os.stat(key_path)
            if key_stat.st_mode & 0o077:
                raise InsecureKeyFile(
                    f"The CA key file {key_path} is readable by others "
                    f"(mode {stat.S_IMODE(key_stat.st_mode):04o}); run: chmod 600 {key_path}"
                )
            key_pem = key_path.read_bytes()
            cert_pem = cert_path.read_bytes()
        except OSError as exc:
            raise CAError(f"Cannot read the CA files: {exc.strerror} ({exc.filename}).") from None
        return cls.from_pem(cert_pem, key_pem, passphrase)

    def save(self, cert_path: Path, key_path: Path, passphrase: bytes | None = None) -> None:
        """Write the key (0600, encrypted when a passphrase is given) first, then the cert."""
        if passphrase == b"":
            raise CAError("The CA key passphrase is empty; unset it or give a real passphrase.")
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase is not None
            else serialization.NoEncryption()
        )
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        write_private_file(Path(key_path), key_pem)
        write_public_file(Path(cert_path), self.cert_pem)

    # ---- views ---------------------------------------------------------------------------

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint_sha256(self) -> str:
        """Upper-case hex pairs joined by ':' (what people compare on screens)."""
        return fingerprint_sha256(self.certificate)

    # ---- issuing -------------------------------------------------------------------------

    def _validity(self, days: int, now: datetime | None) -> tuple[datetime, datetime]:
        if days < 1:
            raise CAError("A certificate must be valid for at least one day.")
        now = now or _utcnow()
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        ca_end = self.certificate.not_valid_after_utc
        not_after = min(now + timedelta(days=days), ca_end)
        if not_after <= now:
            raise CAError(
                f"The CA certificate expired on {ca_end:%Y-%m-%d}; create or adopt a new CA."
            )
        return now - BACKDATE, not_after

    def _builder(
        self, subject: x509.Name, public_key: object, days: int, now: datetime | None
    ) -> x509.CertificateBuilder:
        not_before, not_after = self._validity(days, now)
        if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise ValueError("Unsupported public key type.")
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(authority_key_identifier(self.certificate), critical=False)
        )

    def issue_client(
        self,
        username: str,
        private_key: PrivateKey,
        *,
        days: int = 365,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """Client certificate whose only subject attribute is CN=<username> (the MQTT username).

        Raises ``InvalidName`` for a username the broker would misread.
        """
        canonical = validate_username(username)
        key = check_key_strength(private_key)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, canonical)])
        builder = (
            self._builder(subject, key.public_key(), days, now)
            .add_extension(_end_entity_key_usage(key), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        return builder.sign(self.private_key, _SIGNATURE_HASH)

    def issue_server(
        self,
        hosts: Sequence[str],
        ips: Sequence[str] = (),
        *,
        days: int = MAX_SERVER_DAYS,
        key_type: ClientKeyType = "rsa2048",
    ) -> tuple[x509.Certificate, PrivateKey]:
        """Broker certificate with DNS and IP SANs; at most 825 days (Apple's limit)."""
        if days > MAX_SERVER_DAYS:
            raise CAError(f"A server certificate may be valid for at most {MAX_SERVER_DAYS} days.")
        if isinstance(hosts, str) or isinstance(ips, str):
            raise TypeError("hosts and ips are sequences of strings, not a single string")
        names: list[x509.GeneralName] = []
        for host in hosts:
            lowered = host.strip().lower().rstrip(".")
            if len(lowered) > 253 or not _DNS_RE.fullmatch(lowered):
                raise CAError(f"{host!r} is not a valid DNS name.")
            names.append(x509.DNSName(lowered))
        for ip in ips:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(ip.strip())))
            except ValueError:
                raise CAError(f"{ip!r} is not a valid IP address.") from None
        if not names:
            raise CAError("A server certificate needs at least one host name or IP address.")
        first = names[0].value
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(first))])
        key = generate_private_key(key_type)
        certificate = (
            self._builder(subject, key.public_key(), days, None)
            .add_extension(_end_entity_key_usage(key), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self.private_key, _SIGNATURE_HASH)
        )
        return certificate, key


def _end_entity_key_usage(key: PrivateKey) -> x509.KeyUsage:
    """digitalSignature + keyEncipherment for RSA; EC keys must not assert keyEncipherment
    (RFC 5480 section 3), so they get digitalSignature only."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
