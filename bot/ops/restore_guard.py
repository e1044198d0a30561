"""What ``otcert restore`` must get right besides the files: who else is running, the
manifest's shape, and the facts that must survive the swap (CRL number, the bot's own
revoked certificates).

Why its own module: each is a small check the archive format does not care about.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.config import ConfigError
from bot.core import locks
from bot.core.crl import crl_number_on_disk

REQUIRED_MANIFEST_FIELDS = ("format", "version", "files")


@contextlib.contextmanager
def no_bot_running(data_dir: Path) -> Iterator[None]:
    """Hold the bot lock exclusively for the restore; refuse at once while a bot holds it."""
    try:
        with locks.exclusive_now(data_dir / locks.BOT_LOCK_NAME):
            yield
    except locks.LockBusy:
        raise ConfigError(
            f"A bot is running on {data_dir} (it holds {locks.BOT_LOCK_NAME}): stop it, "
            "then restore."
        ) from None


def check_manifest(manifest: Any, path: Path) -> None:
    """One clear line for a manifest without a field a restore needs (never a traceback)."""
    if not isinstance(manifest, dict):
        raise ConfigError(f"{path} is not an otcert backup (no valid manifest).")
    for name in REQUIRED_MANIFEST_FIELDS:
        if name not in manifest:
            raise ConfigError(f"{path}: the backup manifest has no '{name}' field.")
    if not isinstance(manifest["files"], dict):
        raise ConfigError(f"{path}: the backup manifest's 'files' field is not a table.")


def _counter(conn: sqlite3.Connection, schema: str) -> int:
    try:
        row = conn.execute(
            f"SELECT value FROM {schema}.counters WHERE name = 'crl_number'"  # noqa: S608
        ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


_CARRY_SERVICE = """
    INSERT OR IGNORE INTO main.service_certificates SELECT * FROM old.service_certificates"""
_END_SERVICE = """
    UPDATE main.service_certificates
       SET status = o.status, revoked_at = o.revoked_at, revocation_reason = o.revocation_reason
      FROM old.service_certificates AS o
     WHERE main.service_certificates.serial = o.serial
       AND main.service_certificates.status = 'active' AND o.status != 'active'"""


def carry_crl_facts(current: Path, staged: Path, crl_path: Path) -> int:
    """Into ``staged``: a CRL number no lower than the replaced database's or the CRL on
    disk's, and the bot's own certificates the replaced database knew (a revoked broker-admin
    pair stays revoked). Returns the CRL number now stored. Both files at the current schema."""
    floor = crl_number_on_disk(crl_path)
    conn = sqlite3.connect(f"{Path(staged).resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    try:
        attached = False
        if current.exists():
            try:
                conn.execute("ATTACH DATABASE ? AS old", (f"{current.resolve().as_uri()}?mode=ro",))
                attached = True
            except sqlite3.Error:
                pass  # an unreadable database: carry_revocations has said what was lost
        with conn:
            if attached:
                floor = max(floor, _counter(conn, "old"))
                with contextlib.suppress(sqlite3.Error):  # an older or damaged schema
                    conn.execute(_CARRY_SERVICE)
                    conn.execute(_END_SERVICE)
            number = max(floor, _counter(conn, "main"))
            conn.execute(
                """INSERT INTO counters (name, value) VALUES ('crl_number', ?)
                   ON CONFLICT (name) DO UPDATE SET value = excluded.value""",
                (number,),
            )
        if attached:
            conn.execute("DETACH DATABASE old")
    finally:
        conn.close()
    return number
