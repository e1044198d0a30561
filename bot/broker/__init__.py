"""Talking to the Mosquitto broker: re-read the CRL (reload command) and end live sessions (kick).

Why both: Mosquitto only re-reads ``crlfile`` on SIGHUP, and even then a revoked person's
*connected* session stays up. The dynamic-security plugin's ``deleteClient`` disconnects every
session of a username, so after the CRL is in place and re-read, a kick ends what revocation
cannot. Order matters: CRL + reload first, kick second, or the phone reconnects at once.

Nothing here raises: every failure becomes a :class:`BrokerOutcome` whose ``detail`` is a
sentence for an admin (no keys, passphrases or tokens in it).

Why a package: the reload command (a subprocess), the dynsec transport (MQTT over TLS in a
worker thread), what the bot asks of dynsec (kick, doctor check) and the admin's own
certificate change for different reasons; each lives in its own module, and this one keeps
the single import path (``from bot.broker import ...``) the rest of the code uses.
"""

from bot.broker.admin_identity import (
    ADMIN_CERT_NAME,
    ADMIN_KEY_NAME,
    ADMIN_RENEW_BEFORE,
    ensure_admin_identity,
)
from bot.broker.dynsec import (
    DYNSEC_RESPONSE_TOPIC,
    DYNSEC_TOPIC,
    BrokerAdmin,
    admin_tls_context,
    dynsec_request,
)
from bot.broker.kick import check_kick_path, kick_sessions
from bot.broker.outcome import BrokerOutcome
from bot.broker.reload import run_reload_command

__all__ = [
    "ADMIN_CERT_NAME",
    "ADMIN_KEY_NAME",
    "ADMIN_RENEW_BEFORE",
    "DYNSEC_RESPONSE_TOPIC",
    "DYNSEC_TOPIC",
    "BrokerAdmin",
    "BrokerOutcome",
    "admin_tls_context",
    "check_kick_path",
    "dynsec_request",
    "ensure_admin_identity",
    "kick_sessions",
    "run_reload_command",
]
