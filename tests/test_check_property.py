"""Property: whatever the checks accept, the preview provider renders and the assembler cuts.

Why: ``check`` promises that nothing it accepts fails later, after money is spent (issue 9). So
hypothesis mutates an example storyboard's cut (trims, transitions, shot durations, colours, cards,
the music bed, outputs), and for every mutation the loader, the planner's checks and
``check_cut`` accept, the plan is rendered on the free preview provider and every output is
assembled with its side files: none of it may raise a ``UserError``. For every mutation
``check_cut`` refuses, ``build_timelines`` must refuse the same problems (one implementation).

Bounded to stay well under a minute: a few derandomized examples, small outputs (144-160 px
high), the coffee spot in std mode, and one project folder for all examples, so the preview's
clip cache renders each distinct request once. ``STORYBOARD_PROPERTY_EXAMPLES=200`` (and
``STORYBOARD_PROPERTY_SEED=1`` for fresh random examples) explores further.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from storyboard.assemble.timeline import build_timelines, check_cut
from storyboard.assemble.video import write_cut
from storyboard.errors import StoryboardInvalid
from storyboard.load import loader
from storyboard.media import ffmpeg_exe
from storyboard.plan import planner
from storyboard.render import engine
from storyboard.render.providers.preview import PreviewProvider

EXAMPLE = Path(__file__).resolve().parents[1] / "projects" / "coffee-spot"
SHOT_IDS = ("reveal", "swirl", "pour", "hero")

# Each choice is mostly valid and sometimes not, so that examples land on both sides of the checks.
seconds = st.sampled_from([0] * 8 + [0.25, 0.5, 1, 2.5, 3.5])
transition = st.one_of(
    st.none(),
    st.sampled_from(["cut", "crossfade", "dissolve", "fade_black", "fade_white"]).flatmap(
        lambda kind: st.sampled_from([0.3, 0.5, 0.5, 1, 0.02, 3]).map(lambda d: f"{kind} {d}")
    ),
)
colour = st.sampled_from(["#ffffff", "#ffcc00", "navy", "#abc", "rgb(10, 20, 30)"] * 3 + ["#zzzzzz", "no-colour"])
background = st.sampled_from(["#000000", "teal", "refs/coffee.png"] * 4 + ["refs/missing.png", "music/bed.m4a"])


@st.composite
def card(draw: Any) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    return {
        "text": "Morning Roast",
        "duration": draw(st.sampled_from([1, 1.5, 2, 0.5, 0.01])),
        "background": draw(background),
        "style": {"color": draw(colour), "size": 48},
    }


@st.composite
def cut_shot(draw: Any) -> Any:
    entry: dict[str, Any] = {"shot": draw(st.sampled_from(SHOT_IDS))}
    for key in ("trim_in", "trim_out"):
        value = draw(seconds)
        if value:
            entry[key] = value
    join = draw(transition)
    if join is not None:
        entry["transition"] = join
    return entry if len(entry) > 1 else entry["shot"]


@st.composite
def output(draw: Any, index: int) -> dict[str, Any]:
    return {
        "name": f"out{index}",
        "aspect_ratio": draw(st.sampled_from(["16:9", "9:16", "1:1"])),
        "height": draw(st.sampled_from([144, 145, 160])),
        "fps": draw(st.sampled_from([24, 24, 25, 30, 30, 12])),
        "reframe": draw(st.sampled_from(["crop", "blur"])),
    }


@st.composite
def mutation(draw: Any) -> dict[str, Any]:
    """A mutated cut of the coffee spot (and one shot's duration), as storyboard data."""
    board = yaml.safe_load((EXAMPLE / "storyboard.yaml").read_text(encoding="utf-8"))
    board["defaults"]["mode"] = "std"  # 720p previews render fast enough for a property test
    # durations change the request (a new preview render each): two variants keep the test bounded
    changed = draw(st.sampled_from([None, None, None, (1, 4.5), (3, 2)]))
    if changed is not None:
        board["shots"][changed[0]]["duration"] = changed[1]
    cut = board["cut"]
    cut["transition"] = draw(transition) or "cut"
    cut["shots"] = draw(st.lists(cut_shot(), min_size=1, max_size=4))
    cut["title"] = draw(card())
    cut["end_card"] = draw(card())
    cut["captions"] = {"color": draw(colour), "size": 40}
    bed = draw(st.sampled_from([None, None, None, "music/bed.m4a", "music/bed.m4a", "refs/coffee.png"]))
    cut["audio"] = {"clip_audio": draw(st.sampled_from(["keep", "drop"])), "loudness_lufs": None}
    if bed:
        cut["audio"]["bed"] = {"file": bed, "volume_db": -12}
    board["outputs"] = [draw(output(i)) for i in range(draw(st.integers(1, 2)))]
    return {k: v for k, v in board.items() if v is not None}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project for every example: the preview clip cache is shared, each request drawn once."""
    folder = tmp_path_factory.mktemp("property") / "coffee-spot"
    shutil.copytree(EXAMPLE, folder)
    (folder / "music").mkdir()
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=330:duration=3", str(folder / "music" / "bed.m4a")],
        check=True,
    )
    return folder


OUTCOMES: dict[str, int] = {"refused": 0, "assembled": 0}


@seed(int(os.environ.get("STORYBOARD_PROPERTY_SEED", "0")))
@settings(
    max_examples=int(os.environ.get("STORYBOARD_PROPERTY_EXAMPLES", "10")),  # more to explore: 200
    deadline=None,
    derandomize=os.environ.get("STORYBOARD_PROPERTY_SEED") is None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(board=mutation())
def test_what_the_checks_accept_assembles_on_preview(project: Path, board: dict[str, Any]) -> None:
    file = project / "storyboard.yaml"
    file.write_text(yaml.safe_dump(board, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        loaded = loader.load(file)
    except StoryboardInvalid:
        OUTCOMES["refused"] += 1
        return
    if any(p.severity == "error" for p in planner.check(loaded)):
        OUTCOMES["refused"] += 1
        return
    plan = planner.plan(loaded)
    problems = [p for p in check_cut(loaded, plan) if p.severity == "error"]
    if problems:
        OUTCOMES["refused"] += 1
        # the assembler's own timeline refuses exactly these, before it looks for clips
        with pytest.raises(StoryboardInvalid) as caught:
            build_timelines(loaded, plan, {})
        assert [p for p in caught.value.problems if p.severity == "error"] == sorted(
            problems, key=lambda p: (p.location, p.message)
        )
        return

    result = asyncio.run(engine.render(plan, project, PreviewProvider(project), concurrency=2))
    assert result.ok, (result.failed, result.skipped)
    clips = engine.rendered_clips(project, "preview", plan.requests)
    out = project / "out"
    for cut in build_timelines(loaded, plan, clips):
        files = write_cut(cut, out, work_dir=project / ".storyboard" / "assemble-work")
        assert files.report.frames == cut.total_frames
        assert files.video.is_file() and files.contact_sheet.is_file()
    OUTCOMES["assembled"] += 1


def test_the_property_saw_both_outcomes() -> None:
    """The mutations are worth something only if some pass and some fail the checks."""
    if not any(OUTCOMES.values()):
        pytest.skip("runs after the property test, in the same session")
    assert OUTCOMES["refused"] > 0 and OUTCOMES["assembled"] > 0, OUTCOMES
