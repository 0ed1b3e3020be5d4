"""Shots with their settings resolved, and what a request made of some shots sends.

Why its own module: grouping, the Kling rule checks, prompts and request bodies all ask the same
questions of a run of shots ("which family is this request?", "which references go in as images,
which as elements?"). Answering them once here keeps the four from drifting apart: the grouping
that refuses a shot for having too many references and the body that lists those references
must count them the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from storyboard.load.spec import Shot, Storyboard
from storyboard.plan import capabilities as caps
from storyboard.plan.capabilities import IMAGE2VIDEO, MULTI_IMAGE, OMNI, TEXT2VIDEO, ModelInfo

COMPATIBLE_SETTINGS = ("model", "mode", "aspect_ratio", "sound", "cfg_scale", "negative_prompt", "watermark", "api")
"""Settings every shot of one multi-shot request must share: Kling takes them once per request."""
SETTINGS = ("model", "mode", "aspect_ratio", "sound", "cfg_scale", "negative_prompt", "template", "watermark")
"""Shot settings that fall back to ``defaults`` when the shot does not set them."""


@dataclass
class ResolvedShot:
    """A storyboard shot with every setting resolved (its own value, else ``defaults``)."""

    index: int
    spec: Shot
    model: str
    mode: str
    aspect_ratio: str
    sound: bool
    cfg_scale: float | None
    negative_prompt: str | None
    template: str | None
    """The template the user chose (shot or explicit defaults); None = pick by request shape."""
    watermark: bool
    requested_api: str | None = None
    """``api`` as the shot (else ``defaults``) sets it; None = unset (see ``api``)."""

    @property
    def info(self) -> ModelInfo:
        return caps.MODELS[self.model]

    @property
    def api(self) -> str:
        """The Kling API this shot's request goes to (``capabilities.decide_api``)."""
        return caps.decide_api(self.model, self.requested_api).api

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def seconds(self) -> int:
        """Kling renders whole seconds: the shot's slot is its duration rounded up (at least 1 s)."""
        return max(1, math.ceil(self.spec.duration - 1e-9))

    def compatibility(self) -> tuple:
        return tuple(getattr(self, name) for name in COMPATIBLE_SETTINGS)

    def differing_settings(self, other: ResolvedShot) -> list[str]:
        """The settings in which two shots differ (empty: they can share a multi-shot request)."""
        return [n for n, a, b in zip(COMPATIBLE_SETTINGS, self.compatibility(), other.compatibility()) if a != b]


def resolve_shots(board: Storyboard) -> list[ResolvedShot]:
    """Every shot of the storyboard with its settings resolved against ``defaults``."""
    return [_resolve(board, index, spec) for index, spec in enumerate(board.shots)]


def _resolve(board: Storyboard, index: int, spec: Shot) -> ResolvedShot:
    defaults = board.defaults
    values = {
        name: getattr(spec, name) if getattr(spec, name) is not None else getattr(defaults, name) for name in SETTINGS
    }
    values["template"] = spec.template or (defaults.template if "template" in defaults.model_fields_set else None)
    requested_api = spec.api if spec.api is not None else defaults.api
    return ResolvedShot(index=index, spec=spec, requested_api=requested_api, **values)


@dataclass
class RequestInputs:
    """What a request sends besides prompts: its family and the images/elements it lists."""

    family: str
    image_refs: list[str] = field(default_factory=list)
    element_refs: list[str] = field(default_factory=list)
    text_refs: list[str] = field(default_factory=list)
    """References the request cannot send as images: named in the prompt by their description."""

    def tokens(self) -> dict[str, str]:
        """Reference id -> the token the model understands, numbered like the lists in the body."""
        tokens = {ref: f"<<<element_{n}>>>" for n, ref in enumerate(self.element_refs, 1)}
        if self.family == OMNI:
            tokens.update({ref: f"<<<image_{n}>>>" for n, ref in enumerate(self.image_refs, 1)})
        return tokens


def references_of(board: Storyboard, shots: list[ResolvedShot]) -> list[str]:
    """The known references these shots use, each once, in first-use order."""
    refs: dict[str, None] = {}
    for shot in shots:
        for ref in shot.spec.references:
            if ref in board.references:
                refs.setdefault(ref, None)
    return list(refs)


def frames_of(shots: list[ResolvedShot]) -> tuple[bool, bool]:
    """Whether a request of these shots has a start frame and an end frame."""
    return bool(shots[0].spec.start_frame), bool(shots[-1].spec.end_frame)


def family_of(board: Storyboard, shots: list[ResolvedShot]) -> str:
    """The Kling endpoint family a request of these shots goes to."""
    info = shots[0].info
    has_start, has_end = frames_of(shots)
    if info.omni:
        return OMNI
    if has_start or has_end or shots[0].spec.motion_brush:
        return IMAGE2VIDEO
    if MULTI_IMAGE in info.families and references_of(board, shots):
        return MULTI_IMAGE
    return TEXT2VIDEO  # image-to-video-only models are reported by the rules, not silently switched


def inputs_of(board: Storyboard, shots: list[ResolvedShot], family: str) -> RequestInputs:
    """Which references a request of these shots sends as images, as elements, or as text only."""
    info = shots[0].info
    inputs = RequestInputs(family)
    for ref in references_of(board, shots):
        is_element = board.references[ref].element is not None
        if family in info.element_families and is_element:
            inputs.element_refs.append(ref)
        elif family in (OMNI, MULTI_IMAGE):
            inputs.image_refs.append(ref)
        else:
            inputs.text_refs.append(ref)
    return inputs
