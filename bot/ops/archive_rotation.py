"""The CA rotation's files in a backup: the next CA, the marker, and every archived CA.

Why: a backup taken during a rotation without ``ca-next.*`` restores a database whose new
certificates no CA on disk signed; one without ``ca-archive/`` loses a retired CA's key,
which the rotation promises to keep. Member names are fixed or match one strict pattern, so
a hostile archive cannot name a path outside the data dir.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from cryptography import x509

from bot.config import ConfigError
from bot.core.authorities import MARKER, AuthorityFiles
from pki.authority import CAError, CertificateAuthority
from pki.files import write_private_file, write_public_file
from pki.identity import fingerprint_sha256

NEXT_CERT, NEXT_KEY = "ca-next.crt", "ca-next.key"
OPTIONAL = (NEXT_CERT, NEXT_KEY, MARKER)
_ARCHIVED = re.compile(r"ca-archive/[a-z]{1,16}-[0-9a-f]{16}/ca\.(crt|key)")
PRIVATE_MEMBERS = (NEXT_KEY,)


def is_rotation_member(name: str) -> bool:
    return name in OPTIONAL or _ARCHIVED.fullmatch(name) is not None


def is_private(name: str) -> bool:
    return name in PRIVATE_MEMBERS or name.endswith("/ca.key")


def rotation_files(data_dir: Path) -> dict[str, bytes]:
    """What a backup adds to the database and the CA: read under crl.lock by the caller, so a
    rotation step (which holds it) is never half-copied."""
    found: dict[str, bytes] = {}
    for name in OPTIONAL:
        with contextlib.suppress(FileNotFoundError):
            found[name] = (data_dir / name).read_bytes()
    folder = data_dir / "ca-archive"
    if folder.is_dir():
        for path in sorted(folder.glob("*/ca.*")):
            name = path.relative_to(data_dir).as_posix()
            if is_rotation_member(name):
                found[name] = path.read_bytes()
    return found


def check_rotation_files(files: dict[str, bytes], passphrase: bytes | None, where: Path) -> None:
    """A backup taken during a rotation must hold a usable next CA (before anything is written)."""
    if MARKER not in files:
        return
    if NEXT_CERT not in files or NEXT_KEY not in files:
        raise ConfigError(f"{where} records a CA rotation but lacks the next CA's files.")
    try:
        CertificateAuthority.from_pem(files[NEXT_CERT], files[NEXT_KEY], passphrase)
    except CAError as exc:
        raise ConfigError(f"The next CA in {where} cannot be used: {exc}") from None


def restore_rotation_files(
    data_dir: Path, files: dict[str, bytes], passphrase: bytes | None
) -> None:
    """Put the backup's rotation state in place. Archived CAs are added (never removed). A
    rotation on disk that the backup does not know is archived and forgotten; the marker is
    written last (it alone makes a rotation real) and removed first."""
    paths = AuthorityFiles(data_dir, passphrase)
    for name, data in files.items():
        if _ARCHIVED.fullmatch(name):
            target = data_dir / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            (write_private_file if is_private(name) else write_public_file)(target, data)
    with contextlib.suppress(FileNotFoundError):
        paths.marker.unlink()
    if MARKER not in files:
        _forget_next(paths)
        return
    upcoming = CertificateAuthority.from_pem(files[NEXT_CERT], files[NEXT_KEY], passphrase)
    if passphrase is not None:
        upcoming.save(paths.next_cert, paths.next_key, passphrase)
    else:
        write_private_file(paths.next_key, files[NEXT_KEY])
        write_public_file(paths.next_cert, files[NEXT_CERT])
    write_public_file(paths.marker, files[MARKER])


def _forget_next(paths: AuthorityFiles) -> None:
    """Archive a next CA on disk (even one whose key another passphrase encrypts: only its
    certificate names the folder), then remove it."""
    try:
        cert = x509.load_pem_x509_certificate(paths.next_cert.read_bytes())
        key = paths.next_key.read_bytes()
    except (OSError, ValueError):
        return  # nothing usable to keep (a key without its certificate stays where it is)
    folder = paths.archive / f"aborted-{fingerprint_sha256(cert).replace(':', '')[:16].lower()}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private_file(folder / "ca.key", key)
    write_public_file(folder / "ca.crt", paths.next_cert.read_bytes())
    for path in (paths.next_key, paths.next_cert):
        path.unlink(missing_ok=True)
