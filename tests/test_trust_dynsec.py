"""Issue 14 point 6: with the dynsec kick on, a username stored as a dynsec client cannot be
approved (a kick would delete that client). Real Mosquitto with the dynsec plugin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.broker import dynsec_request
from bot.core import integrity
from bot.core.errors import UserError
from pki import CertificateAuthority
from tests.dynsec import admin_for, dynsec_config, needs_dynsec
from tests.mosquitto import Broker

pytestmark = [needs_dynsec, pytest.mark.slow]  # starts Mosquitto


async def test_a_stored_dynsec_client_name_is_refused(
    ca: CertificateAuthority, tmp_path: Path, broker_factory: Callable[..., Broker]
) -> None:
    broker = broker_factory(ca, extra_config=dynsec_config(tmp_path))
    admin = admin_for(broker, ca, tmp_path)
    created = await dynsec_request(
        admin, [{"command": "createClient", "username": "dora", "password": "s3cret-pw"}], 5
    )
    assert isinstance(created, list) and created[0].get("error") is None, created
    with pytest.raises(UserError, match="dynamic-security"):
        await integrity.refuse_stored_dynsec_client(admin, "dora")
    await integrity.refuse_stored_dynsec_client(admin, "erin")  # not stored: fine
    await integrity.refuse_stored_dynsec_client(None, "dora")  # kick off: not asked
