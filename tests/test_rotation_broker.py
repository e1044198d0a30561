"""CA rotation against a real Mosquitto whose cafile and crlfile are the bot's own files.

Nobody loses the connection before moving; after ``finish`` old certificates stop working;
a SIGKILL at any file step of ``start`` or ``finish`` leaves a broker that still accepts.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from bot.config import Settings
from bot.core.authorities import AuthorityFiles, load_authorities
from bot.core.results import IssuedBundle
from bot.ops.cli import main
from bot.wiring import open_service
from pki.crl import CRLError, verify_crl
from pki.trust import read_bundle, split_crls
from storage import OPERATOR_ID, Platform
from tests.mosquitto.broker import Broker, certificate_pem
from tests.mosquitto.clients import ClientFiles, connect_ok, connect_refused, write_client_files

pytestmark = pytest.mark.slow
PEOPLE = {"alice": 101, "bob": 102, "carol": 103}


class BotFilesBroker(Broker):
    """Mosquitto with ``cafile`` = the bot's CA bundle and ``crlfile`` = the bot's CRL file."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        cas = load_authorities(AuthorityFiles(settings.data_dir, settings.ca_passphrase()))
        super().__init__(cas.current, workdir, crl_path=settings.effective_crl_path)
        self.ca_path = settings.effective_ca_bundle_path
        self.server_ca = workdir / "server-ca.crt"

    def _write_tls_files(self) -> None:
        from pki import private_key_pem, write_private_file

        cert, key = self.ca.issue_server(["localhost"], ["127.0.0.1"], days=30,
                                         key_type="ec-p256")
        self.cert_path.write_bytes(certificate_pem(cert))
        write_private_file(self.key_path, private_key_pem(key))
        self.server_ca.write_bytes(self.ca.cert_pem)
        self.acl_path.write_text("".join(f"{line}\n" for line in self.acl_lines))


def _env(monkeypatch: pytest.MonkeyPatch, data: Path, reload: str | None = None) -> Settings:
    for name, value in {
        "DATA_DIR": str(data), "ADMIN_IDS": "1", "CA_KEY_PASSPHRASE": "rotate-me-please",
        "ISSUE_COOLDOWN_SECONDS": "0", "KEY_POOL_SIZE": "0", "SIGNING_WORKERS": "0",
        "BROKER_RELOAD_COMMAND": reload or "",
    }.items():
        monkeypatch.setenv(f"OTCERT_{name}", value)
    return Settings()


async def _admit(settings: Settings, *names: str) -> None:
    async with open_service(settings) as service:
        for name in names:
            tid = PEOPLE[name]
            await service.request_access(tid, name.title(), None)
            await service.approve(None, tid, name)
            await service.set_platform(tid, Platform.ANDROID)


def _files(bundle: IssuedBundle, where: Path, server_ca: Path) -> ClientFiles:
    key, cert, _ = pkcs12.load_key_and_certificates(bundle.data, bundle.passphrase.encode())
    assert key is not None and cert is not None
    files = write_client_files(where / bundle.serial, cert, key, cert)  # type: ignore[arg-type]
    files.ca.write_bytes(server_ca.read_bytes())
    return files


async def _issue(settings: Settings, name: str, device: str = "phone") -> IssuedBundle:
    async with open_service(settings) as service:
        return await service.issue(PEOPLE[name], device)


def _reloaded(broker: Broker, offset: int) -> None:
    assert broker.wait_for_log("Reloading config.", after=offset), broker.log_text
    broker._round_trip(5.0)


