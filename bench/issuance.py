"""Issuance: key + client certificate + legacy PKCS#12, ours (pki) against the manual
OwnTracks way (four openssl commands), single-threaded and on all cores.

Why side by side in one run: both sides spend most of their time in OpenSSL's RSA key
generation, whose cost varies wildly between keys and machines; only a ratio measured in
the same minute on the same machine says anything.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from bench.common import Results, Row, median
from pki import CertificateAuthority, generate_private_key, make_passphrase, pkcs12_bundle
from pki.keys import ClientKeyType, PrivateKey

KEY_TYPES: tuple[ClientKeyType, ...] = ("rsa2048", "rsa3072", "rsa4096", "ec-p256")
# Repeats per key type (full run); RSA 4096 key generation alone takes ~0.5-1 s.
REPEATS: dict[str, int] = {"rsa2048": 16, "rsa3072": 5, "rsa4096": 3, "ec-p256": 16}
QUICK_REPEATS: dict[str, int] = {"rsa2048": 6, "rsa3072": 2, "rsa4096": 2, "ec-p256": 6}
TARGET_RATIO = 3.0

_worker_ca: CertificateAuthority | None = None


def issue_once(ca: CertificateAuthority, key_type: ClientKeyType) -> float:
    """What /getcert computes, end to end: seconds for key + certificate + legacy PKCS#12."""
    start = time.perf_counter()
    key = generate_private_key(key_type)
    _bundle(ca, key)
    return time.perf_counter() - start


def _bundle(ca: CertificateAuthority, key: PrivateKey) -> bytes:
    cert = ca.issue_client("bench", key)
    return pkcs12_bundle(
        cert, key, [ca.certificate], friendly_name="bench (phone)",
        passphrase=make_passphrase(), profile="legacy",
    )


def _init_worker(cert_pem: bytes, key_pem: bytes) -> None:
    global _worker_ca
    _worker_ca = CertificateAuthority.from_pem(cert_pem, key_pem)


def _worker_issue(key_type: ClientKeyType) -> float:
    assert _worker_ca is not None
    return issue_once(_worker_ca, key_type)


def _worker_ready() -> int:
    return os.getpid()


def openssl_pipeline(workdir: Path, ca_dir: Path, key_type: ClientKeyType) -> float:
    """The OwnTracks booklet's manual steps, as four processes; returns seconds."""
    job = Path(tempfile.mkdtemp(dir=workdir))
    key, csr, crt, p12 = (job / n for n in ("client.key", "client.csr", "client.crt", "c.p12"))
    if key_type.startswith("rsa"):
        genkey = ["openssl", "genrsa", "-out", str(key), key_type.removeprefix("rsa")]
    else:
        genkey = ["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout",
                  "-out", str(key)]
    steps = [
        genkey,
        ["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=bench", "-out", str(csr)],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.crt"),
         "-CAkey", str(ca_dir / "ca.key"), "-set_serial", f"0x{secrets.token_hex(16)}",
         "-days", "365", "-sha256", "-out", str(crt)],
        ["openssl", "pkcs12", "-export", "-legacy", "-in", str(crt), "-inkey", str(key),
         "-certfile", str(ca_dir / "ca.crt"), "-name", "bench (phone)",
         "-passout", f"pass:{make_passphrase()}", "-out", str(p12)],
    ]
    start = time.perf_counter()
    for step in steps:
        subprocess.run(step, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    if p12.stat().st_size < 500:
        raise RuntimeError("openssl produced no usable PKCS#12")
    return elapsed


def _throughput(
    pool: Executor, tasks: int, submit: Callable[[Executor], Future[float]]
) -> tuple[float, list[float]]:
    """(certificates per second over the wall clock, per-task seconds)."""
    start = time.perf_counter()
    futures = [submit(pool) for _ in range(tasks)]
    latencies = [float(f.result()) for f in futures]
    return tasks / (time.perf_counter() - start), latencies


def run(results: Results, *, quick: bool) -> None:
    repeats = QUICK_REPEATS if quick else REPEATS
    cores = os.cpu_count() or 1
    workers = min(2, cores) if cores > 1 else 1
    with tempfile.TemporaryDirectory(prefix="otcert-bench-issue-") as tmp:
        workdir = Path(tmp)
        ca = CertificateAuthority.create()  # the bot's default CA: RSA 4096, SHA-256
        ca.save(workdir / "ca.crt", workdir / "ca.key")
        key_pem = (workdir / "ca.key").read_bytes()
        _pool_only(results, ca, quick)
        with (
            ProcessPoolExecutor(workers, initializer=_init_worker,
                                initargs=(ca.cert_pem, key_pem)) as procs,
            ThreadPoolExecutor(workers) as threads,
        ):
            for ready in [procs.submit(_worker_ready) for _ in range(workers)]:
                ready.result()  # workers up and CA loaded before the clock starts
            for key_type in KEY_TYPES:
                n = repeats[key_type]
                issue_once(ca, key_type)  # warm caches and imports
                ours = [issue_once(ca, key_type) for _ in range(n)]
                theirs = [openssl_pipeline(workdir, workdir, key_type) for _ in range(n)]
                ratio = median(theirs) / median(ours)
                note = f"{1 / median(ours):.1f} certs/s; openssl {median(theirs) * 1e3:.0f} ms"
                results.add(Row(
                    "issuance", f"{key_type} single-threaded latency", median(ours) * 1e3, "ms",
                    n, note=note,
                    ratio=ratio, ratio_label="vs openssl CLI pipeline",
                    target=f">= {TARGET_RATIO:.0f}x openssl" if key_type == "rsa2048" else "",
                    met=(ratio >= TARGET_RATIO) if key_type == "rsa2048" else None,
                    extra={"openssl_ms": median(theirs) * 1e3},
                ))
                tasks = max(n, 2 * workers)
                rate, lat = _throughput(
                    procs, tasks, lambda p, k=key_type: p.submit(_worker_issue, k))
                o_rate, o_lat = _throughput(
                    threads, tasks,
                    lambda p, k=key_type: p.submit(openssl_pipeline, workdir, workdir, k))
                results.add(Row(
                    "issuance", f"{key_type} on {workers} cores", rate, "certs/s", tasks,
                    note=f"latency {median(lat) * 1e3:.0f} ms; openssl {o_rate:.1f} certs/s, "
                         f"{median(o_lat) * 1e3:.0f} ms",
                    ratio=rate / o_rate, ratio_label="vs openssl CLI pipeline",
                    extra={"latency_ms": median(lat) * 1e3, "openssl_certs_per_s": o_rate},
                ))


def _pool_only(results: Results, ca: CertificateAuthority, quick: bool) -> None:
    """What /getcert pays when the key comes from the bot's key pool: cert + PKCS#12 only."""
    keys = [generate_private_key("rsa2048") for _ in range(6 if quick else 20)]
    times: list[float] = []
    for key in keys:
        start = time.perf_counter()
        _bundle(ca, key)
        times.append(time.perf_counter() - start)
    results.add(Row(
        "issuance", "rsa2048 cert + PKCS#12, key from pool", median(times) * 1e3, "ms",
        len(times), note="the CPU work left on the /getcert path",
    ))
