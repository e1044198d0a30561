"""``otcert`` commands for running and operating the bot: run, CRL, people, audit, backups.

Why apart from :mod:`bot.ops.cli_setup`: these work on a set-up data dir through the service
layer (or the archive and doctor modules), the same code the bot uses; secrets stay out of
their output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.config import ConfigError, Settings
from bot.core import locks
from bot.hardening import make_undumpable
from bot.logs import setup_logging
from bot.ops.cli_common import EXIT_ERROR, EXIT_OK, print_crl_report, print_revocation_report


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from telegram.error import InvalidToken, TelegramError

    from bot.telegram.app import build_application
    from bot.wiring import ensure_data_dir, load_ca

    token = settings.require_bot()
    make_undumpable()  # before the CA key is read: no other process may read our memory
    passphrase = settings.ca_passphrase()
    setup_logging(settings.log_level, [token, passphrase.decode() if passphrase else ""])
    ensure_data_dir(settings.data_dir)
    # Held until exit: `otcert restore` refuses while a bot holds the database.
    locks.hold_for_lifetime(settings.data_dir / locks.BOT_LOCK_NAME)
    load_ca(settings, create=True)  # fail fast on an unreadable or insecure CA key
    app = build_application(settings)
    try:
        app.run_polling(allowed_updates=["message", "callback_query"], close_loop=True)
    except InvalidToken:
        # PTB's message quotes the token; never let it reach a terminal or a journal.
        raise ConfigError(
            "Telegram rejected OTCERT_BOT_TOKEN (or OTCERT_TELEGRAM_API_URL is wrong)."
        ) from None
    except TelegramError as exc:
        raise ConfigError(f"Cannot reach the Telegram Bot API ({type(exc).__name__}).") from None
    return EXIT_OK


# ---- people, revocation, audit ----------------------------------------------------------------


def cmd_crl_write(settings: Settings, args: argparse.Namespace) -> int:
    return print_crl_report(settings)


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    from bot.core.clock import utcnow
    from bot.core.lifecycle_rules import days_left
    from bot.wiring import open_service

    async def listing() -> int:
        async with open_service(settings) as service:
            rows = (await service.people_with_certificates(None)).rows
        now = utcnow()
        if not rows:
            print("Nobody has talked to the bot yet.")
        for person, certs in rows:
            print(f"{person.telegram_id:>12}  {person.status.value:<8}  "
                  f"{person.mqtt_username or '-':<20}  {person.display_name}"
                  f"{' @' + person.tg_username if person.tg_username else ''}"
                  f"{' (' + person.platform.value + ')' if person.platform else ''}")
            for cert in certs:
                print(f"{'':>14}{cert.device}: serial {cert.serial}, "
                      f"until {cert.not_after:%Y-%m-%d} "
                      f"({days_left(cert.not_after, now)} days left)")
        return EXIT_OK

    return asyncio.run(listing())


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.cli_certs import cmd_revoke_serial
    from bot.wiring import open_service

    if (args.target is None) == (getattr(args, "serial", None) is None):
        raise ConfigError("Give either a USERNAME|TELEGRAM_ID or --serial SERIAL.")
    if args.target is None:
        return cmd_revoke_serial(settings, args)

    async def revoke() -> int:
        async with open_service(settings) as service:
            done = await service.revoke(None, args.target, args.reason)
        person, report = done.person, done.crl
        print(f"Revoked {person.mqtt_username} (Telegram id {person.telegram_id}) and "
              f"{len(done.certificates)} certificate(s).")
        return print_revocation_report(settings, report)

    return asyncio.run(revoke())


def actor_label(actor_id: int | None) -> str:
    """Who an audit row names, as `otcert audit` shows it (see storage.models)."""
    from storage import OPERATOR_ID

    if actor_id is None:
        return "bot"
    return "operator" if actor_id == OPERATOR_ID else str(actor_id)


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import open_service

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise ConfigError(f"--since {args.since!r} is not an ISO date or time.") from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)

    async def listing() -> int:
        async with open_service(settings) as service:
            subject = None
            if args.person is not None:
                subject = (await service.find_person(args.person)).telegram_id
            entries = await service.audit(None, subject_id=subject, since=since,
                                          limit=args.limit)
        for entry in entries:
            actor = actor_label(entry.actor_id)
            details = json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
            print(f"{entry.at:%Y-%m-%d %H:%M:%S}  {actor:>12}  {entry.action:<16}  "
                  f"{entry.subject_id if entry.subject_id is not None else '-':>12}  {details}")
        if not entries:
            print("No audit entries match.")
        return EXIT_OK

    return asyncio.run(listing())


# ---- backup, restore, doctor ------------------------------------------------------------------


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.archive import create_backup

    summary = asyncio.run(create_backup(settings, Path(args.file)))
    print(f"Backup written to {summary.path} (0600): database schema {summary.schema_version}, "
          f"CA {summary.ca_fingerprint}.")
    if not summary.key_encrypted:
        print("Note: the CA key inside is NOT encrypted; keep the archive as safe as the key.")
    return EXIT_OK


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.archive import restore_backup
    from bot.wiring import ensure_data_dir

    ensure_data_dir(settings.data_dir)
    verified, kept = asyncio.run(restore_backup(settings, Path(args.file), force=args.force))
    print(f"Restored {settings.database_path} and the CA {verified.ca.fingerprint_sha256} "
          f"(backup of {verified.manifest.get('created_at')}).")
    if kept.skipped:
        print(f"Warning: revocations made after the backup were not carried over: {kept.skipped}."
              " Revoke those people again.", file=sys.stderr)
    elif kept.people or kept.certificates or kept.imported:
        print(f"Carried over from the replaced database: {kept.people} person(s) revoked or "
              f"denied, {kept.certificates} certificate(s) ended, {kept.imported} certificate(s) "
              "issued after the backup.")
    if kept.left_out:
        print(f"Warning: {kept.left_out} valid certificate(s) issued after the backup could not "
              "be carried over (another or unknown CA, or the owner's name is taken in the "
              "backup): they keep working until they expire unless the CA is replaced.",
              file=sys.stderr)
    return print_crl_report(settings)


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.doctor import Level, render, run_checks

    findings = asyncio.run(run_checks(settings))
    print(render(findings))
    failed = sum(f.level is Level.FAIL for f in findings)
    print(f"\n{failed} problem(s) found." if failed else "\nNo problems found.")
    return EXIT_ERROR if failed else EXIT_OK
