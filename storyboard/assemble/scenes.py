"""Where a rendered clip cuts from one shot to the next, found in its pictures.

Why: a multi-shot ``intelligence`` request lets Kling split the prompt into shots itself, and
Kling reports no boundaries (kling-api-2.md §6.3). The cut does not depend on them (the planner
makes it play such a group as one shot, ``plan.grouping.check_intelligence_cut``); this module is
how the boundaries are found after the fact, for the review page, side files or a user deciding
where to caption, from the clip alone.

How: decode the video stream downscaled to a small grey image (64 px wide: enough to see a new
framing, cheap to decode on two cores), and mark a cut where the mean absolute difference between
consecutive frames jumps above a threshold *and* stands out from the motion around it (a fast pan
changes every frame a little; a cut changes one frame a lot). Hard cuts only: Kling's multi-shot
clips cut, they do not dissolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DETECT_WIDTH = 64
"""Frames are compared at this width (height follows the ratio): framing changes, not detail."""
CUT_THRESHOLD = 0.18
"""Mean absolute grey difference (0..1) between two frames above which a cut is possible."""
CONTRAST = 3.0
"""A cut's difference must be this many times the median difference of the frames around it."""
MIN_SHOT_SECONDS = 0.5
"""No two cuts closer than this (a flash or a strobe is not a new shot)."""


@dataclass(frozen=True)
class SceneCut:
    """A hard cut: the time of the first frame of the new shot, and how strong the change is."""

    seconds: float
    frame: int
    difference: float


def scene_cuts(
    path: Path, *, threshold: float = CUT_THRESHOLD, contrast: float = CONTRAST, min_shot: float = MIN_SHOT_SECONDS
) -> list[SceneCut]:
    """The hard cuts of the clip at ``path``, in order (empty: one continuous shot)."""
    import av
    import numpy as np

    differences: list[float] = []
    times: list[float] = []
    previous = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 24)
        height = max(2, round(DETECT_WIDTH * stream.height / stream.width / 2) * 2) if stream.width else 36
        for index, frame in enumerate(container.decode(stream)):
            grey = frame.reformat(width=DETECT_WIDTH, height=height, format="gray").to_ndarray().astype(np.float32)
            seconds = float(frame.time) if frame.time is not None else index / rate
            if previous is not None:
                differences.append(float(np.mean(np.abs(grey - previous))) / 255.0)
                times.append(seconds)
            previous = grey
    cuts: list[SceneCut] = []
    window = max(2, round(rate / 2))
    for k, difference in enumerate(differences):
        if difference < threshold:
            continue
        around = differences[max(0, k - window) : k] + differences[k + 1 : k + 1 + window]
        calm = float(np.median(around)) if around else 0.0
        if difference < contrast * max(calm, 1e-3):
            continue
        if cuts and times[k] - cuts[-1].seconds < min_shot:
            if difference > cuts[-1].difference:
                cuts[-1] = SceneCut(times[k], k + 1, difference)
            continue
        cuts.append(SceneCut(times[k], k + 1, difference))
    return cuts
