"""The cut rules at check time: every problem assembly would hit, found from the plan, located.

Why: a cut that cannot be assembled used to pass ``validate`` and ``plan``, so ``render`` paid for
every request and only assembly failed (issue 9, failure 1). These tests run the real loader and
planner on storyboard text, then ``check_cut`` with no clip anywhere, and check that
``build_timelines`` (given clips) refuses exactly the same problems.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from storyboard.assemble.timeline import build_timelines, check_cut
from storyboard.errors import Problem, StoryboardInvalid
from storyboard.load import loader
from storyboard.media import ffmpeg_exe
from storyboard.plan import Plan, planner
from tests.fakes.videos import result_video_path

EXAMPLES = Path(__file__).resolve().parents[1] / "projects"

BASE = """\
name: demo
shots:
  - {id: a, duration: 3, prompt: a red door, caption: Hello}
  - {id: b, duration: 5, prompt: a blue door}
  - {id: c, duration: 4, prompt: a green door}
"""


def load(tmp_path: Path, text: str):
    file = tmp_path / "storyboard.yaml"
    file.write_text(text, encoding="utf-8")
    board = loader.load(file)
    return board, planner.plan(board)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def clips_for(tmp_path: Path, plan: Plan) -> dict[str, Path]:
    """Real (tiny) clips for every request, so build_timelines gets past the clip checks."""
    clips = {}
    for request in plan.requests:
        path = tmp_path / f"{request.id}.mp4"
        shutil.copyfile(result_video_path((float(request.duration),), aspect_ratio=request.aspect_ratio), path)
        clips[request.key] = path
    return clips


def assert_same_as_build(tmp_path: Path, board, plan: Plan, problems: list[Problem]) -> None:
    """build_timelines refuses with exactly the problems check_cut found (one implementation)."""
    with pytest.raises(StoryboardInvalid) as caught:
        build_timelines(board, plan, clips_for(tmp_path, plan))
    assert caught.value.problems == sorted(problems, key=lambda p: (p.location, p.message))


def test_a_trim_that_leaves_nothing_is_found_before_rendering(tmp_path: Path) -> None:
    board, plan = load(tmp_path, BASE + "cut:\n  shots:\n    - a\n    - {shot: b, trim_in: 3, trim_out: 2}\n")
    (problem,) = check_cut(board, plan)
    assert (problem.location.line, problem.location.col, problem.location.path) == (9, 26, "cut.shots[1].trim_in")
    assert str(problem).startswith(f"{problem.location.file}:9:26: cut.shots[1].trim_in: shot 'b': trim_in 3 s + trim_out 2 s")
    assert "leave nothing of its 5 s: trim less" in problem.message
    assert_same_as_build(tmp_path, board, plan, [problem])


def test_a_caption_colour_that_is_no_colour_is_located(tmp_path: Path) -> None:
    board, plan = load(tmp_path, BASE + 'cut:\n  captions: {color: "#zzzzzz"}\n')
    (problem,) = check_cut(board, plan)
    assert (problem.location.line, problem.location.path) == (7, "cut.captions.color")
    assert problem.location.col > 1
    assert "'#zzzzzz' is not a colour" in problem.message
    assert_same_as_build(tmp_path, board, plan, [problem])


def test_card_colours_backgrounds_and_durations(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a picture")
    text = BASE + textwrap.dedent(
        """\
        cut:
          title: {text: Hi, background: notes.txt, style: {color: "not-a-colour"}}
          end_card: {text: Bye, background: "rgb(300, 0)"}
        """
    )
    board, plan = load(tmp_path, text)
    problems = check_cut(board, plan)
    by_path = {p.location.path: p.message for p in problems}
    assert "neither a colour nor an image file (not a readable image" in by_path["cut.title.background"]
    assert "'not-a-colour' is not a colour" in by_path["cut.title.style.color"]
    assert "'rgb(300, 0)' is neither a colour nor an image file (no such file" in by_path["cut.end_card.background"]
    assert all(p.location.line for p in problems)
    assert_same_as_build(tmp_path, board, plan, problems)


def test_a_card_shorter_than_a_frame_at_the_output_rate(tmp_path: Path) -> None:
    board, plan = load(tmp_path, BASE + "cut:\n  title: {text: Hi, duration: 0.01}\n")
    (problem,) = check_cut(board, plan)
    assert problem.location.path == "cut.title.duration"
    assert "less than a frame at 24 fps" in problem.message


def test_an_output_rate_without_timecode_cannot_have_its_edl(tmp_path: Path) -> None:
    board, plan = load(tmp_path, BASE + "outputs:\n  - {name: slow, fps: 12}\n  - {name: pal, fps: 25}\n")
    (problem,) = check_cut(board, plan)
    assert (problem.location.line, problem.location.path) == (7, "outputs[0].fps")
    assert "12 fps has no SMPTE timecode" in problem.message


def test_fonts_that_cannot_be_found_when_text_is_drawn(tmp_path: Path) -> None:
    board, plan = load(tmp_path, BASE + "cut:\n  captions: {font: fonts/none.ttf}\n  end_card: {text: Bye, style: {font: fonts/gone.otf}}\n")
    problems = check_cut(board, plan)
    assert sorted(p.location.path for p in problems) == ["cut.captions.font", "cut.end_card.style.font"]
    assert all("none.ttf" in p.message or "gone.otf" in p.message for p in problems)
    # a font on a style that draws nothing (no shot has a caption) is never loaded: no problem
    quiet = BASE.replace(", caption: Hello", "") + "cut:\n  captions: {font: fonts/none.ttf}\n"
    assert check_cut(*load(tmp_path, quiet)) == []


def test_a_font_file_in_the_project_is_fine(tmp_path: Path) -> None:
    import storyboard

    package = Path(storyboard.__file__).parent
    candidates = sorted(package.rglob("*.ttf")) + sorted(Path("/usr/share/fonts").rglob("*.ttf"))
    if not candidates:
        pytest.skip("no TrueType font file on this machine")
    (tmp_path / "fonts").mkdir()
    shutil.copyfile(candidates[0], tmp_path / "fonts" / "mine.ttf")
    assert check_cut(*load(tmp_path, BASE + "cut:\n  captions: {font: fonts/mine.ttf}\n")) == []


def test_a_bed_that_is_missing_or_not_audio(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), "red").save(tmp_path / "bed.png")
    board, plan = load(tmp_path, BASE + "cut:\n  audio: {bed: bed.png}\n")
    (problem,) = check_cut(board, plan)
    assert (problem.location.line, problem.location.path) == (7, "cut.audio.bed.file")
    assert "bed.png is not usable as a music bed (no audio stream" in problem.message
    assert_same_as_build(tmp_path, board, plan, [problem])
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=1", str(tmp_path / "bed.m4a")], check=True)
    assert check_cut(*load(tmp_path, BASE + "cut:\n  audio: {bed: bed.m4a}\n")) == []


def test_transitions_longer_than_their_neighbours_from_planned_durations(tmp_path: Path) -> None:
    text = BASE + "cut:\n  transition: crossfade 1\n  shots:\n    - a\n    - {shot: b, trim_out: 4.5, transition: dissolve 2}\n    - c\n"
    board, plan = load(tmp_path, text)
    problems = check_cut(board, plan)
    assert [p.location.path for p in problems] == ["cut.shots[1].transition", "cut.transition"]
    assert "dissolve of 2 s into shot 'b' is longer than shot 'b' (0.5 s in the cut)" in problems[0].message
    assert "longer than shot 'b'" in problems[1].message
    assert_same_as_build(tmp_path, board, plan, problems)


def test_output_names_and_sizes(tmp_path: Path) -> None:
    text = BASE + "outputs:\n  - {name: wide, height: 721}\n  - {name: tall, aspect_ratio: '9:16'}\n"
    board, plan = load(tmp_path, text)
    (advisory,) = check_cut(board, plan)
    assert advisory.severity == "advisory" and advisory.location.path == "outputs[0].height"
    assert "height 721 is odd" in advisory.message and "720 px high" in advisory.message
    (unknown,) = errors(check_cut(board, plan, only=["square", "wide"]))
    assert unknown.location.path == "outputs"
    assert "unknown output(s): square" in unknown.message and "wide, tall" in unknown.message
    # an advisory does not stop the build; the odd height is built even
    wide, tall = build_timelines(board, plan, clips_for(tmp_path, plan))
    assert (wide.output.width, wide.output.height) == (1280, 720) and tall.output.height == 1080


def test_every_problem_of_a_broken_cut_in_one_pass(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent(
        """\
        cut:
          captions: {color: "#zzzzzz"}
          shots:
            - {shot: a, trim_in: 2, trim_out: 1}
            - {shot: c, transition: crossfade 5}
          end_card: {text: Bye, duration: 1}
        """
    )
    board, plan = load(tmp_path, text)
    problems = check_cut(board, plan)
    # the 0-frame shot is reported once, for its trims; the 5 s crossfade is longer than shot c
    assert [p.location.path for p in problems] == ["cut.captions.color", "cut.shots[0].trim_in", "cut.shots[1].transition"]
    assert all(p.location.line for p in problems)
    assert_same_as_build(tmp_path, board, plan, problems)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if (p / "storyboard.yaml").is_file()))
def test_the_examples_pass(example: str) -> None:
    board = loader.load(EXAMPLES / example)
    assert errors(check_cut(board, planner.plan(board))) == []
