"""Commands that render (and may spend): ``render``, and ``status`` that reports from the journal.

Why the confirmation rules: Kling bills per generated second. ``render`` shows what it will reuse
(=), resume (~) and newly pay for (+) with the price, and asks before spending; ``--yes`` skips the
question, and without a terminal to ask in (CI, a pipe) it refuses to spend rather than guess. The
free preview provider never asks. A ``--max-cost`` that cannot cover what is still to pay is
refused by the pipeline before the question (``--partial`` renders what fits), so the question
never offers to spend when nothing fits.

This module also holds ``Reporter``, the one drawer of pipeline events for every command.
"""

from __future__ import annotations

import re
import sys
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from storyboard.cli import app, console, err_console, user_errors
from storyboard.errors import UserError

if TYPE_CHECKING:  # the commands import what they use: --help stays light (issue 13)
    from rich.live import Live
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from storyboard import pipeline
    from storyboard.render import engine

PathArgument = typer.Argument(..., help="A project folder (with storyboard.yaml) or a storyboard file.")

MARKERS = {"reuse": "=", "resume": "~", "create": "+"}
COST_PATTERN = re.compile(r"^\s*(?:(?P<usd>\$\s*\d+(?:\.\d+)?)|(?P<units>\d+(?:\.\d+)?)\s*(?:u|units?)?)\s*$", re.IGNORECASE)

ProviderOption = typer.Option(None, "--provider", help="kling or preview (default: kling if credentials are set).")
YesOption = typer.Option(False, "--yes", "-y", help="Spend without asking.")
MaxCostOption = typer.Option(None, "--max-cost", help="Hard budget: 20u (units) or $2.80; refused up front if the plan needs more.")
PartialOption = typer.Option(False, "--partial", help="With --max-cost: render what fits, in cut order, and name the shots left out.")
ConcurrencyOption = typer.Option(2, "--concurrency", min=1, max=32, help="Kling tasks in flight at once.")
DeadlineOption = typer.Option(None, "--deadline", help="Stop the whole run after this long (90s, 20m, 2h) for "
                              "unattended runs; clips rendered are kept and the next run resumes the rest.")
DEADLINE_PATTERN = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|m|min|h)?\s*$", re.IGNORECASE)
DEADLINE_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_deadline(text: str | None) -> float | None:
    """``90s``/``90`` → 90 seconds, ``20m`` → 1200, ``2h`` → 7200; None when not given."""
    if text is None:
        return None
    match = DEADLINE_PATTERN.match(text)
    if not match or float(match.group("amount")) <= 0:
        raise UserError(f"--deadline {text!r} is not a duration", hint="write seconds, minutes or hours: 90s, 20m, 2h")
    return float(match.group("amount")) * DEADLINE_UNITS[(match.group("unit") or "s").lower()]


def parse_max_cost(text: str | None) -> float | None:
    """``5u``/``5 units``/``5`` → 5 units; ``$2.50`` → units at $0.14 each (rounded down, never over)."""
    if text is None:
        return None
    match = COST_PATTERN.match(text)
    if not match:
        raise UserError(f"--max-cost {text!r} is not a cost", hint="write units like 5u or dollars like $2.50")
    if match.group("usd"):
        from storyboard.plan import UNIT_PRICE_USD

        dollars = Decimal(match.group("usd").lstrip("$").strip())
        return float((dollars / Decimal(str(UNIT_PRICE_USD))).quantize(Decimal("0.001"), rounding=ROUND_DOWN))
    return float(match.group("units"))


def money(units: float) -> str:
    from storyboard.plan import UNIT_PRICE_USD

    return f"{units:g} units (${units * UNIT_PRICE_USD:.2f})"


def can_ask() -> bool:
    """Is there a person at a terminal to answer the spend question? (Tests stand in for one.)"""
    return sys.stdin.isatty()


