"""`otcert expiring` and the days left in `otcert users`, as subprocesses on a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.config import Settings
from bot.wiring import open_service
from pki import CertificateAuthority
from storage import Platform
from tests.test_cli import base_env, otcert

pytestmark = pytest.mark.slow  # runs `otcert` in a subprocess


async def seed(data: Path) -> dict[str, str]:
    """alice and bob with 10-day certificates (inside the 30-day window); alice renewed."""
    settings = Settings(data_dir=data, admin_ids=frozenset({1000}), key_pool_size=0,
                        issue_cooldown_seconds=0, key_type="ec-p256", cert_days=10)
    serials = {}
    async with open_service(settings) as service:
        for tid, name in ((2001, "alice"), (2002, "bob")):
            await service.request_access(tid, name.title(), name)
            await service.approve(1000, tid, name)
            await service.set_platform(tid, Platform.ANDROID)
            bundle = await service.issue(tid, "phone")
            await service.confirm_delivery(bundle.serial)
            serials[name] = bundle.serial
        renewal = await service.issue(2001, renews=serials["alice"])
        await service.confirm_delivery(renewal.serial)
        serials["alice-new"] = renewal.serial
    return serials


def test_expiring_lists_soonest_first_with_renewals_and_users_show_days_left(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other_ca.save(data / "ca.crt", data / "ca.key")
    serials = asyncio.run(seed(data))
    env = base_env(data)

    result = otcert("expiring", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Expiring within 30 days (3):"
    [old] = [line for line in lines if serials["alice"] in line]
    assert "alice / phone" in old and old.endswith("renewed") and "10 d" in old
    assert next(line for line in lines if serials["bob"] in line).endswith(")")
    dates = [line.split()[0] for line in lines[1:]]
    assert dates == sorted(dates)  # soonest first

    assert otcert("expiring", "--days", "5", env=env, cwd=tmp_path).stdout.strip() == (
        "Nothing expires within 5 days.")
    assert otcert("expiring", "--days", "0", env=env, cwd=tmp_path).returncode == 2
    # The CA (valid for years) shows up once the window reaches it.
    wide = otcert("expiring", "--days", "3650", env=env, cwd=tmp_path).stdout
    assert "CA certificate" in wide

    users = otcert("users", env=env, cwd=tmp_path)
    assert users.returncode == 0, users.stderr
    assert users.stdout.count("(10 days left)") == 3
