"""The public Python API: the README's script runs as written, ``import storyboard`` stays cheap,
and the functions follow the same rules as the CLI (nothing printed, nothing spent unasked)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import storyboard
from tests.conftest import KEY_VARS

REPO = Path(__file__).resolve().parent.parent


def readme_script() -> str:
    """The first python block of the README's "Python API" section, exactly as a reader copies it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the README's Python API section has no python block"
    return match.group(1)


def test_readme_script_is_about_ten_lines():
    lines = [line for line in readme_script().splitlines() if line.strip()]
    assert len(lines) <= 12


def test_readme_script_runs_and_an_unchanged_rerun_writes_nothing(tmp_path):
    shutil.copytree(REPO / "projects" / "coffee-spot", tmp_path / "projects" / "coffee-spot",
                    ignore=shutil.ignore_patterns(".storyboard", "out"))
    script = tmp_path / "script.py"
    script.write_text(readme_script(), encoding="utf-8")
    env = {key: value for key, value in __import__("os").environ.items() if key not in KEY_VARS}
    env["PYTHONPATH"] = str(REPO)

    def run() -> str:
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = run()
    assert "1 request(s), 14.4 units ($2.02) on Kling" in first
    assert "out/preview/" in first and "preview clips written" in first
    assert (tmp_path / "projects" / "coffee-spot" / "out" / "preview").is_dir()
    second = run()
    assert "preview clips unchanged" in second and "written" not in second


def test_import_is_lazy():
    code = "import sys, storyboard; print(sorted(m for m in sys.modules if m.startswith(('storyboard.', 'pydantic', 'av'))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(REPO)},
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_public_names_resolve_and_are_documented():
    for name in storyboard.__all__:
        value = getattr(storyboard, name)
        if callable(value):
            assert value.__doc__, f"storyboard.{name} has no docstring"
    assert (Path(storyboard.__file__).parent / "py.typed").is_file()
    with pytest.raises(AttributeError):
        _ = storyboard.no_such_thing
    import importlib

    for stage in ("storyboard.assemble.timeline", "storyboard.load.loader", "storyboard.plan.planner",
                  "storyboard.render.engine"):  # importing the stages must not replace the verbs
        importlib.import_module(stage)

    for verb in ("load", "check", "plan", "render", "assemble", "run"):
        assert callable(getattr(storyboard, verb)) and not isinstance(getattr(storyboard, verb), type(storyboard))


def test_load_raises_with_located_problems(make_project):
    project = make_project("version: 1\nname: x\nshots:\n  - id: a\n    duration: 99\n    prompt: hi\n")
    with pytest.raises(storyboard.StoryboardInvalid) as caught:
        storyboard.load(project)
    assert "storyboard.yaml:5:15" in str(caught.value)


def test_kling_spend_needs_yes_and_nothing_is_sent_without_it(make_project, monkeypatch):
    from tests.fakes.kling import FakeKling
    from tests.fakes.server import serve

    project = make_project("version: 1\nname: x\ndefaults: {model: kling-v3, mode: std}\n"
                           "shots:\n  - {id: a, duration: 3, prompt: waves}\n")
    fake = FakeKling(polls_to_finish=1)
    events: list[object] = []
    with serve(fake) as base_url:
        monkeypatch.setenv("KLINGAI_API_KEY", fake.api_keys[0])
        monkeypatch.setenv("KLINGAI_BASE_URL", base_url)
        with pytest.raises(storyboard.UserError, match="nothing was sent"):
            storyboard.render(project, on_event=events.append)
        assert fake.create_attempts == 0
        with pytest.raises(storyboard.UserError, match="cannot cover"):
            storyboard.render(project, yes=True, max_cost=0.5)
        result = storyboard.run(project, yes=True, max_cost=10)
    assert result.ok and [cut.provider for cut in result.cuts] == ["kling"]
    assert result.cuts[0].video == project / "out" / "main.mp4"
    assert sum(fake.creates.values()) == 1
    assert any(type(event).__name__ == "RenderQuoted" for event in events)
