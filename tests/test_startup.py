"""Start-up: ``storyboard --help`` and ``storyboard validate`` import only what they use (issue 13).

Why a behaviour test and not a timing one: the seconds depend on the machine, but which modules a
command loads does not. ``--help`` needs typer and rich only; ``validate`` also needs YAML,
pydantic, Pillow (image checks) and Jinja2 (template checks), and never PyAV, OpenTimelineIO,
numpy, httpx or psycopg, which the commands that make or fetch videos import when they run. Each
command runs in a fresh interpreter (modules loaded by other tests would hide a regression), as
the console script does, and reports ``sys.modules`` as it exits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RUN_AND_LIST_MODULES = """
import json, sys
report, sys.argv = sys.argv[1], ["storyboard", *sys.argv[2:]]
from storyboard.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
with open(report, "w", encoding="utf-8") as handle:
    json.dump({"code": code, "modules": sorted(sys.modules)}, handle)
"""

NEVER_AT_START_UP = ("av", "opentimelineio", "numpy", "httpx", "psycopg", "moviepy", "imageio_ffmpeg")
"""Packages no command imports before it has a video to make, read or fetch."""


def modules_loaded_by(tmp_path: Path, *args: str) -> tuple[set[str], set[str]]:
    """Run ``storyboard *args`` in a new interpreter; return (top-level packages, storyboard modules)."""
    report = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY", "KLINGAI_BASE_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, str(report), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["code"] in (0, None), done.stdout + done.stderr
    modules = set(result["modules"])
    return {name.split(".")[0] for name in modules}, {name for name in modules if name.startswith("storyboard")}


def test_help_loads_typer_and_rich_only(tmp_path):
    packages, ours = modules_loaded_by(tmp_path, "--help")
    assert {"typer", "rich"} <= packages  # the help itself was drawn
    loaded = packages & {*NEVER_AT_START_UP, "PIL", "jinja2", "pydantic", "yaml", "fontTools"}
    assert not loaded, f"storyboard --help imports {sorted(loaded)}"
    assert "storyboard.pipeline" not in ours and not any(m.startswith("storyboard.render") for m in ours), sorted(ours)


@pytest.mark.parametrize("command", ["plan", "render", "assemble", "run", "status", "campaign", "journal"])
def test_help_of_each_command_stays_light(tmp_path, command):
    """A command's own --help is drawn from its signature: the work it does is not imported.

    (typer itself loads pydantic to coerce a command's parameters, so pydantic is not counted.)"""
    packages, ours = modules_loaded_by(tmp_path, command, "--help")
    loaded = packages & {*NEVER_AT_START_UP, "PIL", "jinja2", "yaml", "fontTools"}
    assert not loaded, f"storyboard {command} --help imports {sorted(loaded)}"
    assert "storyboard.pipeline" not in ours


def test_validate_loads_what_a_check_needs_and_no_media_or_network_stack(tmp_path):
    project = tmp_path / "coffee-spot"
    shutil.copytree(ROOT / "projects" / "coffee-spot", project, ignore=shutil.ignore_patterns(".storyboard", "out"))
    packages, ours = modules_loaded_by(tmp_path, "validate", str(project))
    assert {"yaml", "pydantic", "PIL", "jinja2"} <= packages  # it did check the storyboard
    loaded = packages & set(NEVER_AT_START_UP)
    assert not loaded, f"storyboard validate imports {sorted(loaded)}"
    heavy_ours = {m for m in ours if m.startswith(("storyboard.render", "storyboard.assemble.video",
                                                   "storyboard.assemble.sidefiles", "storyboard.assemble.review"))}
    assert not heavy_ours, sorted(heavy_ours)


def test_whether_a_provider_is_free_is_known_without_importing_it_and_matches_its_class():
    """``providers.FREE`` answers ``provider_is_free`` (so cutting Kling clips never imports the
    Kling client); it must say what each class's ``free`` says."""
    from storyboard.errors import UserError
    from storyboard.render import providers

    assert set(providers.FREE) == set(providers.PROVIDER_NAMES)
    for name in providers.PROVIDER_NAMES:
        assert providers.provider_is_free(name) is bool(providers._provider_class(name).free)
    with pytest.raises(UserError, match="unknown provider"):
        providers.provider_is_free("runway")
