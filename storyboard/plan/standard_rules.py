"""The new-standard API's own rules, checked at ``validate`` at the line that sets them.

Why here and not left to Kling: the live new-standard service is loose (kling-api-2.md §7.3):
it ignores unknown fields and settings and does not range-check ``duration`` (0, 1 and 20 are
accepted, then billed or failed). So every limit of ``capabilities.NEW_API_MODELS`` is enforced
before anything is sent, and what the new API cannot express is refused, not silently dropped.
"""

from __future__ import annotations

from storyboard.plan import capabilities as caps
from storyboard.plan.capabilities import IMAGE2VIDEO, LEGACY_API, NEW_API, OMNI
from storyboard.plan.rules import Findings, seconds_text
from storyboard.plan.shots import ResolvedShot, family_of


def check_api(findings: Findings, shot: ResolvedShot) -> None:
    """The shot's API exists for its model, and the new API can express everything the shot asks."""
    model = shot.model
    if model in caps.NEW_API_ONLY and shot.requested_api == LEGACY_API:
        findings.error(
            findings.where(shot, "api"),
            f"{model} exists only on Kling's new-standard API: remove api: legacy (or set api: new)",
        )
        return
    if shot.api != NEW_API:
        return
    standard = caps.NEW_API_MODELS.get(model)
    if standard is None:
        offered = ", ".join(caps.NEW_API_MODELS)
        findings.error(
            findings.where(shot, "api"),
            f"{model} is not on Kling's new-standard API (it offers {offered}): set api: legacy or change the model",
        )
        return
    spec = shot.spec
    family = family_of(findings.board, [shot])
    if family not in standard.families:
        findings.error(
            findings.where(shot, "model"),
            f"{model} has no {caps.FAMILY_WORDS[family]} on the new API: set api: legacy or change the model",
        )
    if shot.mode not in standard.modes:
        findings.error(
            findings.where(shot, "mode"),
            f"{model} on the new API renders {', '.join(caps.NEW_API_RESOLUTIONS[m] for m in standard.modes)} only "
            f"(mode {', '.join(standard.modes)}): change the mode",
        )
    if shot.seconds > max(standard.durations):
        findings.error(
            findings.at("shots", shot.index, "duration"),
            f"shot {shot.id} is {seconds_text(spec.duration)} but {model} on the new API renders "
            f"{caps.describe_durations(standard.durations)}: split it into shorter shots",
        )
    if shot.info.always_sound and "sound" in _set_fields(findings, shot) and not shot.sound:
        findings.error(
            findings.where(shot, "sound"),
            f"{model} always renders native audio (it has no audio switch): remove sound: false",
        )
    if spec.end_frame and family not in standard.last_frame_families:
        findings.error(
            findings.at("shots", shot.index, "end_frame"),
            f"{model} on the new API takes a first frame only (no end frame): remove the end frame",
        )
    if not standard.element_families:
        for ref in spec.references:
            reference = findings.board.references.get(ref)
            if reference is not None and reference.element is not None:
                findings.error(
                    findings.at("shots", shot.index, "references"),
                    f"{model} takes no elements, but reference {ref} is an element: use another model, "
                    f"or drop element from reference {ref}",
                )
    for name, what in (("camera_control", "camera_control"), ("motion_brush", "motion_brush")):
        if getattr(spec, name):
            findings.error(
                findings.at("shots", shot.index, name),
                f"the new API has no {what}: remove it (describe a camera move in camera: words) or set api: legacy",
            )
    if spec.voices and model not in VOICE_PART_MODELS:
        findings.error(
            findings.at("shots", shot.index, "voices"),
            f"the new API takes voices (voice parts) on kling-v2-6 image-to-video only, not {model}: "
            "remove voices, use kling-v2-6 pro with a start_frame, or set api: legacy",
        )
    if shot.cfg_scale is not None:
        findings.error(findings.where(shot, "cfg_scale"), "the new API has no cfg_scale: remove it or set api: legacy")
    if shot.negative_prompt:
        findings.advise(
            findings.where(shot, "negative_prompt"),
            "the new API has no negative_prompt: it is sent inside the prompt as 'Avoid: ...'",
        )
    if family == OMNI and not standard.reference_images and spec.references:
        findings.error(findings.at("shots", shot.index, "references"), f"{model} takes no reference images")
    if family == IMAGE2VIDEO and spec.start_frame is None:
        findings.error(findings.at("shots", shot.index), "image-to-video on the new API needs a start_frame")


VOICE_PART_MODELS = frozenset({"kling-v2-6"})
"""Models whose new-standard image-to-video takes ``voice`` parts (kling-api-2.md §7.3: /image-to-video/kling-2.6);
the rest of the voice rules (pro, 5 or 10 s, sound on, a start frame) are the legacy ones (``rules``)."""


def check_inline_words(findings: Findings, shot: ResolvedShot, prompt: str) -> None:
    """A shot of an inline multi-shot prompt cannot contain ';' (it ends a shot in ``shot n, m, words;``)."""
    if ";" in prompt:
        findings.error(
            findings.at("shots", shot.index, "prompt") if shot.spec.prompt else findings.at("shots", shot.index),
            f"shot {shot.id}'s prompt contains ';', which ends a shot in the new API's inline multi-shot syntax: "
            "use ',' or '.' instead",
        )


def _set_fields(findings: Findings, shot: ResolvedShot) -> set[str]:
    fields = set(shot.spec.model_fields_set)
    if "defaults" in findings.board.model_fields_set:
        fields |= findings.board.defaults.model_fields_set
    return fields
