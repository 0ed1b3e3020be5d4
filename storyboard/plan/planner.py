"""The planner: a loaded storyboard in, the exact, priced Kling requests out.

Why an orchestrator over five modules: templates, grouping, bodies, prices and keys depend on
each other in a loop that must be resolved in one place. A prompt's ``ref()`` tokens
(``<<<image_2>>>``) depend on the request's ``image_list``, which depends on how shots were
grouped, which depends on whether the rendered prompts fit Kling's 512-character multi-shot
limit. ``_Planning`` runs that loop (regrouping when a packed prompt proves too long); each step
lives with its concern:

* ``rules``: Kling's rules as located problems (``Findings``);
* ``prompts`` and ``sandbox``: the bounded, project-confined Jinja2 templates;
* ``grouping``: which shots share a request, and the seconds Kling renders for each;
* ``bodies``: the request's parts written as Kling's JSON, one builder per request family;
* ``pricing``: units, dollars and content keys; ``framing``: ratios and what outputs crop.

Money rules that shape the code:

* a request's ``key`` hashes the exact body with placeholders, so renaming an image changes no key
  and editing one prompt re-renders exactly one request (plus any request chained to its clip);
* durations are billed in whole seconds from an allowed set: the plan says what Kling renders, the
  slices say what the cut keeps, and a note explains every difference;
* nothing here touches the network or the clock, so a plan is the same on every run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.errors import Problem, StoryboardInvalid
from storyboard.load.spec import PREVIOUS_FRAME
from storyboard.plan import (
    ELEMENT_SCHEME,
    FRAME_SCHEME,
    IMAGE_SCHEME,
    VIDEO_SCHEME,
    ElementRegistration,
    Plan,
    Request,
    ShotSlice,
)
from storyboard.plan import capabilities as caps
from storyboard.plan.bodies import (
    ImagePlaceholders,
    RequestParts,
    build_body,
    camera_control_body,
    element_entry,
    intelligence_prompt,
    motion_brush_fields,
    number,
)
from storyboard.plan.bodies_standard import build_standard_body, standard_endpoint
from storyboard.plan.extra import apply_extra, extra_of
from storyboard.plan.framing import FrameSizes, advise_reframing
from storyboard.plan.grouping import Group, Grouping, check_intelligence_cut, durations
from storyboard.plan.kinds import (
    MOTION_CONTROL_ELEMENT_MODELS,
    KindBuild,
    VideoInput,
    build_kind_request,
    check_kind_shot,
    check_standard_video_audio,
    kind_of,
    own_request_kind,
    round_half_up,
    safe_media_digest,
    video_reference_entry,
)
from storyboard.plan.pricing import content_key, estimate_note, external_task_id, price, total_units, usd
from storyboard.plan.prompts import (
    INLINE_TEMPLATE_FIELDS,
    MULTI_SHOT_TEMPLATE,
    SINGLE_SHOT_TEMPLATE,
    TEMPLATE_SUFFIX,
    ProjectName,
    PromptRenderer,
    builtin_template_names,
    builtin_templates_dir,
    template_environment,
)
from storyboard.plan.rules import (
    Findings,
    advise_ignored_mode,
    check_camera_control,
    check_element,
    check_end_frame,
    check_end_frame_has_start,
    check_motion_brush,
    check_request_shape,
    check_shot,
    check_text,
    check_voiced_element,
    check_voices_in_request,
    forced_voice_list_note,
    prompt_location,
    prompt_too_long,
    seconds_text,
    strings_in,
    unpaired_surrogate,
)
from storyboard.plan.shots import (
    COMPATIBLE_SETTINGS,
    RequestInputs,
    ResolvedShot,
    family_of,
    inputs_of,
    resolve_shots,
)
from storyboard.plan.standard_rules import check_api, check_inline_words
from storyboard.plan.video_elements import (
    check_video_elements_in_request,
    check_video_reference,
    is_video_reference,
)
from storyboard.workspace import Workspace

if TYPE_CHECKING:
    from storyboard.load.loader import LoadedStoryboard

__all__ = [
    "COMPATIBLE_SETTINGS",
    "INLINE_TEMPLATE_FIELDS",
    "MULTI_SHOT_TEMPLATE",
    "SINGLE_SHOT_TEMPLATE",
    "TEMPLATE_SUFFIX",
    "ProjectName",
    "builtin_template_names",
    "builtin_templates_dir",
    "check",
    "content_key",
    "plan",
    "plan_to_json",
    "render_prompts",
    "template_environment",
]


class _Restart(Exception):
    """Auto grouping put a shot whose prompt is too long for multi-shot in a group: regroup."""


@dataclass
class _Frames:
    """A request's start and end frames as placeholders, the clip's ratio, and the clips it waits for."""

    aspect_ratio: str
    start: str | None = None
    end: str | None = None
    depends_on: list[str] = field(default_factory=list)


class _Planning:
    """Plans one loaded storyboard; collects problems instead of stopping at the first."""

    def __init__(self, loaded: LoadedStoryboard) -> None:
        self.loaded = loaded
        self.board = loaded.storyboard
        self.env = template_environment(loaded.project_dir)
        self.frame_sizes = FrameSizes(loaded)
        self.unpackable: set[int] = set()
        """Shots whose prompts proved too long for a multi-shot request; kept across regroupings."""

    def run(self) -> None:
        for _ in range(len(self.board.shots) + 1):
            self.findings = Findings(self.loaded)
            self.renderer = PromptRenderer(self.findings, self.env)
            self.prompts: dict[str, str] = {}
            self.requests: list[Request] = []
            try:
                self._plan_pass()
                return
            except _Restart:
                continue
        raise AssertionError("regrouping did not converge")  # each restart marks one more shot

    def _plan_pass(self) -> None:
        shots = resolve_shots(self.board)
        for ref, reference in self.board.references.items():
            if reference.video is not None:
                check_video_reference(self.findings, ref)
        for shot in shots:
            if own_request_kind(shot.spec):
                check_kind_shot(self.findings, shot)
                continue
            check_shot(self.findings, shot)
            check_api(self.findings, shot)
        request_of_shot: dict[int, Request] = {}
        groups = Grouping(self.findings, self.unpackable).groups(shots)
        check_intelligence_cut(self.findings, groups)
        for group in groups:
            kinds = [(shot, kind_of(shot.spec)) for shot in group.shots if kind_of(shot.spec)]
            if group.multi and kinds:
                shot, kind = kinds[0]
                self.findings.error(
                    self.findings.at("groups", group.explicit) if group.explicit is not None else self.findings.at("shots", shot.index),
                    f"shot {shot.id} ({kind}) is a request of its own: take it out of the multi-shot group",
                )
                continue
            if own_request_kind(group.shots[0].spec):
                request = self._build_kind(group.shots[0], request_of_shot)
            else:
                request = self._build(group, request_of_shot)
            self.requests.append(request)
            for shot in group.shots:
                request_of_shot[shot.index] = request

    # one request ----------------------------------------------------------------------------------

    def _build(self, group: Group, request_of_shot: dict[int, Request]) -> Request:
        first = group.shots[0]
        notes = list(group.notes)
        if group.reason and first.spec.start_frame != PREVIOUS_FRAME:
            notes.append(f"new request: {group.reason}")
        family = family_of(self.board, group.shots)
        inputs = inputs_of(self.board, group.shots, family)
        notes.extend(check_video_elements_in_request(
            self.findings, group.shots, family, inputs, first.spec.video_reference is not None))
        text_refs = [ref for ref in inputs.text_refs if not is_video_reference(self.board, ref)]  # refused above
        check_request_shape(self.findings, group.shots, family, text_refs, group.explicit is not None)
        images = ImagePlaceholders(self.loaded)
        frames = self._frames(group, family, request_of_shot, images, notes)
        seconds = durations(self.findings, group, inputs, frames.end is not None, notes)
        media: dict[str, str] = {}
        video = self._video_input(group, family, inputs, frames, media)
        if video is not None and video.edit and video.seconds is not None:
            seconds = [max(1, round_half_up(video.seconds))]
            notes.append(f"video edit: the clip keeps the edited video's length ({video.seconds:.2f} s), "
                         f"billed {seconds[0]} s (rounded) at the video-input rate")
        prompts = self._prompts(group, inputs)
        registrations: list[ElementRegistration] = []
        self.voiced_notes: list[str] = []
        parts = self._parts(group, inputs, frames, seconds, prompts, images, registrations)
        if video is not None:
            check_standard_video_audio(self.findings, first, video)
            parts.video = video.entry
            if parts.sound is not None:
                parts.sound = False
            reference_video = first.spec.video_reference
            if not video.edit and reference_video is not None:
                notes.append(f"video reference: {reference_video.video} is followed as <<<video_1>>>; "
                             f"{parts.total_seconds} s billed at the video-input rate")
        notes.extend(self.voiced_notes)
        if parts.api == caps.NEW_API and parts.model in caps.NEW_API_MODELS and parts.family in caps.NEW_API_ENDPOINTS:
            body = build_standard_body(parts)
            endpoint = standard_endpoint(parts)
            if parts.multi and not parts.intelligence:
                for shot, prompt in zip(group.shots, prompts):
                    check_inline_words(self.findings, shot, prompt)
        else:
            body = build_body(parts)
            endpoint = caps.ENDPOINTS[parts.family]
        choice = caps.decide_api(first.model, first.requested_api)
        if choice.api == caps.NEW_API or first.requested_api is not None:
            notes.append(f"api {choice.api}: {choice.reason}")
        self._add_extra(group, body, notes)
        self._check_request_text(group, body, registrations)
        request = self._request(group, parts, body, endpoint, frames, images, registrations, notes)
        if video is None:
            return request
        cost = price(first.model, first.mode, False, parts.total_seconds, voice=False, video_input=True)
        return request.model_copy(update={"media": media, "units": cost.units, "usd": usd(cost.units),
                                          "sound": video.entry["keep_original_sound"] == "yes"})

    def _video_input(self, group: Group, family: str, inputs: RequestInputs, frames: _Frames,
                     media: dict[str, str]) -> VideoInput | None:
        """The omni video of a single-shot request (``plan.kinds``); the loader's media placeholders go in ``media``."""
        first = group.shots[0]
        if first.spec.video_reference is None:
            return None

        def placeholder(relative: str) -> str:
            value = VIDEO_SCHEME + safe_media_digest(self.loaded.resolve_path(relative), relative)
            media.setdefault(value, relative)
            return value

        return video_reference_entry(
            self.findings, first, family, bool(frames.start or frames.end),
            len(inputs.image_refs) + len(inputs.element_refs), placeholder,
        )

    def _build_kind(self, shot: ResolvedShot, request_of_shot: dict[int, Request]) -> Request:
        """A motion-control, avatar or lip-sync shot: one request, built and priced by ``plan.kinds``."""
        images = ImagePlaceholders(self.loaded)
        registrations: list[ElementRegistration] = []
        family = caps.MOTION_CONTROL if shot.spec.motion_control else caps.AVATAR
        prompt = None
        if shot.spec.lip_sync is None and (shot.spec.prompt or shot.spec.subject or shot.spec.action):
            prompt = self.renderer.render(shot, RequestInputs(family), False)
            self.prompts[shot.id] = prompt
            problem = prompt_too_long(shot, prompt, False)
            if problem:
                self.findings.error(prompt_location(self.findings, shot), problem)
        element = None
        motion = shot.spec.motion_control
        reference = self.board.references.get(motion.character) if motion is not None else None
        if motion is not None and reference is not None and reference.element is not None and reference.video is None:
            if shot.model in MOTION_CONTROL_ELEMENT_MODELS:
                check_element(self.findings, motion.character)
                element = element_entry(self.board, motion.character, images, registrations)
            else:
                self.findings.advise(
                    self.findings.at("shots", shot.index, "motion_control", "character"),
                    f"{shot.model} motion control takes no element: only the image of {motion.character} is sent",
                )
        build = KindBuild(self.findings, shot, images, prompt or None, request_of_shot, len(self.requests), element)
        request = build_kind_request(build)
        return request.model_copy(update={"elements": registrations}) if registrations else request

    def _add_extra(self, group: Group, body: dict[str, Any], notes: list[str]) -> None:
        """Merge the shots' ``extra`` into the body; refuse, at its line, a field the format already writes."""
        first = group.shots[0]
        extra = extra_of(self.board.defaults.extra, first)
        if not extra:
            return
        added, clashes = apply_extra(body, extra)
        for path in clashes:
            top = path.split(".")[0]
            own = first.spec.extra or {}
            where = (
                self.findings.at("shots", first.index, "extra", top)
                if top in own
                else self.findings.at("defaults", "extra", top)
            )
            self.findings.error(
                where,
                f"extra field {path} is already written by the format for this request: remove it from extra "
                "and set it through the storyboard's own field (extra only adds fields the format does not model)",
            )
        if added:
            notes.append(
                f"unmodelled fields sent as written (extra; not checked by validate, Kling judges them): {', '.join(added)}"
            )
        forced = forced_voice_list_note(self.findings, first, added)
        if forced:
            notes.append(forced)

    def _frames(
        self, group: Group, family: str, request_of_shot: dict[int, Request], images: ImagePlaceholders, notes: list[str]
    ) -> _Frames:
        first, last = group.shots[0], group.shots[-1]
        start_value, end_value = first.spec.start_frame, last.spec.end_frame
        frames = _Frames(aspect_ratio=first.aspect_ratio)
        if start_value == PREVIOUS_FRAME and first.index > 0:
            upstream = request_of_shot[first.index - 1]
            frames.start = FRAME_SCHEME + upstream.key
            frames.depends_on.append(upstream.key)
            frames.aspect_ratio = upstream.aspect_ratio
            notes.append(f"new request: start_frame previous needs the clip of {upstream.id}")
            previous_slice = upstream.shots[-1]
            if upstream.duration > previous_slice.offset + previous_slice.keep:
                notes.append(
                    f"the chained frame is the last frame of {upstream.id}'s clip ({upstream.duration} s), "
                    f"not of the {seconds_text(previous_slice.keep)} the cut keeps of shot {previous_slice.shot_id}"
                )
        elif start_value:
            path = self._frame_path(start_value)
            frames.start = images.of(path)
            clip_ratio = self.frame_sizes.clip_ratio(path)
            if clip_ratio:
                frames.aspect_ratio = clip_ratio
                advise_reframing(self.findings, first, path, self.frame_sizes.size(path), clip_ratio)
        if end_value:
            frames.end = images.of(self._frame_path(end_value))
            check_end_frame(self.findings, last, family)
            check_end_frame_has_start(self.findings, group.shots)
        return frames

    def _frame_path(self, value: str) -> str:
        reference = self.board.references.get(value)
        return reference.image if reference and reference.image else value  # a video: refused by load.loader

    def _prompts(self, group: Group, inputs: RequestInputs) -> list[str]:
        # an intelligence request sends one plain prompt: each shot renders as a single shot would
        per_shot = group.multi and not group.intelligence
        prompts = [self.renderer.render(shot, inputs, per_shot) for shot in group.shots]
        if group.intelligence and group.explicit is not None:
            joined = len(intelligence_prompt(prompts))
            if joined > caps.PROMPT_MAX:
                self.findings.error(
                    self.findings.at("groups", group.explicit),
                    f"group {group.explicit + 1}'s shots make a {joined}-character prompt; an intelligence request "
                    f"sends them as one prompt of at most {caps.PROMPT_MAX}: shorten the prompts or split the group",
                )
        for shot, prompt in zip(group.shots, prompts):
            self.prompts[shot.id] = prompt
            check_text(self.findings, prompt_location(self.findings, shot), "the prompt", prompt)
            problem = prompt_too_long(shot, prompt, per_shot)
            if problem is None:
                continue
            if group.multi and group.explicit is None and self.board.defaults.strategy == "auto":
                self.unpackable.add(shot.index)
                raise _Restart
            self.findings.error(prompt_location(self.findings, shot), problem)
        return prompts

    def _parts(
        self,
        group: Group,
        inputs: RequestInputs,
        frames: _Frames,
        seconds: list[int],
        prompts: list[str],
        images: ImagePlaceholders,
        registrations: list[ElementRegistration],
    ) -> RequestParts:
        first = group.shots[0]
        info = first.info
        parts = RequestParts(
            family=inputs.family,
            model=first.model,
            mode=first.mode if info.sends_mode else None,
            multi=group.multi,
            prompts=prompts,
            durations=seconds,
            aspect_ratio=first.aspect_ratio,
            negative_prompt=first.negative_prompt,
            start_image=frames.start,
            end_image=frames.end,
            reference_images=[images.of(image) for r in inputs.image_refs
                              if (image := self.board.references[r].image) is not None],  # videos: refused
            voices=list(first.spec.voices),
            sound=first.sound if info.has_sound_field else None,
            cfg_scale=first.cfg_scale if info.cfg_scale else None,
            watermark=first.watermark,
            intelligence=group.intelligence,
            api=first.api,
        )
        for n, ref in enumerate(inputs.element_refs, 1):
            check_element(self.findings, ref)
            parts.elements.append(element_entry(self.board, ref, images, registrations))
            spoken = " ".join(prompts)
            if check_voiced_element(self.findings, first, ref, spoken, f"<<<element_{n}>>>"):
                self.voiced_notes.append(
                    f"reference {ref} speaks through its element in voice {_voice_named(self.board, ref)} "
                    "(kling-api-2.md §3.3: on 3.0 a voice comes through an element); priced as native audio: "
                    "Kling's 2026 table has no 3.0 voice-control row (unverified)"
                )
        if first.spec.camera_control and not group.multi:
            check_camera_control(self.findings, first, inputs.family, parts.total_seconds)
            parts.camera_control = camera_control_body(first.spec.camera_control)
        if first.spec.motion_brush and not group.multi:
            check_motion_brush(self.findings, first, parts.total_seconds)
            parts.motion_brush = motion_brush_fields(first.spec.motion_brush, images)
        return parts

    def _check_request_text(self, group: Group, body: dict[str, Any], registrations: list[ElementRegistration]) -> None:
        """Text Kling cannot read, wherever it came from (the prompts and fields are checked at their lines)."""
        first = group.shots[0]
        check_text(self.findings, self.findings.where(first, "negative_prompt"), "the negative_prompt", first.negative_prompt)
        for registration in registrations:
            for text in (registration.name, registration.description, *registration.tags):
                check_text(
                    self.findings, self.findings.at("references", registration.reference), "the element", text
                )
        if any(unpaired_surrogate(text) for text in strings_in(body)) and not any(
            "unpaired surrogate" in p.message for p in self.findings.problems
        ):
            check_text(self.findings, self.findings.at("shots", first.index), f"shot {first.id}'s request", "\ud800")

    def _request(
        self,
        group: Group,
        parts: RequestParts,
        body: dict[str, Any],
        endpoint: str,
        frames: _Frames,
        images: ImagePlaceholders,
        registrations: list[ElementRegistration],
        notes: list[str],
    ) -> Request:
        first = group.shots[0]
        info = first.info
        total = parts.total_seconds
        voice = bool(first.spec.voices) and check_voices_in_request(
            self.findings, first, parts.prompts[0], bool(parts.elements)
        )
        key = content_key(endpoint, body)
        cost = price(first.model, first.mode, first.sound, total, voice=voice)
        if cost.estimated and cost.units:
            notes.append(estimate_note(first.model))
        advise_ignored_mode(self.findings, first)
        width, height = caps.output_size(first.model, cost.mode, frames.aspect_ratio)
        return Request(
            id=f"r{len(self.requests) + 1:02d}-{first.id}",
            key=key,
            external_task_id=external_task_id(key),
            api=parts.api,
            family=parts.family,
            endpoint=endpoint,
            model=first.model,
            mode=cost.mode,
            duration=total,
            sound=_has_sound(parts, body),
            aspect_ratio=frames.aspect_ratio,
            width=width,
            height=height,
            fps=info.fps_for(parts.family),
            body=body,
            images=images.images,
            depends_on=frames.depends_on,
            elements=registrations,
            shots=self._slices(group, parts, frames),
            units=cost.units,
            usd=usd(cost.units),
            notes=notes,
        )

    def _slices(self, group: Group, parts: RequestParts, frames: _Frames) -> list[ShotSlice]:
        """Where each shot lives in the request's clip, and what the cut keeps of it."""
        slices = []
        offset = 0
        last = len(group.shots) - 1
        for n, (shot, prompt, seconds) in enumerate(zip(group.shots, parts.prompts, parts.durations)):
            texts = self.renderer.inline_texts.get(shot.index, {})
            slices.append(
                ShotSlice(
                    shot_id=shot.id,
                    offset=offset,
                    rendered=seconds,
                    keep=number(shot.spec.duration),
                    prompt=prompt,
                    camera=texts.get("camera") or shot.spec.camera,
                    start_image=frames.start if n == 0 else None,
                    end_image=frames.end if n == last else None,
                    caption=texts.get("caption") or shot.spec.caption,
                )
            )
            offset += seconds
        return slices

    # the plan ------------------------------------------------------------------------------------

    def to_plan(self) -> Plan:
        units = total_units(r.units for r in self.requests)
        notes = [
            f"advisory: {p.location.path or p.location.file}: {p.message}"
            for p in self.findings.problems
            if p.severity == "advisory"
        ]
        if any(n.startswith("price is an estimate") for r in self.requests for n in r.notes):
            notes.append("some prices are estimates (older models, not in Kling's 2026 price table)")
        if any(r.speech for r in self.requests):
            notes.append("avatars spoken from text are priced on an estimate of the speech's length (plan.speech); "
                         "Kling bills the real length, known once its TTS has spoken")
        try:
            storyboard_file = self.loaded.file.resolve().relative_to(self.loaded.project_dir.resolve()).as_posix()
        except ValueError:
            storyboard_file = self.loaded.file.name
        return Plan(
            project=self.board.name,
            storyboard=storyboard_file,
            requests=self.requests,
            units=units,
            usd=usd(units),
            notes=notes,
            outside_files=_outside_files(self.loaded.project_dir, self.requests),
        )


