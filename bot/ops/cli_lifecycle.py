"""``otcert expiring``: what `/expiring` shows admins, for the operator's shell.

Why its own module: the lifecycle's operator view grows (infrastructure certificates, renewals)
apart from the people and CRL commands in :mod:`bot.ops.cli_ops`.
"""

from __future__ import annotations

import argparse
import asyncio

from bot.config import Settings
from bot.core.lifecycle import ExpiringView, InfraCertificate
from bot.core.lifecycle_rules import days_left
from bot.ops.cli_common import EXIT_OK

INFRA_NAMES = {"ca": "CA certificate", "server": "broker server certificate",
               "admin": "bot's broker-admin certificate"}


def days_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 1 <= value <= 3650:
        raise argparse.ArgumentTypeError("must be between 1 and 3650")
    return value


def cmd_expiring(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import build_lifecycle, open_service

    async def listing() -> ExpiringView:
        async with open_service(settings) as service:
            return await build_lifecycle(settings, service).expiring(None, args.days)

    print(expiring_lines(asyncio.run(listing())))
    return EXIT_OK


def infra_name(item: InfraCertificate) -> str:
    name = INFRA_NAMES[item.kind]
    return f"{name} ({item.where})" if item.where else name


def expiring_lines(view: ExpiringView) -> str:
    """Soonest first: the bot's own certificates, then people's, with owner and renewal."""
    total = len(view.certificates) + len(view.infrastructure)
    if not total:
        return f"Nothing expires within {view.days} days."
    lines = [f"Expiring within {view.days} days ({total}):"]
    for item in view.infrastructure:
        lines.append(f"  {item.not_after:%Y-%m-%d}  {days_left(item.not_after, view.now):>4} d  "
                     f"{infra_name(item)}")
    for entry in view.certificates:
        cert = entry.certificate
        lines.append(f"  {cert.not_after:%Y-%m-%d}  {days_left(cert.not_after, view.now):>4} d  "
                     f"{cert.mqtt_username} / {cert.device}  (Telegram id {cert.telegram_id}, "
                     f"serial {cert.serial}){'  renewed' if entry.renewed else ''}")
    return "\n".join(lines)
