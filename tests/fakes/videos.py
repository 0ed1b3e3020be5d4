"""Small, real MP4 files that the fake Kling CDN serves as task results.

Why real files: the engine verifies every download by probing it (frames, fps, size, streams) and
the assembler cuts them; a fake that served random bytes would let both skip their real work. The
files are tiny (160x90 by default, 24 fps, H.264 yuv420p, ultrafast) so tests stay fast, and each
multi-shot shot is a different flat colour so tests can find shot boundaries by decoding frames.

Generation costs a fraction of a second, so results are cached twice: in memory for this process
and on disk (a temp dir keyed by every parameter) for the next test process.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from storyboard.media import ffmpeg_exe

FPS = 24
"""Kling's output frame rate for every model newer than v1.6."""

SHOT_COLOURS = ("0xd03030", "0x30a040", "0x3050d0", "0xe0c020", "0xc040c0", "0x30c0c0")
"""One colour per multi-shot shot (index 0 for single-shot videos): far apart in hue and luma."""

SIZES = {"16:9": (160, 90), "9:16": (90, 160), "1:1": (96, 96)}
"""Tiny frame sizes per Kling aspect ratio (even sides, as yuv420p needs)."""

_CACHE_VERSION = "v1"
CACHE_DIR = Path(tempfile.gettempdir()) / "storyboard-fake-kling-videos"


def shot_colour_rgb(shot_index: int) -> tuple[int, int, int]:
    """The RGB colour of shot ``shot_index`` (0-based), for tests that look for shot boundaries."""
    hex_colour = SHOT_COLOURS[shot_index % len(SHOT_COLOURS)]
    value = int(hex_colour, 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def result_video(
    shots: tuple[float, ...],
    *,
    sound: bool = False,
    aspect_ratio: str = "16:9",
) -> bytes:
    """MP4 bytes: one flat-colour segment per entry of ``shots`` (seconds), 24 fps, AAC tone if ``sound``.

    A single-shot video is ``shots=(duration,)``. Total length = sum(shots), rounded to whole frames.
    """
    if not shots or any(seconds <= 0 for seconds in shots):
        raise ValueError(f"shots must be positive durations, got {shots!r}")
    if aspect_ratio not in SIZES:
        raise ValueError(f"aspect_ratio must be one of {sorted(SIZES)}, got {aspect_ratio!r}")
    return _cached_video(tuple(float(s) for s in shots), bool(sound), aspect_ratio)


def result_video_path(shots: tuple[float, ...], *, sound: bool = False, aspect_ratio: str = "16:9") -> Path:
    """Like :func:`result_video` but returns the cached file's path (tests that probe want a path)."""
    result_video(shots, sound=sound, aspect_ratio=aspect_ratio)
    return _cache_path(tuple(float(s) for s in shots), bool(sound), aspect_ratio)


def _cache_path(shots: tuple[float, ...], sound: bool, aspect_ratio: str) -> Path:
    key = f"{_CACHE_VERSION}|{shots}|{sound}|{aspect_ratio}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return CACHE_DIR / f"{digest}.mp4"


@lru_cache(maxsize=64)
def _cached_video(shots: tuple[float, ...], sound: bool, aspect_ratio: str) -> bytes:
    path = _cache_path(shots, sound, aspect_ratio)
    if not path.is_file() or path.stat().st_size == 0:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        _render(path, shots, sound, aspect_ratio)
    return path.read_bytes()


def _render(path: Path, shots: tuple[float, ...], sound: bool, aspect_ratio: str) -> None:
    """Encode with imageio-ffmpeg's binary into a temp file, then rename (safe across processes)."""
    width, height = SIZES[aspect_ratio]
    frame_counts = [max(1, round(seconds * FPS)) for seconds in shots]
    total_seconds = sum(frame_counts) / FPS
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    for index, frames in enumerate(frame_counts):
        colour = SHOT_COLOURS[index % len(SHOT_COLOURS)]
        command += ["-f", "lavfi", "-i", f"color=c={colour}:s={width}x{height}:r={FPS}:d={frames / FPS}"]
    if sound:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={total_seconds}"]
    inputs = "".join(f"[{index}:v]" for index in range(len(frame_counts)))
    filters = f"{inputs}concat=n={len(frame_counts)}:v=1:a=0,format=yuv420p[v]"
    command += ["-filter_complex", filters, "-map", "[v]"]
    if sound:
        command += ["-map", f"{len(frame_counts)}:a", "-c:a", "aac", "-b:a", "32k", "-ac", "1"]
    command += [
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-r", str(FPS),
        "-frames:v", str(sum(frame_counts)), "-movflags", "+faststart",
    ]
    handle, temp_name = tempfile.mkstemp(suffix=".mp4", dir=CACHE_DIR)
    os.close(handle)
    try:
        finished = subprocess.run(command + [temp_name], capture_output=True, text=True, timeout=120)
        if finished.returncode != 0:
            raise RuntimeError(f"ffmpeg failed making a fake result video: {finished.stderr.strip()[-800:]}")
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
