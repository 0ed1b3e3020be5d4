"""The cut timeline: which frames of which clip go where in each output (side files: ``sidefiles``).

Why its own module: the assembler renders pixels, editors want an OTIO/EDL they can conform,
viewers want subtitles, reviewers want a contact sheet; all four must agree to the frame on what
the cut is. So the cut is decided once, here, as plain integer frames at the output's fps, and
every consumer (the assembler included) reads that decision instead of redoing the arithmetic.

Frame arithmetic. Every duration in the storyboard is seconds (a decimal the user typed); each is
converted to frames exactly once, with exact decimal arithmetic (``Fraction`` of the number's
shortest repr) and half-up rounding, so no float error accumulates along a long cut:

* a shot keeps ``round((keep - trim_in - trim_out) * fps)`` output frames;
* its first clip frame is ``round((slice offset + trim_in) * clip_fps)``, at the clip's own fps;
* a transition of ``d`` seconds overlaps its two neighbours by ``round(d * fps)`` frames, and the
  ``Transition`` stored in the timeline carries that quantised duration (``frames / fps``).

Transitions. ``crossfade`` and ``dissolve`` blend the two items over the overlap. ``fade_black`` and
``fade_white`` overlap by the same ``d`` (so they shorten the cut exactly as a crossfade does): over
the first half of the overlap the outgoing item fades to the colour, over the second half the
incoming item fades up from it, a dip to colour centred on the join. A join whose overlap rounds
to zero frames is a plain cut. An item's incoming and outgoing overlaps together may not exceed
its frames, so at most two items are ever on screen at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

from PIL import ImageColor

from storyboard.errors import Location, Problem, StoryboardInvalid, UserError
from storyboard.load.spec import Audio, Card, CutShot, Output, Storyboard, TextStyle, Transition
from storyboard.plan import Plan, Request, ShotSlice

log = logging.getLogger(__name__)

OVERLAPPING = ("crossfade", "dissolve", "fade_black", "fade_white")
"""Transition kinds that overlap their two neighbours (every kind but ``cut``)."""

DEFAULT_FPS = 24
DEFAULT_HEIGHT = {"std": 720, "pro": 1080, "4k": 1080}
"""Height of the default output per Kling mode: std renders 720p, pro and 4k 1080p or more."""

ASPECT_TOLERANCE = 0.01
"""Relative difference of two aspect ratios under which a clip needs no reframing."""

CUT = Transition(type="cut", duration=0)


# --------------------------------------------------------------------------------------------
# The timeline types (the assembler codes against these; keep the fields as they are)


@dataclass(frozen=True)
class OutputFormat:
    """An ``Output`` resolved to numbers: width and height are even (H.264 4:2:0 needs it)."""

    name: str
    aspect_ratio: str
    width: int
    height: int
    fps: int
    reframe: Literal["crop", "blur"]


@dataclass(frozen=True)
class ShotSegment:
    """One shot's kept range of its clip, and where it lands in the output."""

    shot_id: str
    request: Request
    clip: Path
    source_in_frame: int
    """First frame to use in the clip, at the CLIP's fps (slice offset + trim_in)."""
    source_fps: int
    """The request's fps."""
    frames: int
    """Frames kept, at the OUTPUT fps."""
    transition: Transition
    """Join with the previous item ("cut", duration 0, for the first item)."""
    caption: str | None
    prompt: str
    record_start_frame: int
    """Where the item starts in the output, in output frames (after overlaps)."""

    @property
    def end_frame(self) -> int:
        """Output frame just after the item (exclusive)."""
        return self.record_start_frame + self.frames

    def source_frames(self, output_fps: int) -> int:
        """Frames of the clip the item spans, at the clip's fps (== ``frames`` when fps match)."""
        return round_half_up(Fraction(self.frames * self.source_fps, output_fps))


@dataclass(frozen=True)
class CardSegment:
    """A title or end card. ``card.background`` and fonts that are files are absolute paths."""

    kind: Literal["title", "end"]
    card: Card
    frames: int
    transition: Transition
    record_start_frame: int

    @property
    def end_frame(self) -> int:
        return self.record_start_frame + self.frames


