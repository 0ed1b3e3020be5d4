"""``storyboard init [PATH]``: a starter project that validates, plans and runs as written.

What it writes (and never overwrites):

* ``storyboard.yaml``: a short, commented storyboard (two shots from one photograph, a title, an
  end card) whose first line is ``# yaml-language-server: $schema=storyboard.schema.json``;
* ``storyboard.schema.json``: the JSON Schema of the installed storyboard, beside the file.
  Why a copy rather than the schema's ``$id`` URL: the ``$id`` names the schema but nothing is
  served there, and a relative path into a source checkout breaks as soon as the project lives
  elsewhere. A copy next to the file works wherever the project is, offline, and describes
  exactly the version that will read it;
* ``refs/rocket.jpg`` and ``refs/LICENSES.md``: a public-domain photograph shipped in the package,
  with its credit, so the starter renders on the free preview provider straight away;
* ``.gitignore``: the workspace's generated folders (journal, clip cache, cuts).

Nothing is written when any of these files exists already: the command names them and stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import typer

from storyboard.cli import app, console, user_errors
from storyboard.errors import UserError
from storyboard.workspace import OUT_DIR, STATE_DIR

STARTER = "starter"
"""The package folder holding the starter storyboard and its image."""
NAME_PLACEHOLDER = "__NAME__"


@dataclass(frozen=True)
class StarterFile:
    """One file of the starter project: where it goes and its bytes."""

    relative: str
    content: bytes


def starter_files(project_name: str) -> list[StarterFile]:
    """The files ``init`` writes for a project called ``project_name``."""
    from storyboard.load.schema import STORYBOARD_SCHEMA_FILE, schema_text, storyboard_schema

    starter: Traversable = resources.files("storyboard") / STARTER
    storyboard_text = (starter / "storyboard.yaml").read_text(encoding="utf-8")
    # a JSON string is a valid YAML double-quoted scalar: any folder name stays one value
    storyboard_text = storyboard_text.replace(NAME_PLACEHOLDER, json.dumps(project_name, ensure_ascii=False))
    gitignore = (
        "# written by storyboard init: what storyboard generates in this folder\n"
        f"{STATE_DIR}/\n{OUT_DIR}/\n.env\n"
    )
    return [
        StarterFile("storyboard.yaml", storyboard_text.encode("utf-8")),
        StarterFile(STORYBOARD_SCHEMA_FILE, schema_text(storyboard_schema()).encode("utf-8")),
        StarterFile("refs/rocket.jpg", (starter / "refs" / "rocket.jpg").read_bytes()),
        StarterFile("refs/LICENSES.md", (starter / "refs" / "LICENSES.md").read_bytes()),
        StarterFile(".gitignore", gitignore.encode("utf-8")),
    ]


def write_starter(folder: Path) -> list[Path]:
    """Write the starter project into ``folder`` (created if missing); return the files written.

    Raises ``UserError`` before writing anything when ``folder`` is a file or would have a file
    replaced: a starter must never cost a user their own storyboard.
    """
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder", "give a folder for the new project: storyboard init my-spot")
    name = folder.resolve().name or "storyboard"
    files = starter_files(name)
    existing = [folder / f.relative for f in files if (folder / f.relative).exists()]
    if existing:
        raise UserError(
            f"not overwriting {', '.join(str(path) for path in existing)}",
            "run storyboard init in a new or empty folder, or move these files away first",
        )
    written = []
    for file in files:
        target = folder / file.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as handle:  # "x": a file that appeared meanwhile is still not replaced
            handle.write(file.content)
        written.append(target)
    return written


@app.command()
@user_errors
def init(
    path: Path = typer.Argument(Path("."), help="Folder of the new project; created if missing. Default: here."),
) -> None:
    """Write a starter project: storyboard.yaml, its JSON Schema, a sample image, a .gitignore."""
    for target in write_starter(path):
        console.print(f"wrote {target}", markup=False)
    shown = str(path)
    console.print(
        f"next: storyboard validate {shown}   (then: storyboard plan {shown}, storyboard run {shown})",
        markup=False,
    )
