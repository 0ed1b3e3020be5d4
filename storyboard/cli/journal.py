"""``storyboard journal …``: the journal itself, shared or not (copy it to a team's server, cap the account).

Why a group: the journal is the record of what the account paid; moving it to a shared PostgreSQL
server (``migrate``), capping what the account spends a day (``budget``) and rebuilding a damaged
or lost one from the clip cache and the account (``repair``, which never pays) are operations on
that record, not on a storyboard, so they sit together here. Light at import: the journal modules are imported in the commands.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from storyboard.cli import app, console, user_errors
from storyboard.errors import UserError

if TYPE_CHECKING:
    from storyboard.render.journal import Journal

journal_app = typer.Typer(
    name="journal",
    help="The render journal: copy it to a shared PostgreSQL journal, set the account's daily cap.",
    no_args_is_help=True,
)
app.add_typer(journal_app, name="journal")

FolderArgument = typer.Argument(Path("."), help="A project folder (or its storyboard file, or a journal.sqlite).")


def _local_journal_file(path: Path) -> Path:
    """The SQLite journal ``path`` names: the file itself, or the ``.storyboard/journal.sqlite`` of the
    folder (or of the storyboard's folder)."""
    from storyboard.workspace import Workspace

    if path.is_file() and path.suffix in (".sqlite", ".db"):
        return path
    folder = path if path.is_dir() else path.parent
    candidate = Workspace.at(folder).journal_file
    if candidate.is_file():
        return candidate
    if path.is_dir():
        from storyboard.load.loader import find_storyboard

        try:
            in_storyboard_folder: Path | None = Workspace.at(find_storyboard(path).parent).journal_file
        except UserError:
            in_storyboard_folder = None
        if in_storyboard_folder is not None and in_storyboard_folder.is_file():
            return in_storyboard_folder
    raise UserError(f"no local journal in {path} (no .storyboard/journal.sqlite)",
                    hint="name the project folder whose renders you want to copy, or its journal.sqlite")


def _project_folder(path: Path) -> Path:
    """The folder whose settings (``.env``) choose the journal: the storyboard's, else ``path`` itself."""
    if path.is_file():
        return path.parent
    try:
        from storyboard.load.loader import find_storyboard

        return find_storyboard(path).parent
    except UserError:
        return path


@journal_app.command("migrate")
@user_errors
def migrate(
    path: Path = FolderArgument,
    to: str = typer.Option(..., "--to", help="The shared journal: postgresql://user@host:port/database"),
) -> None:
    """Copy a project's SQLite journal into a shared one, row for row; run it again and it adds nothing."""
    from storyboard.render.journal import Journal, project_label
    from storyboard.render.journal_postgres import is_postgres_url, redact

    if not is_postgres_url(to):
        raise UserError(f"--to {to.split('://')[0]}://… is not a PostgreSQL URL",
                        hint="write postgresql://user@host:port/database")
    source_file = _local_journal_file(path)
    project_dir = source_file.parent.parent
    label = project_label(project_dir)
    with Journal(source_file, project=label) as source, Journal.at_url(to, project=label) as target:
        copied = source.copy_into(target)
        totals = {table: target.count(table) for table in copied}
    console.print(f"copied {source_file} into {redact(to)} (project {label}):", markup=False)
    for table, (read, added) in copied.items():
        console.print(f"  {table}: {read} read, {added} added; {totals[table]} in the shared journal", markup=False)
    console.print("nothing was lost: the local journal is unchanged. Set STORYBOARD_JOURNAL to the URL (environment "
                  "or the project's .env) to render against the shared journal.", markup=False)


@journal_app.command("budget")
@user_errors
def budget(
    path: Path = FolderArgument,
    daily: str | None = typer.Option(None, "--daily", help="The account's cap per UTC day: 200u (units) or $28."),
    clear: bool = typer.Option(False, "--clear", help="Remove the daily cap."),
) -> None:
    """Show or set the account's daily cap, checked by every claim on this journal (every machine)."""
    from storyboard.cli.render import parse_max_cost
    from storyboard.render.journal import Journal

    if daily is not None and clear:
        raise UserError("--daily and --clear contradict each other", hint="give one of them")
    with Journal.open(_project_folder(path)) as journal:
        if clear:
            journal.set_daily_budget(None)
        elif daily is not None:
            try:
                units = parse_max_cost(daily)
            except UserError as error:
                raise UserError(str(error).replace("--max-cost", "--daily"), hint=error.hint) from None
            journal.set_daily_budget(units)
        _print_budget(journal)


def _print_budget(journal: Journal) -> None:
    from storyboard.plan import UNIT_PRICE_USD

    cap = journal.daily_budget()
    spent = journal.spent_today()
    where = journal.store.location
    if cap is None:
        console.print(f"no daily cap on {where}; {spent:g} units spent or reserved today (UTC)", markup=False)
    else:
        console.print(f"daily cap {cap:g} units (${cap * UNIT_PRICE_USD:.2f}) on {where}; {spent:g} spent or reserved "
                      f"today (UTC), {max(0.0, cap - spent):g} left", markup=False)


def print_account(journal: Journal) -> None:
    """``status --account``: the ledger by project and person, today and in all, and the cap."""
    from rich.table import Table

    from storyboard.plan import UNIT_PRICE_USD

    today = time.strftime("%Y-%m-%d", time.gmtime())
    for title, day in ((f"The account today ({today} UTC)", today), ("The account, all days", None)):
        rows = journal.spending(day)
        table = Table(title=title)
        for column in ("project", "person", "charged", "reserved", "attempts"):
            table.add_column(column)
        for row in rows:
            table.add_row(row.project, row.user_name, f"{row.charged:g}", f"{row.reserved:g}", str(row.attempts))
        total = sum(r.charged for r in rows)
        table.add_row("all", "", f"{total:g} (${total * UNIT_PRICE_USD:.2f})", f"{sum(r.reserved for r in rows):g}",
                      str(sum(r.attempts for r in rows)))
        console.print(table)
    _print_budget(journal)


@journal_app.command("repair")
@user_errors
def repair(
    path: Path = typer.Argument(..., help="A project folder (with storyboard.yaml), a storyboard or a campaign file."),
    provider: str | None = typer.Option(None, "--provider",
                                        help="kling or preview (default: kling if credentials are set)."),
) -> None:
    """Rebuild the journal from the clips in the cache and the tasks on the account; pays for nothing.

    Why it never pays: clips in the cache are matched to the plan by their keys, and every other
    request is looked up on the account by its external ids and adopted (``render/repair.py``).
    """
    from storyboard import pipeline
    from storyboard.cli.project import print_advisories
    from storyboard.render.repair import describe

    if pipeline.is_campaign(path):
        work = pipeline.load_campaign(path)
    else:
        work, problems = pipeline.load_project(path)
        print_advisories(problems)
    report = pipeline.run_sync(pipeline.repair_journal_async(work, provider=provider))
    for line in describe(report):
        console.print(line, markup=False)
    if report.unchecked:
        raise typer.Exit(1)
