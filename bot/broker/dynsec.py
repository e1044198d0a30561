"""One request/response exchange with the dynamic-security plugin, as the bot's admin.

Why its own module: the plugin is driven by JSON published to ``$CONTROL`` over MQTT, here
over TLS with a client certificate. Connecting, verifying the broker, correlating the answer
on a shared response topic and naming each failure for an admin is transport work, apart
from what the bot asks the plugin to do (see :mod:`bot.broker.kick`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from bot.broker.outcome import BrokerOutcome

DYNSEC_TOPIC = "$CONTROL/dynamic-security/v1"
DYNSEC_RESPONSE_TOPIC = f"{DYNSEC_TOPIC}/response"


@dataclass(frozen=True)
class BrokerAdmin:
    """How the bot reaches the broker as the dynsec admin (a certificate identity)."""

    host: str
    port: int
    cert_path: Path
    key_path: Path
    ca_file: Path | None
    bot_ca_file: Path
    # The CA key passphrase, when the admin key is encrypted with it at rest.
    key_password: bytes | None = field(default=None, repr=False)

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
    context.load_cert_chain(str(admin.cert_path), str(admin.key_path), admin.key_password)
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



async def dynsec_client_exists(
    admin: BrokerAdmin, username: str, *, timeout: float = 5.0
) -> bool | BrokerOutcome:
    """Whether ``username`` is stored as a dynsec client (getClient); an outcome when the
    plugin cannot be asked. Why: a kick deletes that name's client, so a person must never
    share a name with a stored login (issue 14)."""
    result = await dynsec_request(admin, [{"command": "getClient", "username": username}], timeout)
    if isinstance(result, BrokerOutcome):
        return result
    (answer,) = result
    error = answer.get("error")
    if error is None:
        return True
    if "not found" in str(error).lower():
        return False
    return BrokerOutcome(False, f"getClient answered: {error}")
