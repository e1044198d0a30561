"""Atomic file writers: a reader (broker, next start) sees the old file or the new one, never half.

Private files are created 0600 from the first byte, so a key is never briefly readable by others.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int,
    check: Callable[[Path], None] | None = None,
) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync, rename, fsync dir.

    ``check`` runs on the finished temp file before the rename; if it raises, the temp file is
    removed and the existing ``path`` is left untouched.
    """
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, PRIVATE_MODE)
    try:
        try:
            os.fchmod(fd, PRIVATE_MODE)  # umask may only remove bits; make the mode exact
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if check is not None:
            check(tmp)
        if mode != PRIVATE_MODE:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a crash after replace must not bring back the old file)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the file is in place already
    finally:
        os.close(dir_fd)


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically write a secret (private key) readable only by its owner (0600 from creation)."""
    atomic_write(path, data, mode=PRIVATE_MODE)


def write_public_file(path: Path, data: bytes, mode: int = PUBLIC_MODE) -> None:
    """Atomically write a non-secret file (certificate, CRL) that other users may read."""
    atomic_write(path, data, mode=mode)
