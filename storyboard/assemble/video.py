"""The assembler: final cuts from a timeline of rendered clips, fast and frame-accurate.

Why it works the way it does (figures in shared/assembly-baseline.md):

* **Everything stays in ffmpeg and PyAV.** moviepy keeps ~210 MB of reader processes per open
  1080p clip, composites in numpy at ~48 ms a frame, and silently corrupts mixed-size inputs.
  Here memory does not grow with the number of clips, and every pixel operation is an ffmpeg
  filter.
* **Copy what can be copied, render only the rest.** Each shot whose clip already matches the
  output (h264, size, fps, yuv420p, no caption) keeps a *core* that is copied packet for packet:
  it starts on an IDR frame and ends where the decode-order prefix of the clip holds exactly the
  frames shown before that point (a "clean cut": every mini-GOP boundary, not only keyframes), so
  cutting by packet count is frame-exact (``-to`` overshoots by B-frames). Everything else -
  transition windows, cards, captioned shots, clips of another size or fps - is grouped into
  *render runs*, split into segments of one item plus the transition into the next
  (``split_run``: at most two clips per ffmpeg, so memory stays flat however long the cut), each
  rendered by one ffmpeg filter graph (normalise, xfade, overlay text), two at a time.
* **One join for every route.** PyAV writes the copied cores' packets and the rendered segments'
  packets one after another into the final MP4 with rebuilt timestamps, putting a source's
  SPS/PPS in-band where they change, and interleaves the audio as it goes ("stream-copy" when
  nothing is rendered, "re-encode" when nothing is copied, "smart-render" otherwise). Files are
  opened for their packets only (``open_packets``): PyAV's probing would decode a frame of each
  clip, ~35 ms per open at 1080p, which was a third of a 6-clip hard-cut assembly.
* **Each clip is read once.** Its probe and packet index (``media.scan``, ``index_clip``) come
  from one pass and are cached per file for the process; with its side files, a six-clip 1080p
  hard cut went from 40 container opens (13 probes re-reading the same six files) to 21: one read
  per clip, one open for its copied packets, one for the contact sheet's frame, and three for the
  cut itself and its audio. The timeline's decisions (record starts, overlaps, how each clip is
  framed) are read, never recomputed here.
* **How rendered segments are encoded: libx264 ultrafast, crf 20, deblocking on.** With x264's
  default GOP a Kling-like clip has one keyframe, so a crossfade cut re-encodes nearly all of
  every clip but the first, and the encoder sets the speed. Measured on the benchmark's six
  1080p 5 s clips with 0.5 s crossfades (``benchmarks/assemble.py``, ~14 Mb/s grainy clips; 555
  of 660 frames rendered; quality of the rendered frames against the same cut at veryfast crf 18;
  wall time of the whole assembly on 2 cores):

  ==========================  ======  =======  ===========================  =======
  encoding                    wall s  file MB  PSNR dB avg (worst frame)    SSIM
  ==========================  ======  =======  ===========================  =======
  veryfast crf 18 (was)        22.3     40.1   reference                    -
  veryfast crf 21              18.5     20.9   45.6 (44.2)                  0.984
  superfast crf 18             16.6     75.6   46.2 (44.5)                  0.985
  ultrafast crf 18             11.4     69.3   44.8 (43.7)                  0.979
  ultrafast crf 20             10.7     43.7   44.5 (43.1)                  0.977
  ultrafast crf 20 + deblock   11.1     41.7   44.9 (43.9)                  0.980
  ultrafast crf 22             10.1     27.3   44.1 (42.2)                  0.976
  ==========================  ======  =======  ===========================  =======

  Decoding the sources is a floor no preset moves (~11 ms a 1080p frame at 14 Mb/s, ~23 ms at
  45 Mb/s), and only ultrafast leaves enough room for the 5x-faster-than-moviepy goal (6.3x on
  these clips; on 45 Mb/s clips 4.3x, where decoding is ~60% of the work). crf 20 keeps the
  file the size of the veryfast crf 18 render; re-enabling the deblocking filter (off in
  ultrafast) costs 4% and removes block edges next to copied footage. Everything above 44 dB
  against an already lossy reference is far below what grain and the source encode show. Two
  segments render side by side (4% faster than one at a time: each ffmpeg leaves gaps while it
  starts, seeks and flushes; three are no faster). Single-threaded decoders gained only 2-3% and
  would slow a lone segment, so decoders keep ffmpeg's default threading.
* **Audio is rendered once, from the sources**, never concatenated as copied AAC: concat copy
  leaves holes where clips have no audio and drifts +24 ms per join from AAC priming. Each item
  contributes its clip's audio (or silence) resampled to 48 kHz stereo and cut to exactly its
  video length in samples; joins are ``concat`` or ``acrossfade`` under transitions; the bed is
  looped, trimmed, faded and ducked; one AAC encode. It renders in a thread of its own while
  the clips are indexed and the video renders.
* **Loudness: measure, then one linear gain** (``render_audio``). Single-pass ``loudnorm``
  resamples to 192 kHz and normalises dynamically, 0.7-1.9 s for a 30 s cut, which made a hard
  cut 1.8x the copy-video/encode-audio baseline. The mix is written as float PCM while
  ``ebur128`` measures its integrated loudness and true peak; the encode pass applies the gain
  to the target, and only when that gain would push true peaks over -1.5 dBTP adds a look-ahead
  ``alimiter`` (then one more fast measuring pass makes up the energy the limiter took).
  Loudness lands on the target within a few tenths of an LU, like ``loudnorm``'s linear mode.
* **Ducking uses volume automation**, not ``sidechaincompress``: the timeline tells exactly when
  clip audio plays, so the bed gain is a known envelope (with short ramps) instead of a
  compressor reacting to levels (which would also pump on quiet passages).
* **Text is drawn by Pillow** into full-frame transparent PNGs and overlaid by ffmpeg: no
  ImageMagick, no drawtext font configuration. The default font is the Noto Sans shipped in the
  package (``fonts.py``: Pillow's built-in font has no é, ü, ß, €, —), laid out by raqm when
  Pillow has it.

The result is written to a temporary file beside ``dest``, probed (frames, size, fps, streams)
and only then renamed onto ``dest``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
from PIL import Image, ImageColor, ImageDraw, ImageFont

from storyboard.assemble.timeline import Framing, OutputFormat, ShotSegment, Timeline
from storyboard.errors import InternalError, UserError
from storyboard.media import FileFactsCache, MediaError, Probe, ffmpeg_exe, open_packets, probe, scan

if TYPE_CHECKING:
    from storyboard.load.spec import Card, TextStyle

RENDER_PRESET = "ultrafast"
"""x264 preset for rendered pieces; chosen by measurement, see the module docstring."""
RENDER_CRF = 20
RENDER_X264_PARAMS = "deblock=0,0"
"""ultrafast turns the deblocking filter off; on again it costs ~4% and removes the block edges
that would show next to copied footage (+0.4 dB PSNR, 5% smaller files)."""
RENDER_JOBS = 2
"""Render segments run side by side (each ffmpeg also threads x264)."""
"""Visually transparent next to copied Kling footage (7-15 Mb/s at 1080p), so windows don't show."""
AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"
TRUE_PEAK_CEILING_DB = -1.5
"""Highest true peak (dBTP) the loudness gain may produce; louder peaks go through a limiter."""
LIMITER_MARGIN_DB = 0.5
"""``alimiter`` caps sample peaks; inter-sample peaks of music rarely exceed them by more."""
SILENT_LUFS = -60.0
"""A mix measured at or below this is treated as silence and left as it is."""
DUCK_RAMP_S = 0.15
"""Seconds the bed takes to dip or recover around clip audio (a hard step would click)."""
SAFE_MARGIN = 0.10
"""Title-safe margin, as a fraction of the width and height on each side."""

