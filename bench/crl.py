"""CRL: build + verified atomic write (pki.crl) against `openssl ca -gencrl` over an index.txt
listing the same number of revoked certificates, signed by the same CA key.

Why it matters: every revocation and every superseding /getcert rewrites the whole CRL, and a
bot with many people accumulates superseded certificates until they expire.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from bench.common import Results, Row, median
from pki import CertificateAuthority, RevokedEntry, build_crl, write_crl
from pki.crl import _encoded_entries

SIZES = (1_000, 10_000, 100_000)
REPEATS = {1_000: 5, 10_000: 3, 100_000: 2}
QUICK_REPEATS = {1_000: 3, 10_000: 2, 100_000: 1}
TARGET_SECONDS = 2.0
_OPENSSL_TIME = "%y%m%d%H%M%SZ"

_CA_CONFIG = """\
[ ca ]
default_ca = bench_ca

[ bench_ca ]
dir = {dir}
database = $dir/index.txt
certificate = $dir/ca.crt
private_key = $dir/ca.key
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 30
unique_subject = no
crl_extensions = crl_ext

[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""


def _entries(count: int, now: datetime) -> list[RevokedEntry]:
    """Serials like the bot's (random-looking 128-bit), revoked as superseded."""
    base = 0x5A17_0000_0000_0000_0000_0000_0000_0000
    return [
        RevokedEntry(base + i * 7919, now - timedelta(seconds=i), x509.ReasonFlags.superseded)
        for i in range(count)
    ]


def _write_openssl_ca(directory: Path, entries: list[RevokedEntry], now: datetime) -> Path:
    """A minimal `openssl ca` directory whose index.txt lists ``entries`` as revoked."""
    expiry = (now + timedelta(days=300)).strftime(_OPENSSL_TIME)
    lines = [
        f"R\t{expiry}\t{e.revoked_at.strftime(_OPENSSL_TIME)},superseded\t"
        f"{e.serial:X}\tunknown\t/CN=person{i}\n"
        for i, e in enumerate(entries)
    ]
    (directory / "index.txt").write_text("".join(lines), encoding="ascii")
    (directory / "index.txt.attr").write_text("unique_subject = no\n", encoding="ascii")
    (directory / "crlnumber").write_text("1000\n", encoding="ascii")
    config = directory / "openssl.cnf"
    config.write_text(_CA_CONFIG.format(dir=directory), encoding="ascii")
    return config


def _ours(ca: CertificateAuthority, entries: list[RevokedEntry], out: Path, number: int) -> float:
    start = time.perf_counter()
    crl = build_crl(ca, entries, crl_number=number)
    write_crl(out, crl, ca.certificate)
    return time.perf_counter() - start


def _openssl(config: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["openssl", "ca", "-gencrl", "-config", str(config), "-out", str(out), "-batch"],
        check=True, capture_output=True,
    )
    return time.perf_counter() - start


def run(results: Results, *, quick: bool) -> None:
    repeats = QUICK_REPEATS if quick else REPEATS
    ca = CertificateAuthority.create()
    with tempfile.TemporaryDirectory(prefix="otcert-bench-crl-") as tmp:
        directory = Path(tmp)
        ca.save(directory / "ca.crt", directory / "ca.key")
        now = datetime.now(UTC)
        for size in SIZES:
            entries = _entries(size, now)
            config = _write_openssl_ca(directory, entries, now)
            _encoded_entries.clear()  # the first build in a process pays for every entry
            first = _ours(ca, entries, directory / "ours.pem", 1)
            ours = [_ours(ca, entries, directory / "ours.pem", n) for n in range(repeats[size])]
            theirs = [_openssl(config, directory / "openssl.pem") for _ in range(repeats[size])]
            _check_same_size(directory, size)
            big = size == SIZES[-1]
            ratio = median(theirs) / median(ours)
            results.add(Row(
                "crl", f"rewrite (build + verified write), {size:,} revoked", median(ours), "s",
                repeats[size], note=f"openssl ca -gencrl {median(theirs):.2f} s",
                ratio=ratio, ratio_label="vs openssl ca -gencrl",
                target=f"< {TARGET_SECONDS:.0f} s and faster than openssl" if big else "",
                met=(median(ours) < TARGET_SECONDS and ratio > 1) if big else None,
                extra={"openssl_s": median(theirs)},
            ))
            results.add(Row(
                "crl", f"first build in a fresh process, {size:,} revoked", first, "s", 1,
                note="entries not yet cached (bot start-up)",
                ratio=median(theirs) / first, ratio_label="vs openssl ca -gencrl",
            ))


def _check_same_size(directory: Path, size: int) -> None:
    """Both CRLs must list every entry, or the comparison is meaningless."""
    for name in ("ours.pem", "openssl.pem"):
        crl = x509.load_pem_x509_crl((directory / name).read_bytes())
        if len(crl) != size:
            raise RuntimeError(f"{name} lists {len(crl)} entries, expected {size}")
