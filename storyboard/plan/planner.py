"""The planner: a loaded storyboard in, the exact, priced Kling requests out.

Why one module owns templates, grouping, bodies, prices and keys: they depend on each other in a
loop that must be resolved in one place. A prompt's ``ref()`` tokens (``<<<image_2>>>``) depend on
the request's ``image_list``, which depends on how shots were grouped, which depends on whether the
rendered prompts fit Kling's 512-character multi-shot limit. ``_Compiler`` runs that loop, and
every rule it enforces comes from ``capabilities.MODELS`` so the Kling facts stay in one table.

Money rules that shape the code:

* a request's ``key`` hashes the exact body with placeholders, so renaming an image changes no key
  and editing one prompt re-renders exactly one request (plus any request chained to its clip);
* durations are billed in whole seconds from an allowed set: the plan says what Kling renders, the
  slices say what the cut keeps, and a note explains every difference;
* nothing here touches the network or the clock, so a plan is the same on every run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import traceback
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

import storyboard
from storyboard.errors import Location, Problem, StoryboardInvalid
from storyboard.load.spec import PREVIOUS_FRAME, Shot
from storyboard.plan import (
    ELEMENT_SCHEME,
    FRAME_SCHEME,
    IMAGE_SCHEME,
    UNIT_PRICE_USD,
    ElementRegistration,
    Plan,
    Request,
    ShotSlice,
)
from storyboard.plan import capabilities as caps
from storyboard.plan.capabilities import IMAGE2VIDEO, MULTI_IMAGE, OMNI, TEXT2VIDEO, ModelInfo

if TYPE_CHECKING:  # the loader is written in parallel; only its shape matters here
    from storyboard.load.loader import LoadedStoryboard

TEMPLATE_SUFFIX = ".j2"
SINGLE_SHOT_TEMPLATE = "motion"
MULTI_SHOT_TEMPLATE = "multishot"
INLINE_TEMPLATE_FIELDS = ("prompt", "subject", "action", "camera", "mood", "caption")
"""Shot text fields rendered as inline Jinja2 templates before the prompt template sees them."""
COMPATIBLE_SETTINGS = ("model", "mode", "aspect_ratio", "sound", "cfg_scale", "negative_prompt", "watermark")
"""Settings every shot of one multi-shot request must share: Kling takes them once per request."""
_SETTINGS = ("model", "mode", "aspect_ratio", "sound", "cfg_scale", "negative_prompt", "template", "watermark")


# --- templates ----------------------------------------------------------------------------------


def builtin_templates_dir() -> Path:
    """Where the built-in prompt templates live.

    A wheel ships them inside the package as ``builtin_templates`` (pyproject force-include); an
    editable install reads the repository's top-level ``templates/`` directly.
    """
    packaged = Path(storyboard.__file__).parent / "builtin_templates"
    if packaged.is_dir():
        return packaged
    return Path(storyboard.__file__).resolve().parent.parent / "templates"


def template_environment(project_dir: Path) -> SandboxedEnvironment:
    """A sandboxed Jinja2 environment: the project's ``templates/`` first, then the built-ins.

    Sandboxed because storyboards and their templates are shared between people: a template must
    not reach Python internals (``''.__class__.__mro__``). ``StrictUndefined`` turns a typo in a
    variable name into a located error instead of a silently empty prompt that Kling would bill.

    Cached per project folder: a campaign plans hundreds of variants of one project, and compiling
    the same templates for each dominated its planning time. Jinja's loaders still check the
    files' modification times, so an edited template is picked up.
    """
    return _environment(str(Path(project_dir).resolve()))


@functools.lru_cache(maxsize=16)
def _environment(project_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=ChoiceLoader(
            [FileSystemLoader(str(Path(project_dir) / "templates")), FileSystemLoader(str(builtin_templates_dir()))]
        ),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


@functools.lru_cache(maxsize=4096)
def _inline_template(env: SandboxedEnvironment, source: str) -> jinja2.Template:
    """An inline template (a shot's prompt, caption...) compiled once per environment and text."""
    return env.from_string(source)


def builtin_template_names() -> list[str]:
    return sorted(p.name[: -len(TEMPLATE_SUFFIX)] for p in builtin_templates_dir().glob(f"*{TEMPLATE_SUFFIX}"))


class ProjectName(str):
    """The project's name; ``{{ project }}`` and ``{{ project.name }}`` both print it."""

    @property
    def name(self) -> str:
        return str(self)


class _ReferenceNotUsable(jinja2.TemplateRuntimeError):
    """``ref()`` was asked for a reference the target request cannot show the model."""


# --- resolved shots and groups ------------------------------------------------------------------


@dataclass
class _Shot:
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

    @property
    def info(self) -> ModelInfo:
        return caps.MODELS[self.model]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def seconds(self) -> int:
        """Kling renders whole seconds: the shot's slot is its duration rounded up (at least 1 s)."""
        return max(1, math.ceil(self.spec.duration - 1e-9))

    def compatibility(self) -> tuple:
        return tuple(getattr(self, name) for name in COMPATIBLE_SETTINGS)


@dataclass
class _Group:
    shots: list[_Shot]
    multi: bool
    notes: list[str] = field(default_factory=list)
    explicit: int | None = None
    """Index in ``storyboard.groups`` when the user grouped these shots by hand."""


@dataclass
class _Inputs:
    """What a request sends besides prompts: its family and the images/elements it lists."""

    family: str
    image_refs: list[str] = field(default_factory=list)
    element_refs: list[str] = field(default_factory=list)
    text_refs: list[str] = field(default_factory=list)

    def tokens(self) -> dict[str, str]:
        """Reference id -> the token the model understands, numbered like the lists in the body."""
        tokens = {ref: f"<<<element_{n}>>>" for n, ref in enumerate(self.element_refs, 1)}
        if self.family == OMNI:
            tokens.update({ref: f"<<<image_{n}>>>" for n, ref in enumerate(self.image_refs, 1)})
        return tokens


class _Restart(Exception):
    """Auto grouping put a shot whose prompt is too long for multi-shot in a group: regroup."""


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_key(endpoint: str, body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of endpoint and body (placeholders included)."""
    return hashlib.sha256(_canonical({"endpoint": endpoint, "body": body}).encode("utf-8")).hexdigest()


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _collapse(text: str) -> str:
    return " ".join(text.split())


# --- the compiler -------------------------------------------------------------------------------


class _Compiler:
    """One pass over a loaded storyboard; collects problems instead of stopping at the first."""

    def __init__(self, loaded: LoadedStoryboard) -> None:
        self.loaded = loaded
        self.board = loaded.storyboard
        self.env = template_environment(loaded.project_dir)
        self.unpackable: set[int] = set()
        self._image_sizes: dict[str, tuple[int, int]] = {}

    # problems ---------------------------------------------------------------------------------

    def _reset(self) -> None:
        self.problems: list[Problem] = []
        self.template_problems: list[Problem] = []
        self.prompts: dict[str, str] = {}
        self.inline_texts: dict[int, dict[str, str | None]] = {}
        self.requests: list[Request] = []
        self.plan_notes: list[str] = []
        self._seen_problems: set[tuple] = set()
        self._pending_reason: dict[int, str] = {}
        """First shot index -> why auto packing started a new request there (for its notes)."""

    def error(self, location: Location, message: str) -> None:
        self._add(Problem(location, message))

    def advise(self, location: Location, message: str) -> None:
        self._add(Problem(location, message, "advisory"))

    def _add(self, problem: Problem) -> None:
        key = (problem.location, problem.message, problem.severity)
        if key not in self._seen_problems:
            self._seen_problems.add(key)
            self.problems.append(problem)

    def at(self, *path: str | int) -> Location:
        return self.loaded.locate(*path)

    def where(self, shot: _Shot, name: str) -> Location:
        """The YAML that decided a shot's setting: the shot's own key, else defaults, else the shot."""
        if name in shot.spec.model_fields_set:
            return self.at("shots", shot.index, name)
        if "defaults" in self.board.model_fields_set and name in self.board.defaults.model_fields_set:
            return self.at("defaults", name)
        return self.at("shots", shot.index)

    # entry ------------------------------------------------------------------------------------

    def run(self) -> None:
        for _ in range(len(self.board.shots) + 1):
            self._reset()
            try:
                self._compile()
                return
            except _Restart:
                continue
        raise AssertionError("regrouping did not converge")  # each restart marks one more shot

    def _compile(self) -> None:
        shots = [self._resolve(i, s) for i, s in enumerate(self.board.shots)]
        for shot in shots:
            self._check_shot(shot, shots)
        request_of_shot: dict[int, Request] = {}
        for group in self._groups(shots):
            request = self._build(group, request_of_shot)
            self.requests.append(request)
            for shot in group.shots:
                request_of_shot[shot.index] = request

    def _resolve(self, index: int, spec: Shot) -> _Shot:
        defaults = self.board.defaults
        values = {
            name: getattr(spec, name) if getattr(spec, name) is not None else getattr(defaults, name)
            for name in _SETTINGS
        }
        explicit_template = spec.template or (defaults.template if "template" in defaults.model_fields_set else None)
        values["template"] = explicit_template
        return _Shot(index=index, spec=spec, **values)

    # shot rules (kling-api.md §3-§5) ------------------------------------------------------------

    def _check_shot(self, shot: _Shot, shots: list[_Shot]) -> None:
        info, spec, model, mode = shot.info, shot.spec, shot.model, shot.mode
        if mode not in info.modes:
            offering = ", ".join(caps.models_offering(lambda m: mode in m.modes))
            self.error(self.where(shot, "mode"), f"{model} has no mode {mode} (offered on {offering}): use std or pro")
        elif not info.sends_mode and mode == "4k":
            self.error(self.where(shot, "mode"), f"{model} has no mode 4k (offered on kling-v3, kling-v3-omni)")
        if spec.duration > info.max_duration:
            longer = ", ".join(m for m in caps.models_offering(lambda m: m.max_duration >= spec.duration))
            self.error(
                self.at("shots", shot.index, "duration"),
                f"shot {shot.id} is {_seconds(spec.duration)} but {model} renders at most {info.max_duration} s: "
                f"split it into shorter shots, or use a model that renders it ({longer})",
            )
        if shot.sound and not info.offers_sound(mode):
            if info.sound_modes:
                hint = f"{model} has native audio only in {', '.join(sorted(info.sound_modes))} mode: set mode pro or sound: false"
            else:
                hint = f"{model} has no native audio (sound is offered on {', '.join(caps.SOUND_MODELS)}): set sound: false"
            self.error(self.where(shot, "sound"), f"sound is not available on {model} {mode}: {hint}")
        if spec.voices:
            voice_models = ", ".join(caps.models_offering(lambda m: bool(m.voice_modes)))
            if not info.voice_modes or mode not in info.voice_modes:
                self.error(
                    self.at("shots", shot.index, "voices"),
                    f"voices are offered only on {voice_models} pro image-to-video (5 or 10 s), not on {model} {mode}: "
                    "remove voices or switch the shot to kling-v2-6 pro",
                )
            elif not shot.sound:
                self.error(self.at("shots", shot.index, "voices"), "voices need sound: set sound: true on this shot")
            if info.voice_modes and spec.start_frame is None:
                self.error(
                    self.at("shots", shot.index, "voices"),
                    "voices are offered only on image-to-video: give this shot a start_frame",
                )
        if shot.cfg_scale is not None and not info.cfg_scale:
            self.error(
                self.where(shot, "cfg_scale"),
                f"cfg_scale is not supported by {model}: remove it (it is offered on "
                f"{', '.join(caps.models_offering(lambda m: m.cfg_scale))})",
            )
        if shot.negative_prompt is not None and len(shot.negative_prompt) > caps.PROMPT_MAX:
            self.error(
                self.where(shot, "negative_prompt"),
                f"negative_prompt is {len(shot.negative_prompt)} characters; Kling takes at most {caps.PROMPT_MAX}: shorten it",
            )
        if shot.negative_prompt and info.omni:
            self.advise(
                self.where(shot, "negative_prompt"),
                f"{model} has no negative_prompt field; it is not sent: write what to avoid into the prompt instead",
            )
        exclusive = [name for name in ("end_frame", "camera_control", "motion_brush") if getattr(spec, name)]
        if len(exclusive) > 1:
            self.error(
                self.at("shots", shot.index, exclusive[1]),
                f"{' and '.join(exclusive)} cannot be used together (Kling takes one of end frame, camera_control, "
                "motion brush per request): keep one",
            )
        if spec.start_frame == PREVIOUS_FRAME:
            if shot.index == 0:
                self.error(
                    self.at("shots", 0, "start_frame"),
                    "start_frame previous chains to the shot before, but this is the first shot: use an image or a reference",
                )
            elif IMAGE2VIDEO not in info.families and OMNI not in info.families:
                self.error(
                    self.at("shots", shot.index, "start_frame"),
                    f"start_frame previous needs image-to-video, which {model} does not offer",
                )
        if spec.motion_brush and spec.start_frame is None:
            self.error(self.at("shots", shot.index, "motion_brush"), "motion_brush needs a start_frame: add one")
        if not spec.prompt and not spec.subject and not spec.action:
            self.error(
                self.at("shots", shot.index),
                f"shot {shot.id} says nothing for Kling to render: give it a prompt, or a subject and an action",
            )

    # grouping -----------------------------------------------------------------------------------

    def _groups(self, shots: list[_Shot]) -> list[_Group]:
        explicit = self._explicit_groups(shots)
        strategy = self.board.defaults.strategy
        if strategy == "multi_shot":
            for model in dict.fromkeys(s.model for s in shots if not s.info.multi_shot):
                self.error(
                    self.at("defaults", "strategy"),
                    f"strategy multi_shot needs a model with multi-shot ({', '.join(caps.MULTI_SHOT_MODELS)}), "
                    f"but shots use {model}: set strategy auto or per_shot, or change the model",
                )
        groups: list[_Group] = []
        i = 0
        while i < len(shots):
            if i in explicit:
                group = explicit[i]
                groups.append(group)
                i += len(group.shots)
                continue
            shot = shots[i]
            group = _Group([shot], multi=False)
            if strategy == "per_shot" or not self._packable(shot):
                groups.append(group)
                i += 1
                continue
            j = i + 1
            while j < len(shots) and j not in explicit:
                reason = self._join_refusal(group.shots, shots[j])
                if reason:
                    if shots[j].info.multi_shot:
                        self._pending_reason[shots[j].index] = reason
                    break
                group.shots.append(shots[j])
                j += 1
            group.multi = len(group.shots) > 1
            groups.append(group)
            i = j
        return groups

    def _packable(self, shot: _Shot) -> bool:
        spec = shot.spec
        return (
            shot.info.multi_shot
            and shot.index not in self.unpackable
            and not spec.camera_control
            and not spec.motion_brush
            and not spec.voices
        )

    def _join_refusal(self, group: list[_Shot], shot: _Shot) -> str | None:
        """Why ``shot`` cannot join the multi-shot request being packed (None: it can)."""
        first, last = group[0], group[-1]
        if not self._packable(shot):
            if shot.index in self.unpackable:
                return f"shot {shot.id}'s prompt is over {caps.MULTI_SHOT_PROMPT_MAX} characters, too long for a multi-shot request"
            return f"shot {shot.id} cannot be part of a multi-shot request"
        if shot.spec.start_frame == PREVIOUS_FRAME:
            return f"start_frame previous needs the clip of the request holding shot {last.id}"
        if shot.spec.start_frame:
            return f"shot {shot.id} has its own start frame (only a multi-shot request's first shot can)"
        if last.spec.end_frame:
            return f"shot {last.id} ends on an end frame (only a multi-shot request's last shot can)"
        if shot.spec.end_frame and not first.spec.start_frame:
            return f"shot {shot.id} has an end frame, which needs a start frame on the request's first shot"
        differing = [n for n, a, b in zip(COMPATIBLE_SETTINGS, first.compatibility(), shot.compatibility()) if a != b]
        if differing:
            return f"shot {shot.id} differs from shot {first.id} in {', '.join(differing)}"
        if len(group) >= caps.MULTI_SHOT_MAX_SHOTS:
            return f"a multi-shot request holds at most {caps.MULTI_SHOT_MAX_SHOTS} shots"
        if sum(s.seconds for s in group) + shot.seconds > caps.MULTI_SHOT_MAX_SECONDS:
            return f"a multi-shot request renders at most {caps.MULTI_SHOT_MAX_SECONDS} s"
        problem = self._input_limit_problem([*group, shot])
        if problem:
            return problem
        return None

    def _explicit_groups(self, shots: list[_Shot]) -> dict[int, _Group]:
        """Validate ``groups``; map each valid group's first shot index to its group."""
        index_of = {s.id: s.index for s in shots}
        claimed: dict[int, int] = {}
        result: dict[int, _Group] = {}
        for g, group in enumerate(self.board.groups):
            indices: list[int] = []
            valid = True
            for k, shot_id in enumerate(group.shots):
                if shot_id not in index_of:
                    self.error(
                        self.at("groups", g, "shots", k), f"group {g + 1} names shot {shot_id!r}, which does not exist"
                    )
                    valid = False
                    continue
                index = index_of[shot_id]
                if index in claimed:
                    self.error(
                        self.at("groups", g, "shots", k),
                        f"shot {shot_id} is already in group {claimed[index] + 1}: a shot can be in one group only",
                    )
                    valid = False
                    continue
                claimed[index] = g
                indices.append(index)
            if not valid or not indices:
                continue
            if indices != list(range(indices[0], indices[0] + len(indices))):
                self.error(
                    self.at("groups", g),
                    f"group {g + 1} ({', '.join(group.shots)}) is not consecutive: list shots in storyboard order, "
                    "without gaps",
                )
                continue
            members = [shots[i] for i in indices]
            if len(members) == 1:  # a group of one is honoured as its own (single-shot) request
                result[indices[0]] = _Group(members, multi=False, explicit=g)
                continue
            if self._explicit_group_ok(g, members):
                total = sum(s.seconds for s in members)
                result[indices[0]] = _Group(members, multi=True, explicit=g)
                result[indices[0]].notes.append(
                    f"explicit group {g + 1}: shots {', '.join(s.id for s in members)} in one multi-shot request: "
                    f"{max(total, caps.MULTI_SHOT_MIN_SECONDS)} s on {members[0].model}"
                )
        return result

    def _explicit_group_ok(self, g: int, members: list[_Shot]) -> bool:
        where = self.at("groups", g)
        ok = True
        first = members[0]
        if not first.info.multi_shot:
            self.error(
                where,
                f"group {g + 1} is a multi-shot request, which {first.model} does not offer: use "
                f"{' or '.join(caps.MULTI_SHOT_MODELS)}, or remove the group",
            )
            return False
        if len(members) > caps.MULTI_SHOT_MAX_SHOTS:
            self.error(
                where,
                f"group {g + 1} has {len(members)} shots; a multi-shot request holds at most {caps.MULTI_SHOT_MAX_SHOTS}: split it",
            )
            ok = False
        total = sum(s.seconds for s in members)
        if total > caps.MULTI_SHOT_MAX_SECONDS:
            self.error(
                where,
                f"group {g + 1} renders {total} s; a multi-shot request renders at most {caps.MULTI_SHOT_MAX_SECONDS} s: split it",
            )
            ok = False
        for shot in members[1:]:
            differing = [
                n for n, a, b in zip(COMPATIBLE_SETTINGS, first.compatibility(), shot.compatibility()) if a != b
            ]
            if differing:
                self.error(
                    where,
                    f"group {g + 1}: shot {shot.id} differs from shot {first.id} in {', '.join(differing)}; "
                    "one multi-shot request takes these settings once: make them equal or split the group",
                )
                ok = False
        for position, shot in enumerate(members):
            if shot.spec.start_frame and position > 0:
                self.error(
                    self.at("shots", shot.index, "start_frame"),
                    f"shot {shot.id} has a start frame but is not the first shot of group {g + 1}: only the first shot "
                    "of a multi-shot request can: split the group here",
                )
                ok = False
            if shot.spec.end_frame and position < len(members) - 1:
                self.error(
                    self.at("shots", shot.index, "end_frame"),
                    f"shot {shot.id} has an end frame but is not the last shot of group {g + 1}: only the last shot "
                    "of a multi-shot request can: split the group here",
                )
                ok = False
            for name in ("camera_control", "motion_brush", "voices"):
                if getattr(shot.spec, name):
                    self.error(
                        self.at("shots", shot.index, name),
                        f"{name} cannot be used in a multi-shot request (group {g + 1}): remove it or the group",
                    )
                    ok = False
        problem = self._input_limit_problem(members)
        if problem:
            self.error(where, f"group {g + 1}: {problem}: split the group or use fewer references")
            ok = False
        return ok

    # inputs -------------------------------------------------------------------------------------

    def _references_of(self, shots: list[_Shot]) -> list[str]:
        refs: dict[str, None] = {}
        for shot in shots:
            for ref in shot.spec.references:
                if ref in self.board.references:
                    refs.setdefault(ref, None)
        return list(refs)

    def _frame_count(self, shots: list[_Shot]) -> tuple[bool, bool]:
        return bool(shots[0].spec.start_frame), bool(shots[-1].spec.end_frame)

    def _family(self, shots: list[_Shot]) -> str:
        info = shots[0].info
        has_start, has_end = self._frame_count(shots)
        if info.omni:
            return OMNI
        if has_start or has_end or shots[0].spec.motion_brush:
            return IMAGE2VIDEO
        refs = self._references_of(shots)
        if MULTI_IMAGE in info.families and refs:
            return MULTI_IMAGE
        return TEXT2VIDEO  # image-to-video-only models are reported by _build, not silently switched

    def _inputs(self, shots: list[_Shot], family: str) -> _Inputs:
        info = shots[0].info
        inputs = _Inputs(family)
        for ref in self._references_of(shots):
            is_element = self.board.references[ref].element is not None
            if family in info.element_families and is_element:
                inputs.element_refs.append(ref)
            elif family in (OMNI, MULTI_IMAGE):
                inputs.image_refs.append(ref)
            else:
                inputs.text_refs.append(ref)
        return inputs

    def _input_limit_problem(self, shots: list[_Shot]) -> str | None:
        """Kling's count limits on images and elements for these shots in one request, or None."""
        info = shots[0].info
        family = self._family(shots)
        inputs = self._inputs(shots, family)
        has_start, has_end = self._frame_count(shots)
        elements = len(inputs.element_refs)
        if family == IMAGE2VIDEO and elements > info.max_elements:
            return f"{info.name} image-to-video takes at most {info.max_elements} elements, these shots use {elements}"
        if family == OMNI:
            total = len(inputs.image_refs) + elements + has_start + has_end
            if total > caps.OMNI_MAX_INPUTS:
                return f"{info.name} takes at most {caps.OMNI_MAX_INPUTS} images and elements together, these shots use {total}"
            if has_start and elements > caps.OMNI_MAX_ELEMENTS_WITH_FRAME:
                return f"{info.name} takes at most {caps.OMNI_MAX_ELEMENTS_WITH_FRAME} elements with a first frame, these shots use {elements}"
            if info.name == "kling-video-o1" and has_start and has_end and elements:
                return "kling-video-o1 takes no elements with a first and an end frame"
            if (
                info.name == "kling-video-o1"
                and (has_start or has_end)
                and len(inputs.image_refs) + has_start + has_end > 2
            ):
                return "kling-video-o1 cannot set frames when it gets more than 2 images"
        if family == MULTI_IMAGE and len(inputs.image_refs) > caps.MULTI_IMAGE_MAX:
            return f"kling-v1-6 multi-image-to-video takes at most {caps.MULTI_IMAGE_MAX} references, these shots use {len(inputs.image_refs)}"
        return None

    # images -------------------------------------------------------------------------------------

    def _image(self, relative: str, images: dict[str, str]) -> str:
        digest = self.loaded.image_digest(relative)
        images.setdefault(digest, Path(relative).as_posix())
        return IMAGE_SCHEME + digest

    def _frame_path(self, value: str) -> str:
        reference = self.board.references.get(value)
        return reference.image if reference else value

    def _image_ratio(self, relative: str) -> str | None:
        if relative not in self._image_sizes:
            try:
                from PIL import Image

                with Image.open(self.loaded.resolve_path(relative)) as image:
                    self._image_sizes[relative] = image.size
            except Exception:  # noqa: BLE001 - the loader reports unreadable images; fall back to the setting
                return None
        width, height = self._image_sizes[relative]
        return caps.snap_aspect_ratio(width, height)

    def _element_entry(self, ref: str, images: dict[str, str], registrations: list[ElementRegistration]) -> dict:
        reference = self.board.references[ref]
        element = reference.element
        assert element is not None
        if element.element_id is not None:
            return {"element_id": element.element_id}
        frontal = self._image(reference.image, images)
        placeholder = ELEMENT_SCHEME + frontal[len(IMAGE_SCHEME) :]
        if not element.extra_images:
            self.error(
                self.at("references", ref, "element"),
                f"reference {ref} becomes a Kling element, which needs 1-3 more views of the subject: "
                "add element.extra_images, or give an existing element_id",
            )
        description = element.description or reference.description or ref
        if len(description) > 100:
            self.error(
                self.at("references", ref, "description"),
                f"reference {ref} is registered as a Kling element, whose description takes at most 100 characters "
                f"(this one has {len(description)}): set a shorter element.description",
            )
        registrations.append(
            ElementRegistration(
                placeholder=placeholder,
                reference=ref,
                name=(element.name or ref)[:20],
                description=description[:100],
                frontal_image=frontal,
                refer_images=[self._image(extra, images) for extra in element.extra_images],
                tags=list(element.tags),
            )
        )
        return {"element_id": placeholder}

    # prompts ------------------------------------------------------------------------------------

    def _description(self, ref: str) -> str:
        reference = self.board.references[ref]
        return reference.description or ref.replace("_", " ").replace("-", " ")

    def _context(self, shot: _Shot, inputs: _Inputs, multi: bool) -> dict[str, Any]:
        tokens = inputs.tokens()
        info = shot.info
        board = self.board

        def ref(ref_id: str) -> str:
            if ref_id not in board.references:
                known = ", ".join(board.references) or "none"
                raise _ReferenceNotUsable(f"ref({ref_id!r}): no reference named {ref_id!r} (references: {known})")
            if ref_id in tokens:
                return tokens[ref_id]
            if info.omni:
                raise _ReferenceNotUsable(
                    f"ref({ref_id!r}): {ref_id} is not sent with this request: add it to shots[{shot.index}].references"
                )
            return self._description(ref_id)

        shot_fields = shot.spec.model_dump(mode="json")
        for name in _SETTINGS:
            shot_fields[name] = getattr(shot, name)
        return {
            "shot": shot_fields,
            "defaults": board.defaults.model_dump(mode="json"),
            "references": {
                rid: {"image": r.image, "role": r.role, "description": r.description}
                for rid, r in board.references.items()
            },
            "vars": {**board.vars, **shot.spec.vars},
            "project": ProjectName(board.name),
            "ref": ref,
            "target": {"model": shot.model, "family": inputs.family, "multi_shot": multi, "omni": info.omni},
            "inputs": [r for r in shot.spec.references if r in tokens],
        }

    def _template_problem(self, location: Location, message: str) -> None:
        problem = Problem(location, message)
        self.template_problems.append(problem)
        self._add(problem)

    def _template_location(self, exc: BaseException, fallback: Location) -> Location:
        """The template file and line an exception came from (Jinja rewrites tracebacks to them)."""
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if f.filename == "<template>" or f.filename.endswith(TEMPLATE_SUFFIX)
        ]
        if not frames:
            return fallback
        frame = frames[-1]
        if frame.filename == "<template>":
            return fallback
        return self._file_location(frame.filename, frame.lineno or 0)

    def _file_location(self, filename: str, line: int) -> Location:
        """A template file as messages show it: relative to the working folder when inside it."""
        path = Path(filename)
        try:
            shown = str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            shown = str(path)
        return Location(file=shown, line=line, col=1 if line else 0)

    def _render(self, shot: _Shot, inputs: _Inputs, multi: bool) -> str:
        """The shot's final prompt: its text fields rendered inline, then through its template.

        Why every text field is a template: users write ``subject: "{{ references.cup.description }}"``
        or ``caption: "{{ vars.brand }}"`` as naturally as a templated prompt, and campaigns swap
        those values per variant.
        """
        context = self._context(shot, inputs, multi)
        rendered_inline = ""
        texts: dict[str, str | None] = {}
        for field_name in INLINE_TEMPLATE_FIELDS:
            source = getattr(shot.spec, field_name)
            if not source:
                texts[field_name] = None
                continue
            at = self.at("shots", shot.index, field_name)
            try:
                texts[field_name] = _inline_template(self.env, source).render(context).strip() or None
            except jinja2.TemplateSyntaxError as exc:
                self._template_problem(
                    at, f"template syntax error in the {field_name} (line {exc.lineno} of it): {exc.message}"
                )
                return ""
            except Exception as exc:  # noqa: BLE001 - any template failure is the user's to fix
                self._template_problem(at, f"the {field_name} cannot be rendered: {self._explain(exc)}")
                return ""
        self.inline_texts[shot.index] = texts
        rendered_inline = texts["prompt"] or ""
        for field_name, text in texts.items():
            context["shot"][field_name] = text
        name = shot.template or (MULTI_SHOT_TEMPLATE if multi else SINGLE_SHOT_TEMPLATE)
        file_name = name if name.endswith(TEMPLATE_SUFFIX) else name + TEMPLATE_SUFFIX
        try:
            template = self.env.get_template(file_name)
        except jinja2.TemplateNotFound:
            self._template_problem(
                self.where(shot, "template"),
                f"template {name!r} not found: create templates/{file_name} in the project, or use a built-in "
                f"({', '.join(builtin_template_names())})",
            )
            return rendered_inline
        except jinja2.TemplateSyntaxError as exc:
            self._template_problem(
                self._file_location(exc.filename or file_name, exc.lineno), f"template syntax error: {exc.message}"
            )
            return rendered_inline
        try:
            text = template.render(context)
        except Exception as exc:  # noqa: BLE001
            location = self._template_location(exc, self._file_location(template.filename or file_name, 0))
            self._template_problem(location, f"template {name!r} failed for shot {shot.id}: {self._explain(exc)}")
            return rendered_inline
        return _collapse(text)

    @staticmethod
    def _explain(exc: BaseException) -> str:
        if isinstance(exc, jinja2.exceptions.SecurityError):
            return f"refused by the sandbox ({exc}); templates may only use values, not Python internals"
        if isinstance(exc, jinja2.UndefinedError):
            return f"{exc} (check the spelling; values come from shot, defaults, references, vars, project)"
        if isinstance(exc, jinja2.TemplateError):
            return str(exc.message or exc)
        return f"{type(exc).__name__}: {exc}"

    # requests -----------------------------------------------------------------------------------

    def _build(self, group: _Group, request_of_shot: dict[int, Request]) -> Request:
        shots = group.shots
        first, last = shots[0], shots[-1]
        info = first.info
        model, mode = first.model, first.mode
        notes = list(group.notes)
        reason = self._pending_reason.get(first.index)
        if reason and first.spec.start_frame != PREVIOUS_FRAME:
            notes.append(f"new request: {reason}")
        family = self._family(shots)
        if family not in info.families:
            self.error(
                self.where(first, "model"),
                f"{model} does not offer {caps.FAMILY_WORDS[family]}"
                + (
                    f" (it is image-to-video only): give shot {first.id} a start_frame, or use another model"
                    if family == TEXT2VIDEO
                    else ""
                ),
            )
        if mode == "4k" and info.four_k_families and family not in info.four_k_families:
            self.error(self.where(first, "mode"), f"mode 4k is not offered on {model} {caps.FAMILY_WORDS[family]}")
        inputs = self._inputs(shots, family)
        problem = self._input_limit_problem(shots)
        if problem and group.explicit is None:
            self.error(self.at("shots", first.index, "references"), f"{problem}: use fewer references")
        for ref in inputs.text_refs:
            holder = next(s for s in shots if ref in s.spec.references)
            self.advise(
                self.at("shots", holder.index, "references"),
                f"{model} {caps.FAMILY_WORDS[family]} cannot take reference images: reference {ref} is used as text only "
                f"(its description); use kling-v3-omni to send the image",
            )

        images: dict[str, str] = {}
        registrations: list[ElementRegistration] = []
        depends_on: list[str] = []
        body: dict[str, Any] = {"model_name": model}
        if info.sends_mode:
            body["mode"] = mode

        # frames
        start_value, end_value = first.spec.start_frame, last.spec.end_frame
        start_image = end_image = None
        aspect_ratio = first.aspect_ratio
        if start_value == PREVIOUS_FRAME and first.index > 0:
            upstream = request_of_shot[first.index - 1]
            start_image = FRAME_SCHEME + upstream.key
            depends_on.append(upstream.key)
            aspect_ratio = upstream.aspect_ratio
            notes.append(f"new request: start_frame previous needs the clip of {upstream.id}")
            previous_slice = upstream.shots[-1]
            if upstream.duration > previous_slice.offset + previous_slice.keep:
                notes.append(
                    f"the chained frame is the last frame of {upstream.id}'s clip ({upstream.duration} s), "
                    f"not of the {_seconds(previous_slice.keep)} the cut keeps of shot {previous_slice.shot_id}"
                )
        elif start_value:
            path = self._frame_path(start_value)
            start_image = self._image(path, images)
            aspect_ratio = self._image_ratio(path) or aspect_ratio
        if end_value:
            end_image = self._image(self._frame_path(end_value), images)
            self._check_end_frame(last, family)
            if not start_value:
                self.error(
                    self.at("shots", last.index, "end_frame"),
                    "an end frame needs a start frame: give "
                    + (f"shot {first.id} (the first of its request)" if len(shots) > 1 else "this shot")
                    + " a start_frame too (Kling no longer takes end-frame-only requests)",
                )

        # durations
        durations = self._durations(group, family, inputs, start_image is not None, end_image is not None, notes)
        total = sum(durations)

        # prompts
        prompts = [self._render(shot, inputs, group.multi) for shot in shots]
        for shot, prompt in zip(shots, prompts):
            self.prompts[shot.id] = prompt
            self._check_prompt(shot, prompt, group)
        voice = False
        if first.spec.voices:
            voice = "<<<voice_" in prompts[0]
            if not voice:
                self.advise(
                    self.at("shots", first.index, "voices"),
                    "voices are listed but the prompt never says <<<voice_1>>>: Kling only speaks with a voice the prompt names",
                )

        # body
        if group.multi:
            body["prompt"] = ""
            body["multi_shot"] = True
            body["shot_type"] = "customize"
            body["multi_prompt"] = [
                {"index": n, "prompt": prompt, "duration": str(seconds)}
                for n, (prompt, seconds) in enumerate(zip(prompts, durations), 1)
            ]
        else:
            body["prompt"] = prompts[0]
        if first.negative_prompt is not None and family != OMNI:
            body["negative_prompt"] = first.negative_prompt
        body["duration"] = str(total)
        if family == OMNI:
            image_list: list[dict[str, str]] = [
                {"image_url": self._image(self.board.references[r].image, images)} for r in inputs.image_refs
            ]
            if start_image:
                image_list.append({"image_url": start_image, "type": "first_frame"})
            if end_image:
                image_list.append({"image_url": end_image, "type": "end_frame"})
            if image_list:
                body["image_list"] = image_list
            if not start_image:
                body["aspect_ratio"] = first.aspect_ratio
        elif family == MULTI_IMAGE:
            body["image_list"] = [
                {"image": self._image(self.board.references[r].image, images)} for r in inputs.image_refs
            ]
            body["aspect_ratio"] = first.aspect_ratio
        elif family == IMAGE2VIDEO:
            if start_image:
                body["image"] = start_image
            if end_image:
                body["image_tail"] = end_image
        else:
            body["aspect_ratio"] = first.aspect_ratio
        if inputs.element_refs:
            body["element_list"] = [self._element_entry(r, images, registrations) for r in inputs.element_refs]
        if first.spec.camera_control and not group.multi:
            body["camera_control"] = self._camera_body(first, family, total)
        if first.spec.motion_brush and not group.multi:
            self._motion_brush_body(first, total, body, images)
        if first.spec.voices:
            body["voice_list"] = [{"voice_id": v} for v in first.spec.voices]
            if inputs.element_refs:
                self.error(
                    self.at("shots", first.index, "voices"),
                    "voices and elements cannot be used in one request: remove the voices or the element references",
                )
        if info.has_sound_field:
            body["sound"] = "on" if first.sound else "off"
        if first.cfg_scale is not None and info.cfg_scale:
            body["cfg_scale"] = _number(first.cfg_scale)
        if first.watermark:
            body["watermark_info"] = {"enabled": True}

        # price
        endpoint = caps.ENDPOINTS[family]
        key = content_key(endpoint, body)
        price_mode = mode if info.sends_mode else ("pro" if caps.output_height(model, mode) >= 1080 else "std")
        try:
            units, estimated = caps.units_for(
                model, price_mode, first.sound and info.offers_sound(mode), total, voice=voice
            )
        except ValueError:
            units, estimated = 0.0, True  # an invalid combination, already reported as an error
        if estimated and units:
            notes.append(f"price is an estimate: {caps.ESTIMATE_SOURCES.get(model, 'not in the official table')}")
        if not info.sends_mode and first.mode in ("std", "pro") and "mode" in first.spec.model_fields_set:
            self.advise(
                self.where(first, "mode"),
                f"{model} takes no mode: it renders {caps.output_height(model, mode)}p whatever the mode",
            )
        width, height = caps.output_size(model, price_mode if not info.sends_mode else mode, aspect_ratio)

        slices = []
        offset = 0
        for n, (shot, prompt, seconds) in enumerate(zip(shots, prompts, durations)):
            slices.append(
                ShotSlice(
                    shot_id=shot.id,
                    offset=offset,
                    rendered=seconds,
                    keep=_number(shot.spec.duration),
                    prompt=prompt,
                    camera=self.inline_texts.get(shot.index, {}).get("camera") or shot.spec.camera,
                    start_image=start_image if n == 0 else None,
                    end_image=end_image if n == len(shots) - 1 else None,
                    caption=self.inline_texts.get(shot.index, {}).get("caption") or shot.spec.caption,
                )
            )
            offset += seconds
        number = len(self.requests) + 1
        return Request(
            id=f"r{number:02d}-{first.id}",
            key=key,
            external_task_id="sb-" + key[:40],
            family=family,
            endpoint=endpoint,
            model=model,
            mode=mode if info.sends_mode else price_mode,
            duration=total,
            sound=bool(body.get("sound") == "on"),
            aspect_ratio=aspect_ratio,
            width=width,
            height=height,
            fps=info.fps_for(family),
            body=body,
            images=images,
            depends_on=depends_on,
            elements=registrations,
            shots=slices,
            units=units,
            usd=round(float(Decimal(str(units)) * Decimal(str(UNIT_PRICE_USD))), 2),
            notes=notes,
        )

    def _durations(
        self, group: _Group, family: str, inputs: _Inputs, has_start: bool, has_end: bool, notes: list[str]
    ) -> list[int]:
        shots = group.shots
        info = shots[0].info
        if group.multi:
            durations = [s.seconds for s in shots]
            if group.explicit is None:
                notes.append(
                    f"packed shots {', '.join(s.id for s in shots)} into one multi-shot request: "
                    f"{max(sum(durations), caps.MULTI_SHOT_MIN_SECONDS)} s on {info.name}"
                )
            for shot, seconds in zip(shots, durations):
                if seconds != shot.spec.duration:
                    notes.append(
                        f"shot {shot.id} renders {seconds} s (Kling renders whole seconds); the cut keeps {_seconds(shot.spec.duration)}"
                    )
            short = caps.MULTI_SHOT_MIN_SECONDS - sum(durations)
            if short > 0:
                durations[-1] += short
                notes.append(
                    f"the request is under Kling's {caps.MULTI_SHOT_MIN_SECONDS} s multi-shot minimum: shot {shots[-1].id} "
                    f"renders {durations[-1]} s; the cut keeps {_seconds(shots[-1].spec.duration)}"
                )
            return durations
        shot = shots[0]
        pure_text = family == OMNI and not inputs.image_refs and not inputs.element_refs and not has_end
        allowed = info.durations_for(pure_text=pure_text)
        rendered = caps.next_allowed_duration(shot.seconds, allowed)
        if rendered is None:
            if shot.spec.duration <= info.max_duration:  # o1 pure text: 5 or 10 only
                self.error(
                    self.at("shots", shot.index, "duration"),
                    f"{info.name} renders {caps.describe_durations(allowed)} for this shot; "
                    f"{_seconds(shot.spec.duration)} does not fit: shorten it",
                )
            rendered = max(allowed)
        if rendered != shot.spec.duration:
            notes.append(
                f"shot {shot.id} renders {rendered} s on {info.name} (allowed: {caps.describe_durations(allowed)}); "
                f"the cut keeps {_seconds(shot.spec.duration)}"
            )
        return [rendered]

    def _check_prompt(self, shot: _Shot, prompt: str, group: _Group) -> None:
        where = self.at("shots", shot.index, "prompt") if shot.spec.prompt else self.at("shots", shot.index)
        if group.multi and len(prompt) > caps.MULTI_SHOT_PROMPT_MAX:
            if group.explicit is None and self.board.defaults.strategy == "auto":
                self.unpackable.add(shot.index)
                raise _Restart
            self.error(
                where,
                f"shot {shot.id}'s prompt is {len(prompt)} characters; inside a multi-shot request Kling takes at most "
                f"{caps.MULTI_SHOT_PROMPT_MAX}: shorten it, or take the shot out of the group",
            )
        elif len(prompt) > caps.PROMPT_MAX:
            self.error(
                where,
                f"shot {shot.id}'s prompt is {len(prompt)} characters; Kling takes at most {caps.PROMPT_MAX}: shorten it",
            )

    def _check_end_frame(self, shot: _Shot, family: str) -> None:
        info = shot.info
        if family == OMNI:
            return
        problems = []
        if shot.mode not in info.end_frame_modes:
            problems.append(f"in {' or '.join(sorted(info.end_frame_modes))} mode only")
        if (
            info.end_frame_durations
            and caps.next_allowed_duration(shot.seconds, info.durations) not in info.end_frame_durations
        ):
            problems.append(f"for {', '.join(map(str, info.end_frame_durations))} s clips only")
        if info.end_frame_silent_only and shot.sound:
            problems.append("without sound only")
        if problems:
            self.error(
                self.at("shots", shot.index, "end_frame"),
                f"{info.name} takes an end frame {' and '.join(problems)}: change the shot or remove the end frame",
            )

    def _camera_body(self, shot: _Shot, family: str, seconds: int) -> dict[str, Any]:
        control = shot.spec.camera_control
        assert control is not None
        if not shot.info.camera_rule(family, shot.mode, seconds, control.type):
            offered = "; ".join(r.describe(name) for name, m in caps.MODELS.items() for r in m.camera_control)
            self.error(
                self.at("shots", shot.index, "camera_control"),
                f"camera_control ({control.type}) is not offered on {shot.model} {caps.FAMILY_WORDS[family]} "
                f"{shot.mode} {seconds} s; Kling offers it only on {offered}: describe the move in camera: words instead",
            )
        body: dict[str, Any] = {"type": control.type}
        if control.config is not None:
            body["config"] = {k: _number(v) for k, v in control.config.model_dump().items()}
        return body

    def _motion_brush_body(self, shot: _Shot, seconds: int, body: dict[str, Any], images: dict[str, str]) -> None:
        brush = shot.spec.motion_brush
        assert brush is not None
        info = shot.info
        if shot.mode not in info.motion_brush_modes or seconds not in info.motion_brush_durations:
            offered = "; ".join(
                f"{name} image-to-video {'/'.join(sorted(m.motion_brush_modes))} {'/'.join(map(str, m.motion_brush_durations))} s"
                for name, m in caps.MODELS.items()
                if m.motion_brush_modes
            )
            self.error(
                self.at("shots", shot.index, "motion_brush"),
                f"motion_brush is not offered on {shot.model} {shot.mode} {seconds} s; Kling offers it only on {offered}",
            )
        if brush.static_mask:
            body["static_mask"] = self._image(brush.static_mask, images)
        if brush.dynamic_masks:
            body["dynamic_masks"] = [
                {"mask": self._image(m.mask, images), "trajectories": [{"x": x, "y": y} for x, y in m.trajectory]}
                for m in brush.dynamic_masks
            ]

    # plan ---------------------------------------------------------------------------------------

    def to_plan(self) -> Plan:
        units = float(sum(Decimal(str(r.units)) for r in self.requests))
        usd = round(float(Decimal(str(units)) * Decimal(str(UNIT_PRICE_USD))), 2)
        notes = [
            f"advisory: {p.location.path or p.location.file}: {p.message}"
            for p in self.problems
            if p.severity == "advisory"
        ]
        if any("estimate" in n for r in self.requests for n in r.notes):
            notes.append("some prices are estimates (older models, not in Kling's 2026 price table)")
        try:
            storyboard_file = self.loaded.file.resolve().relative_to(self.loaded.project_dir.resolve()).as_posix()
        except ValueError:
            storyboard_file = self.loaded.file.name
        return Plan(
            project=self.board.name,
            storyboard=storyboard_file,
            requests=self.requests,
            units=units,
            usd=usd,
            notes=notes,
        )


# --- public API ---------------------------------------------------------------------------------


def _compile(loaded: LoadedStoryboard) -> _Compiler:
    compiler = _Compiler(loaded)
    compiler.run()
    return compiler


def check(loaded: LoadedStoryboard) -> list[Problem]:
    """Every Kling model rule and template error of a loaded storyboard, located, errors and advisories."""
    return _compile(loaded).problems


def plan(loaded: LoadedStoryboard) -> Plan:
    """The exact, priced Kling requests of a storyboard; raises ``StoryboardInvalid`` on any error."""
    compiler = _compile(loaded)
    if any(p.severity == "error" for p in compiler.problems):
        raise StoryboardInvalid(compiler.problems)
    return compiler.to_plan()


def render_prompts(loaded: LoadedStoryboard) -> dict[str, str]:
    """Shot id -> the final prompt Kling gets (raises ``StoryboardInvalid`` on template errors only)."""
    compiler = _compile(loaded)
    if compiler.template_problems:
        raise StoryboardInvalid(compiler.template_problems)
    return {shot.id: compiler.prompts.get(shot.id, "") for shot in loaded.storyboard.shots}


_PLACEHOLDER = re.compile(r"^(image|element)://sha256/([0-9a-f]{64})$")


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as stable JSON: image and element placeholders shown as "<image refs/x.png sha256:…>".

    Stable means the same storyboard gives byte-identical output on every run and machine: no
    timestamps, no absolute paths, keys sorted by the caller's ``json.dumps(sort_keys=True)``.
    """
    data = plan.model_dump(mode="json")
    for request in data["requests"]:
        for part in ("body", "shots", "elements"):
            request[part] = _show_placeholders(request[part], request["images"])
    return data


def _show_placeholders(value: Any, images: dict[str, str]) -> Any:
    """Replace image/element placeholders by readable text naming the file and its full hash."""
    if isinstance(value, str):
        match = _PLACEHOLDER.match(value)
        if match:
            kind, digest = match.groups()
            return f"<{kind} {images.get(digest, 'unknown')} sha256:{digest}>"
        return value
    if isinstance(value, list):
        return [_show_placeholders(v, images) for v in value]
    if isinstance(value, dict):
        return {k: _show_placeholders(v, images) for k, v in value.items()}
    return value
