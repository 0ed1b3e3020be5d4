"""Kling's rules as located problems: what each model takes, checked before anything is sent.

Why apart from the planner: these checks are the contract with Kling (kling-api.md §3-§6) and
change whenever Kling does; the planner's loop (group, render prompts, build bodies) does not.
Every rule reads the facts from ``capabilities.MODELS`` and reports through ``Findings`` at the
YAML line that decided the setting, so a message always says where to fix it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from storyboard.errors import Location, Problem
from storyboard.load.spec import PREVIOUS_FRAME
from storyboard.plan import capabilities as caps
from storyboard.plan.capabilities import IMAGE2VIDEO, MULTI_IMAGE, NEW_API, OMNI, TEXT2VIDEO
from storyboard.plan.shots import ResolvedShot, family_of, frames_of, inputs_of

if TYPE_CHECKING:
    from storyboard.load.loader import LoadedStoryboard


def seconds_text(value: float) -> str:
    return f"{value:g} s"


class Findings:
    """The problems of one planning pass, each once, and where in the YAML a setting came from."""

    def __init__(self, loaded: LoadedStoryboard) -> None:
        self.loaded = loaded
        self.board = loaded.storyboard
        self.problems: list[Problem] = []
        self.template_problems: list[Problem] = []
        self._seen: set[tuple] = set()

    def error(self, location: Location, message: str) -> None:
        self._add(Problem(location, message))

    def advise(self, location: Location, message: str) -> None:
        self._add(Problem(location, message, "advisory"))

    def template_error(self, location: Location, message: str) -> None:
        """A template problem: reported like any error, and also on its own list (``render_prompts``)."""
        problem = Problem(location, message)
        self.template_problems.append(problem)
        self._add(problem)

    def _add(self, problem: Problem) -> None:
        key = (problem.location, problem.message, problem.severity)
        if key not in self._seen:
            self._seen.add(key)
            self.problems.append(problem)

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def at(self, *path: str | int) -> Location:
        return self.loaded.locate(*path)

    def where(self, shot: ResolvedShot, name: str) -> Location:
        """The YAML that decided a shot's setting: the shot's own key, else defaults, else the shot."""
        if name in shot.spec.model_fields_set:
            return self.at("shots", shot.index, name)
        if "defaults" in self.board.model_fields_set and name in self.board.defaults.model_fields_set:
            return self.at("defaults", name)
        return self.at("shots", shot.index)


# --- one shot (kling-api.md §3-§5) ----------------------------------------------------------------


def check_shot(findings: Findings, shot: ResolvedShot) -> None:
    """Every rule that one shot must meet whatever request it ends up in."""
    _check_mode(findings, shot)
    _check_duration(findings, shot)
    _check_sound(findings, shot)
    _check_voices(findings, shot)
    _check_cfg_and_negative(findings, shot)
    _check_exclusive_controls(findings, shot)
    _check_start_frame(findings, shot)
    if not shot.spec.prompt and not shot.spec.subject and not shot.spec.action:
        findings.error(
            findings.at("shots", shot.index),
            f"shot {shot.id} says nothing for Kling to render: give it a prompt, or a subject and an action",
        )


def _check_mode(findings: Findings, shot: ResolvedShot) -> None:
    info, model, mode = shot.info, shot.model, shot.mode
    if mode not in info.modes:
        offering = ", ".join(caps.models_offering(lambda m: mode in m.modes))
        findings.error(findings.where(shot, "mode"), f"{model} has no mode {mode} (offered on {offering}): use std or pro")
    elif not info.sends_mode and mode == "4k":
        findings.error(findings.where(shot, "mode"), f"{model} has no mode 4k (offered on kling-v3, kling-v3-omni)")


def _check_duration(findings: Findings, shot: ResolvedShot) -> None:
    info, duration = shot.info, shot.spec.duration
    if duration > info.max_duration:
        longer = ", ".join(m for m in caps.models_offering(lambda m: m.max_duration >= duration))
        findings.error(
            findings.at("shots", shot.index, "duration"),
            f"shot {shot.id} is {seconds_text(duration)} but {shot.model} renders at most {info.max_duration} s: "
            f"split it into shorter shots, or use a model that renders it ({longer})",
        )


def _check_sound(findings: Findings, shot: ResolvedShot) -> None:
    info, model, mode = shot.info, shot.model, shot.mode
    if not shot.sound or info.offers_sound(mode):
        return
    if info.sound_modes:
        hint = f"{model} has native audio only in {', '.join(sorted(info.sound_modes))} mode: set mode pro or sound: false"
    else:
        hint = f"{model} has no native audio (sound is offered on {', '.join(caps.SOUND_MODELS)}): set sound: false"
    findings.error(findings.where(shot, "sound"), f"sound is not available on {model} {mode}: {hint}")


def _check_voices(findings: Findings, shot: ResolvedShot) -> None:
    info, spec, model, mode = shot.info, shot.spec, shot.model, shot.mode
    if not spec.voices:
        return
    where = findings.at("shots", shot.index, "voices")
    voice_models = ", ".join(caps.models_offering(lambda m: bool(m.voice_modes)))
    if model in VOICE_THROUGH_ELEMENTS:
        findings.error(
            where,
            f"{model} takes no voice_list (Kling's 2026 capability map: voice control is not supported on 3.0): "
            "a 3.0 voice comes through an element: give the speaking reference element: {voice_id: <voice id>}, "
            "list it in this shot's references, set sound: true and name it in the prompt (ref() in templates); "
            "or render this shot on kling-v2-6 pro with voices; or, to try Kling anyway, force the field with "
            "extra: {voice_list: [{voice_id: <voice id>}]} (sent unchanged on the legacy API, unverified; "
            "Kling's answer is shown)",
        )
        return
    if not info.voice_modes or mode not in info.voice_modes:
        findings.error(
            where,
            f"voices are offered only on {voice_models} pro image-to-video (5 or 10 s), not on {model} {mode}: "
            "remove voices or switch the shot to kling-v2-6 pro",
        )
    elif not shot.sound:
        findings.error(where, "voices need sound: set sound: true on this shot")
    if info.voice_modes and spec.start_frame is None:
        findings.error(where, "voices are offered only on image-to-video: give this shot a start_frame")


def forced_voice_list_note(findings: Findings, shot: ResolvedShot, added: list[str]) -> str | None:
    """The plan's note for a ``voice_list`` forced through ``extra`` on a 3.0 model (None: none forced there).

    Why it is sent at all: the sources disagree whether kling-v3 takes ``voice_list``
    (kling-api-2.md §3.3); the client guidance is to send a forced one unchanged and show the
    server's answer. Its price is 3.0's native audio without voice control: the 2026 table has no
    3.0 voice-control row, so that price is unverified too.
    """
    if "voice_list" not in added or shot.model not in VOICE_THROUGH_ELEMENTS or shot.api == NEW_API:
        return None
    if not shot.sound:
        findings.advise(findings.where(shot, "sound"),
                        f"shot {shot.id} forces voice_list but sound is off: Kling speaks a voice only with native "
                        "audio (set sound: true)")
    return (f"voice_list forced through extra on {shot.model}: Kling's capability map says 3.0 has no voice control "
            "(kling-api-2.md §3.3), so it is sent unchanged and Kling's answer is shown; priced as native audio "
            "without voice control (unverified: no 3.0 voice-control price exists)")


def _check_cfg_and_negative(findings: Findings, shot: ResolvedShot) -> None:
    info, model = shot.info, shot.model
    if shot.cfg_scale is not None and not info.cfg_scale:
        findings.error(
            findings.where(shot, "cfg_scale"),
            f"cfg_scale is not supported by {model}: remove it (it is offered on "
            f"{', '.join(caps.models_offering(lambda m: m.cfg_scale))})",
        )
    negative = shot.negative_prompt
    if negative is not None and len(negative) > caps.PROMPT_MAX:
        findings.error(
            findings.where(shot, "negative_prompt"),
            f"negative_prompt is {len(negative)} characters; Kling takes at most {caps.PROMPT_MAX}: shorten it",
        )
    if negative and info.omni:
        findings.advise(
            findings.where(shot, "negative_prompt"),
            f"{model} has no negative_prompt field; it is not sent: write what to avoid into the prompt instead",
        )


def _check_exclusive_controls(findings: Findings, shot: ResolvedShot) -> None:
    exclusive = [name for name in ("end_frame", "camera_control", "motion_brush") if getattr(shot.spec, name)]
    if len(exclusive) > 1:
        findings.error(
            findings.at("shots", shot.index, exclusive[1]),
            f"{' and '.join(exclusive)} cannot be used together (Kling takes one of end frame, camera_control, "
            "motion brush per request): keep one",
        )
    if shot.spec.motion_brush and shot.spec.start_frame is None:
        findings.error(findings.at("shots", shot.index, "motion_brush"), "motion_brush needs a start_frame: add one")


def _check_start_frame(findings: Findings, shot: ResolvedShot) -> None:
    if shot.spec.start_frame != PREVIOUS_FRAME:
        return
    if shot.index == 0:
        findings.error(
            findings.at("shots", 0, "start_frame"),
            "start_frame previous chains to the shot before, but this is the first shot: use an image or a reference",
        )
    elif IMAGE2VIDEO not in shot.info.families and OMNI not in shot.info.families:
        findings.error(
            findings.at("shots", shot.index, "start_frame"),
            f"start_frame previous needs image-to-video, which {shot.model} does not offer",
        )


# --- several shots in one request -------------------------------------------------------------------


def input_limit_problem(findings: Findings, shots: list[ResolvedShot]) -> str | None:
    """Kling's count limits on images and elements for these shots in one request, or None."""
    info = shots[0].info
    family = family_of(findings.board, shots)
    inputs = inputs_of(findings.board, shots, family)
    has_start, has_end = frames_of(shots)
    elements = len(inputs.element_refs)
    if family == IMAGE2VIDEO and elements > info.max_elements:
        return f"{info.name} image-to-video takes at most {info.max_elements} elements, these shots use {elements}"
    if family == OMNI:
        return _omni_limit_problem(info.name, len(inputs.image_refs), elements, has_start, has_end)
    if family == MULTI_IMAGE and len(inputs.image_refs) > caps.MULTI_IMAGE_MAX:
        return f"kling-v1-6 multi-image-to-video takes at most {caps.MULTI_IMAGE_MAX} references, these shots use {len(inputs.image_refs)}"
    return None


