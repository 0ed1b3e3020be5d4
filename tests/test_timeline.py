"""The cut timeline: frame arithmetic and errors (its side files: test_sidefiles.py)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from storyboard.assemble.timeline import (
    UNDECIDED,
    CardSegment,
    OutputFormat,
    ShotSegment,
    Timeline,
    build_timelines,
    default_outputs,
    lay_out,
    to_frames,
)
from storyboard.errors import InternalError, StoryboardInvalid, UserError
from storyboard.load.spec import Storyboard
from storyboard.media import ffmpeg_exe
from storyboard.plan import Plan, Request, ShotSlice
from tests.fakes.videos import result_video_path

# --------------------------------------------------------------------------------------------
# Builders: a loaded storyboard, a plan and clip files, by hand


@dataclass
class Loaded:
    storyboard: Storyboard
    file: Path
    project_dir: Path

    def resolve_path(self, rel: str) -> Path:
        return self.project_dir / rel


def slice_(shot_id: str, offset: float, rendered: float, keep: float, caption: str | None = None) -> ShotSlice:
    return ShotSlice(
        shot_id=shot_id, offset=offset, rendered=rendered, keep=keep, prompt=f"prompt of {shot_id}", caption=caption
    )


def request(rid: str, *pieces: ShotSlice, duration: int = 5, fps: int = 24, aspect: str = "16:9") -> Request:
    width, height = {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)}[aspect]
    return Request(
        id=rid,
        key=f"key-{rid}",
        external_task_id=f"sb-{rid}",
        family="text2video",
        endpoint="/v1/videos/text2video",
        model="kling-v3",
        mode="std",
        duration=duration,
        sound=False,
        aspect_ratio=aspect,
        width=width,
        height=height,
        fps=fps,
        body={},
        shots=list(pieces),
        units=3.0,
        usd=0.42,
    )


def plan_of(*requests: Request) -> Plan:
    return Plan(
        project="demo",
        storyboard="storyboard.yaml",
        requests=list(requests),
        units=sum(r.units for r in requests),
        usd=sum(r.usd for r in requests),
    )


def loaded(tmp_path: Path, **board: Any) -> Loaded:
    data: dict[str, Any] = {"name": "demo"}
    data.update(board)
    return Loaded(Storyboard.model_validate(data), tmp_path / "storyboard.yaml", tmp_path)


def placeholder_clips(tmp_path: Path, plan: Plan) -> dict[str, Path]:
    """Tiny real clips for the arithmetic tests: build_timelines reads each clip's size (to decide
    its framing), so only the ratio matters, not the length."""
    clips = {}
    for r in plan.requests:
        path = tmp_path / f"{r.id}.mp4"
        shutil.copyfile(result_video_path((1.0,), aspect_ratio=r.aspect_ratio), path)
        clips[r.key] = path
    return clips


def shots_of(timeline: Timeline) -> list[ShotSegment]:
    return [item for item in timeline.items if isinstance(item, ShotSegment)]


# A coffee ad: three shots; "pour" and "sip" share one multi-shot request.
SHOTS = [
    {"id": "beans", "duration": 3, "caption": "Fresh beans"},
    {"id": "pour", "duration": 2.5, "caption": "Slow pour"},
    {"id": "sip", "duration": 3},
]


def coffee_plan() -> Plan:
    return plan_of(
        request("r01-beans", slice_("beans", 0, 5, 3, caption="Fresh beans")),  # 5 s render of a 3 s shot
        request(
            "r02-pour",
            slice_("pour", 0, 2.5, 2.5, caption="Slow pour"),
            slice_("sip", 2.5, 3.5, 3),
            duration=6,
        ),
    )


def build(tmp_path: Path, plan: Plan | None = None, **board: Any) -> Timeline:
    plan = plan or coffee_plan()
    board.setdefault("shots", SHOTS)
    (timeline,) = build_timelines(loaded(tmp_path, **board), plan, placeholder_clips(tmp_path, plan))
    return timeline


# --------------------------------------------------------------------------------------------
# Outputs


def test_default_output_follows_the_project_ratio_and_mode(tmp_path: Path) -> None:
    assert default_outputs(loaded(tmp_path, shots=SHOTS)) == [OutputFormat("main", "16:9", 1280, 720, 24, "crop")]
    pro = loaded(tmp_path, shots=SHOTS, defaults={"mode": "pro", "aspect_ratio": "9:16"})
    assert default_outputs(pro) == [OutputFormat("main", "9:16", 608, 1080, 24, "crop")]
    four_k = loaded(tmp_path, shots=SHOTS, defaults={"mode": "4k", "aspect_ratio": "1:1"})
    assert default_outputs(four_k) == [OutputFormat("main", "1:1", 1080, 1080, 24, "crop")]


def test_declared_outputs_resolve_to_even_sizes(tmp_path: Path) -> None:
    board = loaded(
        tmp_path,
        shots=SHOTS,
        outputs=[
            {"name": "wide", "height": 1080},
            {"name": "story", "aspect_ratio": "9:16", "height": 1280, "fps": 30, "reframe": "blur"},
            {"name": "odd", "aspect_ratio": "1:1", "height": 145},
        ],
    )
    assert default_outputs(board) == [
        OutputFormat("wide", "16:9", 1920, 1080, 24, "crop"),
        OutputFormat("story", "9:16", 720, 1280, 30, "blur"),
        OutputFormat("odd", "1:1", 144, 144, 24, "crop"),
    ]


def test_one_timeline_per_output_and_only_selects(tmp_path: Path) -> None:
    plan = coffee_plan()
    board = loaded(tmp_path, shots=SHOTS, outputs=[{"name": "wide"}, {"name": "story", "aspect_ratio": "9:16", "fps": 30}])
    clips = placeholder_clips(tmp_path, plan)
    wide, story = build_timelines(board, plan, clips)
    assert (wide.name, wide.total_frames) == ("wide", 24 * 8 + 12)
    assert (story.name, story.total_frames) == ("story", 30 * 8 + 15)
    assert story.reframed == ("beans", "pour", "sip")  # 16:9 clips in a 9:16 output
    assert wide.reframed == ()
    (only,) = build_timelines(board, plan, clips, only=["story"])
    assert only.name == "story"
    with pytest.raises(UserError, match="(?s)unknown output.*square.*outputs of .*storyboard.yaml: wide, story"):
        build_timelines(board, plan, clips, only=["square"])


# --------------------------------------------------------------------------------------------
# Order, trims, slices


def test_default_order_is_storyboard_order_and_a_5s_render_of_a_3s_shot_keeps_3s(tmp_path: Path) -> None:
    timeline = build(tmp_path)
    beans, pour, sip = shots_of(timeline)
    assert [s.shot_id for s in timeline.items] == ["beans", "pour", "sip"]
    assert (beans.source_in_frame, beans.frames, beans.record_start_frame) == (0, 72, 0)
    # multi-shot clip: sip starts 2.5 s into r02-pour's clip
    assert (pour.source_in_frame, pour.frames, pour.record_start_frame) == (0, 60, 72)
    assert (sip.source_in_frame, sip.frames, sip.record_start_frame) == (60, 72, 132)
    assert pour.clip == sip.clip and pour.request.id == sip.request.id == "r02-pour"
    assert timeline.total_frames == 204
    assert [s.transition.type for s in timeline.items] == ["cut", "cut", "cut"]
    assert all(s.source_fps == 24 for s in timeline.items)
    assert beans.prompt == "prompt of beans"


def test_cut_order_trims_and_repeats(tmp_path: Path) -> None:
    timeline = build(
        tmp_path,
        cut={
            "shots": [
                "sip",
                {"shot": "beans", "trim_in": 0.5, "trim_out": 0.25},
                {"shot": "sip", "trim_in": 1},
            ]
        },
    )
    first, beans, again = shots_of(timeline)
    assert [s.shot_id for s in timeline.items] == ["sip", "beans", "sip"]
    assert (first.source_in_frame, first.frames) == (60, 72)
    assert (beans.source_in_frame, beans.frames, beans.record_start_frame) == (12, 54, 72)
    assert (again.source_in_frame, again.frames, again.record_start_frame) == (60 + 24, 48, 126)
    assert timeline.total_frames == 174


def test_clip_fps_differs_from_output_fps(tmp_path: Path) -> None:
    plan = plan_of(
        request("r01-beans", slice_("beans", 0, 5, 3), fps=24),
        request("r02-pour", slice_("pour", 0, 2.5, 2.5), slice_("sip", 2.5, 3.5, 3), duration=6, fps=30),
    )
    timeline = build(tmp_path, plan, outputs=[{"name": "main", "fps": 25}], cut={"shots": [{"shot": "sip", "trim_in": 0.5}]})
    (sip,) = shots_of(timeline)
    assert (sip.source_fps, sip.source_in_frame) == (30, 90)  # (2.5 + 0.5) s at the clip's 30 fps
    assert sip.frames == 63  # 2.5 s at the output's 25 fps, 62.5 rounded half up
    assert sip.source_frames(25) == 76  # 63 frames at 25 fps = 75.6 frames at 30 fps


def test_seconds_become_frames_once_with_exact_decimals(tmp_path: Path) -> None:
    # 0.02 s at 25 fps is half a frame: 74.5 kept frames round half up to 75, every time
    plan = plan_of(*[request(f"r{i:02d}-s{i}", slice_(f"s{i}", 0, 5, 3)) for i in range(12)])
    shots = [{"id": f"s{i}", "duration": 3} for i in range(12)]
    timeline = build(
        tmp_path,
        plan,
        shots=shots,
        outputs=[{"name": "main", "fps": 25}],
        cut={"shots": [{"shot": f"s{i}", "trim_out": 0.02} for i in range(12)]},
    )
    assert {s.frames for s in timeline.items} == {75}
    assert [s.record_start_frame for s in timeline.items] == [75 * i for i in range(12)]
    assert timeline.total_frames == 900
    assert to_frames(0.1 + 0.2, 30) == 9 and to_frames(2.3 - 0.1 - 0.2, 30) == 60


def test_trims_that_leave_nothing_name_the_shot_and_field(tmp_path: Path) -> None:
    with pytest.raises(StoryboardInvalid) as caught:
        build(
            tmp_path,
            cut={"shots": ["beans", {"shot": "pour", "trim_in": 1.5, "trim_out": 1}, {"shot": "sip", "trim_in": 3}]},
        )
    text = str(caught.value)
    assert "storyboard.yaml: cut.shots[1].trim_in: shot 'pour': trim_in 1.5 s + trim_out 1 s leave nothing of its 2.5 s" in text
    assert "cut.shots[2].trim_in: shot 'sip'" in text
    assert len(caught.value.problems) == 2
    assert "Traceback" not in text


def test_a_kept_range_past_the_rendered_slice_is_an_error(tmp_path: Path) -> None:
    stale = plan_of(
        request("r01-beans", slice_("beans", 0, 2, 3)),  # renders 2 s but the cut keeps 3
        request("r02-pour", slice_("pour", 0, 2.5, 2.5), slice_("sip", 2.5, 3.5, 3), duration=6),
    )
    with pytest.raises(StoryboardInvalid, match=r"shots\[0\]: shot 'beans' keeps 3 s but its request r01-beans renders only 2 s"):
        build(tmp_path, stale)
    # trimming the end back inside the render is fine
    timeline = build(tmp_path, stale, cut={"shots": [{"shot": "beans", "trim_out": 1}, "sip"]})
    assert timeline.items[0].frames == 48


def test_unknown_cut_shot_and_stale_plan(tmp_path: Path) -> None:
    with pytest.raises(StoryboardInvalid, match=r"cut.shots\[1\].shot: the cut uses shot 'latte'"):
        build(tmp_path, cut={"shots": ["beans", "latte"]})
    with pytest.raises(StoryboardInvalid, match=r"cut.shots: the cut has no shots"):
        build(tmp_path, cut={"shots": []})
    old_plan = plan_of(request("r01-beans", slice_("beans", 0, 5, 3)))
    with pytest.raises(UserError, match=r"(?s)the plan has no request for shot\(s\) pour, sip: it is older than .*storyboard.yaml.*run storyboard plan"):
        build(tmp_path, old_plan)


# --------------------------------------------------------------------------------------------
# Transitions and cards


def test_overlaps_shift_record_starts_and_shorten_the_total(tmp_path: Path) -> None:
    timeline = build(
        tmp_path,
        cut={
            "transition": "crossfade 0.5",
            "shots": ["beans", {"shot": "pour", "transition": "fade_black 1"}, {"shot": "sip", "transition": "cut"}],
            "title": {"text": "Morning", "duration": 2},
            "end_card": "Buy now",
        },
    )
    title, beans, pour, sip, end = timeline.items
    assert isinstance(title, CardSegment) and title.kind == "title" and title.card.text == "Morning"
    assert isinstance(end, CardSegment) and end.kind == "end"
    assert [i.frames for i in timeline.items] == [48, 72, 60, 72, 48]
    # title (cut) | crossfade 12 f into beans | fade_black 24 f into pour | cut into sip | crossfade 12 f into the end card
    assert [(i.transition.type, i.transition.duration) for i in timeline.items] == [
        ("cut", 0),
        ("crossfade", 0.5),
        ("fade_black", 1.0),
        ("cut", 0),
        ("crossfade", 0.5),
    ]
    assert [i.record_start_frame for i in timeline.items] == [0, 36, 84, 144, 204]
    assert [timeline.overlap_frames(i) for i in range(5)] == [0, 12, 24, 0, 12]
    assert timeline.total_frames == sum(i.frames for i in timeline.items) - 48 == 252
    assert timeline.duration == 252 / 24


def test_first_item_always_starts_with_a_cut(tmp_path: Path) -> None:
    timeline = build(tmp_path, cut={"shots": [{"shot": "beans", "transition": "crossfade 1"}, "pour"], "transition": "dissolve 0.25"})
    assert timeline.items[0].transition.type == "cut" and timeline.items[0].record_start_frame == 0
    assert (timeline.items[1].transition.type, timeline.items[1].record_start_frame) == ("dissolve", 66)


def test_transition_durations_are_quantised_to_output_frames(tmp_path: Path) -> None:
    timeline = build(tmp_path, cut={"transition": "crossfade 0.3"})  # 7.2 frames at 24 fps
    assert timeline.overlap_frames(1) == 7
    assert timeline.items[1].transition.duration == pytest.approx(7 / 24)
    tiny = build(tmp_path, cut={"transition": "crossfade 0.01"})  # rounds to 0 frames: a cut
    assert [i.transition.type for i in tiny.items] == ["cut", "cut", "cut"]
    assert tiny.total_frames == 204


def test_a_transition_longer_than_a_neighbour_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoryboardInvalid) as caught:
        build(tmp_path, cut={"shots": ["beans", {"shot": "pour", "trim_in": 1.5, "transition": "crossfade 1.5"}]})
    assert "cut.shots[1].transition: crossfade of 1.5 s into shot 'pour' is longer than shot 'pour' (1 s in the cut)" in str(
        caught.value
    )


def test_overlaps_on_both_sides_may_not_exceed_the_item(tmp_path: Path) -> None:
    with pytest.raises(StoryboardInvalid, match=r"transitions into and out of shot 'pour' \(1 s \+ 1 s\) are longer than it \(1.5 s\)"):
        build(tmp_path, cut={"transition": "crossfade 1", "shots": ["beans", {"shot": "pour", "trim_out": 1}, "sip"]})


def test_card_background_image_and_bed_become_absolute(tmp_path: Path) -> None:
    Image.new("RGB", (64, 36), "red").save(tmp_path / "logo.png")
    (tmp_path / "music").mkdir()
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=1", str(tmp_path / "music" / "bed.m4a")],
                   check=True)
    timeline = build(
        tmp_path,
        cut={"title": {"text": "Hi", "background": "logo.png"}, "end_card": {"text": "Bye", "background": "#ff8800"},
             "audio": {"bed": "music/bed.m4a"}},
    )
    assert timeline.items[0].card.background == str((tmp_path / "logo.png").resolve())
    assert timeline.items[-1].card.background == "#ff8800"
    assert timeline.bed == (tmp_path / "music" / "bed.m4a").resolve()
    with pytest.raises(UserError, match=r"cut.audio.bed.file: gone.mp3 not found"):
        build(tmp_path, cut={"audio": {"bed": "gone.mp3"}})
    with pytest.raises(UserError, match=r"cut.title.background: 'nope.png' is neither a colour nor an image file"):
        build(tmp_path, cut={"title": {"text": "Hi", "background": "nope.png"}})


# --------------------------------------------------------------------------------------------
# Clips that are not there yet


def test_missing_clips_name_every_shot_and_its_request(tmp_path: Path) -> None:
    plan = coffee_plan()
    board = loaded(tmp_path, shots=SHOTS)
    clips = placeholder_clips(tmp_path, plan)
    del clips["key-r02-pour"]
    with pytest.raises(UserError) as caught:
        build_timelines(board, plan, clips)
    assert str(caught.value) == "shots not rendered yet: pour (r02-pour), sip (r02-pour): run storyboard render first"
    # a journal that points at a deleted file is just as absent
    clips = placeholder_clips(tmp_path, plan)
    clips["key-r01-beans"].unlink()
    with pytest.raises(UserError, match=r"^shots not rendered yet: beans \(r01-beans\): run storyboard render first$"):
        build_timelines(board, plan, clips)


def test_problems_point_at_the_storyboard_line_with_the_real_loader(tmp_path: Path) -> None:
    loader = pytest.importorskip("storyboard.load.loader")
    text = (
        "name: demo\n"
        "shots:\n"
        "  - {id: beans, duration: 3}\n"
        "  - {id: pour, duration: 2.5}\n"
        "  - {id: sip, duration: 3}\n"
        "cut:\n"
        "  shots:\n"
        "    - beans\n"
        "    - shot: pour\n"
        "      trim_in: 2\n"
        "      trim_out: 1\n"
    )
    board = loader.load_text(text, tmp_path / "storyboard.yaml", tmp_path)
    plan = coffee_plan()
    with pytest.raises(StoryboardInvalid) as caught:
        build_timelines(board, plan, placeholder_clips(tmp_path, plan))
    (problem,) = caught.value.problems
    assert (problem.location.line, problem.location.path) == (10, "cut.shots[1].trim_in")


# --------------------------------------------------------------------------------------------
# The decisions a timeline carries (the assembler and the side files read them, never redo them)


def test_framing_is_decided_from_the_clip_itself(tmp_path: Path) -> None:
    """An image-to-video clip follows its start frame, whatever ratio the plan expected: the
    framing comes from the clip's real size, so the assembler, the sheet and the notes agree."""
    plan = coffee_plan()  # both requests planned 16:9
    board = loaded(tmp_path, shots=SHOTS, outputs=[{"name": "wide"}, {"name": "story", "aspect_ratio": "9:16", "reframe": "blur"}])
    clips = placeholder_clips(tmp_path, plan)
    shutil.copyfile(result_video_path((1.0,), aspect_ratio="1:1"), clips["key-r02-pour"])  # came back square
    wide, story = build_timelines(board, plan, clips)
    assert [(s.shot_id, s.framing.how, s.framing.source_width, s.framing.source_height) for s in wide.shots] == [
        ("beans", "none", 160, 90),
        ("pour", "crop", 96, 96),
        ("sip", "crop", 96, 96),
    ]
    assert wide.reframed == ("pour", "sip")
    assert {s.framing.how for s in story.shots} == {"blur"} and story.reframed == ("beans", "pour", "sip")
    assert wide.shots[0].framing.scaled(wide.output)  # 160x90 into 1280x720: same ratio, scaled


