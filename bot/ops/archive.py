"""`otcert backup` / `otcert restore`: the database and the CA in one archive.

Why one archive: a database without the CA that signed its certificates (or a CA without the
database that knows what it revoked) restores a broken deployment. The database is copied with
SQLite's online backup (a consistent snapshot while the bot keeps writing); a manifest with
SHA-256 sums lets `restore` refuse a damaged or foreign archive before touching anything.
Archives are read member by member into memory, never extracted, so hostile paths do nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import secrets
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from bot.config import ConfigError, Settings
from bot.core import locks
from bot.core.authorities import AuthorityFiles, complete_finish
from bot.core.clock import utcnow
from bot.ops.archive_rotation import (
    check_rotation_files,
    is_private,
    is_rotation_member,
    restore_rotation_files,
    rotation_files,
)
from bot.ops.restore_guard import carry_crl_facts, check_manifest, no_bot_running
from pki.authority import CAError, CertificateAuthority
from pki.files import PRIVATE_MODE, PUBLIC_MODE, write_private_file, write_public_file
from pki.identity import fingerprint_sha256, same_public_key
from storage import Database, StorageError, restore_database
from storage.carry import Carried, carry_revocations

FORMAT = "owntracks-cert-bot-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_MEMBER, CERT_MEMBER, KEY_MEMBER = "otcert.sqlite3", "ca.crt", "ca.key"
MEMBERS = (DB_MEMBER, CERT_MEMBER, KEY_MEMBER)
MAX_MEMBER_BYTES = 2 * 1024**3  # refuse absurd sizes before reading them into memory


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    ca_fingerprint: str
    schema_version: int
    key_encrypted: bool
    created_at: str


async def create_backup(settings: Settings, dest: Path) -> BackupSummary:
    """Write ``dest`` (0600, atomically): manifest, database snapshot, CA certificate and key."""
    dest = Path(dest)
    if not dest.parent.is_dir():
        raise ConfigError(f"The folder {dest.parent} does not exist.")
    for path, what in ((settings.database_path, "database"), (settings.ca_cert_path, "CA"),
                       (settings.ca_key_path, "CA key")):
        if not path.is_file():
            raise ConfigError(f"No {what} at {path}: nothing to back up (run `otcert init`?).")
    # crl.lock: a CA rotation step holds it, so the CA files and the database are copied
    # either before or after it, never half-way (issue 17).
    async with locks.exclusive(settings.data_dir / locks.CRL_LOCK_NAME):
        try:
            complete_finish(AuthorityFiles(settings.data_dir))  # a cut-off finish, as on load
            cert_pem = settings.ca_cert_path.read_bytes()
            key_pem = settings.ca_key_path.read_bytes()
            extra = rotation_files(settings.data_dir)
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the CA files: {exc.strerror} ({exc.filename})."
            ) from None
        with tempfile.TemporaryDirectory(prefix=".otcert-backup-", dir=dest.parent) as tmp:
            snapshot = Path(tmp) / DB_MEMBER
            db = await Database.open(settings.database_path)
            try:
                await db.backup(snapshot)
                version = await db.schema_version()
            finally:
                await db.close()
            contents = {DB_MEMBER: snapshot.read_bytes(), CERT_MEMBER: cert_pem,
                        KEY_MEMBER: key_pem, **extra}
    fingerprint = _fingerprint(cert_pem)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": utcnow().isoformat(timespec="seconds"),
        "schema_version": version,
        "ca_fingerprint_sha256": fingerprint,
        "ca_key_encrypted": b"ENCRYPTED" in key_pem,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
    }
    archive = _pack({MANIFEST: json.dumps(manifest, indent=2).encode(), **contents})
    # write_private_file: a temp file created 0600, fsynced, renamed over dest.
    write_private_file(dest, archive)
    return BackupSummary(dest, fingerprint, version, manifest["ca_key_encrypted"],
                         manifest["created_at"])


def _pack(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    now = int(utcnow().timestamp())
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), now
            private = name in (KEY_MEMBER, DB_MEMBER) or is_private(name)
            info.mode = PRIVATE_MODE if private else PUBLIC_MODE
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _fingerprint(cert_pem: bytes) -> str:
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ConfigError("The CA certificate is not a readable PEM certificate.") from None
    return fingerprint_sha256(certificate)


@dataclass(frozen=True)
class Verified:
    """An archive whose manifest, sums and CA pair all check out."""

    manifest: dict[str, Any]
    files: dict[str, bytes]
    ca: CertificateAuthority


def read_backup(path: Path, passphrase: bytes | None) -> Verified:
    """Read and verify an archive completely (no file is written)."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            files = {MANIFEST: b"", **{m: b"" for m in MEMBERS}}
            for member in tar.getmembers():
                known = member.name in files or is_rotation_member(member.name)
                if not known or not member.isfile():
                    raise ConfigError(
                        f"{path} is not an otcert backup: unexpected {member.name!r}."
                    )
                if member.size > MAX_MEMBER_BYTES:
                    raise ConfigError(f"{path}: {member.name} is implausibly large.")
                handle = tar.extractfile(member)
                assert handle is not None  # isfile() was checked
                files[member.name] = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"The backup {path} does not exist.") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ConfigError(f"{path} is not a readable otcert backup ({exc}).") from None
    try:
        manifest = json.loads(files.pop(MANIFEST))
    except ValueError:
        raise ConfigError(f"{path} is not an otcert backup (no valid manifest).") from None
    check_manifest(manifest, path)
    if manifest["format"] != FORMAT:
        raise ConfigError(f"{path} is not an otcert backup (format {manifest['format']!r}).")
    if manifest["version"] != FORMAT_VERSION:
        raise ConfigError(f"{path} has backup format {manifest['version']}; this otcert "
                          f"reads format {FORMAT_VERSION}.")
    sums = manifest["files"] if isinstance(manifest["files"], dict) else {}
    for name in {*MEMBERS, *files, *sums}:
        if name not in files or hashlib.sha256(files[name]).hexdigest() != sums.get(name):
            raise ConfigError(f"{path} is damaged: {name} does not match its checksum.")
    check_rotation_files(files, passphrase, path)
    try:
        ca = CertificateAuthority.from_pem(files[CERT_MEMBER], files[KEY_MEMBER], passphrase)
    except CAError as exc:
        raise ConfigError(f"The CA in {path} cannot be used: {exc}") from None
    return Verified(manifest, files, ca)