XFADE_KIND = {"crossfade": "fade", "dissolve": "fade", "fade_black": "fadeblack", "fade_white": "fadewhite"}

ProgressCallback = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is a short label ("index", "copy", "render", "mux")."""


@dataclass(frozen=True)
class AssembleReport:
    """What ``assemble_timeline`` produced, and how."""

    path: Path
    frames: int
    duration: float
    path_taken: str
    """"stream-copy" (video packets copied), "smart-render" (copied cores + rendered windows) or
    "re-encode" (everything rendered)."""
    seconds: float
    notes: tuple[str, ...] = ()
    copied_frames: int = 0
    rendered_frames: int = 0
    has_audio: bool = False


# --------------------------------------------------------------------------------------------
# What a clip's packets allow: where a copy may start and end


@dataclass(frozen=True)
class ClipIndex:
    """A clip's probe plus the facts stream copy needs, read from its packets (no decoding).

    ``clean_cuts`` holds every frame number m such that the first m packets in decode order are
    exactly the frames 0..m-1: copying packets up to there is frame-exact. ``idr_frames`` holds the
    frames coded as IDR pictures: a copy can only start on one of them (and on a clean cut), since
    nothing after an IDR references anything before it.
    """

    probe: Probe
    time_base: Fraction
    extradata: bytes
    idr_frames: frozenset[int]
    clean_cuts: frozenset[int]
    reorder_delay: int = 0
    """Most packets any frame is decoded ahead of its display position (B-frame depth)."""

    def can_start_copy(self, frame: int) -> bool:
        return frame in self.idr_frames and frame in self.clean_cuts

    def can_end_copy(self, frame: int) -> bool:
        return frame in self.clean_cuts or frame == self.probe.frames


def _index(path: Path) -> ClipIndex:
    facts = scan(path)
    info, packets = facts.probe, facts.packets
    if not packets.pts:
        raise MediaError(f"{path}: no video frames")
    order = {pts: rank for rank, pts in enumerate(sorted(packets.pts))}
    clean: set[int] = set()
    highest = -1
    delay = 0
    for position, pts in enumerate(packets.pts):
        if highest == position - 1:
            clean.add(position)
        highest = max(highest, order[pts])
        delay = max(delay, highest - position)
    clean.add(len(packets.pts))
    info = replace(info, frames=len(packets.pts), duration=float(len(packets.pts) / info.fps))
    idr = frozenset(order[p] for p in packets.idr_pts)
    return ClipIndex(info, packets.time_base, packets.extradata, idr, frozenset(clean), delay)


_INDEXES: FileFactsCache[ClipIndex] = FileFactsCache(_index)


def index_clip(path: Path) -> ClipIndex:
    """Probe ``path`` and map its video packets (one demux pass, no decoding), once per file:
    clips never change, so an assembly (or a campaign of them) reads each clip once."""
    path = Path(path)
    index = _INDEXES.get(path)
    return index if index.probe.path == path else replace(index, probe=replace(index.probe, path=path))


# --------------------------------------------------------------------------------------------
# The plan: copied cores and rendered runs


@dataclass(frozen=True)
class Part:
    """Frames ``first .. first+count`` (output frames of the item) of one timeline item, rendered."""

    item: int
    first: int
    count: int


@dataclass(frozen=True)
class RenderRun:
    """Consecutive parts rendered by one ffmpeg graph; parts of consecutive items are joined by
    the later item's transition (a run never starts with a transition: see ``plan_pieces``)."""

    parts: tuple[Part, ...]
    frames: int


@dataclass(frozen=True)
class CopyRun:
    """Frames ``first .. first+frames`` of a clip, copied packet for packet."""

    item: int
    clip: Path
    first: int
    frames: int


Piece = RenderRun | CopyRun


def _copy_compatible(item: ShotSegment, index: ClipIndex, output: OutputFormat) -> bool:
    """Whether this shot's clip already is what the output needs, so its packets can be reused."""
    p = index.probe
    return (
        not item.caption
        and item.framing.how == "none"
        and not item.framing.scaled(output)
        and p.video_codec == "h264"
        and p.pix_fmt == "yuv420p"
        and p.fps == output.fps
        and item.source_fps == output.fps
    )


