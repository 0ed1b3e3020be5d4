"""Real input files for the shot kinds' tests (motion control, video references, avatars, lip sync).

Made with the ffmpeg the package already uses (``media.ffmpeg_exe``), so every test probes a real
H.264/AAC file or WAV rather than a stand-in; shared so each test module makes its inputs alike.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from storyboard.media import ffmpeg_exe


def run_ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_video(path: Path, seconds: float, width: int, height: int, fps: int = 24, sound: bool = True) -> None:
    """A test-pattern H.264 video, with a 300 Hz AAC tone when ``sound``."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
    if sound:
        args += ["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if sound:
        args += ["-c:a", "aac", "-b:a", "48k"]
    run_ffmpeg(*args, str(path))


def make_audio(path: Path, seconds: float) -> None:
    """A mono 200 Hz tone (the format from the path's suffix: .wav, .mp3, ...)."""
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=200:sample_rate=16000", "-t", str(seconds), "-ac", "1", str(path))
