"""Talking to the Mosquitto broker: re-read the CRL (reload command) and end live sessions (kick).

Why both: Mosquitto only re-reads ``crlfile`` on SIGHUP, and even then a revoked person's
*connected* session stays up. The dynamic-security plugin's ``deleteClient`` disconnects every
session of a username, so after the CRL is in place and re-read, a kick ends what revocation
cannot. Order matters: CRL + reload first, kick second, or the phone reconnects at once.

Nothing here raises: every failure becomes a :class:`BrokerOutcome` whose ``detail`` is a
sentence for an admin (no keys, passphrases or tokens in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from pki.bundle import private_key_pem
from pki.files import write_private_file, write_public_file
from pki.keys import generate_private_key
from pki.names import InvalidName, validate_username

if TYPE_CHECKING:
    from pki.authority import CertificateAuthority

DYNSEC_TOPIC = "$CONTROL/dynamic-security/v1"
DYNSEC_RESPONSE_TOPIC = f"{DYNSEC_TOPIC}/response"
ADMIN_CERT_NAME = "broker-admin.crt"
ADMIN_KEY_NAME = "broker-admin.key"
ADMIN_RENEW_BEFORE = timedelta(days=30)
_STDERR_KEEP_BYTES = 4096
_RECEIVE = "publishClientReceive"
_DETAIL_STDERR_CHARS = 300


@dataclass(frozen=True)
class BrokerOutcome:
    """What happened, for the log and the admin: ``detail`` is one or two plain sentences."""

    ok: bool
    detail: str


# ---- reload command --------------------------------------------------------------------------


async def run_reload_command(command: str | None, *, timeout: float = 10.0) -> BrokerOutcome:
    """Run the operator's reload command (a shell line) so Mosquitto re-reads the CRL.

    The command runs in its own session so that on timeout the whole process group (the shell
    and whatever it started) is killed, not just the shell.
    """
    if command is None or not command.strip():
        return BrokerOutcome(True, "no reload command configured")
    try:
        process = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            # The token and the CA passphrase live in OTCERT_*: the command gets none of them.
            env={k: v for k, v in os.environ.items() if not k.startswith("OTCERT_")},
        )
    except Exception as exc:  # OSError, or anything odd from the event loop
        return BrokerOutcome(False, f"The broker reload command could not be started: {exc}.")
    tail = bytearray()
    reader = asyncio.create_task(_keep_tail(process.stderr, tail))
    try:
        try:
            code = await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return BrokerOutcome(
                False,
                f"The broker reload command did not finish within {timeout:g} s and was killed.",
            )
        # A background child may keep stderr open; don't wait for it long.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), 0.5)
    except asyncio.CancelledError:
        _kill_group(process.pid)
        raise
    except Exception as exc:
        _kill_group(process.pid)
        return BrokerOutcome(False, f"The broker reload command failed to run: {exc}.")
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
    if code == 0:
        return BrokerOutcome(True, "the broker reload command succeeded")
    why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    errors = _last_lines(bytes(tail))
    return BrokerOutcome(
        False,
        f"The broker reload command failed ({why})" + (f": {errors}" if errors else "."),
    )


async def _keep_tail(stream: asyncio.StreamReader | None, tail: bytearray) -> None:
    """Drain the pipe (a full pipe would block the child) keeping only the last few KiB."""
    if stream is None:
        return
    while chunk := await stream.read(65536):
        tail.extend(chunk)
        del tail[:-_STDERR_KEEP_BYTES]


def _last_lines(raw: bytes, lines: int = 3) -> str:
    text = raw.decode("utf-8", "replace").strip()
    kept = " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())
    kept = "".join(ch if ch.isprintable() else "?" for ch in kept)
    if len(kept) > _DETAIL_STDERR_CHARS:
        kept = "…" + kept[-_DETAIL_STDERR_CHARS:]
    return kept


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---- dynamic-security requests ---------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAdmin:
    """How the bot reaches the broker as the dynsec admin (a certificate identity)."""

    host: str
    port: int
    cert_path: Path
    key_path: Path
    ca_file: Path | None
    bot_ca_file: Path


async def kick_sessions(
    admin: BrokerAdmin, username: str, *, timeout: float = 5.0
) -> BrokerOutcome:
    """End every live MQTT session of ``username`` (createClient + deleteClient in one request).

    Certificate users are not stored in dynsec, so the temporary client is created only to be
    deleted: the delete is what disconnects the sessions. It does not keep anyone out; only the
    CRL does, so call this after the CRL was rewritten and the broker reloaded.
    """
    try:
        canonical = validate_username(username)
    except InvalidName as exc:
        return BrokerOutcome(False, f"Cannot kick: {exc}")
    admin_cn = _certificate_cn(admin.cert_path)
    if admin_cn is not None and admin_cn == canonical:
        return BrokerOutcome(
            False, f"Refusing to kick '{canonical}': it is the bot's own dynsec admin identity."
        )
    commands = [
        {"command": "createClient", "username": canonical},
        {"command": "deleteClient", "username": canonical},
    ]
    result = await dynsec_request(admin, commands, timeout)
    if isinstance(result, BrokerOutcome):
        return result
    created, deleted = result
    return _judge_kick(canonical, created, deleted)


def _judge_kick(username: str, created: dict[str, Any], deleted: dict[str, Any]) -> BrokerOutcome:
    """Read the two results: only a successful deleteClient disconnects anyone."""
    create_error = created.get("error")
    delete_error = deleted.get("error")
    if delete_error is None:
        if create_error is None:
            return BrokerOutcome(True, f"Ended any live MQTT sessions of '{username}'.")
        if create_error == "Client already exists":
            return BrokerOutcome(
                True,
                f"Ended any live MQTT sessions of '{username}'. Note: '{username}' was stored "
                "in the dynamic-security plugin as a client; that entry has been deleted.",
            )
        return BrokerOutcome(
            True,
            f"Ended any live MQTT sessions of '{username}' (createClient said: {create_error}).",
        )
    detail = (
        f"Could not end the live MQTT sessions of '{username}': deleteClient failed "
        f"({delete_error})"
    )
    if create_error is not None:
        detail += f"; createClient failed too ({create_error})"
    else:
        detail += (
            f"; a dynsec client '{username}' may be left behind "
            f"(remove it with: mosquitto_ctrl dynsec deleteClient {username})"
        )
    return BrokerOutcome(False, detail + ". The person stays revoked; the session may live on.")


async def check_kick_path(admin: BrokerAdmin, *, timeout: float = 5.0) -> BrokerOutcome:
    """Prove the admin can reach the plugin with a harmless request (for ``otcert doctor``)."""
    result = await dynsec_request(admin, [{"command": "getDefaultACLAccess"}], timeout)
    if isinstance(result, BrokerOutcome):
        return result
    (answer,) = result
    if answer.get("error") is not None:
        return BrokerOutcome(
            False, f"The dynamic-security plugin answered with an error: {answer['error']}."
        )
    detail = f"The bot can use the dynamic-security plugin at {admin.host}:{admin.port}."
    data = answer.get("data")
    acls = data.get("acls", []) if isinstance(data, dict) else []
    receive = [a for a in acls if isinstance(a, dict) and a.get("acltype") == _RECEIVE]
    if receive and receive[0].get("allow") is True:
        detail += (
            " WARNING: defaultACLAccess publishClientReceive is allowed, so anyone stored in "
            "dynsec reads every topic; set it to false in the dynsec JSON (deploy/dynsec-init.sh)."
        )
    return BrokerOutcome(True, detail)


async def dynsec_request(
    admin: BrokerAdmin, commands: list[dict[str, Any]], timeout: float
) -> BrokerOutcome | list[dict[str, Any]]:
    """Send ``commands`` to the plugin; their responses in order, or a failure outcome.

    Runs paho in a worker thread so the event loop never blocks; a hard deadline covers it all.
    """
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_exchange, admin, commands, timeout), timeout + 2.0
        )
    except TimeoutError:
        return BrokerOutcome(False, f"No answer from the broker within {timeout:g} s.")
    except Exception as exc:  # a bug here must not take the revocation path down
        return BrokerOutcome(False, f"Talking to the broker failed unexpectedly: {exc!r}.")


def admin_tls_context(admin: BrokerAdmin) -> ssl.SSLContext:
    """Verify the broker (certificate chain and host name), present the admin certificate.

    Trusts ``ca_file`` alone when given, else the bot's CA plus the system store. Never
    unverified: a kick sent to an impostor would leak nothing, but a doctor check that passes
    against the wrong broker would lie.
    """
    if admin.ca_file is not None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(admin.ca_file))
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.load_verify_locations(cafile=str(admin.bot_ca_file))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(admin.cert_path), str(admin.key_path))
    return context


_CONTEXT_CACHE: dict[tuple[object, ...], ssl.SSLContext] = {}


def _cached_context(admin: BrokerAdmin) -> ssl.SSLContext:
    """Reuse the context while its files are unchanged: loading the system trust store takes
    ~0.2 s, which would otherwise delay every kick."""
    files = (admin.cert_path, admin.key_path, admin.ca_file or admin.bot_ca_file)
    key = (admin, *(Path(f).stat().st_mtime_ns for f in files))
    context = _CONTEXT_CACHE.get(key)
    if context is None:
        context = admin_tls_context(admin)
        _CONTEXT_CACHE.clear()
        _CONTEXT_CACHE[key] = context
    return context


@dataclass
class _Exchange:
    """State shared by the paho callbacks of one request (all run in the worker thread)."""

    payload: bytes
    correlation: list[str]
    failure: str | None = None
    responses: list[dict[str, Any]] | None = None
    connected: bool = False
    waiting_for: str = field(default="the connection acknowledgement")


def _exchange(
    admin: BrokerAdmin, commands: list[dict[str, Any]], timeout: float
) -> BrokerOutcome | list[dict[str, Any]]:
    """Connect, subscribe to the response topic, publish, wait for our answer; all by deadline."""
    deadline = time.monotonic() + timeout
    where = f"{admin.host}:{admin.port}"
    try:
        context = _cached_context(admin)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return BrokerOutcome(
            False,
            f"Cannot load the broker TLS files (admin certificate {admin.cert_path}, key "
            f"{admin.key_path}, CA {admin.ca_file or admin.bot_ca_file}): "
            f"{getattr(exc, 'strerror', None) or exc}.",
        )
    tag = secrets.token_hex(6)
    correlation = [f"otcert-{tag}-{i}" for i in range(len(commands))]
    tagged = [dict(cmd, correlationData=c) for cmd, c in zip(commands, correlation, strict=True)]
    state = _Exchange(json.dumps({"commands": tagged}).encode(), correlation)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"otcert-admin-{tag}",
        protocol=MQTTProtocolVersion.MQTTv5,
        userdata=state,
    )
    client.tls_set_context(context)
    client.on_connect = _on_connect
    client.on_subscribe = _on_subscribe
    client.on_publish = _on_publish
    client.on_message = _on_message
    client.connect_timeout = max(0.1, deadline - time.monotonic())
    try:
        client.connect(admin.host, admin.port, keepalive=max(5, int(timeout) + 5))
    except Exception as exc:
        return BrokerOutcome(False, _connect_failure(exc, where, timeout))
    try:
        while state.failure is None and state.responses is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return BrokerOutcome(False, _timeout_detail(state, where, timeout))
            rc = client.loop(timeout=min(0.05, remaining))
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and state.failure is None:
                state.failure = (
                    f"The broker at {where} closed the connection while waiting for "
                    f"{state.waiting_for} ({mqtt.error_string(rc)}); it may have refused the "
                    "admin certificate (revoked, expired or from another CA)."
                )
        if state.failure is not None:
            return BrokerOutcome(False, state.failure)
        assert state.responses is not None
        return state.responses
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
            client.loop(timeout=0.01)


def _on_connect(client: mqtt.Client, state: _Exchange, flags: Any, reason: Any, props: Any) -> None:
    if reason.is_failure:
        state.failure = f"The broker refused the admin connection: {reason}."
        return
    state.connected = True
    state.waiting_for = "the subscription to the dynsec response topic"
    client.subscribe(DYNSEC_RESPONSE_TOPIC, qos=1)


def _on_subscribe(
    client: mqtt.Client, state: _Exchange, mid: int, reasons: Any, props: Any
) -> None:
    if not reasons or reasons[0].is_failure:
        shown = reasons[0] if reasons else "no reason"
        state.failure = (
            f"The broker did not let the admin subscribe to {DYNSEC_RESPONSE_TOPIC} ({shown}): "
            "is the admin CN a dynsec admin?"
        )
        return
    state.waiting_for = "the dynamic-security plugin's answer"
    client.publish(DYNSEC_TOPIC, state.payload, qos=1)


def _on_publish(client: mqtt.Client, state: _Exchange, mid: int, reason: Any, props: Any) -> None:
    if reason.is_failure:
        state.failure = (
            f"The broker refused the dynsec command ({reason}): the admin CN is not allowed "
            f"to publish to {DYNSEC_TOPIC}. Is the plugin loaded and the CN its admin "
            "(deploy/dynsec-init.sh)?"
        )


def _on_message(client: mqtt.Client, state: _Exchange, message: mqtt.MQTTMessage) -> None:
    try:
        document = json.loads(message.payload)
        responses = document["responses"]
    except (ValueError, KeyError, TypeError):
        state.failure = "The dynamic-security plugin sent a response the bot cannot read."
        return
    if not isinstance(responses, list):
        state.failure = "The dynamic-security plugin sent a response the bot cannot read."
        return
    ours = {
        r.get("correlationData"): r
        for r in responses
        if isinstance(r, dict) and r.get("correlationData") in state.correlation
    }
    if not ours:
        return  # another admin's answer (the response topic is shared)
    if len(ours) != len(state.correlation):
        state.failure = "The dynamic-security plugin answered only part of the request."
        return
    state.responses = [ours[c] for c in state.correlation]


def _connect_failure(exc: BaseException, where: str, timeout: float) -> str:
    """Name the cause an admin can act on; order matters (SSL errors are OSErrors)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"Could not verify the broker's certificate at {where}: {exc.verify_message}. "
            "Set OTCERT_BROKER_CA_FILE to the CA that signed it, and connect by a host name "
            "the certificate names."
        )
    if isinstance(exc, ssl.SSLError):
        return f"The TLS handshake with the broker at {where} failed: {exc.reason or exc}."
    if isinstance(exc, ConnectionRefusedError):
        return f"Nothing is listening at {where} (connection refused): is Mosquitto running?"
    if isinstance(exc, TimeoutError):
        return f"The broker at {where} did not answer within {timeout:g} s."
    if isinstance(exc, socket.gaierror):
        return f"Cannot resolve the broker host in {where}: {exc.strerror}."
    if isinstance(exc, OSError):
        return f"Cannot connect to the broker at {where}: {exc.strerror or exc}."
    return f"Cannot connect to the broker at {where}: {exc!r}."


