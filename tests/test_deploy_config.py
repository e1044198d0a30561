"""deploy/mosquitto.conf and deploy/acl run as shipped in a real Mosquitto.

Only paths, the port and `user root` are changed (tests do not run as the mosquitto user);
every other line is the operator's file, so a broken directive breaks these tests.
"""

from __future__ import annotations

import getpass
import queue
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.broker import BrokerAdmin, check_kick_path, ensure_admin_identity
from pki import CertificateAuthority, generate_private_key
from tests.mosquitto import Broker, ClientFiles, MqttSession, connect_ok, write_client_files

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CONF = DEPLOY / "mosquitto.conf"
CONFS = [CONF, DEPLOY / "mosquitto-docker.conf"]
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
# Directives whose value is a path or port on the operator's host, substituted below.
SUBSTITUTED = {"persistence_location", "log_dest", "listener", "cafile", "certfile",
               "keyfile", "crlfile", "acl_file"}


def deploy_acl_lines() -> list[str]:
    return [line for line in (DEPLOY / "acl").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


class DeployBroker(Broker):
    """The harness broker, but running deploy/mosquitto.conf (optionally with dynsec enabled)."""

    def __init__(self, ca: CertificateAuthority, workdir: Path, dynsec_json: Path | None = None,
                 conf: Path = CONF):
        super().__init__(ca, workdir, acl_lines=deploy_acl_lines())
        self.dynsec_json = dynsec_json
        self.conf = conf

    def config_text(self) -> str:
        local = {
            "pid_file": str(self.pid_path),
            "persistence_location": f"{self.workdir}/",
            "log_dest": f"file {self.log_path}",
            "listener": f"{self.port} {self.host}",
            "cafile": str(self.ca_path), "certfile": str(self.cert_path),
            "keyfile": str(self.key_path), "crlfile": str(self.crl_path),
            "acl_file": str(self.acl_path),
        }
        if self.dynsec_json is not None:
            local["plugin"] = str(DYNSEC_PLUGIN)
            local["plugin_opt_config_file"] = str(self.dynsec_json)
        seen: set[str] = set()
        lines = ["user root"]
        for raw in self.conf.read_text().splitlines():
            line = raw
            if self.dynsec_json is not None and re.match(r"#(plugin|plugin_opt_config_file) ", raw):
                line = raw[1:]  # what the operator does to enable the kick
            if not line.strip() or line.startswith("#"):
                lines.append(line)
                continue
            directive = line.split()[0]
            if directive in local:
                seen.add(directive)
                line = f"{directive} {local[directive]}"
            lines.append(line)
        lines.append("log_type all")  # the harness waits for "Reloading config." in the log
        missing = (SUBSTITUTED | ({"plugin", "plugin_opt_config_file"} if self.dynsec_json
                                  else set())) - seen
        assert not missing, f"deploy/mosquitto.conf lacks {sorted(missing)}"
        return "\n".join(lines) + "\n"


@pytest.fixture(params=CONFS, ids=lambda path: path.name)
def deploy_broker(
    request: pytest.FixtureRequest, ca: CertificateAuthority, tmp_path: Path
) -> Iterator[DeployBroker]:
    with DeployBroker(ca, tmp_path / "broker", conf=request.param) as broker:
        yield broker


def client(ca: CertificateAuthority, tmp_path: Path, name: str) -> ClientFiles:
    key = generate_private_key("ec-p256")
    return write_client_files(tmp_path / name, ca.issue_client(name, key, days=2), key,
                              ca.certificate)


@pytest.mark.parametrize("conf", CONFS, ids=lambda path: path.name)
def test_shipped_config_keeps_the_security_settings(conf: Path) -> None:
    directives = {line.split()[0]: line.split(None, 1)[1] for line in conf.read_text().splitlines()
                  if line.strip() and not line.startswith("#")}
    assert directives["require_certificate"] == "true"
    assert directives["use_identity_as_username"] == "true"
    assert directives["tls_version"] == "tlsv1.2"
    assert directives["listener"] == "8883"
    assert "plugin" not in directives, "the dynsec plugin must stay optional (commented)"
    lines = conf.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert lines[number - 1].startswith("#"), f"line {number + 1} has no comment: {line}"


@pytest.mark.slow  # starts Mosquitto
def test_issued_client_connects_and_another_cas_client_is_refused(
    ca: CertificateAuthority, other_ca: CertificateAuthority, tmp_path: Path,
    deploy_broker: DeployBroker,
) -> None:
    assert connect_ok(deploy_broker, client(ca, tmp_path, "alice")), deploy_broker.log_text
    stranger = client(other_ca, tmp_path / "other", "alice")
    stranger_trusting_our_broker = ClientFiles(stranger.cert, stranger.key,
                                               deploy_broker.ca_path)
    assert not connect_ok(deploy_broker, stranger_trusting_our_broker, timeout=5)


@pytest.mark.slow  # starts Mosquitto
def test_revoked_client_is_refused_after_reload(
    ca: CertificateAuthority, tmp_path: Path, deploy_broker: DeployBroker
) -> None:
    key = generate_private_key("ec-p256")
    certificate = ca.issue_client("bob", key, days=2)
    bob = write_client_files(tmp_path / "bob", certificate, key, ca.certificate)
    assert connect_ok(deploy_broker, bob)
    deploy_broker.revoke(certificate)
    assert not connect_ok(deploy_broker, bob)


@pytest.mark.slow  # starts Mosquitto
def test_acl_lets_friends_read_positions_but_not_the_rest_of_a_subtree(
    ca: CertificateAuthority, tmp_path: Path, deploy_broker: DeployBroker
) -> None:
    alice_files, bob_files = client(ca, tmp_path, "alice"), client(ca, tmp_path, "bob")
    with MqttSession(deploy_broker, alice_files) as alice, \
            MqttSession(deploy_broker, bob_files) as bob:
        alice.subscribe("owntracks/#")
        bob.subscribe("owntracks/bob/#")  # control: bob sees everything in his own subtree
        for topic in ("owntracks/bob/phone/cmd", "owntracks/alice/phone",  # bob may not write
                      "owntracks/bob/phone", "owntracks/bob/phone/event",
                      "owntracks/bob/phone/info"):
            bob.publish(topic, topic)
        own = {bob.messages.get(timeout=5)[0] for _ in range(4)}
        assert own == {"owntracks/bob/phone/cmd", "owntracks/bob/phone",
                       "owntracks/bob/phone/event", "owntracks/bob/phone/info"}
        seen = {alice.messages.get(timeout=5)[0] for _ in range(3)}
        assert seen == {"owntracks/bob/phone", "owntracks/bob/phone/event",
                        "owntracks/bob/phone/info"}
        with pytest.raises(queue.Empty):  # neither bob's cmd topic nor a write into alice's
            alice.messages.get(timeout=0.3)


@pytest.mark.slow  # starts Mosquitto
async def test_enabling_the_commented_dynsec_lines_gives_a_working_kick_path(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    if not DYNSEC_PLUGIN.exists():
        pytest.skip("dynsec plugin not installed")
    json_file = tmp_path / "dynsec" / "dynamic-security.json"
    subprocess.run([str(DEPLOY / "dynsec-init.sh"), "-o", getpass.getuser(), str(json_file)],
                   check=True, capture_output=True)
    with DeployBroker(ca, tmp_path / "broker", dynsec_json=json_file) as broker:
        cert_path, key_path = ensure_admin_identity(ca, tmp_path / "data", "otcert-admin")
        admin = BrokerAdmin("localhost", broker.port, cert_path, key_path, None, broker.ca_path)
        outcome = await check_kick_path(admin)
    assert outcome.ok and "WARNING" not in outcome.detail, outcome.detail
