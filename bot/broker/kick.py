"""What the bot asks of the dynamic-security plugin: end a person's sessions, prove the path.

Why: the CRL keeps a revoked person out of *new* connections only; ``deleteClient`` ends the
live ones. ``otcert doctor`` uses :func:`check_kick_path` so a broken kick path shows up
before the first revocation needs it.
"""

from __future__ import annotations

from typing import Any

from bot.broker.admin_identity import certificate_cn
from bot.broker.dynsec import BrokerAdmin, dynsec_request
from bot.broker.outcome import BrokerOutcome
from pki.names import InvalidName, validate_username

_RECEIVE = "publishClientReceive"


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
    admin_cn = certificate_cn(admin.cert_path)
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

