"""Commands that make finished files: ``assemble`` (cuts from rendered clips) and ``run`` (all stages)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from storyboard.assemble import timeline
from storyboard.assemble.video import write_cut
from storyboard.cli import app, console, err_console, user_errors
from storyboard.cli.project import PathArgument, load_and_check, print_advisories
from storyboard.errors import UserError
from storyboard.load.loader import LoadedStoryboard
from storyboard.plan import Plan, planner
from storyboard.render import engine
from storyboard.render.journal import task_facts
from storyboard.render.providers import PROVIDER_NAMES, choose_provider_name
from storyboard.workspace import Workspace


def complete_provider(project_dir: Path, wanted: str | None, is_complete) -> str:
    """Which provider's clips to cut: the one asked for, else the first whose clips are all
    rendered (``is_complete(name)``), else the one a render would use."""
    if wanted:
        return choose_provider_name(wanted, project_dir)
    for name in PROVIDER_NAMES:
        if is_complete(name):
            return name
    return choose_provider_name(None, project_dir)


def rendered_provider(project_dir: Path, plan: Plan, wanted: str | None) -> str:
    return complete_provider(
        project_dir, wanted, lambda name: len(engine.rendered_clips(project_dir, name, plan.requests)) == len(plan.requests)
    )


def assemble_project(loaded: LoadedStoryboard, plan: Plan, provider_name: str, only: list[str] | None) -> list[Path]:
    """Build every requested cut of the project into ``out/``; return the files written.

    Why files are written beside each cut (SRT, OTIO, contact sheet): editors finish cuts in their
    NLE, and reviewers look at a contact sheet before they press play.
    """
    project_dir = loaded.project_dir
    clips = engine.rendered_clips(project_dir, provider_name, plan.requests)
    timelines = timeline.build_timelines(loaded, plan, clips, only=only)
    out_dir = Workspace.at(project_dir).out_dir
    out_dir.mkdir(exist_ok=True)
    work_dir = Workspace.at(project_dir).assemble_work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    task_ids, charged = task_facts(project_dir, provider_name)
    written: list[Path] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:
        for cut in timelines:
            task = progress.add_task(f"assembling {cut.name}", total=1)

            def advance(stage: str, done: int, total: int, _task=task, _name=cut.name) -> None:
                progress.update(_task, description=f"{_name}: {stage}", completed=done, total=max(total, 1))

            files = write_cut(cut, out_dir, work_dir=work_dir, task_ids=task_ids, costs=charged, progress=advance)
            progress.update(task, completed=1, total=1)
            report, video = files.report, files.video
            written += [f for f in (files.video, files.subtitles, files.timeline, files.edl, files.contact_sheet) if f]
            console.print(
                f"{video.relative_to(project_dir)}: {report.frames} frames, {report.duration:.2f} s, "
                f"{report.path_taken} in {report.seconds:.1f} s",
                markup=False,
            )
            for note in report.notes:
                console.print(f"  {note}", markup=False)
    return written


@app.command()
@user_errors
def assemble(
    path: Path = PathArgument,
    output: list[str] = typer.Option(None, "--output", help="Only this output (repeatable); default: all."),
    provider: str | None = typer.Option(None, "--provider", help="Cut the clips of this provider (kling|preview)."),
) -> None:
    """Assemble the declared cuts from rendered clips into PATH/out/."""
    loaded, problems = load_and_check(path)
    print_advisories(problems)
    the_plan = planner.plan(loaded)
    name = rendered_provider(loaded.project_dir, the_plan, provider)
    assemble_project(loaded, the_plan, name, output or None)


@app.command()
@user_errors
def run(
    path: Path = PathArgument,
    provider: str | None = typer.Option(None, "--provider", help="kling or preview (default: kling if keys are set)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Spend without asking (Kling)."),
    max_cost: str | None = typer.Option(None, "--max-cost", help="Hard budget: 20u (units) or $2.80 (dollars)."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, max=32, help="Kling tasks in flight at once."),
) -> None:
    """Validate, plan, render and assemble in one command (free preview when no Kling keys are set)."""
    from storyboard.cli.render import render_project

    loaded, problems = load_and_check(path)
    print_advisories(problems)
    the_plan = planner.plan(loaded)
    result = render_project(loaded, the_plan, provider=provider, yes=yes, max_cost=max_cost, concurrency=concurrency)
    if not result.ok:
        raise UserError(
            "not every clip is rendered, so no cut was assembled",
            "fix what failed above and run again: clips already rendered are kept and not paid again",
        )
    assemble_project(loaded, the_plan, result.provider, None)
