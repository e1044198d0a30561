"""One real mosquitto process per test: TLS files, config, start/stop, log, CRL and reload.

Why: revocation is only proven by a real broker refusing a real handshake after a SIGHUP, so
the harness writes a production-like certificate-only config and waits for mosquitto to
confirm each step instead of sleeping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import (
    CertificateAuthority,
    RevokedEntry,
    build_crl,
    private_key_pem,
    write_crl,
    write_private_file,
)

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
START_TIMEOUT = 5.0

# OwnTracks quicksetup: each user owns owntracks/<user>/#, and reads friends' positions.
OWNTRACKS_ACL: tuple[str, ...] = (
    "pattern readwrite owntracks/%u/#",
    "pattern read owntracks/+/+",
    "pattern read owntracks/+/+/event",
    "pattern read owntracks/+/+/info",
)


class BrokerError(RuntimeError):
    """The broker did not start or reload; the message carries its log."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def certificate_pem(certificate: x509.Certificate) -> bytes:
    """PEM bytes of a certificate, for the broker's files and the clients' alike."""
    return certificate.public_bytes(serialization.Encoding.PEM)


class Broker:
    """One mosquitto process with a certificate-only TLS listener on a free 127.0.0.1 port."""

    def __init__(
        self,
        ca: CertificateAuthority,
        workdir: Path,
        *,
        crl_path: Path | None = None,
        acl_lines: Sequence[str] = OWNTRACKS_ACL,
        extra_config: Sequence[str] = (),
        server_days: int = 90,
    ) -> None:
        self.ca = ca
        self.server_days = server_days
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = 0
        self.crl_path = Path(crl_path) if crl_path else self.workdir / "crl.pem"
        self.ca_path = self.workdir / "ca.crt"
        self.cert_path = self.workdir / "server.crt"
        self.key_path = self.workdir / "server.key"
        self.acl_path = self.workdir / "acl"
        self.config_path = self.workdir / "mosquitto.conf"
        self.pid_path = self.workdir / "mosquitto.pid"
        self.log_path = self.workdir / "mosquitto.log"
        self.output_path = self.workdir / "mosquitto.out"
        self.acl_lines = tuple(acl_lines)
        self.extra_config = tuple(extra_config)
        self._crl_number = 1
        self._process: subprocess.Popen[bytes] | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BrokerError("The broker is not running.")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Broker:
        """Write files and config, start mosquitto, wait until the port accepts connections."""
        self._write_tls_files()
        for _attempt in range(3):  # another process may grab the free port before we bind it
            self.port = _free_port()
            self.config_path.write_text(self.config_text())
            with self.output_path.open("ab") as output:
                self._process = subprocess.Popen(
                    [MOSQUITTO, "-c", str(self.config_path)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_until_listening():
                return self
            self._reap()
            if "Address already in use" not in self.log_text:
                break
        raise BrokerError(f"mosquitto did not start:\n{self.log_text}")

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        self._process = None

    def _wait_until_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(
                (self.host, self.port), timeout=0.2
            ):
                return True
            time.sleep(0.02)
        return False

    # ---- configuration -------------------------------------------------------------------

    def _write_tls_files(self) -> None:
        self.ca_path.write_bytes(self.ca.cert_pem)
        server_cert, server_key = self.ca.issue_server(
            ["localhost"], [HOST], days=self.server_days, key_type="ec-p256"
        )
        self.cert_path.write_bytes(certificate_pem(server_cert))
        write_private_file(self.key_path, private_key_pem(server_key))
        if not self.crl_path.exists():
            self.write_crl([], reload=False)
        self.acl_path.write_text("".join(f"{line}\n" for line in self.acl_lines))

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with (public so tests can show it on failure)."""
        lines = [
            "per_listener_settings false",
            "user root",
            f"pid_file {self.pid_path}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
            "allow_anonymous false",
            f"acl_file {self.acl_path}",
            f"listener {self.port} {self.host}",
            f"cafile {self.ca_path}",
            f"certfile {self.cert_path}",
            f"keyfile {self.key_path}",
            f"crlfile {self.crl_path}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
            *self.extra_config,
        ]
        return "".join(f"{line}\n" for line in lines)

    # ---- observing and signalling --------------------------------------------------------

    @property
    def log_text(self) -> str:
        """The broker's log file plus anything it printed before the log was open."""
        parts = [p.read_text(errors="replace") for p in (self.output_path, self.log_path)
                 if p.exists()]
        return "\n".join(parts)

    def wait_for_log(self, text: str, *, after: int = 0, timeout: float = 5.0) -> bool:
        """Wait until ``text`` appears in the log file past byte offset ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log_path.read_text(errors="replace")[after:]:
                return True
            time.sleep(0.02)
        return False

    def log_offset(self) -> int:
        """Current end of the log; pass it as ``after=`` to wait only for new lines."""
        return len(self.log_path.read_text(errors="replace")) if self.log_path.exists() else 0

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP, then wait until mosquitto has logged it and finished the reload."""
        offset = self.log_offset()
        os.kill(self.pid, signal.SIGHUP)
        if not self.wait_for_log("Reloading config.", after=offset, timeout=timeout):
            raise BrokerError(f"mosquitto did not reload:\n{self.log_text}")
        # The line is logged before the work; a handshake answered means the loop went round.
        self._round_trip(timeout)
        if not self.running:
            raise BrokerError(f"mosquitto died on reload:\n{self.log_text}")

    def _round_trip(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.check_hostname = False
        with contextlib.suppress(OSError, ssl.SSLError), socket.create_connection(
            (self.host, self.port), timeout=timeout
        ) as raw, context.wrap_socket(raw) as tls:
            tls.recv(1)

    def write_crl(self, entries: Iterable[RevokedEntry], *, reload: bool = True) -> None:
        """Replace the broker's CRL with one listing ``entries`` and (by default) SIGHUP."""
        crl = build_crl(self.ca, entries, crl_number=self._crl_number)
        self._crl_number += 1
        write_crl(self.crl_path, crl, self.ca.certificate)
        if reload:
            self.reload()

    def revoke(self, *certificates: x509.Certificate) -> None:
        """Convenience: CRL listing exactly these certificates, then SIGHUP."""
        now = datetime.now(UTC)
        self.write_crl(RevokedEntry(c.serial_number, now) for c in certificates)
