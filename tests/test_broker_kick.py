"""Ending a revoked person's live sessions through the dynamic-security plugin (issue 8).

Real Mosquitto with the certificate listener, the OwnTracks ACL file and the dynsec plugin;
the dynsec JSON is made by deploy/dynsec-init.sh itself. Clients are auto-reconnecting paho
sessions, like phones.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bot.broker import (
    BrokerAdmin,
    check_kick_path,
    dynsec_request,
    ensure_admin_identity,
    kick_sessions,
    run_reload_command,
)
from pki import (
    CertificateAuthority,
    RevokedEntry,
    generate_private_key,
    private_key_pem,
    write_private_file,
)
from tests.dynsec import (
    ADMIN_CN,
    Phone,
    admin_for,
    dynsec_config,
    needs_dynsec,
    person,
)
from tests.mosquitto import Broker, ClientFiles, _free_port
from tests.waiting import async_wait_until

pytestmark = [needs_dynsec, pytest.mark.slow]  # starts Mosquitto


# ---- the kick --------------------------------------------------------------------------------


async def test_revoke_reload_kick_ends_only_that_persons_session(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker],
    phones: Callable[[Broker, ClientFiles], Phone],
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path))
    admin = admin_for(broker, ca, tmp_path)
    bob_files, bob_serial = person(ca, tmp_path, "bob")
    alice_files, _ = person(ca, tmp_path, "alice")
    bob = await asyncio.to_thread(phones, broker, bob_files)
    alice = await asyncio.to_thread(phones, broker, alice_files)
    await asyncio.to_thread(bob.publish, "owntracks/bob/phone")
    await asyncio.to_thread(alice.publish, "owntracks/alice/phone")

    broker.write_crl([RevokedEntry(bob_serial, datetime.now(UTC))], reload=False)
    reloaded = await run_reload_command(f"kill -HUP {broker.pid}")
    assert reloaded.ok, reloaded.detail
    outcome = await kick_sessions(admin, "bob")
    assert outcome.ok, outcome.detail

    assert await asyncio.to_thread(bob.disconnected.wait, 5), broker.log_text
    # bob's client retries every 0.1-0.2 s: each retry must be refused, none may get in.
    assert await async_wait_until(lambda: bob.connect_failures >= 2, 15), (
        "bob's client never retried, so nothing was proven")
    assert bob.connects == 1 and bob.disconnects == ["Administrative action"], bob.disconnects
    assert alice.disconnects == [] and alice.connects == 1
    await asyncio.to_thread(alice.publish, "owntracks/alice/phone")


async def test_kick_without_live_session_and_with_stored_dynsec_client(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker]
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path))
    admin = admin_for(broker, ca, tmp_path)
    nobody = await kick_sessions(admin, "nobody-online")
    assert nobody.ok, nobody.detail

    created = await dynsec_request(admin, [{"command": "createClient", "username": "dora"}], 5)
    assert isinstance(created, list) and "error" not in created[0], created
    stored = await kick_sessions(admin, "dora")
    assert stored.ok and "was stored" in stored.detail, stored.detail
    listed = await dynsec_request(admin, [{"command": "listClients"}], 5)
    assert isinstance(listed, list)
    assert listed[0]["data"]["clients"] == [ADMIN_CN], "the kick must leave no client behind"


async def test_kick_refuses_the_admin_itself_and_bad_names(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker]
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path))
    admin = admin_for(broker, ca, tmp_path)
    own = await kick_sessions(admin, ADMIN_CN.upper())
    assert not own.ok and "own dynsec admin" in own.detail
    bad = await kick_sessions(admin, "bob/#")
    assert not bad.ok and "not allowed" in bad.detail
    still = await check_kick_path(admin)
    assert still.ok, still.detail  # the admin survived both attempts


@pytest.mark.parametrize("receive_everything", [False, True])
async def test_someone_stored_in_dynsec_reads_only_what_the_acl_allows(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker],
    phones: Callable[[Broker, ClientFiles], Phone], receive_everything: bool,
) -> None:
    """publishClientReceive must be false: otherwise a dynsec client reads every topic."""
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path,
                                                           receive_everything=receive_everything))
    admin = admin_for(broker, ca, tmp_path)
    created = await dynsec_request(admin, [{"command": "createClient", "username": "carol"}], 5)
    assert isinstance(created, list) and "error" not in created[0], created
    carol = await asyncio.to_thread(phones, broker, person(ca, tmp_path, "carol")[0])
    alice = await asyncio.to_thread(phones, broker, person(ca, tmp_path, "alice")[0])
    await asyncio.to_thread(carol.subscribe, "owntracks/#")
    await asyncio.to_thread(alice.subscribe, "owntracks/alice/#")

    await asyncio.to_thread(alice.publish, "owntracks/alice/phone/cmd", "private")
    assert await asyncio.to_thread(alice.messages.get, True, 5) == (
        "owntracks/alice/phone/cmd", b"private"
    )  # control: the message was delivered to a reader the ACL allows
    # A round trip with the broker: a copy sent to carol earlier arrives before the SUBACK.
    await asyncio.to_thread(carol.subscribe, "owntracks/carol/#")
    leaked = not carol.messages.empty()
    assert leaked is receive_everything


# ---- check_kick_path (otcert doctor) -----------------------------------------------------------


async def test_check_kick_path_passes_with_the_plugin(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker]
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path))
    via_ca_file = admin_for(broker, ca, tmp_path, ca_file=broker.ca_path,
                            bot_ca_file=tmp_path / "unused.crt")
    outcome = await check_kick_path(via_ca_file)
    assert outcome.ok and "WARNING" not in outcome.detail, outcome.detail


async def test_check_kick_path_warns_when_dynsec_clients_read_everything(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker]
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path, receive_everything=True))
    outcome = await check_kick_path(admin_for(broker, ca, tmp_path))
    assert outcome.ok and "WARNING" in outcome.detail, outcome.detail


# ---- failures never raise --------------------------------------------------------------------


async def test_broker_down_fails_quickly_and_plainly(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert_path, key_path = ensure_admin_identity(ca, tmp_path / "data", ADMIN_CN)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    admin = BrokerAdmin("127.0.0.1", _free_port(), cert_path, key_path, None, ca_file)
    outcome = await kick_sessions(admin, "bob", timeout=2)
    assert not outcome.ok and "connection refused" in outcome.detail, outcome.detail


async def test_broker_without_plugin_is_reported_not_raised(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker]
) -> None:
    broker = broker_factory(ca)
    admin = admin_for(broker, ca, tmp_path)
    kicked = await kick_sessions(admin, "bob", timeout=1)
    assert not kicked.ok and "plugin" in kicked.detail, kicked.detail
    checked = await check_kick_path(admin, timeout=1)
    assert not checked.ok and "plugin" in checked.detail, checked.detail


async def test_broker_with_a_certificate_from_another_ca_is_never_trusted(
    ca: CertificateAuthority, other_ca: CertificateAuthority, tmp_path: Path,
    broker_factory: Callable[..., Broker],
) -> None:
    impostor = broker_factory(other_ca, extra_config=dynsec_config(tmp_path))
    admin = admin_for(impostor, ca, tmp_path, bot_ca_file=tmp_path / "our-ca.crt")
    admin.bot_ca_file.write_bytes(ca.cert_pem)
    outcome = await kick_sessions(admin, "bob", timeout=2)
    assert not outcome.ok and "verify the broker's certificate" in outcome.detail, outcome.detail
    assert "Client " + "otcert-admin" not in impostor.log_text  # never got as far as MQTT


# ---- run_reload_command ----------------------------------------------------------------------


async def test_reload_command_outcomes(tmp_path: Path) -> None:
    assert (await run_reload_command(None)).detail == "no reload command configured"
    assert (await run_reload_command("true")).ok
    failed = await run_reload_command("echo first >&2; echo 'no such unit' >&2; exit 3")
    assert not failed.ok and "exit code 3" in failed.detail and "no such unit" in failed.detail
    missing = await run_reload_command("/nonexistent/reload-mosquitto")
    assert not missing.ok and "exit code 127" in missing.detail


async def test_reload_command_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    outcome = await run_reload_command(f"sleep 30 & echo $! > {pid_file}; wait", timeout=0.5)
    assert not outcome.ok and "did not finish" in outcome.detail
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not _alive(child), "the reload command's child outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"  # a zombie is dead


# ---- the admin's own certificate -------------------------------------------------------------


def test_admin_identity_is_reused_and_replaced_when_it_must_be(
    ca: CertificateAuthority, other_ca: CertificateAuthority, tmp_path: Path
) -> None:
    def serial() -> int:
        return x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number

    cert_path, key_path = ensure_admin_identity(ca, tmp_path, ADMIN_CN)
    assert key_path.stat().st_mode & 0o777 == 0o600
    first = serial()
    assert ensure_admin_identity(ca, tmp_path, ADMIN_CN) == (cert_path, key_path)
    assert serial() == first, "a valid identity must be reused"

    ensure_admin_identity(other_ca, tmp_path, ADMIN_CN)  # the CA was replaced
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()).issuer == (
        other_ca.certificate.subject
    )
    key = generate_private_key("ec-p256")
    soon = ca.issue_client(ADMIN_CN, key, days=10)
    write_private_file(key_path, private_key_pem(key))
    cert_path.write_bytes(soon.public_bytes(Encoding.PEM))
    ensure_admin_identity(ca, tmp_path, ADMIN_CN)
    renewed = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert renewed.not_valid_after_utc - datetime.now(UTC) > timedelta(days=800)
    key_path.unlink()
    ensure_admin_identity(ca, tmp_path, ADMIN_CN)
    assert key_path.exists() and serial() != renewed.serial_number
