"""Facts about media files, and the one ffmpeg binary we run.

Why its own module: the engine verifies every download, the preview provider and the assembler
check what they wrote, and the tests assert on real files; all of them need the same exact
answers (frame count, fps, size, streams), read from the container and the packets rather than
guessed from a header. PyAV reads them in-process (imageio-ffmpeg ships no ffprobe), and
``ffmpeg_exe`` is the binary imageio-ffmpeg ships, so nothing depends on the system.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import av


@cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (never the system's)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class Probe:
    """What a video file holds, read from its streams and packets."""

    path: Path
    duration: float
    """Seconds of video: frames / fps (the container's figure can include audio priming)."""
    frames: int
    fps: Fraction
    width: int
    height: int
    video_codec: str
    pix_fmt: str
    has_audio: bool
    audio_codec: str | None
    audio_duration: float | None
    sample_rate: int | None
    channels: int | None

    @property
    def aspect(self) -> float:
        return self.width / self.height


class MediaError(Exception):
    """The file is missing, truncated, not a video, or has no video stream."""


def probe(path: Path | str, count_frames: bool = True) -> Probe:
    """Open ``path`` and describe it; raises MediaError when it is not a playable video.

    ``count_frames`` demuxes every video packet (fast: no decoding) so the frame count is exact,
    and a truncated file, whose last packets are missing, is caught.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise MediaError(f"{path}: missing or empty")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            fps = Fraction(video.average_rate or video.guessed_rate or 0)
            frames = video.frames
            audio_duration = None
            if count_frames:
                frames = 0
                last_audio_end = 0.0
                streams = [video] + ([audio] if audio else [])
                for packet in container.demux(streams):
                    if packet.size == 0:
                        continue
                    if packet.stream.type == "video":
                        frames += 1
                    elif packet.pts is not None and packet.duration:
                        end = float((packet.pts + packet.duration) * packet.time_base)
                        last_audio_end = max(last_audio_end, end)
                if audio:
                    start = float(audio.start_time * audio.time_base) if audio.start_time else 0.0
                    audio_duration = max(0.0, last_audio_end - start)
            elif audio and audio.duration:
                audio_duration = float(audio.duration * audio.time_base)
            if not frames or not fps:
                raise MediaError(f"{path}: no video frames")
            return Probe(
                path=path,
                duration=float(frames / fps),
                frames=frames,
                fps=fps,
                width=video.codec_context.width,
                height=video.codec_context.height,
                video_codec=video.codec_context.name,
                pix_fmt=video.codec_context.format.name if video.codec_context.format else "",
                has_audio=audio is not None,
                audio_codec=audio.codec_context.name if audio else None,
                audio_duration=audio_duration,
                sample_rate=audio.codec_context.sample_rate if audio else None,
                channels=audio.codec_context.channels if audio else None,
            )
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, ZeroDivisionError) as exc:
        raise MediaError(f"{path}: not a readable video ({exc})") from exc
