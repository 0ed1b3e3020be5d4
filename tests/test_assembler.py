"""The assembler on real (tiny) clips: frames, cut positions, copied packets, audio timing, ducking.

Clips are 320x180 (some 160x90 or 30 fps), 24 fps, 1-2 s, each a flat distinct colour with a
little noise (so x264 makes real B-frames), made by the bundled ffmpeg. Which clip a frame of the
output came from is read from its mean colour, so cut positions are checked frame by frame.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from storyboard.assemble.timeline import CardSegment, OutputFormat, ShotSegment, Timeline, lay_out
from storyboard.assemble.video import (
    CopyRun,
    Part,
    RenderRun,
    assemble_timeline,
    index_clip,
    plan_pieces,
    render_text_png,
    split_run,
    write_cut,
)
from storyboard.errors import UserError
from storyboard.load.spec import Audio, AudioBed, Card, TextStyle, Transition
from storyboard.media import ffmpeg_exe, forget_cached_facts, probe
from storyboard.plan import Request

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200), "yellow": (210, 210, 40)}
CUT = Transition(type="cut", duration=0)


def make_clip(path: Path, colour: str, *, seconds: float = 1.0, fps: int = 24, size: str = "320x180",
              tone: float | None = None, gop: int | None = None) -> Path:
    r, g, b = COLOURS[colour]
    args = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
            f"color=c=0x{r:02x}{g:02x}{b:02x}:s={size}:r={fps}:d={seconds},noise=alls=12:allf=t"]
    if tone:
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "fastdecode", "-bf", "2", "-pix_fmt", "yuv420p"]
    # ultrafast disables B-frames; force a realistic structure back on
    args += ["-x264-params", "b-adapt=0:bframes=2:b-pyramid=none"]
    if gop:
        args += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    if tone:
        args += ["-c:a", "aac", "-ar", "48000", "-ac", "2", "-shortest"]
    args.append(str(path))
    subprocess.run(args, check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "red": make_clip(d / "red.mp4", "red", seconds=1.5),
        "green_tone": make_clip(d / "green_tone.mp4", "green", seconds=1.5, tone=440),
        "blue": make_clip(d / "blue.mp4", "blue", seconds=1.5),
        "red_g6": make_clip(d / "red_g6.mp4", "red", seconds=2, gop=6),
        "green_g6": make_clip(d / "green_g6.mp4", "green", seconds=2, gop=6, tone=440),
        "blue_g6": make_clip(d / "blue_g6.mp4", "blue", seconds=2, gop=6),
        "yellow_small": make_clip(d / "yellow_small.mp4", "yellow", seconds=1, size="160x90"),
        "blue_30": make_clip(d / "blue_30.mp4", "blue", seconds=1, fps=30, tone=880),
        "yellow_tone": make_clip(d / "yellow_tone.mp4", "yellow", seconds=1.5, tone=440),
    }


OUT = OutputFormat(name="main", aspect_ratio="16:9", width=320, height=180, fps=24, reframe="crop")


def shot(clip: Path, frames: int, *, first: int = 0, fps: int = 24, transition: Transition = CUT,
         caption: str | None = None, shot_id: str | None = None) -> ShotSegment:
    return ShotSegment(shot_id=shot_id or clip.stem, request=None, clip=clip, source_in_frame=first,  # type: ignore[arg-type]
                       source_fps=fps, frames=frames, transition=transition, caption=caption, prompt="",
                       record_start_frame=0)


def timeline(items, *, output: OutputFormat = OUT, audio: Audio | None = None, bed: Path | None = None,
             captions: TextStyle | None = None) -> Timeline:
    """A timeline laid out as storyboards are (record starts, overlaps, framing from the clips)."""
    return lay_out("t", output, items, audio=audio or Audio(loudness_lufs=None), bed=bed, captions=captions)


def frame_means(path: Path) -> np.ndarray:
    """Mean RGB of every decoded frame, in presentation order."""
    with av.open(str(path)) as container:
        return np.array([f.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0) for f in container.decode(video=0)])


def nearest_colour(mean) -> str:
    return min(COLOURS, key=lambda name: np.abs(np.array(COLOURS[name]) - mean).sum())


def colour_runs(path: Path) -> list[tuple[str, int]]:
    """[(colour, frames)] of consecutive frames nearest to the same test colour."""
    runs: list[list] = []
    for mean in frame_means(path):
        name = nearest_colour(mean)
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return [tuple(r) for r in runs]


def audio_samples(path: Path) -> np.ndarray:
    """Decoded audio of the file as mono float, 48 kHz (ffmpeg trims the AAC priming)."""
    with av.open(str(path)) as container:
        chunks = [f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)]
    return np.concatenate(chunks)


def packets(path: Path, first: int = 0, count: int | None = None) -> list[bytes]:
    with av.open(str(path)) as container:
        data = [bytes(p) for p in container.demux(video=0) if p.size]
    return data[first: None if count is None else first + count]


def without_parameter_sets(packet: bytes) -> bytes:
    """A length-prefixed access unit minus leading in-band SPS/PPS NAL units (types 7 and 8), which
    the assembler adds where a source's parameter sets differ from the one before it."""
    while len(packet) > 4 and packet[4] & 0x1F in (7, 8):
        packet = packet[4 + int.from_bytes(packet[:4], "big"):]
    return packet


