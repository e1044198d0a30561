"""What the broker trusts, as two files: a bundle of CA certificates (Mosquitto's ``cafile``)
and one CRL per CA in one file (``crlfile``).

Mosquitto refuses every client of a CA in ``cafile`` whose CRL is missing from ``crlfile``,
so the two files are written in the order that never leaves such a CA behind: when a CA is
added, its CRL first; when one leaves, the bundle first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pki.crl import CRLError, crl_pem, verify_crl
from pki.files import PUBLIC_MODE, atomic_write
from pki.identity import fingerprint_sha256

_CRL_BLOCK = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----\n?", re.S)


def bundle_pem(cas: Sequence[x509.Certificate]) -> bytes:
    """The CA certificates one after another, oldest first (the order people read them)."""
    if not cas:
        raise ValueError("a CA bundle needs at least one CA")
    return b"".join(ca.public_bytes(Encoding.PEM) for ca in cas)


def read_bundle(path: Path) -> list[x509.Certificate]:
    """The CAs in a bundle file; an absent or unreadable file holds none."""
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError):
        return []


def split_crls(data: bytes) -> list[bytes]:
    """The PEM CRL blocks of a CRL file, in order."""
    return [m.group(0) for m in _CRL_BLOCK.finditer(data)]


def check_crl_file(
    data: bytes, cas: Sequence[x509.Certificate], *, now: datetime | None = None
) -> None:
    """Every CA has exactly one current CRL it signed in ``data``; raises :class:`CRLError`."""
    blocks = split_crls(data)
    if len(blocks) != len(cas):
        raise CRLError(f"The CRL file holds {len(blocks)} CRLs for {len(cas)} CAs.")
    for block, ca in zip(blocks, cas, strict=True):
        verify_crl(block, ca, now=now)


def write_trust(
    bundle_path: Path | None,
    crl_path: Path,
    pairs: Sequence[tuple[x509.CertificateRevocationList, x509.Certificate]],
    *,
    now: datetime | None = None,
) -> bool:
    """Write the CRL file (one CRL per CA) and the bundle (those CAs), each atomically and
    verified before its rename. Returns whether the bundle changed. Without a bundle path
    only the CRL file is written (a broker whose ``cafile`` the operator keeps)."""
    cas = [ca for _, ca in pairs]
    crl_data = b"".join(crl_pem(crl) for crl, _ in pairs)
    check_crl_file(crl_data, cas, now=now)
    bundle_data = bundle_pem(cas)
    try:
        old_bundle = Path(bundle_path).read_bytes() if bundle_path is not None else bundle_data
    except OSError:
        old_bundle = b""
    wanted = {fingerprint_sha256(ca) for ca in cas}
    shrinking = bundle_path is not None and any(
        fingerprint_sha256(c) not in wanted for c in read_bundle(bundle_path)
    )

    def write_crls() -> None:
        def check(tmp: Path) -> None:
            if tmp.read_bytes() != crl_data:
                raise CRLError("The CRL file did not read back as written.")

        try:
            atomic_write(Path(crl_path), crl_data, mode=PUBLIC_MODE, check=check)
        except OSError as exc:
            raise CRLError(f"Could not write the CRL to {crl_path}: {exc.strerror}.") from None

    def write_bundle() -> None:
        if bundle_path is None or old_bundle == bundle_data:
            return

        def check(tmp: Path) -> None:
            if [fingerprint_sha256(c) for c in read_bundle(tmp)] != [
                fingerprint_sha256(c) for c in cas
            ]:
                raise CRLError("The CA bundle did not read back as written.")

        try:
            atomic_write(Path(bundle_path), bundle_data, mode=PUBLIC_MODE, check=check)
        except OSError as exc:
            raise CRLError(
                f"Could not write the CA bundle to {bundle_path}: {exc.strerror}."
            ) from None

    steps = (write_bundle, write_crls) if shrinking else (write_crls, write_bundle)
    for step in steps:
        step()
    return old_bundle != bundle_data