def _omni_limit_problem(model: str, images: int, elements: int, has_start: bool, has_end: bool) -> str | None:
    total = images + elements + has_start + has_end
    if total > caps.OMNI_MAX_INPUTS:
        return f"{model} takes at most {caps.OMNI_MAX_INPUTS} images and elements together, these shots use {total}"
    if has_start and elements > caps.OMNI_MAX_ELEMENTS_WITH_FRAME:
        return f"{model} takes at most {caps.OMNI_MAX_ELEMENTS_WITH_FRAME} elements with a first frame, these shots use {elements}"
    if model == "kling-video-o1" and has_start and has_end and elements:
        return "kling-video-o1 takes no elements with a first and an end frame"
    if model == "kling-video-o1" and (has_start or has_end) and images + has_start + has_end > 2:
        return "kling-video-o1 cannot set frames when it gets more than 2 images"
    return None


def check_explicit_group(findings: Findings, g: int, members: list[ResolvedShot]) -> bool:
    """Whether the user's group ``g`` can be one multi-shot request; reports every reason it cannot."""
    where = findings.at("groups", g)
    first = members[0]
    if not first.info.multi_shot:
        findings.error(
            where,
            f"group {g + 1} is a multi-shot request, which {first.model} does not offer: use "
            f"{' or '.join(caps.MULTI_SHOT_MODELS)}, or remove the group",
        )
        return False
    ok = True
    if len(members) > caps.MULTI_SHOT_MAX_SHOTS:
        findings.error(
            where,
            f"group {g + 1} has {len(members)} shots; a multi-shot request holds at most {caps.MULTI_SHOT_MAX_SHOTS}: split it",
        )
        ok = False
    total = sum(s.seconds for s in members)
    if total > caps.MULTI_SHOT_MAX_SECONDS:
        findings.error(
            where,
            f"group {g + 1} renders {total} s; a multi-shot request renders at most {caps.MULTI_SHOT_MAX_SECONDS} s: split it",
        )
        ok = False
    for shot in members[1:]:
        differing = first.differing_settings(shot)
        if differing:
            findings.error(
                where,
                f"group {g + 1}: shot {shot.id} differs from shot {first.id} in {', '.join(differing)}; "
                "one multi-shot request takes these settings once: make them equal or split the group",
            )
            ok = False
    ok = _check_group_members(findings, g, members) and ok
    problem = input_limit_problem(findings, members)
    if problem:
        findings.error(where, f"group {g + 1}: {problem}: split the group or use fewer references")
        ok = False
    return ok


