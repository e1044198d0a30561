"""Signing a client certificate and packing it as PKCS#12, off the event loop's process.

Both steps hold Python's GIL for ~10 ms each (the CA's RSA signature, the PKCS#12 KDF), so
a thread would still stall the event loop under a burst of /getcert. A small process pool
keeps them truly parallel. The CA key and each client key travel to the worker through a
pipe, in memory only; nothing is written anywhere. Key generation itself releases the GIL
and stays in threads (bot/keypool.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.authority import CertificateAuthority
from pki.bundle import Pkcs12Profile, pkcs12_bundle
from pki.keys import PrivateKey

log = logging.getLogger(__name__)
_worker_ca: CertificateAuthority | None = None


@dataclass(frozen=True)
class SignRequest:
    username: str
    days: int
    now: datetime
    friendly_name: str
    profile: Pkcs12Profile


def _sign_and_pack(
    ca: CertificateAuthority, key: PrivateKey, request: SignRequest, passphrase: str
) -> tuple[x509.Certificate, bytes]:
    cert = ca.issue_client(request.username, key, days=request.days, now=request.now)
    bundle = pkcs12_bundle(
        cert, key, [ca.certificate], friendly_name=request.friendly_name,
        passphrase=passphrase, profile=request.profile,
    )
    return cert, bundle


def _init_worker(cert_pem: bytes, key_pem: bytes) -> None:
    global _worker_ca
    _exit_with_parent()
    _worker_ca = CertificateAuthority.from_pem(cert_pem, key_pem)


def _exit_with_parent() -> None:
    """A bot killed with SIGKILL (OOM killer, a crash) must not leave its worker behind,
    holding the CA key in memory for good: exit as soon as the parent's end of the spawn
    pipe closes, which the kernel does when the parent dies however it dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _in_worker(key_der: bytes, request: SignRequest, passphrase: str) -> tuple[bytes, bytes]:
    assert _worker_ca is not None, "worker not initialised"
    # The key was made by our own key pool a moment ago: skip OpenSSL's RSA consistency
    # check, which costs ~60 ms per load and would double the /getcert time.
    key = serialization.load_der_private_key(
        key_der, password=None, unsafe_skip_rsa_key_validation=True
    )
    cert, bundle = _sign_and_pack(_worker_ca, key, request, passphrase)  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.DER), bundle


def _warm_up() -> bool:
    return _worker_ca is not None


class Signer:
    """``workers=0`` signs in a thread (the CLI, tiny deployments); otherwise in processes."""

    def __init__(self, ca: CertificateAuthority, *, workers: int = 0) -> None:
        self.ca = ca
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def start(self) -> None:
        if self.workers <= 0 or self._pool is not None:
            return
        ca_key_pem = self.ca.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.ca.cert_pem, ca_key_pem),
        )
        loop = asyncio.get_running_loop()
        # Start the workers now, not on the first /getcert.
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _warm_up) for _ in range(self.workers))
        )

    async def stop(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def sign_and_pack(
        self, key: PrivateKey, request: SignRequest, passphrase: str
    ) -> tuple[x509.Certificate, bytes]:
        if self._pool is None:
            return await asyncio.to_thread(_sign_and_pack, self.ca, key, request, passphrase)
        key_der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        loop = asyncio.get_running_loop()
        try:
            cert_der, bundle = await loop.run_in_executor(
                self._pool, _in_worker, key_der, request, passphrase
            )
        except BrokenProcessPool:
            # A worker died (OOM, signal): start fresh ones instead of failing every /getcert.
            log.warning("a signing worker died; restarting the pool")
            await self.stop()
            await self.start()
            assert self._pool is not None
            cert_der, bundle = await loop.run_in_executor(
                self._pool, _in_worker, key_der, request, passphrase
            )
        return x509.load_der_x509_certificate(cert_der), bundle
