"""``otcert``: run the bot, and the operator's tools that share its service layer."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

Command = Callable[[Settings, argparse.Namespace], int]


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import build_application
    from bot.wiring import ensure_data_dir, load_ca

    token = settings.require_bot()
    setup_logging(settings.log_level, [token])
    ensure_data_dir(settings.data_dir)
    load_ca(settings, create=True)  # fail fast on an unreadable or insecure CA key
    app = build_application(settings)
    app.run_polling(allowed_updates=["message", "callback_query"], close_loop=True)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otcert",
        description="Telegram bot handing out OwnTracks TLS client certificates.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="start the bot (long polling)")
    run.set_defaults(func=cmd_run)
    init = sub.add_parser("init", help="create the data dir, the CA and the CRL")
    init.set_defaults(func=cmd_init)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        func: Command = args.func
        return func(settings, args)
    except ConfigError as exc:
        print(f"otcert: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