def _check_group_members(findings: Findings, g: int, members: list[ResolvedShot]) -> bool:
    """Frames only at a multi-shot request's ends; no per-request controls inside one."""
    ok = True
    for position, shot in enumerate(members):
        if shot.spec.start_frame and position > 0:
            findings.error(
                findings.at("shots", shot.index, "start_frame"),
                f"shot {shot.id} has a start frame but is not the first shot of group {g + 1}: only the first shot "
                "of a multi-shot request can: split the group here",
            )
            ok = False
        if shot.spec.end_frame and position < len(members) - 1:
            findings.error(
                findings.at("shots", shot.index, "end_frame"),
                f"shot {shot.id} has an end frame but is not the last shot of group {g + 1}: only the last shot "
                "of a multi-shot request can: split the group here",
            )
            ok = False
        for name in ("camera_control", "motion_brush", "voices"):
            if getattr(shot.spec, name):
                findings.error(
                    findings.at("shots", shot.index, name),
                    f"{name} cannot be used in a multi-shot request (group {g + 1}): remove it or the group",
                )
                ok = False
    return ok


# --- one request --------------------------------------------------------------------------------------


def check_request_shape(
    findings: Findings, shots: list[ResolvedShot], family: str, text_refs: list[str], explicit: bool
) -> None:
    """The request's family and mode exist on its model, its inputs fit, and text-only references are named."""
    first = shots[0]
    info, model, mode = first.info, first.model, first.mode
    if family not in info.families:
        hint = (
            f" (it is image-to-video only): give shot {first.id} a start_frame, or use another model"
            if family == TEXT2VIDEO
            else ""
        )
        findings.error(findings.where(first, "model"), f"{model} does not offer {caps.FAMILY_WORDS[family]}{hint}")
    if mode == "4k" and info.four_k_families and family not in info.four_k_families:
        findings.error(findings.where(first, "mode"), f"mode 4k is not offered on {model} {caps.FAMILY_WORDS[family]}")
    problem = input_limit_problem(findings, shots)
    if problem and not explicit:
        findings.error(findings.at("shots", first.index, "references"), f"{problem}: use fewer references")
    for ref in text_refs:
        holder = next(s for s in shots if ref in s.spec.references)
        findings.advise(
            findings.at("shots", holder.index, "references"),
            f"{model} {caps.FAMILY_WORDS[family]} cannot take reference images: reference {ref} is used as text only "
            f"(its description); use kling-v3-omni to send the image",
        )


