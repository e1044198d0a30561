"""Carrying revocations from a database that a restore replaces into the backup replacing it.

Why: restoring an old backup would otherwise make every person and certificate revoked since
the backup valid again. The old file is opened read-only and never migrated; a file that
cannot be read (a common reason to restore) is reported, not fatal. Everything is applied to
the staged copy in one transaction before it replaces anything, so a crash part-way leaves
the old database in place and the restore can simply run again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage._common import encode_details, to_db
from storage.db import BUSY_TIMEOUT_MS, SCHEMA_VERSION
from storage.models import OPERATOR_ID

# Known to the backup: keep the less privileged, later state (revoked, denied, or pending
# again after a revocation and a new request), never a username.
_PEOPLE = """
    UPDATE people SET status = o.status, decided_at = o.decided_at, decided_by = o.decided_by,
                      reason = o.reason, updated_at = o.updated_at
    FROM old.people AS o
    WHERE people.telegram_id = o.telegram_id
      AND ((o.status IN ('revoked', 'denied') AND people.status IN ('approved', 'pending'))
           OR (o.status = 'pending' AND people.status = 'approved'))"""
# Matched by serial and fingerprint, so another CA's certificate never matches.
_CERTIFICATES = """
    UPDATE certificates SET status = o.status, revoked_at = o.revoked_at,
                            revocation_reason = o.revocation_reason
    FROM old.certificates AS o
    WHERE certificates.serial = o.serial
      AND certificates.fingerprint_sha256 = o.fingerprint_sha256
      AND certificates.status = 'active' AND o.status IN ('revoked', 'superseded')"""
# Delivered after the backup: else the next start would revoke it as undelivered.
_DELIVERED = """
    UPDATE certificates SET delivered_at = o.delivered_at
    FROM old.certificates AS o
    WHERE certificates.serial = o.serial
      AND certificates.fingerprint_sha256 = o.fingerprint_sha256
      AND certificates.delivered_at IS NULL AND o.delivered_at IS NOT NULL"""
# Issued after the backup: the rows themselves (revoked ones stay in the CRL, valid ones stay
# revocable), with their owners when the backup does not know them.
_IMPORT_OWNERS = """
    INSERT OR IGNORE INTO people SELECT * FROM old.people
    WHERE telegram_id NOT IN (SELECT telegram_id FROM main.people)
      AND telegram_id IN (SELECT telegram_id FROM old.certificates
                          WHERE serial NOT IN (SELECT serial FROM main.certificates))"""
_IMPORT = """
    INSERT INTO certificates SELECT * FROM old.certificates
    WHERE serial NOT IN (SELECT serial FROM main.certificates)
      AND telegram_id IN (SELECT telegram_id FROM main.people)"""
# An owner whose username someone in the backup has taken: revoked, without the name, so at
# least their revoked certificates stay in the CRL (their valid ones are left out).
_IMPORT_CLASHING_OWNERS = """
    INSERT INTO people (telegram_id, display_name, tg_username, status, mqtt_username,
                        requested_at, decided_at, decided_by, reason, created_at, updated_at,
                        platform)
    SELECT telegram_id, display_name, tg_username, 'revoked', NULL, requested_at, decided_at,
           decided_by, 'username taken in the restored backup', created_at, updated_at, platform
    FROM old.people
    WHERE telegram_id NOT IN (SELECT telegram_id FROM main.people)
      AND telegram_id IN (SELECT telegram_id FROM old.certificates
                          WHERE serial NOT IN (SELECT serial FROM main.certificates)
                            AND status IN ('revoked', 'superseded'))"""
_IMPORT_ENDED = """
    INSERT INTO certificates SELECT * FROM old.certificates
    WHERE serial NOT IN (SELECT serial FROM main.certificates)
      AND status IN ('revoked', 'superseded')
      AND telegram_id IN (SELECT telegram_id FROM main.people)"""
_LEFT_OUT = """
    SELECT count(*) FROM old.certificates
    WHERE serial NOT IN (SELECT serial FROM main.certificates) AND not_after > ?"""
# Secret messages still to be deleted from chats.
_DELETIONS = """
    INSERT OR IGNORE INTO scheduled_deletions (chat_id, message_id, due_at)
    SELECT chat_id, message_id, due_at FROM old.scheduled_deletions"""


@dataclass(frozen=True)
class Carried:
    people: int = 0  # revoked or denied again
    certificates: int = 0  # known to the backup, revoked or superseded again
    imported: int = 0  # issued after the backup, copied over
    left_out: int = 0  # issued after the backup, still valid, not copied
    skipped: str | None = None  # why nothing was carried


def carry_revocations(old: Path, staged: Path, *, same_ca: bool, now: datetime) -> Carried:
    """Apply to ``staged`` what ``old`` knows and it does not. Both must be at the current
    schema (migrate the staged backup first). ``same_ca``: whether the certificates in
    ``old`` were issued by the CA being restored (else none is imported)."""
    old_uri = f"{Path(old).resolve().as_uri()}?mode=ro"
    try:
        probe = sqlite3.connect(old_uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            version = int(probe.execute("PRAGMA user_version").fetchone()[0])
            intact = probe.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            probe.close()
    except sqlite3.Error as exc:
        return Carried(skipped=f"the database being replaced cannot be read ({exc})")
    if not intact:
        return Carried(skipped="the database being replaced is damaged")
    if version != SCHEMA_VERSION:
        return Carried(skipped=f"the database being replaced has schema version {version}, "
                               f"this program {SCHEMA_VERSION}")
    try:
        return _carry(old_uri, staged, same_ca=same_ca, now=now)
    except sqlite3.Error as exc:  # rolled back: the staged copy is as it was
        return Carried(skipped=f"the revocations could not be applied ({exc})")


def _carry(old_uri: str, staged: Path, *, same_ca: bool, now: datetime) -> Carried:
    conn = sqlite3.connect(f"{Path(staged).resolve().as_uri()}?mode=rw", uri=True,
                           isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("ATTACH DATABASE ? AS old", (old_uri,))
        conn.execute("BEGIN IMMEDIATE")
        try:
            carried = _apply(conn, same_ca=same_ca, now=now)
            details = {"people": carried.people, "certificates": carried.certificates,
                       "imported": carried.imported, "left_out": carried.left_out}
            conn.execute(
                "INSERT INTO audit_log (at, actor_id, action, subject_id, details) "
                "VALUES (?, ?, 'restore-kept-revocations', NULL, ?)",
                (to_db(now), OPERATOR_ID, encode_details(details)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return carried


def _apply(conn: sqlite3.Connection, *, same_ca: bool, now: datetime) -> Carried:
    people = conn.execute(_PEOPLE).rowcount
    certificates = conn.execute(_CERTIFICATES).rowcount
    conn.execute(_DELIVERED)
    conn.execute(_DELETIONS)
    imported = 0
    if same_ca:
        conn.execute(_IMPORT_OWNERS)
        imported = conn.execute(_IMPORT).rowcount
        conn.execute(_IMPORT_CLASHING_OWNERS)
        imported += conn.execute(_IMPORT_ENDED).rowcount
    left_out = int(conn.execute(_LEFT_OUT, (to_db(now),)).fetchone()[0])
    return Carried(people, certificates, imported, left_out)
