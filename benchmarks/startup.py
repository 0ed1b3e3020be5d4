"""Start-up: how long `storyboard --help` and `storyboard validate <example>` take as processes, and
which heavy modules they import (``python -X importtime``, parsed).

Why: issue 13 measured about 3 s of imports before any work. A command should load only what it
uses: ``--help`` needs typer and rich, ``validate`` also YAML, pydantic, Pillow (image checks) and
Jinja2 (template checks), and neither needs PyAV, OpenTimelineIO, numpy or httpx. The baseline is
the bare interpreter (``python -c pass``) measured in the same run.

    .venv/bin/python benchmarks/startup.py [--quick] [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import harness
from harness import Report, storyboard_argv

HEAVY = ("typer", "rich", "opentimelineio", "av", "PIL", "numpy", "jinja2", "httpx", "pydantic", "yaml",
         "moviepy", "imageio_ffmpeg")
NOT_NEEDED = {
    "--help": {"opentimelineio", "av", "PIL", "numpy", "jinja2", "httpx", "moviepy"},
    "validate": {"opentimelineio", "av", "numpy", "httpx", "moviepy"},
}
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def imported(argv: list[str]) -> tuple[dict[str, float], float, list[tuple[str, float]]]:
    """Heavy packages the command imported (-> ms spent importing the package's own modules, the
    sum of their self times), the total import time in ms (every module's self time), and the
    eight packages that took longest (any package, ours included)."""
    if Path(argv[0]).name == "storyboard":
        command = [sys.executable, "-X", "importtime", argv[0], *argv[1:]]
    else:
        command = [sys.executable, "-X", "importtime", *argv[1:]]
    stderr = harness.run_process(command, sample_rss=False).stderr
    heavy: dict[str, float] = {}
    every: dict[str, float] = {}
    total_us = 0
    for line in stderr.splitlines():
        found = IMPORT_LINE.match(line)
        if not found:
            continue
        own, name = int(found.group(1)), found.group(4)
        total_us += own
        package = name.split(".")[0]
        every[package] = every.get(package, 0.0) + own / 1000
        if package in HEAVY:
            heavy[package] = heavy.get(package, 0.0) + own / 1000
    return heavy, total_us / 1000, sorted(every.items(), key=lambda kv: -kv[1])[:8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.common_arguments(parser)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    report = Report("start-up and imports")
    harness.warm_up()
    print(harness.machine_line())
    bare = harness.median_of(runs, lambda: harness.run_process([sys.executable, "-c", "pass"], sample_rss=False))
    report.add("python -c pass (baseline)", "python -c pass", bare)
    with harness.bench_folder("startup") as tmp:
        names = ["coffee-spot"] if args.quick else harness.examples()
        cases = [("--help", storyboard_argv("--help"))]
        cases += [("validate", storyboard_argv("validate", str(harness.copy_example(n, Path(tmp))))) for n in names]
        for kind, argv in cases:
            measured = harness.median_of(runs, lambda argv=argv: harness.run_process(argv))
            heavy, total_ms, slowest = imported(argv)
            unneeded = sorted(set(heavy) & NOT_NEEDED[kind])
            loaded = ", ".join(f"{name} {ms:.0f} ms" for name, ms in sorted(heavy.items(), key=lambda kv: -kv[1]))
            label = f"storyboard {kind}" + (f" {Path(argv[-1]).name}" if kind == "validate" else "")
            report.add(label, harness.shell_text(argv), measured,
                       figure=f"{measured.wall - bare.wall:.2f} s over bare python; imports {total_ms:.0f} ms: {loaded}",
                       goal=f"no {'/'.join(sorted(NOT_NEEDED[kind]))}", met=not unneeded,
                       notes=f"loads but does not need: {', '.join(unneeded) or 'nothing'}; slowest packages: "
                             + ", ".join(f"{name} {ms:.0f} ms" for name, ms in slowest))
    report.finish(args.json)


if __name__ == "__main__":
    main()
