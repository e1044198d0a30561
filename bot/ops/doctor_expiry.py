"""`otcert doctor`'s expiry checks for the bot's own certificates: the broker's server
certificate (as a real, verified TLS handshake shows it) and the broker-admin certificate.
The CA's own expiry is checked with the CA in :mod:`bot.ops.doctor`.

WARN under 30 days, FAIL once expired: a lapsed server certificate silences every phone.
"""

from __future__ import annotations

import ssl
from datetime import datetime, timedelta

from cryptography import x509

from bot.broker import ADMIN_CERT_NAME
from bot.broker.server_cert import fetch_server_certificate
from bot.config import Settings
from bot.core.clock import utcnow
from bot.core.lifecycle_rules import days_left
from bot.ops.doctor import Finding, fail, ok, warn
from pki.authority import CertificateAuthority

EXPIRY_WARN = timedelta(days=30)
SERVER_FIX = "issue a new one with `otcert server-cert --host … --out …` and reload Mosquitto"
ADMIN_FIX = ("restart the bot (at start-up it renews its broker-admin certificate once fewer "
             "than 30 days are left) or run `otcert broker-admin-cert --out …`")


def expiry_finding(topic: str, what: str, not_after: datetime, now: datetime,
                   fix: str) -> Finding:
    if not_after <= now:
        return fail(topic, f"{what} expired on {not_after:%Y-%m-%d}: {fix}.")
    left = days_left(not_after, now)
    if not_after - now < EXPIRY_WARN:
        return warn(topic, f"{what} expires on {not_after:%Y-%m-%d}, in {left} days: {fix}.")
    return ok(topic, f"{what} valid until {not_after:%Y-%m-%d} ({left} days left).")


def check_server_expiry(settings: Settings, ca: CertificateAuthority) -> Finding | None:
    """None when the broker cannot be reached (the broker probe already says why)."""
    host = settings.mqtt_host
    if host is None:
        return None
    try:
        cert = fetch_server_certificate(host, settings.mqtt_port,
                                        broker_ca_file=settings.broker_ca_file, ca=ca,
                                        bot_ca_file=settings.ca_cert_path)
    except (OSError, ssl.SSLError):
        return None
    return expiry_finding("broker cert", f"The broker's server certificate at "
                          f"{host}:{settings.mqtt_port}", cert.not_valid_after_utc, utcnow(),
                          SERVER_FIX)


def check_admin_expiry(settings: Settings) -> Finding | None:
    """The dynsec admin certificate, when the kick uses one and it exists."""
    path = settings.data_dir / ADMIN_CERT_NAME
    if settings.broker_kick != "dynsec" or not path.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return fail("broker-admin cert", f"{path} is unreadable: {exc}.")
    return expiry_finding("broker-admin cert", f"The broker-admin certificate {path}",
                          cert.not_valid_after_utc, utcnow(), ADMIN_FIX)
