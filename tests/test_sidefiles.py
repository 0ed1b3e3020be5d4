"""The files beside a cut: SRT, the editor handoff (OTIO + EDL + collected media, converted with
OTIO's own FCP 7 XML and FCPXML adapters) and the contact sheet."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

from storyboard.assemble import sidefiles
from storyboard.assemble.sidefiles import (
    FCM_LINE,
    card_image,
    edl_available,
    frame_image,
    reframed_thumbnail,
    sheet_frame,
    srt_text,
    write_contact_sheet,
    write_otio,
    write_srt,
)
from storyboard.assemble.timeline import CardSegment, ShotSegment, Timeline, build_timelines
from storyboard.load import loader
from storyboard.load.spec import Card
from storyboard.media import ffmpeg_exe, probe
from storyboard.plan import planner
from tests.fakes.videos import result_video_path
from tests.test_timeline import SHOTS, build, coffee_plan, loaded, placeholder_clips, plan_of, request, slice_

REPO = Path(__file__).resolve().parent.parent
PROJECTS = sorted(p.parent.name for p in (REPO / "projects").glob("*/storyboard.yaml"))

# --------------------------------------------------------------------------------------------
# SRT


def test_srt_has_one_cue_per_captioned_shot_at_record_times(tmp_path: Path) -> None:
    timeline = build(
        tmp_path,
        outputs=[{"name": "main", "fps": 30}],
        cut={
            "transition": "crossfade 0.5",
            "title": "Morning",
            "shots": ["beans", {"shot": "pour", "caption": ""}, {"shot": "sip", "caption": "Good to\n\nthe last drop"}],
        },
    )
    expected = (
        "1\n00:00:01,500 --> 00:00:04,500\nFresh beans\n"
        "\n"
        "2\n00:00:06,000 --> 00:00:09,000\nGood to\nthe last drop\n"
    )
    assert srt_text(timeline) == expected
    path = tmp_path / "main.srt"
    assert write_srt(timeline, path) == path
    assert path.read_text(encoding="utf-8") == expected


def test_a_cut_without_captions_gets_no_srt_and_loses_a_stale_one(tmp_path: Path) -> None:
    timeline = build(tmp_path, cut={"shots": [{"shot": s, "caption": ""} for s in ("beans", "pour", "sip")]})
    path = tmp_path / "main.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:01,000\nold caption\n", encoding="utf-8")
    assert write_srt(timeline, path) is None
    assert not path.exists()


def test_srt_timestamps_past_an_hour(tmp_path: Path) -> None:
    from storyboard.assemble.timeline import srt_time

    assert srt_time(24 * 3725 + 12, 24) == "01:02:05,500"
    assert srt_time(1, 30) == "00:00:00,033"
    assert srt_time(2, 30) == "00:00:00,067"


# --------------------------------------------------------------------------------------------
# Real clips (tiny)


def make_clip(path: Path, seconds: int, fps: int = 24, size: str = "160x90", gop: int | None = None) -> Path:
    """A clip whose frame N has luma 16 + N (video range): the decoded picture tells which frame it is.
    ``gop``: frames between keyframes (default one a second)."""
    subprocess.run(
        [
            ffmpeg_exe(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"color=c=black:s={size}:r={fps}:d={seconds}",
            "-vf", "geq=lum='16+min(N,219)':cb=128:cr=128",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", str(gop or fps), "-pix_fmt", "yuv420p",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def real_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "key-r01-beans": make_clip(folder / "beans.mp4", 5),
        "key-r02-pour": make_clip(folder / "pour_sip.mp4", 6),
    }


def frame_number(picture: Image.Image) -> int:
    """Which frame of make_clip's clips a decoded picture is (RGB back to limited-range luma)."""
    grey = picture.convert("L").getpixel((picture.width // 2, picture.height // 2))
    return round(grey * 219 / 255)


def test_frame_image_decodes_the_requested_frame(real_clips: dict[str, Path]) -> None:
    clip = real_clips["key-r02-pour"]
    assert probe(clip).frames == 144
    for index in (0, 23, 24, 60, 101, 143):
        assert abs(frame_number(frame_image(clip, index)) - index) <= 1, index
    assert abs(frame_number(frame_image(clip, 500)) - 143) <= 1  # past the end: the last frame


def test_sheet_frame_is_the_keyframe_before_the_middle_inside_the_kept_range(tmp_path: Path) -> None:
    every_second = make_clip(tmp_path / "gop24.mp4", 6)
    shown = sheet_frame(every_second, 0, 60)  # keyframes at 0, 24, 48, 72...
    assert shown.index == 48 and abs(frame_number(shown.image) - 48) <= 1
    shown = sheet_frame(every_second, 50, 70)  # the keyframe before 70 is 48, before the range: decode on to 50
    assert 50 <= shown.index <= 52 and abs(frame_number(shown.image) - shown.index) <= 1

    one_keyframe = make_clip(tmp_path / "gop250.mp4", 6, gop=250)  # like a Kling clip
    assert sheet_frame(one_keyframe, 0, 60).index == 0
    shown = sheet_frame(one_keyframe, 60, 96)  # a later shot of a multi-shot clip
    assert 60 <= shown.index <= 62 and abs(frame_number(shown.image) - shown.index) <= 1
    # the picture is scaled down in the decoder to what the sheet needs
    assert sheet_frame(one_keyframe, 0, 60, cover=(80, 20)).image.size == (80, 45)


# --------------------------------------------------------------------------------------------
# Editor handoff


def handoff_timeline(tmp_path: Path, real_clips: dict[str, Path], **cut: object) -> Timeline:
    board = loaded(
        tmp_path,
        shots=SHOTS,
        cut=cut
        or {
            "transition": "crossfade 0.5",
            "title": "Morgen früh",
            "shots": ["beans", {"shot": "pour", "trim_in": 0.25, "transition": "fade_white 1"}, "sip"],
        },
    )
    (timeline,) = build_timelines(board, coffee_plan(), real_clips)
    return timeline


def test_otio_round_trip_matches_the_timeline(tmp_path: Path, real_clips: dict[str, Path]) -> None:
    timeline = handoff_timeline(tmp_path, real_clips)
    path = tmp_path / "out" / "main.otio"
    path.parent.mkdir()
    handoff = write_otio(timeline, path, task_ids={"key-r01-beans": "task-123"}, costs={"key-r01-beans": 2.5})

    loaded_back = otio.adapters.read_from_file(str(path))
    assert loaded_back.name == "main"
    assert loaded_back.duration().rescaled_to(24).value == timeline.total_frames == 48 + 72 + 54 + 72 - 48
    (track,) = loaded_back.video_tracks()
    assert loaded_back.audio_tracks() == []  # the clips have no sound and there is no bed
    clips = list(track.find_clips())
    assert [c.name for c in clips] == ["title card", "beans", "pour", "sip"]
    transitions = [child for child in track if isinstance(child, otio.schema.Transition)]
    assert [(t.in_offset.value + t.out_offset.value) for t in transitions] == [12, 24, 12]
    assert all(t.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve for t in transitions)
    assert [t.metadata["storyboard"]["type"] for t in transitions] == ["crossfade", "fade_white", "crossfade"]

    # media are collected beside the cut, in cut order, linked relatively; a shared clip once
    media = path.parent / "main_media"
    assert handoff.media == media
    assert sorted(p.name for p in media.iterdir()) == ["01-title.png", "02-beans.mp4", "03-pour.mp4"]
    urls = [c.media_reference.target_url for c in clips]
    assert urls == ["main_media/01-title.png", "main_media/02-beans.mp4", "main_media/03-pour.mp4", "main_media/03-pour.mp4"]
    assert (media / "02-beans.mp4").read_bytes() == real_clips["key-r01-beans"].read_bytes()
    assert os.path.samefile(media / "02-beans.mp4", real_clips["key-r01-beans"])  # a hard link: no copy

    for clip, item in zip(clips, timeline.items):
        visible = clip.visible_range()  # the clip's range plus the handles its transitions reveal
        target = path.parent / clip.media_reference.target_url
        if isinstance(item, ShotSegment):
            assert visible.start_time.rate == item.source_fps
            assert visible.start_time.value == item.source_in_frame
            assert visible.duration.rescaled_to(24).value == item.frames
            assert clip.media_reference.available_range.duration.value == probe(target).frames
        else:
            assert visible.duration.value == item.frames
            assert Image.open(target).size == (timeline.output.width, timeline.output.height)
        # where the clip's visible range starts on the track is its record start
        in_track = track.range_of_child(clip)
        previous = track.neighbors_of(clip)[0]
        head = previous.in_offset.value if isinstance(previous, otio.schema.Transition) else 0
        assert in_track.start_time.value - head == item.record_start_frame

    beans_meta = clips[1].metadata["storyboard"]
    assert beans_meta["shot_id"] == "beans" and beans_meta["prompt"] == "prompt of beans"
    assert (beans_meta["request_key"], beans_meta["request_id"], beans_meta["kling_task_id"]) == (
        "key-r01-beans",
        "r01-beans",
        "task-123",
    )
    assert beans_meta["cost"] == {"units": 2.5, "usd": 0.35, "charged": True}
    assert clips[2].metadata["storyboard"]["cost"] == {"units": 3.0, "usd": 0.42, "charged": False}
    assert clips[2].metadata["storyboard"]["kling_task_id"] is None

    assert edl_available()  # otio-cmx3600-adapter is a dependency
    assert handoff.edl == path.with_suffix(".edl")
    text = handoff.edl.read_text()
    assert text.startswith(f"TITLE: main\n{FCM_LINE}\n")
    # events: the title card still, then dissolves into beans, pour (fade_white) and sip; reels are the files
    assert "001  01-title V     C        00:00:00:00 00:00:01:12 00:00:00:00 00:00:01:12" in text
    assert "002  02-beans V     D 012    00:00:00:00 00:00:02:00 00:00:01:12 00:00:03:12" in text
    assert "003  03-pour  V     D 024    00:00:00:06 00:00:02:00 00:00:03:12 00:00:05:06" in text
    assert "004  03-pour  V     D 012    00:00:02:12 00:00:05:12 00:00:05:06 00:00:08:06" in text
    assert "* FROM CLIP NAME:  beans" in text and "* TO CLIP NAME:  pour" in text
    assert "main_media/02-beans.mp4" in text
    # the EDL reads back, and its reels name the collected files
    edl = otio.adapters.read_from_file(str(handoff.edl), adapter_name="cmx_3600", rate=24)
    reels = {c.metadata.get("cmx_3600", {}).get("reel") for c in edl.find_clips()}
    assert reels <= {p.stem for p in media.iterdir()} and len(reels) == 3
    # the EDL writer edits the track it is given: the .otio must not have been touched
    assert otio.adapters.read_from_file(str(path)).duration().value == timeline.total_frames


def test_a_rerun_relinks_and_clears_what_the_cut_no_longer_uses(tmp_path: Path, real_clips: dict[str, Path]) -> None:
    path = tmp_path / "main.otio"
    write_otio(handoff_timeline(tmp_path, real_clips), path)
    (tmp_path / "main_media" / "99-old.mp4").write_bytes(b"old")
    handoff = write_otio(handoff_timeline(tmp_path, real_clips, shots=["sip"]), path)
    assert sorted(p.name for p in handoff.media.iterdir()) == ["01-sip.mp4"]


def test_card_stills_show_the_card(tmp_path: Path) -> None:
    plain = card_image(Card(text="Morgen früh"), 320, 180)
    assert plain.getpixel((2, 2)) == (0, 0, 0)
    assert plain.convert("L").getextrema()[1] > 200  # white text is drawn
    background = tmp_path / "bg.png"
    Image.new("RGB", (100, 100), (200, 30, 30)).save(background)
    on_image = card_image(Card(text="x", background=str(background)), 320, 180)
    assert on_image.size == (320, 180) and on_image.getpixel((2, 2)) == (200, 30, 30)


def test_clip_sound_and_the_bed_are_on_audio_tracks(tmp_path: Path) -> None:
    sounding = result_video_path((5.0,), sound=True)
    silent = result_video_path((6.0,))
    bed = tmp_path / "bed.m4a"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=220:duration=4",
                    "-c:a", "aac", str(bed)], check=True)  # fmt: skip
    board = loaded(
        tmp_path,
        shots=SHOTS,
        cut={"transition": "crossfade 0.5", "end_card": "Ende", "audio": {"bed": {"file": "bed.m4a", "loop": True}}},
    )
    (timeline,) = build_timelines(board, coffee_plan(), {"key-r01-beans": sounding, "key-r02-pour": silent})
    handoff = write_otio(timeline, tmp_path / "main.otio")
    result = otio.adapters.read_from_file(str(handoff.otio))
    video, clip_sound, music = result.tracks
    assert (clip_sound.kind, music.kind) == (otio.schema.TrackKind.Audio, otio.schema.TrackKind.Audio)
    for track in result.tracks:
        assert track.duration().value == timeline.total_frames, track.name
    (heard,) = clip_sound.find_clips()
    assert heard.metadata["storyboard"]["shot_id"] == "beans"
    assert heard.media_reference.target_url == "main_media/01-beans.mp4"
    # the bed (4 s) loops under the 9.5 s cut: three clips of the collected file
    beds = list(music.find_clips())
    assert [c.source_range.duration.value for c in beds] == [96, 96, timeline.total_frames - 192]
    assert {c.media_reference.target_url for c in beds} == {"main_media/bed.m4a"}
    assert (tmp_path / "main_media" / "bed.m4a").read_bytes() == bed.read_bytes()

    # both clips sounding: the crossfades are on A1 too, and both XML formats keep every track
    (timeline,) = build_timelines(board, coffee_plan(), {"key-r01-beans": sounding, "key-r02-pour": sounding})
    result = otio.adapters.read_from_file(str(write_otio(timeline, tmp_path / "both.otio").otio))
    assert len([c for c in result.tracks[1] if isinstance(c, otio.schema.Transition)]) == 2
    for adapter, suffix in (("fcp_xml", ".xml"), ("fcpx_xml", ".fcpxml")):
        converted = tmp_path / f"both{suffix}"
        otio.adapters.write_to_file(result, str(converted), adapter_name=adapter)
        back = otio.adapters.read_from_file(str(converted), adapter_name=adapter)
        assert back.duration().rescaled_to(24).value == timeline.total_frames, adapter
        assert len(back.audio_tracks()) == 2 and len(back.video_tracks()) == 1, adapter

    # clip sound dropped: no A1
    board = loaded(tmp_path, shots=SHOTS, cut={"audio": {"clip_audio": "drop"}})
    (timeline,) = build_timelines(board, coffee_plan(), {"key-r01-beans": sounding, "key-r02-pour": silent})
    result = otio.adapters.read_from_file(str(write_otio(timeline, tmp_path / "drop.otio").otio))
    assert result.audio_tracks() == []