def assemble(tl: Timeline, tmp_path: Path, name: str = "cut.mp4"):
    dest = tmp_path / name
    report = assemble_timeline(tl, dest, work_dir=tmp_path / "work")
    return dest, report


# ------------------------------------------------------------------------------------ hard cuts


def test_hard_cuts_of_matching_clips_copy_packets_bit_identical(clips, tmp_path):
    items = [shot(clips["red"], 36), shot(clips["blue"], 36), shot(clips["red_g6"], 48)]
    dest, report = assemble(timeline(items, audio=Audio(clip_audio="drop", loudness_lufs=None)), tmp_path)
    assert report.path_taken == "stream-copy"
    facts = probe(dest)
    assert (facts.frames, facts.width, facts.height, facts.fps) == (120, 320, 180, 24)
    assert not facts.has_audio  # nothing asked for audio
    expected = packets(clips["red"]) + packets(clips["blue"]) + packets(clips["red_g6"])
    assert packets(dest) == expected
    assert colour_runs(dest) == [("red", 36), ("blue", 36), ("red", 48)]
    assert list(tmp_path.iterdir()) == [tmp_path / "work", dest]  # only dest, no leftovers beside it


def test_audio_is_rendered_once_and_tone_lands_at_its_shot(clips, tmp_path):
    # silent, tone, silent, tone: the tone must start exactly where its shot starts, no drift per join
    items = [shot(clips["red"], 36), shot(clips["green_tone"], 36), shot(clips["blue"], 36),
             shot(clips["yellow_tone"], 36)]
    dest, report = assemble(timeline(items), tmp_path)
    assert report.path_taken == "stream-copy"
    facts = probe(dest)
    assert facts.frames == 144 and facts.has_audio and facts.sample_rate == 48000 and facts.channels == 2
    assert abs(facts.audio_duration - 6.0) <= 1024 / 48000
    samples = audio_samples(dest)
    assert abs(len(samples) / 48000 - 6.0) <= 1024 / 48000
    loud = np.abs(samples) > 0.05
    # tone spans: 1.5-3.0 s and 4.5-6.0 s
    onsets = np.flatnonzero(np.diff(loud.astype(int)) == 1) / 48000
    first_onset = onsets[0]
    assert abs(first_onset - 1.5) <= 1024 / 48000
    assert any(abs(o - 4.5) <= 1024 / 48000 for o in onsets)
    assert not loud[: int(1.45 * 48000)].any()
    assert not loud[int(3.05 * 48000): int(4.45 * 48000)].any()


def test_trim_off_keyframe_renders_only_that_shot(clips, tmp_path):
    # red_g6 from frame 3 (not a keyframe): only it is re-encoded; blue is copied packet for packet
    items = [shot(clips["red_g6"], 24, first=3), shot(clips["blue"], 36)]
    tl = timeline(items, audio=Audio(clip_audio="drop", loudness_lufs=None))
    index = {p: index_clip(p) for p in (clips["red_g6"], clips["blue"])}
    pieces = plan_pieces(tl, index)
    # frames 3..6 rendered up to the IDR at 6, copied up to the last clean cut before 27 (25: frames
    # come in mini-GOPs of 3), 25..27 rendered, then blue copied whole
    assert [type(p) for p in pieces] == [RenderRun, CopyRun, RenderRun, CopyRun]
    assert (pieces[1].first, pieces[1].frames) == (6, 19)
    assert (pieces[3].first, pieces[3].frames) == (0, 36)
    dest, report = assemble(tl, tmp_path)
    assert report.path_taken == "smart-render"
    assert probe(dest).frames == 60
    assert colour_runs(dest) == [("red", 24), ("blue", 36)]
    assert report.copied_frames == 36 + 19
    # copied packets are the clip's, byte for byte (the first may carry the clip's SPS/PPS in-band)
    assert [without_parameter_sets(p) for p in packets(dest)[-36:]] == packets(clips["blue"])
    assert [without_parameter_sets(p) for p in packets(dest, 3, 19)] == packets(clips["red_g6"], 6, 19)


