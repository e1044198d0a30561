"""Issue 14 point 5: OTCERT_PHONE_CA (bot | none | a PEM file) in the delivery, the steps and
`otcert doctor` (a real Mosquitto answers the trust question)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from bot.config import Settings
from bot.telegram import render
from bot.wiring import open_service
from pki import CertificateAuthority
from storage import Platform
from tests.mosquitto import Broker
from tests.test_cli import otcert
from tests.test_cli_doctor import broker_env, data_dir, line_about  # noqa: F401 (fixture)


@pytest.mark.parametrize("platform", list(Platform))
def test_steps_without_a_phone_ca_skip_the_trust_step(platform: Platform) -> None:
    common = dict(filename="bob-phone.p12", host="mqtt.example.org", port=8883,
                  username="bob", device="phone")
    with_ca = render.steps(platform, ca="ca.crt", **common)  # type: ignore[arg-type]
    public = render.steps(platform, ca=None, **common)  # type: ignore[arg-type]
    assert "ca.crt" in with_ca and "ca.crt" not in public
    assert "Certificate Trust" not in public and "CA certificate" not in public
    assert public.count("\n") == with_ca.count("\n") - 1  # a whole step less
    assert "bob-phone.p12" in public and "mqtt.example.org" in public


@pytest.mark.parametrize("value", ["bot", "none", "file"])
async def test_the_phone_pin_follows_the_setting(
    tmp_path: Path, value: str, ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other_ca.save(data / "ca.crt", data / "ca.key")
    server_ca = tmp_path / "server-ca.pem"
    server_ca.write_bytes(ca.certificate.public_bytes(Encoding.PEM))
    setting = str(server_ca) if value == "file" else value
    settings = Settings(data_dir=data, admin_ids=frozenset({1}), key_pool_size=0,
                        phone_ca=setting)
    async with open_service(settings) as service:
        pin = await service.phone_pin()
    expected = {"bot": other_ca, "file": ca}.get(value)
    if expected is None:
        assert pin is None
    else:
        assert pin is not None and pin.pem == expected.certificate.public_bytes(Encoding.PEM)


def test_an_unusable_phone_ca_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"PEM file"):
        Settings(phone_ca=str(tmp_path / "missing.pem"))


@pytest.mark.slow
def test_doctor_says_which_phone_ca_fits_the_broker(
    tmp_path: Path, data_dir: Path, other_ca: CertificateAuthority,  # noqa: F811
    broker_factory: Callable[..., Broker],
) -> None:
    broker = broker_factory(other_ca, crl_path=data_dir / "crl.pem")
    fits = otcert("doctor", env=broker_env(data_dir, broker), cwd=tmp_path)
    assert line_about(fits.stdout, "phone CA").startswith("OK"), fits.stdout
    assert "OTCERT_PHONE_CA=bot fits" in fits.stdout
    wrong = otcert("doctor", env=broker_env(data_dir, broker, OTCERT_PHONE_CA="none"),
                   cwd=tmp_path)
    line = line_about(wrong.stdout, "phone CA")
    assert line.startswith("WARN") and "set OTCERT_PHONE_CA=bot" in line, wrong.stdout