def plan_pieces(timeline: Timeline, indexes: dict[Path, ClipIndex]) -> list[Piece]:
    """Split the timeline into copied cores and rendered runs, in output order."""
    items = timeline.items
    d_in = [item.overlap for item in items]
    d_out = d_in[1:] + [0]
    pieces: list[Piece] = []
    parts: list[Part] = []

    def flush() -> None:
        if parts:
            frames = sum(p.count for p in parts) - sum(
                d_in[p.item] for k, p in enumerate(parts) if k > 0 and p.first == 0
            )
            pieces.append(RenderRun(tuple(parts), frames))
            parts.clear()

    for i, item in enumerate(items):
        core = None
        if isinstance(item, ShotSegment) and _copy_compatible(item, indexes[item.clip], timeline.output):
            index = indexes[item.clip]
            a = item.source_in_frame
            b = a + item.frames
            start = next((f for f in range(a + d_in[i], b) if index.can_start_copy(f)), None)
            if start is not None:
                end = next((f for f in range(b - d_out[i], start, -1) if index.can_end_copy(f)), None)
                if end is not None:
                    core = (start - a, end - a)
        if core is None:
            parts.append(Part(i, 0, item.frames))
            continue
        if core[0] > 0:
            parts.append(Part(i, 0, core[0]))
        flush()
        assert isinstance(item, ShotSegment)  # only shots have a core
        pieces.append(CopyRun(i, item.clip, item.source_in_frame + core[0], core[1] - core[0]))
        if core[1] < item.frames:
            parts.append(Part(i, core[1], item.frames - core[1]))
    flush()
    return pieces


# --------------------------------------------------------------------------------------------
# Text: Pillow draws, ffmpeg overlays


def _font(style: TextStyle, px: int) -> ImageFont.FreeTypeFont:
    """The style's font at ``px`` pixels: Noto Sans (shipped) by default, else its file or family
    (``fonts.load_font``: raqm layout when Pillow has it; a font not found names what was tried)."""
    from storyboard.assemble.fonts import load_font

    return load_font(style.font, px)


def _colour(value: str, what: str) -> tuple[int, int, int]:
    try:
        return ImageColor.getrgb(value)[:3]
    except ValueError:
        raise UserError(
            f"{what}: {value!r} is not a colour", "Use a name (white), #rrggbb, or an image path that exists."
        ) from None


def text_image(text: str, style: TextStyle, width: int, height: int) -> Image.Image:
    """``text`` drawn on a transparent ``width``x``height`` RGBA image, inside the title-safe area.

    ``style.size`` is meant at 1080p, so it scales with the output height; long text wraps, and
    text that still does not fit the safe area is shrunk rather than cut off. Captions, cards and
    the editor handoff's card stills all come from here, so they look the same everywhere.
    """
    box_w = int(width * (1 - 2 * SAFE_MARGIN))
    box_h = int(height * (1 - 2 * SAFE_MARGIN))
    px = max(8, round(style.size * height / 1080))
    colour = _colour(style.color, "text colour")
    while True:
        font = _font(style, px)
        lines = _wrap(text, font, box_w)
        ascent, descent = font.getmetrics()
        line_h = int((ascent + descent) * 1.15)
        block_h = line_h * len(lines)
        widest = max((font.getlength(line) for line in lines), default=0)
        if (block_h <= box_h and widest <= box_w) or px <= 8:
            break
        px = max(8, int(px * 0.9))
    top = {
        "top": int(height * SAFE_MARGIN),
        "center": (height - block_h) // 2,
        "bottom": int(height * (1 - SAFE_MARGIN)) - block_h,
    }[style.position]
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    stroke = max(1, px // 18)
    for n, line in enumerate(lines):
        x = (width - font.getlength(line)) / 2
        draw.text((x, top + n * line_h), line, font=font, fill=(*colour, 255), stroke_width=stroke,
                  stroke_fill=(0, 0, 0, 200))
    return image


def render_text_png(text: str, style: TextStyle, width: int, height: int, dest: Path) -> Path:
    """``text_image`` saved as a PNG at ``dest`` (atomically), for ffmpeg to overlay."""
    image = text_image(text, style, width, height)
    # Segments of one crossfaded shot render in parallel and share its caption image: write it
    # under a private name and rename it into place, so no reader ever opens a half-written PNG.
    partial = dest.with_name(f".{dest.stem}.{threading.get_ident()}.png")
    image.save(partial, format="PNG", compress_level=1)
    os.replace(partial, dest)
    return dest


def _wrap(text: str, font: Any, box_w: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > box_w:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


# --------------------------------------------------------------------------------------------
# Render runs: one ffmpeg graph per run


def _reframe_filter(framing: Framing, output: OutputFormat) -> str:
    """The ffmpeg filters that carry out the timeline's framing decision for one clip."""
    w, h = output.width, output.height
    if framing.how == "none" and not framing.scaled(output):
        return ""
    if framing.how == "blur":
        return (
            f"split=2[bg][fg];[bg]scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},"
            f"boxblur=20:2[bgb];[fg]scale={w}:{h}:force_original_aspect_ratio=decrease[fgs];"
            f"[bgb][fgs]overlay=(W-w)/2:(H-h)/2,"
        )
    return f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},"


@dataclass
class _Graph:
    """Inputs and filter chains of one ffmpeg command, built up piece by piece."""

    inputs: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    count: int = 0
    labels: int = 0

    def add_input(self, *args: str) -> int:
        self.inputs.extend(args)
        self.count += 1
        return self.count - 1

    def label(self, prefix: str) -> str:
        self.labels += 1
        return f"{prefix}{self.labels}"


def _card_background(card: Card, width: int, height: int) -> tuple[str, ...] | str:
    """ffmpeg input args for an image background, or a lavfi colour for a plain one."""
    background = card.background
    path = Path(background)
    if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".bmp"} or path.is_file():
        if not path.is_file():
            raise UserError(f"card background image {background} does not exist", "Fix the path or use a colour.")
        return (str(path),)
    r, g, b = _colour(background, "card background")
    return f"0x{r:02x}{g:02x}{b:02x}"


