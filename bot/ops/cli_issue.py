"""``otcert issue``: a certificate for a device or person that never opens Telegram.

Why here and not a script beside the bot: it runs the very same ``Service.issue`` as /getcert
(device limit, superseding, audit row with the operator as actor, CRL on supersede, any cap
added there later), so a certificate from the shell obeys the bot's rules. The passphrase is
printed once and never written unless ``--passphrase-file`` asks for it (mode 0600).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

from bot.config import ConfigError, Settings
from bot.core import otrc, rules
from bot.core.results import IssuedBundle, PinBundle
from bot.ops.cli_common import EXIT_OK
from pki.files import write_private_file, write_public_file
from pki.names import InvalidName, validate_device, validate_username
from storage import OPERATOR_ID, Platform

CA_FILENAME = "ca.crt"


def add_issue_parser(add: argparse.ArgumentParser) -> None:
    add.add_argument("target", metavar="USERNAME|TELEGRAM_ID",
                     help="an approved person, or with --new the username of a new one")
    add.add_argument("--device", help=f"device name (default {rules.DEFAULT_DEVICE})")
    add.add_argument("--platform", choices=["ios", "android"],
                     help="ios: .otrp, android: .p12 (default: the person's phone, else android)")
    add.add_argument("--format", choices=["p12", "pem"], default="p12",
                     help="p12 for phones (default); pem (certificate + key) for services")
    add.add_argument("--new", action="store_true",
                     help="add a person without Telegram, approved by you, with this username")
    add.add_argument("--passphrase-file", metavar="FILE",
                     help="write the passphrase to FILE (0600) instead of printing it")
    add.add_argument("--force", action="store_true", help="replace existing files in --out")
    add.add_argument("--out", required=True, metavar="DIR", help="folder for the files")


def planned_files(username: str, device: str, platform: Platform, fmt: str) -> list[str]:
    """The file names ``otcert issue`` writes, so it can refuse before it issues anything."""
    stem = f"{username}-{device}"
    if fmt == "pem":
        return [f"{stem}.crt", f"{stem}.key", CA_FILENAME]
    ext = "otrp" if platform is Platform.IOS else "p12"
    return [f"{stem}.{ext}", CA_FILENAME, otrc.otrc_filename(username, device)]


def cmd_issue(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return _issue(settings, args)
    except InvalidName as exc:  # a bad username or device name is the operator's to fix
        raise ConfigError(str(exc)) from None


def _issue(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring import open_service

    out = Path(args.out)
    device = validate_device(args.device or rules.DEFAULT_DEVICE)
    wanted = Platform(args.platform) if args.platform else None
    secret_file = Path(args.passphrase_file) if args.passphrase_file else None
    if secret_file is not None and secret_file.exists() and not args.force:
        raise ConfigError(f"{secret_file} exists; add --force to replace it.")

    async def issue() -> int:
        async with open_service(settings) as service:
            if args.new:
                username = validate_username(args.target)
                platform = wanted or Platform.ANDROID
                _refuse_existing(out, planned_files(username, device, platform, args.format),
                                 args.force)
                person = await service.add_without_telegram(None, username)
            else:
                person = await service.find_person(args.target)
                platform = wanted or person.platform or Platform.ANDROID
                if person.mqtt_username:
                    _refuse_existing(out, planned_files(
                        person.mqtt_username, device, platform, args.format), args.force)
            bundle = await service.issue(
                person.telegram_id, device, actor=OPERATOR_ID, platform=platform
            )
            pin = await service.current_pin()
            try:
                _write(settings, args.format, out, bundle, pin, secret_file)
            except BaseException:
                await service.revoke_undelivered(bundle.serial)
                raise
            await service.confirm_delivery(bundle.serial)
        _report(args.format, out, bundle, secret_file)
        return EXIT_OK

    return asyncio.run(issue())


def _refuse_existing(out: Path, names: list[str], force: bool) -> None:
    existing = [n for n in names if (out / n).exists()]
    if existing and not force:
        raise ConfigError(f"{out} already has {', '.join(existing)}; add --force to replace.")


def _write(
    settings: Settings, fmt: str, out: Path, bundle: IssuedBundle, pin: PinBundle,
    secret_file: Path | None,
) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"Cannot create {out}: {exc.strerror}.") from None
    stem = f"{bundle.username}-{bundle.device}"
    write_public_file(out / CA_FILENAME, pin.pem)
    if fmt == "pem":
        key, cert, _ = pkcs12.load_key_and_certificates(bundle.data, bundle.passphrase.encode())
        assert key is not None and cert is not None
        write_public_file(out / f"{stem}.crt", cert.public_bytes(Encoding.PEM))
        write_private_file(out / f"{stem}.key", key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return
    write_private_file(out / bundle.filename, bundle.data)
    if settings.mqtt_host:
        write_public_file(out / otrc.otrc_filename(bundle.username, bundle.device),
                          otrc.otrc_bytes(host=settings.mqtt_host, port=settings.mqtt_port,
                                          username=bundle.username, device=bundle.device,
                                          pkcs_filename=bundle.filename,
                                          platform=bundle.platform))
    if secret_file is not None:
        write_private_file(secret_file, (bundle.passphrase + "\n").encode())


def _report(fmt: str, out: Path, bundle: IssuedBundle, secret_file: Path | None) -> None:
    stem = out / f"{bundle.username}-{bundle.device}"
    print(f"Issued serial {bundle.serial} for {bundle.username} ({bundle.device}), valid until "
          f"{bundle.not_after:%Y-%m-%d}; {bundle.replaced} older certificate(s) replaced.",
          file=sys.stderr)
    if fmt == "pem":
        print(f"Wrote {stem}.crt, {stem}.key and {out / CA_FILENAME}.", file=sys.stderr)
        print(f"Note: the private key now lives unencrypted on disk in {stem}.key (0600); "
              "move it to the service that uses it and delete the copy.", file=sys.stderr)
        return
    print(f"Wrote {out / bundle.filename}, {out / CA_FILENAME} and the .otrc (when "
          "OTCERT_MQTT_HOST is set).", file=sys.stderr)
    if secret_file is not None:
        print(f"Passphrase written to {secret_file} (0600).", file=sys.stderr)
    else:
        print(bundle.passphrase)
