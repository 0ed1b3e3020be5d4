"""``storyboard review apply review.json [PATH]``: re-take exactly what the client rejected.

Why its own command group: the review loop runs on a project or a campaign alike, and its only
input is the file the review page exports. Heavy modules (the pipeline, PyAV, httpx) are imported
inside the command, so ``storyboard --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import typer

from storyboard.cli import app, console, err_console, user_errors

review_app = typer.Typer(help="The review loop: apply a review.json exported from the review page.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("apply")
@user_errors
def apply_command(
    review_file: Path = typer.Argument(..., help="The review.json exported from the review page."),
    path: Path = typer.Argument(Path("."), help="The project or campaign the page was made from (default: here)."),
    provider: str | None = typer.Option(None, "--provider", help="kling or preview (default: kling if credentials are set)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Spend without asking."),
    max_cost: str | None = typer.Option(None, "--max-cost", help="Hard budget: 20u (units) or $2.80."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, max=32, help="Kling tasks in flight at once."),
) -> None:
    """Record the verdicts, re-take the rejected shots (and those chained from them), render, reassemble,
    and rewrite the review page with the new takes next to the old ones. Approved shots are never rendered again."""
    from storyboard import pipeline
    from storyboard.cli.render import LiveReporter, confirmer, money, parse_max_cost, plan_table

    budget = parse_max_cost(max_cost)
    ask = confirmer(yes, "this re-take")

    def confirm(quote: pipeline.Quote) -> bool:
        console.print(plan_table(quote))
        return ask(quote)

    reporter = LiveReporter()
    try:
        outcome = pipeline.run_sync(pipeline.review_apply_async(
            path, review_file, provider=provider, max_cost=budget, confirm=confirm, on_event=reporter,
            concurrency=concurrency))
    finally:
        reporter.close()
    console.print(f"{outcome.recorded} verdict(s) recorded", markup=False)
    for note in outcome.ignored:
        err_console.print(f"not re-taken: {note}", style="yellow", markup=False)
    if not outcome.retakes:
        console.print("nothing rejected: no shot rendered again", markup=False)
    for retake in outcome.retakes:
        where = f"{retake.spot}/" if retake.spot else ""
        cost = money(retake.request.units)
        console.print(f"re-take {where}{retake.request.id} take {retake.request.take}: {retake.reason} ({cost})", markup=False)
    if outcome.run is not None:
        if outcome.run.review_page is not None:
            console.print(f"review page: {outcome.run.review_page}", markup=False)
        if not outcome.run.ok:
            raise typer.Exit(1)