def _outside_files(project_dir: Path, requests: list[Request]) -> list[str]:
    """Every file the requests upload that lies outside the project folder, in request order, once.

    Why the plan lists them: the plan is what a user reads before paying, and a board received from
    someone else may name any image or audio file this machine can read (validate advises too).
    """
    workspace = Workspace.at(project_dir)
    found: dict[str, None] = {}
    for request in requests:
        for named in [*request.images.values(), *request.media.values()]:
            if named not in found and workspace.outside(named) is not None:
                found[named] = None
    return list(found)


def _voice_named(board: Any, ref: str) -> str:
    element = board.references[ref].element
    if element.voice is not None:
        return f"{element.voice} (a custom voice registered once per account, 0.05 units)"
    return str(element.voice_id)


def _has_sound(parts: RequestParts, body: dict[str, Any]) -> bool:
    """Whether the clip has native audio: the legacy ``sound``, the new ``settings.audio``, or always (Turbo)."""
    if caps.MODELS[parts.model].always_sound:
        return True
    if parts.api == caps.NEW_API:
        return bool(body.get("settings", {}).get("audio") == "native")
    return bool(body.get("sound") == "on")


# --- public API ---------------------------------------------------------------------------------


def _planned(loaded: LoadedStoryboard) -> _Planning:
    planning = _Planning(loaded)
    planning.run()
    return planning


