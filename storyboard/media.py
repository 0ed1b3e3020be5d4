"""Facts about media files, and the one ffmpeg binary we run.

Why its own module: the engine verifies every download, the preview provider and the assembler
check what they wrote, and the tests assert on real files; all of them need the same exact
answers (frame count, fps, size, streams), read from the container and the packets rather than
guessed from a header. PyAV reads them in-process (imageio-ffmpeg ships no ffprobe), and
``ffmpeg_exe`` is the binary imageio-ffmpeg ships, so nothing depends on the system.

Why the answers are cached: a clip never changes once written (clips are content-addressed,
cuts are renamed into place whole), yet one ``storyboard run`` used to open each clip six or seven
times (engine check, timeline, assembler index, audio check, OTIO, ...). Facts are cached for the
process under the file's identity (device, inode, size, modification time), so a file that is
replaced is read again, and a file renamed into place (same inode) is not.

PyAV 18 and 19: PyAV 19 dropped ``av.open(stream_options=...)``; ``options=`` reaches every
stream's probing in both, so ``open_packets`` uses it (see ``PACKETS_ONLY``).

Why PyAV is imported inside the readers: ``MediaError`` and the cache are needed by modules that
``validate`` loads, and importing PyAV costs a tenth of a second that a check of a storyboard with
no clips yet never needs (issue 13: ``validate`` loads only what it uses).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar


@cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (never the system's).

    A missing binary (an install without it, or ``IMAGEIO_FFMPEG_EXE`` naming nothing) is a user
    error naming where it was looked for, not a ``RuntimeError`` or ``FileNotFoundError`` later.
    """
    import imageio_ffmpeg

    from storyboard.errors import UserError

    hint = ("reinstall storyboard's dependencies (pip install --force-reinstall imageio-ffmpeg), or set "
            "IMAGEIO_FFMPEG_EXE to an ffmpeg binary")
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise UserError("ffmpeg was not found: the imageio-ffmpeg package holds no binary and none is installed",
                        hint=hint) from None
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise UserError(f"ffmpeg was not found at {exe} (IMAGEIO_FFMPEG_EXE or imageio-ffmpeg's binary)", hint=hint)
    return exe


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


@dataclass(frozen=True)
class VideoPackets:
    """A file's video packets in decode order, as stream copy needs them (read, never decoded).

    ``pts`` holds each packet's presentation timestamp in decode order; ``idr_pts`` those of the
    packets that are IDR pictures (nothing after them references anything before), where a copy
    may start.
    """

    time_base: Fraction
    extradata: bytes
    pts: tuple[int, ...]
    idr_pts: frozenset[int]


@dataclass(frozen=True)
class Scan:
    """A file's probe and its video packets, from one pass over the file."""

    probe: Probe
    packets: VideoPackets


class MediaError(Exception):
    """The file is missing, truncated, not a video, or has no video stream."""


# --------------------------------------------------------------------------------------------
# The per-process cache of file facts

FileIdentity = tuple[int, int, int, int]
"""(device, inode, size, mtime in ns): changes whenever the file's content may have."""

T = TypeVar("T")

_ALL_CACHES: list[FileFactsCache[Any]] = []


def file_identity(path: Path) -> FileIdentity:
    """The identity facts are cached under; raises MediaError for a missing or empty file."""
    try:
        stat = path.stat()
    except OSError:
        raise MediaError(f"{path}: missing or empty") from None
    if not path.is_file() or stat.st_size == 0:
        raise MediaError(f"{path}: missing or empty")
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class FileFactsCache(Generic[T]):
    """Facts about files, computed once per file identity for the life of the process.

    Bounded (least recently used entries go first) so a long campaign run does not grow without
    limit; thread-safe, since the assembler indexes rendered segments from worker threads. Two
    threads asking for the same new file may both compute it: harmless, as facts are pure.
    """

    def __init__(self, compute: Callable[[Path], T], maxsize: int = 512) -> None:
        self._compute = compute
        self._maxsize = maxsize
        self._entries: OrderedDict[FileIdentity, T] = OrderedDict()
        self._lock = threading.Lock()
        _ALL_CACHES.append(self)

    def get(self, path: Path) -> T:
        identity = file_identity(path)
        with self._lock:
            if identity in self._entries:
                self._entries.move_to_end(identity)
                return self._entries[identity]
        value = self._compute(path)
        with self._lock:
            self._entries[identity] = value
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return value

    def peek(self, path: Path) -> T | None:
        """The cached facts of ``path``, or None (never computes, never raises)."""
        try:
            identity = file_identity(path)
        except MediaError:
            return None
        with self._lock:
            return self._entries.get(identity)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# --------------------------------------------------------------------------------------------
# Reading files

PACKETS_ONLY = {"skip_frame": "all"}
"""Options for opening a file only to read its packets: without them ``find_stream_info`` decodes
a frame of every stream (~35 ms per grainy 1080p clip). Passed as ``options=``, which PyAV 18 and
19 both hand to every stream's probing (19 removed ``stream_options``). The price: the pixel
format stays unknown, so ``probe`` and ``scan`` open files normally."""