def _fake_clips(plan: planner.Plan, folder: Path) -> dict[str, Path]:
    """One tiny fake Kling result per request (tests/fakes/videos.py), as long as Kling renders it."""
    clips = {}
    for request_ in plan.requests:
        shots = tuple(piece.rendered for piece in request_.shots) or (float(request_.duration),)
        ratio = request_.aspect_ratio if request_.aspect_ratio in ("16:9", "9:16", "1:1") else "16:9"
        clips[request_.key] = result_video_path(shots, sound=request_.sound, aspect_ratio=ratio)
    return clips


@pytest.mark.parametrize("name", PROJECTS)
def test_every_example_converts_to_fcp7_xml_and_fcpxml_with_its_duration(name: str, tmp_path: Path) -> None:
    project = tmp_path / name
    shutil.copytree(REPO / "projects" / name, project, ignore=shutil.ignore_patterns(".storyboard", "out"))
    board = loader.load(project)
    plan = planner.plan(board)
    for timeline in build_timelines(board, plan, _fake_clips(plan, tmp_path / "clips")):
        out = project / "out"
        out.mkdir(exist_ok=True)
        handoff = write_otio(timeline, out / f"{timeline.name}.otio")
        original = otio.adapters.read_from_file(str(handoff.otio))
        assert original.duration().rescaled_to(timeline.output.fps).value == timeline.total_frames
        for item in original.find_clips():  # every link is relative and points at a collected file
            url = item.media_reference.target_url
            assert not url.startswith(("file:", "/")) and (out / url).is_file(), url
        if any(isinstance(i, CardSegment) for i in timeline.items):
            assert list(handoff.media.glob("*.png"))
        for adapter, suffix in (("fcp_xml", ".xml"), ("fcpx_xml", ".fcpxml")):
            converted = out / f"{timeline.name}{suffix}"
            otio.adapters.write_to_file(original, str(converted), adapter_name=adapter)
            back = otio.adapters.read_from_file(str(converted), adapter_name=adapter)
            if isinstance(back, otio.schema.SerializableCollection):
                (back,) = back.find_children(descended_from_type=otio.schema.Timeline) or list(back)
            assert back.duration().rescaled_to(timeline.output.fps).value == timeline.total_frames, adapter
            assert len(back.video_tracks()) == 1, adapter


