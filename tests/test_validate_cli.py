"""``storyboard validate`` reports every problem in one run: the structural ones the loader finds
and, for the parts of a broken file it could set aside, what the Kling model cannot do."""

from __future__ import annotations

from typer.testing import CliRunner

from storyboard.cli import _register_commands, app

_register_commands()

BROKEN = """\
version: 1
name: Broken
defaults:
  model: kling-v3
  mode: pro
references:
  cat: {image: refs/cat.png, role: subject}
shots:
  - id: a
    duration: 5
    prompt: "{{ vars.nothing }}"
  - id: b
    duration: 20
    start_frame: cat
  - id: c
    duration: 5
    prompt: a cat yawns
    model: kling-v2-6
    cfg_scale: 0.4
    sound: true
    mode: std
"""


def test_structural_model_and_template_problems_come_in_one_run(make_project):
    project = make_project(BROKEN, images={"refs/cat.png": (1024, 1024)})
    result = CliRunner().invoke(app, ["validate", str(project)])
    assert result.exit_code == 1
    lines = [line.split("storyboard.yaml:", 1)[1] for line in result.output.splitlines() if "storyboard.yaml:" in line]
    assert [line.split(": ", 2)[:2] for line in lines] == [
        ["11:13", "shots[0].prompt"],   # template error: undefined variable
        ["13:15", "shots[1].duration"],  # structural: over 15 s
        ["19:16", "shots[2].cfg_scale"],  # model rule: not on kling-v2-6 (line of the third shot, not the second)
        ["20:12", "shots[2].sound"],      # model rule: no sound on kling-v2-6 std
    ]
    assert "must be at most 15" in lines[1] and "cfg_scale is not supported by kling-v2-6" in lines[2]
    assert "4 error(s)" in result.output


def test_a_broken_reference_sets_aside_the_shots_that_use_it(make_project):
    text = BROKEN.replace("refs/cat.png", "refs/missing.png").replace("duration: 20", "duration: 5")
    project = make_project(text)
    result = CliRunner().invoke(app, ["validate", str(project)])
    assert result.exit_code == 1
    assert "references.cat.image: file not found" in result.output
    assert "shots[1]" not in result.output  # it starts from the missing image: not checked further
    assert "shots[2].cfg_scale" in result.output
