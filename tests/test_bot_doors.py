"""The real bot (`otcert run`) with the new doors: the .otrc beside the steps, people added by
`otcert issue --new` left out of chat fan-out, and a burst of /getcert under a Telegram-like
flood limit (the fake answers 429 past 30 sends a second) served without a single 429."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.ops.cli import main
from pki import CertificateAuthority
from tests._fake_telegram_wire import chat_id_of
from tests.botproc import ADMIN_ID, BotProcess, approve, get_certificate, wait_text
from tests.fake_telegram import FakeTelegram, FakeUser
from tests.test_cli import base_env

pytestmark = pytest.mark.slow  # starts a bot process

CROWD = 50
LIMIT = 30  # Telegram's documented overall limit, messages per second


def otrc_of(tg: FakeTelegram, chat_id: int) -> dict[str, object]:
    files = [m for m in tg.sent_messages(chat_id) if (m.filename or "").endswith(".otrc")]
    assert len(files) == 1, [m.filename for m in tg.sent_messages(chat_id)]
    assert files[0].document is not None
    loaded = json.loads(files[0].document)
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize(("platform", "ext"), [("ios", "otrp"), ("android", "p12")])
def test_the_delivery_sends_an_otrc_with_connection_settings_and_no_secret(
    tg: FakeTelegram, tmp_path: Path, other_ca: CertificateAuthority, platform: str, ext: str
) -> None:
    alice = tg.user(2001, "Alice")
    env = {"OTCERT_MQTT_HOST": "mqtt.example.org", "OTCERT_MQTT_PORT": "8884"}
    with BotProcess(tg, tmp_path / "bot", ca=other_ca, env=env):
        approve(tg, alice, "alice")
        file_msg, passphrase = get_certificate(tg, alice, platform, device="ipad")
        config = otrc_of(tg, alice.id)
    names = [m.filename for m in tg.sent_messages(alice.id) if m.filename]
    assert names.index("alice-ipad.otrc") > names.index(f"alice-ipad.{ext}")
    assert config["_type"] == "configuration"
    assert (config["host"], config["port"], config["tls"]) == ("mqtt.example.org", 8884, True)
    assert (config["username"], config["deviceId"], config["mode"]) == ("alice", "ipad", 0)
    assert isinstance(config["tid"], str) and len(config["tid"]) == 2
    if platform == "ios":
        assert config["clientpkcs"] == file_msg.filename == "alice-ipad.otrp"
    else:
        assert "clientpkcs" not in config
    raw = json.dumps(config)
    assert passphrase not in raw
    assert not {"password", "passphrase", "pass"} & set(config)
    steps = wait_text(tg, alice.id, " steps</b>")
    assert "owntracks:///config?inline=" in (steps.text or "")  # the link stays


def test_people_without_telegram_are_never_messaged_by_repin(
    tg: FakeTelegram, tmp_path: Path, other_ca: CertificateAuthority,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = tg.user(2002, "Bob")
    bot = BotProcess(tg, tmp_path / "bot", ca=other_ca)
    for key, value in base_env(bot.data_dir, OTCERT_ISSUE_COOLDOWN_SECONDS="0").items():
        if key.startswith("OTCERT_"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert main(["issue", "recorder", "--new", "--format", "pem",
                 "--out", str(tmp_path / "rec")]) == 0
    with bot:
        approve(tg, bob, "bob")
        tg.send_text(tg.user(ADMIN_ID, "Admin"), "/repin")
        wait_text(tg, ADMIN_ID, "to 1 people")  # bob only, not the recorder
        report = wait_text(tg, ADMIN_ID, "Re-pin done")
    assert "1 reached" in (report.text or "")
    assert any(m.filename == "ca.otre" for m in tg.sent_messages(bob.id))
    assert [c for c in tg.calls if (chat_id_of(c.params) or 0) < 0] == []


def _crowd(tg: FakeTelegram, first: int) -> list[FakeUser]:
    return [tg.user(first + i, f"Crowd{i}") for i in range(CROWD)]


def test_a_burst_of_50_under_a_30_per_second_limit_is_served_without_a_429(
    tmp_path: Path, other_ca: CertificateAuthority
) -> None:
    with FakeTelegram(send_limit=LIMIT) as tg:
        crowd = _crowd(tg, 6000)
        env = {"OTCERT_MAX_DEVICES": "5", "OTCERT_KEY_POOL_SIZE": "8"}
        with BotProcess(tg, tmp_path / "bot", ca=other_ca, env=env) as bot:
            admin = tg.user(ADMIN_ID, "Admin")
            for person in crowd:
                tg.send_text(admin, f"/approve {person.id} p{person.id}")
            for person in crowd:
                tg.wait_for(lambda m, p=person: f"as <code>p{p.id}</code>" in m.text,
                            timeout=60, chat_id=ADMIN_ID)
            for person in crowd:  # the phone question, answered once each
                tg.send_text(person, "/getcert")
            for person in crowd:
                question = tg.wait_for(lambda m: "Which phone" in m.text, timeout=60,
                                       chat_id=person.id)
                tg.press_button(person, question.message_id, "plat:ios:phone")
            for person in crowd:
                tg.wait_for(lambda m: " steps</b>" in m.text, timeout=120, chat_id=person.id)
            tg.reset_calls()
            for person in crowd:  # the burst
                tg.send_text(person, "/getcert burst")
            for person in crowd:
                tg.wait_for(lambda m: " steps</b>" in m.text and "-burst." in m.text,
                            timeout=180, chat_id=person.id)
            sends = [c for c in tg.calls if c.method.lower().startswith("send")]
            assert tg.rate_limited() == [], f"{len(tg.rate_limited())} answered 429"
            assert "rate limited" not in bot.log_text
        for person in crowd:
            files = [m.filename for m in tg.sent_messages(person.id)
                     if (m.filename or "").startswith(f"p{person.id}-burst.")]
            assert sorted(files) == [f"p{person.id}-burst.otrc", f"p{person.id}-burst.otrp"]
        assert len(sends) >= CROWD * 6