def _add_run(graph: _Graph, timeline: Timeline, run: RenderRun, indexes: dict[Path, ClipIndex],
             work_dir: Path) -> str:
    """Add a run's parts and joins to ``graph``; returns the label of its video."""
    out = timeline.output
    fps = out.fps
    acc = ""
    acc_len = 0
    for k, part in enumerate(run.parts):
        item = timeline.items[part.item]
        seconds = part.count / fps
        label = graph.label("v")
        text = None
        if isinstance(item, ShotSegment):
            info = indexes[item.clip].probe
            start = item.source_in_frame / item.source_fps + part.first / fps
            seek = ["-ss", f"{max(0.0, start - 0.5 / float(info.fps)):.6f}"] if start > 0 else []
            n = graph.add_input(*seek, "-t", f"{seconds + 2 / float(info.fps):.6f}", "-i", str(item.clip))
            chain = f"[{n}:v]setpts=PTS-STARTPTS,fps={fps},{_reframe_filter(item.framing, out)}"
            if item.caption:
                text = render_text_png(item.caption, timeline.captions, out.width, out.height,
                                       work_dir / f"caption-{part.item}.png")
        else:
            background = _card_background(item.card, out.width, out.height)
            if isinstance(background, tuple):
                n = graph.add_input("-loop", "1", "-framerate", str(fps), "-t", f"{seconds:.6f}", "-i", background[0])
                chain = (f"[{n}:v]fps={fps},scale={out.width}:{out.height}:force_original_aspect_ratio=increase,"
                         f"crop={out.width}:{out.height},")
            else:
                n = graph.add_input("-f", "lavfi", "-i",
                                    f"color=c={background}:s={out.width}x{out.height}:r={fps}:d={seconds + 1 / fps:.6f}")
                chain = f"[{n}:v]"
            text = render_text_png(item.card.text, item.card.style, out.width, out.height,
                                   work_dir / f"card-{part.item}.png")
        chain += "setsar=1,format=yuv420p"
        if text is not None:
            t = graph.add_input("-i", str(text))
            base = graph.label("b")
            graph.chains.append(f"{chain}[{base}]")
            chain = f"[{base}][{t}:v]overlay=0:0:format=auto,format=yuv420p"
        graph.chains.append(f"{chain},tpad=stop_mode=clone:stop={part.count},trim=end_frame={part.count},"
                            f"setpts=PTS-STARTPTS[{label}]")
        if k == 0:
            acc, acc_len = label, part.count
            continue
        joined = graph.label("j")
        overlap = item.overlap if part.first == 0 else 0
        if overlap:
            graph.chains.append(
                f"[{acc}][{label}]xfade=transition={XFADE_KIND[item.transition.type]}:"
                f"duration={overlap / fps:.6f}:offset={(acc_len - overlap) / fps:.6f}[{joined}]"
            )
        else:
            graph.chains.append(f"[{acc}][{label}]concat=n=2:v=1:a=0[{joined}]")
        acc, acc_len = joined, acc_len + part.count - overlap
    if acc_len != run.frames:
        raise InternalError(f"render run adds up to {acc_len} frames, planned {run.frames}")
    return acc


VIDEO_ENCODE = ["-c:v", "libx264", "-preset", RENDER_PRESET, "-crf", str(RENDER_CRF), "-x264-params", RENDER_X264_PARAMS,
                "-pix_fmt", "yuv420p"]


# --------------------------------------------------------------------------------------------
# Copied cores: PyAV packet copy


@dataclass(frozen=True)
class _VideoSource:
    """Packets ``first .. first+frames`` (decode order) of an H.264 MP4: a core or a rendered run."""

    index: ClipIndex
    first: int
    frames: int


def _parameter_sets(extradata: bytes, length_size: int) -> bytes:
    """The SPS and PPS of an avcC record, as length-prefixed NAL units to put in-band."""
    if len(extradata) < 7 or extradata[0] != 1:
        return b""
    units, pos = [], 5
    for count_mask in (0x1F, 0xFF):
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            units.append(extradata[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return b"".join(len(unit).to_bytes(length_size, "big") + unit for unit in units)


def _packet_seconds(packet: av.Packet) -> float:
    """A packet's decode time in seconds (0 when it has none)."""
    if packet.dts is None or not packet.time_base:
        return 0.0
    return float(packet.dts * Fraction(packet.time_base))


def join_video(sources: Sequence[_VideoSource], dest: Path, fps: int, *, audio: Path | None = None) -> None:
    """Write the sources' packets one after another into ``dest`` (MP4), without re-encoding.

    Each source starts on an IDR and ends on a clean cut, so its packets are exactly its frames.
    Timestamps are rebuilt for the whole cut: pts from each frame's display position, and dts
    from the decode position minus the deepest B-frame delay of all sources, so dts rises
    strictly and never passes pts across joins (the concat demuxer collides there when a piece
    with B-frames follows one without). This is what an MPEG-TS/Annex B join achieves, without
    the round trip and with exact timestamps. The MP4 holds the first source's avcC; where the parameter sets change, the new source's SPS/PPS go in-band before its first
    IDR, which decoders apply. Every other packet is copied byte for byte.

    ``audio`` (an M4A rendered for the whole cut) is interleaved by time as the video is written,
    so the video is read and written once, and memory stays at one piece's packets.
    """
    tick = 512
    time_base = Fraction(1, fps * tick)
    delay = max(s.index.reorder_delay for s in sources)
    head = sources[0].index
    active_setup = head.extradata
    length_size = (head.extradata[4] & 0x03) + 1 if len(head.extradata) > 4 else 4
    with contextlib.ExitStack() as stack:
        first_source = stack.enter_context(open_packets(head.probe.path))  # the template, then the first source
        out = stack.enter_context(av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}))
        ostream = out.add_stream_from_template(first_source.streams.video[0])
        ostream.time_base = time_base
        audio_packets: Iterator[av.Packet] = iter(())
        if audio is not None:
            audio_source = stack.enter_context(open_packets(audio))
            audio_in = audio_source.streams.audio[0]
            audio_out = out.add_stream_from_template(audio_in)
            audio_out.time_base = audio_in.time_base
            audio_packets = (p for p in audio_source.demux(audio_in) if p.size and p.dts is not None)
        pending = next(audio_packets, None)

        def write_audio_until(seconds: float) -> None:
            nonlocal pending
            while pending is not None and _packet_seconds(pending) <= seconds:
                pending.stream = audio_out
                out.mux(pending)
                pending = next(audio_packets, None)

        display_offset = 0
        decode_position = 0
        for number, source in enumerate(sources):
            in_band = b""
            if source.index.extradata != active_setup:
                in_band = _parameter_sets(source.index.extradata, length_size)
                active_setup = source.index.extradata
            opened = contextlib.nullcontext(first_source) if number == 0 else open_packets(source.index.probe.path)
            with opened as container:
                stream = container.streams.video[0]
                kept = []
                position = 0
                for packet in container.demux(stream):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    if position >= source.first:
                        kept.append(packet)
                    position += 1
                    if position >= source.first + source.frames:
                        break
                if len(kept) != source.frames:
                    raise InternalError(f"{source.index.probe.path}: {len(kept)} packets where {source.frames} were planned")
                rank = {pts: n for n, pts in enumerate(sorted(p.pts for p in kept))}
                for packet in kept:
                    display = rank[packet.pts]
                    if in_band:  # the first packet of a source is its IDR
                        packet = av.Packet(in_band + bytes(packet))
                        packet.is_keyframe = True
                        in_band = b""
                    packet.pts = (display_offset + display) * tick
                    packet.dts = (decode_position - delay) * tick
                    packet.duration = tick
                    packet.time_base = time_base
                    packet.stream = ostream
                    write_audio_until(float(packet.dts * time_base))
                    out.mux(packet)
                    decode_position += 1
            display_offset += source.frames
        write_audio_until(math.inf)