def confirmer(yes: bool, what: str) -> pipeline.Confirm:
    """The pipeline's spend question, answered by ``--yes``, the terminal, or a refusal without one."""

    def confirm(quote: pipeline.Quote) -> bool:
        if yes:
            return True
        if not can_ask():
            raise UserError(f"{what} would spend up to {money(quote.to_spend)} and there is no terminal to confirm it; "
                            "nothing was sent", hint="pass --yes to spend without asking (add --max-cost to cap it)")
        if typer.confirm(f"Spend up to {money(quote.to_spend)} on Kling?", default=False):
            return True
        err_console.print("nothing was sent", markup=False)
        raise typer.Exit(1)

    return confirm


def plan_table(quote: pipeline.Quote) -> Table:
    from rich.table import Table

    from storyboard.plan import UNIT_PRICE_USD

    table = Table(title="Render plan (= reuse, ~ resume, + new, - left out)", show_lines=False)
    for column in ("", "request", "model", "mode", "seconds", "units", "USD"):
        table.add_column(column, justify="right" if column in ("seconds", "units", "USD") else "left")
    for row in quote.rows:
        request = row.request
        shown = "free" if quote.free else f"{row.units:g}"
        usd = "" if quote.free else f"${row.units * UNIT_PRICE_USD:.2f}"
        marker = MARKERS[row.decision] if row.included else "-"
        table.add_row(marker, request.id, request.model, request.mode, str(request.duration), shown, usd)
    return table


