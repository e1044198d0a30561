"""The ``otcert`` console script, run as an operator runs it: a subprocess with OTCERT_* env.

The helpers at the top are shared by the other ``test_cli_*`` modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from bot.ops.cli import main
from pki import CertificateAuthority
from tests._fake_telegram_api import BOT_USERNAME
from tests.botproc import ADMIN_ID, BotProcess
from tests.fake_telegram import FakeTelegram
from tests.openssl import make_generate_ca_sh_ca, openssl, verify

TOKEN = "123456:TEST-token-never-printed-abcdefghijk"


def otcert_command() -> list[str]:
    script = shutil.which("otcert")
    return [script] if script else [sys.executable, "-m", "bot.ops.cli"]


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no OTCERT_* from the outside, a data dir, token and admins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTCERT_")}
    env.update(OTCERT_DATA_DIR=str(data_dir), OTCERT_BOT_TOKEN=TOKEN, OTCERT_ADMIN_IDS="1000")
    env.update(extra)
    return env


def otcert(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``otcert ARGS``; ``cwd`` should be a tmp dir so no stray ``.env`` is read."""
    result = subprocess.run(
        [*otcert_command(), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    return result


@pytest.fixture
def data_dir(tmp_path: Path, other_ca: CertificateAuthority) -> Path:
    """A data dir holding a session CA; EC, since loading RSA 4096 costs ~0.5 s per process."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    other_ca.save(path / "ca.crt", path / "ca.key")
    return path


# ---- run refuses to start ------------------------------------------------------------------


@pytest.mark.slow  # starts a bot process
@pytest.mark.parametrize(
    ("unset", "expected"),
    [("OTCERT_BOT_TOKEN", "OTCERT_BOT_TOKEN is not set"),
     ("OTCERT_ADMIN_IDS", "OTCERT_ADMIN_IDS is not set")],
)
def test_run_refuses_without_token_or_admins(
    tmp_path: Path, data_dir: Path, unset: str, expected: str
) -> None:
    env = base_env(data_dir)
    del env[unset]
    result = otcert("run", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("otcert: ") and expected in result.stderr


@pytest.mark.slow  # starts a bot process
def test_run_refuses_bad_admin_ids(tmp_path: Path, data_dir: Path) -> None:
    result = otcert("run", env=base_env(data_dir, OTCERT_ADMIN_IDS="12,bob"), cwd=tmp_path)
    assert result.returncode == 1
    assert "OTCERT_ADMIN_IDS" in result.stderr and "numeric" in result.stderr


@pytest.mark.slow  # starts a bot process
def test_run_refuses_unusable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = otcert("run", env=base_env(blocker / "data"), cwd=tmp_path)
    assert result.returncode == 1
    assert "Cannot create OTCERT_DATA_DIR" in result.stderr


@pytest.mark.slow  # starts a bot process
def test_run_refuses_group_readable_ca_key(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "ca.key").chmod(0o640)
    result = otcert("run", env=base_env(data_dir), cwd=tmp_path)
    assert result.returncode == 1
    assert "readable by others" in result.stderr and "chmod 600" in result.stderr


@pytest.mark.slow  # starts a bot process
def test_run_refuses_unreadable_ca_key(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "ca.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    result = otcert("run", env=base_env(data_dir), cwd=tmp_path)
    assert result.returncode == 1
    assert "not a readable PEM private key" in result.stderr


@pytest.mark.slow  # starts a bot process
def test_run_refuses_encrypted_key_without_passphrase(tmp_path: Path, data_dir: Path) -> None:
    env = base_env(data_dir, OTCERT_CA_KEY_PASSPHRASE="correct horse battery")
    assert otcert("ca", "import", "--cert", str(data_dir / "ca.crt"), "--key",
                  str(data_dir / "ca.key"), env=env, cwd=tmp_path).returncode == 0
    assert b"ENCRYPTED" in (data_dir / "ca.key").read_bytes()
    wrong = otcert("run", env=base_env(data_dir, OTCERT_CA_KEY_PASSPHRASE="nope"), cwd=tmp_path)
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    assert "nope" not in wrong.stderr
    missing = otcert("run", env=base_env(data_dir), cwd=tmp_path)
    assert missing.returncode == 1 and "OTCERT_CA_KEY_PASSPHRASE" in missing.stderr


@pytest.mark.slow  # starts a bot process
def test_run_with_a_rejected_token_never_prints_it(
    tmp_path: Path, data_dir: Path, tg: FakeTelegram
) -> None:
    """PTB's InvalidToken quotes the token; the operator sees one plain line instead."""
    env = base_env(data_dir, OTCERT_TELEGRAM_API_URL=tg.base_url,
                   OTCERT_TELEGRAM_FILE_URL=tg.base_file_url)  # the fake knows another token
    result = otcert("run", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "otcert: Telegram rejected OTCERT_BOT_TOKEN (or OTCERT_TELEGRAM_API_URL is wrong)."
    )
    assert TOKEN not in result.stderr  # also checked by otcert(), with no traceback allowed


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_usage_errors_exit_2(tmp_path: Path, data_dir: Path) -> None:
    env = base_env(data_dir)
    for args in (["frobnicate"], ["audit", "--limit", "0"]):
        result = otcert(*args, env=env, cwd=tmp_path)
        assert result.returncode == 2, args
        assert "usage: otcert" in result.stderr
    helped = otcert("revoke", "--help", env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "USERNAME|TELEGRAM_ID" in helped.stdout


@pytest.mark.parametrize(
    "command",
    [["run"], ["init"], ["ca"], ["ca", "import"], ["ca", "show"], ["ca", "export"],
     ["server-cert"], ["broker-admin-cert"], ["crl"], ["crl", "write"], ["users"], ["revoke"],
     ["audit"], ["backup"], ["restore"], ["doctor"]],
)
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: otcert {' '.join(command)}")
    assert len(out.splitlines()) > 3


@pytest.mark.slow  # starts a bot process
def test_run_logs_a_startup_summary(
    tg: FakeTelegram, tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    bot = BotProcess(tg, tmp_path / "bot", ca=other_ca)
    with bot:
        line = next(line for line in bot.log_text.splitlines() if "started as @" in line)
    assert f"@{BOT_USERNAME}" in line and f"admins [{ADMIN_ID}]" in line
    assert str(bot.data_dir) in line and other_ca.fingerprint_sha256 in line
    assert str(bot.data_dir / "crl.pem") in line and "mqtt.example.org:8883" in line
    assert tg.token not in bot.log_text


# ---- the CA ------------------------------------------------------------------------------------


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_ca_import_adopts_generate_ca_sh_ca(tmp_path: Path) -> None:
    cert_path, key_path = make_generate_ca_sh_ca(tmp_path)
    data = tmp_path / "data"
    env = base_env(data, OTCERT_CA_KEY_PASSPHRASE="a long passphrase")
    result = otcert("ca", "import", "--cert", str(cert_path), "--key", str(key_path),
                    env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (data / "ca.crt").read_bytes() == cert_path.read_bytes()
    key_pem = (data / "ca.key").read_bytes()
    assert b"ENCRYPTED" in key_pem and (data / "ca.key").stat().st_mode & 0o777 == 0o600
    assert "a long passphrase" not in result.stdout + result.stderr
    # The CRL is written and verifies against the adopted CA with the real openssl.
    crl = data / "crl.pem"
    assert crl.stat().st_mode & 0o777 == 0o644
    openssl("crl", "-in", crl, "-CAfile", cert_path, "-noout")
    show = otcert("ca", "show", env=env, cwd=tmp_path)
    assert "CN=An MQTT broker" in show.stdout and "RSA 2048" in show.stdout
    assert "encrypted" in show.stdout and "not encrypted" not in show.stdout
    adopted = x509.load_pem_x509_certificate(cert_path.read_bytes())
    fingerprint = adopted.fingerprint(hashes.SHA256()).hex(":").upper()
    assert fingerprint in show.stdout


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_ca_import_refuses_to_replace_a_different_ca_without_force(
    tmp_path: Path, data_dir: Path
) -> None:
    cert_path, key_path = make_generate_ca_sh_ca(tmp_path)
    env = base_env(data_dir)
    before = (data_dir / "ca.crt").read_bytes()
    refused = otcert("ca", "import", "--cert", str(cert_path), "--key", str(key_path),
                     env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert (data_dir / "ca.crt").read_bytes() == before
    forced = otcert("ca", "import", "--cert", str(cert_path), "--key", str(key_path), "--force",
                    env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (data_dir / "ca.crt").read_bytes() == cert_path.read_bytes()
    assert (data_dir / "ca.crt.old").read_bytes() == before
    assert (data_dir / "ca.key.old").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_ca_import_refuses_mismatched_key(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    cert_path, _key = make_generate_ca_sh_ca(tmp_path)
    other_ca.save(tmp_path / "other.crt", tmp_path / "other.key")
    result = otcert("ca", "import", "--cert", str(cert_path), "--key",
                    str(tmp_path / "other.key"), env=base_env(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 1 and "does not belong" in result.stderr
    assert not (tmp_path / "data" / "ca.crt").exists()


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_ca_export_pem_and_der(
    tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority
) -> None:
    env = base_env(data_dir)
    pem = otcert("ca", "export", env=env, cwd=tmp_path)
    assert pem.stdout.encode() == other_ca.cert_pem
    out = tmp_path / "ca.otre"
    assert otcert("ca", "export", "--der", "--out", str(out), env=env, cwd=tmp_path).returncode == 0
    assert out.read_bytes() == other_ca.cert_der
    text = openssl("x509", "-in", out, "-inform", "DER", "-noout", "-subject").stdout
    assert "Other CA" in text


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_ca_show_without_ca_says_run_init(tmp_path: Path) -> None:
    result = otcert("ca", "show", env=base_env(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 1 and "otcert init" in result.stderr


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_init_then_show(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data")
    first = otcert("init", env=env, cwd=tmp_path)
    assert first.returncode == 0 and "New CA" in first.stdout
    again = otcert("init", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "Existing CA" in again.stdout
    assert (tmp_path / "data" / "crl.pem").exists()


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_server_cert_for_mosquitto(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "broker"
    env = base_env(data_dir)
    result = otcert("server-cert", "--host", "mqtt.example.org", "--host", "localhost",
                    "--ip", "192.0.2.7", "--out", str(out), "--days", "400", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "server.key").stat().st_mode & 0o777 == 0o600
    assert (out / "ca.crt").read_bytes() == (data_dir / "ca.crt").read_bytes()
    assert verify(out / "ca.crt", out / "server.crt", purpose="sslserver").returncode == 0
    text = openssl("x509", "-in", out / "server.crt", "-noout", "-text").stdout
    assert "DNS:mqtt.example.org" in text and "IP Address:192.0.2.7" in text
    again = otcert("server-cert", "--host", "x.example", "--out", str(out), env=env, cwd=tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr
    bad = otcert("server-cert", "--host", "bad name!", "--out", str(tmp_path / "b"), env=env,
                 cwd=tmp_path)
    assert bad.returncode == 1 and "not a valid DNS name" in bad.stderr
    long = otcert("server-cert", "--host", "a.example", "--days", "900", "--out",
                  str(tmp_path / "c"), env=env, cwd=tmp_path)
    assert long.returncode == 1 and "825" in long.stderr


@pytest.mark.slow  # runs `otcert` in a subprocess
def test_broker_admin_cert(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "admin"
    env = base_env(data_dir, OTCERT_BROKER_ADMIN_CN="ops-admin")
    result = otcert("broker-admin-cert", "--out", str(out), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "broker-admin.key").stat().st_mode & 0o777 == 0o600
    assert verify(out / "ca.crt", out / "broker-admin.crt", purpose="sslclient").returncode == 0
    subject = openssl("x509", "-in", out / "broker-admin.crt", "-noout", "-subject").stdout
    assert "CN = ops-admin" in subject
    # The same identity the bot uses for kicks (kept in the data dir).
    assert (out / "broker-admin.crt").read_bytes() == (data_dir / "broker-admin.crt").read_bytes()


# ---- documentation mirrors the settings -------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_env_example_and_readme_table() -> None:
    from bot.config import Settings

    env_example = (REPO / ".env.example").read_text()
    readme = (REPO / "README.md").read_text()
    table = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `OTCERT_")}
    names = {f"OTCERT_{field.upper()}" for field in Settings.model_fields}
    assert table == names
    documented = {line.lstrip("#").split("=", 1)[0] for line in env_example.splitlines()
                  if line.lstrip("#").startswith("OTCERT_") and "=" in line}
    assert documented == names


def test_readme_keeps_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert ("sudo apt-get install -y mosquitto mosquitto-clients openssl && "
            "pip install -e '.[test]'") in readme
    assert "\npython3 -m pytest\n" in readme and "\npython3 -m pytest\n" in ci
