"""Atomic writers: exact modes from creation, old file kept when a check fails."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pki import write_private_file, write_public_file
from pki.files import atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_file_is_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private_file(tmp_path / "key.pem", b"secret")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "key.pem") == 0o600
    assert (tmp_path / "key.pem").read_bytes() == b"secret"


def test_private_file_replaces_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private_file(path, b"new")
    assert _mode(path) == 0o600
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_public_file_mode(tmp_path: Path) -> None:
    write_public_file(tmp_path / "ca.crt", b"cert")
    assert _mode(tmp_path / "ca.crt") == 0o644


def test_failed_check_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "crl.pem"
    path.write_bytes(b"old")
    seen: list[int] = []

    def reject(tmp: Path) -> None:
        seen.append(_mode(tmp))  # the temp file is private while it is being checked
        assert tmp.parent == tmp_path and tmp.read_bytes() == b"new"
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        atomic_write(path, b"new", mode=0o644, check=reject)
    assert seen == [0o600]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["crl.pem"]