def open_packets(path: Path) -> Any:
    """Open a media file to demux its packets, without decoding anything to probe it."""
    import av

    return av.open(str(path), options=PACKETS_ONLY)


class _Bits:
    """A reader of the bits of an H.264 RBSP (emulation prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("SPS ends early")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
"""H.264 profile_idc values whose SPS carries chroma_format_idc and bit depths (ISO 14496-10 7.3.2.1.1)."""


def h264_pix_fmt(extradata: bytes) -> str | None:
    """The pixel format FFmpeg's H.264 decoder gives a stream, read from the first SPS of its
    avcC record: "yuv420p", or "yuvj420p" when the VUI says full range; None for anything else
    (other chroma formats or bit depths, RGB or YCgCo matrices, a record that is not avcC or
    does not parse), which the caller then learns by decoding.

    Why: the pixel format is the one fact PyAV only learns by decoding a picture, and decoding a
    grainy 1080p keyframe costs ~55 ms per clip, most of reading the clip's facts.
    """
    try:
        if len(extradata) < 8 or extradata[0] != 1 or extradata[5] & 0x1F == 0:
            return None
        size = int.from_bytes(extradata[6:8], "big")
        nal = extradata[8 : 8 + size]
        if len(nal) != size or nal[0] & 0x1F != 7:
            return None
        rbsp = bytearray()
        zeros = 0
        for byte in nal[1:]:
            if zeros >= 2 and byte == 3:
                zeros = 0
                continue
            rbsp.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        bits = _Bits(bytes(rbsp))
        profile = bits.bits(8)
        bits.bits(16)  # constraint flags, level_idc
        bits.ue()  # seq_parameter_set_id
        chroma, depth_luma, depth_chroma = 1, 8, 8
        if profile in HIGH_PROFILES:
            chroma = bits.ue()
            if chroma == 3:
                bits.bit()  # separate_colour_plane_flag
            depth_luma, depth_chroma = bits.ue() + 8, bits.ue() + 8
            bits.bit()  # qpprime_y_zero_transform_bypass_flag
            if bits.bit():  # seq_scaling_matrix_present_flag
                for n in range(8 if chroma != 3 else 12):
                    if bits.bit():
                        last, following = 8, 8
                        for _ in range(16 if n < 6 else 64):
                            if following:
                                following = (last + bits.se() + 256) % 256
                            last = following or last
        if (chroma, depth_luma, depth_chroma) != (1, 8, 8):
            return None
        bits.ue()  # log2_max_frame_num_minus4
        order_type = bits.ue()
        if order_type == 0:
            bits.ue()
        elif order_type == 1:
            bits.bit()
            bits.se()
            bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.bit()  # gaps_in_frame_num_value_allowed_flag
        bits.ue()  # pic_width_in_mbs_minus1
        bits.ue()  # pic_height_in_map_units_minus1
        if not bits.bit():  # frame_mbs_only_flag
            bits.bit()
        bits.bit()  # direct_8x8_inference_flag
        if bits.bit():  # frame_cropping_flag
            for _ in range(4):
                bits.ue()
        full_range = False
        if bits.bit():  # vui_parameters_present_flag
            if bits.bit() and bits.bits(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc
                bits.bits(32)
            if bits.bit():  # overscan_info_present_flag
                bits.bit()
            if bits.bit():  # video_signal_type_present_flag
                bits.bits(3)
                full_range = bool(bits.bit())
                if bits.bit():  # colour_description_present_flag
                    bits.bits(16)  # colour_primaries, transfer_characteristics
                    if bits.bits(8) in (0, 8):  # matrix: RGB or YCgCo
                        return None
        return "yuvj420p" if full_range else "yuv420p"
    except ValueError:
        return None


def _is_idr(data: bytes, length_size: int) -> bool:
    """Whether a length-prefixed (MP4) H.264 access unit holds an IDR slice (NAL type 5)."""
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if pos < len(data) and data[pos] & 0x1F == 5:
            return True
        pos += size
    return False


def _read(path: Path, count_frames: bool) -> Scan:
    """One pass over ``path``: stream facts, and with ``count_frames`` every packet's timing.

    The file is opened for its packets only (no probing decode) when the pixel format can be
    read from the H.264 parameter sets (``h264_pix_fmt``), the usual case; otherwise it is
    opened again, normally, and PyAV decodes a picture to learn it.
    """
    import av

    try:
        with open_packets(path) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            video = container.streams.video[0]
            codec = video.codec_context
            pix_fmt = h264_pix_fmt(bytes(codec.extradata or b"")) if codec.name == "h264" else None
            if pix_fmt is not None:
                return _read_open(container, path, count_frames, pix_fmt)
        with av.open(str(path)) as container:
            return _read_open(container, path, count_frames, None)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, ZeroDivisionError) as exc:
        raise MediaError(f"{path}: not a readable video ({exc})") from exc


def _read_open(container: Any, path: Path, count_frames: bool, pix_fmt: str | None) -> Scan:
    """``_read`` on an open container; ``pix_fmt`` when known without decoding."""
    if not container.streams.video:
        raise MediaError(f"{path}: no video stream")
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    rate = video.average_rate or video.guessed_rate
    fps = Fraction(rate) if rate else Fraction(0)
    time_base = Fraction(video.time_base) if video.time_base else Fraction(0)
    codec = video.codec_context
    extradata = bytes(codec.extradata or b"")
    length_size = (extradata[4] & 0x03) + 1 if len(extradata) > 4 and extradata[0] == 1 else 4
    frames = video.frames
    audio_duration = None
    pts: list[int] = []
    idr_pts: set[int] = set()
    if count_frames:
        frames = 0
        last_audio_end = Fraction(0)
        streams = [video] + ([audio] if audio else [])
        for packet in container.demux(streams):
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                frames += 1
                if packet.pts is None:
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe and (codec.name != "h264" or _is_idr(bytes(packet), length_size)):
                    idr_pts.add(packet.pts)
            elif packet.pts is not None and packet.duration and packet.time_base:
                end = (packet.pts + packet.duration) * Fraction(packet.time_base)
                last_audio_end = max(last_audio_end, end)
        if audio is not None:
            start = audio.start_time * Fraction(audio.time_base) if audio.start_time and audio.time_base else 0
            audio_duration = max(0.0, float(last_audio_end - start))
    elif audio is not None and audio.duration and audio.time_base:
        audio_duration = float(audio.duration * Fraction(audio.time_base))
    if not frames or not fps:
        raise MediaError(f"{path}: no video frames")
    facts = Probe(
        path=path,
        duration=float(frames / fps),
        frames=frames,
        fps=fps,
        width=codec.width,
        height=codec.height,
        video_codec=codec.name,
        pix_fmt=pix_fmt or (codec.format.name if codec.format else ""),
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio else None,
        audio_duration=audio_duration,
        sample_rate=audio.codec_context.sample_rate if audio else None,
        channels=audio.codec_context.channels if audio else None,
    )
    return Scan(facts, VideoPackets(time_base, extradata, tuple(pts), frozenset(idr_pts)))


_SCANS: FileFactsCache[Scan] = FileFactsCache(lambda path: _read(path, count_frames=True))
_HEADERS: FileFactsCache[Probe] = FileFactsCache(lambda path: _read(path, count_frames=False).probe)


def _at(facts: Probe, path: Path) -> Probe:
    """Cached facts under the path they were asked for (a renamed file keeps its identity)."""
    return facts if facts.path == path else replace(facts, path=path)


def scan(path: Path | str) -> Scan:
    """The file's probe (exact frame count) and its video packets; read once per file identity."""
    path = Path(path)
    result = _SCANS.get(path)
    return result if result.probe.path == path else replace(result, probe=_at(result.probe, path))