Segment = ShotSegment | CardSegment


@dataclass(frozen=True)
class Timeline:
    """One output's cut, frame-accurate: files are out/<name>.mp4/.srt/.otio/.contact.png."""

    name: str
    output: OutputFormat
    items: tuple[Segment, ...]
    audio: Audio
    bed: Path | None
    """Absolute path of the music bed, if any."""
    captions: TextStyle
    total_frames: int
    """Sum of item frames minus transition overlaps."""
    reframed: tuple[str, ...]
    """Shot ids whose clip ratio differs from the output's (the assembler crops or blurs them)."""

    @property
    def duration(self) -> float:
        """Seconds of the output (total_frames / fps)."""
        return self.total_frames / self.output.fps

    def overlap_frames(self, index: int) -> int:
        """Frames item ``index`` overlaps the one before it (0 for a cut and for the first)."""
        if index == 0:
            return 0
        return self.items[index - 1].end_frame - self.items[index].record_start_frame

    @property
    def shots(self) -> tuple[ShotSegment, ...]:
        return tuple(item for item in self.items if isinstance(item, ShotSegment))


class LoadedLike(Protocol):
    """What this module needs of the loader's LoadedStoryboard (tests build it by hand)."""

    storyboard: Storyboard
    file: Path
    project_dir: Path

    def resolve_path(self, rel: str) -> Path: ...


# --------------------------------------------------------------------------------------------
# Frame arithmetic


def exact(seconds: float | int | Fraction) -> Fraction:
    """The decimal the user typed, exactly (0.1 is 1/10, not 0.1000000000000000055...)."""
    if isinstance(seconds, Fraction):
        return seconds
    return Fraction(repr(seconds)) if isinstance(seconds, float) else Fraction(seconds)


def round_half_up(value: Fraction) -> int:
    """Round to the nearest integer, halves up: deterministic, unlike banker's rounding."""
    return int((value + Fraction(1, 2)).__floor__())


def to_frames(seconds: float | int | Fraction, fps: int) -> int:
    """Seconds to whole frames at ``fps``, rounded once."""
    return round_half_up(exact(seconds) * fps)


def srt_time(frame: int, fps: int) -> str:
    """Output frame to an SRT timestamp HH:MM:SS,mmm (milliseconds rounded half up)."""
    ms = round_half_up(Fraction(frame * 1000, fps))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{ms:03d}"


def _ratio(aspect_ratio: str) -> Fraction | None:
    width, _, height = aspect_ratio.partition(":")
    try:
        return Fraction(int(width), int(height))
    except (ValueError, ZeroDivisionError):
        return None


# --------------------------------------------------------------------------------------------
# Outputs


def resolve_output(output: Output) -> OutputFormat:
    """Width from height and ratio, both rounded to even pixels (9:16 at 1080 is 608x1080)."""
    ratio = _ratio(output.aspect_ratio) or Fraction(16, 9)
    height = output.height - output.height % 2
    width = 2 * round_half_up(height * ratio / 2)
    return OutputFormat(
        name=output.name,
        aspect_ratio=output.aspect_ratio,
        width=width,
        height=height,
        fps=output.fps,
        reframe=output.reframe,
    )


def default_outputs(loaded: LoadedLike) -> list[OutputFormat]:
    """The storyboard's outputs as numbers; none declared: one "main" at the project's ratio,
    720p for std renders and 1080p for pro/4k, 24 fps, centre crop."""
    board = loaded.storyboard
    if board.outputs:
        return [resolve_output(output) for output in board.outputs]
    main = Output(
        name="main",
        aspect_ratio=board.defaults.aspect_ratio,
        height=DEFAULT_HEIGHT[board.defaults.mode],
        fps=DEFAULT_FPS,
        reframe="crop",
    )
    return [resolve_output(main)]


