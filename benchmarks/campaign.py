"""Benchmark: a 120-variant campaign (10 products x 3 aspect ratios x 4 languages).

Measures, in one run on this machine:

* baseline: loading, checking and planning the base storyboard alone (one variant's worth of work);
* expansion: reading the campaign file and building the 120 merged variant documents;
* planning: validating and planning all 120 variants and sharing their requests;
* rendering the combined plan against the fake Kling (``tests/fakes/kling.py``, in-process
  transport, no sleeping), checking that creates == distinct request keys.

Run: ``.venv/bin/python benchmarks/campaign.py`` (prints seconds and ratios against the baseline).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402

from storyboard.load import loader  # noqa: E402
from storyboard.load.campaign import load_campaign  # noqa: E402
from storyboard.pipeline import render_campaign  # noqa: E402
from storyboard.plan import planner  # noqa: E402
from storyboard.plan.sharing import plan_campaign  # noqa: E402
from storyboard.render.providers.kling import KlingCredentials, KlingProvider  # noqa: E402
from tests.fakes.kling import FakeKling  # noqa: E402

PRODUCTS = 10
RATIOS = ["16:9", "9:16", "1:1"]
LANGUAGES = {"en": "Good morning", "de": "Guten Morgen", "fr": "Bonjour", "es": "Buenos días"}

def write_project(folder: Path) -> Path:
    return harness.write_campaign(folder, PRODUCTS, RATIOS, LANGUAGES)


def best_of(runs: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_project(Path(tmp) / "bench")

        def baseline():
            loaded = loader.load(folder / "storyboard.yaml")
            planner.check(loaded)
            return planner.plan(loaded)

        base_s, _ = best_of(5, baseline)
        expand_s, campaign = best_of(3, lambda: load_campaign(folder))
        plan_s, cplan = best_of(3, lambda: plan_campaign(campaign))
        variants = len(cplan.variants)
        uses = sum(len(u) for u in cplan.uses.values())
        assert variants == PRODUCTS * len(RATIOS) * len(LANGUAGES) and cplan.ok
        print(f"variants: {variants}, requests planned: {uses}, distinct: {len(cplan.distinct)}")
        print(f"baseline (one storyboard: load+check+plan): {base_s * 1000:.1f} ms")
        print(f"expand campaign file into {variants} variants: {expand_s * 1000:.1f} ms ({expand_s / base_s:.1f}x baseline)")
        print(f"plan {variants} variants + sharing:          {plan_s:.2f} s ({plan_s / base_s:.1f}x baseline, "
              f"{plan_s / variants * 1000:.1f} ms per variant = {plan_s / variants / base_s:.2f}x baseline)")
        cost = cplan.cost()
        print(f"cost: ${cost['usd_before']:.2f} one by one -> ${cost['usd_after']:.2f} shared")

        fake = FakeKling(polls_to_finish=2)
        credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)

        async def go():
            provider = KlingProvider(credentials, transport=fake.transport(), sleep=no_sleep)
            try:
                return await render_campaign(cplan, provider, concurrency=8, sleep=no_sleep)
            finally:
                await provider.aclose()

        started = time.perf_counter()
        rendered = asyncio.run(go())
        render_s = time.perf_counter() - started
        creates = sum(fake.creates.values())
        print(f"render against fake Kling: {render_s:.2f} s, creates {creates} == distinct keys {len(cplan.distinct)}: "
              f"{creates == len(cplan.distinct)}; charged {fake.charged_units:g} units; "
              f"{sum(1 for o in rendered.outcomes.values() if o.status == 'rendered')}/{variants} variants rendered")
        if creates != len(cplan.distinct):
            raise SystemExit("creates differ from distinct keys")


if __name__ == "__main__":
    main()
