"""``otcert issue``: certificates for devices and people without Telegram, by the bot's rules.

The fast tests call ``main()`` in-process with OTCERT_* in the environment; the slow one runs
the console script against a real Mosquitto, revokes, and sees the broker refuse.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

from bot.core.doors import NO_TELEGRAM_FIRST_ID
from bot.ops.cli import main
from pki import CertificateAuthority
from tests.mosquitto import Broker, ClientFiles, connect_ok, connect_refused
from tests.test_cli import base_env, otcert
from tests.test_deploy_config import DeployBroker
from tests.waiting import wait_until

DB_NAME = "otcert.sqlite3"
README = Path(__file__).resolve().parents[1] / "README.md"
PASSPHRASE = re.compile(r"^[a-z2-9]{4}(?:-[a-z2-9]{4}){3,}$")


@pytest.fixture
def data_dir(tmp_path: Path, other_ca: CertificateAuthority,
             monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    other_ca.save(path / "ca.crt", path / "ca.key")
    for key, value in base_env(path, OTCERT_MQTT_HOST="mqtt.example.org",
                               OTCERT_ISSUE_COOLDOWN_SECONDS="0").items():
        if key.startswith("OTCERT_"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return path


def audit_rows(data_dir: Path) -> list[tuple[int, str, int]]:
    with sqlite3.connect(data_dir / DB_NAME) as db:
        return list(db.execute("SELECT actor_id, action, subject_id FROM audit_log ORDER BY id"))


def test_new_person_pem_writes_cert_key_and_ca_and_is_recorded_as_the_operators(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["issue", "demo", "--new", "--format", "pem", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "key now lives" in err
    cert = x509.load_pem_x509_certificate((out / "demo-phone.crt").read_bytes())
    key = load_pem_private_key((out / "demo-phone.key").read_bytes(), None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert cert.subject.rfc4514_string() == "CN=demo"
    assert (out / "demo-phone.key").stat().st_mode & 0o777 == 0o600
    assert (out / "ca.crt").read_bytes() == (data_dir / "ca.crt").read_bytes()
    rows = audit_rows(data_dir)
    # The phone the file was made for is remembered, so its renewal needs no question.
    assert [(a, act) for a, act, _ in rows] == [(0, "approve"), (0, "issue"),
                                                (0, "set_platform")]
    assert rows[0][2] <= NO_TELEGRAM_FIRST_ID  # an id no Telegram chat can have


def test_p12_prints_the_passphrase_once_and_writes_an_otrc_without_it(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ios"
    args = ["issue", "gran", "--new", "--platform", "ios", "--device", "ipad", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out.strip()
    assert PASSPHRASE.match(printed), printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ca.crt", "gran-ipad.otrc", "gran-ipad.otrp"]
    key, cert, _ = pkcs12.load_key_and_certificates(
        (out / "gran-ipad.otrp").read_bytes(), printed.encode())
    assert key is not None and cert is not None
    config = json.loads((out / "gran-ipad.otrc").read_text())
    assert config["_type"] == "configuration"
    assert (config["host"], config["port"], config["tls"]) == ("mqtt.example.org", 8883, True)
    assert (config["username"], config["deviceId"]) == ("gran", "ipad")
    assert config["clientpkcs"] == "gran-ipad.otrp"
    assert printed not in (out / "gran-ipad.otrc").read_text()
    assert not {"password", "passphrase"} & set(config)


def test_passphrase_file_is_0600_and_nothing_is_printed(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pass.txt"
    args = ["issue", "rec", "--new", "--out", str(tmp_path / "rec"),
            "--passphrase-file", str(secret)]
    assert main(args) == 0
    captured = capsys.readouterr()
    phrase = secret.read_text().strip()
    assert PASSPHRASE.match(phrase)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert phrase not in captured.out + captured.err
    assert (tmp_path / "rec" / "rec-phone.p12").exists()  # android is the default


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["otcert-admin", "--new"], "reserved"),
        (["no/slash", "--new"], "username"),
        (["nobody"], "known"),
    ],
)
def test_refusals_say_why_and_issue_nothing(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    why: str,
) -> None:
    out = tmp_path / "x"
    assert main(["issue", *args, "--out", str(out)]) == 1
    assert why in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_a_taken_username_is_refused_and_existing_files_need_force(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d"
    assert main(["issue", "demo", "--new", "--format", "pem", "--out", str(out)]) == 0
    assert main(["issue", "demo", "--new", "--format", "pem", "--out", str(tmp_path / "e")]) == 1
    assert "already taken" in capsys.readouterr().err
    before = (out / "demo-phone.crt").read_bytes()
    assert main(["issue", "demo", "--format", "pem", "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (out / "demo-phone.crt").read_bytes() == before
    assert main(["issue", "demo", "--format", "pem", "--out", str(out), "--force"]) == 0
    assert (out / "demo-phone.crt").read_bytes() != before
    assert "1 older certificate(s) replaced" in capsys.readouterr().err  # superseded
    assert audit_rows(data_dir)[-1][:2] == (0, "issue")


def test_the_device_limit_applies_as_in_the_chat(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OTCERT_MAX_DEVICES", "1")
    assert main(["issue", "ha", "--new", "--format", "pem", "--out", str(tmp_path / "a")]) == 0
    args = ["issue", "ha", "--device", "two", "--format", "pem", "--out", str(tmp_path / "b")]
    assert main(args) == 1
    assert "most allowed" in capsys.readouterr().err


@pytest.mark.slow
def test_mosquitto_accepts_the_issued_pem_until_otcert_revoke(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other_ca.save(data / "ca.crt", data / "ca.key")
    env = base_env(data)
    assert otcert("crl", "write", env=env, cwd=tmp_path).returncode == 0
    with Broker(other_ca, tmp_path / "broker", crl_path=data / "crl.pem") as broker:
        env["OTCERT_BROKER_RELOAD_COMMAND"] = f"kill -HUP {broker.pid}"
        out = tmp_path / "demo"
        issued = otcert("issue", "demo", "--new", "--format", "pem", "--out", str(out),
                        env=env, cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        files = ClientFiles(out / "demo-phone.crt", out / "demo-phone.key", out / "ca.crt")
        assert connect_ok(broker, files), broker.log_text[-2000:]
        revoked = otcert("revoke", "demo", env=env, cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        assert "reload: ok" in revoked.stdout
        assert wait_until(lambda: connect_refused(broker, files), 20), broker.log_text[-2000:]


@pytest.mark.slow
def test_the_readme_demo_line_connects_to_the_shipped_mosquitto_conf(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    """README's "try it in one minute": the mosquitto_pub line as written (host and port
    pointed at this broker) gets in with `otcert issue --new --format pem`, then not after
    `otcert revoke` and a reload."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other_ca.save(data / "ca.crt", data / "ca.key")
    env = base_env(data)
    assert otcert("crl", "write", env=env, cwd=tmp_path).returncode == 0
    line = next(text for text in README.read_text().splitlines()
                if text.startswith("mosquitto_pub "))
    broker = DeployBroker(other_ca, tmp_path / "broker")
    broker.crl_path = data / "crl.pem"
    with broker:
        issued = otcert("issue", "demo", "--new", "--format", "pem", "--out", "./demo",
                        env=env, cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        args = ["127.0.0.1" if a == "localhost" else str(broker.port) if a == "8883" else a
                for a in shlex.split(line)]

        def pub() -> subprocess.CompletedProcess[str]:
            return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=15, check=False)

        first = pub()
        assert first.returncode == 0, first.stderr + broker.log_text[-2000:]
        assert otcert("revoke", "demo", env=env, cwd=tmp_path).returncode == 0
        broker.reload()
        assert pub().returncode != 0
