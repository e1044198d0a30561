"""The schema as its history: every migration step, oldest first; the version is their count.

``storage.db`` runs the steps a file has not seen yet when it opens the file.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_AUDIT_LOG_NO_UPDATE = """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"""

# Forward-only schema history. Step i (0-based) takes user_version i to i + 1. Never edit a
# released step; append a new one. Statements run in one transaction together with the
# user_version bump, so a failed step leaves the file at the previous version.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: people, their certificates, and the audit log.
    (
        """CREATE TABLE people (
            telegram_id   INTEGER PRIMARY KEY,
            display_name  TEXT NOT NULL,
            tg_username   TEXT,
            status        TEXT NOT NULL
                          CHECK (status IN ('pending', 'approved', 'denied', 'revoked')),
            mqtt_username TEXT COLLATE NOCASE,
            requested_at  TEXT,
            decided_at    TEXT,
            decided_by    INTEGER,
            reason        TEXT,
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX people_mqtt_username ON people (mqtt_username COLLATE NOCASE)",
        "CREATE INDEX people_status ON people (status)",
        """CREATE TABLE certificates (
            serial             TEXT PRIMARY KEY,
            telegram_id        INTEGER NOT NULL REFERENCES people (telegram_id),
            mqtt_username      TEXT NOT NULL,
            device             TEXT NOT NULL,
            fingerprint_sha256 TEXT NOT NULL,
            not_before         TEXT NOT NULL,
            not_after          TEXT NOT NULL,
            issued_at          TEXT NOT NULL,
            status             TEXT NOT NULL
                               CHECK (status IN ('active', 'revoked', 'superseded', 'expired')),
            revoked_at         TEXT,
            revocation_reason  TEXT
        )""",
        "CREATE INDEX certificates_owner ON certificates (telegram_id, device, status)",
        "CREATE INDEX certificates_status ON certificates (status, not_after)",
        """CREATE TABLE audit_log (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            at         TEXT NOT NULL,
            actor_id   INTEGER,
            action     TEXT NOT NULL,
            subject_id INTEGER,
            details    TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX audit_log_subject_at ON audit_log (subject_id, at)",
        "CREATE INDEX audit_log_at ON audit_log (at)",
    ),
    # 2: state the bot needs across restarts: message deletions, CA pin, counters, updates.
    (
        """CREATE TABLE scheduled_deletions (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            chat_id    INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            due_at     TEXT NOT NULL,
            UNIQUE (chat_id, message_id)
        )""",
        "CREATE INDEX scheduled_deletions_due ON scheduled_deletions (due_at)",
        """CREATE TABLE pins (
            id                 INTEGER PRIMARY KEY AUTOINCREMENT,
            der                BLOB NOT NULL,
            fingerprint_sha256 TEXT NOT NULL,
            changed_at         TEXT NOT NULL,
            changed_by         INTEGER
        )""",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        """CREATE TABLE processed_updates (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            update_id  INTEGER NOT NULL UNIQUE,
            claimed_at TEXT NOT NULL
        )""",
    ),
    # 3: phone platform per person; the audit log made append-only in the schema itself; an
    #    index for "was this username ever used by someone else". (The CRL query, status IN
    #    (revoked, superseded) AND not_after > now, is served by certificates_status.)
    (
        "ALTER TABLE people ADD COLUMN platform TEXT CHECK (platform IN ('ios', 'android'))",
        _AUDIT_LOG_NO_UPDATE,
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        "CREATE INDEX certificates_username ON certificates (mqtt_username COLLATE NOCASE)",
    ),
    # 4: delivery tracking (a certificate whose passphrase never reached its owner, e.g. after
    #    a crash mid-delivery, is revoked at the next start) and the admins' copies of each
    #    access request (so the copies still show who decided after a restart).
    (
        "ALTER TABLE certificates ADD COLUMN delivered_at TEXT",
        "UPDATE certificates SET delivered_at = issued_at",
        """CREATE INDEX certificates_undelivered ON certificates (status)
           WHERE delivered_at IS NULL""",
        """CREATE TABLE request_notices (
            telegram_id INTEGER NOT NULL,
            chat_id     INTEGER NOT NULL,
            message_id  INTEGER NOT NULL,
            PRIMARY KEY (telegram_id, chat_id, message_id)
        ) WITHOUT ROWID""",
    ),
    # 5: the operator's shell is stored as actor 0 (models.OPERATOR_ID), as approve and deny
    #    always did; NULL is left to the bot itself (expiry, undelivered revocations). Earlier
    #    revocations, pins, re-pins and restores from the shell wrote NULL: they are converted.
    #    The append-only trigger is lifted for this one rewrite of who, never of what.
    (
        "DROP TRIGGER audit_log_no_update",
        """UPDATE audit_log SET actor_id = 0
           WHERE actor_id IS NULL
             AND action IN ('revoke', 'set_pin', 'repin', 'restore-kept-revocations')""",
        _AUDIT_LOG_NO_UPDATE,
        "UPDATE people SET decided_by = 0 WHERE decided_by IS NULL AND status = 'revoked'",
        "UPDATE pins SET changed_by = 0 WHERE changed_by IS NULL",
    ),
    # 6: each person's chat language (/language, and what Telegram last reported), kept
    #    apart from people because admins and people who never sent /request have no row.
    (
        """CREATE TABLE chat_languages (
            telegram_id INTEGER PRIMARY KEY,
            chosen      TEXT,
            telegram    TEXT,
            updated_at  TEXT NOT NULL
        )""",
    ),
    # 7 (issue 14): the bot's own certificates (broker-server, broker-admin), so they can be
    #    listed and revoked like people's; they have no owner, hence a table of their own.
    (
        """CREATE TABLE service_certificates (
            serial             TEXT PRIMARY KEY,
            purpose            TEXT NOT NULL,
            subject            TEXT NOT NULL,
            fingerprint_sha256 TEXT NOT NULL,
            not_before         TEXT NOT NULL,
            not_after          TEXT NOT NULL,
            issued_at          TEXT NOT NULL,
            status             TEXT NOT NULL
                               CHECK (status IN ('active', 'revoked', 'superseded', 'expired')),
            revoked_at         TEXT,
            revocation_reason  TEXT
        )""",
        "CREATE INDEX service_certificates_purpose ON service_certificates (purpose, status)",
    ),
    # 8 (issue 13): certificate lifecycle. A renewal links the old certificate to its
    #    successor: the old one stays active (valid, not in the CRL) until it expires, but
    #    is no longer reminded.
    #    Reminder marks: one row per subject (a certificate serial, or an infrastructure
    #    certificate such as 'ca:<fingerprint>'), audience and threshold; claimed before the
    #    message is sent, sent_at set after, so a crash costs at most one duplicate.
    (
        """CREATE TABLE renewals (
            old_serial TEXT PRIMARY KEY,
            new_serial TEXT NOT NULL,
            renewed_at TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX renewals_new ON renewals (new_serial)",
        """CREATE TABLE reminders (
            subject    TEXT NOT NULL,
            audience   TEXT NOT NULL CHECK (audience IN ('owner', 'admins')),
            days       INTEGER NOT NULL,
            claimed_at TEXT NOT NULL,
            sent_at    TEXT,
            outcome    TEXT,
            PRIMARY KEY (subject, audience, days)
        ) WITHOUT ROWID""",
        # The smallest threshold already reminded to the owner, copied from the marks when a
        # reminder is confirmed: the due query then filters inside this covering index
        # instead of probing the marks for every certificate in the 30-day window.
        "ALTER TABLE certificates ADD COLUMN reminded_below INTEGER",
        """CREATE INDEX certificates_reminders ON certificates (status, not_after, reminded_below)
           WHERE delivered_at IS NOT NULL""",
    ),
    # 9 (issue 17): which CA issued each certificate (its SHA-256 fingerprint), people's and
    #    the bot's own, so that during a CA rotation each CA's CRL lists only its own
    #    certificates. Rows from before stay NULL until the bot backfills them with the CA
    #    current at that time (SQL cannot know it). rotation_offers remembers who was already
    #    offered a certificate from the next CA, so a restart does not offer it twice.
    (
        "ALTER TABLE certificates ADD COLUMN issuer TEXT",
        "CREATE INDEX certificates_issuer ON certificates (issuer, status)",
        "ALTER TABLE service_certificates ADD COLUMN issuer TEXT",
        """CREATE TABLE rotation_offers (
            telegram_id INTEGER NOT NULL,
            next_ca     TEXT NOT NULL,
            offered_at  TEXT NOT NULL,
            PRIMARY KEY (telegram_id, next_ca)
        )""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
