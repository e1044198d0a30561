"""``otcert``: run the bot, and the operator's tools that share its service layer.

Expected failures (bad settings, unknown person, refused archive) print ``otcert: <why>`` on
stderr and exit 1; usage errors exit 2 (argparse). Secrets are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.errors import UserError
from bot.logs import setup_logging

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

Command = Callable[[Settings, argparse.Namespace], int]


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from telegram.error import InvalidToken, TelegramError

    from bot.app import build_application
    from bot.wiring import ensure_data_dir, load_ca

    token = settings.require_bot()
    passphrase = settings.ca_passphrase()
    setup_logging(settings.log_level, [token, passphrase.decode() if passphrase else ""])
    ensure_data_dir(settings.data_dir)
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


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import ensure_data_dir, load_ca

    ensure_data_dir(settings.data_dir)
    existed = settings.ca_cert_path.exists()
    ca = load_ca(settings, create=True)
    print(f"{'Existing' if existed else 'New'} CA in {settings.data_dir}")
    print(f"  certificate: {settings.ca_cert_path}")
    print(f"  key:         {settings.ca_key_path} (0600"
          f"{', encrypted' if settings.ca_passphrase() else ''})")
    print(f"  SHA-256:     {ca.fingerprint_sha256}")
    asyncio.run(_write_crl(settings))
    print(f"  CRL:         {settings.effective_crl_path}")
    return EXIT_OK


async def _write_crl(settings: Settings) -> None:
    from bot.wiring import open_service

    async with open_service(settings) as service:
        report = await service.refresh_crl()
        if not report.written:
            raise ConfigError(report.error or "CRL not written")


# ---- the CA ----------------------------------------------------------------------------------


def cmd_ca_import(settings: Settings, args: argparse.Namespace) -> int:
    """Adopt an existing CA (e.g. generate-CA.sh's) so phones that trust it keep working."""
    from bot.wiring import ensure_data_dir
    from pki.authority import CAError, CertificateAuthority

    try:
        cert_pem, key_pem = Path(args.cert).read_bytes(), Path(args.key).read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {exc.filename}: {exc.strerror}.") from None
    passphrase = settings.ca_passphrase()
    try:
        ca = CertificateAuthority.from_pem(cert_pem, key_pem, passphrase)
    except CAError as exc:
        raise ConfigError(f"Cannot import this CA: {exc}") from None
    ensure_data_dir(settings.data_dir)
    cert_path, key_path = settings.ca_cert_path, settings.ca_key_path
    if cert_path.exists() or key_path.exists():
        current = _fingerprint_of(cert_path)
        if current != ca.fingerprint_sha256:
            if not args.force:
                raise ConfigError(
                    f"{settings.data_dir} already holds a different CA ({current or 'unreadable'})."
                    " Certificates it issued would stop working; add --force to replace it "
                    "(the old files are kept as ca.crt.old and ca.key.old)."
                )
            for path in (cert_path, key_path):
                if path.exists():
                    os.replace(path, path.with_name(path.name + ".old"))
    ca.save(cert_path, key_path, passphrase)
    print(f"Imported CA {ca.certificate.subject.rfc4514_string()}")
    print(f"  SHA-256: {ca.fingerprint_sha256}")
    print(f"  key:     {key_path} (0600, {'encrypted' if passphrase else 'NOT encrypted'})")
    return _print_crl_report(settings)


def _fingerprint_of(path: Path) -> str | None:
    from cryptography import x509

    from pki.bundle import fingerprint_sha256

    try:
        return fingerprint_sha256(x509.load_pem_x509_certificate(path.read_bytes()))
    except (OSError, ValueError):
        return None


def cmd_ca_show(settings: Settings, args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from pki.bundle import fingerprint_sha256

    try:
        cert = x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"Cannot read {settings.ca_cert_path}: {exc.strerror} "
                          "(run `otcert init`).") from None
    except ValueError:
        raise ConfigError(f"{settings.ca_cert_path} is not a PEM certificate.") from None
    key = cert.public_key()
    kind = (f"RSA {key.key_size}" if isinstance(key, rsa.RSAPublicKey)
            else f"EC {key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey)
            else type(key).__name__)
    days_left = (cert.not_valid_after_utc - datetime.now(UTC)).days
    print(f"subject:     {cert.subject.rfc4514_string()}")
    print(f"issuer:      {cert.issuer.rfc4514_string()}")
    print(f"serial:      {cert.serial_number:x}")
    print(f"valid from:  {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    print(f"valid until: {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({days_left} days left)")
    print(f"SHA-256:     {fingerprint_sha256(cert)}")
    print(f"key type:    {kind}")
    try:
        mode = settings.ca_key_path.stat().st_mode & 0o777
        encrypted = b"ENCRYPTED" in settings.ca_key_path.read_bytes()
        print(f"key file:    {settings.ca_key_path} (mode {mode:04o}, "
              f"{'encrypted' if encrypted else 'not encrypted'})")
    except OSError as exc:
        print(f"key file:    {settings.ca_key_path} ({exc.strerror})")
    return EXIT_OK


def cmd_ca_export(settings: Settings, args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from pki.files import write_public_file

    try:
        cert = x509.load_pem_x509_certificate(settings.ca_cert_path.read_bytes())
    except (OSError, ValueError):
        raise ConfigError(f"No readable CA certificate at {settings.ca_cert_path}.") from None
    data = cert.public_bytes(Encoding.DER if args.der else Encoding.PEM)
    if args.out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_public_file(Path(args.out), data)
        print(f"Wrote {args.out} ({'DER' if args.der else 'PEM'})", file=sys.stderr)
    return EXIT_OK


def cmd_server_cert(settings: Settings, args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    from bot.wiring import load_ca
    from pki.authority import CAError
    from pki.bundle import private_key_pem
    from pki.files import write_private_file, write_public_file

    out = _out_dir(args.out)
    cert_path, key_path = out / "server.crt", out / "server.key"
    if (cert_path.exists() or key_path.exists()) and not args.force:
        raise ConfigError(f"{out} already has server.crt/server.key; add --force to replace.")
    ca = load_ca(settings)
    try:
        cert, key = ca.issue_server(args.host or [], args.ip or [], days=args.days)
    except CAError as exc:
        raise ConfigError(str(exc)) from None
    write_private_file(key_path, private_key_pem(key))
    write_public_file(cert_path, cert.public_bytes(Encoding.PEM))
    write_public_file(out / "ca.crt", ca.cert_pem)
    print(f"Wrote {key_path} (0600), {cert_path} (until {cert.not_valid_after_utc:%Y-%m-%d}), "
          f"{out / 'ca.crt'}")
    print("For mosquitto.conf: cafile = ca.crt, certfile = server.crt, keyfile = server.key; "
          "the key must be readable by the mosquitto user (e.g. chown root:mosquitto, chmod 640).")
    return EXIT_OK


def cmd_broker_admin_cert(settings: Settings, args: argparse.Namespace) -> int:
    from bot.broker import ensure_admin_identity
    from bot.wiring import ensure_data_dir, load_ca
    from pki.files import write_private_file, write_public_file

    ensure_data_dir(settings.data_dir)
    out = _out_dir(args.out)
    ca = load_ca(settings)
    cert_src, key_src = ensure_admin_identity(ca, settings.data_dir, settings.broker_admin_cn)
    cert_path, key_path = out / cert_src.name, out / key_src.name
    if out.resolve() != settings.data_dir.resolve():
        write_private_file(key_path, key_src.read_bytes())
        write_public_file(cert_path, cert_src.read_bytes())
    write_public_file(out / "ca.crt", ca.cert_pem)
    print(f"Dynsec admin CN={settings.broker_admin_cn}: {cert_path}, {key_path} (0600), "
          f"{out / 'ca.crt'}")
    host = settings.admin_host or "localhost"
    print(f"e.g. mosquitto_ctrl -h {host} -p {settings.admin_port} --cafile {out / 'ca.crt'} "
          f"--cert {cert_path} --key {key_path} dynsec listClients")
    return EXIT_OK


def _out_dir(value: str) -> Path:
    out = Path(value)
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"Cannot create {out}: {exc.strerror}.") from None
    return out


# ---- people, revocation, audit ----------------------------------------------------------------


def cmd_crl_write(settings: Settings, args: argparse.Namespace) -> int:
    return _print_crl_report(settings)


def _print_crl_report(settings: Settings) -> int:
    from bot.wiring import open_service

    async def write() -> int:
        async with open_service(settings) as service:
            report = await service.refresh_crl()
        if not report.written:
            raise ConfigError(report.error or "The CRL was not written.")
        print(f"CRL written to {settings.effective_crl_path} ({report.entries} revoked).")
        if report.reload is not None:
            print(f"  reload: {report.reload.detail}")
        return EXIT_OK

    return asyncio.run(write())


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import open_service

    async def listing() -> int:
        async with open_service(settings) as service:
            rows = await service.people_with_certificates(None)
        if not rows:
            print("Nobody has talked to the bot yet.")
        for person, certs in rows:
            print(f"{person.telegram_id:>12}  {person.status.value:<8}  "
                  f"{person.mqtt_username or '-':<20}  {person.display_name}"
                  f"{' @' + person.tg_username if person.tg_username else ''}"
                  f"{' (' + person.platform.value + ')' if person.platform else ''}")
            for cert in certs:
                print(f"{'':>14}{cert.device}: serial {cert.serial}, "
                      f"until {cert.not_after:%Y-%m-%d}")
        return EXIT_OK

    return asyncio.run(listing())


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import open_service

    async def revoke() -> int:
        async with open_service(settings) as service:
            done = await service.revoke(None, args.target, args.reason)
        person, report = done.person, done.crl
        print(f"Revoked {person.mqtt_username} (Telegram id {person.telegram_id}) and "
              f"{len(done.certificates)} certificate(s).")
        if not report.written:
            print(f"otcert: the CRL was NOT written: {report.error}", file=sys.stderr)
            return EXIT_ERROR
        print(f"  CRL: {settings.effective_crl_path} ({report.entries} revoked)")
        for label, outcome in (("reload", report.reload), ("kick", report.kick)):
            if outcome is not None:
                print(f"  {label}: {'ok' if outcome.ok else 'FAILED'}: {outcome.detail}")
        return EXIT_OK

    return asyncio.run(revoke())


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
            actor = "operator" if not entry.actor_id else str(entry.actor_id)
            details = json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
            print(f"{entry.at:%Y-%m-%d %H:%M:%S}  {actor:>12}  {entry.action:<16}  "
                  f"{entry.subject_id if entry.subject_id is not None else '-':>12}  {details}")
        if not entries:
            print("No audit entries match.")
        return EXIT_OK

    return asyncio.run(listing())


# ---- backup, restore, doctor ------------------------------------------------------------------


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from bot.archive import create_backup

    summary = asyncio.run(create_backup(settings, Path(args.file)))
    print(f"Backup written to {summary.path} (0600): database schema {summary.schema_version}, "
          f"CA {summary.ca_fingerprint}.")
    if not summary.key_encrypted:
        print("Note: the CA key inside is NOT encrypted; keep the archive as safe as the key.")
    return EXIT_OK


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from bot.archive import restore_backup
    from bot.wiring import ensure_data_dir

    ensure_data_dir(settings.data_dir)
    verified = asyncio.run(restore_backup(settings, Path(args.file), force=args.force))
    print(f"Restored {settings.database_path} and the CA {verified.ca.fingerprint_sha256} "
          f"(backup of {verified.manifest.get('created_at')}).")
    return _print_crl_report(settings)


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bot.doctor import Level, render, run_checks

    findings = asyncio.run(run_checks(settings))
    print(render(findings))
    failed = sum(f.level is Level.FAIL for f in findings)
    print(f"\n{failed} problem(s) found." if failed else "\nNo problems found.")
    return EXIT_ERROR if failed else EXIT_OK


# ---- parsing ------------------------------------------------------------------------------------


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
    revoke = add("revoke", cmd_revoke, "revoke a person's access and certificates")
    revoke.add_argument("target", metavar="USERNAME|TELEGRAM_ID")
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