# --------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True)
class _Entry:
    """One cut shot resolved against the storyboard and the plan (output independent)."""

    cut_shot: CutShot
    path: tuple[str | int, ...]
    """Path of the cut shot in the storyboard model, e.g. ("cut", "shots", 2), for locations."""
    request: Request
    piece: ShotSlice
    caption: str | None
    transition: Transition
    transition_path: tuple[str | int, ...]


def build_timelines(
    loaded: LoadedLike,
    plan: Plan,
    clips: dict[str, Path],
    *,
    only: list[str] | None = None,
) -> list[Timeline]:
    """One Timeline per output (``only``: these output names), from the cut and the plan.

    ``clips`` maps request keys to downloaded clip files. Raises ``StoryboardInvalid`` listing
    every trim or transition that cannot work, and ``UserError`` naming every shot (with its
    request id) whose clip is not there yet, before anything is built.
    """
    board = loaded.storyboard
    file = str(loaded.file)
    outputs = default_outputs(loaded)
    if only is not None:
        known = {output.name for output in outputs}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise UserError(
                f"unknown output(s): {', '.join(unknown)}",
                f"outputs of {file}: {', '.join(output.name for output in outputs)}",
            )
        outputs = [output for output in outputs if output.name in only]

    entries = _resolve_entries(loaded, plan)
    _check_clips(entries, clips)
    bed = _bed_path(loaded)
    title = _resolve_card(loaded, board.cut.title, "cut.title") if board.cut.title else None
    end_card = _resolve_card(loaded, board.cut.end_card, "cut.end_card") if board.cut.end_card else None
    captions = _resolve_style(loaded, board.cut.captions)

    timelines: list[Timeline] = []
    problems: list[Problem] = []
    for output in outputs:
        timeline, found = _build_one(
            _locator(loaded), output, entries, clips, title, end_card, board.cut.transition, board.cut.audio, bed, captions
        )
        problems.extend(p for p in found if p not in problems)
        if timeline is not None:
            timelines.append(timeline)
    if problems:
        raise StoryboardInvalid(problems)
    return timelines


def _resolve_entries(loaded: LoadedLike, plan: Plan) -> list[_Entry]:
    board = loaded.storyboard
    file = str(loaded.file)
    where = _locator(loaded)
    shots = {shot.id: shot for shot in board.shots}
    listed: list[tuple[CutShot, tuple[str | int, ...]]]
    if board.cut.shots is not None:
        listed = [(cut_shot, ("cut", "shots", i)) for i, cut_shot in enumerate(board.cut.shots)]
    else:
        listed = [(CutShot(shot=shot.id), ("shots", i)) for i, shot in enumerate(board.shots)]
    problems: list[Problem] = []
    stale: list[str] = []
    entries: list[_Entry] = []
    for cut_shot, path in listed:
        shot = shots.get(cut_shot.shot)
        if shot is None:
            problems.append(
                Problem(
                    where(*path, "shot"),
                    f"the cut uses shot {cut_shot.shot!r}, which is not in shots: "
                    f"use one of {', '.join(shots)}",
                )
            )
            continue
        try:
            request, piece = plan.request_for_shot(shot.id)
        except KeyError:
            stale.append(shot.id)
            continue
        if cut_shot.caption is not None:
            caption = cut_shot.caption
        else:
            caption = piece.caption if piece.caption is not None else shot.caption
        if cut_shot.transition is not None:
            transition, transition_path = cut_shot.transition, (*path, "transition")
        else:
            transition, transition_path = board.cut.transition, ("cut", "transition")
        entries.append(
            _Entry(
                cut_shot=cut_shot,
                path=path,
                request=request,
                piece=piece,
                caption=caption or None,
                transition=transition,
                transition_path=transition_path,
            )
        )
    if not listed:
        problems.append(
            Problem(
                where("cut", "shots"),
                "the cut has no shots: list at least one, or remove cut.shots to use every shot in order",
            )
        )
    if problems:
        raise StoryboardInvalid(problems)
    if stale:
        raise UserError(
            f"the plan has no request for shot(s) {', '.join(stale)}: it is older than {file}",
            "run storyboard plan (then render) again",
        )
    return entries


