"""``otcert`` commands that set a site up: the data dir, the CA, and files for Mosquitto.

Why apart from :mod:`bot.ops.cli_ops`: these handle key material and files on disk once, at
install or migration time (import a CA, issue the broker's server and admin certificates);
the day-to-day commands go through the service layer instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from cryptography import x509

from bot.config import ConfigError, Settings
from bot.core.clock import utcnow
from bot.ops.cli_common import EXIT_OK, print_crl_report


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
            raise ConfigError(f"CRL not written: {report.error or 'unknown error'}")


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
    return print_crl_report(settings)


def _fingerprint_of(path: Path) -> str | None:
    from cryptography import x509

    from pki.identity import fingerprint_sha256

    try:
        return fingerprint_sha256(x509.load_pem_x509_certificate(path.read_bytes()))
    except (OSError, ValueError):
        return None


def cmd_ca_show(settings: Settings, args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from pki.identity import fingerprint_sha256

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
    days_left = (cert.not_valid_after_utc - utcnow()).days
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
    _show_rotation(settings)
    return EXIT_OK


def _show_rotation(settings: Settings) -> None:
    """The next CA while a rotation runs, and the archived ones (``ca show`` knows all)."""
    from bot.core.authorities import ROTATING, archived_cas, read_state
    from bot.wiring import authority_files

    files = authority_files(settings)
    print(f"bundle:      {settings.effective_ca_bundle_path} (Mosquitto's cafile)")
    if read_state(files) == ROTATING:
        next_fp = _fingerprint_of(files.next_cert) or "unreadable"
        print(f"rotation:    under way; next CA {files.next_cert}, SHA-256 {next_fp}")
    for path in archived_cas(files):
        print(f"archived:    {path} (SHA-256 {_fingerprint_of(path) or 'unreadable'})")


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

    from bot.wiring import load_all_cas
    from pki.authority import CAError
    from pki.bundle import private_key_pem
    from pki.files import write_private_file, write_public_file

    out = _out_dir(args.out)
    cert_path, key_path = out / "server.crt", out / "server.key"
    if (cert_path.exists() or key_path.exists()) and not args.force:
        raise ConfigError(f"{out} already has server.crt/server.key; add --force to replace.")
    cas = load_all_cas(settings)
    ca = cas.issuer  # during a CA rotation: the next CA, like every new certificate
    replaced = _readable_certificate(cert_path)
    try:
        cert, key = ca.issue_server(args.host or [], args.ip or [], days=args.days)
    except CAError as exc:
        raise ConfigError(str(exc)) from None
    write_private_file(key_path, private_key_pem(key))
    write_public_file(cert_path, cert.public_bytes(Encoding.PEM))
    write_public_file(out / "ca.crt", ca.cert_pem)
    print(f"Wrote {key_path} (0600), {cert_path} (until {cert.not_valid_after_utc:%Y-%m-%d}, "
          f"serial {cert.serial_number:x}), {out / 'ca.crt'}")
    asyncio.run(_record_server(settings, cert, replaced))
    print(f"For mosquitto.conf: cafile = {settings.effective_ca_bundle_path} (the bot keeps it "
          "current), certfile = server.crt, keyfile = server.key; the key must be readable by "
          "the mosquitto user (e.g. chown root:mosquitto, chmod 640).")
    if cas.rotating:
        print("A CA rotation is under way: this server certificate is signed by the NEXT CA "
              f"(SHA-256 {ca.fingerprint_sha256}). Phones check the broker against the CA they "
              "trust, so phones must trust the next CA first (it comes with their new "
              "certificate, or with /repin): install this certificate on the broker only "
              "when `otcert ca rotate status` shows nobody left on the old CA.")
    return EXIT_OK


def _readable_certificate(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


async def _record_server(
    settings: Settings, cert: x509.Certificate, replaced: x509.Certificate | None
) -> None:
    """Record the new server certificate; the one it replaced is revoked (CRL rewritten)."""
    from bot.core.own_certs import record_server_certificate
    from bot.wiring import open_service

    async with open_service(settings) as service:
        report = await record_server_certificate(service, cert, replaced)
    if report is not None and replaced is not None:
        state = "revoked" if report.written else f"revoked, but the CRL failed: {report.error}"
        print(f"The replaced server certificate {replaced.serial_number:x} is {state}.")


def cmd_broker_admin_cert(settings: Settings, args: argparse.Namespace) -> int:
    from bot.broker import ensure_admin_identity
    from bot.wiring import ensure_data_dir, load_ca
    from pki.files import write_private_file, write_public_file

    ensure_data_dir(settings.data_dir)
    out = _out_dir(args.out)
    ca = load_ca(settings)
    passphrase = settings.ca_passphrase()
    cert_src, key_src = ensure_admin_identity(
        ca, settings.data_dir, settings.broker_admin_cn, passphrase=passphrase
    )
    asyncio.run(_record_admin(settings))
    cert_path, key_path = out / cert_src.name, out / key_src.name
    if out.resolve() != settings.data_dir.resolve():
        write_private_file(key_path, key_src.read_bytes())
        write_public_file(cert_path, cert_src.read_bytes())
    write_public_file(out / "ca.crt", ca.cert_pem)
    print(f"Dynsec admin CN={settings.broker_admin_cn}: {cert_path}, {key_path} (0600), "
          f"{out / 'ca.crt'}")
    if passphrase is not None:
        print("The key is encrypted with OTCERT_CA_KEY_PASSPHRASE (mosquitto_ctrl asks for it).")
    host = settings.admin_host or "localhost"
    print(f"e.g. mosquitto_ctrl -h {host} -p {settings.admin_port} --cafile {out / 'ca.crt'} "
          f"--cert {cert_path} --key {key_path} dynsec listClients")
    return EXIT_OK


async def _record_admin(settings: Settings) -> None:
    """open_service records the admin pair (and revokes any it replaced, CRL included)."""
    from bot.wiring import open_service

    async with open_service(settings):
        pass


def _out_dir(value: str) -> Path:
    out = Path(value)
    try:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"Cannot create {out}: {exc.strerror}.") from None
    return out
