"""``storyboard campaign plan|render|assemble|run``: one storyboard, many variants, one budget.

Why a sub-app: a campaign runs the ordinary pipeline per variant, but its questions differ (which
variants, which requests are shared, what the whole campaign costs), so its commands sit together
under ``campaign`` and reuse the engine, the journal and the assembler unchanged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from storyboard.cli import app, console, err_console, user_errors
from storyboard.cli.render import (
    DeadlineOption,
    PartialOption,
    ProviderOption,
    Reporter,
    YesOption,
    confirmer,
    parse_deadline,
    parse_max_cost,
)

if TYPE_CHECKING:  # the commands import what they use: --help stays light (issue 13)
    from storyboard import pipeline as pipelines
    from storyboard.errors import Problem
    from storyboard.plan import sharing as campaigns

campaign_app = typer.Typer(
    name="campaign",
    help="Campaigns: expand campaign.yaml into storyboard variants, share identical requests, render on one budget.",
    no_args_is_help=True,
)
app.add_typer(campaign_app, name="campaign")

CampaignArgument = typer.Argument(..., help="A campaign folder (with campaign.yaml) or a campaign file.")
VariantOption = typer.Option(None, "--variant", "-v", help="Only this variant id (repeatable); default: all.")


def _plan(path: Path, only: list[str] | None) -> campaigns.CampaignPlan:
    from storyboard.load.campaign import load_campaign
    from storyboard.plan import sharing as campaigns

    loaded = load_campaign(path)
    return campaigns.plan_campaign(loaded, only=only or None)


def _print_problems(problems: list[Problem]) -> None:
    from storyboard.load.campaign import merge_variant_problems

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
    from storyboard.plan import UNIT_PRICE_USD

    return "free" if free else f"${units * UNIT_PRICE_USD:.2f}"


def print_campaign_plan(cplan: campaigns.CampaignPlan) -> None:
    """Variants, their requests and what is shared, then the distinct requests and the totals."""
    from rich.table import Table

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
    planned = sum(len(u) for u in cplan.uses.values())
    console.print(
        f"Total: {len(cplan.variants)} variant(s), {planned} request(s) planned, {len(cplan.distinct)} distinct "
        f"({planned - len(cplan.distinct)} shared): {total['units_before']:g} units (${total['usd_before']:.2f}) one by one, "
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


def _work(cplan: campaigns.CampaignPlan) -> pipelines.Work:
    from storyboard import pipeline as pipelines

    return pipelines.campaign_work(cplan)


def _reporter(work: pipelines.Work, spots: int) -> Reporter:
    reporter = Reporter(table=False, spots_total=spots)
    reporter.root = work.out_root
    return reporter


def _print_outcomes(outcomes: dict[str, pipelines.VariantOutcome]) -> None:
    from rich.table import Table

    table = Table(title="Variants")
    for column in ("variant", "status", "clips", "files / reason"):
        table.add_column(column)
    for vid, outcome in outcomes.items():
        style = {"failed": "red", "invalid": "red", "incomplete": "yellow"}.get(outcome.status)
        if outcome.cuts:
            detail = ", ".join(f"{cut.video.name} {cut.duration:.2f}s" + (" (unchanged)" if cut.unchanged else "")
                               for cut in outcome.cuts)
        else:
            detail = outcome.reason or ""
        table.add_row(vid, outcome.status, outcome.provider, detail, style=style)
    console.print(table)


def _finish(outcomes: dict[str, pipelines.VariantOutcome]) -> None:
    _print_outcomes(outcomes)
    bad = [o for o in outcomes.values() if o.status in ("failed", "invalid", "incomplete")]
    if bad:
        err_console.print(f"{len(bad)} variant(s) not finished: see the reasons above; the others are complete",
                          style="red", markup=False)
        raise typer.Exit(1)


MaxCostOption = typer.Option(None, "--max-cost", help="Hard budget for the whole campaign: 50u (units) or $7.00; "
                             "refused up front if the campaign needs more.")
ConcurrencyOption = typer.Option(2, "--concurrency", min=1, max=32, help="Kling tasks in flight at once, campaign-wide.")


@campaign_app.command("render")
@user_errors
def render_command(
    path: Path = CampaignArgument,
    provider: str | None = ProviderOption,
    yes: bool = YesOption,
    max_cost: str | None = MaxCostOption,
    partial: bool = PartialOption,
    concurrency: int = ConcurrencyOption,
    variant: list[str] = VariantOption,
    deadline: str | None = DeadlineOption,
) -> None:
    """Render the campaign's distinct requests once each, variant by variant, on one budget."""
    from storyboard import pipeline as pipelines

    budget = parse_max_cost(max_cost)
    seconds = parse_deadline(deadline)
    cplan = _plan(path, variant)
    if not cplan.ok:
        _report_invalid(cplan)
    work = _work(cplan)
    console.print(f"{len(work.requests)} distinct request(s) for {len(cplan.variants)} variant(s)", markup=False)
    reporter = _reporter(work, len(work.spots))
    try:
        rendered = pipelines.run_sync(pipelines.render_async(
            work, provider=provider, max_cost=budget, partial=partial,
            confirm=confirmer(yes, "this campaign render"), on_event=reporter, concurrency=concurrency, deadline=seconds))
    finally:
        reporter.close()
    _print_outcomes(rendered.outcomes)
    if any(o.status != "rendered" for o in rendered.outcomes.values()) or rendered.quote.left_out:
        err_console.print("run the same command again to retry only what failed: nothing rendered is paid twice", markup=False)
        raise typer.Exit(1)


