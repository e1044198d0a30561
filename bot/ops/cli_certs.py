"""``otcert certs`` and ``otcert revoke --serial``: every certificate the CA signed for the
bot, people's and its own (broker-server, broker-admin), listed and revocable by serial.

Why its own module: these read the inventory across owners; people-centred commands stay in
:mod:`bot.ops.cli_ops`.
"""

from __future__ import annotations

import argparse
import asyncio

from bot.config import Settings
from bot.ops.cli_common import EXIT_OK, print_revocation_report


def cmd_certs(settings: Settings, args: argparse.Namespace) -> int:
    from bot.core.own_certs import certificate_inventory
    from bot.wiring import open_service

    async def listing() -> int:
        async with open_service(settings) as service:
            rows = await certificate_inventory(service, include_all=args.all)
        if not rows:
            print("No certificates." if args.all else
                  "No working certificates (add --all for ended ones).")
            return EXIT_OK
        print(f"{'serial':<42}  {'owner or purpose':<20}  {'device':<20}  "
              f"{'valid from':<10}  {'valid until':<11}  status")
        for row in rows:
            print(f"{row.serial:<42}  {row.owner:<20}  {row.device:<20}  "
                  f"{row.not_before:%Y-%m-%d}  {row.not_after:%Y-%m-%d}   {row.status}")
        return EXIT_OK

    return asyncio.run(listing())


def cmd_revoke_serial(settings: Settings, args: argparse.Namespace) -> int:
    from bot.core.own_certs import revoke_serial
    from bot.wiring import open_service

    async def revoke() -> int:
        async with open_service(settings) as service:
            done = await revoke_serial(service, None, args.serial, args.reason)
        print(f"Revoked certificate {done.serial} ({done.owner}, {done.device}).")
        report = done.crl
        return print_revocation_report(settings, report)

    return asyncio.run(revoke())
