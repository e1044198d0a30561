"""`otcert doctor` against a real Mosquitto: healthy, and broken in the ways operators break it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pki import CertificateAuthority, build_crl, write_crl
from pki.crl import crl_pem
from tests.dynsec import dynsec_config, needs_dynsec
from tests.mosquitto import Broker
from tests.test_cli import base_env, otcert

pytestmark = pytest.mark.slow  # runs `otcert` against a real Mosquitto

BrokerFactory = Callable[..., Broker]


@pytest.fixture
def data_dir(tmp_path: Path, other_ca: CertificateAuthority) -> Path:
    """The bot's data dir with a CA (the EC session CA: quick to load) and a fresh CRL."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    other_ca.save(path / "ca.crt", path / "ca.key")
    result = otcert("crl", "write", env=base_env(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return path


def broker_env(data_dir: Path, broker: Broker, **extra: str) -> dict[str, str]:
    return base_env(
        data_dir, OTCERT_MQTT_HOST=broker.host, OTCERT_MQTT_PORT=str(broker.port),
        OTCERT_BROKER_RELOAD_COMMAND=f"kill -HUP {broker.pid}", **extra,
    )


def findings(stdout: str) -> list[str]:
    """The OK/WARN/FAIL lines of the report."""
    return [line for line in stdout.splitlines() if line.split(" ", 1)[0] in {"OK", "WARN", "FAIL"}]


def line_about(stdout: str, topic: str) -> str:
    return next(line for line in findings(stdout) if line.split(None, 1)[1].startswith(topic))


def test_healthy_deployment_is_all_ok(
    tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority, broker_factory: BrokerFactory
) -> None:
    broker = broker_factory(other_ca, crl_path=data_dir / "crl.pem")
    before = sorted(p.name for p in data_dir.iterdir())
    offset = broker.log_offset()
    result = otcert("doctor", env=broker_env(data_dir, broker), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = findings(result.stdout)
    assert len(lines) >= 7
    assert all(line.startswith("OK") for line in lines), result.stdout
    assert "MQTT CONNECT accepted" in line_about(result.stdout, "broker")
    assert "(90 days left)" in line_about(result.stdout, "broker cert")
    assert "No problems found." in result.stdout
    # The broker really saw the throw-away identity, and nothing of it was kept.
    assert broker.wait_for_log("otcert-doctor", after=offset)
    assert sorted(p.name for p in data_dir.iterdir()) == before


def test_broker_down_is_a_clear_failure(
    tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority, broker_factory: BrokerFactory
) -> None:
    broker = broker_factory(other_ca, crl_path=data_dir / "crl.pem")
    env = broker_env(data_dir, broker)
    broker.stop()
    result = otcert("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 1
    line = line_about(result.stdout, "broker")
    assert line.startswith("FAIL") and "connection refused" in line
    assert f"{broker.host}:{broker.port}" in line


def test_broker_refusing_our_certificates_is_named(
    tmp_path: Path, data_dir: Path, ca: CertificateAuthority, broker_factory: BrokerFactory
) -> None:
    """A broker whose cafile is another CA: the server verifies, our client certificate not."""
    broker = broker_factory(ca)
    env = broker_env(data_dir, broker, OTCERT_BROKER_CA_FILE=str(broker.ca_path))
    result = otcert("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 1
    line = line_about(result.stdout, "broker")
    assert line.startswith("FAIL") and "refused the test client certificate" in line


def test_unverifiable_broker_certificate_is_named(
    tmp_path: Path, data_dir: Path, ca: CertificateAuthority, broker_factory: BrokerFactory
) -> None:
    broker = broker_factory(ca)  # its server certificate is from a CA the bot does not trust
    result = otcert("doctor", env=broker_env(data_dir, broker), cwd=tmp_path)
    assert result.returncode == 1
    line = line_about(result.stdout, "broker")
    assert line.startswith("FAIL") and "does not verify" in line
    assert "OTCERT_BROKER_CA_FILE" in line


def _write_raw_crl(path: Path, ca: CertificateAuthority, *, now: datetime, days: int) -> None:
    crl = build_crl(ca, [], crl_number=99, validity=timedelta(days=days), now=now)
    path.write_bytes(crl_pem(crl))


def test_expired_crl_fails(tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority) -> None:
    _write_raw_crl(data_dir / "crl.pem", other_ca, now=datetime.now(UTC) - timedelta(days=31),
                   days=30)
    result = otcert("doctor", env=base_env(data_dir), cwd=tmp_path)
    assert result.returncode == 1
    line = line_about(result.stdout, "CRL")
    assert line.startswith("FAIL") and "expired" in line and "refuses every client" in line


def test_crl_close_to_next_update_warns(
    tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority
) -> None:
    _write_raw_crl(data_dir / "crl.pem", other_ca, now=datetime.now(UTC) - timedelta(days=25),
                   days=30)
    result = otcert("doctor", env=base_env(data_dir), cwd=tmp_path)
    line = line_about(result.stdout, "CRL")
    assert line.startswith("WARN") and "expires soon" in line


def test_missing_or_foreign_crl_fails(
    tmp_path: Path, data_dir: Path, ca: CertificateAuthority
) -> None:
    crl_path = data_dir / "crl.pem"
    crl_path.unlink()
    result = otcert("doctor", env=base_env(data_dir), cwd=tmp_path)
    assert result.returncode == 1
    line = line_about(result.stdout, "CRL")
    assert line.startswith("FAIL") and "missing" in line and "otcert crl write" in line

    write_crl(crl_path, build_crl(ca, [], crl_number=1), ca.certificate)
    result = otcert("doctor", env=base_env(data_dir), cwd=tmp_path)
    line = line_about(result.stdout, "CRL")
    assert line.startswith("FAIL") and "not signed by this CA" in line


def test_settings_and_key_permissions(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "ca.key").chmod(0o644)
    env = base_env(data_dir, OTCERT_BROKER_RELOAD_COMMAND="no-such-reloader --now")
    del env["OTCERT_BOT_TOKEN"]
    result = otcert("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert line_about(result.stdout, "settings").startswith("FAIL")
    key_line = line_about(result.stdout, "CA key")
    assert key_line.startswith("FAIL") and "chmod 600" in key_line
    reload_line = line_about(result.stdout, "reload")
    assert reload_line.startswith("FAIL") and "no-such-reloader" in reload_line


@needs_dynsec
def test_kick_path_checked_when_enabled(
    tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority, broker_factory: BrokerFactory
) -> None:
    broker = broker_factory(other_ca, crl_path=data_dir / "crl.pem",
                            extra_config=dynsec_config(tmp_path))
    env = broker_env(data_dir, broker, OTCERT_BROKER_KICK="dynsec")
    result = otcert("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    line = line_about(result.stdout, "kick")
    assert line.startswith("OK") and "dynamic-security plugin" in line

    env["OTCERT_BROKER_ADMIN_CN"] = "not-the-admin"
    result = otcert("doctor", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert line_about(result.stdout, "kick").startswith("FAIL")


def test_broker_certificate_close_to_expiry_warns_and_names_the_fix(
    tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority, broker_factory: BrokerFactory
) -> None:
    broker = broker_factory(other_ca, crl_path=data_dir / "crl.pem", server_days=10)
    result = otcert("doctor", env=broker_env(data_dir, broker), cwd=tmp_path)
    line = line_about(result.stdout, "broker cert")
    assert line.startswith("WARN") and "in 10 days" in line and "otcert server-cert" in line
