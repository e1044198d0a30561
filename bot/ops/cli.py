"""``otcert``: run the bot, and the operator's tools that share its service layer.

Expected failures (bad settings, unknown person, refused archive) print ``otcert: <why>`` on
stderr and exit 1; usage errors exit 2 (argparse). Secrets are never printed.

The parser and ``main`` are here; the commands are in :mod:`bot.ops.cli_setup` (CA and
broker files) and :mod:`bot.ops.cli_ops` (running and day-to-day operation).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot.config import ConfigError, load_settings
from bot.core.errors import UserError
from bot.ops.cli_certs import cmd_certs
from bot.ops.cli_common import EXIT_ERROR, EXIT_OK, Command
from bot.ops.cli_issue import add_issue_parser, cmd_issue
from bot.ops.cli_lifecycle import cmd_expiring, days_arg
from bot.ops.cli_ops import (
    cmd_audit,
    cmd_backup,
    cmd_crl_write,
    cmd_doctor,
    cmd_restore,
    cmd_revoke,
    cmd_run,
    cmd_users,
)
from bot.ops.cli_rotate import add_rotate_parser
from bot.ops.cli_setup import (
    cmd_broker_admin_cert,
    cmd_ca_export,
    cmd_ca_import,
    cmd_ca_show,
    cmd_init,
    cmd_server_cert,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otcert",
        description="Telegram bot handing out OwnTracks TLS client certificates. Settings come "
                    "from OTCERT_* environment variables (and ./.env).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, text: str, owner: argparse._SubParsersAction[
            argparse.ArgumentParser] = sub) -> argparse.ArgumentParser:
        command = owner.add_parser(name, help=text, description=text)
        command.set_defaults(func=func)
        return command

    add("run", cmd_run, "start the bot (long polling)")
    add("init", cmd_init, "create the data dir, the CA and the CRL")
    ca = sub.add_parser("ca", help="show, export or import the CA", description="The CA.")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    imp = add("import", cmd_ca_import, "adopt an existing CA (e.g. from generate-CA.sh)", ca_sub)
    imp.add_argument("--cert", required=True, help="the CA certificate (PEM)")
    imp.add_argument("--key", required=True, help="its private key (PEM; encrypted keys need "
                                                  "OTCERT_CA_KEY_PASSPHRASE)")
    imp.add_argument("--force", action="store_true", help="replace a different existing CA")
    add("show", cmd_ca_show, "subject, validity, fingerprint and key facts of the CA", ca_sub)
    export = add("export", cmd_ca_export, "print or write the CA certificate", ca_sub)
    export.add_argument("--der", action="store_true", help="DER instead of PEM (an .otre pin)")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    add_rotate_parser(ca_sub)
    server = add("server-cert", cmd_server_cert, "key and certificate for Mosquitto, plus ca.crt")
    server.add_argument("--host", action="append", metavar="NAME", help="DNS name (repeatable)")
    server.add_argument("--ip", action="append", metavar="IP", help="IP address (repeatable)")
    server.add_argument("--out", required=True, metavar="DIR", help="folder for the files")
    server.add_argument("--days", type=int, default=825, help="validity (default and max 825)")
    server.add_argument("--force", action="store_true", help="replace existing files")
    admin = add("broker-admin-cert", cmd_broker_admin_cert,
                "the dynsec admin certificate and key (OTCERT_BROKER_ADMIN_CN), plus ca.crt")
    admin.add_argument("--out", required=True, metavar="DIR", help="folder for the files")
    crl = sub.add_parser("crl", help="certificate revocation list", description="The CRL.")
    crl_sub = crl.add_subparsers(dest="crl_command", metavar="ACTION", required=True)
    add("write", cmd_crl_write, "write the CRL now and run the reload command", crl_sub)
    add("users", cmd_users, "everyone known to the bot, with active certificates")
    revoke = add("revoke", cmd_revoke, "revoke a person's access and certificates, or one "
                                       "certificate by --serial")
    revoke.add_argument("target", metavar="USERNAME|TELEGRAM_ID", nargs="?")
    revoke.add_argument("--serial", help="one certificate (hex, with or without colons, or "
                                         "decimal), also the bot's own")
    revoke.add_argument("--reason", help="recorded in the audit log")
    audit = add("audit", cmd_audit, "the audit log, newest first")
    audit.add_argument("--person", metavar="ID|USERNAME", help="only entries about this person")
    audit.add_argument("--since", metavar="ISO", help="only entries at or after this time")
    audit.add_argument("--limit", type=_limit, default=50, help="at most N entries (default 50)")
    backup = add("backup", cmd_backup, "database and CA in one archive (safe while running)")
    backup.add_argument("file", metavar="FILE", help="the .tar.gz to write (mode 0600)")
    restore = add("restore", cmd_restore, "restore a backup into the data dir (stop the bot)")
    restore.add_argument("file", metavar="FILE")
    restore.add_argument("--force", action="store_true", help="replace an existing database/CA")
    add("doctor", cmd_doctor, "check settings, files, CA, CRL and the broker")
    certs = add("certs", cmd_certs, "every certificate the bot knows: people's and its own")
    certs.add_argument("--all", action="store_true", help="also revoked, superseded, expired")
    expiring = add("expiring", cmd_expiring, "certificates (people's and the bot's own) that "
                   "expire soon, soonest first")
    expiring.add_argument("--days", type=days_arg, default=None,
                          help="window in days (default: the largest reminder threshold)")
    add_issue_parser(add("issue", cmd_issue, "a certificate for a device or person without "
                                             "Telegram (the bot's rules, the operator as actor)"))
    return parser


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    from pki.authority import CAError
    from pki.crl import CRLError
    from storage import StorageError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "revoke" and (args.target is None) == (args.serial is None):
        parser.error("revoke takes a USERNAME|TELEGRAM_ID or --serial SERIAL (one of them)")
    try:
        settings = load_settings()
        func: Command = args.func
        return func(settings, args)
    except (ConfigError, UserError, StorageError, CAError, CRLError) as exc:
        print(f"otcert: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
