"""Regression tests of the pipeline, through the real CLI against the fake Kling served on loopback.

Each test is one of issue 9's failures, reproduced as a user would meet it:

3. a budget that half works (``--max-cost`` below the plan rendered part of a cut, then stopped;
   in a terminal it asked to spend even when nothing fit);
4. a paid cut overwritten (``run`` without keys after a Kling render wrote the preview animatic
   over ``out/<cut>.mp4``);
5. reruns redo everything (an unchanged ``run`` re-encoded every cut).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard import pipeline
from storyboard.cli import _register_commands, app
from storyboard.cli import render as render_cli
from storyboard.load import loader
from storyboard.media import probe
from storyboard.plan import planner
from tests.conftest import KEY_VARS, use_kling
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve

_register_commands()


THREE_SHOTS = """\
version: 1
name: Three
defaults:
  model: kling-v3
  mode: std
  aspect_ratio: "16:9"
  sound: false
  strategy: per_shot
shots:
  - id: one
    duration: 3
    subject: a lighthouse
    action: waves crash
  - id: two
    duration: 3
    subject: a gull
    action: flies over the sea
  - id: three
    duration: 3
    subject: a boat
    action: sails past
cut:
  shots: [three, one, two]
"""

TWO_OUTPUTS = """\
version: 1
name: Two outputs
defaults:
  model: kling-v3
  mode: std
  aspect_ratio: "16:9"
  sound: false
shots:
  - id: one
    duration: 3
    subject: a lighthouse
    action: waves crash
  - id: two
    duration: 3
    subject: a gull
    action: flies over the sea
outputs:
  - {name: wide, aspect_ratio: "16:9", height: 144, fps: 24}
  - {name: tall, aspect_ratio: "9:16", height: 256, fps: 24}
