"""The command line: the only place that imports typer and rich.

Why a package: one module per group of commands (``project`` for validate/plan/schema,
``render`` for render/status, ``assemble`` for assemble/run, ``campaign``), each registering on the
one ``app`` below, so commands stay small and their owners do not collide. Every command turns
``UserError`` into a message on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from storyboard.errors import ProviderError, StoryboardInvalid, UserError, user_error_from_os

app = typer.Typer(
    name="storyboard",
    help="Multi-shot storyboards for Kling AI video: validate, plan, price, render, assemble.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def report_problems(error: StoryboardInvalid) -> None:
    """Print every problem as ``file:line:col: path: message`` (errors, then the advisories)."""
    for problem in error.problems:
        style = "red" if problem.severity == "error" else "yellow"
        err_console.print(str(problem), style=style, markup=False)
    errors = sum(1 for p in error.problems if p.severity == "error")
    advisories = len(error.problems) - errors
    err_console.print(f"{errors} error(s), {advisories} advisory(ies)", style="bold red", markup=False)


def user_errors(command: F) -> F:
    """Decorator: a user or provider error becomes a clear message and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except StoryboardInvalid as error:
            report_problems(error)
            raise typer.Exit(1) from None
        except (UserError, ProviderError) as error:
            err_console.print(f"error: {error}", style="red", markup=False)
            raise typer.Exit(1) from None
        except OSError as error:  # the disk: read-only, full, a file where a folder belongs (errors.py)
            err_console.print(f"error: {user_error_from_os(error)}", style="red", markup=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _register_commands() -> None:
    """Import the command modules (each registers on ``app``); missing ones are simply absent."""
    import importlib

    for name in ("project", "render", "assemble", "campaign", "init", "journal", "review"):
        try:
            importlib.import_module(f"storyboard.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"storyboard.cli.{name}":
                raise


def main() -> None:
    _register_commands()
    app(prog_name="storyboard")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