class Reporter:
    """Draws pipeline events: a live table or bars on a terminal, one line per change elsewhere.

    Why one class for every command: ``render``, ``assemble``, ``run`` and the campaign commands
    show the same facts (what a render reuses and pays, whose clips a cut holds, what was left
    unchanged), so they must say them the same way.
    """

    def __init__(self, *, table: bool = True, spots_total: int = 0) -> None:
        self.show_table = table
        self.rows: dict[str, list[Any]] = {}
        self.units = 0.0
        self.live: Live | None = None
        self.bars: Progress | None = None
        self.bar_of: dict[tuple[str, str], TaskID] = {}
        self.spots_total = spots_total
        self.spots_done = 0
        self.root: Path | None = None

    # ---- the render table ------------------------------------------------------------------

    def progress_table(self) -> Table:
        from rich.table import Table

        table = Table(show_header=True, box=None)
        for column in ("request", "state", "elapsed", "note"):
            table.add_column(column)
        for request_id, (state, elapsed, note) in self.rows.items():
            table.add_row(request_id, state, f"{elapsed:5.0f}s", note[:80])
        table.caption = f"spent so far: {money(self.units)}"
        return table

    def __call__(self, event: pipeline.Event) -> None:
        from storyboard import pipeline

        if isinstance(event, pipeline.ProviderChosen):
            if event.fallback:
                err_console.print(
                    "no Kling credentials found: rendering free previews. To render with Kling, set KLINGAI_ACCESS_KEY "
                    "and KLINGAI_SECRET_KEY (or KLINGAI_API_KEY) in the environment or in the project's .env, "
                    "or pass --provider kling.", style="yellow", markup=False)
        elif isinstance(event, pipeline.PaidClipsUsed):
            what = "every clip" if event.spots == ("",) else f"every clip of {', '.join(event.spots)}"
            console.print(f"{what} is rendered on {event.provider}: cutting those (no keys needed, nothing rendered)",
                          markup=False)
        elif isinstance(event, pipeline.RenderQuoted):
            self._quoted(event.quote)
        elif isinstance(event, pipeline.RequestProgress):
            self._progress(event.event)
        elif isinstance(event, pipeline.RenderFinished):
            self._finished(event)
        elif isinstance(event, pipeline.CutProgress):
            self._cut_progress(event)
        elif isinstance(event, pipeline.CutWritten):
            self._cut_written(event)
        elif isinstance(event, pipeline.SpotFinished):
            self._spot_finished(event.outcome)
        elif isinstance(event, pipeline.ReviewWritten):
            console.print(f"review page: {self._shown(event.page)}", markup=False)

    def _quoted(self, quote: pipeline.Quote) -> None:
        if not quote.rows:
            return
        self.rows = {row.request.id: ["queued", 0.0, ""] for row in quote.rows if row.included}
        if self.show_table:
            console.print(plan_table(quote))
        spend = "free (preview)" if quote.free else f"up to {money(quote.to_spend)} to spend"
        console.print(f"{quote.count('reuse')} reused, {quote.count('resume')} resumed, {quote.count('create')} new; "
                      + spend + ("" if quote.budget is None else f"; budget {quote.budget:g} units"), markup=False)
        if quote.left_out:
            err_console.print(f"--partial: {money(quote.needed)} still to pay, {money(quote.to_spend)} fits; "
                              f"left out: {', '.join(quote.left_out)}", style="yellow", markup=False)

    def _progress(self, event: engine.RenderEvent) -> None:
        previous = self.rows.get(event.request_id, [None])[0]
        self.rows[event.request_id] = [event.state, event.elapsed, event.message]
        self.units = event.units
        if self.live is not None:
            self.live.update(self.progress_table())
        elif event.state != previous:
            note = f"  {event.message}" if event.message else ""
            console.print(f"{event.request_id}: {event.state} ({event.elapsed:.0f}s, {event.units:g} units){note}",
                          markup=False)

    def _finished(self, event: pipeline.RenderFinished) -> None:
        self.stop_live()
        result = event.result
        if not (result.done or result.reused or result.failed or result.skipped or event.left_out):
            return  # nothing was asked of the provider (every spot is cut from paid clips)
        cost = "free" if event.free else money(result.units_spent)
        console.print(f"{len(result.done)} rendered, {len(result.reused)} reused, {len(result.failed)} failed, "
                      f"{len(result.skipped)} skipped; spent {cost}"
                      + (f" (+{result.units_resumed:g} units for tasks an earlier run submitted)"
                         if result.units_resumed else ""), markup=False)
        for line in result.cloned_voices:
            console.print(line, markup=False)
        for request_id, reason in result.failed:
            err_console.print(f"failed {request_id}: {reason}", style="red", markup=False)
        for request_id, reason in result.skipped:
            err_console.print(f"skipped {request_id}: {reason}", style="yellow", markup=False)
        if event.left_out:
            err_console.print(f"left out (over --max-cost): {', '.join(event.left_out)}", style="yellow", markup=False)
        if result.fatal:
            err_console.print(f"stopped: {result.fatal}", style="bold red", markup=False)
        if not result.ok:
            err_console.print("run the same command again to retry only what failed or was skipped", markup=False)

    # ---- cuts ------------------------------------------------------------------------------

    def _cut_progress(self, event: pipeline.CutProgress) -> None:
        if not err_console.is_terminal:
            return
        if self.bars is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TimeElapsedColumn(), console=err_console, transient=True)
            self.bars.start()
        label = f"{event.spot}/{event.cut}" if event.spot else event.cut
        task = self.bar_of.get((event.spot, event.cut))
        if task is None:
            task = self.bar_of[(event.spot, event.cut)] = self.bars.add_task(label, total=1)
        self.bars.update(task, description=f"{label}: {event.stage}", completed=event.done, total=max(event.total, 1))

    def _shown(self, path: Path) -> str:
        if self.root is not None:
            try:
                return str(path.relative_to(self.root))
            except ValueError:
                pass
        return str(path)

    def _cut_written(self, event: pipeline.CutWritten) -> None:
        self.stop_bars()
        cut = event.cut
        what = f"{cut.provider} clips, {cut.frames} frames, {cut.duration:.2f} s"
        how = "unchanged (nothing it is made from changed)" if cut.unchanged else f"{cut.path_taken} in {cut.seconds:.1f} s"
        console.print(f"{self._shown(cut.video)}: {what}, {how}", markup=False)
        for note in cut.notes:
            console.print(f"  {note}", markup=False)

    def _spot_finished(self, outcome: pipeline.VariantOutcome) -> None:
        if not outcome.variant_id:
            return
        self.spots_done += 1
        what = ", ".join(f"{cut.video.name} {cut.duration:.2f}s" for cut in outcome.cuts) or (outcome.reason or "")
        total = f"/{self.spots_total}" if self.spots_total else ""
        console.print(f"[{self.spots_done}{total}] {outcome.variant_id}: {outcome.status} {what}", markup=False)

    # ---- terminals ---------------------------------------------------------------------------

    def stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def stop_bars(self) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None
            self.bar_of.clear()

    def start_live(self) -> None:
        if console.is_terminal and self.live is None:
            from rich.live import Live

            self.live = Live(self.progress_table(), console=console, refresh_per_second=4)
            self.live.start()

    def close(self) -> None:
        self.stop_live()
        self.stop_bars()


