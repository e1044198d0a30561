"""`otcert doctor`: check a deployment end to end and say exactly what is wrong.

Each check yields one :class:`Finding` (OK / WARN / FAIL and a sentence). Nothing here changes
state, except that the broker probe signs a throw-away one-day client certificate (CN
``otcert-doctor``) that lives in a private temp dir for the few seconds of the probe.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import ssl
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bot.broker.server_cert import server_context as shared_server_context
from bot.config import ConfigError, Settings
from bot.core.authorities import AuthorityFiles, complete_finish
from bot.core.clock import utcnow
from pki.authority import CAError, CertificateAuthority
from pki.bundle import private_key_pem
from pki.files import write_private_file, write_public_file
from pki.keys import generate_private_key

DOCTOR_CN = "otcert-doctor"
CA_EXPIRY_WARN = timedelta(days=60)
CRL_MIN_REMAINING = timedelta(days=7)
PROBE_TIMEOUT = 5.0
_SHELL_WORDS = {"kill", "exec", "command", "test", "[", "true", "false", ":"}


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    sentence: str


def ok(topic: str, sentence: str) -> Finding:
    return Finding(Level.OK, topic, sentence)


def warn(topic: str, sentence: str) -> Finding:
    return Finding(Level.WARN, topic, sentence)


def fail(topic: str, sentence: str) -> Finding:
    return Finding(Level.FAIL, topic, sentence)


async def run_checks(settings: Settings) -> list[Finding]:
    """All checks in the order an operator would fix them."""
    findings = [*check_settings(settings), *check_data_dir(settings)]
    ca, ca_findings = check_ca(settings)
    findings += ca_findings
    findings += await check_database(settings)
    findings += check_crl(settings, ca)
    from bot.ops.doctor_rotation import check_trust_files, probe_next_ca

    findings += check_trust_files(settings)
    findings.append(check_reload_command(settings))
    if settings.mqtt_host is None:
        findings.append(warn("broker", "OTCERT_MQTT_HOST is not set: the broker was not tested "
                                       "and phones get no host in their instructions."))
    elif ca is None:
        findings.append(warn("broker", "Not tested: the probe needs a usable CA (see above)."))
    else:
        findings.append(probe_broker(settings, ca))
        if (next_probe := probe_next_ca(settings)) is not None:
            findings.append(next_probe)
        from bot.ops.doctor_trust import check_phone_ca

        findings.append(await check_phone_ca(settings))
    if settings.broker_kick == "dynsec" and ca is not None:
        findings.append(await check_kick(settings, ca))
    from bot.ops.doctor_expiry import check_admin_expiry, check_server_expiry

    expiry = [check_server_expiry(settings, ca) if ca is not None else None,
              check_admin_expiry(settings)]
    return findings + [f for f in expiry if f is not None]


# ---- settings and files -----------------------------------------------------------------------


def check_settings(settings: Settings) -> list[Finding]:
    try:
        settings.require_bot()
    except ConfigError as exc:
        return [fail("settings", f"`otcert run` would refuse to start: {exc}")]
    admins = ", ".join(str(a) for a in sorted(settings.admin_ids))
    return [ok("settings", f"Bot token set; admins: {admins}.")]


def check_data_dir(settings: Settings) -> list[Finding]:
    path = settings.data_dir
    if not path.is_dir():
        return [fail("data dir", f"{path} does not exist: run `otcert init`.")]
    if not os.access(path, os.W_OK | os.X_OK):
        return [fail("data dir", f"{path} is not writable by this user.")]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o002:
        return [fail("data dir", f"{path} is writable by everyone (mode {mode:04o}): "
                                 f"run chmod 700 {path} (755 if the broker reads the CRL there).")]
    findings = [ok("data dir", f"{path} exists and is writable (mode {mode:04o}).")]
    db = settings.database_path
    if db.exists() and stat.S_IMODE(db.stat().st_mode) & 0o077:
        findings.append(warn("data dir", f"The database {db} (names, Telegram ids) is readable "
                                         f"by others: run chmod 600 {db}."))
    return findings


def check_ca(settings: Settings) -> tuple[CertificateAuthority | None, list[Finding]]:
    cert_path, key_path = settings.ca_cert_path, settings.ca_key_path
    with contextlib.suppress(CAError, ConfigError, OSError):
        # A rotation's finish cut off half-way: roll it forward as the bot would at start.
        complete_finish(AuthorityFiles(settings.data_dir, settings.ca_passphrase()))
    if not cert_path.exists() or not key_path.exists():
        missing = cert_path if not cert_path.exists() else key_path
        return None, [fail("CA", f"{missing} is missing: run `otcert init` or `otcert ca import`.")]
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        return None, [fail("CA key", f"{key_path} is readable by others (mode {mode:04o}): "
                                     f"run chmod 600 {key_path}.")]
    try:
        passphrase = settings.ca_passphrase()
        ca = CertificateAuthority.load(cert_path, key_path, passphrase)
    except (CAError, ConfigError) as exc:
        return None, [fail("CA", str(exc))]
    encrypted = b"ENCRYPTED" in key_path.read_bytes()
    findings = [ok("CA key", f"{key_path} is mode {mode:04o} and "
                             + ("encrypted." if encrypted else
                                "not encrypted (set OTCERT_CA_KEY_PASSPHRASE to encrypt it)."))]
    now = utcnow()
    end = ca.certificate.not_valid_after_utc
    if end <= now:
        findings.append(fail("CA", f"The CA certificate expired on {end:%Y-%m-%d}: no certificate "
                                   "it signed is accepted; create or import a new CA."))
    elif ca.certificate.not_valid_before_utc > now:
        findings.append(fail("CA", "The CA certificate is not valid yet: check the clock."))
    elif end - now < CA_EXPIRY_WARN:
        findings.append(warn("CA", f"The CA certificate expires on {end:%Y-%m-%d}, in "
                                   f"{(end - now).days} days: plan a new CA and re-issue."))
    else:
        findings.append(ok("CA", f"{ca.certificate.subject.rfc4514_string()} valid until "
                                 f"{end:%Y-%m-%d}; SHA-256 {ca.fingerprint_sha256}."))
    return ca, findings


async def check_database(settings: Settings) -> list[Finding]:
    from storage import Database

    path = settings.database_path
    if not path.exists():
        return [warn("database", f"{path} does not exist yet; `otcert init` or the first "
                                 "`otcert run` creates it.")]
    try:
        db = await Database.open(path)
        try:
            version = await db.schema_version()
        finally:
            await db.close()
    except Exception as exc:  # StorageError, OSError, or sqlite3 errors from a damaged file
        return [fail("database", f"{path} cannot be opened: {exc}.")]
    return [ok("database", f"{path} opens (schema version {version}).")]


def check_crl(settings: Settings, ca: CertificateAuthority | None) -> list[Finding]:
    path = settings.effective_crl_path
    if not path.exists():
        return [fail("CRL", f"{path} is missing: Mosquitto refuses to start without it; "
                            "run `otcert crl write`.")]
    findings: list[Finding] = []
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o004:
        findings.append(warn("CRL", f"{path} is mode {mode:04o}: the broker's own user may not "
                                    f"read it; run chmod 644 {path}."))
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (ValueError, OSError):
        return [*findings, fail("CRL", f"{path} is not a readable PEM CRL: Mosquitto would "
                                       "refuse to start or silently stop checking revocations.")]
    if ca is not None:
        key = ca.certificate.public_key()
        if crl.issuer != ca.certificate.subject or not crl.is_signature_valid(key):  # type: ignore[arg-type]
            return [*findings, fail("CRL", f"{path} is not signed by this CA: run "
                                           "`otcert crl write`.")]
    now = utcnow()
    next_update, last_update = crl.next_update_utc, crl.last_update_utc
    if next_update is None:
        return [*findings, fail("CRL", f"{path} has no nextUpdate.")]
    left = next_update - now
    entries = len(list(crl))
    if left <= timedelta(0):
        findings.append(fail("CRL", f"{path} expired on {next_update:%Y-%m-%d %H:%M} UTC: "
                                    "Mosquitto refuses every client; run `otcert crl write` "
                                    "and reload the broker."))
    elif left < CRL_MIN_REMAINING or left < (next_update - last_update) / 3:
        findings.append(warn("CRL", f"{path} expires soon ({next_update:%Y-%m-%d %H:%M} UTC): "
                                    f"is the bot running? It rewrites the CRL every "
                                    f"{settings.crl_refresh_seconds} s."))
    else:
        findings.append(ok("CRL", f"{path} is signed by the CA, lists {entries} revoked "
                                  f"certificate(s), fresh until {next_update:%Y-%m-%d}."))
    return findings


def check_reload_command(settings: Settings) -> Finding:
    command = settings.broker_reload_command
    if command is None:
        return warn("reload", "OTCERT_BROKER_RELOAD_COMMAND is not set: Mosquitto only re-reads "
                              "the CRL on SIGHUP, so revocations wait for a restart (unless a "
                              "systemd .path unit reloads it; see deploy/README.md).")
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return fail("reload", f"OTCERT_BROKER_RELOAD_COMMAND cannot be parsed: {exc}.")
    program = next((w for w in words if "=" not in w), "")
    if program and program not in _SHELL_WORDS and shutil.which(program) is None:
        return fail("reload", f"OTCERT_BROKER_RELOAD_COMMAND runs {program!r}, which is not "
                              "on PATH.")
    return ok("reload", f"Reload command set ({program}); it runs after every CRL write.")


# ---- the broker ------------------------------------------------------------------------------


@contextlib.contextmanager
def doctor_identity(ca: CertificateAuthority) -> Iterator[tuple[Path, Path]]:
    """A one-day client certificate for the probe, in a private temp dir removed afterwards."""
    key = generate_private_key("ec-p256")
    certificate = ca.issue_client(DOCTOR_CN, key, days=1)
    with tempfile.TemporaryDirectory(prefix="otcert-doctor-") as tmp:
        cert_path, key_path = Path(tmp) / "doctor.crt", Path(tmp) / "doctor.key"
        write_private_file(key_path, private_key_pem(key))
        write_public_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
        yield cert_path, key_path


def server_context(settings: Settings) -> ssl.SSLContext:
    """Verify the broker the way the bot does: OTCERT_BROKER_CA_FILE, else our CA + system."""
    return shared_server_context(settings.broker_ca_file, settings.ca_cert_path)


def probe_broker(settings: Settings, ca: CertificateAuthority) -> Finding:
    """TCP, TLS (both ways), then MQTT CONNECT; the first step that fails is named."""
    host, port = settings.mqtt_host or "", settings.mqtt_port
    where = f"{host}:{port}"
    try:
        context = server_context(settings)
    except (OSError, ssl.SSLError) as exc:
        return fail("broker", f"Cannot load OTCERT_BROKER_CA_FILE {settings.broker_ca_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}.")
    with doctor_identity(ca) as (cert_path, key_path):
        context.load_cert_chain(str(cert_path), str(key_path))
        try:
            raw = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
        except ConnectionRefusedError:
            return fail("broker", f"Nothing is listening at {where} (connection refused): "
                                  "is Mosquitto running, on this port?")
        except socket.gaierror as exc:
            return fail("broker", f"Cannot resolve {host!r}: {exc.strerror}.")
        except TimeoutError:
            return fail("broker", f"No answer from {where} within {PROBE_TIMEOUT:g} s "
                                  "(firewall?).")
        except OSError as exc:
            return fail("broker", f"Cannot connect to {where}: {exc.strerror or exc}.")
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                version = tls.version()
                tls.settimeout(0.3)
                with contextlib.suppress(TimeoutError):
                    tls.recv(1)  # a TLS 1.3 refusal of our certificate arrives as an alert
        except ssl.SSLCertVerificationError as exc:
            return fail("broker", f"The broker's certificate at {where} does not verify: "
                                  f"{exc.verify_message}. Set OTCERT_BROKER_CA_FILE to the CA "
                                  "that signed it, and use a host name the certificate names.")
        except ssl.SSLError as exc:
            return fail("broker", _tls_failure(exc, where))
        except OSError as exc:
            return fail("broker", f"The connection to {where} failed during TLS: "
                                  f"{exc.strerror or exc}.")
        finally:
            raw.close()
        finding = _mqtt_connect(context, host, port, where)
    if finding.level is Level.OK:
        return ok("broker", f"{finding.sentence[:-1]} ({version}).")
    return finding


def _tls_failure(exc: ssl.SSLError, where: str) -> str:
    reason = (exc.reason or str(exc)).lower()
    if any(word in reason for word in ("unknown_ca", "bad_certificate", "certificate_revoked",
                                       "certificate_expired", "certificate_required",
                                       "certificate_unknown", "handshake_failure")):
        return (f"The broker at {where} refused the test client certificate signed by this CA "
                f"({exc.reason}): is Mosquitto's cafile the bot's ca.crt, and its CRL current?")
    return f"The TLS handshake with {where} failed: {exc.reason or exc}."


def _mqtt_connect(context: ssl.SSLContext, host: str, port: int, where: str) -> Finding:
    """MQTT CONNECT with paho over a fresh verified TLS connection; wait for the CONNACK.

    Under TLS 1.3 the broker judges the client certificate only after the handshake, so a
    refusal shows up here: as an alert on the first read, or as the connection closing.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

    result: dict[str, Any] = {}

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        result["reason"] = reason

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{DOCTOR_CN}-{os.getpid()}")
    client.tls_set_context(context)
    client.on_connect = on_connect
    client.connect_timeout = PROBE_TIMEOUT
    deadline = time.monotonic() + PROBE_TIMEOUT
    try:
        client.connect(host, port, keepalive=10)
        while "reason" not in result and time.monotonic() < deadline:
            rc = client.loop(timeout=0.05)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and "reason" not in result:
                return fail("broker", f"The broker at {where} closed the connection after the "
                                      "TLS handshake, before the CONNACK: it refused the test "
                                      "client certificate signed by this CA (is Mosquitto's "
                                      "cafile the bot's ca.crt, and its CRL current?).")
    except ssl.SSLError as exc:
        return fail("broker", _tls_failure(exc, where))
    except OSError as exc:
        return fail("broker", f"The MQTT connection to {where} failed: {exc.strerror or exc}.")
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
            client.loop(timeout=0.01)
    reason = result.get("reason")
    if reason is None:
        return fail("broker", f"The broker at {where} sent no CONNACK within "
                              f"{PROBE_TIMEOUT:g} s.")
    if reason.is_failure:
        return fail("broker", f"The broker at {where} refused the MQTT CONNECT: CONNACK "
                              f"'{reason}' (code {reason.value}).")
    return ok("broker", f"{where}: TLS verified both ways and MQTT CONNECT accepted for the "
                        f"test certificate CN={DOCTOR_CN}.")


async def check_kick(settings: Settings, ca: CertificateAuthority) -> Finding:
    import asyncio

    from bot.broker import check_kick_path
    from bot.wiring import build_policy

    try:
        policy = await asyncio.to_thread(build_policy, settings, ca)
    except ConfigError as exc:
        return fail("kick", str(exc))
    assert policy.broker_admin is not None
    outcome = await check_kick_path(policy.broker_admin, timeout=PROBE_TIMEOUT)
    if not outcome.ok:
        return fail("kick", outcome.detail)
    return (warn if "WARNING" in outcome.detail else ok)("kick", outcome.detail)


def render(findings: list[Finding]) -> str:
    return "\n".join(f"{f.level.value:<4}  {f.topic}: {f.sentence}" for f in findings)