# --------------------------------------------------------------------------------------------
# Contact sheet


def test_contact_sheet_shows_a_keyframe_of_each_kept_range(tmp_path: Path, real_clips: dict[str, Path]) -> None:
    plan = coffee_plan()
    board = loaded(
        tmp_path,
        shots=SHOTS,
        cut={"title": "Morning", "shots": [{"shot": "beans", "trim_in": 1}, "pour", {"shot": "sip", "trim_out": 1}]},
    )
    (timeline,) = build_timelines(board, plan, real_clips)
    path = tmp_path / "main.contact.png"
    write_contact_sheet(timeline, path)
    sheet = Image.open(path)
    assert sheet.format == "PNG"
    # three tiles in one row: 3 x (320 + 12) + 12 wide
    assert sheet.width == 3 * (320 + 12) + 12
    # keyframes every 24 frames; the last at or before each middle, inside the kept range:
    # beans keeps 24..72 (middle 48 -> 48), pour 0..60 (middle 30 -> 24), sip 60..108 (middle 84 -> 72)
    header_h = 20 + 2 * 12
    for column, expected in enumerate((48, 24, 72)):
        x = 12 + column * (320 + 12)
        tile = sheet.crop((x, header_h, x + 320, header_h + 180))
        assert abs(frame_number(tile) - expected) <= 1, (column, frame_number(tile))