def test_rotation_keeps_everyone_connected_until_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    settings = _env(monkeypatch, data)
    assert main(["init"]) == 0
    broker = BotFilesBroker(settings, tmp_path / "broker")
    with broker:
        settings = _env(monkeypatch, data, f"kill -HUP {broker.pid}")
        asyncio.run(_admit(settings, "alice", "bob", "carol"))
        alice = _files(asyncio.run(_issue(settings, "alice")), tmp_path, broker.server_ca)
        bob_phone = _files(asyncio.run(_issue(settings, "bob")), tmp_path, broker.server_ca)
        bob_tablet_bundle = asyncio.run(_issue(settings, "bob", "tablet"))
        bob_tablet = _files(bob_tablet_bundle, tmp_path, broker.server_ca)
        assert connect_ok(broker, alice) and connect_ok(broker, bob_phone)

        offset = broker.log_offset()
        assert main(["ca", "rotate", "start", "--key-type", "ec-p384"]) == 0
        _reloaded(broker, offset)
        assert len(read_bundle(settings.effective_ca_bundle_path)) == 2
        assert connect_ok(broker, alice) and connect_ok(broker, bob_tablet)
        carol_bundle = asyncio.run(_issue(settings, "carol"))
        carol = _files(carol_bundle, tmp_path, broker.server_ca)
        assert connect_ok(broker, carol), broker.log_text

        async def revoke() -> None:
            async with open_service(settings) as service:
                await service.revoke(None, "carol", "test")
                await service.repo.revoke_certificate(
                    bob_tablet_bundle.serial, by=OPERATOR_ID, reason="lost"
                )
                await service.refresh_crl()

        offset = broker.log_offset()
        asyncio.run(revoke())
        _reloaded(broker, offset)
        assert connect_refused(broker, carol)  # next CA's CRL
        assert connect_refused(broker, bob_tablet)  # old CA's CRL
        assert connect_ok(broker, alice) and connect_ok(broker, bob_phone)

        async def move_alice() -> IssuedBundle:
            async with open_service(settings) as service:
                assert service.rotation is not None
                waiting = await service.rotation.not_moved()
                assert {p.mqtt_username for p in waiting} == {"alice", "bob"}
                return await service.rotation.move(PEOPLE["alice"])

        offset = broker.log_offset()
        alice_new = _files(asyncio.run(move_alice()), tmp_path, broker.server_ca)
        _reloaded(broker, offset)
        assert connect_ok(broker, alice_new)
        assert connect_refused(broker, alice)  # superseded by the move

        assert main(["ca", "rotate", "finish"]) == 1  # bob still depends on the old CA
        offset = broker.log_offset()
        assert main(["ca", "rotate", "finish", "--force"]) == 0
        _reloaded(broker, offset)
        assert len(read_bundle(settings.effective_ca_bundle_path)) == 1
        assert connect_ok(broker, alice_new)
        assert connect_refused(broker, bob_phone)
        assert list((data / "ca-archive").glob("retired-*/ca.key"))


_CRASHER = """
import os, signal, sys
n, calls, real = int(sys.argv[1]), [0], os.replace
def replace(*args, **kwargs):
    calls[0] += 1
    if calls[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
os.replace = replace
from bot.ops.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _run_killed_at(n: int, *args: str) -> int:
    return subprocess.run([sys.executable, "-c", _CRASHER, str(n), *args],
                          check=False, capture_output=True).returncode


def _consistent(settings: Settings) -> int:
    """The CAs load, and every CA in the bundle has a CRL it signed in the CRL file (else
    Mosquitto refuses all its clients); returns how many CAs the bundle holds."""
    from bot.wiring import load_all_cas

    load_all_cas(settings)
    bundle = read_bundle(settings.effective_ca_bundle_path)
    blocks = split_crls(settings.effective_crl_path.read_bytes())
    for ca in bundle:
        assert any(_signed_by(block, ca) for block in blocks), ca.subject
    return len(bundle)


def _signed_by(block: bytes, ca: x509.Certificate) -> bool:
    try:
        verify_crl(block, ca)
    except CRLError:
        return False
    return True


def test_sigkill_at_every_file_step_of_start_and_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    settings = _env(monkeypatch, data)
    assert main(["init"]) == 0
    asyncio.run(_admit(settings, "alice"))
    broker = BotFilesBroker(settings, tmp_path / "broker")
    with broker:
        alice = _files(asyncio.run(_issue(settings, "alice")), tmp_path, broker.server_ca)
        kills = 0
        for step in ("start", "finish"):
            extra = ["--key-type", "ec-p384"] if step == "start" else ["--force"]
            n = 1
            while _run_killed_at(n, "ca", "rotate", step, *extra) == -9:
                kills += 1
                _consistent(settings)
                broker.reload()
                assert connect_ok(broker, alice), (step, n, broker.log_text)
                # A step cut off is simply run again (or the bot converges at its start).
                n += 1
            _consistent(settings)
            broker.reload()
            assert connect_ok(broker, alice), (step, broker.log_text)
            if step == "start":
                alice = _files(asyncio.run(_issue(settings, "alice")), tmp_path,
                               broker.server_ca)
        assert kills >= 6
        assert _consistent(settings) == 1
