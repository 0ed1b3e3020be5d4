"""The CMX 3600 EDL carries the sound: clip sound on channel A, the music bed on A2, with reels that
name the collected files, and OTIO's own CMX 3600 reader files them back on A1 and A2 at the right
record times (a strict reader: it refuses overlapping or mistimed events)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import opentimelineio as otio
import pytest

from storyboard.assemble.sidefiles import FCM_LINE, edl_available, write_otio
from storyboard.assemble.timeline import build_timelines
from storyboard.media import ffmpeg_exe
from tests.fakes.videos import result_video_path
from tests.test_timeline import SHOTS, coffee_plan, loaded

pytestmark = pytest.mark.skipif(not edl_available(), reason="otio-cmx3600-adapter is not installed")

EVENT = re.compile(r"^(\d{3})  (\S+) +(\S+) +([CD])")


def make_bed(folder: Path, seconds: int = 4) -> Path:
    bed = folder / "bed.m4a"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=220:duration={seconds}",
                    "-c:a", "aac", str(bed)], check=True)  # fmt: skip
    return bed


def events(text: str) -> list[tuple[int, str, str, str]]:
    return [(int(m[1]), m[2], m[3], m[4]) for line in text.splitlines() if (m := EVENT.match(line))]


def record_ranges(track: otio.schema.Track) -> list[tuple[str, int, int]]:
    """(reel, first record frame, frames) of every clip of a track read back from the EDL."""
    found = []
    for clip in track.find_clips():
        where = clip.range_in_parent()
        found.append((clip.metadata["cmx_3600"]["reel"], round(where.start_time.value), round(where.duration.value)))
    return found


def test_clip_sound_and_the_bed_are_audio_events_that_read_back_on_a1_and_a2(tmp_path: Path) -> None:
    sounding, silent = result_video_path((5.0,), sound=True), result_video_path((6.0,))
    make_bed(tmp_path)
    board = loaded(tmp_path, shots=SHOTS, cut={"end_card": "Ende", "audio": {"bed": {"file": "bed.m4a", "loop": True}}})
    (timeline,) = build_timelines(board, coffee_plan(), {"key-r01-beans": sounding, "key-r02-pour": silent})
    handoff = write_otio(timeline, tmp_path / "main.otio")
    assert handoff.edl is not None
    text = handoff.edl.read_text(encoding="utf-8")
    assert text.startswith(f"TITLE: main\n{FCM_LINE}\n")
    listed = events(text)
    numbers = [number for number, *_ in listed]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)  # one number per event, in order
    channels = [channel for _, _, channel, _ in listed]
    assert channels.count("A") == 1  # only beans has sound
    assert channels.count("A2") == 3  # the 4 s bed loops under the cut: three events
    reels = {reel for _, reel, channel, _ in listed if channel != "V"}
    assert reels == {"01-beans", "bed"} and reels <= {p.stem for p in handoff.media.iterdir()}

    back = otio.adapters.read_from_file(str(handoff.edl), adapter_name="cmx_3600", rate=timeline.output.fps)
    by_name = {track.name: track for track in back.tracks}
    assert set(by_name) == {"V", "A1", "A2"}
    assert by_name["A1"].kind == by_name["A2"].kind == otio.schema.TrackKind.Audio
    written = otio.adapters.read_from_file(str(handoff.otio))
    _, sound, music = written.tracks
    # the same clips at the same record frames as the OTIO's audio tracks
    assert record_ranges(by_name["A1"]) == [
        ("01-beans", round(c.range_in_parent().start_time.value), round(c.duration().value)) for c in sound.find_clips()
    ]
    assert record_ranges(by_name["A2"]) == [
        ("bed", round(c.range_in_parent().start_time.value), round(c.duration().value)) for c in music.find_clips()
    ]
    assert sum(frames for *_, frames in record_ranges(by_name["A2"])) == timeline.total_frames


def test_audio_crossfades_are_dissolve_pairs_under_one_number(tmp_path: Path) -> None:
    sounding = result_video_path((5.0,), sound=True)
    board = loaded(tmp_path, shots=SHOTS, cut={"transition": "crossfade 0.5"})
    (timeline,) = build_timelines(board, coffee_plan(), {"key-r01-beans": sounding, "key-r02-pour": sounding})
    handoff = write_otio(timeline, tmp_path / "both.otio")
    assert handoff.edl is not None
    text = handoff.edl.read_text(encoding="utf-8")
    audio = [event for event in events(text) if event[2] == "A"]
    dissolves = [event for event in audio if event[3] == "D"]
    assert len(dissolves) == len([e for e in events(text) if e[2] == "V" and e[3] == "D"]) >= 1
    for number, *_ in dissolves:  # each audio dissolve is a cut line and a dissolve line of one event
        assert [e[3] for e in audio if e[0] == number] == ["C", "D"]
    back = otio.adapters.read_from_file(str(handoff.edl), adapter_name="cmx_3600", rate=timeline.output.fps)
    (a1,) = [track for track in back.tracks if track.name == "A1"]
    assert len([c for c in a1 if isinstance(c, otio.schema.Transition)]) == len(dissolves)
    assert a1.duration().value == pytest.approx(timeline.total_frames)


def test_a_cut_without_sound_has_only_video_events(tmp_path: Path) -> None:
    silent = result_video_path((5.0,))
    board = loaded(tmp_path, shots=SHOTS)
    (timeline,) = build_timelines(board, coffee_plan(), {"key-r01-beans": silent, "key-r02-pour": silent})
    handoff = write_otio(timeline, tmp_path / "quiet.otio")
    assert handoff.edl is not None
    assert {channel for _, _, channel, _ in events(handoff.edl.read_text(encoding="utf-8"))} == {"V"}
