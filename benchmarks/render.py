"""Render-engine throughput against the fake Kling: does bounded concurrency keep Kling's slots busy?

N requests, each task taking a fixed latency (the fake finishes a task after ``latency / poll``
queries and the engine polls every ``poll`` seconds), concurrency C. The ideal wall time is
ceil(N/C) x latency; the printed ratio says how close the engine gets. Also printed: creates (must
equal N), polls per task, and the CPU time the whole process spends per task (engine, client, fake,
clip verification).

Run: .venv/bin/python benchmarks/render.py [--n 60] [--concurrency 4] [--latency 0.5] [--poll 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_engine import make_plan, t2v  # noqa: E402

from storyboard.render import engine  # noqa: E402
from storyboard.render.providers.kling import KlingCredentials, KlingProvider  # noqa: E402
from tests.fakes.kling import FakeKling  # noqa: E402


async def run_once(n: int, concurrency: int, latency: float, poll: float) -> dict:
    polls_to_finish = max(1, round(latency / poll) + 1)  # first poll is immediate, then one per interval
    fake = FakeKling(polls_to_finish=polls_to_finish)
    plan = make_plan([t2v(i) for i in range(n)])
    credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)
    provider = KlingProvider(credentials, transport=fake.transport())
    with tempfile.TemporaryDirectory() as folder:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            result = await engine.render(plan, Path(folder), provider, concurrency=concurrency,
                                         poll_initial=poll, poll_max=poll)
        finally:
            await provider.aclose()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert result.ok, (result.failed, result.skipped)
    return {"wall": wall, "cpu": cpu, "creates": sum(fake.creates.values()),
            "polls": sum(fake.polls.values()), "charged": fake.charged_units}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds a task runs on the fake")
    parser.add_argument("--poll", type=float, default=0.05, help="engine poll interval in seconds")
    args = parser.parse_args()
    asyncio.run(run_once(2, 2, args.poll, args.poll))  # warm up: the fake's cached video, imports
    print(f"N={args.n} latency={args.latency}s poll={args.poll}s")
    print(f"{'C':>3} {'wall s':>8} {'ideal s':>8} {'ratio':>6} {'creates':>8} {'polls/task':>10} {'cpu ms/task':>12}")
    for concurrency in args.concurrency:
        numbers = asyncio.run(run_once(args.n, concurrency, args.latency, args.poll))
        ideal = math.ceil(args.n / concurrency) * args.latency
        print(f"{concurrency:>3} {numbers['wall']:>8.2f} {ideal:>8.2f} {numbers['wall'] / ideal:>6.2f} "
              f"{numbers['creates']:>8} {numbers['polls'] / args.n:>10.1f} {numbers['cpu'] / args.n * 1000:>12.1f}")


if __name__ == "__main__":
    main()
