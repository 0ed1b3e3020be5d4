"""The files beside each cut: subtitles (SRT), the editor handoff (OpenTimelineIO, CMX 3600 EDL,
with its media collected next to it) and the contact sheet.

Why apart from the timeline: the timeline decides the cut; these only describe it for other tools
(editors, players, reviewers), and each of them changes for reasons of its own (an NLE's import
rules, a sheet's layout) that never touch the frame arithmetic.

The editor handoff is made to open in an editor, not only to parse:

* every media file the cut uses is collected into ``<cut>_media/`` beside the ``.otio`` with a
  readable name in cut order (``01-title.png``, ``02-reveal.mp4``, ``bed.m4a``): hard links to the
  clip cache where the file system allows (clips never change), copies otherwise; the OTIO and
  EDL link them relatively, so the folder can be moved or sent as it is;
* title and end cards are real media: a PNG still of the card as the cut shows it (an NLE takes a
  still as a clip of any length), not a generator no editor knows;
* the clips' sound (when the cut keeps it) and the music bed sit on audio tracks A1 and A2;
* the EDL says ``FCM: NON-DROP FRAME`` (every output rate is a whole number) and its reel names
  are the collected files' names, so an editor conforming by reel finds each file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFilter, ImageFont, ImageOps

from storyboard.assemble.timeline import (
    ASPECT_TOLERANCE,
    DEFAULT_FPS,
    ShotSegment,
    Timeline,
    round_half_up,
    srt_time,
)
from storyboard.errors import UserError
from storyboard.plan import UNIT_PRICE_USD

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# SRT


def srt_text(timeline: Timeline) -> str:
    """The SRT subtitles of a timeline: one cue per captioned shot, record start to its end."""
    fps = timeline.output.fps
    cues: list[str] = []
    for item in timeline.items:
        if not isinstance(item, ShotSegment) or not item.caption:
            continue
        # A blank line would end the cue early: keep the caption's lines, drop the empty ones.
        lines = [line.strip() for line in item.caption.replace("\r\n", "\n").split("\n") if line.strip()]
        if not lines:
            continue
        cues.append(
            f"{len(cues) + 1}\n{srt_time(item.record_start_frame, fps)} --> {srt_time(item.end_frame, fps)}\n"
            + "\n".join(lines)
            + "\n"
        )
    return "\n".join(cues)


def write_srt(timeline: Timeline, path: Path | str) -> Path | None:
    """Write the timeline's captions as SRT (UTF-8) and return its path; a cut without captions
    gets no file (a 0-byte .srt makes players and upload forms complain), and one left by an
    earlier run with captions is removed, so the folder never shows subtitles the cut lacks."""
    path = Path(path)
    text = srt_text(timeline)
    if not text:
        path.unlink(missing_ok=True)
        return None
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Media collected beside the cut


MEDIA_NAME_CHARS = 24
"""Characters of a shot id kept in a collected file's name (reel names stay short)."""


@dataclass
class CollectedMedia:
    """The files of one cut's editor handoff, in ``folder`` (``<cut>_media`` beside the OTIO)."""

    folder: Path
    clips: dict[Path, Path] = field(default_factory=dict)
    """Clip in the cache -> its collected file."""
    cards: dict[int, Path] = field(default_factory=dict)
    """Index of a card in ``timeline.items`` -> its still."""
    bed: Path | None = None

    def files(self) -> list[Path]:
        return [*self.clips.values(), *self.cards.values(), *([self.bed] if self.bed else [])]


def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:MEDIA_NAME_CHARS] or "item"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) or (
            a.stat().st_size == b.stat().st_size and a.stat().st_mtime_ns == b.stat().st_mtime_ns
        )
    except OSError:
        return False


def _place(source: Path, dest: Path) -> None:
    """``dest`` becomes ``source``'s content: a hard link when the file system allows (no copy of a
    clip that never changes), else a copy; written under a temporary name, then renamed."""
    if dest.exists() and _same_file(source, dest):
        return
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copy2(source, partial)
    os.replace(partial, dest)


