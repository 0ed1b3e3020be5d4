"""Scale: big storyboards and campaigns through the CLI, and the render engine's own overhead.

Why: issue 13's goals are a 1,000-shot storyboard validated and planned in under 2 s, a
1,000-variant campaign planned in under 5 s and 500 MB, and a render engine adding under 50 ms of
its own CPU per request at N = 500 with a wall time within 1.1x of the ideal ceil(N/C) x latency.

* ``storyboard validate`` / ``storyboard plan`` on a generated 1,000-shot storyboard (processes);
* ``storyboard campaign plan`` on 10 products x 2 ratios x 50 languages = 1,000 variants (process,
  peak RSS of the tree);
* the engine in-process against the fake Kling with a fixed task latency (as benchmarks/render.py),
  N = 500, C = 20: wall / ideal, and CPU per request (engine, client and the fake together);
* ``storyboard render --provider kling`` as a process on a 500-shot per-shot storyboard against the
  fake on loopback (tasks finish at the first poll): wall, and the process's CPU per request (the
  fake runs in this benchmark's process, so it is not counted).

    .venv/bin/python benchmarks/scale.py [--quick]     # --quick: 200 shots, 200 variants, N = 100
"""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path

import harness
from harness import Report, storyboard_argv

LANGUAGE_NAMES = [f"l{n:02d}" for n in range(50)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.common_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds a task runs on the in-process fake")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    shots = 200 if args.quick else 1000
    languages = 10 if args.quick else 50
    n_requests = 100 if args.quick else 500
    report = Report("scale")
    harness.warm_up()
    print(harness.machine_line())
    with harness.bench_folder("scale") as tmp:
        folder = Path(tmp)

        board = harness.write_long_storyboard(folder / "long", shots)
        for command in ("validate", "plan"):
            argv = storyboard_argv(command, str(board))
            measured = harness.median_of(runs, lambda argv=argv: harness.run_process(argv))
            report.add(f"{command} a {shots}-shot storyboard", harness.shell_text(argv), measured,
                       figure=f"{measured.wall * 1000 / shots:.2f} ms per shot", goal="< 2 s",
                       met=measured.wall < 2.0)

        campaign = harness.write_campaign(folder / "campaign", 10, ["16:9", "9:16"],
                                          {code: f"Guten Morgen {code}" for code in LANGUAGE_NAMES[:languages]})
        variants = 10 * 2 * languages
        argv = storyboard_argv("campaign", "plan", str(campaign))
        measured = harness.median_of(runs, lambda: harness.run_process(argv))
        report.add(f"campaign plan, {variants} variants", harness.shell_text(argv), measured,
                   figure=f"{measured.wall * 1000 / variants:.1f} ms per variant", goal="< 5 s and < 500 MB",
                   met=measured.wall < 5.0 and measured.peak_mb < 500)

        import render as engine_bench  # benchmarks/render.py: the engine in-process against the fake

        asyncio.run(engine_bench.run_once(2, 2, 0.05, 0.05))  # warm up imports and the fake's video
        numbers = asyncio.run(engine_bench.run_once(n_requests, args.concurrency, args.latency, 0.05))
        ideal = math.ceil(n_requests / args.concurrency) * args.latency
        per_request_ms = numbers["cpu"] / n_requests * 1000
        report.add(f"engine in-process, N={n_requests} C={args.concurrency} latency {args.latency:g} s",
                   f"python benchmarks/render.py --n {n_requests} --concurrency {args.concurrency} "
                   f"--latency {args.latency:g}", harness.Measured(numbers["wall"], numbers["cpu"], 0.0),
                   figure=f"{numbers['wall'] / ideal:.3f}x ideal {ideal:.1f} s; {per_request_ms:.1f} ms CPU per request; "
                          f"creates {numbers['creates']}",
                   goal="<= 1.1x ideal, < 50 ms/request",
                   met=numbers["wall"] / ideal <= 1.1 and per_request_ms < 50 and numbers["creates"] == n_requests)

        many = harness.write_long_storyboard(folder / "render", n_requests, strategy="per_shot", image_every=0)
        with harness.fake_kling(polls_to_finish=1) as (fake, env):
            argv = storyboard_argv("render", str(many), "--provider", "kling", "--yes", "--concurrency",
                                   str(args.concurrency))
            measured = harness.run_process(argv, env=env)
            creates = sum(fake.creates.values())
        report.add(f"storyboard render, N={n_requests} C={args.concurrency} (fake, loopback)",
                   harness.shell_text(argv), measured,
                   figure=f"{measured.cpu / n_requests * 1000:.1f} ms CPU per request (process tree); "
                          f"{measured.wall / n_requests * 1000:.1f} ms wall per request; creates {creates}",
                   goal="< 50 ms CPU/request", met=measured.cpu / n_requests < 0.05 and creates == n_requests)
    report.finish(args.json)


if __name__ == "__main__":
    main()
