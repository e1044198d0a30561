"""Certificate revocation lists for Mosquitto's ``crlfile``.

Mosquitto 2.0.11 silently drops revocation checks when SIGHUP finds a missing or broken
CRL, and refuses every client once a CRL is past nextUpdate. So a CRL is verified on disk
before it replaces the old one, and every CRL is built with a generous nextUpdate.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from pki import _der
from pki.authority import BACKDATE, CertificateAuthority
from pki.files import PUBLIC_MODE, atomic_write
from pki.identity import authority_key_identifier
from pki.keys import PrivateKey

DEFAULT_VALIDITY = timedelta(days=30)
# Past this many cached entries the cache starts over (one slower build), bounding memory.
MAX_SERIAL_BITS = 159
REVOKED_CACHE_SIZE = 262_144
# RFC 5280 section 5.3.1 CRLReason; 'unspecified' (0) is expressed by leaving the reason out.
_REASON_CODES: dict[x509.ReasonFlags, int] = {
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}
_CRL_REASON_OID = _der.tlv(_der.OBJECT_IDENTIFIER, bytes((0x55, 0x1D, 0x15)))  # 2.5.29.21
# crlEntryExtensions holding one non-critical CRLReason, ready to append to an entry.
_REASON_EXTENSIONS: dict[x509.ReasonFlags | None, bytes] = {
    reason: _der.tlv(_der.SEQUENCE, _der.tlv(
        _der.SEQUENCE,
        _CRL_REASON_OID + _der.tlv(_der.OCTET_STRING, _der.tlv(_der.ENUMERATED, bytes((code,)))),
    ))
    for reason, code in _REASON_CODES.items()
}
_REASON_EXTENSIONS[None] = _REASON_EXTENSIONS[x509.ReasonFlags.unspecified] = b""
_TWO_DIGITS = [b"%02d" % number for number in range(100)]
_UTC_TIME_HEADER = _der.header(_der.UTC_TIME, 13)  # YYMMDDHHMMSSZ
_GENERALIZED_TIME_HEADER = _der.header(_der.GENERALIZED_TIME, 15)  # YYYYMMDDHHMMSSZ
# TBSCertList as cryptography builds it without entries: version, signature, issuer,
# thisUpdate, nextUpdate, [0] crlExtensions. The entries go right before the extensions.
_TIMES = (_der.UTC_TIME, _der.GENERALIZED_TIME)
_FRAME_TAGS: tuple[tuple[int, ...], ...] = (
    (_der.INTEGER,), (_der.SEQUENCE,), (_der.SEQUENCE,), _TIMES, _TIMES, (_der.CONTEXT_0,)
)

# Per serial: (revocation time, reason, DER entry). Entries never change once revoked, and
# every revocation rebuilds the whole CRL: a rebuild then joins bytes instead of encoding.
_encoded_entries: dict[int, tuple[datetime, x509.ReasonFlags | None, bytes]] = {}
# The last CRL build_crl returned and the DER it was parsed from. cryptography cannot give
# a CRL's bytes back without re-encoding every entry (public_bytes, tbs_certlist_bytes: about
# 0.3 s each at 100,000 entries); write_crl needs them to verify and to write the PEM.
_last_built: tuple[x509.CertificateRevocationList, bytes] | None = None


class CRLError(Exception):
    """A CRL could not be built, verified or written; the message is meant for people."""


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate: its serial, when it was revoked and (optionally) why."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None


def _entry_der(serial: int, revoked_at: datetime, reason: x509.ReasonFlags | None) -> bytes:
    """One revokedCertificates entry as DER, byte for byte as cryptography encodes it:
    SEQUENCE { INTEGER serial, Time revocationDate, [crlEntryExtensions with CRLReason] }.

    Written for speed (a bot start-up encodes every revoked certificate once).
    """
    if serial <= 0:
        raise CRLError(f"Serial numbers are positive; got {serial}.")
    if serial.bit_length() > MAX_SERIAL_BITS:  # RFC 5280 4.1.2.2: at most 20 octets
        raise CRLError(f"Serial numbers have at most {MAX_SERIAL_BITS} bits; got {serial:#x}.")
    utc = revoked_at
    if utc.tzinfo is not UTC:
        if utc.utcoffset() is None:
            raise CRLError("Revocation times must be timezone-aware.")
        try:
            utc = utc.astimezone(UTC)
        except OverflowError:
            raise CRLError("A revocation time is out of range.") from None
    extensions = _REASON_EXTENSIONS.get(reason)
    if extensions is None:
        raise CRLError(f"Unknown revocation reason {reason!r}.")
    year, digits = utc.year, _TWO_DIGITS
    if year < 1950:
        raise CRLError("Revocation times before 1950 cannot be put in a CRL.")
    # RFC 5280 Time: UTCTime for 1950-2049, GeneralizedTime from 2050; whole seconds, as
    # cryptography drops microseconds.
    time_header = (
        _UTC_TIME_HEADER if year < 2050 else _GENERALIZED_TIME_HEADER + digits[year // 100]
    )
    number = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # two's complement, minimal
    content = b"".join((
        _der.header(_der.INTEGER, len(number)), number,
        time_header, digits[year % 100], digits[utc.month], digits[utc.day],
        digits[utc.hour], digits[utc.minute], digits[utc.second], b"Z",
        extensions,
    ))
    return _der.header(_der.SEQUENCE, len(content)) + content


def _encoded(entries: Iterable[RevokedEntry]) -> list[bytes]:
    """The DER of each serial's earliest entry, in first-seen order.

    One pass over the entries, since this runs on every revocation: an entry's bytes come
    from the cache when its time and reason are unchanged since the last build.
    """
    cache = _encoded_entries
    if len(cache) > REVOKED_CACHE_SIZE:  # mostly serials no longer listed (expired)
        cache.clear()
    chosen: dict[int, tuple[datetime, x509.ReasonFlags | None, bytes]] = {}
    for entry in entries:
        serial, revoked_at, reason = entry.serial, entry.revoked_at, entry.reason
        hit = cache.get(serial)
        if hit is None or hit[0] != revoked_at or hit[1] is not reason:
            hit = cache[serial] = (revoked_at, reason, _entry_der(serial, revoked_at, reason))
        known = chosen.setdefault(serial, hit)
        # A serial listed twice: the earliest revocation wins (both times are aware here).
        if known is not hit and revoked_at < known[0]:
            chosen[serial] = hit
    return [hit[2] for hit in chosen.values()]


def build_crl(
    ca: CertificateAuthority,
    entries: Iterable[RevokedEntry],
    *,
    crl_number: int,
    validity: timedelta = DEFAULT_VALIDITY,
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing ``entries`` (one per serial; the earliest time wins).

    cryptography builds and signs the same CRL without entries (the frame: issuer, times,
    extensions, algorithm); the cached DER entries are spliced into its TBS, which is then
    signed the same way. tests/test_crl_der.py checks the bytes equal cryptography's own.
    """
    global _last_built
    if crl_number < 0:
        raise CRLError("The CRL number must not be negative.")
    if validity <= timedelta(0):
        raise CRLError("The CRL validity must be positive.")
    now = now or datetime.now(UTC)
    revoked = _encoded(entries)
    frame = _frame(ca, crl_number, now - BACKDATE, now + validity)
    head, tail, algorithm = _split_frame(frame)
    body = b"".join(revoked)
    # RFC 5280 and cryptography leave revokedCertificates out entirely when it is empty.
    listed = [_der.header(_der.SEQUENCE, len(body)), body] if revoked else []
    tbs_parts = [head, *listed, tail]
    tbs = b"".join([_der.header(_der.SEQUENCE, sum(map(len, tbs_parts))), *tbs_parts])
    signature = _der.tlv(_der.BIT_STRING, b"\x00" + _sign(ca.private_key, tbs, frame))
    outer_length = len(tbs) + len(algorithm) + len(signature)
    der = b"".join([_der.header(_der.SEQUENCE, outer_length), tbs, algorithm, signature])
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        raise CRLError("The CRL built does not parse; nothing was written.") from None
    # The parse has counted the entries already, so this costs nothing (crl[-1] would take
    # 25 ms at 100,000: it builds every entry). A splice gone wrong shows here, not at the broker.
    if len(crl) != len(revoked):
        raise CRLError("The CRL built does not list every revoked certificate.")
    _last_built = (crl, der)
    return crl