def _locator(loaded: LoadedLike) -> Callable[..., Location]:
    """Locations of storyboard nodes: the loader's file:line:col when it has them, else the path."""
    locate = getattr(loaded, "locate", None)
    if callable(locate):
        return locate
    file = str(loaded.file)

    def dotted(*parts: str | int) -> Location:
        text = ""
        for part in parts:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return Location(file, path=text)

    return dotted


def _check_clips(entries: list[_Entry], clips: dict[str, Path]) -> None:
    """Every shot's clip must exist; name all the missing ones at once."""
    missing: list[str] = []
    for entry in entries:
        clip = clips.get(entry.request.key)
        if clip is None or not Path(clip).is_file():
            label = f"{entry.piece.shot_id} ({entry.request.id})"
            if label not in missing:
                missing.append(label)
    if missing:
        raise UserError(f"shots not rendered yet: {', '.join(missing)}: run storyboard render first")


def _bed_path(loaded: LoadedLike) -> Path | None:
    bed = loaded.storyboard.cut.audio.bed
    if bed is None:
        return None
    path = _absolute(loaded, bed.file)
    if not path.is_file():
        raise UserError(
            f"{loaded.file}: cut.audio.bed.file: {bed.file} not found (looked at {path})",
            "fix the path (relative to the project folder) or remove the bed",
        )
    return path


def _absolute(loaded: LoadedLike, rel: str) -> Path:
    path = Path(loaded.resolve_path(rel))
    if not path.is_absolute():
        path = Path(loaded.project_dir) / path
    return path.resolve()


def _is_colour(value: str) -> bool:
    try:
        ImageColor.getrgb(value)
    except ValueError:
        return False
    return True


def _resolve_style(loaded: LoadedLike, style: TextStyle) -> TextStyle:
    """A font given as a project file becomes absolute; a font name stays a name."""
    if style.font:
        candidate = _absolute(loaded, style.font)
        if candidate.is_file():
            return style.model_copy(update={"font": str(candidate)})
    return style


def _resolve_card(loaded: LoadedLike, card: Card, path: str) -> Card:
    """Card backgrounds that are images become absolute paths (the assembler has no project)."""
    update: dict[str, Any] = {"style": _resolve_style(loaded, card.style)}
    if not _is_colour(card.background):
        image = _absolute(loaded, card.background)
        if not image.is_file():
            raise UserError(
                f"{loaded.file}: {path}.background: {card.background!r} is neither a colour nor an image file",
                "use a colour such as '#000000' or an image path relative to the project folder",
            )
        update["background"] = str(image)
    return card.model_copy(update=update)


def _clip_ratio(request: Request) -> Fraction | None:
    ratio = _ratio(request.aspect_ratio)
    if ratio is None and request.width and request.height:
        ratio = Fraction(request.width, request.height)
    return ratio


