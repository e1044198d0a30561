"""Does the broker's TLS chain end in a given CA? One verified handshake, trusting only it.

Why: an admin's uploaded CA goes to every phone as "trust this fully". If a handshake with the
broker at OTCERT_MQTT_HOST:OTCERT_MQTT_PORT verifies (chain and host name) against that CA
alone, the CA is what the broker presents, and sending it changes nothing an attacker wants.
``otcert doctor`` asks the same question to say which OTCERT_PHONE_CA fits.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from bot.broker.outcome import BrokerOutcome

PROBE_TIMEOUT = 5.0


def _handshake(host: str, port: int, cadata: str | None, timeout: float) -> BrokerOutcome:
    """``cadata`` None trusts the system store alone (a public CA)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if cadata is not None:
        # Only this CA: a fresh context without the system store.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=cadata)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    where = f"{host}:{port}"
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return BrokerOutcome(False, f"the broker at {where} does not verify: {exc.verify_message}")
    except (OSError, ssl.SSLError) as exc:
        # A TLS 1.2 broker that demands a client certificate ends here after verifying us
        # nothing: no proof either way, so no.
        return BrokerOutcome(False, f"no verified handshake with {where}: {exc}")
    return BrokerOutcome(True, f"the broker at {where} verifies ({version})")


async def broker_verifies_with(
    host: str | None, port: int, ca_pem: bytes | None, *, timeout: float = PROBE_TIMEOUT
) -> BrokerOutcome:
    """Whether a handshake with the broker verifies against ``ca_pem`` alone (None: the
    system trust store alone). Never raises; off the event loop."""
    if not host:
        return BrokerOutcome(False, "OTCERT_MQTT_HOST is not set")
    cadata = None if ca_pem is None else ca_pem.decode("ascii", "replace")
    try:
        return await asyncio.to_thread(_handshake, host, port, cadata, timeout)
    except (ValueError, ssl.SSLError) as exc:  # cadata that OpenSSL refuses
        return BrokerOutcome(False, f"cannot use that CA: {exc}")