def _frame(
    ca: CertificateAuthority, crl_number: int, last_update: datetime, next_update: datetime
) -> x509.CertificateRevocationList:
    """The CRL without entries, so names, times and extensions are encoded by cryptography."""
    number = x509.CRLNumber(crl_number)
    aki = authority_key_identifier(ca.certificate)
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(number.oid, False, number),
        x509.Extension(aki.oid, False, aki),
    ]
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=ca.certificate.subject,
        last_update=last_update,
        next_update=next_update,
        extensions=extensions,
    )
    return builder.sign(ca.private_key, hashes.SHA256())


def _split_frame(frame: x509.CertificateRevocationList) -> tuple[bytes, bytes, bytes]:
    """(TBS content up to nextUpdate, the [0] crlExtensions, outer signatureAlgorithm)."""
    der = frame.public_bytes(serialization.Encoding.DER)
    try:
        tbs, algorithm, _ = _der.children(der, *_der.read(der)[1:])
        _, start, end = _der.read(der, tbs[1])
        fields = list(_der.children(der, start, end))
    except ValueError:
        raise CRLError("cryptography built a CRL frame that does not parse.") from None
    if len(fields) != len(_FRAME_TAGS) or any(
        tag not in expected for (tag, _, _), expected in zip(fields, _FRAME_TAGS, strict=True)
    ):
        raise CRLError("cryptography built a CRL frame of an unexpected shape.")
    extensions_start = fields[-1][1]
    return der[start:extensions_start], der[extensions_start:end], der[algorithm[1]:algorithm[2]]