def test_partial_end_of_clip_is_cut_frame_exact(clips, tmp_path):
    # keep 29 frames of a clip with one keyframe: copy ends on the last clean cut, the rest is rendered
    items = [shot(clips["red"], 29), shot(clips["blue"], 17)]
    dest, report = assemble(timeline(items, audio=Audio(clip_audio="drop", loudness_lufs=None)), tmp_path)
    assert probe(dest).frames == 46
    assert colour_runs(dest) == [("red", 29), ("blue", 17)]


# ---------------------------------------------------------------------------------- transitions


@pytest.mark.parametrize("gop_clips", [True, False], ids=["gop-6", "one-keyframe"])
def test_crossfades_shorten_by_overlaps_and_blend_where_the_timeline_says(clips, tmp_path, gop_clips):
    names = ["red_g6", "green_g6", "blue_g6"] if gop_clips else ["red", "green_tone", "blue"]
    xf = Transition(type="crossfade", duration=0.5)
    items = [shot(clips[names[0]], 36), shot(clips[names[1]], 36, transition=xf),
             shot(clips[names[2]], 36, transition=xf)]
    tl = timeline(items)
    dest, report = assemble(tl, tmp_path)
    # with 6-frame GOPs the bodies between windows are copied; with one keyframe per clip only the
    # first clip's body is (its start is the clip's IDR), the rest is rendered
    assert report.path_taken == "smart-render"
    facts = probe(dest)
    assert facts.frames == 108 - 24 == tl.total_frames
    assert facts.has_audio and abs(facts.audio_duration - 84 / 24) <= 1024 / 48000
    means = frame_means(dest)
    # item 2 starts at frame 24 (36 - 12) and fully covers from 36; item 3 starts at 48, full from 60
    assert nearest_colour(means[23]) == "red" and nearest_colour(means[36]) == "green"
    assert nearest_colour(means[47]) == "green" and nearest_colour(means[60]) == "blue"
    middle = means[30]  # halfway through red -> green: both channels blended
    assert 90 < middle[0] < 150 and 90 < middle[1] < 150
    assert report.copied_frames == (24 + 12 + 24 if gop_clips else 22)


def test_render_runs_split_into_segments_of_at_most_two_clips(clips, tmp_path):
    # one keyframe per clip: everything after the first clip's core is one render run; it is
    # rendered as one segment per item (its own frames + the blend into the next), so no ffmpeg
    # holds more than two clips whatever the length of the cut
    xf = Transition(type="crossfade", duration=0.5)
    names = ["red", "green_tone", "blue", "yellow_tone"]
    tl = timeline([shot(clips[n], 36, transition=xf if i else CUT) for i, n in enumerate(names)])
    index = {clips[n]: index_clip(clips[n]) for n in names}
    runs = [p for p in plan_pieces(tl, index) if isinstance(p, RenderRun)]
    assert len(runs) == 1
    segments = split_run(runs[0], tl)
    assert len(segments) == 4  # the first clip's tail, then one per following clip
    assert all(len({p.item for p in s.parts}) <= 2 for s in segments)
    assert sum(s.frames for s in segments) == runs[0].frames
    # segment 1 starts where the blend into item 1 ends, and ends with the blend into item 2
    assert segments[1].parts == (Part(1, 12, 24), Part(2, 0, 12))
    assert segments[-1].parts == (Part(3, 12, 24),)