def test_lay_out_is_what_build_timelines_does_and_is_idempotent(tmp_path: Path) -> None:
    timeline = build(tmp_path, cut={"transition": "crossfade 0.3", "title": "Morning", "end_card": "Bye"})
    again = lay_out(timeline.name, timeline.output, timeline.items, audio=timeline.audio, bed=timeline.bed,
                    captions=timeline.captions)
    assert again == timeline
    assert [i.overlap for i in timeline.items] == [0, 7, 7, 7, 7]
    assert [timeline.overlap_frames(i) for i in range(5)] == [0, 7, 7, 7, 7]


def test_a_timeline_that_does_not_add_up_cannot_be_made(tmp_path: Path) -> None:
    timeline = build(tmp_path)
    first, second, third = timeline.items
    with pytest.raises(InternalError, match="item 1 starts at 70, not 72"):
        replace(timeline, items=(first, replace(second, record_start_frame=70), third))
    with pytest.raises(InternalError, match="items add up to 204 frames, total_frames says 200"):
        replace(timeline, total_frames=200)
    with pytest.raises(InternalError, match="shot pour has no framing decision"):
        replace(timeline, items=(first, replace(second, framing=UNDECIDED), third))
    with pytest.raises(InternalError, match="item 1 overlaps by 100 frames"):
        replace(timeline, items=(first, replace(second, overlap=100, record_start_frame=-28), third))
