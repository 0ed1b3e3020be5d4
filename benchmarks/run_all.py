"""Run every CLI benchmark in sequence and print one table of every figure, ratio and goal.

Why sequential, each in its own process: the machine has 2 cores, and every ratio compares
processes measured one after the other in the same run; a script that ran beside another would
skew both. Each script also prints its own table as it goes; this one gathers their ``--json``.

    .venv/bin/python benchmarks/run_all.py            # full sizes (~15 min; moviepy alone ~5)
    .venv/bin/python benchmarks/run_all.py --quick    # smaller sizes, one run per case (~2 min)
    .venv/bin/python benchmarks/run_all.py --only startup,scale --extra=--no-moviepy
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

SCRIPTS = ["startup", "rerun", "scale", "preview_cli", "cli_assemble"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCRIPTS)}")
    parser.add_argument("--extra", action="append", default=[],
                        help="an argument passed to cli_assemble.py (e.g. --extra=--no-moviepy, --extra=--profile)")
    args = parser.parse_args()
    chosen = [s for s in (args.only.split(",") if args.only else SCRIPTS) if s]
    print(harness.machine_line(), flush=True)
    began = time.perf_counter()
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        for name in chosen:
            target = Path(tmp) / f"{name}.json"
            command = [sys.executable, str(Path(__file__).with_name(f"{name}.py")), "--json", str(target)]
            if args.quick:
                command.append("--quick")
            if name == "cli_assemble":
                command += args.extra
            print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
            finished = subprocess.run(command)
            if finished.returncode != 0 or not target.is_file():
                print(f"!!! {name} failed (exit {finished.returncode})", flush=True)
                continue
            reports.append(json.loads(target.read_text(encoding="utf-8")))
    print(f"\n\n## All benchmarks ({'quick' if args.quick else 'full'}; {time.perf_counter() - began:.0f} s; "
          f"{harness.machine_line()})\n")
    for report in reports:
        harness.print_table(report["title"], [harness.Row(**row) for row in report["rows"]])


if __name__ == "__main__":
    main()
