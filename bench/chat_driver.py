"""Driving a bot (the real one or the echo floor) through the fake Bot API and timing it.

Latency = the fake's own record of the bot's answer (``Call.time``, taken by the server when
the request arrives) minus ``time.time()`` taken right before the update is injected. Both
clocks are this process's wall clock, so no cross-process clock skew enters the figures.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.botproc import ADMIN_ID
from tests.fake_telegram import Call, FakeTelegram, FakeUser

PASSPHRASE = "Passphrase for"
REPO_ROOT = Path(__file__).resolve().parent.parent


def chat_of(call: Call) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        return int(call.params.get("chat_id"))  # type: ignore[arg-type]
    return None


def text_of(call: Call) -> str:
    return str(call.params.get("text") or "")


def is_passphrase(call: Call, chat_id: int, device: str) -> bool:
    return (call.method.lower() == "sendmessage" and chat_of(call) == chat_id
            and text_of(call).startswith(PASSPHRASE) and f"-{device}." in text_of(call))


def wait_until(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.03)  # answers carry their own timestamps; polling only costs GIL time


def vm_status(pid: int) -> dict[str, float]:
    """VmHWM (peak) and VmRSS of a process in MB (10^6 bytes), from /proc."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0]) * 1024 / 1e6
    return values


def is_steps(call: Call, chat_id: int, device: str) -> bool:
    """The last message of a delivery: the per-phone steps naming the file."""
    return (call.method.lower() == "sendmessage" and chat_of(call) == chat_id
            and " steps</b>" in text_of(call) and f"-{device}." in text_of(call))


@dataclass
class Burst:
    getcert: list[float] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    start_missing: int = 0


