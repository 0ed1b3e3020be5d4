"""``storyboard init``: a starter project that validates, plans and renders as written, whose
``$schema`` comment works wherever the folder lives, and that never replaces a user's file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from storyboard.load.schema import storyboard_schema
from storyboard.media import probe
from storyboard.workspace import Workspace

_register_commands()

SCHEMA_COMMENT = "# yaml-language-server: $schema="


def init(*args: str):
    return CliRunner().invoke(app, ["init", *args])


def schema_of(storyboard_file: Path) -> Path:
    """The file the editor comment on the first line points at, resolved as the YAML server does."""
    first = storyboard_file.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(SCHEMA_COMMENT), first
    return (storyboard_file.parent / first.removeprefix(SCHEMA_COMMENT)).resolve()


def test_init_writes_a_project_that_validates_and_plans(tmp_path):
    project = tmp_path / "my spot"
    result = init(str(project))
    assert result.exit_code == 0, result.output
    written = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert written == {"storyboard.yaml", "storyboard.schema.json", "refs/rocket.jpg", "refs/LICENSES.md", ".gitignore"}
    assert "storyboard validate" in result.output

    validated = CliRunner().invoke(app, ["validate", str(project)])
    assert validated.exit_code == 0, validated.output
    assert "valid:" in validated.output and "2 shot(s), 1 reference(s)" in validated.output
    planned = CliRunner().invoke(app, ["plan", str(project)])
    assert planned.exit_code == 0, planned.output
    assert "Nothing has been spent" in planned.output

    document = yaml.safe_load((project / "storyboard.yaml").read_text(encoding="utf-8"))
    assert document["name"] == "my spot"  # the folder's name, quoted so any name stays one value
    assert "rocket.jpg" in (project / "refs" / "LICENSES.md").read_text(encoding="utf-8")


def test_the_gitignore_covers_what_storyboard_generates(tmp_path):
    assert init(str(tmp_path / "p")).exit_code == 0
    ignored = (tmp_path / "p" / ".gitignore").read_text(encoding="utf-8").splitlines()
    workspace = Workspace.at(tmp_path / "p")
    for generated in (workspace.state_dir, workspace.out_dir):
        assert f"{generated.name}/" in ignored


def test_the_schema_comment_works_wherever_the_project_is_moved(tmp_path):
    assert init(str(tmp_path / "first")).exit_code == 0
    moved = Path(shutil.move(tmp_path / "first", tmp_path / "elsewhere" / "deeper" / "spot"))
    storyboard = moved / "storyboard.yaml"
    schema_file = schema_of(storyboard)
    assert schema_file.parent == moved and schema_file.is_file()
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert schema == storyboard_schema()
    document = yaml.safe_load(storyboard.read_text(encoding="utf-8"))
    assert [e.message for e in Draft202012Validator(schema).iter_errors(document)] == []
    assert CliRunner().invoke(app, ["validate", str(moved)]).exit_code == 0


def test_init_without_a_path_writes_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = init()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "storyboard.yaml").is_file()
    assert yaml.safe_load((tmp_path / "storyboard.yaml").read_text(encoding="utf-8"))["name"] == tmp_path.name


def test_init_never_overwrites_and_writes_nothing_when_it_refuses(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / ".gitignore").write_text("mine\n", encoding="utf-8")
    result = init(str(project))
    assert result.exit_code == 1
    assert "not overwriting" in result.output and ".gitignore" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in project.iterdir()) == [".gitignore"]  # nothing else was written
    assert (project / ".gitignore").read_text(encoding="utf-8") == "mine\n"

    (project / ".gitignore").unlink()
    assert init(str(project)).exit_code == 0
    (project / "storyboard.yaml").write_text("name: my own work\n", encoding="utf-8")
    again = init(str(project))
    assert again.exit_code == 1 and "storyboard.yaml" in again.output
    assert (project / "storyboard.yaml").read_text(encoding="utf-8") == "name: my own work\n"


def test_init_on_a_file_says_so(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("x", encoding="utf-8")
    result = init(str(target))
    assert result.exit_code == 1
    assert "is a file, not a folder" in result.output and "Traceback" not in result.output



def test_the_starter_runs_on_the_preview_provider(tmp_path, no_keys):
    """The first thing a new user runs: no keys, the free preview provider, a cut under out/."""
    project = tmp_path / "spot"
    assert init(str(project)).exit_code == 0
    result = CliRunner().invoke(app, ["run", str(project)])
    assert result.exit_code == 0, result.output
    cuts = sorted(Workspace.at(project).out_dir.rglob("landscape.mp4"))  # out/ or out/preview/
    assert len(cuts) == 1, result.output
    video = probe(cuts[0])
    assert video.height == 720
    assert 5 + 5 < video.duration < 1.5 + 5 + 5 + 2.0 + 0.1  # both shots, the cards; crossfades overlap some
