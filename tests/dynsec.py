"""Shared pieces for tests against Mosquitto's dynamic-security plugin: the plugin config
made by deploy/dynsec-init.sh, people's certificates, and phone-like reconnecting clients."""

from __future__ import annotations

import getpass
import json
import queue
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from bot.broker import BrokerAdmin, ensure_admin_identity
from pki import CertificateAuthority, generate_private_key
from tests.mosquitto import Broker, ClientFiles, write_client_files

REPO = Path(__file__).resolve().parents[1]
DYNSEC_INIT = REPO / "deploy" / "dynsec-init.sh"
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN_CN = "otcert-admin"

needs_dynsec = pytest.mark.skipif(not DYNSEC_PLUGIN.exists(), reason="dynsec plugin not installed")


def person(ca: CertificateAuthority, tmp_path: Path, name: str) -> tuple[ClientFiles, int]:
    """Certificate files for ``name`` (EC key: fast) and the certificate's serial."""
    key = generate_private_key("ec-p256")
    certificate = ca.issue_client(name, key, days=2)
    return write_client_files(tmp_path / name, certificate, key, ca.certificate), (
        certificate.serial_number
    )


def dynsec_config(tmp_path: Path, *, receive_everything: bool = False) -> list[str]:
    """Run deploy/dynsec-init.sh and return the mosquitto.conf lines that load the plugin."""
    json_file = tmp_path / "dynsec" / "dynamic-security.json"
    subprocess.run(
        [str(DYNSEC_INIT), "-a", ADMIN_CN, "-o", getpass.getuser(), str(json_file)],
        check=True, capture_output=True, text=True,
    )
    if receive_everything:  # what `mosquitto_ctrl dynsec init` leaves without the script
        data = json.loads(json_file.read_text())
        data["defaultACLAccess"]["publishClientReceive"] = True
        json_file.write_text(json.dumps(data))
    return [f"plugin {DYNSEC_PLUGIN}", f"plugin_opt_config_file {json_file}"]


def admin_for(broker: Broker, ca: CertificateAuthority, tmp_path: Path, **kw: Any) -> BrokerAdmin:
    cert_path, key_path = ensure_admin_identity(ca, tmp_path / "data", ADMIN_CN)
    values: dict[str, Any] = {
        "host": "localhost", "port": broker.port, "cert_path": cert_path, "key_path": key_path,
        "ca_file": None, "bot_ca_file": broker.ca_path,
    }
    values.update(kw)
    return BrokerAdmin(**values)


class Phone:
    """An auto-reconnecting MQTT 5 session that counts what happens to it, like a phone."""

    def __init__(self, broker: Broker, files: ClientFiles) -> None:
        self.connects = 0
        # Attempts that never reached a session: TLS refused (paho reports a revoked
        # certificate as a disconnect before CONNACK), on_connect_fail, or a failed CONNACK.
        self.connect_failures = 0
        self.disconnects: list[str] = []  # ends of sessions that had been established
        self._in_session = False
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"phone-{uuid.uuid4().hex[:10]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set(ca_certs=str(files.ca), certfile=str(files.cert),
                            keyfile=str(files.key))
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(5), "the phone could not connect"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.connect_failures += 1
        else:
            self.connects += 1
            self._in_session = True
            self.connected.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.connect_failures += 1

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        if not self._in_session:
            self.connect_failures += 1
            return
        self._in_session = False
        self.disconnects.append(str(reason))
        self.disconnected.set()

    def publish(self, topic: str, payload: str = "{}") -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published(), f"publish to {topic} was not acknowledged"

    def subscribe(self, topic: str) -> None:
        acked = threading.Event()
        self.client.on_subscribe = lambda *args: acked.set()
        self.client.subscribe(topic, qos=1)
        assert acked.wait(5), f"no SUBACK for {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