def _build_one(
    where: Callable[..., Location],
    output: OutputFormat,
    entries: list[_Entry],
    clips: dict[str, Path],
    title: Card | None,
    end_card: Card | None,
    default_transition: Transition,
    audio: Audio,
    bed: Path | None,
    captions: TextStyle,
) -> tuple[Timeline | None, list[Problem]]:
    fps = output.fps
    problems: list[Problem] = []

    # 1. Every item's length in output frames, and each join's overlap.
    lengths: list[int] = []
    labels: list[str] = []
    joins: list[tuple[Transition, tuple[str | int, ...]]] = []  # (transition, its storyboard path) into each item
    kinds: list[Any] = []
    if title is not None:
        kinds.append(("title", title))
        lengths.append(to_frames(title.duration, fps))
        labels.append("the title card")
        joins.append((CUT, ()))
    for entry in entries:
        piece, cut_shot = entry.piece, entry.cut_shot
        kept = exact(piece.keep) - exact(cut_shot.trim_in) - exact(cut_shot.trim_out)
        frames = to_frames(kept, fps)
        if frames <= 0:
            problems.append(
                Problem(
                    where(*entry.path, "trim_in"),
                    f"shot {piece.shot_id!r}: trim_in {cut_shot.trim_in:g} s + trim_out {cut_shot.trim_out:g} s "
                    f"leave nothing of its {piece.keep:g} s: trim less",
                )
            )
        src = entry.request.fps
        kept_end = to_frames(exact(piece.offset) + exact(piece.keep) - exact(cut_shot.trim_out), src)
        slice_end = to_frames(exact(piece.offset) + exact(piece.rendered), src)
        if kept_end > slice_end:
            problems.append(
                Problem(
                    where(*entry.path),
                    f"shot {piece.shot_id!r} keeps {piece.keep:g} s but its request {entry.request.id} renders only "
                    f"{piece.rendered:g} s of it: run storyboard plan again",
                )
            )
        joins.append((entry.transition, entry.transition_path) if kinds else (CUT, ()))
        kinds.append(entry)
        lengths.append(frames)
        labels.append(f"shot {piece.shot_id!r}")
    if end_card is not None:
        kinds.append(("end", end_card))
        lengths.append(to_frames(end_card.duration, fps))
        labels.append("the end card")
        joins.append((default_transition, ("cut", "transition")))

    overlaps: list[int] = []
    transitions: list[Transition] = []
    for index, (transition, path) in enumerate(joins):
        overlap = to_frames(transition.duration, fps) if index and transition.type in OVERLAPPING else 0
        if overlap == 0:
            overlaps.append(0)
            transitions.append(CUT)
            continue
        overlaps.append(overlap)
        transitions.append(Transition(type=transition.type, duration=overlap / fps))
        for neighbour in (index - 1, index):
            if 0 < lengths[neighbour] < overlap:
                problems.append(
                    Problem(
                        where(*path),
                        f"{transition.type} of {transition.duration:g} s into {labels[index]} is longer than "
                        f"{labels[neighbour]} ({lengths[neighbour] / fps:g} s in the cut): shorten the transition",
                    )
                )
    for index, frames in enumerate(lengths):
        incoming = overlaps[index]
        outgoing = overlaps[index + 1] if index + 1 < len(overlaps) else 0
        if incoming and outgoing and incoming <= frames and outgoing <= frames and incoming + outgoing > frames:
            problems.append(
                Problem(
                    where(*joins[index + 1][1]),
                    f"the transitions into and out of {labels[index]} ({incoming / fps:g} s + {outgoing / fps:g} s) "
                    f"are longer than it ({frames / fps:g} s): three items would be on screen at once; "
                    "shorten a transition or the trims",
                )
            )
    if problems:
        return None, problems

    # 2. Lay the items out.
    items: list[Segment] = []
    reframed: list[str] = []
    out_ratio = _ratio(output.aspect_ratio) or Fraction(output.width, output.height)
    position = 0
    for index, kind in enumerate(kinds):
        start = position - overlaps[index]
        frames = lengths[index]
        if isinstance(kind, _Entry):
            request, piece = kind.request, kind.piece
            items.append(
                ShotSegment(
                    shot_id=piece.shot_id,
                    request=request,
                    clip=Path(clips[request.key]).resolve(),
                    source_in_frame=to_frames(exact(piece.offset) + exact(kind.cut_shot.trim_in), request.fps),
                    source_fps=request.fps,
                    frames=frames,
                    transition=transitions[index],
                    caption=kind.caption,
                    prompt=piece.prompt,
                    record_start_frame=start,
                )
            )
            clip_ratio = _clip_ratio(request)
            if (
                clip_ratio is not None
                and abs(clip_ratio - out_ratio) > ASPECT_TOLERANCE * out_ratio
                and piece.shot_id not in reframed
            ):
                reframed.append(piece.shot_id)
        else:
            card_kind, card = kind
            items.append(
                CardSegment(
                    kind=card_kind, card=card, frames=frames, transition=transitions[index], record_start_frame=start
                )
            )
        position = start + frames

    return (
        Timeline(
            name=output.name,
            output=output,
            items=tuple(items),
            audio=audio,
            bed=bed,
            captions=captions,
            total_frames=position,
            reframed=tuple(reframed),
        ),
        [],
    )
