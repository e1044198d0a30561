"""The product's rules (bot/core/rules.py) as tables: plain values in, a decision or the
exact sentence a person reads out. No database, no clock, no bot: milliseconds."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core import rules
from bot.core.errors import NotAllowed, PlatformNeeded, UserError
from bot.core.rules import Policy
from bot.texts import errors as texts
from pki.names import InvalidName
from storage import Certificate, CertStatus, Person, PersonStatus, Platform, Repository
from tests.storage_fixtures import approved, make_cert

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ID = 4242
POLICY = Policy(admin_ids=frozenset({1}), max_devices=3, issue_cooldown=timedelta(seconds=30))
TINY = timedelta(microseconds=1)


def person(
    status: PersonStatus = PersonStatus.APPROVED,
    *,
    username: str | None = "alice",
    platform: Platform | None = Platform.IOS,
    tg_username: str | None = None,
    display_name: str = "Alice Example",
) -> Person:
    return Person(
        telegram_id=ID, display_name=display_name, tg_username=tg_username, status=status,
        mqtt_username=username, platform=platform, requested_at=NOW, decided_at=None,
        decided_by=None, reason=None, created_at=NOW, updated_at=NOW,
    )


def cert(
    device: str,
    *,
    ends: timedelta = timedelta(days=300),
    status: CertStatus = CertStatus.ACTIVE,
    issued: timedelta = timedelta(days=-1),
    serial: str | None = None,
) -> Certificate:
    """A certificate of ``device`` ending ``ends`` after NOW, issued ``issued`` from NOW."""
    made = make_cert(ID, "alice", device=device, serial=serial, issued_at=NOW + issued)
    return made.model_copy(update={"not_after": NOW + ends, "status": status})


def refusal(exc: pytest.ExceptionInfo[UserError]) -> str:
    return str(exc.value)


# --- who may get a certificate ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param(None, "You don't have access yet. Send /request to ask an admin.",
                     id="a stranger is told to request access"),
        pytest.param(person(PersonStatus.DENIED),
                     "You don't have access yet. Send /request to ask an admin.",
                     id="a denied person is told to request access"),
        pytest.param(person(PersonStatus.PENDING),
                     "Your request is still waiting for an admin. I'll tell you when.",
                     id="a pending person waits"),
        pytest.param(person(PersonStatus.REVOKED),
                     "Your access was revoked. Send /request to ask again.",
                     id="a revoked person may ask again"),
        pytest.param(person(PersonStatus.PENDING, username=None, platform=None),
                     "Your request is still waiting for an admin. I'll tell you when.",
                     id="access is checked before username and phone"),
        pytest.param(person(username=None),
                     "Your account has no usable MQTT username; ask an admin.",
                     id="an approved person without username asks an admin"),
        pytest.param(person(username="otcert-admin"),
                     "Your account has no usable MQTT username; ask an admin.",
                     id="a reserved username is not usable"),
        pytest.param(person(username=None, platform=None),
                     "Your account has no usable MQTT username; ask an admin.",
                     id="the username is checked before the phone"),
    ],
)
def test_only_approved_people_with_a_usable_username_may_get_a_certificate(
    who: Person | None, expected: str
) -> None:
    with pytest.raises(UserError) as exc:
        rules.may_issue(who, "phone", active=[], last_issued_at=None, policy=POLICY, now=NOW)
    assert refusal(exc) == expected
    assert not isinstance(exc.value, PlatformNeeded)


@pytest.mark.parametrize("platform", list(Platform), ids=lambda p: f"approved on {p.value}")
def test_an_approved_person_gets_a_grant_with_their_username_and_phone(
    platform: Platform,
) -> None:
    grant = rules.may_issue(
        person(platform=platform), "tablet", active=[], last_issued_at=None,
        policy=POLICY, now=NOW,
    )
    assert grant == rules.IssueGrant(username="alice", platform=platform, device="tablet")


def test_without_a_phone_the_bot_asks_which_one_and_remembers_the_device() -> None:
    with pytest.raises(PlatformNeeded) as exc:
        rules.may_issue(person(platform=None), "tablet", active=[], last_issued_at=None,
                        policy=POLICY, now=NOW)
    assert exc.value.device == "tablet"
    assert str(exc.value) == "Which phone is this certificate for?"


FULL = "You already have certificates for {n} devices ({names}), the most allowed. " \
       "Use one of those names to replace its certificate, or ask an admin to revoke one."


@pytest.mark.parametrize(
    ("device", "active", "max_devices", "refused"),
    [
        pytest.param("laptop", [cert("phone"), cert("tablet")], 3, None,
                     id="below the limit a new device is added"),
        pytest.param("laptop", [cert("phone"), cert("tablet"), cert("watch")], 3,
                     FULL.format(n=3, names="phone, tablet, watch"),
                     id="at exactly the limit a new device is refused"),
        pytest.param("tablet", [cert("phone"), cert("tablet"), cert("watch")], 3, None,
                     id="at the limit a device in use is replaced"),
        pytest.param("laptop", [cert("phone"), cert("tablet"), cert("watch", ends=timedelta(0))],
                     3, None, id="a certificate ending now is expired and frees its slot"),
        pytest.param("laptop", [cert("phone"), cert("tablet"), cert("watch", ends=TINY)], 3,
                     FULL.format(n=3, names="phone, tablet, watch"),
                     id="a certificate ending a moment later still counts"),
        pytest.param("laptop", [cert("phone"), cert("phone"), cert("tablet")], 3, None,
                     id="two certificates of one device take one slot"),
        pytest.param("laptop",
                     [cert("phone"), cert("tablet"), cert("watch", status=CertStatus.SUPERSEDED)],
                     3, None, id="certificates no longer active do not count"),
        pytest.param("tablet", [cert("phone")], 1, FULL.format(n=1, names="phone"),
                     id="with one device allowed a second is refused"),
        pytest.param("phone", [], 1, None, id="nobody starts over the limit"),
    ],
)
def test_device_limit_counts_unexpired_active_devices(
    device: str, active: list[Certificate], max_devices: int, refused: str | None
) -> None:
    policy = Policy(admin_ids=frozenset(), max_devices=max_devices, issue_cooldown=timedelta(0))
    if refused is None:
        rules.may_issue(person(), device, active=active, last_issued_at=None,
                        policy=policy, now=NOW)
        return
    with pytest.raises(UserError) as exc:
        rules.may_issue(person(), device, active=active, last_issued_at=None,
                        policy=policy, now=NOW)
    assert refusal(exc) == refused


@pytest.mark.parametrize(
    ("last", "cooldown", "wait_seconds"),
    [
        pytest.param(None, timedelta(seconds=30), None, id="a first certificate has no wait"),
        pytest.param(NOW - timedelta(seconds=30), timedelta(seconds=30), None,
                     id="exactly at the end of the cooldown the wait is over"),
        pytest.param(NOW - timedelta(seconds=30) + TINY, timedelta(seconds=30), 1,
                     id="a moment before the end asks for 1 second"),
        pytest.param(NOW - timedelta(seconds=29), timedelta(seconds=30), 2,
                     id="a whole second left rounds up"),
        pytest.param(NOW, timedelta(seconds=30), 31, id="right after a certificate"),
        pytest.param(NOW + timedelta(seconds=10), timedelta(seconds=30), 41,
                     id="a last issue in the future (clock step) still waits"),
        pytest.param(NOW, timedelta(0), None, id="no cooldown configured"),
    ],
)
def test_cooldown_between_certificates(
    last: datetime | None, cooldown: timedelta, wait_seconds: int | None
) -> None:
    policy = Policy(admin_ids=frozenset(), issue_cooldown=cooldown)
    if wait_seconds is None:
        rules.may_issue(person(), "phone", active=[], last_issued_at=last, policy=policy, now=NOW)
        assert rules.cooldown_left(last, cooldown=cooldown, now=NOW) is None
        return
    with pytest.raises(UserError) as exc:
        rules.may_issue(person(), "phone", active=[], last_issued_at=last, policy=policy, now=NOW)
    assert refusal(exc) == (
        f"You just got a certificate. Please wait {wait_seconds} seconds before asking for another."
    )
    assert exc.value.params == {"seconds": wait_seconds}


def test_the_device_limit_is_checked_before_the_cooldown() -> None:
    full = [cert("phone"), cert("tablet"), cert("watch")]
    with pytest.raises(UserError) as exc:
        rules.may_issue(person(), "laptop", active=full, last_issued_at=NOW, policy=POLICY,
                        now=NOW)
    assert exc.value.template == texts.DEVICE_LIMIT


# --- what a new certificate supersedes ---------------------------------------------------------
@pytest.mark.parametrize(
    ("device", "active", "expected"),
    [
        pytest.param("phone", [], [], id="nothing to supersede"),
        pytest.param("phone", [cert("phone", serial="a1")], ["a1"], id="the same device"),
        pytest.param("phone", [cert("tablet", serial="b1")], [], id="another device stays"),
        pytest.param("phone", [cert("phone", serial="a1", ends=-timedelta(days=1))], ["a1"],
                     id="an expired but still active one is superseded too"),
        pytest.param("phone", [cert("phone", serial="a1", status=CertStatus.REVOKED)], [],
                     id="a revoked one is left as it is"),
        pytest.param("phone",
                     [cert("phone", serial="a2", issued=timedelta(days=-1)),
                      cert("phone", serial="a1", issued=timedelta(days=-2))],
                     ["a1", "a2"], id="several, oldest first"),
    ],
)
def test_a_new_certificate_supersedes_the_active_ones_of_its_device(
    device: str, active: list[Certificate], expected: list[str]
) -> None:
    assert [c.serial for c in rules.superseded_by(device, active)] == expected


async def test_storage_supersedes_what_the_rule_says(repo: Repository) -> None:
    """The rule and the transaction that applies it must not drift apart."""
    await approved(repo, ID, "alice")
    for device, serial in (("phone", "a1"), ("tablet", "b1")):
        await repo.record_issue(make_cert(ID, "alice", device=device, serial=serial))
    new = make_cert(ID, "alice", device="phone", serial="a2")
    before = await repo.certificates_for(ID, active_only=True)
    expected = [c.serial for c in rules.superseded_by("phone", before)]
    superseded = await repo.record_issue(new)
    assert [c.serial for c in superseded] == expected == ["a1"]


# --- usernames -----------------------------------------------------------------------------
RESERVED = frozenset({"otcert-admin", "otcert-doctor"})


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        pytest.param("alice", "alice", id="a plain name"),
        pytest.param("Alice", "alice", id="canonical lower case"),
        pytest.param("otcert-admin",
                     "'otcert-admin' is reserved for the bot's own broker identity; "
                     "choose another username.", id="a service identity is reserved"),
        pytest.param("OTCERT-Doctor",
                     "'otcert-doctor' is reserved for the bot's own broker identity; "
                     "choose another username.", id="reserved whatever the case"),
    ],
)
def test_an_admin_may_approve_any_valid_name_but_a_reserved_one(typed: str, expected: str) -> None:
    if expected.startswith("'"):
        with pytest.raises(UserError) as exc:
            rules.approvable_username(typed, RESERVED)
        assert refusal(exc) == expected
    else:
        assert rules.approvable_username(typed, RESERVED) == expected


@pytest.mark.parametrize("typed", ["12345", "a/b", "", "ä"], ids=repr)
def test_an_invalid_name_is_refused_by_the_name_rules(typed: str) -> None:
    with pytest.raises(InvalidName):
        rules.approvable_username(typed, RESERVED)


@pytest.mark.parametrize(
    ("tg_username", "display_name", "expected"),
    [
        pytest.param("Bob_1", "Robert Smith", "bob_1", id="the @username first"),
        pytest.param(None, "Robert Smith", "robert", id="else the first word of the name"),
        pytest.param("otcert-admin", "Robert Smith", "robert", id="never a reserved name"),
        pytest.param("bad name", "Ünal", None, id="nothing valid: no suggestion"),
        pytest.param("x" * 40, "Robert", "x" * 32, id="long names are cut to 32"),
    ],
)
def test_a_suggested_username_passes_the_rules(
    tg_username: str | None, display_name: str, expected: str | None
) -> None:
    who = person(tg_username=tg_username, display_name=display_name)
    assert rules.suggested_username(who, RESERVED) == expected


# --- what admins type ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        pytest.param(None, None, id="no reason"),
        pytest.param("   ", None, id="blank is no reason"),
        pytest.param(" lost phone ", "lost phone", id="trimmed"),
        pytest.param("a\nb\x00c", "a b c", id="control characters become spaces"),
        pytest.param("x" * 250, "x" * rules.REASON_TEXT_MAX, id="cut at the maximum"),
    ],
)
def test_reasons_are_clipped_to_printable_text(reason: str | None, expected: str | None) -> None:
    assert rules.clip_reason(reason) == expected


@pytest.mark.parametrize(
    ("typed", "telegram_id", "username"),
    [
        pytest.param("12345", 12345, None, id="digits are a Telegram id"),
        pytest.param(" 12345 ", 12345, None, id="spaces around are ignored"),
        pytest.param("9" * 20, int("9" * 20), None, id="twenty digits are still an id"),
        pytest.param("9" * 21, None, None, id="longer digit runs are neither"),
        pytest.param("Alice", None, "alice", id="a name is a username"),
        pytest.param("²", None, None, id="superscript digits are no id"),
        pytest.param("١٢٣", None, None, id="Arabic-Indic digits are no id"),
        pytest.param("no such/name", None, None, id="an invalid name is neither"),
    ],
)
def test_admins_name_a_person_by_telegram_id_or_username(
    typed: str, telegram_id: int | None, username: str | None
) -> None:
    target = rules.parse_target(typed)
    assert (target.telegram_id, target.username) == (telegram_id, username)


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        pytest.param("ghost", "ghost", id="as typed"),
        pytest.param("y" * 100, "y" * 64, id="cut to 64 characters"),
        pytest.param("{x}", "{x}", id="braces are shown, not filled in"),
    ],
)
def test_an_unknown_target_is_named_in_the_answer(typed: str, shown: str) -> None:
    error = rules.unknown_target(rules.parse_target(typed))
    assert str(error) == f"Nobody with Telegram id or MQTT username '{shown}' is known."


# --- domain errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "text"),
    [
        pytest.param(UserError("Plain {words} stay as they are."),
                     "Plain {words} stay as they are.", id="a sentence without params"),
        pytest.param(UserError(texts.COOLDOWN, seconds=5),
                     "You just got a certificate. Please wait 5 seconds before asking for another.",
                     id="params are filled in"),
        pytest.param(NotAllowed(texts.ONLY_ADMINS), "Only admins can do that.",
                     id="not allowed"),
        pytest.param(UserError(texts.ALREADY_PREPARING),
                     "I'm already preparing your certificate; it will arrive in a moment.",
                     id="already preparing"),
    ],
)
def test_a_domain_error_reads_as_its_english_text(error: UserError, text: str) -> None:
    assert str(error) == text
    assert error.template in {text, texts.COOLDOWN}


def test_a_domain_error_keeps_its_template_and_params_for_later_translation() -> None:
    error = UserError(texts.RESERVED_USERNAME, name="otcert-admin")
    assert (error.template, error.params) == (texts.RESERVED_USERNAME, {"name": "otcert-admin"})


def test_the_rules_module_imports_no_clock_database_or_telegram() -> None:
    """Pure means the facts come in as arguments: nothing to reach for."""
    tree = ast.parse(Path(rules.__file__).read_text())
    imported = {
        f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    forbidden = ("aiosqlite", "telegram", "bot.core.clock", "storage.Repository",
                 "storage.Database", "datetime.UTC")
    assert not {name for name in imported if name.startswith(forbidden)}, imported
    assert "datetime.datetime" in imported  # the check sees the imports at all
