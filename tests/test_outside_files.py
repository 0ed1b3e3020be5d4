"""Files from outside the project (issue 16): validate advises at the line, the plan lists them, and
``outside_files: refuse`` makes each an error at its line. Symlinks are judged by where they lead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.plan import planner
from tests.conftest import write_image

STORYBOARD = str(Path(sys.executable).with_name("storyboard"))

BOARD = """\
name: outside
{setting}references:
  hero: {{image: {hero}, role: subject}}
shots:
  - {{id: a, duration: 5, prompt: a walk, start_frame: {frame}}}
  - {{id: b, duration: 5, prompt: inside only, start_frame: refs/own.png}}
"""


def _project(tmp_path: Path, setting: str = "") -> tuple[Path, Path]:
    elsewhere = write_image(tmp_path / "elsewhere" / "private.png", 1024, 1024)
    project = tmp_path / "project"
    write_image(project / "refs" / "own.png", 1024, 1024)
    os.symlink(elsewhere, project / "refs" / "link.png")
    (project / "storyboard.yaml").write_text(
        BOARD.format(setting=setting, hero="../elsewhere/private.png", frame="refs/link.png"), encoding="utf-8")
    return project, elsewhere


def test_validate_advises_at_the_line_and_the_plan_lists_them(tmp_path: Path) -> None:
    project, elsewhere = _project(tmp_path)
    loaded = load(project)
    outside = [p for p in loaded.advisories if "lies outside the project folder" in p.message]
    assert [(p.location.line, p.location.path) for p in outside] == [(3, "references.hero.image"), (5, "shots[0].start_frame")]
    assert all(p.severity == "advisory" for p in outside)
    assert str(elsewhere.resolve()) in outside[1].message  # the symlink is named with where it leads
    plan = planner.plan(loaded)
    assert plan.outside_files == ["refs/link.png"]  # hero is named but no shot sends it: nothing to upload
    assert planner.plan_to_json(plan)["outside_files"] == plan.outside_files


def test_a_board_with_only_its_own_files_lists_none(make_project) -> None:
    project = make_project("name: inside\nshots:\n  - {id: a, duration: 5, prompt: x, start_frame: refs/a.png}\n",
                           images={"refs/a.png": (1024, 1024)})
    plan = planner.plan(load(project))
    assert plan.outside_files == [] and "outside_files" not in planner.plan_to_json(plan)


def test_refuse_makes_each_an_error_at_its_line(tmp_path: Path) -> None:
    project, _ = _project(tmp_path, setting="outside_files: refuse\n")
    with pytest.raises(StoryboardInvalid) as raised:
        load(project)
    errors = [p for p in raised.value.problems if p.severity == "error"]
    assert [(p.location.line, p.location.path) for p in errors] == [(4, "references.hero.image"), (6, "shots[0].start_frame")]
    assert all("copy it into the project folder" in p.message for p in errors)


def test_the_cli_shows_them(tmp_path: Path) -> None:
    project, _ = _project(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for key in ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY"):
        env.pop(key, None)
    shown = subprocess.run([STORYBOARD, "plan", str(project)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "Uploaded from outside the project folder (1): refs/link.png" in shown.stdout
    assert "lies outside the project folder" in shown.stderr + shown.stdout
    as_json = subprocess.run([STORYBOARD, "plan", str(project), "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert json.loads(as_json.stdout)["outside_files"] == ["refs/link.png"]
