"""``storyboard journal …``: commands on a project's journal (``repair``).

Why a group: the journal is the record of what was paid; commands that read or rebuild it belong
together, apart from ``render`` and ``status``. ``repair`` rebuilds a damaged or lost journal from
the clip cache and the tasks on the account (``render/repair.py``) and never pays for anything.
Heavy modules (the pipeline, the Kling client) are imported inside the command (start-up rule).
"""

from __future__ import annotations

from pathlib import Path

import typer

from storyboard.cli import app, console, user_errors

journal_app = typer.Typer(name="journal", help="The project's journal: what was rendered and paid.",
                          no_args_is_help=True)
app.add_typer(journal_app, name="journal")


@journal_app.command("repair")
@user_errors
def repair(
    path: Path = typer.Argument(..., help="A project folder (with storyboard.yaml), a storyboard or a campaign file."),
    provider: str | None = typer.Option(None, "--provider",
                                        help="kling or preview (default: kling if credentials are set)."),
) -> None:
    """Rebuild the journal from the clips in the cache and the tasks on the account; pays for nothing."""
    from storyboard import pipeline
    from storyboard.cli.project import print_advisories

    if pipeline.is_campaign(path):
        work = pipeline.load_campaign(path)
    else:
        work, problems = pipeline.load_project(path)
        print_advisories(problems)
    from storyboard.render.repair import describe

    report = pipeline.run_sync(pipeline.repair_journal_async(work, provider=provider))
    for line in describe(report):
        console.print(line, markup=False)
    if report.unchecked:
        raise typer.Exit(1)
