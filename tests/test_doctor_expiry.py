"""`otcert doctor`'s expiry findings for the bot's own certificates, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from bot.broker import ADMIN_CERT_NAME
from bot.config import Settings
from bot.ops.doctor import Level
from bot.ops.doctor_expiry import check_admin_expiry, expiry_finding
from pki import CertificateAuthority
from pki.keys import generate_private_key

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("left", "level"), [
    (timedelta(days=90), Level.OK), (timedelta(days=30), Level.OK),
    (timedelta(days=29), Level.WARN), (timedelta(hours=1), Level.WARN),
    (timedelta(0), Level.FAIL), (-timedelta(days=3), Level.FAIL),
])
def test_warn_under_30_days_fail_once_expired(left: timedelta, level: Level) -> None:
    assert expiry_finding("x", "It", NOW + left, NOW, "fix it").level is level


def test_broker_admin_certificate_read_from_the_data_dir(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    settings = Settings(data_dir=tmp_path, broker_kick="dynsec", mqtt_host="localhost")
    assert check_admin_expiry(settings) is None  # no certificate yet: nothing to say
    cert = other_ca.issue_client("otcert-admin", generate_private_key("ec-p256"), days=10)
    (tmp_path / ADMIN_CERT_NAME).write_bytes(cert.public_bytes(Encoding.PEM))
    finding = check_admin_expiry(settings)
    assert finding is not None and finding.level is Level.WARN
    assert "broker-admin-cert" in finding.sentence
    off = Settings(data_dir=tmp_path, broker_kick="off")
    assert check_admin_expiry(off) is None