def check(loaded: LoadedStoryboard) -> list[Problem]:
    """Every Kling model rule and template error of a loaded storyboard, located, errors and advisories."""
    return _planned(loaded).findings.problems


def check_and_plan(loaded: LoadedStoryboard) -> tuple[list[Problem], Plan | None]:
    """``check`` and ``plan`` from one planning pass: every problem, and the plan when none is an
    error. Why: planning renders every prompt through Jinja (compiling each shot's text), the
    most of a long storyboard's check; ``validate`` and ``run`` need both answers."""
    planning = _planned(loaded)
    problems = planning.findings.problems
    return problems, None if planning.findings.has_errors else planning.to_plan()


def plan(loaded: LoadedStoryboard) -> Plan:
    """The exact, priced Kling requests of a storyboard; raises ``StoryboardInvalid`` on any error."""
    planning = _planned(loaded)
    if planning.findings.has_errors:
        raise StoryboardInvalid(planning.findings.problems)
    return planning.to_plan()


def render_prompts(loaded: LoadedStoryboard) -> dict[str, str]:
    """Shot id -> the final prompt Kling gets (raises ``StoryboardInvalid`` on template errors only)."""
    planning = _planned(loaded)
    if planning.findings.template_problems:
        raise StoryboardInvalid(planning.findings.template_problems)
    return {shot.id: planning.prompts.get(shot.id, "") for shot in loaded.storyboard.shots}