def test_item_blended_all_through_stays_in_one_segment_with_its_neighbours(clips, tmp_path):
    # the middle shot keeps 12 frames under two 12-frame crossfades: it has no frame of its own
    xf = Transition(type="crossfade", duration=0.5)
    items = [shot(clips["red"], 36), shot(clips["green_tone"], 12, transition=xf), shot(clips["blue"], 36, transition=xf)]
    tl = timeline(items)
    index = {clips[n]: index_clip(clips[n]) for n in ("red", "green_tone", "blue")}
    runs = [p for p in plan_pieces(tl, index) if isinstance(p, RenderRun)]
    segments = [s for r in runs for s in split_run(r, tl)]
    assert any({p.item for p in s.parts} >= {0, 1, 2} or {p.item for p in s.parts} >= {1, 2} for s in segments)
    dest, _ = assemble(tl, tmp_path)
    assert probe(dest).frames == tl.total_frames == 36 + 12 + 36 - 24


def test_fade_black_dips_to_black_at_the_join(clips, tmp_path):
    fb = Transition(type="fade_black", duration=0.5)
    items = [shot(clips["red_g6"], 36), shot(clips["blue_g6"], 36, transition=fb)]
    dest, _ = assemble(timeline(items, audio=Audio(clip_audio="drop", loudness_lufs=None)), tmp_path)
    means = frame_means(dest)
    assert len(means) == 60
    assert means[30].sum() < 60  # middle of the overlap (frames 24..36) is near black
    assert nearest_colour(means[20]) == "red" and nearest_colour(means[40]) == "blue"


# ------------------------------------------------------------------------------- normalisation


def test_mixed_sizes_and_fps_normalise_without_drift(clips, tmp_path):
    # 160x90@24, 320x180@30 (with an 880 Hz tone), 320x180@24: output 320x180@24
    items = [shot(clips["yellow_small"], 24), shot(clips["blue_30"], 24, fps=30), shot(clips["red"], 24)]
    dest, report = assemble(timeline(items), tmp_path)
    assert report.path_taken == "smart-render"  # red is copied, the others rendered
    facts = probe(dest)
    assert (facts.frames, facts.width, facts.height, facts.fps) == (72, 320, 180, 24)
    assert colour_runs(dest) == [("yellow", 24), ("blue", 24), ("red", 24)]
    samples = audio_samples(dest)
    assert abs(len(samples) / 48000 - 3.0) <= 1024 / 48000
    loud = np.flatnonzero(np.abs(samples) > 0.05) / 48000
    assert abs(loud[0] - 1.0) <= 1024 / 48000 and abs(loud[-1] - 2.0) <= 1024 / 48000
    assert any("scaled 160x90" in n for n in report.notes) and any("30 → 24 fps" in n for n in report.notes)


@pytest.mark.parametrize("reframe", ["crop", "blur"])
def test_vertical_output_reframes_landscape_clips(clips, tmp_path, reframe):
    vertical = OutputFormat(name="story", aspect_ratio="9:16", width=108, height=192, fps=24, reframe=reframe)
    items = [shot(clips["red"], 24), shot(clips["blue"], 24)]
    dest, report = assemble(timeline(items, output=vertical, audio=Audio(clip_audio="drop", loudness_lufs=None)),
                            tmp_path)
    facts = probe(dest)
    assert (facts.width, facts.height, facts.frames) == (108, 192, 48)
    assert report.path_taken == "re-encode"
    how = "centre crop" if reframe == "crop" else "blurred fill"
    assert any("16:9 → 9:16" in n and how in n for n in report.notes)
    assert colour_runs(dest) == [("red", 24), ("blue", 24)]


# ------------------------------------------------------------------------------ cards, captions