# --------------------------------------------------------------------------------------------
# Audio: rendered once from the sources


def _samples(frames: int, fps: int) -> int:
    return round(frames * AUDIO_RATE / fps)


def audio_wanted(timeline: Timeline, sounding: dict[Path, bool]) -> bool:
    """Audio is asked for when a bed is declared, or clip audio is kept and some clip has sound."""
    if timeline.bed is not None:
        return True
    return timeline.audio.clip_audio == "keep" and any(sounding[shot.clip] for shot in timeline.shots)


def _clip_audio_intervals(timeline: Timeline, sounding: dict[Path, bool]) -> list[tuple[float, float]]:
    """Seconds of the cut where clip audio plays (merged), for ducking the bed."""
    if timeline.audio.clip_audio != "keep":
        return []
    fps = timeline.output.fps
    spans = [(shot.record_start_frame / fps, shot.end_frame / fps) for shot in timeline.shots if sounding[shot.clip]]
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + 2 * DUCK_RAMP_S:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _duck_expression(intervals: list[tuple[float, float]], duck_db: float) -> str:
    """A volume expression: 1 outside clip audio, ``duck_db`` inside, linear ramps at the edges."""
    r = DUCK_RAMP_S
    weights = [f"min(clip((t-{a - r:.4f})/{r},0,1),clip(({b + r:.4f}-t)/{r},0,1))" for a, b in intervals]
    weight = weights[0]
    for w in weights[1:]:
        weight = f"max({weight},{w})"
    gain = 10 ** (duck_db / 20)
    return f"1-{1 - gain:.6f}*{weight}"


SKIP_VIDEO = ("-skip_frame:v", "all")
"""Input option for a clip read for its audio only: ffmpeg's stream probing would otherwise decode
a video frame of every clip (a grainy 1080p keyframe: ~50 ms each), for a picture never used.
Never for a file without video (a bed): there ffmpeg refuses the option."""


def _add_audio(graph: _Graph, timeline: Timeline, sounding: dict[Path, bool]) -> str:
    """Add the whole cut's mix to ``graph`` (before loudness normalisation); returns its label,
    exactly total_frames long."""
    fps = timeline.output.fps
    total = _samples(timeline.total_frames, fps)
    norm = f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
    keep = timeline.audio.clip_audio == "keep"
    acc, acc_samples = "", 0
    for i, item in enumerate(timeline.items):
        n_samples = _samples(item.frames, fps)
        label = graph.label("a")
        if keep and isinstance(item, ShotSegment) and sounding[item.clip]:
            start = item.source_in_frame / item.source_fps
            seek = ["-ss", f"{start:.6f}"] if start > 0 else []
            n = graph.add_input(*SKIP_VIDEO, *seek, "-t", f"{item.frames / fps + 0.1:.6f}", "-i", str(item.clip))
            graph.chains.append(f"[{n}:a]asetpts=PTS-STARTPTS,{norm},apad,atrim=end_sample={n_samples}[{label}]")
        else:
            graph.chains.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo,{norm},atrim=end_sample={n_samples}[{label}]")
        if i == 0:
            acc, acc_samples = label, n_samples
            continue
        joined = graph.label("aj")
        overlap = _samples(item.overlap, fps)
        if overlap:
            graph.chains.append(f"[{acc}][{label}]acrossfade=ns={overlap}:c1=tri:c2=tri[{joined}]")
        else:
            graph.chains.append(f"[{acc}][{label}]concat=n=2:v=0:a=1[{joined}]")
        acc, acc_samples = joined, acc_samples + n_samples - overlap
    mix = acc
    bed = timeline.audio.bed
    if timeline.bed is not None and bed is not None:
        bed_path = Path(timeline.bed)
        if not bed_path.is_file():
            raise UserError(f"audio bed {bed_path} does not exist", "Fix `cut.audio.bed.file` or remove the bed.")
        loop = ["-stream_loop", "-1"] if bed.loop else []
        n = graph.add_input(*loop, "-i", str(bed_path))
        seconds = timeline.total_frames / fps
        chain = f"[{n}:a]asetpts=PTS-STARTPTS,{norm},volume={bed.volume_db}dB,apad,atrim=end_sample={total}"
        if bed.fade_in > 0:
            chain += f",afade=t=in:st=0:d={min(bed.fade_in, seconds):.4f}"
        if bed.fade_out > 0:
            fade = min(bed.fade_out, seconds)
            chain += f",afade=t=out:st={seconds - fade:.4f}:d={fade:.4f}"
        intervals = _clip_audio_intervals(timeline, sounding)
        if intervals and bed.duck_db < 0:
            chain += f",volume='{_duck_expression(intervals, bed.duck_db)}':eval=frame"
        bed_label = graph.label("bed")
        graph.chains.append(f"{chain}[{bed_label}]")
        mix = graph.label("mix")
        graph.chains.append(f"[{acc}][{bed_label}]amix=inputs=2:normalize=0:duration=first[{mix}]")
    final = graph.label("aout")
    graph.chains.append(f"[{mix}]{norm},apad,atrim=end_sample={total}[{final}]")
    return final


@dataclass(frozen=True)
class Loudness:
    """EBU R128 figures of a mix, as ffmpeg's ``ebur128`` filter measured them."""

    integrated_lufs: float
    true_peak_dbtp: float