class Driver:
    """Inject updates into ``tg`` and collect the bot's answers as latencies."""

    def __init__(self, tg: FakeTelegram, *, sends_steps: bool = True) -> None:
        self.tg = tg
        self.issued = 0
        self.sends_steps = sends_steps  # the echo bot stops after the passphrase

    def _wait_for_steps(self, wanted: dict[int, tuple[str, float]], timeout: float) -> None:
        if self.sends_steps:
            self._arrivals(wanted, is_steps, timeout, "steps messages")

    def _passphrase_times(self, wanted: dict[int, tuple[str, float]], timeout: float
                          ) -> list[float]:
        """Latency per chat in ``wanted`` (chat -> (device, injected at))."""
        found = self._arrivals(wanted, is_passphrase, timeout, "passphrase messages")
        self.issued += len(found)
        return [found[chat] - injected for chat, (_, injected) in wanted.items()]

    def _arrivals(self, wanted: dict[int, tuple[str, float]],
                  matches: Callable[[Call, int, str], bool], timeout: float, what: str
                  ) -> dict[int, float]:
        """When the first message ``matches`` arrived, per chat in ``wanted``."""
        found: dict[int, float] = {}

        def probe() -> bool:
            for call in self.tg.calls_to("sendMessage"):
                chat = chat_of(call)
                if chat in wanted and chat not in found and matches(call, chat, wanted[chat][0]):
                    found[chat] = call.time
            return len(found) == len(wanted)

        wait_until(probe, timeout, f"{len(wanted)} {what}")
        return found

    # -- setup ----------------------------------------------------------------------------
    def approve(self, people: list[FakeUser]) -> None:
        admin = self.tg.user(ADMIN_ID, "Admin")
        for person in people:
            self.tg.send_text(admin, f"/approve {person.id} p{person.id}")
        for person in people:
            self.tg.wait_for(lambda m, p=person: f"as <code>p{p.id}</code>" in m.text,
                             timeout=30, chat_id=ADMIN_ID)

    def choose_platform(self, people: list[FakeUser]) -> None:
        """First /getcert asks which phone; press iPhone once per person (issues 'phone')."""
        for person in people:
            self.tg.send_text(person, "/getcert")
        for person in people:
            question = self.tg.wait_for(lambda m: "Which phone" in m.text, timeout=30,
                                        chat_id=person.id)
            self.tg.press_button(person, question.message_id, "plat:ios:phone")
        self._passphrase_times({p.id: ("phone", 0.0) for p in people}, timeout=120)
        self.tg.reset_calls()

    # -- measurements -----------------------------------------------------------------------
    def getcert_one_at_a_time(self, person: FakeUser, devices: list[str], gap: float
                              ) -> list[float]:
        """Sequential /getcert for new device names (the plain path: nothing superseded)."""
        out: list[float] = []
        for device in devices:
            injected = time.time()
            self.tg.send_text(person, f"/getcert {device}")
            wanted = {person.id: (device, injected)}
            out += self._passphrase_times(wanted, timeout=30)
            self._wait_for_steps(wanted, 30)
            time.sleep(gap)  # a person's pace (the throttle allows 20 updates per 10 s)
        self.tg.reset_calls()
        return out

    def start_idle(self, observers: list[FakeUser], repeats: int, gap: float) -> list[float]:
        out: list[float] = []
        for i in range(repeats):
            person = observers[i % len(observers)]
            since = time.time()
            self.tg.send_text(person, "/start")
            reply = self.tg.wait_for_call(
                "sendMessage", lambda c, p=person, s=since: chat_of(c) == p.id and c.time >= s,
                timeout=30)
            out.append(reply.time - since)
            time.sleep(gap)
        self.tg.reset_calls()
        return out

    def burst(self, people: list[FakeUser], device: str, observers: list[FakeUser],
              start_every: float, timeout: float = 120) -> Burst:
        """Everyone in ``people`` sends /getcert at once while ``observers`` take turns
        sending /start every ``start_every`` seconds until the last passphrase arrives."""
        stop = threading.Event()
        sent: list[tuple[int, float]] = []

        def observe() -> None:
            i = 0
            while not stop.is_set():
                person = observers[i % len(observers)]
                sent.append((person.id, time.time()))
                self.tg.send_text(person, "/start")
                i += 1
                stop.wait(start_every)

        watcher = threading.Thread(target=observe, name="start-observer", daemon=True)
        if observers:
            watcher.start()
        wanted: dict[int, tuple[str, float]] = {}
        for person in people:
            wanted[person.id] = (device, time.time())
            self.tg.send_text(person, f"/getcert {device}")
        result = Burst(self._passphrase_times(wanted, timeout))
        # The CA, pin and steps follow the passphrase; until they are out the bot answers a
        # new /getcert from that person with "already preparing". /start keeps coming.
        self._wait_for_steps(wanted, timeout)
        stop.set()
        if observers:
            watcher.join()
            with contextlib.suppress(TimeoutError):  # unanswered ones are counted below
                wait_until(lambda: self._start_answered(sent), 10, "the last /start answers")
            result.start, result.start_missing = self._start_latencies(sent)
        self.tg.reset_calls()
        return result

    def _start_answered(self, sent: list[tuple[int, float]]) -> bool:
        calls = self.tg.calls_to("sendMessage")
        return all(
            sum(1 for c in calls if chat_of(c) == chat) >= sum(1 for c2, _ in sent if c2 == chat)
            for chat in {c for c, _ in sent}
        )

    def _start_latencies(self, sent: list[tuple[int, float]]) -> tuple[list[float], int]:
        """Pair each observer's k-th /start with the k-th answer to that chat."""
        calls = self.tg.calls_to("sendMessage")
        latencies: list[float] = []
        missing = 0
        for chat in {c for c, _ in sent}:
            injected = sorted(t for c, t in sent if c == chat)
            answers = sorted(c.time for c in calls if chat_of(c) == chat)
            missing += max(0, len(injected) - len(answers))
            latencies += [a - t for t, a in zip(injected, answers, strict=False)]
        return latencies, missing


class EchoProcess:
    """The echo bot in a subprocess, started like BotProcess starts `otcert run`."""

    def __init__(self, tg: FakeTelegram, workdir: Path) -> None:
        self.tg, self.log_path = tg, workdir / "echo.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EchoProcess:
        env = dict(os.environ, BENCH_TOKEN=self.tg.token, BENCH_API_URL=self.tg.base_url,
                   BENCH_FILE_URL=self.tg.base_file_url,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                            os.environ.get("PYTHONPATH")])))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.echo_bot"], cwd=REPO_ROOT,
                                         env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_until(lambda: "Application started" in self.log_path.read_text(errors="replace"),
                   30, "the echo bot to start")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
