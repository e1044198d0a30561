"""TLS clients for the test broker: their PEM files, ``mosquitto_pub``, a live paho session.

Why apart from the broker: tests judge revocation from the client side (does this
certificate still get in, is this session kicked), and that is all this module does.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import ssl
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki import PrivateKey, private_key_pem, write_private_file
from tests.mosquitto.broker import Broker, BrokerError, certificate_pem

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


@dataclass(frozen=True)
class ClientFiles:
    """PEM files a TLS client presents: its certificate, its key, and the CA to trust."""

    cert: Path
    key: Path
    ca: Path


def write_client_files(
    directory: Path,
    certificate: x509.Certificate,
    private_key: PrivateKey,
    ca_certificate: x509.Certificate,
) -> ClientFiles:
    """Write a client's cert/key/CA PEM files into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = ClientFiles(directory / "client.crt", directory / "client.key", directory / "ca.crt")
    files.cert.write_bytes(certificate_pem(certificate))
    write_private_file(files.key, private_key_pem(private_key))
    files.ca.write_bytes(certificate_pem(ca_certificate))
    return files


def common_name(cert_path: Path) -> str:
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    value = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return value if isinstance(value, str) else value.decode()


def publish(
    broker: Broker,
    files: ClientFiles,
    *,
    topic: str | None = None,
    message: str = "test",
    timeout: float = 5.0,
) -> subprocess.CompletedProcess[str]:
    """``mosquitto_pub -q 1`` over TLS with the client certificate (default topic:
    ``owntracks/<CN>/test``). A timeout is reported as returncode -9."""
    topic = topic or f"owntracks/{common_name(files.cert)}/test"
    args = [
        MOSQUITTO_PUB, "-h", broker.host, "-p", str(broker.port),
        "--cafile", str(files.ca), "--cert", str(files.cert), "--key", str(files.key),
        "-q", "1", "-t", topic, "-m", message, "-i", f"test-{uuid.uuid4().hex[:12]}",
    ]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return subprocess.CompletedProcess(args, -9, out, "timed out")


def connect_ok(broker: Broker, files: ClientFiles, *, timeout: float = 5.0) -> bool:
    """True when the TLS handshake and MQTT CONNECT succeed and a QoS 1 publish is acked.

    (ACL denials do not show here: mosquitto_pub exits 0 after a denied publish.)
    """
    return publish(broker, files, timeout=timeout).returncode == 0


def connect_refused(broker: Broker, files: ClientFiles, *, timeout: float = 5.0) -> bool:
    """True only when the broker itself refused the client certificate in the TLS handshake
    (a dead or hung broker does not count as a refusal)."""
    offset = broker.log_offset()
    result = publish(broker, files, timeout=timeout)
    if result.returncode in (0, -9):
        return False
    return broker.wait_for_log("certificate verify failed", after=offset, timeout=timeout)


class MqttSession:
    """A live paho-mqtt (MQTT 5) session with a client certificate, for subscribe/kick tests.

    ``messages`` receives (topic, payload); ``disconnected`` is set when the broker ends the
    session, with ``disconnect_reason`` holding the reason code's name.
    """

    def __init__(self, broker: Broker, files: ClientFiles, *, timeout: float = 5.0) -> None:
        # local imports: only tests that need a live session pay for paho
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_reason: str | None = None
        self.connect_reason: str | None = None
        self._timeout = timeout
        self._broker = broker
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"session-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set(ca_certs=str(files.ca), certfile=str(files.cert),
                            keyfile=str(files.key))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connect_reason = str(reason)
        if not reason.is_failure:
            self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.disconnect_reason = str(reason)
        self.disconnected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.messages.put((message.topic, message.payload))

    def __enter__(self) -> MqttSession:
        self.client.reconnect_delay_set(60, 60)  # a kicked session must stay kicked in tests
        try:
            self.client.connect(self._broker.host, self._broker.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"MQTT session could not connect: {exc}") from exc
        self.client.loop_start()
        if not self.connected.wait(self._timeout):
            self.close()
            raise BrokerError(f"MQTT session not accepted ({self.connect_reason})")
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK (so a following publish is not missed)."""
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic, qos)
        if not done.wait(self._timeout):
            raise BrokerError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos).wait_for_publish(self._timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def __exit__(self, *exc: object) -> None:
        self.close()
