"""Commands that make finished files: ``assemble`` (cuts from rendered clips) and ``run`` (all stages).

Both go through ``pipeline``: a cut is made from one provider's clips, paid clips first; preview
cuts go to ``out/preview/``; an output whose inputs did not change is left as it is.
"""

from __future__ import annotations

from pathlib import Path

import typer

from storyboard.cli import app, console, user_errors
from storyboard.cli.project import PathArgument, print_advisories
from storyboard.cli.render import (
    ConcurrencyOption,
    DeadlineOption,
    LiveReporter,
    MaxCostOption,
    PartialOption,
    ProviderOption,
    Reporter,
    YesOption,
    confirmer,
    parse_deadline,
    parse_max_cost,
)


@app.command()
@user_errors
def assemble(
    path: Path = PathArgument,
    output: list[str] = typer.Option(None, "--output", help="Only this output (repeatable); default: all."),
    provider: str | None = typer.Option(None, "--provider", help="Cut the clips of this provider (kling|preview); "
                                        "default: Kling's when they are all there, else the preview's."),
    force: bool = typer.Option(False, "--force", help="Rewrite outputs even when nothing they are made from changed."),
) -> None:
    """Assemble the declared cuts from rendered clips: out/ (Kling clips) or out/preview/ (previews)."""
    from storyboard import pipeline

    work, problems = pipeline.load_project(path)
    print_advisories(problems)
    reporter = Reporter()
    reporter.root = work.out_root
    try:
        outcomes = pipeline.assemble(work, provider=provider, only_outputs=output or None, on_event=reporter, force=force)
    finally:
        reporter.close()
    made = outcomes.get("")
    if made is not None and made.cuts:  # the project's review page, beside the cuts
        console.print(f"review page: {reporter._shown(pipeline.write_project_review(work, made, made.provider))}", markup=False)


@app.command()
@user_errors
def run(
    path: Path = PathArgument,
    provider: str | None = ProviderOption,
    yes: bool = YesOption,
    max_cost: str | None = MaxCostOption,
    partial: bool = PartialOption,
    concurrency: int = ConcurrencyOption,
    deadline: str | None = DeadlineOption,
) -> None:
    """Validate, plan, render and assemble in one command (free preview when no Kling keys are set;
    Kling clips already all rendered are cut as they are, with no keys needed)."""
    from storyboard import pipeline

    budget = parse_max_cost(max_cost)
    seconds = parse_deadline(deadline)
    work, problems = pipeline.load_project(path)
    print_advisories(problems)
    reporter = LiveReporter()
    reporter.root = work.out_root
    try:
        outcome = pipeline.run_sync(pipeline.run_async(
            work, provider=provider, max_cost=budget, partial=partial, confirm=confirmer(yes, "this run"),
            on_event=reporter, concurrency=concurrency, deadline=seconds))
    finally:
        reporter.close()
    if not outcome.ok:
        raise typer.Exit(1)
