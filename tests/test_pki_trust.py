"""The trust files: one CRL per CA, verified, and the order that never strands a CA."""

from __future__ import annotations

from pathlib import Path

import pytest

from pki import CertificateAuthority, build_crl
from pki.crl import CRLError
from pki.trust import check_crl_file, read_bundle, split_crls, write_trust


def _pair(ca: CertificateAuthority, number: int = 1):  # type: ignore[no-untyped-def]
    return build_crl(ca, [], crl_number=number), ca.certificate


def test_growing_and_shrinking_keep_one_crl_per_ca(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    bundle, crls = tmp_path / "ca-bundle.pem", tmp_path / "crl.pem"
    assert write_trust(bundle, crls, [_pair(ca)])
    assert write_trust(bundle, crls, [_pair(ca, 2), _pair(other_ca)])
    assert [c.subject for c in read_bundle(bundle)] == [ca.certificate.subject,
                                                        other_ca.certificate.subject]
    check_crl_file(crls.read_bytes(), [ca.certificate, other_ca.certificate])
    assert not write_trust(bundle, crls, [_pair(ca, 3), _pair(other_ca, 2)])  # unchanged
    assert write_trust(bundle, crls, [_pair(other_ca, 3)])
    assert len(read_bundle(bundle)) == 1 and len(split_crls(crls.read_bytes())) == 1
    assert oct(bundle.stat().st_mode & 0o777) == "0o644"


def test_a_crl_file_missing_a_ca_is_refused(
    tmp_path: Path, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    crl, _ = _pair(ca)
    from pki.crl import crl_pem

    with pytest.raises(CRLError):
        check_crl_file(crl_pem(crl), [ca.certificate, other_ca.certificate])
    with pytest.raises(CRLError):  # signed by the wrong CA
        check_crl_file(crl_pem(crl), [other_ca.certificate])