"""



def drop_keys(monkeypatch) -> None:
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stamps(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time (ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(*args: str):
    return CliRunner().invoke(app, [*args])


# ---- 3. a budget that holds up front -----------------------------------------------------------


def test_a_budget_below_the_plan_is_refused_before_anything_is_sent(make_project, no_keys, monkeypatch):
    project = make_project(THREE_SHOTS)
    needed = planner.plan(loader.load(project)).units
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        use_kling(monkeypatch, fake, base_url)
        result = invoke("run", str(project), "--yes", "--max-cost", f"{needed - 0.1:g}u")
    assert result.exit_code == 1
    assert f"need {needed:g} units" in result.output and "nothing was sent" in result.output
    assert "--partial" in result.output
    assert fake.create_attempts == 0 and not fake.creates
    assert not (project / "out").exists()


def test_partial_renders_what_fits_in_cut_order_and_names_the_shots_left_out(make_project, no_keys, monkeypatch):
    project = make_project(THREE_SHOTS)
    plan = planner.plan(loader.load(project))
    each = plan.request_for_shot("one")[0].units
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        use_kling(monkeypatch, fake, base_url)
        result = invoke("render", str(project), "--yes", "--max-cost", f"{2 * each + 0.1:g}u", "--partial")
        assert result.exit_code == 1, result.output  # not everything is rendered: say so
        assert "left out" in result.output and "two" in result.output.split("left out", 1)[1]
        assert sum(fake.creates.values()) == 2
        rendered = {r.id for r in plan.requests if (project / ".storyboard/clips/kling" / f"{r.key}.mp4").is_file()}
        # Cut order is three, one, two: the first two shots of the cut are the ones rendered.
        assert rendered == {plan.request_for_shot("three")[0].id, plan.request_for_shot("one")[0].id}
        # The same budget again: nothing is left to pay that fits, and nothing fits.
        again = invoke("render", str(project), "--yes", "--max-cost", f"{each - 0.1:g}u", "--partial")
    assert again.exit_code == 1 and "covers none" in again.output and "nothing was sent" in again.output
    assert sum(fake.creates.values()) == 2


def test_the_prompt_never_offers_to_spend_when_nothing_fits(make_project, no_keys, monkeypatch):
    project = make_project(THREE_SHOTS)
    asked: list[str] = []
    monkeypatch.setattr(render_cli, "can_ask", lambda: True)
    monkeypatch.setattr(render_cli.typer, "confirm", lambda text, **_: asked.append(text) or False)
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        use_kling(monkeypatch, fake, base_url)
        refused = invoke("render", str(project), "--max-cost", "1u", "--partial")
        assert refused.exit_code == 1 and "covers none" in refused.output
        assert asked == []
        declined = invoke("render", str(project), "--max-cost", "100u")
    assert declined.exit_code == 1 and len(asked) == 1 and "Spend up to" in asked[0]
    assert fake.create_attempts == 0


# ---- 4. cuts from the right clips ----------------------------------------------------------------


def test_run_without_keys_after_a_kling_render_cuts_the_kling_clips_and_never_overwrites_them(
        make_project, no_keys, monkeypatch):
    project = make_project(TWO_OUTPUTS)
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        use_kling(monkeypatch, fake, base_url)
        paid = invoke("run", str(project), "--yes")
        assert paid.exit_code == 0, paid.output
    assert "out/wide.mp4: kling clips" in paid.output
    wide = project / "out" / "wide.mp4"
    before = digest(wide)

    drop_keys(monkeypatch)
    again = invoke("run", str(project))
    assert again.exit_code == 0, again.output
    assert "is rendered on kling" in again.output and "no Kling credentials found" not in again.output
    assert "out/wide.mp4: kling clips" in again.output and "preview clips" not in again.output
    assert not (project / ".storyboard" / "clips" / "preview").exists(), "no preview was rendered over Kling clips"
    assert not (project / "out" / "preview").exists()
    assert digest(wide) == before

    cut = invoke("assemble", str(project))
    assert cut.exit_code == 0 and "out/wide.mp4: kling clips" in cut.output

    preview = invoke("run", str(project), "--provider", "preview")
    assert preview.exit_code == 0, preview.output
    assert "out/preview/wide.mp4: preview clips" in preview.output
    assert probe(project / "out" / "preview" / "wide.mp4").frames == 6 * 24
    assert digest(wide) == before, "a preview cut never takes a paid cut's file name"
    assert sum(fake.creates.values()) == 1


def test_a_campaign_preview_goes_to_out_preview_and_leaves_paid_cuts_alone(tmp_path, no_keys):
    from tests.test_campaign import make_campaign

    folder = make_campaign(tmp_path)
    paid = folder / "out" / "latte-de-9x16" / "9x16.mp4"
    paid.parent.mkdir(parents=True)
    paid.write_bytes(b"a paid cut")
    result = invoke("campaign", "run", str(folder), "--variant", "latte-de-9x16")
    assert result.exit_code == 0, result.output
    assert paid.read_bytes() == b"a paid cut"
    assert probe(folder / "out" / "preview" / "latte-de-9x16" / "9x16.mp4").frames == 6 * 24
    assert (folder / "out" / "preview" / "index.html").is_file()
    written = stamps(folder / "out")
    again = invoke("campaign", "run", str(folder), "--variant", "latte-de-9x16")
    assert again.exit_code == 0, again.output
    assert "(unchanged)" in again.output and stamps(folder / "out") == written, "the review page included"


# ---- 5. incremental outputs ------------------------------------------------------------------------


def test_an_unchanged_rerun_rewrites_nothing_and_a_changed_output_alone_is_rewritten(make_project, no_keys):
    project = make_project(TWO_OUTPUTS)
    first = invoke("run", str(project))
    assert first.exit_code == 0, first.output
    out = project / "out" / "preview"
    written = stamps(out)
    assert {"wide.mp4", "wide.edl", "wide.otio", "wide.contact.png", "tall.mp4"} <= set(written)

    second = invoke("run", str(project))
    assert second.exit_code == 0, second.output
    assert second.output.count("unchanged") == 2
    assert stamps(out) == written, "an unchanged rerun rewrites nothing"

    storyboard = project / "storyboard.yaml"
    storyboard.write_text(storyboard.read_text().replace('height: 256, fps: 24', 'height: 256, fps: 25'))
    third = invoke("run", str(project))
    assert third.exit_code == 0, third.output
    now = stamps(out)
    assert now["wide.mp4"] == written["wide.mp4"] and now["wide.otio"] == written["wide.otio"]
    assert now["tall.mp4"] != written["tall.mp4"]
    assert probe(out / "tall.mp4").fps == 25

    (out / "wide.edl").unlink()  # an output missing a file is made again
    fourth = invoke("assemble", str(project))
    assert fourth.exit_code == 0 and (out / "wide.edl").is_file()
    assert "out/preview/wide.mp4: preview clips" in fourth.output and fourth.output.count("unchanged") == 1


def test_the_output_key_follows_the_timeline_and_the_clip_bytes(make_project, no_keys):
    project = make_project(TWO_OUTPUTS)
    assert invoke("render", str(project)).exit_code == 0
    work, _ = pipeline.load_project(project)
    from storyboard.assemble import timeline

    spot = work.spots[0]
    clips = work_clips(work)
    wide, tall = timeline.build_timelines(spot.loaded, spot.plan, clips)
    side: dict = {"task_ids": {}, "costs": {}}
    key = pipeline.output_key(wide, "preview", side)
    assert key == pipeline.output_key(timeline.build_timelines(spot.loaded, spot.plan, clips)[0], "preview", side)
    assert key != pipeline.output_key(tall, "preview", side)
    assert key != pipeline.output_key(wide, "kling", side)
    assert key != pipeline.output_key(wide, "preview", {"task_ids": {"k": "t"}, "costs": {}})
    clip = next(iter(clips.values()))
    clip.write_bytes(clip.read_bytes() + b"\0")  # the clip's bytes changed: the output must be made again
    assert key != pipeline.output_key(wide, "preview", side)


def work_clips(work: pipeline.Work) -> dict[str, Path]:
    from storyboard.workspace import Workspace

    return Workspace.at(work.state_dir).rendered_clips("preview", work.requests)


# ---- check runs the cut rules before anything is spent ------------------------------------------------


def test_check_reports_a_cut_that_cannot_be_assembled_before_rendering(make_project, no_keys):
    project = make_project(TWO_OUTPUTS + "cut:\n  shots:\n    - {shot: one, trim_in: 2, trim_out: 1}\n")
    result = invoke("validate", str(project))
    assert result.exit_code == 1
    assert "storyboard.yaml:" in result.output and "leave nothing" in result.output
    run = invoke("run", str(project))
    assert run.exit_code == 1 and not (project / ".storyboard").exists()


@pytest.mark.parametrize("cut_yaml,field", [
    ("cut:\n  shots:\n    - {shot: one, trim_in: 2, trim_out: 1}\n", "cut.shots[0]"),
    ("cut:\n  captions: {color: \"#zzzzzz\"}\n", "cut.captions.color"),
])
def test_a_cut_that_cannot_be_assembled_is_refused_before_kling_is_paid(make_project, no_keys, monkeypatch, cut_yaml, field):
    """Failure 1 of the issue: `render --yes` against Kling must refuse it with its line, creating nothing."""
    project = make_project(TWO_OUTPUTS + cut_yaml)
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        use_kling(monkeypatch, fake, base_url)
        for command in ("validate", "render", "run"):
            extra = () if command == "validate" else ("--yes",)
            result = invoke(command, str(project), *extra)
            assert result.exit_code == 1, (command, result.output)
            assert "storyboard.yaml:" in result.output and field in result.output, (command, result.output)
            assert "Traceback" not in result.output
    assert fake.create_attempts == 0 and not fake.creates