def test_title_card_and_caption_are_drawn_and_only_they_are_rendered(clips, tmp_path):
    title = CardSegment(kind="title", card=Card(text="Hello there", duration=1, background="#000000"), frames=24,
                        transition=CUT, record_start_frame=0)
    items = [title, shot(clips["red_g6"], 24, caption="a caption"), shot(clips["blue"], 36)]
    tl = timeline(items, audio=Audio(clip_audio="drop", loudness_lufs=None), captions=TextStyle(size=120))
    dest, report = assemble(tl, tmp_path)
    assert report.path_taken == "smart-render"
    assert report.copied_frames == 36  # the blue shot only
    assert probe(dest).frames == 84
    with av.open(str(dest)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    card = frames[12]
    assert (card > 150).all(axis=2).sum() > 50  # white text on black
    assert (card < 30).all(axis=2).mean() > 0.8  # mostly background
    captioned, plain = frames[30].astype(int), frames[60].astype(int)
    bottom = captioned[120:162]  # caption sits at the bottom of the title-safe area
    assert (bottom > 180).all(axis=2).sum() > 30
    assert (captioned[:60] > 180).all(axis=2).sum() == 0  # nothing drawn at the top
    assert nearest_colour(plain.reshape(-1, 3).mean(axis=0)) == "blue"


def test_image_card_background_and_end_card(clips, tmp_path):
    from PIL import Image

    background = tmp_path / "bg.png"
    Image.new("RGB", (64, 64), (40, 200, 40)).save(background)
    end = CardSegment(kind="end", card=Card(text="Bye", duration=1, background=str(background)), frames=24,
                      transition=Transition(type="crossfade", duration=0.25), record_start_frame=0)
    items = [shot(clips["red"], 36), end]
    dest, _ = assemble(timeline(items, audio=Audio(clip_audio="drop", loudness_lufs=None)), tmp_path)
    means = frame_means(dest)
    assert len(means) == 54
    assert nearest_colour(means[-1]) == "green" and nearest_colour(means[10]) == "red"


# ---------------------------------------------------------------------------------------- audio


def test_no_audio_track_when_clip_audio_is_dropped(clips, tmp_path):
    items = [shot(clips["green_tone"], 36), shot(clips["yellow_tone"], 36)]
    dest, report = assemble(timeline(items, audio=Audio(clip_audio="drop")), tmp_path)
    assert not probe(dest).has_audio and not report.has_audio


def write_tone(path: Path, frequency: float, seconds: float) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={frequency}:sample_rate=44100:duration={seconds}", "-c:a", "aac", str(path)],
                   check=True)
    return path


def band_rms(samples: np.ndarray, start: float, end: float, frequency: float) -> float:
    window = samples[int(start * 48000): int(end * 48000)]
    spectrum = np.abs(np.fft.rfft(window)) / len(window)
    freqs = np.fft.rfftfreq(len(window), 1 / 48000)
    band = (freqs > frequency - 30) & (freqs < frequency + 30)
    return float(np.sqrt((spectrum[band] ** 2).sum()))


def test_bed_loops_covers_the_cut_and_ducks_under_clip_audio(clips, tmp_path):
    bed = write_tone(tmp_path / "bed.m4a", 1000, 1.0)  # shorter than the cut: must loop
    audio = Audio(bed=AudioBed(file="bed.m4a", volume_db=-6, fade_in=0, fade_out=0, duck_db=-12), loudness_lufs=None)
    items = [shot(clips["red"], 36), shot(clips["green_tone"], 36), shot(clips["blue"], 36)]
    dest, report = assemble(timeline(items, audio=audio, bed=bed), tmp_path)
    facts = probe(dest)
    assert facts.has_audio and abs(facts.audio_duration - 4.5) <= 1024 / 48000
    samples = audio_samples(dest)
    before = band_rms(samples, 0.3, 1.2, 1000)
    during = band_rms(samples, 1.8, 2.7, 1000)
    after = band_rms(samples, 3.3, 4.2, 1000)
    assert before > 0.01 and after > 0.01  # the bed plays (looped past its 1 s)
    assert 20 * np.log10(during / before) == pytest.approx(-12, abs=1.5)
    assert band_rms(samples, 1.8, 2.7, 440) > 0.01  # clip audio is still there


def test_bed_alone_when_clip_audio_dropped_and_no_clip_has_audio(clips, tmp_path):
    bed = write_tone(tmp_path / "bed.m4a", 1000, 5.0)
    audio = Audio(clip_audio="drop", bed=AudioBed(file="bed.m4a"), loudness_lufs=-20)
    items = [shot(clips["red"], 36), shot(clips["blue"], 36)]
    dest, report = assemble(timeline(items, audio=audio, bed=bed), tmp_path)
    assert report.path_taken == "stream-copy"
    facts = probe(dest)
    assert facts.has_audio and abs(facts.audio_duration - 3.0) <= 1024 / 48000
    samples = audio_samples(dest)
    assert band_rms(samples, 1.0, 2.0, 440) < 0.01 < band_rms(samples, 1.0, 2.0, 1000)


def test_loudness_is_normalised_to_the_target(clips, tmp_path):
    items = [shot(clips["green_tone"], 36), shot(clips["yellow_tone"], 36)]
    dest, _ = assemble(timeline(items, audio=Audio(loudness_lufs=-23)), tmp_path)
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(dest), "-map", "0:a",
                             "-af", "ebur128", "-f", "null", "-"], capture_output=True, text=True)
    integrated = float(result.stderr.rsplit("I:", 1)[1].split("LUFS")[0])
    assert integrated == pytest.approx(-23, abs=1.5)