async def _bring_up_to_date(staged: Path) -> None:
    """An older backup gets this program's schema first, so the carried rows fit it."""
    try:
        async with await Database.open(staged):
            pass
    except (StorageError, sqlite3.Error) as exc:
        raise ConfigError(f"The backup's database cannot be used: {exc}") from None


def _same_ca(settings: Settings, verified: Verified) -> bool:
    """Whether the CA on disk has the restored CA's key (certificates of one are the other's)."""
    try:
        current = x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return same_public_key(current, verified.ca.certificate)


async def restore_backup(
    settings: Settings, path: Path, *, force: bool
) -> tuple[Verified, Carried]:
    """Verify ``path``, then put its database and CA into the data dir (refusing to overwrite
    existing files without ``force``). Stop the bot first. Revocations in the database being
    replaced are carried into the restored one (an old backup must not give access back)."""
    passphrase = settings.ca_passphrase()
    verified = read_backup(Path(path), passphrase)
    existing = [p for p in (settings.database_path, settings.ca_cert_path, settings.ca_key_path)
                if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{', '.join(str(p) for p in existing)} already exist: restoring would replace them. "
            "Stop the bot and run again with --force."
        )
    with no_bot_running(settings.data_dir):
        async with locks.exclusive(settings.data_dir / locks.CRL_LOCK_NAME):
            return await _restore_files(settings, verified)


async def _restore_files(settings: Settings, verified: Verified) -> tuple[Verified, Carried]:
    passphrase = settings.ca_passphrase()
    data_dir = settings.data_dir
    staged = data_dir / f".restore-{secrets.token_hex(6)}.sqlite3"
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(verified.files[DB_MEMBER])
        carried = Carried()
        if settings.database_path.exists():
            await _bring_up_to_date(staged)
            carried = await asyncio.to_thread(
                carry_revocations, settings.database_path, staged,
                same_ca=_same_ca(settings, verified), now=utcnow(),
            )
        else:
            await _bring_up_to_date(staged)
        await asyncio.to_thread(carry_crl_facts, settings.database_path, staged,
                                settings.effective_crl_path)
        # restore_database checks integrity and schema before replacing anything.
        await restore_database(staged, settings.database_path)
    except StorageError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        for leftover in (staged, *(staged.with_name(staged.name + x) for x in ("-wal", "-shm"))):
            leftover.unlink(missing_ok=True)
    if passphrase is not None:
        verified.ca.save(settings.ca_cert_path, settings.ca_key_path, passphrase)
    else:
        write_private_file(settings.ca_key_path, verified.files[KEY_MEMBER])
        write_public_file(settings.ca_cert_path, verified.files[CERT_MEMBER])
    rotation = {k: v for k, v in verified.files.items() if is_rotation_member(k)}
    restore_rotation_files(data_dir, rotation, passphrase)
    return verified, carried