def _timeout_detail(state: _Exchange, where: str, timeout: float) -> str:
    if state.connected and state.waiting_for.startswith("the dynamic"):
        return (
            f"No answer from the dynamic-security plugin at {where} within {timeout:g} s: "
            "is the plugin loaded (plugin .../mosquitto_dynamic_security.so) and the admin CN "
            "its admin?"
        )
    return f"The broker at {where} did not complete {state.waiting_for} within {timeout:g} s."


def _certificate_cn(path: Path) -> str | None:
    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


# ---- the admin's own certificate -------------------------------------------------------------


def ensure_admin_identity(
    ca: CertificateAuthority, data_dir: Path, common_name: str, *, days: int = 825
) -> tuple[Path, Path]:
    """Return (cert, key) for the dynsec admin, issuing a fresh pair when needed.

    Re-issued when missing, unreadable, for another CN, expiring within 30 days, or not signed
    by ``ca`` (the CA was replaced). Blocking (RSA key generation): call it in a thread.
    """
    common_name = validate_username(common_name)
    data_dir = Path(data_dir)
    cert_path, key_path = data_dir / ADMIN_CERT_NAME, data_dir / ADMIN_KEY_NAME
    if _admin_identity_usable(ca, cert_path, key_path, common_name):
        return cert_path, key_path
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_private_key("rsa2048")
    certificate = ca.issue_client(common_name, key, days=days)
    # Key first: a certificate without its key is useless.
    write_private_file(key_path, private_key_pem(key))
    write_public_file(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _admin_identity_usable(
    ca: CertificateAuthority, cert_path: Path, key_path: Path, common_name: str
) -> bool:
    try:
        if key_path.stat().st_mode & 0o077:
            return False  # someone loosened the key's mode: replace it rather than use it
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate.verify_directly_issued_by(ca.certificate)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    public = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return False
    if _certificate_cn(cert_path) != common_name:
        return False
    return certificate.not_valid_after_utc - datetime.now(UTC) > ADMIN_RENEW_BEFORE
