"""Commands that render (and may spend): ``render``, and ``status`` that reports from the journal.

Why the confirmation rules: Kling bills per generated second. ``render`` shows what it will reuse
(=), resume (~) and newly pay for (+) with the price, and asks before spending; ``--yes`` skips the
question, and without a terminal to ask in (CI, a pipe) it refuses to spend rather than guess. The
free preview provider never asks.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from storyboard.cli import app, console, err_console, user_errors
from storyboard.errors import UserError
from storyboard.plan import UNIT_PRICE_USD
from storyboard.render import engine
from storyboard.render.journal import Journal, journal_path
from storyboard.render.providers import choose_provider_name, open_provider

PathArgument = typer.Argument(..., help="A project folder (with storyboard.yaml) or a storyboard file.")

MARKERS = {"reuse": "=", "resume": "~", "create": "+"}
COST_PATTERN = re.compile(r"^\s*(?:(?P<usd>\$\s*\d+(?:\.\d+)?)|(?P<units>\d+(?:\.\d+)?)\s*(?:u|units?)?)\s*$", re.IGNORECASE)


def parse_max_cost(text: str | None) -> float | None:
    """``5u``/``5 units``/``5`` → 5 units; ``$2.50`` → units at $0.14 each (rounded down, never over)."""
    if text is None:
        return None
    match = COST_PATTERN.match(text)
    if not match:
        raise UserError(f"--max-cost {text!r} is not a cost", hint="write units like 5u or dollars like $2.50")
    if match.group("usd"):
        dollars = Decimal(match.group("usd").lstrip("$").strip())
        return float((dollars / Decimal(str(UNIT_PRICE_USD))).quantize(Decimal("0.001"), rounding=ROUND_DOWN))
    return float(match.group("units"))


def pick_provider(requested: str | None, project_dir: Path) -> str:
    """The provider to render with; says so when it falls back to the free preview."""
    name = choose_provider_name(requested, project_dir)
    if requested is None and name == "preview":
        err_console.print(
            "no Kling credentials found: rendering free previews. To render with Kling, set KLINGAI_ACCESS_KEY "
            "and KLINGAI_SECRET_KEY (or KLINGAI_API_KEY) in the environment or in the project's .env, "
            "or pass --provider kling.", style="yellow", markup=False)
    return name


def confirm_spend(rows, free: bool, yes: bool, budget: float | None, *, what: str) -> None:
    """Print what will be reused, resumed and paid, and ask before spending (never without a terminal).

    ``rows`` are ``engine.preview_plan`` rows. Raises ``UserError`` (nothing sent) when money would
    be spent, ``--yes`` was not given and there is no terminal to ask in.
    """
    to_spend = sum(units for _, _, units in rows)
    counts = {d: sum(1 for _, decision, _ in rows if decision == d) for d in MARKERS}
    console.print(f"{counts['reuse']} reused, {counts['resume']} resumed, {counts['create']} new; "
                  + ("free (preview)" if free else f"up to {to_spend:g} units (${to_spend * UNIT_PRICE_USD:.2f}) to spend")
                  + ("" if budget is None else f"; budget {budget:g} units"), markup=False)
    if free or to_spend <= 0 or yes:
        return
    if not sys.stdin.isatty():
        raise UserError(f"{what} would spend up to {to_spend:g} units (${to_spend * UNIT_PRICE_USD:.2f}) "
                        "and there is no terminal to confirm it; nothing was sent",
                        hint="pass --yes to spend without asking (add --max-cost to cap it)")
    if not typer.confirm(f"Spend up to {to_spend:g} units (${to_spend * UNIT_PRICE_USD:.2f}) on Kling?", default=False):
        err_console.print("nothing was sent", markup=False)
        raise typer.Exit(1)


def _load_plan(path: Path):
    from storyboard.cli.project import load_and_check, print_advisories
    from storyboard.plan import planner

    loaded, problems = load_and_check(path)
    print_advisories(problems)
    return loaded, planner.plan(loaded)


def _plan_table(rows, free: bool) -> Table:
    table = Table(title="Render plan (= reuse, ~ resume, + new)", show_lines=False)
    for column in ("", "request", "model", "mode", "seconds", "units", "USD"):
        table.add_column(column, justify="right" if column in ("seconds", "units", "USD") else "left")
    for request, decision, units in rows:
        shown = "free" if free else f"{units:g}"
        usd = "" if free else f"${units * UNIT_PRICE_USD:.2f}"
        table.add_row(MARKERS[decision], request.id, request.model, request.mode, str(request.duration), shown, usd)
    return table


class _Progress:
    """One line per request: state, elapsed, running cost. A live table on a terminal, log lines elsewhere."""

    def __init__(self, requests) -> None:
        self.rows = {r.id: ["queued", 0.0, ""] for r in requests}
        self.units = 0.0
        self.live: Live | None = None

    def table(self) -> Table:
        table = Table(show_header=True, box=None)
        for column in ("request", "state", "elapsed", "note"):
            table.add_column(column)
        for request_id, (state, elapsed, note) in self.rows.items():
            table.add_row(request_id, state, f"{elapsed:5.0f}s", note[:80])
        table.caption = f"spent so far: {self.units:g} units (${self.units * UNIT_PRICE_USD:.2f})"
        return table

    def __call__(self, event: engine.RenderEvent) -> None:
        previous = self.rows.get(event.request_id, [None])[0]
        self.rows[event.request_id] = [event.state, event.elapsed, event.message]
        self.units = event.units
        if self.live is not None:
            self.live.update(self.table())
        elif event.state != previous:
            note = f"  {event.message}" if event.message else ""
            console.print(f"{event.request_id}: {event.state} ({event.elapsed:.0f}s, {event.units:g} units){note}",
                          markup=False)


def render_project(loaded, plan, *, provider: str | None, yes: bool, max_cost: str | None,
                   concurrency: int = 2) -> engine.RenderResult:
    """Show the render plan, confirm spending where needed, render, and print the summary.

    Shared by ``render`` and ``run`` so both follow the same confirmation and budget rules.
    """
    project_dir = loaded.project_dir
    budget = parse_max_cost(max_cost)
    name = pick_provider(provider, project_dir)
    free = engine.is_free(name)
    rows = engine.preview_plan(plan, project_dir, name)
    console.print(_plan_table(rows, free))
    confirm_spend(rows, free, yes, budget, what="this render")
    the_provider = open_provider(name, project_dir)
    progress = _Progress(plan.requests)

    async def run() -> engine.RenderResult:
        try:
            return await engine.render(plan, project_dir, the_provider, concurrency=concurrency,
                                       max_cost_units=budget, events=progress)
        finally:
            await the_provider.aclose()

    if console.is_terminal:
        with Live(progress.table(), console=console, refresh_per_second=4) as live:
            progress.live = live
            result = asyncio.run(run())
    else:
        result = asyncio.run(run())
    _summary(result, free)
    return result


@app.command()
@user_errors
def render(
    path: Path = PathArgument,
    provider: str | None = typer.Option(None, "--provider", help="kling or preview (default: kling if credentials are set)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Spend without asking."),
    max_cost: str | None = typer.Option(None, "--max-cost", help="Hard budget for this run: 5u (units) or $2.50."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, max=32, help="Kling tasks in flight at once."),
) -> None:
    """Render every request of the plan (resuming earlier runs); asks before spending money."""
    loaded, plan = _load_plan(path)
    result = render_project(loaded, plan, provider=provider, yes=yes, max_cost=max_cost, concurrency=concurrency)
    if not result.ok:
        raise typer.Exit(1)


def _summary(result: engine.RenderResult, free: bool) -> None:
    cost = "free" if free else f"{result.units_spent:g} units (${result.units_spent * UNIT_PRICE_USD:.2f})"
    console.print(f"{len(result.done)} rendered, {len(result.reused)} reused, {len(result.failed)} failed, "
                  f"{len(result.skipped)} skipped; spent {cost}"
                  + (f" (+{result.units_resumed:g} units for tasks an earlier run submitted)" if result.units_resumed else ""),
                  markup=False)
    for request_id, reason in result.failed:
        err_console.print(f"failed {request_id}: {reason}", style="red", markup=False)
    for request_id, reason in result.skipped:
        err_console.print(f"skipped {request_id}: {reason}", style="yellow", markup=False)
    if result.fatal:
        err_console.print(f"stopped: {result.fatal}", style="bold red", markup=False)
    if not result.ok:
        err_console.print("run the same command again to retry only what failed or was skipped", markup=False)


@app.command()
@user_errors
def status(path: Path = PathArgument) -> None:
    """What is rendered, running, failed, and what it cost, from the project's journal."""
    from storyboard.load.loader import find_storyboard

    file = find_storyboard(path)
    project_dir = file.parent
    if not journal_path(project_dir).is_file():
        console.print(f"nothing rendered yet in {project_dir} (no journal)", markup=False)
        return
    with Journal.open(project_dir) as journal:
        records = journal.records()
        runs = journal.runs()
        charged = journal.units_charged()
    table = Table(title=f"Journal of {project_dir}")
    for column in ("provider", "request", "state", "attempt", "task", "units", "note"):
        table.add_column(column)
    labels = {"downloaded": "rendered", "submitted": "running", "claimed": "unknown", "succeeded": "to download"}
    for record in records:
        clip_ok = record.state != "downloaded" or (record.clip_path and Path(record.clip_path).is_file())
        state = labels.get(record.state, record.state) + ("" if clip_ok else " (clip missing)")
        units = "" if record.units is None and not record.prior_units else f"{(record.units or 0) + record.prior_units:g}"
        table.add_row(record.provider, record.request_id, state, str(record.attempt), record.task_id or "",
                      units, (record.error or "")[:100])
    console.print(table)
    by_state: dict[str, int] = {}
    for record in records:
        by_state[labels.get(record.state, record.state)] = by_state.get(labels.get(record.state, record.state), 0) + 1
    console.print(", ".join(f"{n} {s}" for s, n in sorted(by_state.items())) or "no requests", markup=False)
    last = runs[-1] if runs else None
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.started_at)) if last else "never"
    console.print(f"{len(runs)} run(s), last {when} ({last.outcome or 'running or interrupted'} on {last.provider})"
                  if last else "no runs", markup=False)
    console.print(f"total charged: {charged:g} units (${charged * UNIT_PRICE_USD:.2f})", markup=False)
