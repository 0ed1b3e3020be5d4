"""``storyboard campaign plan|render|assemble|run``: one storyboard, many variants, one budget.

Why a sub-app: a campaign runs the ordinary pipeline per variant, but its questions differ (which
variants, which requests are shared, what the whole campaign costs), so its commands sit together
under ``campaign`` and reuse the engine, the journal and the assembler unchanged.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from storyboard import pipeline as pipelines
from storyboard.cli import app, console, err_console, user_errors
from storyboard.errors import Problem
from storyboard.load.campaign import load_campaign, merge_variant_problems
from storyboard.plan import UNIT_PRICE_USD
from storyboard.plan import sharing as campaigns
from storyboard.render import engine

campaign_app = typer.Typer(
    name="campaign",
    help="Campaigns: expand campaign.yaml into storyboard variants, share identical requests, render on one budget.",
    no_args_is_help=True,
)
app.add_typer(campaign_app, name="campaign")

CampaignArgument = typer.Argument(..., help="A campaign folder (with campaign.yaml) or a campaign file.")
VariantOption = typer.Option(None, "--variant", "-v", help="Only this variant id (repeatable); default: all.")


def _plan(path: Path, only: list[str] | None) -> campaigns.CampaignPlan:
    loaded = load_campaign(path)
    return campaigns.plan_campaign(loaded, only=only or None)


def _print_problems(problems: list[Problem]) -> None:
    for problem in merge_variant_problems(problems):
        style = "red" if problem.severity == "error" else "yellow"
        err_console.print(str(problem), style=style, markup=False)


def _report_invalid(cplan: campaigns.CampaignPlan) -> None:
    """Every problem of every variant, merged (one line per finding, with the variants it hits)."""
    problems = [p for item in cplan.variants for p in item.problems]
    _print_problems(problems)
    for item in cplan.failed:
        err_console.print(f"variant {item.variant.id} is invalid: it is left out", style="red", markup=False)


def _money(units: float, free: bool = False) -> str:
    return "free" if free else f"${units * UNIT_PRICE_USD:.2f}"


def print_campaign_plan(cplan: campaigns.CampaignPlan) -> None:
    """Variants, their requests and what is shared, then the distinct requests and the totals."""
    table = Table(title=f"Campaign {cplan.campaign.campaign.name}: variants")
    for column in ("variant", "requests", "rendered here", "shared", "reframed", "alone $", "adds $"):
        table.add_column(column, justify="right" if column not in ("variant",) else "left")
    for item in cplan.variants:
        vid = item.variant.id
        if not item.ok:
            table.add_row(vid, "invalid", "", "", "", "", "", style="red")
            continue
        uses = cplan.uses[vid]
        cost = cplan.cost(vid)
        table.add_row(
            vid,
            str(len(uses)),
            str(sum(1 for u in uses if not u.shared)),
            str(sum(1 for u in uses if u.shared)),
            str(sum(1 for u in uses if u.reframed_from)),
            f"{cost['usd_before']:.2f}",
            f"{cost['usd_after']:.2f}",
        )
    console.print(table)

    requests = Table(title="Distinct requests (each rendered once for the whole campaign)")
    for column in ("request", "shots", "endpoint / model", "ratio", "seconds", "units", "$", "used by"):
        requests.add_column(column, justify="right" if column in ("seconds", "units", "$", "used by") else "left")
    for use in cplan.distinct:
        request = use.request
        requests.add_row(
            f"{use.owner}/{request.id}",
            ", ".join(piece.shot_id for piece in request.shots),
            f"{request.endpoint.rsplit('/', 1)[-1]} / {request.model} {request.mode}" + (" +sound" if request.sound else ""),
            request.aspect_ratio,
            str(request.duration),
            f"{request.units:g}",
            f"{request.usd:.2f}",
            str(len(cplan.variants_using(request.key))),
        )
    console.print(requests)
    for item in cplan.variants:
        if not item.ok:
            continue
        notes = [f"{u.request.id} {u.note()}" for u in cplan.uses[item.variant.id] if u.note()]
        if notes:
            console.print(f"  {item.variant.id}: " + "; ".join(notes), markup=False)
    total = cplan.cost()
    uses = sum(len(u) for u in cplan.uses.values())
    console.print(
        f"Total: {len(cplan.variants)} variant(s), {uses} request(s) planned, {len(cplan.distinct)} distinct "
        f"({uses - len(cplan.distinct)} shared): {total['units_before']:g} units (${total['usd_before']:.2f}) one by one, "
        f"{total['units_after']:g} units (${total['usd_after']:.2f}) for the campaign. Nothing has been spent.",
        markup=False,
    )


@campaign_app.command("plan")
@user_errors
def plan_command(
    path: Path = CampaignArgument,
    as_json: bool = typer.Option(False, "--json", help="Print variants, requests, sharing and costs as JSON."),
    variant: list[str] = VariantOption,
) -> None:
    """Plan every variant, share identical requests, and price the campaign (spends nothing)."""
    started = time.perf_counter()
    cplan = _plan(path, variant)
    if as_json:
        print(json.dumps(cplan.to_json(), indent=2, ensure_ascii=False))
    else:
        advisories = [p for item in cplan.variants if item.ok for p in item.problems]
        _print_problems(advisories)
        print_campaign_plan(cplan)
        err_console.print(f"planned in {time.perf_counter() - started:.2f} s", style="dim", markup=False)
    if not cplan.ok:
        if not as_json:
            _report_invalid(cplan)
        raise typer.Exit(1)


class _CampaignProgress:
    """A bar over the distinct requests (a terminal) or one line per state change (logs)."""

    FINAL = ("done", "reused", "failed", "skipped")

    def __init__(self, total: int) -> None:
        self.total = total
        self.finished: set[str] = set()
        self.states: dict[str, str] = {}
        self.progress: Progress | None = None
        self.task = None

    def __call__(self, event: engine.RenderEvent) -> None:
        previous = self.states.get(event.request_id)
        self.states[event.request_id] = event.state
        if event.state in self.FINAL:
            self.finished.add(event.request_id)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=len(self.finished),
                                 description=f"rendering ({event.units:g} units spent)")
        elif event.state != previous:
            note = f"  {event.message}" if event.message else ""
            console.print(f"{event.request_id}: {event.state} ({event.elapsed:.0f}s, {event.units:g} units){note}", markup=False)


def _render(cplan: campaigns.CampaignPlan, provider: str | None, yes: bool, max_cost: str | None,
            concurrency: int) -> tuple[pipelines.CampaignRender, str]:
    from storyboard.cli.render import confirm_spend, parse_max_cost, pick_provider
    from storyboard.render.providers import open_provider

    project_dir = cplan.campaign.project_dir
    budget = parse_max_cost(max_cost)
    name = pick_provider(provider, project_dir)
    rows = engine.preview_plan(cplan.combined_plan(), project_dir, name)
    console.print(f"{len(rows)} distinct request(s) for {len(cplan.variants)} variant(s)", markup=False)
    confirm_spend(rows, engine.is_free(name), yes, budget, what="this campaign render")
    the_provider = open_provider(name, project_dir)
    progress = _CampaignProgress(len(cplan.distinct))

    async def run() -> pipelines.CampaignRender:
        try:
            return await pipelines.render_campaign(cplan, the_provider, concurrency=concurrency,
                                                   max_cost_units=budget, events=progress)
        finally:
            await the_provider.aclose()

    if console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            progress.progress = bar
            progress.task = bar.add_task("rendering", total=len(cplan.distinct))
            rendered = asyncio.run(run())
    else:
        rendered = asyncio.run(run())
    result = rendered.result
    free = engine.is_free(name)
    console.print(
        f"{len(result.done)} rendered, {len(result.reused)} reused, {len(result.failed)} failed, {len(result.skipped)} skipped; "
        f"spent {'nothing (preview)' if free else f'{result.units_spent:g} units (${result.units_spent * UNIT_PRICE_USD:.2f})'}",
        markup=False,
    )
    if result.fatal:
        err_console.print(f"stopped: {result.fatal}", style="bold red", markup=False)
    return rendered, name


def _print_outcomes(outcomes: dict[str, pipelines.VariantOutcome], project_dir: Path) -> None:
    table = Table(title="Variants")
    for column in ("variant", "status", "files / reason"):
        table.add_column(column)
    for vid, outcome in outcomes.items():
        style = {"failed": "red", "invalid": "red", "incomplete": "yellow"}.get(outcome.status)
        if outcome.cuts:
            detail = ", ".join(f"{cut.video.name} {cut.duration:.2f}s" for cut in outcome.cuts)
        else:
            detail = outcome.reason or ""
        table.add_row(vid, outcome.status, detail, style=style)
    console.print(table)


def _rendered_provider(cplan: campaigns.CampaignPlan, wanted: str | None) -> str:
    """The clips to cut: the provider asked for, else one whose clips are all there, else the default."""
    from storyboard.cli.assemble import complete_provider

    return complete_provider(
        cplan.campaign.project_dir, wanted,
        lambda name: len(pipelines.rendered_clips(cplan, name)) == len(cplan.distinct),
    )


def _assemble(cplan: campaigns.CampaignPlan, provider_name: str, only: list[str] | None,
              skip: dict[str, pipelines.VariantOutcome] | None = None) -> dict[str, pipelines.VariantOutcome]:
    skip = skip or {}
    wanted = [item.variant.id for item in cplan.variants if item.variant.id not in skip and (not only or item.variant.id in only)]
    total = len(wanted)
    done = 0

    def report(outcome: pipelines.VariantOutcome) -> None:
        nonlocal done
        done += 1
        what = ", ".join(f"{cut.video.name} {cut.duration:.2f}s" for cut in outcome.cuts) or (outcome.reason or "")
        console.print(f"[{done}/{total}] {outcome.variant_id}: {outcome.status} {what}", markup=False)

    outcomes = pipelines.assemble_campaign(cplan, provider_name, only=wanted, on_variant=report) if wanted else {}
    merged = {vid: skip.get(vid) or outcomes.get(vid) for vid in [item.variant.id for item in cplan.variants]}
    return {vid: outcome for vid, outcome in merged.items() if outcome is not None}


def _finish(cplan: campaigns.CampaignPlan, outcomes: dict[str, pipelines.VariantOutcome], provider_name: str) -> None:
    page = pipelines.write_review(cplan, outcomes, provider_name)
    _print_outcomes(outcomes, cplan.campaign.project_dir)
    console.print(f"review page: {page}", markup=False)
    bad = [o for o in outcomes.values() if o.status in ("failed", "invalid", "incomplete")]
    if bad:
        err_console.print(f"{len(bad)} variant(s) not finished: see the reasons above; the others are complete",
                          style="red", markup=False)
        raise typer.Exit(1)


ProviderOption = typer.Option(None, "--provider", help="kling or preview (default: kling if credentials are set).")
YesOption = typer.Option(False, "--yes", "-y", help="Spend without asking.")
MaxCostOption = typer.Option(None, "--max-cost", help="Hard budget for the whole campaign: 50u (units) or $7.00.")
ConcurrencyOption = typer.Option(2, "--concurrency", min=1, max=32, help="Kling tasks in flight at once, campaign-wide.")


@campaign_app.command("render")
@user_errors
def render_command(
    path: Path = CampaignArgument,
    provider: str | None = ProviderOption,
    yes: bool = YesOption,
    max_cost: str | None = MaxCostOption,
    concurrency: int = ConcurrencyOption,
    variant: list[str] = VariantOption,
) -> None:
    """Render the campaign's distinct requests once each, variant by variant, on one budget."""
    cplan = _plan(path, variant)
    if not cplan.ok:
        _report_invalid(cplan)
    rendered, _ = _render(cplan, provider, yes, max_cost, concurrency)
    _print_outcomes(rendered.outcomes, cplan.campaign.project_dir)
    if any(o.status != "rendered" for o in rendered.outcomes.values()):
        err_console.print("run the same command again to retry only what failed: nothing rendered is paid twice", markup=False)
        raise typer.Exit(1)


