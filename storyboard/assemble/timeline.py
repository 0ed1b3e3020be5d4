"""The cut timeline: which frames of which clip go where in each output (side files: ``sidefiles``).

Why its own module: the assembler renders pixels, editors want an OTIO/EDL they can conform,
viewers want subtitles, reviewers want a contact sheet; all four must agree to the frame on what
the cut is. So the cut is decided once, here, as plain integer frames at the output's fps, and
every consumer (the assembler included) reads that decision instead of redoing the arithmetic:
each item's record start, the frames each join overlaps, and how each shot's clip is fitted to
the output (``Framing``).

Why the cut rules run twice from one implementation: ``check_cut`` runs them from the PLANNED
durations before anything is paid for (a trim that leaves nothing of a shot used to be found only
after every request was rendered), and ``build_timelines`` runs the very same ``_cut_rules`` when
the clips exist, so check and assembly can never disagree about what is valid.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

from PIL import ImageColor

from storyboard.errors import InternalError, Location, Problem, StoryboardInvalid, UserError
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

TIMECODE_RATES = (24, 25, 30, 48, 50, 60)
"""Output rates with a SMPTE timecode, which the EDL beside every cut needs (OpenTimelineIO's
CMX 3600 writer refuses others, such as 12 fps)."""

MAX_OUTPUT_SIDE = 4096
"""Widest or tallest output: H.264 level 5.1/5.2 (what players and phones decode) stops at 4096."""

CUT = Transition(type="cut", duration=0)


# --------------------------------------------------------------------------------------------
# The timeline types (the assembler and the side files read these)


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
class Framing:
    """How a shot's clip becomes the output's picture, decided once from the clip's real size.

    ``how`` is "none" when the clip has the output's ratio (it may still be scaled), else the
    output's ``reframe``: "crop" (centre crop) or "blur" (fit over a blurred fill). The assembler
    draws it, the contact sheet and the OTIO show it, the notes report it.
    """

    how: Literal["none", "crop", "blur"]
    source_width: int
    source_height: int

    def scaled(self, output: OutputFormat) -> bool:
        """Whether the clip's pixels differ in size from the output's."""
        return (self.source_width, self.source_height) != (output.width, output.height)


UNDECIDED = Framing("none", 0, 0)
"""The framing of a segment not laid out yet (a Timeline refuses it: use ``lay_out``)."""


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
    record_start_frame: int = 0
    """Where the item starts in the output, in output frames (after overlaps)."""
    overlap: int = 0
    """Output frames this item shares with the one before it (0 for a cut and for the first)."""
    framing: Framing = UNDECIDED
    """How the clip is fitted to the output (``lay_out`` decides it from the clip's size)."""

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
    record_start_frame: int = 0
    overlap: int = 0
    """Output frames this item shares with the one before it (0 for a cut and for the first)."""

    @property
    def end_frame(self) -> int:
        return self.record_start_frame + self.frames


Segment = ShotSegment | CardSegment


@dataclass(frozen=True)
class Timeline:
    """One output's cut, frame-accurate: files are out/<name>.mp4/.srt/.otio/.contact.png.

    Built by ``build_timelines`` (from a storyboard) or ``lay_out`` (from segments); either way
    its items join up exactly (checked on construction), so no reader has to re-derive them.
    """

    name: str
    output: OutputFormat
    items: tuple[Segment, ...]
    audio: Audio
    bed: Path | None
    """Absolute path of the music bed, if any."""
    captions: TextStyle
    total_frames: int
    """Sum of item frames minus transition overlaps."""

    def __post_init__(self) -> None:
        problems = _layout_faults(self.items, self.total_frames)
        if problems:
            raise InternalError(f"timeline {self.name} does not add up: {'; '.join(problems)}")

    @property
    def duration(self) -> float:
        """Seconds of the output (total_frames / fps)."""
        return self.total_frames / self.output.fps

    def overlap_frames(self, index: int) -> int:
        """Frames item ``index`` overlaps the one before it (0 for a cut and for the first)."""
        return self.items[index].overlap

    @property
    def shots(self) -> tuple[ShotSegment, ...]:
        return tuple(item for item in self.items if isinstance(item, ShotSegment))

    @property
    def reframed(self) -> tuple[str, ...]:
        """Shot ids whose clip ratio differs from the output's (cropped or blurred), in cut order."""
        ids: list[str] = []
        for shot in self.shots:
            if shot.framing.how != "none" and shot.shot_id not in ids:
                ids.append(shot.shot_id)
        return tuple(ids)


def _layout_faults(items: Sequence[Segment], total_frames: int) -> list[str]:
    """What is inconsistent in a laid-out cut (empty when it adds up).

    Only what no reader could make sense of: the "two items on screen at most" rule is the
    storyboard's (``_output_items``), and the assembler can blend a short item under two
    transitions, so a hand-made timeline may still do that."""
    faults: list[str] = []
    if not items:
        return ["it has no items"]
    position = 0
    for index, item in enumerate(items):
        label = f"item {index}"
        if item.frames <= 0:
            faults.append(f"{label} has {item.frames} frames")
        if index == 0 and item.overlap:
            faults.append(f"{label} overlaps nothing by {item.overlap} frames")
        if item.overlap < 0 or (index and item.overlap > min(item.frames, items[index - 1].frames)):
            faults.append(f"{label} overlaps by {item.overlap} frames, more than an item it joins")
        if item.record_start_frame != position - item.overlap:
            faults.append(f"{label} starts at {item.record_start_frame}, not {position - item.overlap}")
        if isinstance(item, ShotSegment) and item.framing.source_height <= 0:
            faults.append(f"shot {item.shot_id} has no framing decision (build the timeline with lay_out)")
        position = item.record_start_frame + item.frames
    if position != total_frames:
        faults.append(f"items add up to {position} frames, total_frames says {total_frames}")
    return faults


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


def quantise(transition: Transition, fps: int, *, first: bool = False) -> tuple[Transition, int]:
    """A join as the cut plays it: the overlap in output frames, and the transition carrying
    exactly that duration (a cut when it rounds to nothing). Idempotent."""
    if first or transition.type not in OVERLAPPING:
        return CUT, 0
    overlap = to_frames(transition.duration, fps)
    if overlap <= 0:
        return CUT, 0
    return Transition(type=transition.type, duration=overlap / fps), overlap


def _ratio(aspect_ratio: str) -> Fraction | None:
    width, _, height = aspect_ratio.partition(":")
    try:
        ratio = Fraction(int(width), int(height))
    except (ValueError, ZeroDivisionError):
        return None
    return ratio if ratio > 0 else None


def framing_for(width: int, height: int, output: OutputFormat) -> Framing:
    """The reframe decision for a clip of ``width`` x ``height`` in ``output``."""
    out_ratio = Fraction(output.width, output.height)
    same = height > 0 and abs(Fraction(width, height) - out_ratio) <= ASPECT_TOLERANCE * out_ratio
    return Framing("none" if same else output.reframe, width, height)


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


def _declared_outputs(loaded: LoadedLike) -> list[Output]:
    board = loaded.storyboard
    if board.outputs:
        return list(board.outputs)
    return [
        Output(
            name="main",
            aspect_ratio=board.defaults.aspect_ratio,
            height=DEFAULT_HEIGHT[board.defaults.mode],
            fps=DEFAULT_FPS,
            reframe="crop",
        )
    ]


def default_outputs(loaded: LoadedLike) -> list[OutputFormat]:
    """The storyboard's outputs as numbers; none declared: one "main" at the project's ratio,
    720p for std renders and 1080p for pro/4k, 24 fps, centre crop."""
    return [resolve_output(output) for output in _declared_outputs(loaded)]


# --------------------------------------------------------------------------------------------
# The cut rules: one implementation for check_cut (before rendering) and build_timelines


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


@dataclass(frozen=True)
class _Item:
    """One item of an output's cut before it is laid out: what it is, its frames, its join."""

    what: _Entry | CardSegment
    frames: int
    label: str
    transition: Transition
    transition_path: tuple[str | int, ...]


@dataclass
class _Cut:
    """What the rules resolved: everything an output's timeline is built from."""

    outputs: list[OutputFormat]
    entries: list[_Entry]
    title: Card | None
    end_card: Card | None
    captions: TextStyle
    bed: Path | None
    items: dict[str, list[_Item]] = field(default_factory=dict)
    """Output name -> its items (only for outputs whose rules passed)."""


def check_cut(loaded: LoadedLike, plan: Plan, *, only: list[str] | None = None) -> list[Problem]:
    """Every problem the assembler would hit with this cut, from the plan's durations: no clip needed.

    Trims that leave nothing of a shot, kept ranges past what a request renders, transitions
    longer than their neighbours, card durations under a frame, colours, card backgrounds that are
    neither colour nor image, fonts that cannot be found, a music bed that is missing or not audio,
    output sizes, and output names (``only``) the storyboard does not declare. Each problem is
    located at its field (file:line:col with the loader's storyboard). Advisories (an odd height
    rounded down) come with severity "advisory". ``build_timelines`` applies the same rules.
    Raises ``UserError`` only when the plan is older than the storyboard.
    """
    _, problems = _cut_rules(loaded, plan, only)
    return problems


def _cut_rules(loaded: LoadedLike, plan: Plan, only: list[str] | None) -> tuple[_Cut, list[Problem]]:
    where = locator(loaded)
    problems: list[Problem] = []
    outputs = _check_outputs(loaded, where, only, problems)
    entries = _resolve_entries(loaded, plan, where, problems)
    board = loaded.storyboard
    captioned = any(entry.caption for entry in entries)
    captions = _resolve_style(loaded, board.cut.captions, ("cut", "captions"), where, problems, draws=captioned)
    title = _resolve_card(loaded, board.cut.title, "title", where, problems) if board.cut.title else None
    end_card = _resolve_card(loaded, board.cut.end_card, "end_card", where, problems) if board.cut.end_card else None
    bed = _resolve_bed(loaded, where, problems)
    cut = _Cut(outputs, entries, title, end_card, captions, bed)
    if entries:
        for output in outputs:
            items, found = _output_items(where, output, cut, board.cut.transition)
            problems.extend(p for p in found if p not in problems)
            if not found:
                cut.items[output.name] = items
    return cut, problems


def locator(loaded: LoadedLike) -> Callable[..., Location]:
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


def _check_outputs(
    loaded: LoadedLike, where: Callable[..., Location], only: list[str] | None, problems: list[Problem]
) -> list[OutputFormat]:
    """The outputs to build (``only``: these names), with their size problems."""
    declared = _declared_outputs(loaded)
    explicit = bool(loaded.storyboard.outputs)
    outputs: list[OutputFormat] = []
    for index, output in enumerate(declared):
        path: tuple[str | int, ...] = ("outputs", index) if explicit else ("defaults", "aspect_ratio")
        ratio = _ratio(output.aspect_ratio)
        if ratio is None:
            problems.append(
                Problem(
                    where(*path, "aspect_ratio") if explicit else where(*path),
                    f"aspect ratio {output.aspect_ratio!r} is not width:height: use 16:9, 9:16 or 1:1",
                )
            )
            continue
        resolved = resolve_output(output)
        if output.height % 2:
            problems.append(
                Problem(
                    where(*path, "height"),
                    f"height {output.height} is odd, and H.264 needs even sizes: output {output.name!r} is "
                    f"{resolved.height} px high; write {resolved.height} to say so",
                    severity="advisory",
                )
            )
        if max(resolved.width, resolved.height) > MAX_OUTPUT_SIDE:
            problems.append(
                Problem(
                    where(*path, "height") if explicit else where(*path),
                    f"output {output.name!r} would be {resolved.width}x{resolved.height}, wider or taller than "
                    f"{MAX_OUTPUT_SIDE} px (most players stop there): lower its height",
                )
            )
            continue
        if not _has_timecode(resolved.fps):
            problems.append(
                Problem(
                    where(*path, "fps"),
                    f"{resolved.fps} fps has no SMPTE timecode, which the cut's EDL needs: "
                    f"use one of {', '.join(map(str, TIMECODE_RATES))}",
                )
            )
        outputs.append(resolved)
    if only is not None:
        known = [output.name for output in declared]
        unknown = [name for name in only if name not in known]
        if unknown:
            problems.append(
                Problem(
                    where("outputs"),
                    f"unknown output(s): {', '.join(unknown)}: outputs of {loaded.file}: {', '.join(known)}",
                )
            )
        outputs = [output for output in outputs if output.name in only]
    return outputs


def _has_timecode(fps: int) -> bool:
    """Whether the EDL writer can time an output at ``fps`` (asked of OpenTimelineIO itself)."""
    if fps in TIMECODE_RATES:
        return True
    from opentimelineio.opentime import RationalTime

    try:
        RationalTime(0, fps).to_timecode(fps, False)
    except ValueError:
        return False
    return True


def _resolve_entries(
    loaded: LoadedLike, plan: Plan, where: Callable[..., Location], problems: list[Problem]
) -> list[_Entry]:
    board = loaded.storyboard
    shots = {shot.id: shot for shot in board.shots}
    listed: list[tuple[CutShot, tuple[str | int, ...]]]
    if board.cut.shots is not None:
        listed = [(cut_shot, ("cut", "shots", i)) for i, cut_shot in enumerate(board.cut.shots)]
    else:
        listed = [(CutShot(shot=shot.id), ("shots", i)) for i, shot in enumerate(board.shots)]
    stale: list[str] = []
    entries: list[_Entry] = []
    for cut_shot, path in listed:
        shot = shots.get(cut_shot.shot)
        if shot is None:
            problems.append(
                Problem(
                    where(*path, "shot"),
                    f"the cut uses shot {cut_shot.shot!r}, which is not in shots: use one of {', '.join(shots)}",
                )
            )
            continue
        try:
            request, piece = plan.request_for_shot(shot.id)
        except KeyError:
            stale.append(shot.id)
            continue
        caption: str | None
        if cut_shot.caption is not None:
            caption = cut_shot.caption
        else:
            caption = piece.caption if piece.caption is not None else shot.caption
        if cut_shot.transition is not None:
            transition, transition_path = cut_shot.transition, (*path, "transition")
        else:
            transition, transition_path = board.cut.transition, ("cut", "transition")
        entries.append(_Entry(cut_shot, path, request, piece, caption or None, transition, transition_path))
    if not listed:
        problems.append(
            Problem(
                where("cut", "shots"),
                "the cut has no shots: list at least one, or remove cut.shots to use every shot in order",
            )
        )
    if stale:
        raise UserError(
            f"the plan has no request for shot(s) {', '.join(stale)}: it is older than {loaded.file}",
            "run storyboard plan (then render) again",
        )
    return entries


def _absolute(loaded: LoadedLike, rel: str) -> Path:
    path = Path(loaded.resolve_path(rel))
    if not path.is_absolute():
        path = Path(loaded.project_dir) / path
    return path.resolve()


def is_colour(value: str) -> bool:
    """Whether Pillow (and so the assembler) reads ``value`` as a colour: a name, #rgb, rgb(...)."""
    try:
        ImageColor.getrgb(value)
    except ValueError:
        return False
    return True


def _font_problem(font: str) -> str | None:
    """Why the assembler could not load this font (None when it can), asked of the very
    function that draws text, so check and assembly agree."""
    from storyboard.assemble.video import _font

    try:
        _font(TextStyle(font=font), 16)
    except UserError as error:
        return f"{error.message}: {error.hint}" if error.hint else error.message
    return None


def _resolve_style(
    loaded: LoadedLike,
    style: TextStyle,
    path: tuple[str | int, ...],
    where: Callable[..., Location],
    problems: list[Problem],
    *,
    draws: bool = True,
) -> TextStyle:
    """A font given as a project file becomes absolute; a font name stays a name. Its colour and
    (when it draws anything) its font must work."""
    if not is_colour(style.color):
        problems.append(
            Problem(
                where(*path, "color"),
                f"{style.color!r} is not a colour: use a name (white), #rrggbb or #rgb",
            )
        )
    if not style.font:
        return style
    candidate = _absolute(loaded, style.font)
    resolved = style.model_copy(update={"font": str(candidate)}) if candidate.is_file() else style
    if draws and resolved.font:
        why = _font_problem(resolved.font)
        if why is not None:
            problems.append(Problem(where(*path, "font"), why))
    return resolved


def _resolve_card(
    loaded: LoadedLike, card: Card, name: str, where: Callable[..., Location], problems: list[Problem]
) -> Card:
    """Card backgrounds that are images become absolute paths (the assembler has no project)."""
    update: dict[str, Any] = {"style": _resolve_style(loaded, card.style, ("cut", name, "style"), where, problems)}
    background = card.background
    if not is_colour(background):
        image = _absolute(loaded, background)
        why = _image_problem(image)
        if why is not None:
            problems.append(
                Problem(
                    where("cut", name, "background"),
                    f"{background!r} is neither a colour nor an image file ({why}): use a colour such as "
                    "'#000000' or an image path relative to the project folder",
                )
            )
        else:
            update["background"] = str(image)
    return card.model_copy(update=update)


def _image_problem(path: Path) -> str | None:
    """Why ``path`` is not an image ffmpeg can loop as a card background (None when it is)."""
    if not path.is_file():
        return f"no such file: {path}"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        return f"not a readable image ({error})"
    return None


def _resolve_bed(loaded: LoadedLike, where: Callable[..., Location], problems: list[Problem]) -> Path | None:
    """The music bed, absolute; it must be a file PyAV reads audio from (a picture is not)."""
    from storyboard.media import MediaError, audio_probe

    bed = loaded.storyboard.cut.audio.bed
    if bed is None:
        return None
    path = _absolute(loaded, bed.file)
    location = where("cut", "audio", "bed", "file")
    if not path.is_file():
        problems.append(
            Problem(location, f"{bed.file} not found (looked at {path}): fix the path (relative to the project folder) or remove the bed")
        )
        return None
    try:
        audio_probe(path)
    except MediaError as error:
        reason = str(error).removeprefix(f"{path}: ")
        problems.append(Problem(location, f"{bed.file} is not usable as a music bed ({reason}): use an audio file (m4a, mp3, wav)"))
        return None
    return path


def _output_items(
    where: Callable[..., Location], output: OutputFormat, cut: _Cut, default_transition: Transition
) -> tuple[list[_Item], list[Problem]]:
    """The items of one output, in order, with every length and transition problem at its field."""
    fps = output.fps
    problems: list[Problem] = []
    items: list[_Item] = []

    def card_item(card: Card, kind: Literal["title", "end"], name: str, join: Transition, join_path: tuple) -> None:
        frames = to_frames(card.duration, fps)
        label = "the title card" if kind == "title" else "the end card"
        if frames <= 0:
            problems.append(
                Problem(where("cut", name, "duration"), f"{label} lasts {card.duration:g} s, less than a frame at {fps} fps: make it longer")
            )
        segment = CardSegment(kind=kind, card=card, frames=frames, transition=CUT)
        items.append(_Item(segment, frames, label, join, join_path))

    if cut.title is not None:
        card_item(cut.title, "title", "title", CUT, ())
    for entry in cut.entries:
        piece, cut_shot = entry.piece, entry.cut_shot
        kept = exact(piece.keep) - exact(cut_shot.trim_in) - exact(cut_shot.trim_out)
        frames = to_frames(kept, fps)
        if kept <= 0:
            problems.append(
                Problem(
                    where(*entry.path, "trim_in"),
                    f"shot {piece.shot_id!r}: trim_in {cut_shot.trim_in:g} s + trim_out {cut_shot.trim_out:g} s "
                    f"leave nothing of its {piece.keep:g} s: trim less",
                )
            )
        elif frames <= 0:
            problems.append(
                Problem(
                    where(*entry.path, "trim_in"),
                    f"shot {piece.shot_id!r} keeps {float(kept):g} s after its trims, less than a frame at {fps} fps "
                    f"(output {output.name!r}): trim less",
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
        join, join_path = (entry.transition, entry.transition_path) if items else (CUT, ())
        items.append(_Item(entry, frames, f"shot {piece.shot_id!r}", join, join_path))
    if cut.end_card is not None:
        card_item(cut.end_card, "end", "end_card", default_transition, ("cut", "transition"))

    overlaps = [quantise(item.transition, fps, first=index == 0)[1] for index, item in enumerate(items)]
    for index, item in enumerate(items):
        overlap = overlaps[index]
        if not overlap:
            continue
        for neighbour in (items[index - 1], item):
            if 0 < neighbour.frames < overlap:
                problems.append(
                    Problem(
                        where(*item.transition_path),
                        f"{item.transition.type} of {item.transition.duration:g} s into {item.label} is longer than "
                        f"{neighbour.label} ({neighbour.frames / fps:g} s in the cut): shorten the transition",
                    )
                )
    for index, item in enumerate(items):
        incoming = overlaps[index]
        outgoing = overlaps[index + 1] if index + 1 < len(items) else 0
        frames = item.frames
        if incoming and outgoing and incoming <= frames and outgoing <= frames and incoming + outgoing > frames:
            problems.append(
                Problem(
                    where(*items[index + 1].transition_path),
                    f"the transitions into and out of {item.label} ({incoming / fps:g} s + {outgoing / fps:g} s) "
                    f"are longer than it ({frames / fps:g} s): three items would be on screen at once; "
                    "shorten a transition or the trims",
                )
            )
    return items, problems


# --------------------------------------------------------------------------------------------
# Building


def build_timelines(
    loaded: LoadedLike,
    plan: Plan,
    clips: dict[str, Path],
    *,
    only: list[str] | None = None,
) -> list[Timeline]:
    """One Timeline per output (``only``: these output names), from the cut and the plan.

    ``clips`` maps request keys to downloaded clip files. Raises ``StoryboardInvalid`` with every
    problem ``check_cut`` reports, and ``UserError`` naming every shot (with its request id) whose
    clip is not there yet or cannot be read, before anything is built.
    """
    cut, problems = _cut_rules(loaded, plan, only)
    if any(problem.severity == "error" for problem in problems):
        raise StoryboardInvalid(problems)
    _check_clips(cut.entries, clips)
    timelines: list[Timeline] = []
    for output in cut.outputs:
        segments: list[Segment] = []
        for item in cut.items[output.name]:
            what = item.what
            if isinstance(what, CardSegment):
                segments.append(replace(what, transition=item.transition))
                continue
            request, piece = what.request, what.piece
            segments.append(
                ShotSegment(
                    shot_id=piece.shot_id,
                    request=request,
                    clip=Path(clips[request.key]).resolve(),
                    source_in_frame=to_frames(exact(piece.offset) + exact(what.cut_shot.trim_in), request.fps),
                    source_fps=request.fps,
                    frames=item.frames,
                    transition=item.transition,
                    caption=what.caption,
                    prompt=piece.prompt,
                )
            )
        timelines.append(lay_out(output.name, output, segments, audio=loaded.storyboard.cut.audio, bed=cut.bed,
                                 captions=cut.captions))
    return timelines


def lay_out(
    name: str,
    output: OutputFormat,
    items: Sequence[Segment],
    *,
    audio: Audio,
    bed: Path | None = None,
    captions: TextStyle | None = None,
) -> Timeline:
    """Place ``items`` end to end in ``output``: the decisions every reader of a timeline uses.

    Each item's transition is quantised to output frames (``quantise``), its ``overlap`` and
    ``record_start_frame`` follow from it, and each shot's ``framing`` is decided from its clip's
    real size (read once per clip and cached). Whatever those fields held before is ignored, so
    hand-made timelines (tests, benchmarks, scripts) are laid out exactly as storyboards are.
    Raises ``UserError`` naming the shot whose clip is missing or unreadable.
    """
    from storyboard.media import MediaError, probe

    placed: list[Segment] = []
    position = 0
    for index, item in enumerate(items):
        transition, overlap = quantise(item.transition, output.fps, first=index == 0)
        start = position - overlap
        if isinstance(item, ShotSegment):
            try:
                facts = probe(item.clip)  # the whole scan, which the assembler's packet index reuses
            except MediaError as error:
                raise UserError(f"shot {item.shot_id}: clip {error}", "run storyboard render again to fetch the clip") from None
            framing = framing_for(facts.width, facts.height, output)
            placed.append(replace(item, transition=transition, overlap=overlap, record_start_frame=start, framing=framing))
        else:
            placed.append(replace(item, transition=transition, overlap=overlap, record_start_frame=start))
        position = start + item.frames
    return Timeline(
        name=name,
        output=output,
        items=tuple(placed),
        audio=audio,
        bed=bed,
        captions=captions or TextStyle(),
        total_frames=position,
    )


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