def check_end_frame(findings: Findings, shot: ResolvedShot, family: str) -> None:
    """Only some modes, lengths and sound settings take an end frame (``shot`` holds it)."""
    info = shot.info
    problems = []
    if family != OMNI:
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
        findings.error(
            findings.at("shots", shot.index, "end_frame"),
            f"{info.name} takes an end frame {' and '.join(problems)}: change the shot or remove the end frame",
        )


def check_end_frame_has_start(findings: Findings, shots: list[ResolvedShot]) -> None:
    """Kling no longer takes end-frame-only requests."""
    if shots[0].spec.start_frame:
        return
    findings.error(
        findings.at("shots", shots[-1].index, "end_frame"),
        "an end frame needs a start frame: give "
        + (f"shot {shots[0].id} (the first of its request)" if len(shots) > 1 else "this shot")
        + " a start_frame too (Kling no longer takes end-frame-only requests)",
    )


def check_camera_control(findings: Findings, shot: ResolvedShot, family: str, seconds: int) -> None:
    control = shot.spec.camera_control
    assert control is not None
    if not shot.info.camera_rule(family, shot.mode, seconds, control.type):
        offered = "; ".join(r.describe(name) for name, m in caps.MODELS.items() for r in m.camera_control)
        findings.error(
            findings.at("shots", shot.index, "camera_control"),
            f"camera_control ({control.type}) is not offered on {shot.model} {caps.FAMILY_WORDS[family]} "
            f"{shot.mode} {seconds} s; Kling offers it only on {offered}: describe the move in camera: words instead",
        )