def test_the_sheet_shows_the_reframe_the_cut_uses() -> None:
    landscape = Image.new("RGB", (160, 90), (255, 0, 0))
    landscape.paste((0, 0, 255), (80, 0, 160, 90))  # left half red, right half blue
    crop = reframed_thumbnail(landscape, (90, 160), "crop")
    assert crop.size == (90, 160)
    assert crop.getpixel((2, 2)) == (255, 0, 0) and crop.getpixel((87, 157)) == (0, 0, 255)  # filled, no bars
    blur = reframed_thumbnail(landscape, (90, 160), "blur")
    assert blur.size == (90, 160)
    middle = np.asarray(blur)[80]
    assert tuple(middle[2]) == (255, 0, 0) and tuple(middle[87]) == (0, 0, 255)  # the whole frame, fitted
    top = np.asarray(blur)[2, 45]
    assert 40 < top[0] < 215 and 40 < top[2] < 215  # the blurred fill above it
    assert reframed_thumbnail(landscape, (320, 180), "blur").getpixel((2, 2)) == (255, 0, 0)  # same ratio


def test_sheet_text_stays_inside_its_tile(tmp_path: Path, real_clips: dict[str, Path]) -> None:
    long_id = "a-very-long-shot-identifier-that-goes-on-and-on"
    plan = plan_of(
        request("r01-" + long_id, slice_(long_id, 0, 5, 3)),
        request("r02-pour", slice_("pour", 0, 2.5, 2.5), slice_("sip", 2.5, 3.5, 3), duration=6),
    )
    prompt = "Supercalifragilisticexpialidocious" * 4 + " and many more words " * 20
    plan = plan.model_copy(
        update={"requests": [r.model_copy(update={"shots": [s.model_copy(update={"prompt": prompt}) for s in r.shots]})
                             for r in plan.requests]}
    )
    shots = [{"id": long_id, "duration": 3}, {"id": "pour", "duration": 2.5}, {"id": "sip", "duration": 3}]
    board = loaded(tmp_path, name="a storyboard whose name is far too long for one narrow tile " * 3, shots=shots,
                   outputs=[{"name": "vertical", "aspect_ratio": "9:16", "height": 1080}],
                   cut={"transition": "crossfade 0.5", "shots": [long_id]})
    clips = {"key-r01-" + long_id: real_clips["key-r01-beans"], "key-r02-pour": real_clips["key-r02-pour"]}
    (timeline,) = build_timelines(board, plan, clips)
    path = tmp_path / "sheet.png"
    write_contact_sheet(timeline, path)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    background = np.array(sidefiles.BACKGROUND)
    pad = sidefiles.PADDING
    # the right-hand margin is untouched: nothing ran past the tile (or the header)
    assert (sheet[:, -pad:] == background).all()
    assert (sheet[-4:, :] == background).all()


def test_an_unreadable_clip_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    from storyboard.errors import UserError

    plan = coffee_plan()
    clips = placeholder_clips(tmp_path, plan)
    (timeline,) = build_timelines(loaded(tmp_path, shots=SHOTS), plan, clips)
    from storyboard.media import forget_cached_facts

    beans = next(path for path in clips.values() if path.name.endswith("r01-beans.mp4"))
    beans.write_bytes(b"\x00not a video" * 64)  # damaged after the cut was laid out
    forget_cached_facts()
    with pytest.raises(UserError, match=r"r01-beans\.mp4: not a readable video") as caught:
        write_contact_sheet(timeline, tmp_path / "x.png")
    assert "storyboard render" in caught.value.hint
