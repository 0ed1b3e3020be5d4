"""An unchanged `storyboard run` (the second run, everything already rendered and cut) against
`storyboard validate` on the same project, for every example, on the preview provider.

Why: a rerun that changes nothing should cost what checking the storyboard costs; issue 13's
goal is within 1 s of ``validate``. Both are timed as processes in the same run; the first
``run`` (which renders the animatic and writes the cuts) is reported as set-up.

    .venv/bin/python benchmarks/rerun.py [--quick] [--runs 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import harness
from harness import Report, storyboard_argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.common_arguments(parser)
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    report = Report("unchanged storyboard run vs validate (preview provider)")
    harness.warm_up()
    print(harness.machine_line())
    names = ["cat-boards"] if args.quick else harness.examples()
    with harness.bench_folder("rerun") as tmp:
        for name in names:
            project = harness.copy_example(name, Path(tmp))
            run = storyboard_argv("run", str(project), "--provider", "preview")
            first = harness.run_process(run)
            report.add(f"setup: first run {name}", harness.shell_text(run), first)
            validate = storyboard_argv("validate", str(project))
            checked = harness.median_of(runs, lambda validate=validate: harness.run_process(validate))
            report.add(f"validate {name}", harness.shell_text(validate), checked)
            again = harness.median_of(runs, lambda run=run: harness.run_process(run))
            report.add(f"unchanged run {name}", harness.shell_text(run), again,
                       figure=f"{again.wall - checked.wall:+.2f} s vs validate ({again.wall / checked.wall:.1f}x); "
                              f"CPU {again.cpu - checked.cpu:+.2f} s",
                       goal="<= validate + 1 s", met=again.wall <= checked.wall + 1.0)
    report.finish(args.json)


if __name__ == "__main__":
    main()
