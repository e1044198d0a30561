"""Turning settings into live objects: data dir, CA, database, service. Shared by the bot
and the CLI so both see the same files the same way."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from bot.broker import ADMIN_CERT_NAME, BrokerAdmin, ensure_admin_identity
from bot.broker.server_cert import fetch_server_certificate
from bot.config import ConfigError, Settings
from bot.core.authorities import (
    Authorities,
    AuthorityFiles,
    complete_finish,
    load_authorities,
)
from bot.core.keypool import KeyPool
from bot.core.lifecycle import Lifecycle
from bot.core.own_certs import record_admin_identity
from bot.core.rules import Policy
from bot.core.service import Service
from bot.core.signer import Signer
from pki.authority import CAError, CertificateAuthority
from storage import Database, Repository

log = logging.getLogger(__name__)

# Service identities the CA issues for itself; never a person's username.
RESERVED_USERNAMES = frozenset({"otcert-admin", "otcert-doctor"})


def ensure_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"Cannot create OTCERT_DATA_DIR {path}: {exc.strerror}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"OTCERT_DATA_DIR {path} is not writable by this user.")


def load_ca(settings: Settings, *, create: bool = False) -> CertificateAuthority:
    """Load the CA; with ``create``, make one first when there is none. A CA rotation's
    finish cut off half-way (ca.key already the new key) is rolled forward first."""
    cert_path, key_path = settings.ca_cert_path, settings.ca_key_path
    passphrase = settings.ca_passphrase()
    try:
        complete_finish(authority_files(settings))
    except (CAError, OSError) as exc:
        raise ConfigError(str(exc)) from None
    if not cert_path.exists() and not key_path.exists():
        if not create:
            raise ConfigError(f"No CA in {settings.data_dir}: run `otcert init` first.")
        ca = CertificateAuthority.create()
        ca.save(cert_path, key_path, passphrase)
        log.info("created a new CA in %s", settings.data_dir)
        return ca
    if not cert_path.exists() or not key_path.exists():
        missing = cert_path if not cert_path.exists() else key_path
        raise ConfigError(f"The CA is incomplete: {missing} is missing.")
    try:
        ca = CertificateAuthority.load(cert_path, key_path, passphrase)
    except CAError as exc:
        raise ConfigError(str(exc)) from None
    if passphrase is not None and b"ENCRYPTED" not in key_path.read_bytes():
        # A passphrase set after `otcert init` (or an adopted plain key): encrypt it now.
        ca.save(cert_path, key_path, passphrase)
        log.info("encrypted the CA key with OTCERT_CA_KEY_PASSPHRASE")
    return ca


def build_policy(settings: Settings, ca: CertificateAuthority) -> Policy:
    broker_admin = None
    if settings.broker_kick == "dynsec":
        host = settings.admin_host
        if host is None:
            raise ConfigError(
                "OTCERT_BROKER_KICK=dynsec needs OTCERT_BROKER_ADMIN_HOST or OTCERT_MQTT_HOST."
            )
        passphrase = settings.ca_passphrase()
        cert_path, key_path = ensure_admin_identity(
            ca, settings.data_dir, settings.broker_admin_cn, passphrase=passphrase
        )
        broker_admin = BrokerAdmin(
            host=host,
            port=settings.admin_port,
            cert_path=cert_path,
            key_path=key_path,
            ca_file=settings.broker_ca_file,
            bot_ca_file=settings.ca_cert_path,
            key_password=passphrase,
        )
    return Policy(
        admin_ids=settings.admin_ids,
        cert_days=settings.cert_days,
        pkcs12_profile=settings.pkcs12_profile,
        max_devices=settings.max_devices,
        issue_cooldown=timedelta(seconds=settings.issue_cooldown_seconds),
        crl_path=settings.effective_crl_path,
        crl_validity=timedelta(days=settings.crl_days),
        reload_command=settings.broker_reload_command,
        reserved_usernames=frozenset({settings.broker_admin_cn, *RESERVED_USERNAMES}),
        broker_admin=broker_admin,
        ca_bundle_path=settings.effective_ca_bundle_path,
        mqtt_host=settings.mqtt_host,
        mqtt_port=settings.mqtt_port,
        phone_ca=settings.phone_ca,
        max_issues_per_day=settings.max_issues_per_day,
        data_dir=settings.data_dir,
        renew_window_days=max(settings.renew_reminder_days),
    )


def authority_files(settings: Settings) -> AuthorityFiles:
    return AuthorityFiles(settings.data_dir, settings.ca_passphrase())


def load_all_cas(settings: Settings, *, create: bool = False) -> Authorities:
    """The current CA (made first with ``create``) and, during a rotation, the next one."""
    files = authority_files(settings)
    try:
        complete_finish(files)  # a finish cut off half-way: ca.key may already be the new key
        load_ca(settings, create=create)  # creates, checks and encrypts the current CA's files
        return load_authorities(files)
    except CAError as exc:
        raise ConfigError(str(exc)) from None


async def attach_rotation(service: Service, files: AuthorityFiles, cas: Authorities) -> None:
    """The rotation use cases; every CRL publish first adopts CA changes made elsewhere."""
    from bot.core.rotation import Rotation

    await service.repo.backfill_issuer(cas.current.fingerprint_sha256)
    rotation = Rotation(service, files, cas)
    await rotation.apply(cas)
    service.rotation = rotation
    service.crl.refresh = rotation.sync


def _admin_identity_follower(
    settings: Settings, service: Service
) -> Callable[[CertificateAuthority], Awaitable[None]]:
    """After a rotation's finish the old CA leaves the broker's bundle: the dynsec admin pair
    it signed would be refused, so the next kick would fail until a restart. Re-make it."""

    async def follow(ca: CertificateAuthority) -> None:
        await asyncio.to_thread(
            ensure_admin_identity, ca, settings.data_dir, settings.broker_admin_cn,
            passphrase=settings.ca_passphrase(),
        )
        await record_admin_identity(service, settings.data_dir)

    return follow


@asynccontextmanager
async def open_service(
    settings: Settings, *, create_ca: bool = False, key_pool: bool = False
) -> AsyncIterator[Service]:
    """A ready service over the configured files; closes the database on exit.

    ``key_pool`` is for the long-running bot: keys made ahead of time and signing in worker
    processes. Short CLI commands skip both start-up costs."""
    ensure_data_dir(settings.data_dir)
    cas = await asyncio.to_thread(load_all_cas, settings, create=create_ca)
    policy = await asyncio.to_thread(build_policy, settings, cas.current)
    db = await Database.open(settings.database_path)
    keys = KeyPool(settings.key_type, settings.key_pool_size if key_pool else 0)
    signer = Signer(cas.issuer, workers=settings.signing_workers if key_pool else 0)
    try:
        keys.start()
        await signer.start()
        service = Service(Repository(db), cas.issuer, policy, keys, signer=signer)
        await attach_rotation(service, authority_files(settings), cas)
        if policy.broker_admin is not None and service.rotation is not None:
            service.rotation.on_current_change = _admin_identity_follower(settings, service)
        if await record_admin_identity(service, settings.data_dir):
            await service.refresh_crl()  # a replaced admin pair must stop working now
        yield service
    finally:
        await keys.stop()
        await signer.stop()
        await db.close()


def build_lifecycle(settings: Settings, service: Service) -> Lifecycle:
    """The lifecycle use cases with this deployment's thresholds and infrastructure: the
    broker-admin certificate file (when the kick uses one) and the broker's TLS handshake."""
    probe = None
    host = settings.mqtt_host
    if host is not None:
        async def probe() -> x509.Certificate | None:
            return await asyncio.to_thread(
                fetch_server_certificate, host, settings.mqtt_port,
                broker_ca_file=settings.broker_ca_file, ca=service.ca,
                bot_ca_file=settings.ca_cert_path,
            )
    admin_cert = settings.data_dir / ADMIN_CERT_NAME
    return Lifecycle(
        service,
        reminder_days=settings.renew_reminder_days,
        infra_days=settings.infra_reminder_days,
        admin_cert_path=admin_cert if settings.broker_kick == "dynsec" else None,
        server_probe=probe,
        server_where=f"{host}:{settings.mqtt_port}",
    )