def probe(path: Path | str, count_frames: bool = True) -> Probe:
    """Describe ``path``; raises MediaError when it is not a playable video.

    ``count_frames`` demuxes every packet (fast: no decoding) so the frame count is exact, and a
    truncated file, whose last packets are missing, is caught; without it the header's figures
    are used, unless the file was already read whole. Cached per file identity.
    """
    path = Path(path)
    if count_frames:
        return scan(path).probe
    whole = _SCANS.peek(path)
    if whole is not None:
        return _at(whole.probe, path)
    return _at(_HEADERS.get(path), path)


@dataclass(frozen=True)
class AudioProbe:
    """What an audio file (a music bed) holds: its first audio stream, read packet by packet."""

    path: Path
    codec: str
    duration: float
    sample_rate: int
    channels: int


def _read_audio(path: Path) -> AudioProbe:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                kinds = sorted({stream.type for stream in container.streams})
                raise MediaError(f"{path}: no audio stream (it holds {', '.join(kinds) or 'nothing'})")
            stream = container.streams.audio[0]
            end = Fraction(0)
            packets = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                if packet.pts is not None and packet.duration and packet.time_base:
                    end = max(end, (packet.pts + packet.duration) * Fraction(packet.time_base))
            if not packets:
                raise MediaError(f"{path}: its audio stream is empty")
            return AudioProbe(
                path=path,
                codec=stream.codec_context.name,
                duration=float(end),
                sample_rate=stream.codec_context.sample_rate,
                channels=stream.codec_context.channels,
            )
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, ZeroDivisionError) as exc:
        raise MediaError(f"{path}: not a readable audio file ({exc})") from exc


_AUDIO: FileFactsCache[AudioProbe] = FileFactsCache(_read_audio)


def audio_probe(path: Path | str) -> AudioProbe:
    """Describe an audio file; raises MediaError when it has no audio PyAV can read (a PNG)."""
    path = Path(path)
    facts = _AUDIO.get(path)
    return facts if facts.path == path else replace(facts, path=path)


def forget_cached_facts() -> None:
    """Drop every cached fact, here and in other modules' ``FileFactsCache`` (tests that count
    file opens start from nothing)."""
    for cache_of_facts in _ALL_CACHES:
        cache_of_facts.clear()
