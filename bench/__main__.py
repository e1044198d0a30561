"""`python3 -m bench [--quick] [--only SECTION ...]`: run the benchmarks, print the table,
write bench/results.json and bench/RESULTS.md (the latest table and the machine it ran on)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # the repo root: pki, storage, bot, tests

from bench import chat, crl, issuance, lifecycle_bench, limits, storage_bench  # noqa: E402
from bench.common import Results, Row, load_average, machine_info, text_table  # noqa: E402
from bench.report import write_results_md  # noqa: E402

SECTIONS: dict[str, Callable[..., None]] = {
    "issuance": issuance.run,
    "crl": crl.run,
    "storage": storage_bench.run,
    "lifecycle": lifecycle_bench.run,
    "chat": chat.run,  # also measures memory (same bot process)
    "limits": limits.run,  # a burst under Telegram's 30 messages/s
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and smaller data sets (about a minute)")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS),
                        help="run only these sections")
    parser.add_argument("--no-write", action="store_true",
                        help="print only; leave results.json and RESULTS.md alone")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite RESULTS.md from results.json (after editing "
                             "ANALYSIS.md); runs nothing")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads((BENCH_DIR / "results.json").read_text(encoding="utf-8"))
        write_results_md(BENCH_DIR / "RESULTS.md", saved["machine"],
                         [Row(**row) for row in saved["rows"]])
        print(f"wrote {BENCH_DIR / 'RESULTS.md'} from results.json")
        return 0
    info = machine_info()
    load_before = load_average()
    print(f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, "
          f"{info['openssl_cli']}, load {load_before[0]:.2f}", flush=True)
    results = Results()
    started = time.perf_counter()
    for name in args.only:
        print(f"== {name}", flush=True)
        section_start = time.perf_counter()
        try:
            SECTIONS[name](results, quick=args.quick)
        except Exception as exc:  # one broken section must not lose the others' figures
            message = f"section {name} failed: {type(exc).__name__}: {exc}"
            print(f"   {message}", flush=True)
            results.notes.append(message)
        print(f"   ({time.perf_counter() - section_start:.0f} s)", flush=True)
    elapsed = time.perf_counter() - started
    load_after = load_average()
    info.update(mode="quick" if args.quick else "full", sections=args.only, notes=results.notes,
                seconds=round(elapsed, 1), load_before=load_before, load_after=load_after)
    print()
    print(text_table(results.rows))
    print(f"\n{len(results.rows)} rows in {elapsed:.0f} s; load {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    if not args.no_write:
        payload = {"machine": info, "rows": [r.as_json() for r in results.rows]}
        (BENCH_DIR / "results.json").write_text(json.dumps(payload, indent=2) + "\n",
                                                encoding="utf-8")
        write_results_md(BENCH_DIR / "RESULTS.md", info, results.rows)
        print(f"wrote {BENCH_DIR / 'results.json'} and {BENCH_DIR / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
