"""Aspect ratios: what ratio each clip comes back in, and what an output will crop or fill of it.

Why the planner says it: an image-to-video clip follows its start frame, not the project's
``aspect_ratio``. A landscape start frame in a 9:16 project comes back 16:9 and the assembler
centre-crops two thirds of it away (or fits it over a blurred fill). That is the user's choice
to make, so ``validate`` and ``plan`` say it at the shot's line, with the share that is lost,
before anything is paid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storyboard.plan import capabilities as caps
from storyboard.plan.rules import Findings
from storyboard.plan.shots import ResolvedShot

if TYPE_CHECKING:
    from storyboard.load.loader import LoadedStoryboard

RATIO_TOLERANCE = 0.01
"""Relative difference under which two ratios count as the same (as the assembler decides)."""


@dataclass
class FrameSizes:
    """Pixel sizes of the project's start frames, read from their headers once per planning."""

    loaded: LoadedStoryboard
    _sizes: dict[str, tuple[int, int] | None] = field(default_factory=dict)

    def size(self, relative: str) -> tuple[int, int] | None:
        if relative not in self._sizes:
            try:
                from PIL import Image

                with Image.open(self.loaded.resolve_path(relative)) as image:
                    self._sizes[relative] = image.size
            except Exception:  # noqa: BLE001 - the loader reports unreadable images; fall back to the setting
                self._sizes[relative] = None
        return self._sizes[relative]

    def clip_ratio(self, relative: str) -> str | None:
        """The Kling output ratio a clip starting on this image comes back in (its ratio, snapped)."""
        size = self.size(relative)
        return caps.snap_aspect_ratio(*size) if size else None


@dataclass(frozen=True)
class OutputFrame:
    name: str
    aspect_ratio: str
    reframe: str


def output_frames(findings: Findings) -> list[OutputFrame]:
    """The storyboard's outputs; none declared: one at the project's ratio, centre-cropped (as assembled)."""
    board = findings.board
    if board.outputs:
        return [OutputFrame(o.name, o.aspect_ratio, o.reframe) for o in board.outputs]
    return [OutputFrame("main", board.defaults.aspect_ratio, "crop")]


def advise_reframing(
    findings: Findings, shot: ResolvedShot, frame: str, size: tuple[int, int] | None, clip_ratio: str
) -> None:
    """An advisory at the shot's start frame for every output that crops or fills its clip."""
    clip = caps.ASPECT_RATIOS[clip_ratio]
    shown = f"{clip_ratio} start frame {frame}"
    if size and abs(size[0] / size[1] - clip) > RATIO_TOLERANCE * clip:
        shown = f"{size[0]}x{size[1]} start frame {frame} (a {clip_ratio} clip)"
    for output in output_frames(findings):
        wanted = caps.ASPECT_RATIOS[output.aspect_ratio]
        if abs(clip - wanted) <= RATIO_TOLERANCE * wanted:
            continue
        wider = clip > wanted
        kept = wanted / clip if wider else clip / wanted
        lost = round(100 * (1 - kept))
        where = f"in output {output.name} ({output.aspect_ratio}, reframe: {output.reframe})"
        if output.reframe == "blur":
            message = (
                f"shot {shot.id}: {shown} {where}: the clip fills {round(100 * kept)}% of the frame's "
                f"{'height' if wider else 'width'}, the other {lost}% is a blurred fill; "
                f"use a {output.aspect_ratio} start frame to fill it"
            )
        else:
            message = (
                f"shot {shot.id}: {shown} {where}: {lost}% of its {'width' if wider else 'height'} is cropped away; "
                f"use a {output.aspect_ratio} start frame or reframe: blur"
            )
        findings.advise(findings.at("shots", shot.index, "start_frame"), message)
