"""Chat latency and memory of the real bot (`otcert run` in a subprocess) against the test
suite's fake Bot API, side by side with a bare python-telegram-bot echo bot.

Who is measured: one person at a time uses new device names (up to OTCERT_MAX_DEVICES=50),
so each /getcert takes the plain path (nothing superseded, no CRL rewrite); 50 other people
send /getcert at once, each with a new device name per round; 20 further, unapproved people
take turns sending /start every 50 ms meanwhile (turns keep each under the per-person
throttle of 20 updates per 10 s).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.chat_driver import Burst, Driver, EchoProcess, vm_status
from bench.common import Results, Row, percentile
from pki import CertificateAuthority
from tests.botproc import BotProcess
from tests.fake_telegram import FakeTelegram, FakeUser

CROWD = 50
OBSERVERS = 10
START_EVERY = 0.2
SOLO_GAP = 0.5
# Each measured burst finds a bot that was idle this long (its key pool refilled: 50 RSA
# keys take ~2 s on 2 idle cores); the memory run below sends bursts back to back instead.
REFILL_PAUSE = 3.0
TARGET_SOLO_P50_MS = 60.0
TARGET_CROWD_P99_MS = 1000.0
TARGET_START_P99_MS = 50.0
TARGET_IDLE_RSS_MB = 80.0


class Plan:
    def __init__(self, quick: bool) -> None:
        self.solo = 10 if quick else 25
        self.rounds = 1 if quick else 3
        self.idle_starts = 10 if quick else 20
        self.issuances = 200 if quick else 1000


def _people(tg: FakeTelegram, first_id: int, count: int, name: str) -> list[FakeUser]:
    return [tg.user(first_id + i, f"{name}{i}") for i in range(count)]


def _crowd(driver: Driver, crowd: list[FakeUser], observers: list[FakeUser], rounds: int,
           prefix: str) -> Burst:
    total = Burst()
    for r in range(rounds):
        time.sleep(REFILL_PAUSE)
        one = driver.burst(crowd, f"{prefix}{r}", observers, START_EVERY)
        print(f"   round {r + 1}: /getcert p50 {_ms(one.getcert, 50):.0f} / max "
              f"{max(one.getcert) * 1e3:.0f} ms; /start p50 {_ms(one.start, 50):.0f} / max "
              f"{max(one.start, default=0) * 1e3:.0f} ms", flush=True)
        total.getcert += one.getcert
        total.start += one.start
        total.start_missing += one.start_missing
    return total


def _bot(tg: FakeTelegram, workdir: Path, **env: str) -> BotProcess:
    return BotProcess(tg, workdir, ca=CertificateAuthority.create(), env={
        "OTCERT_ISSUE_COOLDOWN_SECONDS": "0", "OTCERT_MAX_DEVICES": "50",
        "OTCERT_LOG_LEVEL": "INFO",  # what operators run; DEBUG would add logging cost
        "OTCERT_KEY_POOL_SIZE": "64",  # the product default (the test harness uses 2)
        # Side by side with an echo bot that sends unshaped: the flood limit is measured
        # apart, against a fake that enforces it (bench/limits.py).
        "OTCERT_TELEGRAM_SENDS_PER_SECOND": "0",
        **env,
    })


def _measure_real_bot(tg: FakeTelegram, workdir: Path, plan: Plan) -> dict[str, object]:
    bot = _bot(tg, workdir / "bot")
    bot.start()
    try:
        assert bot.proc is not None
        pid = bot.proc.pid
        time.sleep(3.0)  # key pool filled, start-up CRL written, first jobs ran
        idle = vm_status(pid)
        driver = Driver(tg)
        solo = _people(tg, 5000, 1, "Solo")[0]
        crowd = _people(tg, 6000, CROWD, "Crowd")
        observers = _people(tg, 7000, OBSERVERS, "Watcher")
        driver.approve([solo, *crowd])
        driver.choose_platform([solo, *crowd])
        time.sleep(1.0)  # key pool refilled
        start_idle = driver.start_idle(observers, plan.idle_starts, 0.1)
        solo_lat = driver.getcert_one_at_a_time(solo, [f"s{i}" for i in range(plan.solo)],
                                                SOLO_GAP)
        burst = _crowd(driver, crowd, observers, plan.rounds, "b")
        r = 0
        while driver.issued < plan.issuances:
            driver.burst(crowd, f"m{r}", [], START_EVERY)
            r += 1
        time.sleep(1.0)
        after = vm_status(pid)
        return {"idle": idle, "after": after, "issued": driver.issued, "solo": solo_lat,
                "burst": burst, "start_idle": start_idle}
    finally:
        code = bot.stop()
        if code != 0:
            print(f"  warning: the bot exited with {code}; see {bot.log_path}")


def _measure_echo(tg: FakeTelegram, workdir: Path, plan: Plan) -> dict[str, object]:
    echo = EchoProcess(tg, workdir).start()
    try:
        assert echo.proc is not None
        time.sleep(1.0)
        idle = vm_status(echo.proc.pid)
        driver = Driver(tg, sends_steps=False)
        solo = _people(tg, 5000, 1, "Solo")[0]
        crowd = _people(tg, 6000, CROWD, "Crowd")
        observers = _people(tg, 7000, OBSERVERS, "Watcher")
        start_idle = driver.start_idle(observers, plan.idle_starts, 0.1)
        solo_lat = driver.getcert_one_at_a_time(solo, [f"s{i}" for i in range(plan.solo)],
                                                SOLO_GAP)
        burst = _crowd(driver, crowd, observers, plan.rounds, "b")
        return {"idle": idle, "solo": solo_lat, "burst": burst, "start_idle": start_idle}
    finally:
        echo.stop()


def _ms(values: list[float], pct: float) -> float:
    return percentile(values, pct) * 1e3


def _spread(values: list[float]) -> str:
    return f"p50 {_ms(values, 50):.0f} / p95 {_ms(values, 95):.0f} / p99 {_ms(values, 99):.0f} ms"


def _report(results: Results, ours: dict[str, object], echo: dict[str, object]) -> None:
    solo, e_solo = ours["solo"], echo["solo"]
    burst, e_burst = ours["burst"], echo["burst"]
    s_idle, e_s_idle = ours["start_idle"], echo["start_idle"]
    assert isinstance(solo, list) and isinstance(e_solo, list)
    assert isinstance(burst, Burst) and isinstance(e_burst, Burst)
    assert isinstance(s_idle, list) and isinstance(e_s_idle, list)
    vs_echo = "x the echo-bot floor (lower is better)"
    p50 = _ms(solo, 50)
    results.add(Row(
        "chat", "/getcert, one person at a time, p50", p50, "ms", len(solo),
        note=f"{_spread(solo)}; echo {_spread(e_solo)}", ratio=p50 / _ms(e_solo, 50),
        ratio_label=vs_echo, target=f"< {TARGET_SOLO_P50_MS:.0f} ms",
        met=p50 < TARGET_SOLO_P50_MS, extra={"p95_ms": _ms(solo, 95), "p99_ms": _ms(solo, 99)}))
    p99 = _ms(burst.getcert, 99)
    results.add(Row(
        "chat", f"/getcert, {CROWD} people at once, p99", p99, "ms", len(burst.getcert),
        note=f"{_spread(burst.getcert)}; echo {_spread(e_burst.getcert)}",
        ratio=p99 / _ms(e_burst.getcert, 99), ratio_label=vs_echo,
        target=f"< {TARGET_CROWD_P99_MS:.0f} ms", met=p99 < TARGET_CROWD_P99_MS,
        extra={"p50_ms": _ms(burst.getcert, 50), "p95_ms": _ms(burst.getcert, 95)}))
    start99 = _ms(burst.start, 99)
    results.add(Row(
        "chat", f"/start while {CROWD} /getcert run, p99", start99, "ms", len(burst.start),
        note=f"{_spread(burst.start)}; unanswered {burst.start_missing}; "
             f"echo {_spread(e_burst.start)}",
        ratio=start99 / _ms(e_burst.start, 99), ratio_label=vs_echo,
        target=f"< {TARGET_START_P99_MS:.0f} ms", met=start99 < TARGET_START_P99_MS and
        burst.start_missing == 0,
        extra={"p50_ms": _ms(burst.start, 50), "p95_ms": _ms(burst.start, 95)}))
    results.add(Row(
        "chat", "/start, idle bot, p50", _ms(s_idle, 50), "ms", len(s_idle),
        note=f"{_spread(s_idle)}; echo {_spread(e_s_idle)}",
        ratio=_ms(s_idle, 50) / _ms(e_s_idle, 50), ratio_label=vs_echo))
    idle, after, e_idle = ours["idle"], ours["after"], echo["idle"]
    assert isinstance(idle, dict) and isinstance(after, dict) and isinstance(e_idle, dict)
    results.add(Row(
        "memory", "bot peak RSS (VmHWM), idle after start", idle["VmHWM"], "MB", 1,
        note=f"VmRSS {idle['VmRSS']:.1f} MB; echo bot VmHWM {e_idle['VmHWM']:.1f} MB",
        ratio=idle["VmHWM"] / e_idle["VmHWM"], ratio_label="x the echo bot",
        target=f"< {TARGET_IDLE_RSS_MB:.0f} MB", met=idle["VmHWM"] < TARGET_IDLE_RSS_MB))
    results.add(Row(
        "memory", f"bot peak RSS (VmHWM) after {ours['issued']} issuances", after["VmHWM"],
        "MB", 1, note=f"VmRSS {after['VmRSS']:.1f} MB"))


def run(results: Results, *, quick: bool) -> None:
    plan = Plan(quick)
    with tempfile.TemporaryDirectory(prefix="otcert-bench-chat-") as tmp:
        workdir = Path(tmp)
        with FakeTelegram() as tg:
            ours = _measure_real_bot(tg, workdir, plan)
        with FakeTelegram() as tg:
            echo = _measure_echo(tg, workdir, plan)
    _report(results, ours, echo)
