"""The SQLite file: connection, pragmas, migrating (steps in storage.schema), transactions,
backup and restore.

One file holds everything that must survive a restart. Writers serialise on ``BEGIN IMMEDIATE``
(so two processes, or two ``Database`` objects, never both decide on the same row) and each
``Database`` also serialises its own tasks with an asyncio lock, because all of them share one
SQLite connection and would otherwise see each other's uncommitted statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite

from storage.errors import NotFound, StorageError
from storage.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["BUSY_TIMEOUT_MS", "MIGRATIONS", "SCHEMA_VERSION", "Database", "restore_database"]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


class Database:
    """An open storage file. Use :meth:`open`; close it (or use ``async with``) when done."""

    SCHEMA_VERSION: int = SCHEMA_VERSION

    def __init__(
        self, conn: aiosqlite.Connection, path: Path, reader: aiosqlite.Connection | None = None
    ) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        # Reads get a connection (and thread) of their own: in WAL mode they then never queue
        # behind a write transaction and its fsync (a /start during a burst of deliveries).
        self._reader = reader or conn
        self._read_lock = asyncio.Lock() if reader is not None else self._lock
        self._closed = False
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> Database:
        """Open (creating if needed) the file, set pragmas and bring the schema up to date.

        The folder must exist: a typo in the data dir should fail loudly, not scatter files.
        """
        path = Path(path)
        if not path.parent.is_dir():
            raise StorageError(f"The database folder {path.parent} does not exist.")
        if not path.exists():
            # Personal data (names, ids): readable by the bot's user only. SQLite gives the
            # -wal and -shm files the same mode as the main file.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = await _connect(path)
        reader: aiosqlite.Connection | None = None
        try:
            await conn.execute("PRAGMA synchronous = FULL")
            async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                row = await cur.fetchone()
            wal = row is not None and str(row[0]).lower() == "wal"
            if not wal:
                log.warning("SQLite refused WAL mode for %s (got %r)", path, row)
            await cls(conn, path)._migrate()
            if wal:  # without WAL a reader would block the writer: share the one connection
                reader = await _connect(path)
                await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            if reader is not None:
                await reader.close()
            await conn.close()
            raise
        return cls(conn, path, reader)

    async def close(self) -> None:
        """Close the connections (waiting for a running transaction or read); twice is fine."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._reader is not self._conn:
                async with self._read_lock:  # a read in progress finishes first
                    await self._reader.close()
            await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        async with self.reading() as conn:
            return await _user_version(conn)

    async def _migrate(self) -> None:
        async with self.transaction() as conn:
            current = await _user_version(conn)  # read under the write lock: one migrator
            if current > SCHEMA_VERSION:
                raise StorageError(
                    f"The database {self.path} has schema version {current}, newer than this "
                    f"program understands ({SCHEMA_VERSION}). Upgrade the bot."
                )
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {version + 1}")
                log.info("Migrated %s to schema version %d", self.path, version + 1)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE``, commit on success, roll back on any error.

        IMMEDIATE takes the write lock up front, so a read-then-write decision (e.g. "is this
        person still pending?") cannot race another connection; others wait ``busy_timeout``.
        """
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        """Roll back whatever is open. Always queued, never skipped on ``in_transaction``: a
        task cancelled while BEGIN waited for the lock leaves that BEGIN still queued on the
        connection's thread, and this ROLLBACK runs after it (so the cancelled task finishes
        only once that BEGIN is resolved, at most ``BUSY_TIMEOUT_MS`` later)."""
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "no transaction is active" not in str(exc):
                log.exception("ROLLBACK failed on %s", self.path)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """A connection for reads, inside one read transaction: every statement in the block
        sees the same committed snapshot, never another task's half-done transaction."""
        async with self._read_lock:
            if self._reader is self._conn:
                yield self._conn  # the lock already keeps transactions out
                return
            try:
                await self._reader.execute("BEGIN")
                yield self._reader
            finally:
                try:
                    await _end_read(self._reader)
                except sqlite3.Error:  # never hide what went wrong inside the block
                    log.exception("ending a read transaction failed on %s", self.path)

    async def backup(self, dest: Path) -> None:
        """Write a consistent copy of the live database to ``dest`` (replaced atomically).

        Uses SQLite's online backup API over a separate connection in one step, which copies a
        single snapshot; in WAL mode writers keep going meanwhile.
        """
        await asyncio.to_thread(_copy_database, self.path, Path(dest))


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _end_read(conn: aiosqlite.Connection) -> None:
    """End a read transaction; queued after a BEGIN that a cancellation interrupted."""
    try:
        await conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "no transaction is active" not in str(exc):
            raise


async def _user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def _copy_database(src: Path, dest: Path, *, read_only: bool = False) -> None:
    """Back up ``src`` into a temp file beside ``dest``, check it, then rename over ``dest``."""
    if not dest.parent.is_dir():
        raise StorageError(f"The backup folder {dest.parent} does not exist.")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    _remove_sqlite_files(tmp)
    os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    try:
        mode = "ro" if read_only else "rw"
        source = sqlite3.connect(f"{src.resolve().as_uri()}?mode={mode}", uri=True)
        try:
            source.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            target = sqlite3.connect(tmp)
            try:
                source.backup(target, pages=-1)
                # A self-contained single file: no -wal beside the copy.
                target.execute("PRAGMA journal_mode = DELETE")
                _require_intact(target, what=f"The backup of {src}")
            finally:
                target.close()
        finally:
            source.close()
        _fsync(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        _remove_sqlite_files(tmp)
        raise


async def restore_database(src: Path, dest: Path) -> None:
    """Replace ``dest`` with a verified copy of the backup ``src``.

    Stop the bot first: a process that still has ``dest`` open would keep writing to the old
    file. ``src`` is checked (integrity, a schema this program knows) before anything is
    touched, the copy is written beside ``dest`` and renamed over it, and stale ``-wal``/``-shm``
    files of the old database are removed so SQLite cannot replay them onto the restored one.
    """
    await asyncio.to_thread(_restore, Path(src), Path(dest))


def _restore(src: Path, dest: Path) -> None:
    if not src.is_file():
        raise NotFound(f"The backup {src} does not exist.")
    try:
        check = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"The backup {src} cannot be opened: {exc}.") from exc
    try:
        _require_intact(check, what=f"The backup {src}")
        version = int(check.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"The backup {src} is not a usable database: {exc}.") from exc
    finally:
        check.close()
    if version < 1 or version > SCHEMA_VERSION or "people" not in tables:
        raise StorageError(
            f"The backup {src} is not a bot database this program can use "
            f"(schema version {version}; supported 1 to {SCHEMA_VERSION})."
        )
    if not dest.parent.is_dir():
        raise StorageError(f"The database folder {dest.parent} does not exist.")
    tmp = dest.with_name(f".{dest.name}.restore-{os.getpid()}")
    _copy_database(src, tmp, read_only=True)
    try:
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _require_intact(conn: sqlite3.Connection, *, what: str) -> None:
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{what} is damaged: {exc}.") from exc
    if [tuple(r) for r in rows] != [("ok",)]:
        raise StorageError(f"{what} failed SQLite's integrity check: {rows[0][0]}.")


def _remove_sqlite_files(path: Path) -> None:
    for name in (str(path), f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        Path(name).unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        _fsync(path)

