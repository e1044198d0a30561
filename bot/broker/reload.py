"""Run the operator's reload command so Mosquitto re-reads the CRL.

Why: Mosquitto only re-reads ``crlfile`` on SIGHUP, and how to send it (systemctl, docker,
kill) is the operator's choice, so the bot runs a configured shell line, with a deadline, and
turns whatever happens into a :class:`BrokerOutcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from bot.broker.outcome import BrokerOutcome

_STDERR_KEEP_BYTES = 4096
_DETAIL_STDERR_CHARS = 300


async def run_reload_command(command: str | None, *, timeout: float = 10.0) -> BrokerOutcome:
    """Run the operator's reload command (a shell line) so Mosquitto re-reads the CRL.

    The command runs in its own session so that on timeout the whole process group (the shell
    and whatever it started) is killed, not just the shell.
    """
    if command is None or not command.strip():
        return BrokerOutcome(True, "no reload command configured")
    try:
        process = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            # The token and the CA passphrase live in OTCERT_*: the command gets none of them.
            env={k: v for k, v in os.environ.items() if not k.startswith("OTCERT_")},
        )
    except Exception as exc:  # OSError, or anything odd from the event loop
        return BrokerOutcome(False, f"The broker reload command could not be started: {exc}.")
    tail = bytearray()
    reader = asyncio.create_task(_keep_tail(process.stderr, tail))
    try:
        try:
            code = await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            return BrokerOutcome(
                False,
                f"The broker reload command did not finish within {timeout:g} s and was killed.",
            )
        # A background child may keep stderr open; don't wait for it long.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), 0.5)
    except asyncio.CancelledError:
        _kill_group(process.pid)
        raise
    except Exception as exc:
        _kill_group(process.pid)
        return BrokerOutcome(False, f"The broker reload command failed to run: {exc}.")
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
    if code == 0:
        return BrokerOutcome(True, "the broker reload command succeeded")
    why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    errors = _last_lines(bytes(tail))
    return BrokerOutcome(
        False,
        f"The broker reload command failed ({why})" + (f": {errors}" if errors else "."),
    )


async def _keep_tail(stream: asyncio.StreamReader | None, tail: bytearray) -> None:
    """Drain the pipe (a full pipe would block the child) keeping only the last few KiB."""
    if stream is None:
        return
    while chunk := await stream.read(65536):
        tail.extend(chunk)
        del tail[:-_STDERR_KEEP_BYTES]


def _last_lines(raw: bytes, lines: int = 3) -> str:
    text = raw.decode("utf-8", "replace").strip()
    kept = " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())
    kept = "".join(ch if ch.isprintable() else "?" for ch in kept)
    if len(kept) > _DETAIL_STDERR_CHARS:
        kept = "…" + kept[-_DETAIL_STDERR_CHARS:]
    return kept


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
