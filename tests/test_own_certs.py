"""The bot's own certificates are recorded and revocable (issue 14, point 1), and restore
refuses while a bot holds the database (point 8): `otcert` as subprocesses, a real Mosquitto.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from cryptography import x509

from bot.core.crl import crl_number_on_disk
from pki import CertificateAuthority
from tests.botproc import BotProcess
from tests.fake_telegram import FakeTelegram
from tests.mosquitto.broker import Broker
from tests.mosquitto.clients import ClientFiles, connect_ok, connect_refused
from tests.openssl import crl_text
from tests.test_cli import base_env, otcert

pytestmark = pytest.mark.slow  # runs otcert in subprocesses, Mosquitto, a bot process


@pytest.fixture
def data(tmp_path: Path, other_ca: CertificateAuthority) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    other_ca.save(path / "ca.crt", path / "ca.key")
    return path


def _serial(path: Path) -> str:
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "x")


def test_replaced_broker_admin_certificate_is_refused_by_mosquitto(
    tmp_path: Path, data: Path, other_ca: CertificateAuthority,
    broker_factory: object,
) -> None:
    env = base_env(data)
    assert otcert("broker-admin-cert", "--out", str(tmp_path / "adm1"), env=env,
                  cwd=tmp_path).returncode == 0
    assert otcert("crl", "write", env=env, cwd=tmp_path).returncode == 0
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    for name in ("broker-admin.crt", "broker-admin.key", "ca.crt"):
        shutil.copy2(tmp_path / "adm1" / name, old_dir / name)
    old = ClientFiles(old_dir / "broker-admin.crt", old_dir / "broker-admin.key",
                      old_dir / "ca.crt")
    broker: Broker = broker_factory(other_ca, crl_path=data / "crl.pem")  # type: ignore[operator]
    assert connect_ok(broker, old)

    (data / "broker-admin.key").chmod(0o644)  # a loosened key: the pair must be re-made
    reload_env = base_env(data, OTCERT_BROKER_RELOAD_COMMAND=f"kill -HUP {broker.pid}")
    remade = otcert("broker-admin-cert", "--out", str(tmp_path / "adm2"), env=reload_env,
                    cwd=tmp_path)
    assert remade.returncode == 0, remade.stderr
    new = ClientFiles(tmp_path / "adm2" / "broker-admin.crt",
                      tmp_path / "adm2" / "broker-admin.key", tmp_path / "adm2" / "ca.crt")
    assert _serial(new.cert) != _serial(old.cert)
    broker.reload()  # waits until Mosquitto has the CRL the command wrote

    assert connect_refused(broker, old), "the replaced admin certificate still connects"
    assert connect_ok(broker, new)
    listing = otcert("certs", "--all", env=env, cwd=tmp_path).stdout
    assert any(_serial(old.cert) in line and "broker-admin" in line and "superseded" in line
               for line in listing.splitlines()), listing
    working = otcert("certs", env=env, cwd=tmp_path).stdout
    assert _serial(new.cert) in working and _serial(old.cert) not in working


def test_broker_admin_key_is_encrypted_with_the_ca_passphrase(
    tmp_path: Path, data: Path, other_ca: CertificateAuthority, broker_factory: object
) -> None:
    """Encrypted at rest, and the kick path (the doctor's dynsec check) still loads it."""
    env = base_env(data, OTCERT_CA_KEY_PASSPHRASE="correct horse battery")
    result = otcert("broker-admin-cert", "--out", str(tmp_path / "adm"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"ENCRYPTED" in (data / "broker-admin.key").read_bytes()
    again = otcert("broker-admin-cert", "--out", str(tmp_path / "adm"), env=env, cwd=tmp_path)
    assert again.returncode == 0
    assert _serial(data / "broker-admin.crt") == _serial(tmp_path / "adm" / "broker-admin.crt")


def test_revoke_by_serial_works_for_a_server_certificate(tmp_path: Path, data: Path) -> None:
    env = base_env(data)
    out = tmp_path / "srv"
    assert otcert("server-cert", "--host", "mqtt.example.org", "--out", str(out), env=env,
                  cwd=tmp_path).returncode == 0
    serial = _serial(out / "server.crt")
    listing = otcert("certs", env=env, cwd=tmp_path).stdout
    assert any(serial in line and "broker-server" in line and "active" in line
               for line in listing.splitlines()), listing
    colons = ":".join(serial.upper().zfill(len(serial) + len(serial) % 2)[i:i + 2]
                      for i in range(0, len(serial) + len(serial) % 2, 2))
    revoked = otcert("revoke", "--serial", colons, "--reason", "key leaked", env=env,
                     cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert f"Revoked certificate {serial} (broker-server" in revoked.stdout
    assert serial.upper() in crl_text(data / "crl.pem").upper()
    assert serial not in otcert("certs", env=env, cwd=tmp_path).stdout
    assert "revoked" in next(line for line in otcert("certs", "--all", env=env, cwd=tmp_path)
                             .stdout.splitlines() if serial in line)
    twice = otcert("revoke", "--serial", str(int(serial, 16)), env=env, cwd=tmp_path)
    assert twice.returncode == 1 and "not active" in twice.stderr

    # Replacing the server files revokes the certificate they held.
    other = tmp_path / "srv2"
    assert otcert("server-cert", "--host", "mqtt.example.org", "--out", str(other), env=env,
                  cwd=tmp_path).returncode == 0
    second = _serial(other / "server.crt")
    assert otcert("server-cert", "--host", "mqtt.example.org", "--out", str(other), "--force",
                  env=env, cwd=tmp_path).returncode == 0
    assert second.upper() in crl_text(data / "crl.pem").upper()


def test_restore_is_refused_while_a_bot_runs_and_keeps_the_crl_number(
    tg: FakeTelegram, tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    bot = BotProcess(tg, tmp_path / "bot", ca=other_ca)
    env = base_env(bot.data_dir, OTCERT_BOT_TOKEN=tg.token)
    archive = tmp_path / "backup.tar.gz"
    with bot:
        assert otcert("backup", str(archive), env=env, cwd=tmp_path).returncode == 0
        for _ in range(3):
            assert otcert("crl", "write", env=env, cwd=tmp_path).returncode == 0
        refused = otcert("restore", str(archive), "--force", env=env, cwd=tmp_path)
        assert refused.returncode == 1
        assert "A bot is running" in refused.stderr and len(refused.stderr.splitlines()) == 1
    before = crl_number_on_disk(bot.data_dir / "crl.pem")
    restored = otcert("restore", str(archive), "--force", env=env, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert crl_number_on_disk(bot.data_dir / "crl.pem") > before


def test_restore_names_a_missing_manifest_field_in_one_line(tmp_path: Path, data: Path) -> None:
    env = base_env(data)
    archive = tmp_path / "backup.tar.gz"
    assert otcert("crl", "write", env=env, cwd=tmp_path).returncode == 0  # makes the database
    assert otcert("backup", str(archive), env=env, cwd=tmp_path).returncode == 0
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    del manifest["version"]
    members["manifest.json"] = json.dumps(manifest).encode()
    damaged = tmp_path / "no-version.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    damaged.write_bytes(buffer.getvalue())
    result = otcert("restore", str(damaged), "--force", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"otcert: {damaged}: the backup manifest has no 'version' field."
    ]
