"""RESULTS.md: the latest table, the machine, each target met or missed (and by how much),
followed by the hand-written analysis in bench/ANALYSIS.md (why, and what would close it).

Why generated: the figures change with every run; the explanation changes only when the
code does, so it lives in its own file and is appended unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import Row, fmt_value, markdown_table

ANALYSIS = Path(__file__).resolve().parent / "ANALYSIS.md"


def _target_line(row: Row) -> str:
    figure = fmt_value(row.value, row.unit)
    if row.met:
        return f"- **met**: {row.name}: {figure} (target {row.target})"
    gap = ""
    bound = _bound(row.target)
    if bound is not None and row.unit in ("ms", "s", "MB") and bound > 0:
        gap = f", {row.value / bound:.2f}x the bound"
    elif row.ratio is not None:
        gap = f", ratio {row.ratio:.2f}x"
    return f"- **MISSED**: {row.name}: {figure} (target {row.target}{gap})"


def _bound(target: str) -> float | None:
    """The number in a '< 60 ms' style target."""
    parts = target.replace("<", " ").split()
    for part in parts:
        try:
            return float(part)
        except ValueError:
            continue
    return None


def write_results_md(path: Path, info: dict[str, Any], rows: list[Row]) -> None:
    before, after = info.get("load_before", (0, 0, 0)), info.get("load_after", (0, 0, 0))
    lines = [
        "# Benchmark results (latest run)",
        "",
        "Written by `python3 -m bench` (see bench/README.md). Every figure is a median of",
        "repeated runs unless the row says p95/p99; every ratio was measured in the same run.",
        "",
        "## Machine",
        "",
        f"- date: {info['date']}; mode: {info['mode']} ({info['seconds']} s); "
        f"sections: {', '.join(info['sections'])}",
        f"- CPU: {info['cpu']}, {info['cores']} cores; kernel {info['kernel']}",
        f"- Python {info['python']}; {info['openssl_cli']} (CLI); cryptography "
        f"{info['cryptography']} on {info['cryptography_openssl']}; "
        f"python-telegram-bot {info['python_telegram_bot']}; SQLite {info['sqlite']}",
        f"- load average (1/5/15 min) before: {before[0]:.2f} / {before[1]:.2f} / "
        f"{before[2]:.2f}; after: {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f} "
        "(other engineers run test suites on this machine too)",
        "",
        *[f"- **{note}**" for note in info.get("notes", [])],
        "",
        "## Targets",
        "",
        *[_target_line(r) for r in rows if r.target],
        "",
        "## Table",
        "",
        markdown_table(rows),
        "",
    ]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text(encoding="utf-8").rstrip(), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
