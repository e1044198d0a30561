"""`otcert doctor`: which OTCERT_PHONE_CA fits the broker it reaches (issue 14).

Why its own module: doctor.py holds the deployment checks; this one asks the trust question
the bot asks for /repin (bot/broker/chain.py), once per candidate.
"""

from __future__ import annotations

from pathlib import Path

from bot.broker.chain import broker_verifies_with
from bot.config import Settings
from bot.ops.doctor import PROBE_TIMEOUT, Finding, fail, ok, warn

# The operator reads these in a shell, in English, like every other doctor line.
DOCTOR_PHONE_CA_FITS = "OTCERT_PHONE_CA={value} fits the broker at {where} ({detail})."
DOCTOR_PHONE_CA_ADVICE = (
    "OTCERT_PHONE_CA={value} does not fit the broker at {where} ({detail}); {advice}"
)
DOCTOR_PHONE_CA_USE = "set OTCERT_PHONE_CA={fits}."
DOCTOR_PHONE_CA_NONE_FITS = (
    "neither the bot's CA nor a public CA verifies it: set OTCERT_PHONE_CA to the PEM file "
    "of the CA that signed the broker's certificate."
)


async def check_phone_ca(settings: Settings) -> Finding:
    """Which OTCERT_PHONE_CA fits the broker: one verified handshake per candidate, each
    trusting only that candidate (the system store alone for ``none``)."""
    host, port = settings.mqtt_host, settings.mqtt_port
    where = f"{host}:{port}"

    def anchor(value: str) -> bytes | None:
        if value == "none":
            return None
        path = settings.ca_cert_path if value == "bot" else Path(value)
        return path.read_bytes()

    current = settings.phone_ca
    try:
        outcome = await broker_verifies_with(host, port, anchor(current), timeout=PROBE_TIMEOUT)
    except OSError as exc:
        return fail("phone CA", f"Cannot read the CA for OTCERT_PHONE_CA={current}: {exc}.")
    if outcome.ok:
        return ok("phone CA", DOCTOR_PHONE_CA_FITS.format(value=current, where=where,
                                detail=outcome.detail))
    advice = DOCTOR_PHONE_CA_NONE_FITS
    for other in ("bot", "none"):
        if other != current and (await broker_verifies_with(
            host, port, anchor(other), timeout=PROBE_TIMEOUT
        )).ok:
            advice = DOCTOR_PHONE_CA_USE.format(fits=other)
            break
    return warn("phone CA", DOCTOR_PHONE_CA_ADVICE.format(value=current, where=where,
                              detail=outcome.detail, advice=advice))
