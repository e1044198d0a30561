"""``otcert ca rotate start|status|finish|abort``: replacing the CA in stages (see the README,
"Replacing the CA"). Each command opens the service, runs one rotation step, and says what
the broker now accepts and whether its reload worked."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bot.config import ConfigError, Settings
from bot.core.results import CrlReport
from bot.core.rotation import Rotation, RotationStep
from bot.ops.cli_common import EXIT_OK, Command
from pki.keys import CA_KEY_TYPES


def add_rotate_parser(ca_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate = ca_sub.add_parser("rotate", help="replace the CA without a flag day",
                               description="Replace the CA in stages: both CAs are trusted "
                                           "until everyone has moved.")
    sub = rotate.add_subparsers(dest="rotate_command", metavar="STEP", required=True)

    def add(name: str, func: Command, text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=text, description=text)
        command.set_defaults(func=func)
        return command

    start = add("start", cmd_rotate_start, "make the next CA; the broker trusts both from now on")
    start.add_argument("--key-type", choices=CA_KEY_TYPES, default="rsa4096")
    start.add_argument("--days", type=int, default=3650, help="validity of the new CA")
    add("status", cmd_rotate_status, "who is on which CA, and whether the broker accepts the next")
    finish = add("finish", cmd_rotate_finish, "the next CA becomes the CA; the old one is archived")
    finish.add_argument("--force", action="store_true",
                        help="finish even though people still depend on the old CA")
    add("abort", cmd_rotate_abort, "forget the next CA (only while nothing depends on it)")


def _run(settings: Settings, step: Callable[[Rotation], Awaitable[Any]]) -> Any:
    from bot.wiring import open_service

    async def go() -> Any:
        async with open_service(settings) as service:
            assert service.rotation is not None
            return await step(service.rotation)

    return asyncio.run(go())


def _report(report: CrlReport, settings: Settings) -> None:
    print(f"  bundle (cafile): {settings.effective_ca_bundle_path}")
    print(f"  CRLs (crlfile):  {settings.effective_crl_path}")
    if report.reload is not None:
        print(f"  reload: {report.reload.detail}")
    else:
        print("  reload: OTCERT_BROKER_RELOAD_COMMAND is not set; reload Mosquitto yourself.")


def cmd_rotate_start(settings: Settings, args: argparse.Namespace) -> int:
    if not 30 <= args.days <= 36500:
        raise ConfigError("--days must be between 30 and 36500.")
    done: RotationStep = _run(
        settings, lambda r: r.start(key_type=args.key_type, days=args.days)
    )
    nxt = done.authorities.next
    assert nxt is not None
    print("CA rotation started. The broker now trusts both CAs; new certificates come from "
          "the next CA.")
    print(f"  next CA: {nxt.certificate.subject.rfc4514_string()}")
    print(f"  SHA-256: {nxt.fingerprint_sha256}")
    _report(done.report, settings)
    print("The running bot offers everyone a new certificate within "
          f"OTCERT_LIFECYCLE_CHECK_SECONDS ({settings.lifecycle_check_seconds} s). "
          "Check progress with `otcert ca rotate status`.")
    return EXIT_OK


def cmd_rotate_status(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops.doctor import probe_broker

    status = _run(settings, lambda r: r.status())
    cur = status.current.fingerprint_sha256
    if status.next is None:
        print(f"No CA rotation is under way. CA: {cur}")
        print(f"  {status.people.get(cur, 0)} people, {status.certificates.get(cur, 0)} "
              "working certificates.")
        return EXIT_OK
    nxt = status.next.fingerprint_sha256
    for label, fp in (("old CA", cur), ("next CA", nxt)):
        print(f"{label}: {fp}")
        print(f"  {status.people.get(fp, 0)} people, {status.certificates.get(fp, 0)} "
              "working certificates")
    print(f"not moved yet: {len(status.not_moved)}")
    for person in status.not_moved:
        print(f"  {person.mqtt_username} ({person.telegram_id}, {person.display_name})")
    if settings.mqtt_host is None:
        print("broker: not tested (OTCERT_MQTT_HOST is not set)")
    else:
        finding = probe_broker(settings, status.next)
        print(f"broker with a certificate from the next CA: {finding.level.value} - "
              f"{finding.sentence}")
    return EXIT_OK


def cmd_rotate_finish(settings: Settings, args: argparse.Namespace) -> int:
    done: RotationStep = _run(settings, lambda r: r.finish(force=args.force))
    print("CA rotation finished. The broker trusts only the new CA; certificates from the old "
          "CA stop working at the reload.")
    print(f"  CA:       {done.authorities.current.fingerprint_sha256}")
    print(f"  archived: {done.archived}")
    _report(done.report, settings)
    return EXIT_OK


def cmd_rotate_abort(settings: Settings, args: argparse.Namespace) -> int:
    done: RotationStep = _run(settings, lambda r: r.abort())
    print("CA rotation aborted. The broker trusts only the current CA again.")
    print(f"  next CA archived in {done.archived}")
    _report(done.report, settings)
    return EXIT_OK
