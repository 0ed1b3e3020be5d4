"""Commands that read a storyboard and spend nothing: ``validate``, ``plan``, ``schema``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from storyboard.cli import app, console, err_console, user_errors

if TYPE_CHECKING:  # the commands import what they use: --help stays light (issue 13)
    from rich.table import Table

    from storyboard.errors import Problem
    from storyboard.plan import Plan

PathArgument = typer.Argument(..., help="A project folder (with storyboard.yaml) or a storyboard file.")


def print_advisories(problems: list[Problem]) -> None:
    """Advisories go to stderr, sorted, so a script reading stdout sees only the result."""
    for problem in sorted(problems, key=lambda p: (p.location, p.message)):
        err_console.print(str(problem), style="yellow", markup=False)


@app.command()
@user_errors
def validate(path: Path = PathArgument) -> None:
    """Check a storyboard: YAML, references, images, what the Kling model can do, templates.

    Exit 0 when valid (advisories may be printed), 1 when not, with every problem as
    file:line:col: path: message.
    """
    from storyboard import pipeline

    loaded, _plan, problems = pipeline.check(path)
    print_advisories(problems)
    storyboard = loaded.storyboard
    console.print(
        f"valid: {loaded.file} — {len(storyboard.shots)} shot(s), {len(storyboard.references)} reference(s)"
        + (f", {len(problems)} advisory(ies)" if problems else ""),
        markup=False,
    )


def plan_table(plan: Plan) -> Table:
    """The plan as a human reads it: one row per paid request, then the decisions behind them."""
    from rich.table import Table

    table = Table(title=f"Plan for {plan.project}", show_lines=False)
    table.add_column("request")
    table.add_column("shots")
    table.add_column("endpoint / model")
    table.add_column("seconds", justify="right")
    table.add_column("units", justify="right")
    table.add_column("$", justify="right")
    for request in plan.requests:
        table.add_row(
            request.id + (f" (take {request.take})" if request.take > 1 else ""),
            ", ".join(piece.shot_id for piece in request.shots),
            f"{request.api} API {request.endpoint.lstrip('/').removeprefix('v1/videos/')} / {request.model} {request.mode}"
            + (" +sound" if request.sound else ""),
            str(request.duration),
            f"{request.units:g}",
            f"{request.usd:.2f}",
        )
    return table


def print_plan(plan: Plan) -> None:
    console.print(plan_table(plan))
    for request in plan.requests:
        for note in request.notes:
            console.print(f"  {request.id}: {note}", markup=False)
    for note in plan.notes:
        console.print(f"  {note}", markup=False)
    if plan.outside_files:
        console.print(f"Uploaded from outside the project folder ({len(plan.outside_files)}): "
                      + ", ".join(plan.outside_files), style="yellow", markup=False)
    seconds = sum(r.duration for r in plan.requests)
    console.print(
        f"Total: {len(plan.requests)} request(s), {seconds} s rendered, "
        f"{plan.units:g} units (${plan.usd:.2f}). Nothing has been spent.",
        markup=False,
    )


@app.command("plan")
@user_errors
def plan_command(
    path: Path = PathArgument,
    as_json: bool = typer.Option(False, "--json", help="Print the full plan with request bodies as JSON."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the JSON plan to this file."),
) -> None:
    """Compile the storyboard into the exact Kling requests, priced, like `terraform plan`."""
    from storyboard import pipeline
    from storyboard.plan import planner

    started = time.perf_counter()
    _loaded, the_plan, problems = pipeline.check(path)
    the_plan = pipeline.plan_at_takes(_loaded, the_plan)  # re-takes shown with their cost
    document = planner.plan_to_json(the_plan)
    if output is not None:
        output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if as_json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return
    print_advisories(problems)
    print_plan(the_plan)
    err_console.print(f"planned in {time.perf_counter() - started:.2f} s", style="dim", markup=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of storyboard.yaml (for editor autocompletion)."""
    from storyboard.load.spec import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
