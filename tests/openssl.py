"""Small helpers around the real ``openssl`` CLI, so tests check artifacts the way operators do.

Passphrases go through the environment (``-passin env:``), never the command line (ps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
_PASS_ENV = "OTCERT_TEST_OPENSSL_PASS"
GENERATE_CA_SH_SUBJECT = (
    "/CN=An MQTT broker/O=OwnTracks.org/OU=generate-CA/emailAddress=nobody@example.net"
)


def openssl(
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``openssl <args>``; output in ``.stdout``/``.stderr`` (openssl mixes them freely)."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [OPENSSL, *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"openssl {' '.join(map(str, args))} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def pkcs12_info(
    path: Path, passphrase: str, *, legacy: bool = True
) -> subprocess.CompletedProcess[str]:
    """``openssl pkcs12 -info``: algorithms and MAC (printed on stderr); check=False."""
    args: list[str | Path] = ["pkcs12", "-info", "-noout", "-in", path]
    args += ["-passin", f"env:{_PASS_ENV}"]
    if legacy:
        args.append("-legacy")
    return openssl(*args, env={_PASS_ENV: passphrase}, check=False)


def pkcs12_to_pem(path: Path, passphrase: str) -> str:
    """Everything in the bundle as unencrypted PEM text (certs with friendlyName bag attributes)."""
    return openssl(
        "pkcs12", "-in", path, "-legacy", "-nodes", "-passin", f"env:{_PASS_ENV}",
        env={_PASS_ENV: passphrase},
    ).stdout


def verify(
    ca_path: Path,
    cert_path: Path,
    *,
    purpose: str | None = None,
    crl_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``openssl verify -CAfile``; check=False so tests can assert both outcomes."""
    args: list[str | Path] = ["verify", "-CAfile", ca_path]
    if purpose:
        args += ["-purpose", purpose]
    if crl_path is not None:
        args += ["-CRLfile", crl_path, "-crl_check"]
    args.append(cert_path)
    return openssl(*args, check=False)


def x509_text(cert_path: Path) -> str:
    return openssl("x509", "-in", cert_path, "-noout", "-text").stdout


def crl_text(crl_path: Path) -> str:
    return openssl("crl", "-in", crl_path, "-noout", "-text").stdout


def make_generate_ca_sh_ca(directory: Path, *, bits: int = 2048) -> tuple[Path, Path]:
    """A CA made exactly the way OwnTracks' ``generate-CA.sh`` makes it.

    ``openssl req -newkey rsa -x509 -nodes -sha512 -extensions v3_ca``: unencrypted key,
    SHA-512 signature, basicConstraints but no keyUsage; key chmod 400. Returns (crt, key).
    """
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    openssl(
        "req", "-newkey", f"rsa:{bits}", "-x509", "-nodes", "-sha512", "-days", "2000",
        "-extensions", "v3_ca", "-keyout", key_path, "-out", cert_path,
        "-subj", GENERATE_CA_SH_SUBJECT,
    )
    key_path.chmod(0o400)
    cert_path.chmod(0o444)
    return cert_path, key_path