# --------------------------------------------------------------------------------------- errors


def test_missing_clip_is_a_user_error_naming_the_shot(clips, tmp_path):
    items = [shot(clips["red"], 24), shot(tmp_path / "gone.mp4", 24, shot_id="pour")]
    with pytest.raises(UserError, match="shot pour"):
        assemble(timeline(items), tmp_path)
    assert not (tmp_path / "cut.mp4").exists()


def test_refuses_to_overwrite_an_input_clip(clips, tmp_path):
    items = [shot(clips["red"], 24)]
    with pytest.raises(UserError, match="input clips"):
        assemble_timeline(timeline(items), clips["red"], work_dir=tmp_path / "work")


def test_shot_longer_than_its_clip_is_a_user_error(clips, tmp_path):
    items = [shot(clips["red"], 48)]  # the clip has 36 frames
    with pytest.raises(UserError, match="clip"):
        assemble(timeline(items), tmp_path)


def loudness_of(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of the file's audio, measured by ffmpeg's ebur128."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a",
                             "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"],
                            capture_output=True, text=True)
    summary = result.stderr.rsplit("Summary:", 1)[1]
    integrated = float(summary.split("I:", 1)[1].split("LUFS")[0])
    peak = float(summary.split("Peak:", 1)[1].split("dBFS")[0])
    return integrated, peak


@pytest.mark.parametrize("target", [-14, -30])
def test_loudness_reaches_targets_far_from_the_source_level_within_one_lu(clips, tmp_path, target):
    # the tones are made at about -21 LUFS: both targets need a real gain, up and down, and the
    # silent shot between them must not count (R128 gating)
    items = [shot(clips["green_tone"], 36), shot(clips["red"], 36), shot(clips["yellow_tone"], 36)]
    dest, _ = assemble(timeline(items, audio=Audio(loudness_lufs=target)), tmp_path)
    integrated, peak = loudness_of(dest)
    assert integrated == pytest.approx(target, abs=1.0)
    facts = probe(dest)
    assert abs(facts.audio_duration - 4.5) <= 1024 / 48000
    # the gain is linear: the tone still starts where its shot does
    loud = np.flatnonzero(np.abs(audio_samples(dest)) > 10 ** ((target - 12) / 20)) / 48000
    assert abs(loud[0] - 0.0) <= 1024 / 48000 and any(abs(t - 3.0) <= 1024 / 48000 for t in loud)


def test_loudness_gain_that_would_clip_goes_through_the_true_peak_limiter(tmp_path):
    # a quiet tone (about -29 LUFS) with a 2 ms near-full-scale click: the +15 dB of gain that
    # brings the tone to the target would push the click 14 dB over full scale; the limiter must
    # hold it under the ceiling while the integrated loudness (the tone's: the click carries
    # little energy) still reaches the target
    clip = tmp_path / "burst.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=160x90:r=24:d=3",
                    "-f", "lavfi", "-i",
                    "aevalsrc=0.05*sin(2*PI*440*t)+between(t\\,1.5\\,1.502)*0.9*sin(2*PI*1000*t):s=48000:d=3",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "192k", "-ac", "2",
                    "-shortest", str(clip)], check=True)
    out = OutputFormat(name="main", aspect_ratio="16:9", width=160, height=90, fps=24, reframe="crop")
    dest, _ = assemble(timeline([shot(clip, 72)], output=out, audio=Audio(loudness_lufs=-14)), tmp_path)
    integrated, peak = loudness_of(dest)
    assert integrated == pytest.approx(-14, abs=1.0)
    assert peak <= -1.0
    samples = audio_samples(dest)
    assert np.abs(samples[: int(1.4 * 48000)]).max() > 0.15  # the quiet tone (0.05) really was raised