def check_motion_brush(findings: Findings, shot: ResolvedShot, seconds: int) -> None:
    info = shot.info
    if shot.mode in info.motion_brush_modes and seconds in info.motion_brush_durations:
        return
    offered = "; ".join(
        f"{name} image-to-video {'/'.join(sorted(m.motion_brush_modes))} {'/'.join(map(str, m.motion_brush_durations))} s"
        for name, m in caps.MODELS.items()
        if m.motion_brush_modes
    )
    findings.error(
        findings.at("shots", shot.index, "motion_brush"),
        f"motion_brush is not offered on {shot.model} {shot.mode} {seconds} s; Kling offers it only on {offered}",
    )


def check_voices_in_request(findings: Findings, shot: ResolvedShot, prompt: str, has_elements: bool) -> bool:
    """Whether Kling will speak with the shot's voices (the prompt names one); reports what stops it."""
    where = findings.at("shots", shot.index, "voices")
    if shot.api == NEW_API:  # the new API names a voice part by its label (plan.bodies_standard.voice_parts)
        named = [n for n in range(1, len(shot.spec.voices) + 1)
                 if f"@voice_{n}" in prompt or f"<<<voice_{n}>>>" in prompt]
        if len(named) < len(shot.spec.voices):
            missing = next(n for n in range(1, len(shot.spec.voices) + 1) if n not in named)
            findings.error(
                where,
                f"on the new API each voice is a part the prompt must name: the prompt never says @voice_{missing} "
                f"(voice({missing}) in templates): name it, or remove that voice",
            )
        return bool(named)
    voice = "<<<voice_" in prompt
    if not voice:
        findings.advise(
            where,
            "voices are listed but the prompt never says <<<voice_1>>>: Kling only speaks with a voice the prompt names",
        )
    if has_elements:
        findings.error(
            where, "voices and elements cannot be used in one request: remove the voices or the element references"
        )
    return voice


def advise_ignored_mode(findings: Findings, shot: ResolvedShot) -> None:
    """kling-v2-master and kling-v2-1-master take no mode: say what they render instead."""
    info = shot.info
    if not info.sends_mode and shot.mode in ("std", "pro") and "mode" in shot.spec.model_fields_set:
        findings.advise(
            findings.where(shot, "mode"),
            f"{shot.model} takes no mode: it renders {caps.output_height(shot.model, shot.mode)}p whatever the mode",
        )


def prompt_too_long(shot: ResolvedShot, prompt: str, multi: bool) -> str | None:
    """Why Kling refuses this prompt's length (None: it fits)."""
    if multi and len(prompt) > caps.MULTI_SHOT_PROMPT_MAX:
        return (
            f"shot {shot.id}'s prompt is {len(prompt)} characters; inside a multi-shot request Kling takes at most "
            f"{caps.MULTI_SHOT_PROMPT_MAX}: shorten it, or take the shot out of the group"
        )
    if not multi and len(prompt) > caps.PROMPT_MAX:
        return f"shot {shot.id}'s prompt is {len(prompt)} characters; Kling takes at most {caps.PROMPT_MAX}: shorten it"
    return None


