"""A real Mosquitto broker for tests, configured like a production OwnTracks broker.

Usage (see also the ``broker_factory`` fixture in conftest.py)::

    with Broker(ca, tmp_path / "broker") as broker:
        files = write_client_files(tmp_path / "alice", cert, key, ca.certificate)
        assert connect_ok(broker, files)
        broker.write_crl([RevokedEntry(cert.serial_number, now)])   # rewrites CRL + SIGHUP
        assert not connect_ok(broker, files)

Each broker gets its own directory, free port and CRL, so tests stay parallel-safe.
``extra_config`` lines are appended verbatim (e.g. the dynamic-security plugin).

Why a package: the broker process (config, start, reload, CRL) and the clients that talk to
it (files, mosquitto_pub, a paho session) change for different reasons; they live in
:mod:`tests.mosquitto.broker` and :mod:`tests.mosquitto.clients`, and this module keeps the
one import path the tests use.
"""

from tests.mosquitto.broker import (
    HOST,
    MOSQUITTO,
    OWNTRACKS_ACL,
    START_TIMEOUT,
    Broker,
    BrokerError,
    _free_port,
)
from tests.mosquitto.clients import (
    MOSQUITTO_PUB,
    ClientFiles,
    MqttSession,
    common_name,
    connect_ok,
    connect_refused,
    publish,
    write_client_files,
)

__all__ = [
    "HOST",
    "MOSQUITTO",
    "MOSQUITTO_PUB",
    "OWNTRACKS_ACL",
    "START_TIMEOUT",
    "Broker",
    "BrokerError",
    "ClientFiles",
    "MqttSession",
    "_free_port",
    "common_name",
    "connect_ok",
    "connect_refused",
    "publish",
    "write_client_files",
]