def card_image(card: Any, width: int, height: int) -> Image.Image:
    """A title or end card as the cut shows it: its background (colour, or image scaled to fill and
    centre-cropped, as the assembler does) with its text drawn over it."""
    from storyboard.assemble.video import text_image

    background = card.background
    try:
        picture = Image.new("RGB", (width, height), ImageColor.getrgb(background)[:3])
    except ValueError:
        path = Path(background)
        if not path.is_file():
            raise UserError(f"card background image {background} does not exist", "Fix the path or use a colour.") from None
        with Image.open(path) as opened:
            picture = ImageOps.fit(opened.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
    text = text_image(card.text, card.style, width, height)
    picture.paste(text, (0, 0), text)
    return picture


def collect_media(timeline: Timeline, folder: Path) -> CollectedMedia:
    """Gather every file the cut uses into ``folder`` under readable names in cut order.

    A clip used by several shots (a multi-shot request) is collected once, named after its first
    shot. Files in ``folder`` that this cut no longer uses (an earlier run's) are removed: the
    folder is the cut's own.
    """
    folder.mkdir(parents=True, exist_ok=True)
    media = CollectedMedia(folder)
    number = 0
    out = timeline.output
    for index, item in enumerate(timeline.items):
        if isinstance(item, ShotSegment):
            if item.clip in media.clips:
                continue
            number += 1
            dest = folder / f"{number:02d}-{_name_part(item.shot_id)}{item.clip.suffix.lower() or '.mp4'}"
            _place(item.clip, dest)
            media.clips[item.clip] = dest
        else:
            number += 1
            dest = folder / f"{number:02d}-{item.kind}.png"
            partial = dest.with_name(f".{dest.name}.partial")
            card_image(item.card, out.width, out.height).save(partial, format="PNG", compress_level=1)
            os.replace(partial, dest)
            media.cards[index] = dest
    if timeline.bed is not None:
        media.bed = folder / f"bed{timeline.bed.suffix.lower()}"
        _place(timeline.bed, media.bed)
    keep = {path.name for path in media.files()}
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in keep:
            stale.unlink()
    return media


# --------------------------------------------------------------------------------------------
# OpenTimelineIO (+ CMX 3600 EDL)


@dataclass(frozen=True)
class _ClipFacts:
    frames: int
    fps: float
    has_audio: bool


def _clip_facts(segment: ShotSegment) -> _ClipFacts:
    """Frames, fps and sound of the clip file, from the process-wide facts cache (``media.probe``:
    the assembler read the clip already, so this opens nothing); the plan's figures if unreadable."""
    from storyboard.media import MediaError, probe

    try:
        facts = probe(segment.clip)
        if facts.frames and facts.fps:
            return _ClipFacts(facts.frames, float(facts.fps), facts.has_audio)
    except (MediaError, OSError):
        pass
    log.warning("%s: cannot read the clip; its OTIO available range comes from the plan", segment.clip)
    request = segment.request
    return _ClipFacts(request.duration * request.fps, request.fps, request.sound)


def _audio_seconds(path: Path) -> float | None:
    """Seconds of the first audio stream of a file (cached, like every media fact; None when unknown)."""
    from storyboard.media import MediaError, audio_probe

    try:
        return audio_probe(path).duration
    except (MediaError, OSError):
        return None


def _url(media_file: Path | None, fallback: Path, base: Path | None) -> str:
    """A link to a media file: relative to the OTIO's folder (POSIX separators) when collected."""
    if media_file is None:
        return fallback.as_uri()
    if base is None:
        return media_file.resolve().as_uri()
    return Path(os.path.relpath(media_file.resolve(), base.resolve())).as_posix()


def otio_timeline(
    timeline: Timeline,
    *,
    task_ids: dict[str, str] | None = None,
    costs: dict[str, float] | None = None,
    media: CollectedMedia | None = None,
    base: Path | None = None,
    reviews: dict[str, list[dict[str, Any]]] | None = None,
) -> Any:
    """The timeline as an ``opentimelineio.schema.Timeline`` (see ``write_otio``).

    ``media``: the collected files to link (relative to ``base``, the OTIO's folder); without it
    clips link to their cache files by absolute URL and cards to no file (an in-memory view).
    """
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    task_ids = task_ids or {}
    costs = costs or {}
    reviews = reviews or {}
    fps = timeline.output.fps
    result = otio.schema.Timeline(name=timeline.name, global_start_time=RationalTime(0, fps))
    result.metadata["storyboard"] = {
        "output": {
            "name": timeline.output.name,
            "aspect_ratio": timeline.output.aspect_ratio,
            "width": timeline.output.width,
            "height": timeline.output.height,
            "fps": fps,
            "reframe": timeline.output.reframe,
        },
        "total_frames": timeline.total_frames,
        "reframed": list(timeline.reframed),
    }
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    sound = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    result.tracks.append(video)

    facts: dict[Path, _ClipFacts] = {}
    keep_sound = timeline.audio.clip_audio == "keep"

    # OTIO lays clips end to end at their cut points; a transition borrows `in_offset` frames of
    # the incoming clip before the cut and `out_offset` frames of the outgoing one after it. We put
    # the cut in the middle of each overlap, so each clip's visible range is exactly its kept range.
    overlaps = [timeline.overlap_frames(i) for i in range(len(timeline.items))] + [0]
    previous_sounded = False
    for index, item in enumerate(timeline.items):
        overlap_in, overlap_out = overlaps[index], overlaps[index + 1]
        head = overlap_in // 2  # frames of this item shown before the cut, under the transition
        tail = overlap_out - overlap_out // 2  # frames of this item shown after the next cut
        body = item.frames - head - tail

        if overlap_in:
            video.append(_transition(item.transition.type, head, overlap_in, fps))
        if isinstance(item, ShotSegment):
            src = item.source_fps
            clip_facts = facts.get(item.clip) or facts.setdefault(item.clip, _clip_facts(item))
            request = item.request
            units = costs.get(request.key, costs.get(request.id))
            collected = media.clips.get(item.clip) if media else None
            url = _url(collected, item.clip, base)
            available = TimeRange(RationalTime(0, clip_facts.fps), RationalTime(clip_facts.frames, clip_facts.fps))
            source_range = TimeRange(
                RationalTime(item.source_in_frame, src) + RationalTime(head, fps).rescaled_to(src),
                RationalTime(body, fps).rescaled_to(src),
            )
            clip = otio.schema.Clip(
                name=item.shot_id,
                media_reference=otio.schema.ExternalReference(target_url=url, available_range=available),
                source_range=source_range,
            )
            clip.metadata["storyboard"] = {
                "shot_id": item.shot_id,
                "prompt": item.prompt,
                "caption": item.caption,
                "request_key": request.key,
                "request_id": request.id,
                "kling_task_id": task_ids.get(request.key, task_ids.get(request.id)),
                "model": request.model,
                "mode": request.mode,
                "cost": {
                    "units": request.units if units is None else units,
                    "usd": round((request.units if units is None else units) * UNIT_PRICE_USD, 4),
                    "charged": units is not None,
                },
                "kept": {"source_in_frame": item.source_in_frame, "frames": item.frames},
                "record_start_frame": item.record_start_frame,
                "cache_file": str(item.clip),
            }
            _review_markers(clip, reviews.get(request.key, ()), item.shot_id, source_range)
            # The EDL's reel is the collected file's name, so conforming by reel finds the file.
            reel = collected.stem if collected else re.sub(r"[^A-Za-z0-9]", "", request.id)[:8] or "AX"
            clip.metadata["cmx_3600"] = {"reel": reel}
            if keep_sound and clip_facts.has_audio:
                heard = otio.schema.Clip(
                    name=f"{item.shot_id} sound",
                    media_reference=otio.schema.ExternalReference(target_url=url, available_range=available),
                    source_range=source_range,
                    metadata={"storyboard": {"shot_id": item.shot_id, "clip_sound": True}},
                )
                if overlap_in and previous_sounded:
                    sound.append(_transition(item.transition.type, head, overlap_in, fps))
                sound.append(heard)
                previous_sounded = True
            else:
                sound.append(otio.schema.Gap(source_range=TimeRange(RationalTime(0, fps), RationalTime(body, fps))))
                previous_sounded = False
        else:
            card_file = media.cards.get(index) if media else None
            range_ = TimeRange(RationalTime(0, fps), RationalTime(item.frames, fps))
            reference: Any
            if card_file is not None:
                reference = otio.schema.ExternalReference(target_url=_url(card_file, card_file, base), available_range=range_)
            else:
                reference = otio.schema.MissingReference(name=f"{item.kind} card", available_range=range_)
            clip = otio.schema.Clip(
                name=f"{item.kind} card",
                media_reference=reference,
                source_range=TimeRange(RationalTime(head, fps), RationalTime(body, fps)),
            )
            clip.metadata["storyboard"] = {
                "card": item.kind,
                "text": item.card.text,
                "background": item.card.background,
                "record_start_frame": item.record_start_frame,
            }
            clip.metadata["cmx_3600"] = {"reel": card_file.stem if card_file else "BL"}
            sound.append(otio.schema.Gap(source_range=TimeRange(RationalTime(0, fps), RationalTime(body, fps))))
            previous_sounded = False
        video.append(clip)

    if any(isinstance(child, otio.schema.Clip) for child in sound):
        result.tracks.append(sound)
    if timeline.bed is not None:
        result.tracks.append(_bed_track(timeline, media, base))
    return result


def _transition(kind: str, head: int, frames: int, fps: int) -> Any:
    """A dissolve of ``frames`` frames whose cut point is ``head`` frames into the incoming item."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime

    return otio.schema.Transition(
        name=kind,
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=RationalTime(head, fps),
        out_offset=RationalTime(frames - head, fps),
        metadata={"storyboard": {"type": kind, "frames": frames}},
    )


def _bed_track(timeline: Timeline, media: CollectedMedia | None, base: Path | None) -> Any:
    """A2: the music bed under the whole cut, repeated end to end when it loops and is shorter."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    assert timeline.bed is not None
    fps = timeline.output.fps
    bed = timeline.audio.bed
    total = timeline.total_frames
    seconds = _audio_seconds(timeline.bed)
    length = max(1, int(seconds * fps)) if seconds else total
    url = _url(media.bed if media else None, timeline.bed, base)
    track = otio.schema.Track(name="A2", kind=otio.schema.TrackKind.Audio)
    position, repeat = 0, 0
    while position < total:
        frames = min(length, total - position)
        clip = otio.schema.Clip(
            name="music bed" if not repeat else f"music bed ({repeat + 1})",
            media_reference=otio.schema.ExternalReference(
                target_url=url, available_range=TimeRange(RationalTime(0, fps), RationalTime(length, fps))
            ),
            source_range=TimeRange(RationalTime(0, fps), RationalTime(frames, fps)),
        )
        clip.metadata["storyboard"] = {
            "bed": True,
            "volume_db": bed.volume_db if bed else None,
            "fade_in": bed.fade_in if bed else None,
            "fade_out": bed.fade_out if bed else None,
            "duck_db": bed.duck_db if bed else None,
        }
        clip.metadata["cmx_3600"] = {"reel": Path(url).stem}
        track.append(clip)
        position += frames
        repeat += 1
        if not (bed and bed.loop):
            break
    if position < total:
        track.append(otio.schema.Gap(source_range=TimeRange(RationalTime(0, fps), RationalTime(total - position, fps))))
    return track


def edl_available() -> bool:
    """Whether OTIO's CMX 3600 adapter (package otio-cmx3600-adapter) is installed."""
    import opentimelineio as otio

    return any(adapter.name == "cmx_3600" for adapter in otio.plugins.ActiveManifest().adapters)


FCM_LINE = "FCM: NON-DROP FRAME"
"""Every output rate is a whole number of frames a second, so timecode never drops frames."""


EDL_AUDIO_CHANNELS = {"A1": "A", "A2": "A2"}
"""OTIO audio track name -> CMX 3600 channel: A1 (the clips' sound) is ``A``, A2 (the bed) ``A2``;
OTIO's EDL reader files them back on tracks A1 and A2."""
_EVENT_LINE = re.compile(r"^(?P<number>\d{3})(?P<reel>  \S+ +)(?P<channel>\S+) +(?P<rest>[CD] .*)$")


def edl_text(otio_result: Any, fps: int) -> str:
    """The CMX 3600 EDL of an OTIO timeline, with the FCM line OTIO leaves out and audio events.

    OTIO's writer (otio-cmx3600-adapter) writes only the video track; the audio tracks (A1: the
    clips' sound, A2: the music bed) are written by the same adapter's event writer, one track at a
    time, then numbered on after the video events and given their channel (``A``, ``A2``), so an
    editor conforming the EDL gets the sound and the bed too, with the same reels as the files.
    Reel names are written as they are (``reelname_len=None``): they are the collected files'
    stems, longer than tape-era 8 characters, which file-based NLEs (Resolve, Premiere) accept.
    """
    import opentimelineio as otio

    # The EDL writer edits the track it is given (it moves cut points): give it a copy.
    text: str = otio.adapters.write_to_string(
        otio_result.deepcopy(), adapter_name="cmx_3600", rate=fps, reelname_len=None
    )
    lines = text.rstrip("\n").split("\n")
    at = 1 if lines and lines[0].startswith("TITLE:") else 0
    lines.insert(at, FCM_LINE)
    numbers = [int(match["number"]) for line in lines if (match := _EVENT_LINE.match(line))]
    next_number = max(numbers, default=0) + 1
    for track in otio_result.tracks:
        channel = EDL_AUDIO_CHANNELS.get(track.name)
        if track.kind != otio.schema.TrackKind.Audio or channel is None or not track.enabled:
            continue
        if not any(isinstance(child, otio.schema.Clip) for child in track):
            continue
        audio_lines, next_number = _audio_events(track, fps, channel, next_number)
        lines += audio_lines
    return "\n".join(lines) + "\n"


def _audio_events(track: Any, fps: int, channel: str, first_number: int) -> tuple[list[str], int]:
    """The EDL events of one audio track on ``channel``, numbered from ``first_number``; and the
    number after the last. Dissolves (crossfades between sounding clips) keep their pair of lines
    under one number, as the video's do."""
    import opentimelineio as otio
    from otio_cmx3600_adapter.cmx_3600 import EDLWriter

    alone = otio.schema.Timeline(tracks=[track.deepcopy()])  # record times are the track's own
    for clip in alone.find_clips():
        url = getattr(clip.media_reference, "target_url", None)
        if url and not clip.metadata.get("cmx_3600", {}).get("reel"):
            clip.metadata["cmx_3600"] = {"reel": Path(url).stem}  # the collected file, as the video's reels
    writer = EDLWriter(tracks=alone.tracks, rate=fps, style="avid", reelname_len=None)
    renumbered: dict[int, int] = {}
    out: list[str] = []
    for line in writer.get_content_for_track_at_index(0, title=None).rstrip("\n").split("\n"):
        match = _EVENT_LINE.match(line)
        if match is None:
            out.append(line)
            continue
        number = renumbered.setdefault(int(match["number"]), first_number + len(renumbered))
        out.append(f"{number:03d}{match['reel']}{channel:<5} {match['rest']}")
    return out, first_number + len(renumbered)


@dataclass(frozen=True)
class Handoff:
    """What ``write_otio`` wrote: the OTIO, the EDL (None without its adapter), the media folder."""

    otio: Path
    edl: Path | None
    media: Path


REVIEW_MARKER_COLORS = {"approved": "GREEN", "rejected": "RED"}


def _review_markers(clip: Any, notes: Iterable[dict[str, Any]], shot_id: str, source_range: Any) -> None:
    """The review's verdicts and comments on this shot (every take of it) as OTIO markers on its clip.

    Why markers: an editor opening the ``.otio`` sees the client's "again, too dark" on the clip it
    is about, in the NLE's marker list, without the review page. Each note is
    ``{"take", "shot", "verdict", "comment"}``; a note for another shot of the same request is skipped.
    """
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    for note in notes:
        if note.get("shot") not in ("", None, shot_id):
            continue
        verdict, comment, take = note.get("verdict", ""), note.get("comment", ""), note.get("take", 1)
        name = f"take {take} {verdict}" + (f": {comment}" if comment else "")
        marker = otio.schema.Marker(
            name=name,
            marked_range=TimeRange(source_range.start_time, RationalTime(0, source_range.start_time.rate)),
            color=REVIEW_MARKER_COLORS.get(verdict, "YELLOW"),
            metadata={"storyboard": {"review": {"shot_id": shot_id, "take": take, "verdict": verdict, "comment": comment}}},
        )
        clip.markers.append(marker)


def vtt_text(srt: str) -> str:
    """WebVTT from SRT text: the same cues, ``.`` before the milliseconds, a ``WEBVTT`` header.

    Browsers' ``<track>`` reads WebVTT only, so the review page's players need this beside the SRT.
    """
    body = re.sub(r"(\d\d:\d\d:\d\d),(\d\d\d)", r"\1.\2", srt.replace("\r\n", "\n"))
    return "WEBVTT\n\n" + body.lstrip("\n")


def write_vtt(srt_path: Path) -> Path:
    """Write ``<name>.vtt`` beside ``<name>.srt`` (see ``vtt_text``)."""
    dest = srt_path.with_suffix(".vtt")
    dest.write_text(vtt_text(srt_path.read_text(encoding="utf-8")), encoding="utf-8")
    return dest


def write_otio(
    timeline: Timeline,
    path: Path | str,
    *,
    task_ids: dict[str, str] | None = None,
    costs: dict[str, float] | None = None,
    reviews: dict[str, list[dict[str, Any]]] | None = None,
) -> Handoff:
    """Write the editor handoff: the cut as OpenTimelineIO JSON, a CMX 3600 EDL next to it (same
    name, .edl), and the media both link, collected in ``<name>_media/`` beside them.

    ``task_ids`` and ``costs`` map a request key (or id) to its Kling task id and to the units
    Kling charged (``final_unit_deduction``); a request without a charged figure shows its planned
    units. No EDL (a logged warning) when OTIO's cmx_3600 adapter is not installed.
    """
    import opentimelineio as otio

    path = Path(path)
    media = collect_media(timeline, path.with_name(f"{path.stem}_media"))
    result = otio_timeline(timeline, task_ids=task_ids, costs=costs, media=media, base=path.parent, reviews=reviews)
    otio.adapters.write_to_file(result, str(path), adapter_name="otio_json")
    edl: Path | None = path.with_suffix(".edl")
    assert edl is not None
    if edl_available():
        edl.write_text(edl_text(result, timeline.output.fps), encoding="utf-8")
    else:
        log.warning("no EDL written: install otio-cmx3600-adapter for OTIO's cmx_3600 adapter")
        edl.unlink(missing_ok=True)
        edl = None
    return Handoff(otio=path, edl=edl, media=media.folder)


# --------------------------------------------------------------------------------------------
# Contact sheet

THUMB_LONG_SIDE = 320
PADDING = 12
TEXT_SIZE = 14
HEADER_SIZE = 20
PROMPT_LINES = 3
COLUMNS = 4
MIN_TILE_WIDTH = 240
BACKGROUND = (24, 24, 24)
BLUR_RADIUS = 8
"""Gaussian blur of the fill behind a "blur" reframe, at thumbnail size (the assembler's boxblur
of 20 px at 1080p, scaled)."""


@dataclass(frozen=True)
class SheetFrame:
    """A decoded frame for the sheet and which frame of the clip it is (0-based, clip fps)."""

    image: Image.Image
    index: int


def _open_for_decoding(clip: Path, threaded: bool = True) -> Any:
    """Open a clip without PyAV's probing decode (``video.open_packets``), then let the video
    stream decode again; frame-threaded when many frames are to be decoded (for one frame,
    threads only add latency)."""
    from storyboard.assemble.video import open_packets

    container = open_packets(clip)
    if container.streams.video:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "DEFAULT"
        stream.thread_type = "AUTO" if threaded else "NONE"
    return container


def _keyframe_at_or_before(clip: Path, middle: int) -> int | None:
    """Frame index of the last IDR keyframe at or before frame ``middle``, from the packet index the
    assembler already read (``media.scan`` is cached per file: this opens nothing)."""
    from storyboard.media import MediaError, scan

    try:
        facts = scan(clip)
    except (MediaError, OSError):
        return None
    packets = facts.packets
    if not packets.pts:
        return None
    start = min(packets.pts)
    rate = Fraction(facts.probe.fps or DEFAULT_FPS)
    positions = (round_half_up((pts - start) * packets.time_base * rate) for pts in packets.idr_pts)
    return max((position for position in positions if position <= middle), default=None)


def sheet_frame(clip: Path, first: int, middle: int, cover: tuple[int, int] | None = None) -> SheetFrame:
    """The frame the sheet shows for a kept range starting at clip frame ``first`` whose middle
    is ``middle``: the nearest keyframe at or before the middle, so only a few frames are decoded.

    Why not the exact middle: Kling clips have one keyframe, so the middle costs decoding half the
    clip (most of a hard-cut assembly's time). When that keyframe lies before the kept range (a
    trimmed start, a later shot of a multi-shot clip), decoding goes on, skipping the frames
    nothing refers to, up to the range's first frame: the sheet never shows a frame the cut
    does not use. The returned index says which frame it is, and the tile says when.
    ``cover``: scale the picture down (in the decoder's scaler) to the smallest size covering it.
    """
    import av

    try:
        return _sheet_frame(clip, first, middle, cover)
    except (av.FFmpegError, OSError) as exc:
        raise UserError(f"{clip}: not a readable video ({exc})", "run storyboard render again to fetch the clip") from None


def _sheet_frame(clip: Path, first: int, middle: int, cover: tuple[int, int] | None) -> SheetFrame:
    import av

    keyframe = _keyframe_at_or_before(clip, middle)
    with _open_for_decoding(clip, threaded=keyframe is None or keyframe < first) as container:
        if not container.streams.video:
            raise UserError(f"{clip}: no video stream", "render the shot again")
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        time_base = Fraction(stream.time_base or Fraction(1, DEFAULT_FPS))
        start = stream.start_time or 0

        def index_of(frame: Any) -> int:
            return round_half_up((frame.pts - start) * time_base * rate)

        container.seek(start + int(Fraction(middle) / rate / time_base), stream=stream, backward=True, any_frame=False)
        context = stream.codec_context
        last = None
        if keyframe is not None and keyframe >= first:
            last = _keyframe_alone(container, stream, keyframe, index_of)
            if last is None:  # not the packets expected: start again and decode on as usual
                container.seek(start + int(Fraction(middle) / rate / time_base), stream=stream, backward=True,
                               any_frame=False)
        try:
            for frame in () if last is not None else container.decode(stream):
                if frame.pts is None:
                    continue
                last = frame
                position = index_of(frame)
                if position >= first or position >= middle:
                    break
                # before the kept range: frames no other frame refers to need not be decoded
                context.skip_frame = "NONREF" if position < first - 2 else "DEFAULT"
        except av.FFmpegError as exc:
            if last is None:
                raise UserError(f"{clip}: cannot decode ({exc})", "render the shot again") from None
        if last is None:
            raise UserError(f"{clip}: no decodable video frame", "render the shot again")
        width, height = last.width, last.height
        if cover is not None:
            scale = min(1.0, max(cover[0] / width, cover[1] / height))
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        picture = last.reformat(width=width, height=height, format="rgb24").to_image()
        return SheetFrame(picture, index_of(last))


def _keyframe_alone(container: Any, stream: Any, keyframe: int, index_of: Callable[[Any], int]) -> Any:
    """Decode the keyframe the seek landed on by itself: its packet, then a flush; None when the
    packets do not start with it (the caller then decodes on as usual).

    Why: an H.264 decoder holds a picture back until the packets after it arrive (B-frame
    reordering), so decoding "until the first frame" also decodes the next two or three
    pictures, more than half of the cost (a grainy 1080p keyframe is ~300 KB, ~60 ms). An IDR
    picture refers to nothing, so it decodes alone, and flushing hands it out at once.
    """
    import av

    context = stream.codec_context
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        if not packet.is_keyframe:
            return None
        try:
            frames = [*context.decode(packet), *context.decode(None)]
        except av.FFmpegError:
            return None
        found = next((frame for frame in frames if frame.pts is not None), None)
        return found if found is not None and index_of(found) == keyframe else None
    return None


def frame_image(clip: Path, index: int) -> Image.Image:
    """Decode frame ``index`` (0-based, at the clip's fps) of a video, as an RGB image; an index
    past the end gives the last frame. (The exact frame: for tests and tools, not the sheet.)"""
    import av

    with _open_for_decoding(clip) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        time_base = Fraction(stream.time_base or Fraction(1, DEFAULT_FPS))
        first = stream.start_time or 0
        container.seek(first + int(Fraction(index) / rate / time_base), stream=stream, backward=True, any_frame=False)
        last = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                last = frame
                if round_half_up((frame.pts - first) * time_base * rate) >= index:
                    break
        except av.FFmpegError:
            pass
        if last is None:
            raise UserError(f"{clip}: no decodable video frame", "render the shot again")
        return last.to_image().convert("RGB")


def reframed_thumbnail(picture: Image.Image, size: tuple[int, int], reframe: str) -> Image.Image:
    """The frame as the output shows it, at thumbnail ``size``: centre-cropped to fill ("crop"),
    or fitted over a blurred, filled copy of itself ("blur"), as the assembler's filters do."""
    width, height = size
    ratio, wanted = picture.width / picture.height, width / height
    if abs(ratio - wanted) <= ASPECT_TOLERANCE * wanted or reframe != "blur":
        return ImageOps.fit(picture, size, Image.Resampling.BILINEAR)
    fill = ImageOps.fit(picture, size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    front = ImageOps.contain(picture, size, Image.Resampling.BILINEAR)
    fill.paste(front, ((width - front.width) // 2, (height - front.height) // 2))
    return fill


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float) -> str:
    """``text`` on one line no wider than ``width``, ending in "…" when it had to be shortened."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int, max_lines: int) -> list[str]:
    """Words in lines no wider than ``width`` (a word wider than that is shortened with "…"), at
    most ``max_lines``, the last ending in "…" when text was left out."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        attempt = f"{current} {word}".strip()
        if draw.textlength(attempt, font=font) <= width:
            current = attempt
            continue
        if current:
            lines.append(current)
        current = word
    if current:
        lines.append(current)
    lines = [_fit(draw, line, font, width) for line in lines]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(draw, lines[-1] + " …", font, width) if not lines[-1].endswith("…") else lines[-1]
    return lines


def _sheet_fonts() -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont, ImageFont.FreeTypeFont]:
    from storyboard.assemble.fonts import load_font

    return load_font(None, TEXT_SIZE), load_font(None, TEXT_SIZE + 2, bold=True), load_font(None, HEADER_SIZE, bold=True)


def write_contact_sheet(timeline: Timeline, path: Path | str) -> None:
    """Write ``contact_sheet_image`` as a PNG."""
    contact_sheet_image(timeline).save(str(path), format="PNG")


def contact_sheet_image(timeline: Timeline) -> Image.Image:
    """The contact sheet: one tile per shot: a frame of its kept range reframed as the output shows it,
    its id, timing and prompt; every text stays inside its tile.

    Why: a reviewer checks a cut's content, order and framing at a glance, without playing it.
    The frame is the kept range's nearest keyframe at or before its middle (``sheet_frame``),
    decoded from the clip itself, so it is a frame the cut uses; the tile says when it is.
    """
    shots = timeline.shots
    fps = timeline.output.fps
    out_w, out_h = timeline.output.width, timeline.output.height
    if out_w >= out_h:
        thumb_w, thumb_h = THUMB_LONG_SIDE, max(1, round(THUMB_LONG_SIDE * out_h / out_w))
    else:
        thumb_w, thumb_h = max(1, round(THUMB_LONG_SIDE * out_w / out_h)), THUMB_LONG_SIDE
    tile_w = max(thumb_w, MIN_TILE_WIDTH)
    font, bold, header_font = _sheet_fonts()
    line_h = TEXT_SIZE + 5
    text_h = (TEXT_SIZE + 7) + line_h * (2 + PROMPT_LINES)
    tile_h = thumb_h + 6 + text_h
    columns = max(1, min(COLUMNS, len(shots)))
    rows = max(1, -(-len(shots) // columns))
    sheet_w = PADDING + columns * (tile_w + PADDING)
    header = [
        timeline.name,
        f"{out_w}x{out_h} {timeline.output.aspect_ratio} {fps} fps, {timeline.output.reframe}",
        f"{timeline.duration:.2f} s ({timeline.total_frames} frames), {len(shots)} shot(s)",
    ]
    probe_draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # the header on one line when it fits, else one part a line
    one_line = "  |  ".join(header)
    header_lines = [one_line] if probe_draw.textlength(one_line, font=header_font) <= sheet_w - 2 * PADDING else header
    header_line_h = HEADER_SIZE + 6
    header_h = 2 * PADDING + header_line_h * len(header_lines) - 6
    sheet = Image.new("RGB", (sheet_w, header_h + rows * (tile_h + PADDING)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for n, line in enumerate(header_lines):
        draw.text((PADDING, PADDING + n * header_line_h), _fit(draw, line, header_font, sheet_w - 2 * PADDING),
                  fill=(240, 240, 240), font=header_font)

    frames: dict[tuple[Path, int, int], SheetFrame] = {}
    for number, shot in enumerate(shots):
        row, column = divmod(number, columns)
        x = PADDING + column * (tile_w + PADDING)
        y = header_h + row * (tile_h + PADDING)
        first = shot.source_in_frame
        middle = first + shot.source_frames(fps) // 2
        key = (shot.clip, first, middle)
        shown = frames.get(key) or frames.setdefault(key, sheet_frame(shot.clip, first, middle, (2 * thumb_w, 2 * thumb_h)))
        thumb = reframed_thumbnail(shown.image, (thumb_w, thumb_h), timeline.output.reframe)
        sheet.paste(thumb, (x + (tile_w - thumb_w) // 2, y))
        ty = y + thumb_h + 6
        rid = shot.request.id
        rid_w = min(draw.textlength(rid, font=font), tile_w / 2)
        label = _fit(draw, f"{number + 1}. {shot.shot_id}", bold, tile_w - rid_w - 8)
        draw.text((x, ty), label, fill=(255, 255, 255), font=bold)
        draw.text((x + tile_w, ty + 2), _fit(draw, rid, font, tile_w / 2), fill=(140, 140, 140), font=font, anchor="ra")
        ty += TEXT_SIZE + 7
        timing = f"{shot.frames / fps:.2f} s ({shot.frames} f) at {shot.record_start_frame / fps:.2f} s"
        if shot.transition.type != "cut":
            timing += f", in: {shot.transition.type} {shot.transition.duration:.2g} s"
        draw.text((x, ty), _fit(draw, timing, font, tile_w), fill=(200, 200, 120), font=font)
        ty += line_h
        seen = (shown.index - first) / shot.source_fps
        framing = f"frame at {max(0.0, seen):.2f} s of the shot"
        if shot.shot_id in timeline.reframed:
            framing += f", {timeline.output.reframe} to {timeline.output.aspect_ratio}"
        draw.text((x, ty), _fit(draw, framing, font, tile_w), fill=(150, 180, 220), font=font)
        ty += line_h
        for line in _wrap(draw, shot.prompt, font, tile_w, PROMPT_LINES):
            draw.text((x, ty), line, fill=(190, 190, 190), font=font)
            ty += line_h
    return sheet

