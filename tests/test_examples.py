"""Every example project, end to end: it validates, its plan matches the golden file, it renders on
the preview provider (a rerun reuses every clip) and on the fake Kling served over loopback (a
rerun creates nothing), and ``storyboard run`` leaves every declared output in ``out/``.

Why against copies: tests must never write ``.storyboard/`` or ``out/`` into the repository, and a
plan must not depend on where the project lives (golden files hold project-relative paths only).
Refresh the golden files after an intended planner change with ``UPDATE_GOLDEN=1 pytest
tests/test_examples.py``, and read the diff: it is the change in what customers will be billed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from storyboard.assemble.timeline import default_outputs
from storyboard.cli import _register_commands, app
from storyboard.load import loader
from storyboard.load.spec import json_schema
from storyboard.media import probe
from storyboard.plan import planner
from tests.fakes.kling import AVATAR_PRICE, FakeKling, tts_seconds
from tests.fakes.server import serve

_register_commands()

REPO = Path(__file__).resolve().parent.parent
PROJECTS = sorted(p.parent.name for p in (REPO / "projects").glob("*/storyboard.yaml"))
GOLDEN = Path(__file__).parent / "golden"



def copy_project(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(REPO / "projects" / name, target, ignore=shutil.ignore_patterns(".storyboard", "out"))
    return target


def test_there_are_at_least_three_examples():
    assert {"coffee-spot", "astronaut-story", "cat-boards"} <= set(PROJECTS)


def test_published_schema_file_is_current():
    published = json.loads((REPO / "storyboard.schema.json").read_text(encoding="utf-8"))
    assert published == json_schema(), "regenerate it: storyboard schema > storyboard.schema.json"


@pytest.mark.parametrize("name", PROJECTS)
def test_example_validates_and_plans(name):
    result = CliRunner().invoke(app, ["validate", str(REPO / "projects" / name)])
    assert result.exit_code == 0, result.output
    assert "valid:" in result.output
    result = CliRunner().invoke(app, ["plan", str(REPO / "projects" / name)])
    assert result.exit_code == 0, result.output
    assert "Total:" in result.output and "Nothing has been spent" in result.output


@pytest.mark.parametrize("name", PROJECTS)
def test_example_plan_matches_golden_file(name, tmp_path):
    project = copy_project(name, tmp_path)
    document = planner.plan_to_json(planner.plan(loader.load(project)))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    golden = GOLDEN / f"{name}.plan.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden plan for {name}: run UPDATE_GOLDEN=1 pytest tests/test_examples.py"
    assert text == golden.read_text(encoding="utf-8")


def test_product_spot_is_one_multi_shot_request():
    plan = planner.plan(loader.load(REPO / "projects" / "coffee-spot"))
    (request,) = plan.requests
    assert request.model == "kling-v3" and request.body["multi_shot"] is True
    assert [p["duration"] for p in request.body["multi_prompt"]] == ["3", "3", "3", "3"]
    assert request.body["duration"] == "12" and request.body["sound"] == "on"
    assert request.units == pytest.approx(14.4) and request.usd == pytest.approx(2.02)
    # Shot text fields are templates too: the caption and the subject were rendered from vars/references.
    assert request.shots[0].caption == "Morning Roast"
    assert request.body["multi_prompt"][0]["prompt"].startswith("A white porcelain cup of black coffee")


def test_character_story_needs_several_omni_requests_with_references():
    plan = planner.plan(loader.load(REPO / "projects" / "astronaut-story"))
    assert sum(piece.keep for r in plan.requests for piece in r.shots) > 15
    assert len(plan.requests) >= 2 and {r.model for r in plan.requests} == {"kling-v3-omni"}
    roles = {"subject", "style", "environment"}
    used = {ref.role for ref in loader.load(REPO / "projects" / "astronaut-story").storyboard.references.values()}
    assert used == roles
    for request in plan.requests:
        assert request.endpoint == "/v1/videos/omni-video"
        assert any(item.get("type") is None for item in request.body["image_list"])
        assert "<<<image_" in json.dumps(request.body)
    chained = plan.requests[-1]
    assert chained.depends_on == [plan.requests[-2].key]
    assert {"image_url": f"frame://last/{plan.requests[-2].key}", "type": "first_frame"} in chained.body["image_list"]


def test_per_shot_board_uses_end_frames_and_camera_control_on_older_models():
    plan = planner.plan(loader.load(REPO / "projects" / "cat-boards"))
    assert all(len(r.shots) == 1 for r in plan.requests)
    bodies = [r.body for r in plan.requests]
    assert any("camera_control" in b for b in bodies) and any("image_tail" in b for b in bodies)
    dream = plan.request_for_shot("dream")
    assert dream[0].duration == 5 and dream[1].keep == 3


@pytest.mark.parametrize("name", PROJECTS)
def test_example_renders_on_preview_then_reuses_every_clip(name, tmp_path, no_keys):
    project = copy_project(name, tmp_path)
    runner = CliRunner()
    first = runner.invoke(app, ["render", str(project)])
    assert first.exit_code == 0, first.output
    assert "no Kling credentials found" in first.output
    plan = planner.plan(loader.load(project))
    for request in plan.requests:
        clip = project / ".storyboard" / "clips" / "preview" / f"{request.key}.mp4"
        facts = probe(clip)
        assert facts.frames == request.duration * request.fps
        assert facts.has_audio == request.sound
    second = runner.invoke(app, ["render", str(project)])
    assert second.exit_code == 0, second.output
    assert f"0 rendered, {len(plan.requests)} reused" in second.output


def _billed(request) -> float:
    """What the fake bills a request: the plan's price, except an avatar spoken from text, billed at the
    length its TTS really made (the plan prices an estimate of it, plan.speech) plus the TTS calls."""
    if not request.speech:
        return request.units
    seconds = max(tts_seconds(s.text, s.speed) for s in request.speech)
    return sum(s.units for s in request.speech) + float(AVATAR_PRICE[request.mode]) * math.ceil(seconds)


@pytest.mark.parametrize("name", PROJECTS)
def test_example_renders_on_the_fake_kling_over_loopback_and_never_pays_twice(name, tmp_path, no_keys, monkeypatch):
    project = copy_project(name, tmp_path)
    plan = planner.plan(loader.load(project))
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        monkeypatch.setenv("KLINGAI_ACCESS_KEY", fake.access_key)
        monkeypatch.setenv("KLINGAI_SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("KLINGAI_API_KEY", fake.api_keys[0])  # the new-standard API takes only an API key
        monkeypatch.setenv("KLINGAI_BASE_URL", base_url)
        first = CliRunner().invoke(app, ["render", str(project), "--yes", "--concurrency", "4"])
        assert first.exit_code == 0, first.output
        assert sum(fake.creates.values()) == len(plan.requests)
        assert all(count == 1 for count in fake.creates.values())
        assert fake.charged_units == pytest.approx(sum(_billed(r) for r in plan.requests))
        assert fake.charged_units <= plan.units + 1e-9  # never more than the plan showed
        second = CliRunner().invoke(app, ["render", str(project), "--yes"])
        assert second.exit_code == 0, second.output
    assert sum(fake.creates.values()) == len(plan.requests), "a rerun must not create anything"
    for request in plan.requests:
        assert probe(project / ".storyboard" / "clips" / "kling" / f"{request.key}.mp4").frames > 0
    cut = CliRunner().invoke(app, ["assemble", str(project), "--provider", "kling"])
    assert cut.exit_code == 0, cut.output
    # The editor's timeline carries each clip's Kling task id and the units Kling charged for it.
    task_of = {t.external_task_id: t for t in fake.tasks.values()}
    by_key = {r.key: task_of[r.external_task_id] for r in plan.requests}
    output = default_outputs(loader.load(project))[0]
    found = otio.adapters.read_from_file(str(project / "out" / f"{output.name}.otio")).find_clips()
    clips = [c for c in found if "request_key" in c.metadata.get("storyboard", {})]  # cards are clips too
    assert len(clips) == len(loader.load(project).storyboard.cut.shots or loader.load(project).storyboard.shots)
    for clip in clips:
        meta = clip.metadata["storyboard"]
        task = by_key[meta["request_key"]]
        assert meta["kling_task_id"] == task.task_id
        assert meta["cost"]["charged"] is True and meta["cost"]["units"] == pytest.approx(float(task.units))
    assert fake.access_key not in first.output + second.output
    assert fake.secret_key not in first.output + second.output
    assert fake.api_keys[0] not in first.output + second.output


@pytest.mark.parametrize("name", PROJECTS)
def test_run_produces_every_declared_output_and_an_unchanged_rerun_rewrites_nothing(name, tmp_path, no_keys):
    project = copy_project(name, tmp_path)
    result = CliRunner().invoke(app, ["run", str(project)])
    assert result.exit_code == 0, result.output
    loaded = loader.load(project)
    outputs = default_outputs(loaded)
    assert outputs
    previews = project / "out" / "preview"  # preview cuts never take a paid cut's name
    for output in outputs:
        video = previews / f"{output.name}.mp4"
        facts = probe(video)
        assert (facts.width, facts.height) == (output.width, output.height)
        assert facts.fps == output.fps
        for suffix in (".otio", ".edl", ".contact.png"):
            assert (previews / f"{output.name}{suffix}").is_file()
        captioned = any(shot.caption for shot in loaded.storyboard.shots)  # no empty .srt without captions
        assert (previews / f"{output.name}.srt").is_file() == captioned
        assert (previews / f"{output.name}_media").is_dir()
        assert f"out/preview/{output.name}.mp4: preview clips" in result.output
    assert not list((project / "out").glob("*.mp4")), "no preview cut is written where a paid cut goes"
    assert not list(project.glob("*.mp4")), "nothing is written outside out/ and .storyboard/"
    written = {p: p.stat().st_mtime_ns for p in previews.rglob("*") if p.is_file()}
    again = CliRunner().invoke(app, ["run", str(project)])
    assert again.exit_code == 0, again.output
    assert again.output.count("unchanged") == len(outputs)
    assert {p: p.stat().st_mtime_ns for p in previews.rglob("*") if p.is_file()} == written