def parse_ebur128_summary(log: str, *, peak: bool = True) -> Loudness:
    """Integrated loudness and true peak from the summary ``ebur128`` logs when it closes
    (``peak=False`` when it ran without peak metering: the peak is then NaN)."""
    summary = log.rsplit("Summary:", 1)
    if len(summary) != 2:
        raise InternalError("ffmpeg's ebur128 printed no summary")
    integrated = re.search(r"I:\s*(-?inf|-?[\d.]+) LUFS", summary[1])
    true_peak = re.search(r"Peak:\s*(-?inf|-?[\d.]+) dBFS", summary[1])
    if integrated is None or (peak and true_peak is None):
        raise InternalError(f"unexpected ebur128 summary: {summary[1][:300]!r}")
    return Loudness(float(integrated.group(1)), float(true_peak.group(1)) if true_peak else math.nan)


def loudness_gain(measured: Loudness, target_lufs: float) -> tuple[float, bool]:
    """(gain in dB, whether the true-peak limiter is needed) to bring ``measured`` to the target.

    Silence (or a mix so quiet that the R128 gate leaves nothing) gets no gain: amplifying noise
    floor by 50 dB would be worse than a quiet cut.
    """
    if not math.isfinite(measured.integrated_lufs) or measured.integrated_lufs <= SILENT_LUFS:
        return 0.0, False
    gain = target_lufs - measured.integrated_lufs
    return gain, measured.true_peak_dbtp + gain > TRUE_PEAK_CEILING_DB


def _limiter() -> str:
    """A look-ahead limiter whose ceiling keeps inter-sample peaks under ``TRUE_PEAK_CEILING_DB``.

    ``alimiter`` limits sample peaks, so its ceiling sits ``LIMITER_MARGIN_DB`` lower; ``level=0``
    turns off its default auto-gain to 0 dBFS (which would undo the loudness gain), and
    ``latency=1`` compensates its look-ahead so the audio stays sample-aligned with the video.
    """
    ceiling = 10 ** ((TRUE_PEAK_CEILING_DB - LIMITER_MARGIN_DB) / 20)
    return f"alimiter=limit={ceiling:.4f}:attack=5:release=50:level=0:latency=1"


AUDIO_ENCODE = ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2"]


# --------------------------------------------------------------------------------------------
# Running ffmpeg