def prompt_location(findings: Findings, shot: ResolvedShot) -> Location:
    return findings.at("shots", shot.index, "prompt") if shot.spec.prompt else findings.at("shots", shot.index)


VOICE_THROUGH_ELEMENTS = ("kling-v3", "kling-v3-turbo", "kling-v3-omni", "kling-video-o1")
"""Models where a voice comes only through an element with a bound voice (kling-api-2.md §3.3, position A)."""


def check_voiced_element(findings: Findings, shot: ResolvedShot, ref: str, prompt: str, token: str) -> bool:
    """Whether the element ``ref`` can speak in its bound voice in this shot's request; says what stops it.

    Kling speaks in an element's voice only with native audio on and the element named in the
    prompt (kling-api-2.md §3.3); a silent request still shows the element, so these are advisories.
    """
    element = findings.board.references[ref].element
    if element is None or (element.voice_id is None and element.voice is None):
        return False
    where = findings.at("references", ref, "element", "voice_id")
    if not shot.info.offers_sound(shot.mode):
        findings.advise(
            where,
            f"reference {ref}'s voice is not heard in shot {shot.id}: {shot.model} {shot.mode} renders no native audio "
            "(use kling-v3 or kling-v3-omni with sound: true)",
        )
        return False
    if not shot.sound and not shot.info.always_sound:
        findings.advise(
            findings.where(shot, "sound"),
            f"shot {shot.id} uses reference {ref}, whose element speaks in voice {element.voice_id or element.voice}, "
            "but sound is off: "
            "set sound: true to hear it",
        )
        return False
    if token not in prompt:
        findings.advise(
            findings.at("shots", shot.index, "references"),
            f"shot {shot.id}'s prompt never names {token} (reference {ref}): Kling speaks in an element's voice "
            "only when the prompt names the element (ref() in templates)",
        )
        return False
    return True


def check_element(findings: Findings, ref: str) -> None:
    """A reference registered as a new Kling element needs extra views and a short description."""
    reference = findings.board.references[ref]
    element = reference.element
    assert element is not None
    if element.voice is not None and element.voice not in findings.board.voices:
        known = ", ".join(findings.board.voices) or "none"
        findings.error(
            findings.at("references", ref, "element", "voice"),
            f"reference {ref}'s element names voice {element.voice!r}, which is not among the storyboard's voices "
            f"({known}): add it under voices: with the url of its recording, or use voice_id for a Kling voice",
        )
    if element.element_id is not None:
        return
    if not element.extra_images and reference.video is None:  # a video element is made from its clip alone
        findings.error(
            findings.at("references", ref, "element"),
            f"reference {ref} becomes a Kling element, which needs 1-3 more views of the subject: "
            "add element.extra_images, or give an existing element_id",
        )
    description = element.description or reference.description or ref
    if len(description) > 100:
        findings.error(
            findings.at("references", ref, "description"),
            f"reference {ref} is registered as a Kling element, whose description takes at most 100 characters "
            f"(this one has {len(description)}): set a shorter element.description",
        )


# --- text Kling can read -----------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def unpaired_surrogate(text: str) -> str | None:
    """The first lone UTF-16 surrogate in a text, as ``\\udxxx`` (None: the text is valid Unicode).

    Why this matters: a YAML escape such as ``"\\ud83d"`` gives Python a string no UTF-8 encoder
    accepts, so the request body could not be sent to Kling (nor hashed into a content key).
    """
    match = _SURROGATE.search(text)
    return f"\\u{ord(match.group()):04x}" if match else None


def check_text(findings: Findings, location: Location, what: str, text: str | None) -> None:
    """A text sent to Kling or written into the plan must be valid Unicode."""
    surrogate = unpaired_surrogate(text) if text else None
    if surrogate:
        findings.error(
            location,
            f"{what} contains an unpaired surrogate ({surrogate}); Kling takes UTF-8 text only: write the "
            "character itself, or its \\U0001xxxx escape, instead of UTF-16 surrogate escapes",
        )


def strings_in(value: Any) -> list[str]:
    """Every string inside a JSON-like value (for the last-resort Unicode check of a request)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings_in(v)]
    return []
