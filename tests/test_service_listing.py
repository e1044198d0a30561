"""The admin listing reads one page from the database, not everyone (at 100,000 people the
full listing costs ~13 s of CPU on the event loop)."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.wiring import open_service
from pki import CertificateAuthority
from storage import Platform

ADMIN = 1000


async def test_a_page_of_people_with_their_certificates_and_the_total(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    other_ca.save(data / "ca.crt", data / "ca.key")
    settings = Settings(data_dir=data, admin_ids=frozenset({ADMIN}), key_pool_size=0,
                        issue_cooldown_seconds=0, key_type="ec-p256")
    async with open_service(settings) as service:
        for telegram_id, name in ((2001, "alice"), (2002, "bob"), (2003, "carol")):
            await service.request_access(telegram_id, name.title(), name)
            await service.approve(ADMIN, telegram_id, name)
            await service.set_platform(telegram_id, Platform.IOS)
            await service.issue(telegram_id, "phone")
        page = await service.people_with_certificates(ADMIN, limit=2)
        everyone = await service.people_with_certificates(ADMIN)
    assert [p.telegram_id for p, _ in page.rows] == [2001, 2002]
    assert all(len(certs) == 1 for _, certs in page.rows)
    assert page.total == everyone.total == len(everyone.rows) == 3