def _run_ffmpeg(args: list[str], what: str, *, loglevel: str = "error") -> str:
    """Run the bundled ffmpeg; returns its log (stderr). A failure is an InternalError with its tail."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel, "-y", *args]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise InternalError(f"ffmpeg failed while {what}:\n{tail}")
    return result.stderr


def _graph_args(graph: _Graph) -> list[str]:
    return [*graph.inputs, "-filter_complex", ";".join(graph.chains)] if graph.chains else list(graph.inputs)


# --------------------------------------------------------------------------------------------
# The entry point


def _default_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def assemble_timeline(
    timeline: Timeline,
    dest: Path,
    *,
    work_dir: Path,
    progress: ProgressCallback | None = None,
) -> AssembleReport:
    """Render ``timeline`` to ``dest`` (MP4: H.264 yuv420p, AAC 48 kHz stereo when audio is asked).

    Only ``dest`` is written (through a temporary file beside it, renamed on success); scratch
    files go to ``work_dir``. Raises ``UserError`` for missing or unreadable clips, fonts, beds.
    """
    began = time.perf_counter()
    dest = Path(dest)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda stage, done, total: None)
    out = timeline.output
    fps = out.fps

    clips: list[Path] = []
    for shot in timeline.shots:
        if shot.clip not in clips:
            clips.append(shot.clip)
    if dest.resolve() in {c.resolve() for c in clips}:
        raise UserError(f"{dest} is one of the input clips", "Choose another output path.")
    sounding: dict[Path, bool] = {}
    for clip in clips:
        try:
            sounding[clip] = has_audio_stream(clip)
        except MediaError as exc:
            raise _clip_error(timeline, exc, clip) from None
    with_audio = audio_wanted(timeline, sounding)

    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="assemble-", dir=work_dir))
    tmp: Path | None = None
    try:
        # The audio (mix, loudness, AAC) renders in its own thread and ffmpeg processes while the
        # clips are indexed and the video runs render; it only needs to know which clips sound.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="assemble-audio") as audio_worker:
            audio_file = scratch / "audio.m4a" if with_audio else None
            audio_job = audio_worker.submit(render_audio, timeline, sounding, audio_file, scratch) if audio_file else None
            try:
                indexes: dict[Path, ClipIndex] = {}
                for n, clip in enumerate(clips):
                    report("index", n, len(clips))
                    try:
                        indexes[clip] = index_clip(clip)
                    except MediaError as exc:
                        raise _clip_error(timeline, exc, clip) from None
                _check_timeline(timeline, indexes)

                notes = _reframe_notes(timeline, indexes)
                pieces = plan_pieces(timeline, indexes)
                runs = [p for p in pieces if isinstance(p, RenderRun)]
                copies = [p for p in pieces if isinstance(p, CopyRun)]
                if not runs:
                    path_taken = "stream-copy"
                elif not copies:
                    path_taken = "re-encode"
                else:
                    path_taken = "smart-render"

                fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=".partial.mp4", dir=dest.parent)
                os.close(fd)
                tmp = Path(tmp_name)
                sources = _video_sources(pieces, timeline, indexes, scratch, report)
                report("mux", 0, 1)
                if audio_job is not None:
                    audio_job.result()
                join_video(sources, tmp, fps, audio=audio_file)
            finally:
                if audio_job is not None:
                    audio_job.cancel()  # a job still queued never starts; a running one is awaited
        result = _verify(tmp, timeline, with_audio)
        os.chmod(tmp, _default_file_mode())  # mkstemp makes 0600; a cut is an ordinary user file
        os.replace(tmp, dest)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        for leftover in sorted(scratch.glob("*")):
            leftover.unlink(missing_ok=True)
        scratch.rmdir()
    report("done", 1, 1)
    copied = sum(c.frames for c in copies)
    return AssembleReport(
        path=dest,
        frames=result.frames,
        duration=result.duration,
        path_taken=path_taken,
        seconds=time.perf_counter() - began,
        notes=tuple(notes),
        copied_frames=copied,
        rendered_frames=timeline.total_frames - copied,
        has_audio=result.has_audio,
    )


def split_run(run: RenderRun, timeline: Timeline) -> list[RenderRun]:
    """Split a render run into segments of at most one item plus the transition into the next.

    Segment k renders item k from the end of the transition into it up to the end of the
    transition out of it, blending in the first frames of item k+1 there; segment k+1 then starts
    where that blend ends. So no segment needs more than two clips open, whatever the number
    of clips in the run (one ffmpeg with an input per clip holds a decoder and queued frames per
    input: memory grew with the cut), and segments can render side by side. A split needs the
    item's own frames between its two transitions; where they overlap (a short item under two
    long transitions) the items stay in one segment.
    """
    items = timeline.items
    parts = run.parts

    def overlap_into(k: int) -> int:  # frames part k shares with part k-1 (0 at a cut or a split core)
        if k == 0 or parts[k].first != 0:
            return 0
        return items[parts[k].item].overlap

    segments: list[list[Part]] = [[parts[0]]]
    for k in range(1, len(parts)):
        lead = overlap_into(k)
        tail = overlap_into(k + 1) if k + 1 < len(parts) else 0
        if parts[k].count - lead < tail:  # item k is blended all through: no frame of its own to split at
            segments[-1].append(parts[k])
            continue
        if lead:
            segments[-1].append(Part(parts[k].item, 0, lead))  # the blend into item k ends the segment before
        if parts[k].count > lead:
            segments.append([Part(parts[k].item, parts[k].first + lead, parts[k].count - lead)])
    runs = []
    for segment in segments:
        frames = segment[0].count + sum(
            p.count - (items[p.item].overlap if p.first == 0 else 0) for p in segment[1:])
        runs.append(RenderRun(tuple(segment), frames))
    if sum(r.frames for r in runs) != run.frames:
        raise InternalError(f"split render run adds up to {sum(r.frames for r in runs)} frames, planned {run.frames}")
    return runs


def _video_sources(pieces: Sequence[Piece], timeline: Timeline, indexes: dict[Path, ClipIndex], scratch: Path,
                   report: ProgressCallback) -> list[_VideoSource]:
    """Copied cores as they are; render runs split into segments (``split_run``), each rendered
    by its own ffmpeg into an MP4, ``RENDER_JOBS`` at a time."""
    fps = timeline.output.fps
    jobs: list[Piece] = []
    for piece in pieces:
        jobs.extend(split_run(piece, timeline) if isinstance(piece, RenderRun) else [piece])

    def render(n: int, segment: RenderRun) -> _VideoSource:
        rendered = scratch / f"run-{n:03d}.mp4"
        graph = _Graph()
        label = _add_run(graph, timeline, segment, indexes, scratch)
        _run_ffmpeg([*_graph_args(graph), "-map", f"[{label}]", "-frames:v", str(segment.frames), *VIDEO_ENCODE,
                     "-r", str(fps), str(rendered)], f"rendering piece {n + 1} of {len(jobs)}")
        return _VideoSource(index_clip(rendered), 0, segment.frames)

    with ThreadPoolExecutor(max_workers=RENDER_JOBS, thread_name_prefix="assemble-render") as pool:
        futures = {n: pool.submit(render, n, job) for n, job in enumerate(jobs) if isinstance(job, RenderRun)}
        try:
            sources = []
            for n, job in enumerate(jobs):
                if isinstance(job, CopyRun):
                    sources.append(_VideoSource(indexes[job.clip], job.first, job.frames))
                else:
                    sources.append(futures[n].result())
                    report("render", sum(1 for k in futures if k <= n), len(futures))  # from this thread only
            return sources
        finally:
            for future in futures.values():
                future.cancel()  # after a failure: what has not started never does


def render_audio(timeline: Timeline, sounding: dict[Path, bool], dest: Path, scratch: Path) -> Loudness | None:
    """Render the cut's audio into ``dest`` (AAC 48 kHz stereo, exactly as long as the video).

    Without a loudness target this is one ffmpeg pass (mix, one AAC encode). With one, the
    mix is first written as float PCM while ``ebur128`` measures it (integrated loudness and
    true peak, ~0.2 s for 30 s of audio), then a second pass applies the exact linear gain that
    reaches the target, adds a look-ahead limiter only if that gain would push true peaks over
    ``TRUE_PEAK_CEILING_DB``, and encodes. This is what ``loudnorm``'s two-pass linear mode does,
    without its internal 192 kHz resampling (0.7-1.9 s in single pass): the whole cut is known
    before encoding, so no dynamic, look-ahead-guessing normaliser is needed. Returns the
    measurement (None without a target).
    """
    graph = _Graph()
    mix = _add_audio(graph, timeline, sounding)
    target = timeline.audio.loudness_lufs
    if target is None:
        _run_ffmpeg([*_graph_args(graph), "-map", f"[{mix}]", *AUDIO_ENCODE, str(dest)], "rendering the audio")
        return None
    pcm = scratch / "mix.f32"
    metered = graph.label("metered")
    graph.chains.append(f"[{mix}]ebur128=peak=true:framelog=quiet[{metered}]")
    log = _run_ffmpeg([*_graph_args(graph), "-map", f"[{metered}]", "-f", "f32le", "-ar", str(AUDIO_RATE),
                       "-ac", "2", str(pcm)], "measuring the loudness of the audio", loglevel="info")
    measured = parse_ebur128_summary(log)
    gain, limit = loudness_gain(measured, target)
    pcm_input = ["-f", "f32le", "-ar", str(AUDIO_RATE), "-ac", "2", "-i", str(pcm)]
    if limit:
        # the limiter takes the energy of the peaks it flattens out of the mix: measure what
        # it leaves and make up the shortfall (one more fast pass, only when peaks are limited)
        log = _run_ffmpeg([*pcm_input, "-af", f"volume={gain:.2f}dB,{_limiter()},ebur128=framelog=quiet",
                           "-f", "null", "-"], "measuring the limited audio", loglevel="info")
        limited = parse_ebur128_summary(log, peak=False)
        if math.isfinite(limited.integrated_lufs):
            gain += target - limited.integrated_lufs
    level = f"volume={gain:.2f}dB" + (f",{_limiter()}" if limit else "")
    total = _samples(timeline.total_frames, timeline.output.fps)
    _run_ffmpeg([*pcm_input, "-af", f"{level},apad,atrim=end_sample={total}", *AUDIO_ENCODE, str(dest)],
                "normalising the loudness of the audio")
    pcm.unlink(missing_ok=True)
    return measured


def has_audio_stream(clip: Path) -> bool:
    """Whether a clip carries an audio stream. Read with the clip's scan (``media.scan``, cached),
    which the packet index then reuses: the clip is opened once for both."""
    return scan(clip).probe.has_audio


def _clip_error(timeline: Timeline, exc: MediaError, clip: Path) -> UserError:
    """The user-facing error for a clip that is missing or unreadable, naming its shot."""
    shot = next(s.shot_id for s in timeline.shots if s.clip == clip)
    return UserError(f"shot {shot}: clip {exc}", "Run `storyboard render` again to fetch the clip.")


def _check_timeline(timeline: Timeline, indexes: dict[Path, ClipIndex]) -> None:
    """Refuse a timeline that asks for frames a clip does not have, or whose clip is not the one
    its framing was decided for. (Lengths and overlaps are the timeline's own rules: a Timeline
    that does not add up cannot be built.)"""
    fps = timeline.output.fps
    for shot in timeline.shots:
        info = indexes[shot.clip].probe
        available = (info.frames - shot.source_in_frame) / float(info.fps)
        if shot.frames / fps > available + 0.5 / float(info.fps):
            raise UserError(
                f"shot {shot.shot_id}: the cut keeps {shot.frames / fps:.2f}s from {shot.source_in_frame / shot.source_fps:.2f}s "
                f"but the clip {shot.clip} is {info.duration:.2f}s long",
                "Reduce trim_in/duration of the shot, or render it again.",
            )
        if (info.width, info.height) != (shot.framing.source_width, shot.framing.source_height):
            raise UserError(
                f"shot {shot.shot_id}: the clip {shot.clip} is {info.width}x{info.height}, but the timeline was "
                f"laid out for {shot.framing.source_width}x{shot.framing.source_height}: it changed meanwhile",
                "Run the command again.",
            )


def _reframe_notes(timeline: Timeline, indexes: dict[Path, ClipIndex]) -> list[str]:
    """What the cut does to each clip's picture and rate, in words, from the timeline's framing."""
    out = timeline.output
    how = "centre crop" if out.reframe == "crop" else "fit over a blurred fill"
    notes = []
    for shot in timeline.shots:
        framing = shot.framing
        size = f"{framing.source_width}x{framing.source_height}"
        if framing.how != "none":
            notes.append(
                f"shot {shot.shot_id} reframed {_ratio(framing.source_width, framing.source_height)} → {out.aspect_ratio} by {how}"
            )
        elif framing.scaled(out):
            notes.append(f"shot {shot.shot_id} scaled {size} → {out.width}x{out.height}")
        info = indexes[shot.clip].probe
        if info.fps != out.fps:
            notes.append(f"shot {shot.shot_id} converted {float(info.fps):g} → {out.fps} fps")
    return notes


def _ratio(width: int, height: int) -> str:
    g = math.gcd(width, height)
    return f"{width // g}:{height // g}"


def _verify(path: Path, timeline: Timeline, with_audio: bool) -> Probe:
    """Probe what was written; a file that is not exactly what the timeline says is never delivered."""
    out = timeline.output
    result = probe(path)
    problems = []
    if result.frames != timeline.total_frames:
        problems.append(f"{result.frames} frames instead of {timeline.total_frames}")
    if (result.width, result.height) != (out.width, out.height):
        problems.append(f"{result.width}x{result.height} instead of {out.width}x{out.height}")
    if result.fps != out.fps:
        problems.append(f"{float(result.fps):g} fps instead of {out.fps}")
    if result.has_audio != with_audio:
        problems.append("audio present" if result.has_audio else "audio missing")
    if problems:
        raise InternalError(f"assembled {timeline.name} is wrong: {', '.join(problems)}")
    return result


@dataclass(frozen=True)
class CutFiles:
    """Everything written for one cut: the video and the files beside it."""

    report: AssembleReport
    video: Path
    subtitles: Path | None
    """None when the cut has no captions (no empty .srt is written)."""
    timeline: Path
    edl: Path | None
    contact_sheet: Path
    media: Path | None = None
    """``<cut>_media/``: the files the OTIO and EDL link (clips, card stills, the bed)."""


def _draw_contact_sheet(cut: Timeline, dest: Path) -> None:
    from storyboard.assemble import sidefiles

    sidefiles.contact_sheet_image(cut).save(dest, format="PNG")


def write_cut(
    cut: Timeline,
    folder: Path,
    *,
    work_dir: Path,
    task_ids: dict[str, str] | None = None,
    costs: dict[str, float] | None = None,
    progress: ProgressCallback | None = None,
    reviews: dict[str, list[dict[str, Any]]] | None = None,
) -> CutFiles:
    """Assemble ``cut`` into ``folder/<name>.mp4`` and write its SRT, OTIO + EDL (with their
    media in ``<name>_media/``) and contact sheet.

    Why one function: a project's ``assemble`` and each campaign variant make the same set of
    files, and editors and reviewers rely on finding all of them beside every cut.
    """
    from storyboard.assemble import sidefiles

    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"{cut.name}.mp4"
    sheet = folder / f"{cut.name}.contact.png"
    # The contact sheet (decoding a frame of every clip, then compressing a PNG) is drawn while the
    # video assembles, which mostly waits on ffmpeg and the disk; it goes to a hidden name and, as
    # every side file, takes its place only once the video is written.
    drawn = folder / f".{cut.name}.contact.{os.getpid()}.{threading.get_ident()}.png"
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="contact-sheet") as sheet_worker:
        drawing = sheet_worker.submit(_draw_contact_sheet, cut, drawn)
        try:
            report = assemble_timeline(cut, video, work_dir=work_dir, progress=progress)
            subtitles = sidefiles.write_srt(cut, folder / f"{cut.name}.srt")
            handoff = sidefiles.write_otio(cut, folder / f"{cut.name}.otio", task_ids=task_ids or {},
                                           costs=costs or {}, reviews=reviews)
            if subtitles is not None:
                sidefiles.write_vtt(subtitles)  # the review page's <track> reads WebVTT only
            drawing.result()
            os.replace(drawn, sheet)
        finally:
            if not drawing.cancel():  # a drawing not started never starts; one under way is awaited,
                drawing.exception()  # so its hidden file cannot appear after it is removed
            drawn.unlink(missing_ok=True)
    return CutFiles(report=report, video=video, subtitles=subtitles, timeline=handoff.otio, edl=handoff.edl,
                    contact_sheet=sheet, media=handoff.media)
