"""`otcert doctor`: the CA bundle (Mosquitto's ``cafile``) and the CRL file agree (issue 17).

Why its own check: Mosquitto refuses every client of a CA that is in ``cafile`` but has no
CRL in ``crlfile``, and accepts nobody of a CA missing from ``cafile``. During a CA rotation
both files hold two CAs, so the one-CRL check in :mod:`bot.ops.doctor` is not enough. Reads
only: an interrupted ``finish`` is reported, not completed (the next start completes it).
"""

from __future__ import annotations

import stat
from datetime import datetime

from cryptography import x509

from bot.config import ConfigError, Settings
from bot.core.authorities import FINISHING, ROTATING, AuthorityFiles, read_state
from bot.core.clock import utcnow
from bot.ops.doctor import Finding, Level, fail, ok, probe_broker, warn
from pki.authority import CAError, CertificateAuthority
from pki.crl import CRLError, verify_crl
from pki.identity import fingerprint_sha256
from pki.trust import read_bundle, split_crls


def _files(settings: Settings) -> AuthorityFiles:
    return AuthorityFiles(settings.data_dir)


def expected_cas(settings: Settings) -> tuple[list[x509.Certificate], list[Finding]]:
    """The CA certificates the broker must accept, as the CA files and the marker say."""
    files = _files(settings)
    try:
        state = read_state(files)
        cas = [x509.load_pem_x509_certificate(files.cert.read_bytes())]
    except (CAError, OSError, ValueError) as exc:
        return [], [fail("CA rotation", str(exc))]
    if state == FINISHING:
        return cas, [warn("CA rotation", "A `ca rotate finish` was cut off; the next `otcert` "
                                         "command or bot start completes it.")]
    if state != ROTATING:
        return cas, []
    try:
        upcoming = x509.load_pem_x509_certificate(files.next_cert.read_bytes())
    except (OSError, ValueError) as exc:
        return cas, [fail("CA rotation", f"A rotation is under way but {files.next_cert} is "
                                         f"unusable: {exc}.")]
    findings = [ok("CA rotation", f"Under way: new certificates come from the next CA "
                                  f"{fingerprint_sha256(upcoming)}.")]
    if files.next_key.exists() and stat.S_IMODE(files.next_key.stat().st_mode) & 0o077:
        findings.append(fail("CA key", f"{files.next_key} is readable by others: run "
                                       f"chmod 600 {files.next_key}."))
    return [*cas, upcoming], findings


def check_trust_files(settings: Settings) -> list[Finding]:
    """The bundle holds exactly the expected CAs, and the CRL file one current CRL for each."""
    cas, findings = expected_cas(settings)
    if not cas:
        return findings
    bundle_path, crl_path = settings.effective_ca_bundle_path, settings.effective_crl_path
    bundle = read_bundle(bundle_path)
    if not bundle:
        return [*findings, fail("CA bundle", f"{bundle_path} is missing or unreadable: the bot "
                                             "writes it with every CRL; run `otcert crl write`. "
                                             "Point Mosquitto's cafile at it.")]
    have = [fingerprint_sha256(c) for c in bundle]
    want = [fingerprint_sha256(c) for c in cas]
    missing = [fp for fp in want if fp not in have]
    extra = [fp for fp in have if fp not in want]
    if missing:
        findings.append(fail("CA bundle", f"{bundle_path} lacks {', '.join(missing)}: the "
                                          "broker refuses that CA's clients; run "
                                          "`otcert crl write`."))
    if extra:
        findings.append(warn("CA bundle", f"{bundle_path} still holds {', '.join(extra)}, a CA "
                                          "the bot no longer uses: its clients are still "
                                          "accepted until `otcert crl write`."))
    try:
        blocks = split_crls(crl_path.read_bytes())
    except OSError as exc:
        return [*findings, fail("CRL file", f"{crl_path} cannot be read: {exc.strerror}.")]
    now = utcnow()
    for ca in bundle:
        if not any(_verifies(block, ca, now) for block in blocks):
            findings.append(fail("CRL file", f"{crl_path} has no current CRL of the CA "
                                             f"{fingerprint_sha256(ca)} in the bundle: "
                                             "Mosquitto refuses every client of that CA; run "
                                             "`otcert crl write`."))
    if all(f.level is Level.OK or f.topic == "CA rotation" for f in findings):
        findings.append(ok("CA bundle", f"{bundle_path} holds {len(bundle)} CA(s), each with "
                                        f"its current CRL in {crl_path}."))
    return findings


def _verifies(block: bytes, ca: x509.Certificate, now: datetime) -> bool:
    try:
        verify_crl(block, ca, now=now)
    except CRLError:
        return False
    return True


def probe_next_ca(settings: Settings) -> Finding | None:
    """During a rotation: does the broker accept a throw-away certificate from the next CA?"""
    files = _files(settings)
    if settings.mqtt_host is None or read_state(files) != ROTATING:
        return None
    try:
        upcoming = CertificateAuthority.load(files.next_cert, files.next_key,
                                             settings.ca_passphrase())
    except (CAError, ConfigError) as exc:
        return fail("broker (next CA)", str(exc))
    finding = probe_broker(settings, upcoming)
    return type(finding)(finding.level, "broker (next CA)", finding.sentence)
