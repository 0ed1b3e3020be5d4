"""The files beside each cut: subtitles (SRT), the editor handoff (OpenTimelineIO, CMX 3600 EDL)
and the contact sheet.

Why apart from the timeline: the timeline decides the cut; these only describe it for other tools
(editors, players, reviewers), and each of them changes for reasons of its own (an NLE's import
rules, a sheet's layout) that never touch the frame arithmetic.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from storyboard.assemble.timeline import (
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


def write_srt(timeline: Timeline, path: Path | str) -> None:
    """Write the timeline's captions as SRT (UTF-8); a cut with no captions gives an empty file."""
    Path(path).write_text(srt_text(timeline), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# OpenTimelineIO (+ CMX 3600 EDL)


def _clip_frames(segment: ShotSegment) -> tuple[int, float]:
    """(frames, fps) of the clip file from its header; the plan's figure if it cannot be read."""
    from storyboard.media import MediaError, probe

    try:
        facts = probe(segment.clip, count_frames=False)
    except MediaError:
        log.warning("%s: cannot read the clip; its OTIO available range comes from the plan", segment.clip)
        return segment.request.duration * segment.request.fps, segment.request.fps
    return facts.frames, float(facts.fps)


def otio_timeline(
    timeline: Timeline, *, task_ids: dict[str, str] | None = None, costs: dict[str, float] | None = None
) -> Any:
    """The timeline as an ``opentimelineio.schema.Timeline`` (see ``write_otio``)."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    task_ids = task_ids or {}
    costs = costs or {}
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
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    result.tracks.append(track)

    # OTIO lays clips end to end at their cut points; a transition borrows `in_offset` frames of
    # the incoming clip before the cut and `out_offset` frames of the outgoing one after it. We put
    # the cut in the middle of each overlap, so each clip's visible range is exactly its kept range.
    overlaps = [timeline.overlap_frames(i) for i in range(len(timeline.items))] + [0]
    for index, item in enumerate(timeline.items):
        overlap_in, overlap_out = overlaps[index], overlaps[index + 1]
        head = overlap_in // 2  # frames of this item shown before the cut, under the transition
        tail = overlap_out - overlap_out // 2  # frames of this item shown after the next cut
        if overlap_in:
            track.append(
                otio.schema.Transition(
                    name=item.transition.type,
                    transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=RationalTime(head, fps),
                    out_offset=RationalTime(overlap_in - head, fps),
                    metadata={"storyboard": {"type": item.transition.type, "frames": overlap_in}},
                )
            )
        body = item.frames - head - tail
        if isinstance(item, ShotSegment):
            src = item.source_fps
            available, rate = _clip_frames(item)
            request = item.request
            units = costs.get(request.key, costs.get(request.id))
            reference = otio.schema.ExternalReference(
                target_url=item.clip.as_uri(),
                available_range=TimeRange(RationalTime(0, rate), RationalTime(available, rate)),
            )
            clip = otio.schema.Clip(
                name=item.shot_id,
                media_reference=reference,
                source_range=TimeRange(
                    RationalTime(item.source_in_frame, src) + RationalTime(head, fps).rescaled_to(src),
                    RationalTime(body, fps).rescaled_to(src),
                ),
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
            }
            # EDL reels are 8 characters: the request id ("r02pour") reads better than a file hash.
            clip.metadata["cmx_3600"] = {"reel": re.sub(r"[^A-Za-z0-9]", "", request.id)[:8] or "AX"}
        else:
            reference = otio.schema.GeneratorReference(
                name=f"{item.kind} card",
                generator_kind="storyboard_card",
                available_range=TimeRange(RationalTime(0, fps), RationalTime(item.frames, fps)),
                parameters={"text": item.card.text, "background": item.card.background},
            )
            clip = otio.schema.Clip(
                name=f"{item.kind} card",
                media_reference=reference,
                source_range=TimeRange(RationalTime(head, fps), RationalTime(body, fps)),
            )
            clip.metadata["storyboard"] = {
                "card": item.kind,
                "text": item.card.text,
                "record_start_frame": item.record_start_frame,
            }
            clip.metadata["cmx_3600"] = {"reel": "BL"}  # black in the EDL, named in its comment
        track.append(clip)
    return result


def edl_available() -> bool:
    """Whether OTIO's CMX 3600 adapter (package otio-cmx3600-adapter) is installed."""
    import opentimelineio as otio

    return any(adapter.name == "cmx_3600" for adapter in otio.plugins.ActiveManifest().adapters)


def write_otio(
    timeline: Timeline,
    path: Path | str,
    *,
    task_ids: dict[str, str] | None = None,
    costs: dict[str, float] | None = None,
) -> Path | None:
    """Write the cut as OpenTimelineIO JSON, and a CMX 3600 EDL next to it (same name, .edl).

    ``task_ids`` and ``costs`` map a request key (or id) to its Kling task id and to the units
    Kling charged (``final_unit_deduction``); a request without a charged figure shows its planned
    units. Returns the EDL's path, or None (with a logged warning) when OTIO's cmx_3600 adapter
    is not installed.
    """
    import opentimelineio as otio

    path = Path(path)
    result = otio_timeline(timeline, task_ids=task_ids, costs=costs)
    otio.adapters.write_to_file(result, str(path), adapter_name="otio_json")
    if not edl_available():
        log.warning("no EDL written: install otio-cmx3600-adapter for OTIO's cmx_3600 adapter")
        return None
    edl = path.with_suffix(".edl")
    # The EDL writer edits the track it is given (it moves cut points): give it a copy.
    otio.adapters.write_to_file(result.deepcopy(), str(edl), adapter_name="cmx_3600", rate=timeline.output.fps)
    return edl


# --------------------------------------------------------------------------------------------
# Contact sheet

THUMB_LONG_SIDE = 320
PADDING = 12
TEXT_SIZE = 14
HEADER_SIZE = 20
PROMPT_LINES = 3
COLUMNS = 4


def frame_image(clip: Path, index: int) -> Image.Image:
    """Decode frame ``index`` (0-based, at the clip's fps) of a video with PyAV, as an RGB image.

    Seeks to the keyframe before it and decodes forward, so a long clip is not decoded whole;
    an index past the end gives the last frame.
    """
    import av

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        time_base = Fraction(stream.time_base)
        first = stream.start_time or 0
        target = first + int(Fraction(index) / rate / time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            last = frame
            if round_half_up((frame.pts - first) * time_base * rate) >= index:
                break
        if last is None:
            raise UserError(f"{clip}: no decodable video frame", "render the shot again")
        return last.to_image().convert("RGB")


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int, max_lines: int) -> list[str]:
    words = text.split()
    lines: list[str] = []
    current = ""
    for word in words:
        attempt = f"{current} {word}".strip()
        if draw.textlength(attempt, font=font) <= width or not current:
            current = attempt
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and draw.textlength(last + " ...", font=font) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + " ..."
    return lines


def write_contact_sheet(timeline: Timeline, path: Path | str) -> None:
    """A PNG with one tile per shot: its kept range's middle frame, id, timing and prompt.

    Why: a reviewer checks a cut's content and order at a glance, without playing it. The frame
    is the middle of the kept range, decoded from the clip itself, so it shows what the cut uses.
    """
    shots = timeline.shots
    fps = timeline.output.fps
    out_w, out_h = timeline.output.width, timeline.output.height
    if out_w >= out_h:
        thumb_w, thumb_h = THUMB_LONG_SIDE, max(1, round(THUMB_LONG_SIDE * out_h / out_w))
    else:
        thumb_w, thumb_h = max(1, round(THUMB_LONG_SIDE * out_w / out_h)), THUMB_LONG_SIDE
    tile_w = max(thumb_w, 240)
    font = ImageFont.load_default(size=TEXT_SIZE)
    bold = ImageFont.load_default(size=TEXT_SIZE + 2)
    header_font = ImageFont.load_default(size=HEADER_SIZE)
    line_h = TEXT_SIZE + 5
    text_h = (TEXT_SIZE + 7) + line_h * (1 + PROMPT_LINES)
    tile_h = thumb_h + 6 + text_h
    columns = max(1, min(COLUMNS, len(shots)))
    rows = max(1, -(-len(shots) // columns))
    header_h = HEADER_SIZE + 2 * PADDING
    sheet = Image.new(
        "RGB",
        (PADDING + columns * (tile_w + PADDING), header_h + rows * (tile_h + PADDING)),
        (24, 24, 24),
    )
    draw = ImageDraw.Draw(sheet)
    header = (
        f"{timeline.name}  |  {out_w}x{out_h} {timeline.output.aspect_ratio} {fps} fps  |  "
        f"{timeline.duration:.2f} s ({timeline.total_frames} frames)  |  {len(shots)} shot(s)"
    )
    draw.text((PADDING, PADDING), header, fill=(240, 240, 240), font=header_font)

    for number, shot in enumerate(shots):
        row, column = divmod(number, columns)
        x = PADDING + column * (tile_w + PADDING)
        y = header_h + row * (tile_h + PADDING)
        middle = shot.source_in_frame + shot.source_frames(fps) // 2
        picture = ImageOps.contain(frame_image(shot.clip, middle), (thumb_w, thumb_h))
        draw.rectangle((x, y, x + tile_w - 1, y + thumb_h - 1), fill=(0, 0, 0))
        sheet.paste(picture, (x + (tile_w - picture.width) // 2, y + (thumb_h - picture.height) // 2))
        ty = y + thumb_h + 6
        draw.text((x, ty), f"{number + 1}. {shot.shot_id}", fill=(255, 255, 255), font=bold)
        draw.text((x + tile_w, ty + 2), shot.request.id, fill=(140, 140, 140), font=font, anchor="ra")
        ty += TEXT_SIZE + 7
        timing = f"{shot.frames / fps:.2f} s ({shot.frames} f) at {shot.record_start_frame / fps:.2f} s"
        if shot.transition.type != "cut":
            timing += f", in: {shot.transition.type} {shot.transition.duration:.2g} s"
        if shot.shot_id in timeline.reframed:
            timing += f"  [{timeline.output.reframe}]"
        draw.text((x, ty), timing, fill=(200, 200, 120), font=font)
        ty += line_h
        for line in _wrap(draw, shot.prompt, font, tile_w, PROMPT_LINES):
            draw.text((x, ty), line, fill=(190, 190, 190), font=font)
            ty += line_h
    sheet.save(str(path), format="PNG")