_PLACEHOLDER = re.compile(r"^(image|element)://sha256/([0-9a-f]{64})$")
_MEDIA_PLACEHOLDER = re.compile(r"^(audio|video)://sha256/[0-9a-f]{64}$")


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as stable JSON: image and element placeholders shown as "<image refs/x.png sha256:…>".

    Stable means the same storyboard gives byte-identical output on every run and machine: no
    timestamps, no absolute paths, keys sorted by the caller's ``json.dumps(sort_keys=True)``.
    """
    data = plan.model_dump(mode="json")
    if not data["outside_files"]:
        del data["outside_files"]  # only boards naming files from outside have them; others read as before
    for request in data["requests"]:
        if request.get("take", 1) == 1:  # take 1 reads as before takes existed (plan.takes)
            request.pop("take", None)
            request.pop("base_key", None)
        if request.get("face") is None:  # only an advanced lip sync has a face step (plan.lip_sync)
            request.pop("face", None)
        names = dict(request["images"])
        media = dict(request["media"])
        for registration in request["elements"]:  # a voiced element's digest is not its image's
            digest = registration["placeholder"].removeprefix(ELEMENT_SCHEME)
            if registration["reference_type"] == "video_refer":  # plan.video_elements
                del registration["frontal_image"], registration["refer_images"]
                if registration["video_url"].startswith(VIDEO_SCHEME):
                    media[registration["video_url"]] = registration["video_file"]
                voice = registration.get("voice_id")
                names[digest] = registration["video_file"] + (f" voice {voice}" if voice else "")
                continue
            for field_name in ("reference_type", "video_url", "video_file"):  # image elements read as before
                del registration[field_name]
            if registration.get("voice_id") and digest not in names:
                frontal = names.get(registration["frontal_image"].removeprefix(IMAGE_SCHEME), "unknown")
                custom = registration.get("custom_voice")
                names[digest] = f"{frontal} voice {custom['voice'] if custom else registration['voice_id']}"
        for part in ("body", "shots", "elements"):
            request[part] = _show_placeholders(request[part], names, media)
        if not request["media"]:
            del request["media"]  # only the kinds of plan.kinds have media; other plans read as before
        if not request["speech"]:
            del request["speech"]  # only requests spoken from text (plan.speech) have speech
    return data


def _show_placeholders(value: Any, images: dict[str, str], media: dict[str, str] | None = None) -> Any:
    """Replace image/element/audio/video placeholders by readable text naming the file and its full hash."""
    if isinstance(value, str):
        match = _PLACEHOLDER.match(value)
        if match:
            kind, digest = match.groups()
            return f"<{kind} {images.get(digest, 'unknown')} sha256:{digest}>"
        if media and _MEDIA_PLACEHOLDER.match(value):
            kind, _, digest = value.partition("://sha256/")
            return f"<{kind} {media.get(value, 'unknown')} sha256:{digest}>"
        return value
    if isinstance(value, list):
        return [_show_placeholders(v, images, media) for v in value]
    if isinstance(value, dict):
        return {k: _show_placeholders(v, images, media) for k, v in value.items()}
    return value