@campaign_app.command("assemble")
@user_errors
def assemble_command(
    path: Path = CampaignArgument,
    provider: str | None = typer.Option(None, "--provider", help="Cut the clips of this provider (kling|preview)."),
    variant: list[str] = VariantOption,
) -> None:
    """Cut every rendered variant into out/<variant-id>/ and write the review page out/index.html."""
    cplan = _plan(path, variant)
    if not cplan.ok:
        _report_invalid(cplan)
    name = _rendered_provider(cplan, provider)
    outcomes = _assemble(cplan, name, variant or None)
    _finish(cplan, outcomes, name)


@campaign_app.command("run")
@user_errors
def run_command(
    path: Path = CampaignArgument,
    provider: str | None = ProviderOption,
    yes: bool = YesOption,
    max_cost: str | None = MaxCostOption,
    concurrency: int = ConcurrencyOption,
    variant: list[str] = VariantOption,
) -> None:
    """Plan, render and assemble the campaign, then write the review page (free preview without Kling keys)."""
    cplan = _plan(path, variant)
    if not cplan.ok:
        _report_invalid(cplan)
    rendered, name = _render(cplan, provider, yes, max_cost, concurrency)
    not_rendered = {vid: o for vid, o in rendered.outcomes.items() if o.status != "rendered"}
    outcomes = _assemble(cplan, name, variant or None, skip=not_rendered)
    _finish(cplan, outcomes, name)


