"""A /getcert burst under Telegram's flood limit: the fake Bot API answers 429 past 30 sends
a second (``FakeTelegram(send_limit=30)``), as Telegram does.

What is measured: 50 approved people (iPhone chosen once before) send /getcert with a new
device name at once; 10 other people take turns sending /start every 200 ms meanwhile. The
burst's completion is from the first /getcert injected to the last steps message arriving
(the fake's clock); its floor is the number of messages the bot sent in that time divided by
30 per second: no bot can be faster without a 429. Goal: within 1.25x of the floor, zero 429
answers, and /start p99 during the burst. Side by side: the same burst with the limiter off
(``OTCERT_TELEGRAM_SENDS_PER_SECOND=0``, v1's way: send, get 429, wait, send again).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from pathlib import Path

from bench.chat_driver import Driver, chat_of, is_steps, wait_until
from bench.common import Results, Row, percentile
from pki import CertificateAuthority
from tests.botproc import BotProcess
from tests.fake_telegram import FakeTelegram, FakeUser

CROWD = 50
OBSERVERS = 10
LIMIT = 30
START_EVERY = 0.2
REFILL_PAUSE = 3.0
GOAL_RATIO = 1.25
STEPS_TIMEOUT = 90.0


def _burst(driver: Driver, tg: FakeTelegram, crowd: list[FakeUser],
           observers: list[FakeUser], device: str) -> dict[str, float]:
    stop = threading.Event()
    sent: list[tuple[int, float]] = []

    def observe() -> None:
        i = 0
        while not stop.is_set():
            person = observers[i % len(observers)]
            sent.append((person.id, time.time()))
            tg.send_text(person, "/start")
            i += 1
            stop.wait(START_EVERY)

    watcher = threading.Thread(target=observe, name="start-observer", daemon=True)
    watcher.start()
    first = time.time()
    for person in crowd:
        tg.send_text(person, f"/getcert {device}")
    wanted = {p.id: (device, first) for p in crowd}
    steps = _steps_arrivals(tg, wanted, STEPS_TIMEOUT)
    stop.set()
    watcher.join()
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: driver._start_answered(sent), 10, "the last /start answers")
    last = max(steps.values(), default=first)
    sends = [c for c in tg.calls if c.method.lower().startswith("send") and c.status == 200
             and first <= c.time <= last]
    starts, missing = driver._start_latencies(sent)
    out = {"completion_s": last - first, "sends": float(len(sends)),
           "refused_429": float(len(tg.rate_limited())), "start_missing": float(missing),
           "start_p99_ms": percentile(starts, 99) * 1e3,
           "start_p50_ms": percentile(starts, 50) * 1e3,
           "no_steps": float(len(wanted) - len(steps))}
    tg.reset_calls()
    return out


def _steps_arrivals(tg: FakeTelegram, wanted: dict[int, tuple[str, float]],
                    timeout: float) -> dict[int, float]:
    """When each chat's steps message arrived; chats still without one after ``timeout`` are
    left out (without the limiter, a message can be lost to 429s after every retry)."""
    found: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(wanted) and time.monotonic() < deadline:
        for call in tg.calls_to("sendMessage"):
            chat = chat_of(call)
            if chat in wanted and chat not in found and is_steps(call, chat, wanted[chat][0]):
                found[chat] = call.time
        time.sleep(0.05)
    return found


def _wait_quiet(tg: FakeTelegram, quiet: float = 2.0) -> None:
    """Until the bot has sent nothing for ``quiet`` seconds."""
    seen, since = -1, time.monotonic()
    while time.monotonic() - since < quiet:
        count = len(tg.calls)
        if count != seen:
            seen, since = count, time.monotonic()
        time.sleep(0.1)
    tg.reset_calls()


def _measure(workdir: Path, rounds: int, per_second: int) -> list[dict[str, float]]:
    with FakeTelegram() as tg:
        bot = BotProcess(tg, workdir, ca=CertificateAuthority.create(), env={
            "OTCERT_ISSUE_COOLDOWN_SECONDS": "0", "OTCERT_MAX_DEVICES": "50",
            "OTCERT_LOG_LEVEL": "INFO", "OTCERT_KEY_POOL_SIZE": "64",
            "OTCERT_TELEGRAM_SENDS_PER_SECOND": str(per_second),
        })
        with bot:
            time.sleep(3.0)  # key pool filled, start-up jobs ran
            driver = Driver(tg)
            crowd = [tg.user(6000 + i, f"Crowd{i}") for i in range(CROWD)]
            observers = [tg.user(7000 + i, f"Watcher{i}") for i in range(OBSERVERS)]
            driver.approve(crowd)
            driver.choose_platform(crowd)
            _wait_quiet(tg)  # the set-up's CA, pin and steps still trickle out otherwise
            tg.limit_sends(LIMIT)  # set-up done without a limit: v1 loses replies to 429s
            out = []
            for r in range(rounds):
                time.sleep(REFILL_PAUSE)
                one = _burst(driver, tg, crowd, observers, f"l{per_second}r{r}")
                print(f"   limiter {per_second or 'off'}, round {r + 1}: "
                      f"{one['completion_s']:.1f} s for {one['sends']:.0f} sends, "
                      f"{one['refused_429']:.0f} x 429, /start p99 {one['start_p99_ms']:.0f} ms, "
                      f"{one['no_steps']:.0f} without steps",
                      flush=True)
                out.append(one)
    return out


def _worst(rounds: list[dict[str, float]], key: str) -> float:
    return max(r[key] for r in rounds)


def _list(rounds: list[dict[str, float]], key: str, spec: str) -> str:
    return ", ".join(format(r[key], spec) for r in rounds)


def run(results: Results, *, quick: bool) -> None:
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="otcert-bench-limits-") as tmp:
        shaped = _measure(Path(tmp) / "shaped", rounds, LIMIT)
        unshaped = _measure(Path(tmp) / "unshaped", 1, 0)
    ratios = [r["completion_s"] / (r["sends"] / LIMIT) for r in shaped]
    worst = max(ratios)
    refused = sum(r["refused_429"] for r in shaped)
    old = unshaped[0]
    missing = sum(r["no_steps"] for r in shaped)
    results.add(Row(
        "limits", f"{CROWD}-person /getcert burst under {LIMIT}/s: completion / floor", worst,
        "x", len(shaped),
        note=(f"completion {_list(shaped, 'completion_s', '.1f')} s for "
              f"{_list(shaped, 'sends', '.0f')} sends (floor sends/{LIMIT}); "
              f"429 answers {refused:.0f}; limiter off: {old['completion_s']:.1f} s, "
              f"{old['refused_429']:.0f} x 429, {old['no_steps']:.0f} of {CROWD} never got "
              f"their steps"),
        ratio=old["completion_s"] / max(r["completion_s"] for r in shaped),
        ratio_label="x faster than with the limiter off",
        target=f"<= {GOAL_RATIO}x, no 429",
        met=worst <= GOAL_RATIO and refused == 0 and missing == 0,
        extra={"completion_s": _worst(shaped, "completion_s"), "refused_429": refused,
               "off_completion_s": old["completion_s"], "off_refused_429": old["refused_429"]}))
    start99 = _worst(shaped, "start_p99_ms")
    results.add(Row(
        "limits", "/start during that burst, p99 (worst round)", start99, "ms", len(shaped),
        note=(f"p50 {_worst(shaped, 'start_p50_ms'):.0f} ms; unanswered "
              f"{sum(r['start_missing'] for r in shaped):.0f}; limiter off: p99 "
              f"{old['start_p99_ms']:.0f} ms"),
        extra={"off_start_p99_ms": old["start_p99_ms"]}))