@campaign_app.command("assemble")
@user_errors
def assemble_command(
    path: Path = CampaignArgument,
    provider: str | None = typer.Option(None, "--provider", help="Cut the clips of this provider (kling|preview); "
                                        "default: Kling's where they are all there, else the preview's."),
    variant: list[str] = VariantOption,
) -> None:
    """Cut every rendered variant into out/<variant-id>/ (Kling) or out/preview/<variant-id>/, with review pages."""
    from storyboard import pipeline as pipelines

    cplan = _plan(path, variant)
    if not cplan.ok:
        _report_invalid(cplan)
    work = _work(cplan)
    reporter = _reporter(work, len(work.spots))
    try:
        outcomes = pipelines.assemble(work, provider=provider, only_spots=variant or None, on_event=reporter)
    finally:
        reporter.close()
    default = pipelines.choose_provider(provider, work).provider
    for page in pipelines.write_reviews(cplan, outcomes, default):
        console.print(f"review page: {page}", markup=False)
    _finish(outcomes)


@campaign_app.command("run")
@user_errors
def run_command(
    path: Path = CampaignArgument,
    provider: str | None = ProviderOption,
    yes: bool = YesOption,
    max_cost: str | None = MaxCostOption,
    partial: bool = PartialOption,
    concurrency: int = ConcurrencyOption,
    variant: list[str] = VariantOption,
    deadline: str | None = DeadlineOption,
) -> None:
    """Plan, render and assemble the campaign, then write the review page (free preview without Kling keys)."""
    from storyboard import pipeline as pipelines

    budget = parse_max_cost(max_cost)
    seconds = parse_deadline(deadline)
    cplan = _plan(path, variant)
    if not cplan.ok:
        _report_invalid(cplan)
    work = _work(cplan)
    reporter = _reporter(work, len(work.spots))
    try:
        outcome = pipelines.run_sync(pipelines.run_async(
            work, provider=provider, max_cost=budget, partial=partial, confirm=confirmer(yes, "this campaign run"),
            on_event=reporter, concurrency=concurrency, deadline=seconds))
    finally:
        reporter.close()
    _finish(outcome.outcomes)
    if outcome.render is not None and outcome.render.quote.left_out:
        raise typer.Exit(1)