def _sign(key: PrivateKey, tbs: bytes, frame: x509.CertificateRevocationList) -> bytes:
    """Sign as cryptography signed the frame, so the algorithm named inside the TBS is true."""
    if isinstance(key, rsa.RSAPrivateKey):
        if frame.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256:
            return key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    elif frame.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        return key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    raise CRLError("The CA key and the CRL signature algorithm do not match.")


def _der_of(crl: x509.CertificateRevocationList) -> bytes:
    """The DER ``crl`` was parsed from if build_crl made it last, else cryptography's."""
    last = _last_built
    if last is not None and last[0] is crl:
        return last[1]
    return crl.public_bytes(serialization.Encoding.DER)


def _pem(der: bytes) -> bytes:
    """PEM as cryptography writes it (64-column base64), without re-encoding the entries."""
    text = base64.b64encode(der)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return b"-----BEGIN X509 CRL-----\n" + b"\n".join(lines) + b"\n-----END X509 CRL-----\n"


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return _pem(_der_of(crl))


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
    crl: x509.CertificateRevocationList,
    ca_certificate: x509.Certificate,
    now: datetime | None,
    der: bytes | None = None,
) -> None:
    """Issuer, signature and nextUpdate; ``der``, if given, must be what ``crl`` was parsed
    from: its signature is then checked directly instead of on cryptography's re-encoding."""
    if crl.issuer != ca_certificate.subject:
        raise CRLError("The CRL was issued by a different CA.")
    key = ca_certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CRLError("The CA certificate has an unsupported key type.")
    valid = crl.is_signature_valid(key) if der is None else _signature_valid(crl, der, key)
    if not valid:
        raise CRLError("The CRL signature does not verify against the CA.")
    now = now or datetime.now(UTC)
    next_update = crl.next_update_utc
    if next_update is None or next_update <= now:
        raise CRLError("The CRL is past its nextUpdate; the broker would refuse every client.")


def _signature_valid(
    crl: x509.CertificateRevocationList,
    der: bytes,
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
) -> bool:
    """Verify the signature over the TBS bytes in ``der`` with the algorithm ``crl`` names."""
    algorithm = crl.signature_algorithm_oid
    try:
        tbs, _, (_, signature_start, signature_end) = _der.children(der, *_der.read(der)[1:])
        _, bits_start, _ = _der.read(der, signature_start)
        if der[bits_start] != 0:  # a signature is whole bytes: no unused bits
            return False
        signed, signature = der[tbs[1]:tbs[2]], der[bits_start + 1:signature_end]
        if isinstance(key, rsa.RSAPublicKey):
            if algorithm != SignatureAlgorithmOID.RSA_WITH_SHA256:
                return crl.is_signature_valid(key)
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif algorithm == SignatureAlgorithmOID.ECDSA_WITH_SHA256:
            key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        else:
            return crl.is_signature_valid(key)
    except (ValueError, InvalidSignature):
        return False
    return True


def write_crl(
    path: Path, crl: x509.CertificateRevocationList, ca_certificate: x509.Certificate
) -> None:
    """Atomically put ``crl`` at ``path`` (0644), only after the written temp file verifies.

    On any failure the previous file stays as it was and :class:`CRLError` is raised.
    """

    # Verify the CRL in memory (issuer, signature, nextUpdate), then require the temp file
    # to hold exactly its bytes: the file on disk is then a verified CRL, without decoding
    # and parsing 100,000 entries a second time.
    der = _der_of(crl)
    _check(crl, ca_certificate, None, der)
    pem = _pem(der)

    def check(tmp: Path) -> None:
        if tmp.read_bytes() != pem:
            raise CRLError("The CRL file did not read back as written.")

    try:
        atomic_write(Path(path), pem, mode=PUBLIC_MODE, check=check)
    except OSError as exc:
        raise CRLError(f"Could not write the CRL to {path}: {exc.strerror}.") from None
