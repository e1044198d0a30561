"""Shared plumbing for the benchmarks: statistics, result rows, timing, machine facts.

Why one place: every section reports the same kind of row (a median of repeated runs, with
its unit and, where there is one, the side-by-side ratio and the target), so the table,
results.json and RESULTS.md are all rendered from the same list.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: with few samples it is an observed value)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per call of ``fn``, ``repeats`` times."""
    out: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


@dataclass
class Row:
    """One line of the results table."""

    section: str
    name: str
    value: float
    unit: str
    samples: int
    note: str = ""
    ratio: float | None = None  # >1 means we are better than the side-by-side baseline
    ratio_label: str = ""
    target: str = ""
    met: bool | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {format_row(row)}", flush=True)
        return row


def fmt_value(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit in ("ms", "MB", "MiB"):
        return f"{value:,.1f} {unit}"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "µs":
        return f"{value:,.0f} µs"
    return f"{value:,.1f} {unit}"


def fmt_ratio(row: Row) -> str:
    if row.ratio is None:
        return ""
    return f"{row.ratio:.2f}x {row.ratio_label}".strip()


def fmt_target(row: Row) -> str:
    if not row.target:
        return ""
    verdict = {True: "met", False: "MISSED", None: ""}[row.met]
    return f"{row.target} {verdict}".strip()


def format_row(row: Row) -> str:
    parts = [f"[{row.section}] {row.name}: {fmt_value(row.value, row.unit)} (n={row.samples})"]
    if row.ratio is not None:
        parts.append(f"ratio {fmt_ratio(row)}")
    if row.target:
        parts.append(f"target {fmt_target(row)}")
    if row.note:
        parts.append(row.note)
    return " | ".join(parts)


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| section | measurement | median / value | n | side by side | target | note |",
        "| --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.section} | {row.name} | {fmt_value(row.value, row.unit)} | {row.samples} "
            f"| {fmt_ratio(row)} | {fmt_target(row)} | {row.note} |"
        )
    return "\n".join(lines)


def text_table(rows: list[Row]) -> str:
    headers = ["section", "measurement", "value", "n", "side by side", "target"]
    body = [
        [r.section, r.name, fmt_value(r.value, r.unit), str(r.samples), fmt_ratio(r),
         fmt_target(r)]
        for r in rows
    ]
    widths = [max([len(h), *(len(line[i]) for line in body)]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in body)
    return "\n".join(out)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def machine_info() -> dict[str, Any]:
    """The facts a reader needs to compare figures across machines."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend

    openssl_cli = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        import telegram

        ptb = telegram.__version__
    except ImportError:  # pragma: no cover - PTB is a dependency
        ptb = "missing"
    try:
        import sqlite3

        sqlite = sqlite3.sqlite_version
    except ImportError:  # pragma: no cover
        sqlite = "missing"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "openssl_cli": openssl_cli,
        "cryptography": cryptography.__version__,
        "cryptography_openssl": backend.openssl_version_text(),
        "python_telegram_bot": ptb,
        "sqlite": sqlite,
        "kernel": platform.release(),
    }