def test_loudness_gain_leaves_silence_alone_and_asks_for_the_limiter_only_when_peaks_would_clip():
    from storyboard.assemble.video import Loudness, loudness_gain, parse_ebur128_summary

    assert loudness_gain(Loudness(float("-inf"), float("-inf")), -14) == (0.0, False)
    assert loudness_gain(Loudness(-70.0, -60.0), -14) == (0.0, False)
    assert loudness_gain(Loudness(-20.0, -10.0), -14) == (6.0, False)  # peak lands at -4 dBTP
    assert loudness_gain(Loudness(-20.0, -6.0), -14) == (6.0, True)  # peak would land at 0 dBTP
    log = ("[Parsed_ebur128_0 @ 0x1] Summary:\n\n  Integrated loudness:\n    I:         -21.3 LUFS\n"
           "    Threshold: -31.4 LUFS\n\n  Loudness range:\n    LRA:         0.0 LU\n\n"
           "  True peak:\n    Peak:       -17.9 dBFS\n")
    assert parse_ebur128_summary(log) == Loudness(-21.3, -17.9)


def test_caption_images_shared_by_parallel_segments_are_never_read_half_written(tmp_path):
    """Two segments of one crossfaded, captioned shot render at once and write the same caption
    PNG; a reader must always find a complete image (a race once broke `storyboard run`)."""
    from PIL import Image

    dest = tmp_path / "caption-1.png"
    style = TextStyle(size=48)
    render_text_png("Morning Roast", style, 1280, 720, dest)
    stop = threading.Event()
    failures: list[str] = []

    def write() -> None:
        while not stop.is_set():
            render_text_png("Morning Roast", style, 1280, 720, dest)

    writers = [threading.Thread(target=write) for _ in range(3)]
    for writer in writers:
        writer.start()
    try:
        for _ in range(60):
            try:
                with Image.open(dest) as image:
                    image.load()
            except Exception as error:
                failures.append(repr(error))
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert failures == []
    assert [p.name for p in tmp_path.iterdir()] == ["caption-1.png"]


# ------------------------------------------------------------------------------- reading clips


def request_for(clip: Path) -> Request:
    """A plan request for a hand-made shot (the OTIO side file reads its ids and price)."""
    return Request(id=f"r-{clip.stem}", key=f"key-{clip.stem}", external_task_id=f"sb-{clip.stem}", family="text2video",
                   endpoint="/v1/videos/text2video", model="kling-v3", mode="std", duration=2, sound=False,
                   aspect_ratio="16:9", width=320, height=180, fps=24, body={}, shots=[], units=1.0, usd=0.14)


def test_a_six_clip_cut_reads_each_clip_once_and_opens_it_three_times(clips, tmp_path, monkeypatch):
    """Issue 13's profile: 40 container opens and 13 probes of the same six files for one hard
    cut. Now: each clip is read once (probe and packet index from one pass, cached), then opened
    for its packets (the copy) and for the contact sheet's frame."""
    names = ["red", "green_tone", "blue", "red_g6", "green_g6", "blue_g6"]
    forget_cached_facts()
    opens: Counter[str] = Counter()
    real_open = av.open

    def counting_open(file, *args, **kwargs):
        opens[Path(str(file)).name] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    items = [replace(shot(clips[n], 36), request=request_for(clips[n])) for n in names]
    cut = timeline(items, audio=Audio(loudness_lufs=None))  # lays out: reads each clip's size
    files = write_cut(cut, tmp_path / "out", work_dir=tmp_path / "work")
    assert files.report.path_taken == "stream-copy"
    per_clip = {n: opens[clips[n].name] for n in names}
    assert per_clip == dict.fromkeys(names, 3), per_clip
    assert sum(opens.values()) == 6 * 3 + 3  # + the cut written and verified, + the audio joined in
    # a second cut of the same clips reads none of them again (the copy and the sheet still open them)
    opens.clear()
    write_cut(timeline(items, audio=Audio(clip_audio="drop", loudness_lufs=None)), tmp_path / "again", work_dir=tmp_path / "work")
    assert {n: opens[clips[n].name] for n in names} == dict.fromkeys(names, 2)


def test_cached_facts_follow_the_file_not_the_name(clips, tmp_path):
    """A clip replaced under the same name is read again; a file renamed into place is not."""
    target = tmp_path / "clip.mp4"
    shutil.copyfile(clips["red"], target)
    assert probe(target).frames == 36
    shutil.copyfile(clips["red_g6"], target.with_suffix(".tmp"))
    os.replace(target.with_suffix(".tmp"), target)  # a new file (inode) under the old name
    assert probe(target).frames == 48
    moved = tmp_path / "moved.mp4"
    os.replace(target, moved)
    assert probe(moved).path == moved and probe(moved).frames == 48
