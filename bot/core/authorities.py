"""The CAs the broker must accept, which one signs new certificates, and where their files are.

Outside a rotation there is one CA (``ca.crt``/``ca.key``). ``otcert ca rotate start`` adds
the next one (``ca-next.crt``/``ca-next.key``) and then a marker file; only the marker makes
the rotation real, so a crash before it leaves the old state. ``finish`` archives the old CA,
writes the marker "finishing" (from then on the next CA *is* the CA) and then moves the files;
whoever loads the CAs next completes an interrupted move. Old CAs are archived, never deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.x509.oid import NameOID

from pki.authority import CAError, CertificateAuthority
from pki.files import write_private_file, write_public_file
from pki.keys import CAKeyType

MARKER = "ca-rotation.json"
ROTATING, FINISHING = "rotating", "finishing"


@dataclass(frozen=True)
class AuthorityFiles:
    """Where the CA files live; the passphrase encrypts every CA key alike."""

    data_dir: Path
    passphrase: bytes | None = field(default=None, repr=False)

    @property
    def cert(self) -> Path:
        return self.data_dir / "ca.crt"

    @property
    def key(self) -> Path:
        return self.data_dir / "ca.key"

    @property
    def next_cert(self) -> Path:
        return self.data_dir / "ca-next.crt"

    @property
    def next_key(self) -> Path:
        return self.data_dir / "ca-next.key"

    @property
    def marker(self) -> Path:
        return self.data_dir / MARKER

    @property
    def archive(self) -> Path:
        return self.data_dir / "ca-archive"


@dataclass(frozen=True)
class Authorities:
    current: CertificateAuthority
    next: CertificateAuthority | None = None

    @property
    def rotating(self) -> bool:
        return self.next is not None

    @property
    def issuer(self) -> CertificateAuthority:
        """New certificates come from the next CA while a rotation runs."""
        return self.next if self.next is not None else self.current

    @property
    def accepted(self) -> tuple[CertificateAuthority, ...]:
        """Every CA whose clients the broker must accept, oldest first."""
        return (self.current,) if self.next is None else (self.current, self.next)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(ca.fingerprint_sha256 for ca in self.accepted)


def read_state(files: AuthorityFiles) -> str | None:
    """``rotating``, ``finishing`` or None (no rotation)."""
    try:
        data = json.loads(files.marker.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CAError(f"The rotation marker {files.marker} is unreadable: {exc}") from None
    state = data.get("state") if isinstance(data, dict) else None
    if state not in (ROTATING, FINISHING):
        raise CAError(f"The rotation marker {files.marker} names no known state.")
    return str(state)


def state_token(files: AuthorityFiles) -> tuple[object, ...]:
    """Cheap to compute, changes whenever the CA files or the rotation state change."""
    parts: list[object] = []
    for path in (files.marker, files.cert, files.next_cert):
        try:
            st = path.stat()
            parts.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            parts.append(None)
    return tuple(parts)


def _write_marker(files: AuthorityFiles, state: str, **details: str) -> None:
    data = json.dumps({"state": state, **details}, sort_keys=True).encode() + b"\n"
    write_public_file(files.marker, data)


def complete_finish(files: AuthorityFiles) -> None:
    """Roll an interrupted ``finish`` forward: the next CA's files become the CA's."""
    if read_state(files) != FINISHING:
        return
    # Key first (a crash between leaves ca-next.crt, which the next call moves too).
    if files.next_key.exists():
        os.replace(files.next_key, files.key)
    if files.next_cert.exists():
        os.replace(files.next_cert, files.cert)
    with contextlib.suppress(FileNotFoundError):
        files.marker.unlink()


def load_authorities(files: AuthorityFiles) -> Authorities:
    """The CAs as the files say; completes an interrupted finish first. Blocking."""
    complete_finish(files)
    current = CertificateAuthority.load(files.cert, files.key, files.passphrase)
    if read_state(files) != ROTATING:
        return Authorities(current)
    try:
        upcoming = CertificateAuthority.load(files.next_cert, files.next_key, files.passphrase)
    except CAError as exc:
        raise CAError(f"A CA rotation is under way but the next CA is unusable: {exc}") from None
    return Authorities(current, upcoming)


def _next_name(current: CertificateAuthority, now: datetime) -> str:
    """A subject different from the current CA's: Mosquitto finds a CRL by its issuer name."""
    attrs = current.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    base = str(attrs[0].value) if attrs else "OwnTracks cert bot CA"
    base = base.split(" (", 1)[0][:40]
    return f"{base} ({now:%Y-%m-%d %H%M})"


def create_next(
    files: AuthorityFiles,
    current: CertificateAuthority,
    *,
    key_type: CAKeyType = "rsa4096",
    days: int = 3650,
) -> CertificateAuthority:
    """Make the next CA and write its files (key 0600, encrypted like the current one).
    Not yet a rotation: the marker comes later. Blocking (key generation)."""
    upcoming = CertificateAuthority.create(
        _next_name(current, datetime.now(UTC)), key_type=key_type, days=days
    )
    upcoming.save(files.next_cert, files.next_key, files.passphrase)
    return upcoming


def mark_rotating(files: AuthorityFiles, fingerprint: str) -> None:
    _write_marker(files, ROTATING, next=fingerprint)


def archive(files: AuthorityFiles, ca: CertificateAuthority, cert: Path, key: Path,
            why: str) -> Path:
    """Copy a CA's files into ``ca-archive/`` (0700 folder, key stays 0600); idempotent."""
    folder = files.archive / f"{why}-{ca.fingerprint_sha256.replace(':', '')[:16].lower()}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(files.archive, 0o700)
    write_private_file(folder / "ca.key", key.read_bytes())
    write_public_file(folder / "ca.crt", cert.read_bytes())
    return folder


def finish_files(files: AuthorityFiles, authorities: Authorities) -> Path:
    """Archive the old CA, then make the next CA the CA (crash-safe, see the module)."""
    if authorities.next is None:
        raise CAError("No CA rotation is under way.")
    folder = archive(files, authorities.current, files.cert, files.key, "retired")
    _write_marker(files, FINISHING, retired=authorities.current.fingerprint_sha256)
    complete_finish(files)
    return folder


def abort_files(files: AuthorityFiles, authorities: Authorities) -> Path | None:
    """Forget the next CA: the marker goes first (the old state), then its files, archived."""
    with contextlib.suppress(FileNotFoundError):
        files.marker.unlink()
    if authorities.next is None or not files.next_key.exists():
        return None
    folder = archive(files, authorities.next, files.next_cert, files.next_key, "aborted")
    for path in (files.next_key, files.next_cert):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return folder


def archived_cas(files: AuthorityFiles) -> list[Path]:
    """Archived CA certificates (for ``ca show`` and backups)."""
    if not files.archive.is_dir():
        return []
    return sorted(files.archive.glob("*/ca.crt"))


__all__ = [
    "FINISHING",
    "ROTATING",
    "Authorities",
    "AuthorityFiles",
    "abort_files",
    "archived_cas",
    "complete_finish",
    "create_next",
    "finish_files",
    "load_authorities",
    "mark_rotating",
    "read_state",
    "state_token",
]