class LiveReporter(Reporter):
    """A Reporter that opens the live request table once the quote is shown (terminals only)."""

    def __call__(self, event: pipeline.Event) -> None:
        from storyboard import pipeline

        super().__call__(event)
        if isinstance(event, pipeline.RenderQuoted) and event.quote.rows:
            self.start_live()


@app.command()
@user_errors
def render(
    path: Path = PathArgument,
    provider: str | None = ProviderOption,
    yes: bool = YesOption,
    max_cost: str | None = MaxCostOption,
    partial: bool = PartialOption,
    concurrency: int = ConcurrencyOption,
    deadline: str | None = DeadlineOption,
) -> None:
    """Render every request of the plan (resuming earlier runs); asks before spending money."""
    from storyboard import pipeline
    from storyboard.cli.project import print_advisories

    budget = parse_max_cost(max_cost)
    seconds = parse_deadline(deadline)
    work, problems = pipeline.load_project(path)
    print_advisories(problems)
    reporter = LiveReporter()
    try:
        outcome = pipeline.run_sync(pipeline.render_async(
            work, provider=provider, max_cost=budget, partial=partial, confirm=confirmer(yes, "this render"),
            on_event=reporter, concurrency=concurrency, deadline=seconds))
    finally:
        reporter.close()
    if not outcome.ok:
        raise typer.Exit(1)


@app.command()
@user_errors
def status(
    path: Path = typer.Argument(Path("."), help="A project folder (with storyboard.yaml) or a storyboard file."),
    account: bool = typer.Option(False, "--account", help="What the account spent (shared journal): by project "
                                 "and by person, today and in all, and the daily cap."),
) -> None:
    """What is rendered, running, failed, and what it cost, from the project's journal."""
    from rich.table import Table

    from storyboard.load.loader import find_storyboard
    from storyboard.plan import UNIT_PRICE_USD
    from storyboard.render.journal import Journal, journal_exists

    file = find_storyboard(path)
    project_dir = file.parent
    if not journal_exists(project_dir):
        console.print(f"nothing rendered yet in {project_dir} (no journal)", markup=False)
        return
    if account:
        from storyboard.cli.journal import print_account

        with Journal.open(project_dir) as journal:
            print_account(journal)
        return
    with Journal.open(project_dir) as journal:
        mine = journal.project if journal.shared else None  # a shared journal holds the whole team's rows
        records = journal.records(project=mine)
        runs = journal.runs(project=mine)
        charged = sum((r.units or 0.0) + r.prior_units for r in records) if mine else journal.units_charged()
        cloned = journal.element_voices()
        where = f" (shared journal {journal.store.location}, project {mine})" if mine else ""
    table = Table(title=f"Journal of {project_dir}{where}")
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
    for provider, reference, voice in cloned:
        console.print(f"{provider}: {voice.shown(reference)}", markup=False)
