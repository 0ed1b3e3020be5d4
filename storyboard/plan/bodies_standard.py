"""Request bodies for Kling's new-standard API (kling-api-2.md §7): the second wire form.

Why beside the legacy builders and over the same ``RequestParts``: the planner decides a
request once (model, prompts, seconds, frames, references, elements); only the spelling
differs. The new API puts the model in the path, takes ``prompt`` (text-to-video) or typed
``contents[]`` parts, and ``settings{resolution, aspect_ratio, duration, audio, multi_shot}``;
``options.external_task_id`` is added at send time like the legacy ``external_task_id``.

Only documented fields are written (the live service silently ignores unknown ones):

* no ``negative_prompt`` exists: negatives are appended to the prompt ("Avoid: ...");
* multi-shot is the inline syntax ``shot n, m, words;`` built from the per-shot prompts the
  multi-shot template rendered; ``settings.multi_shot`` defaults to true on 3.0 and 3.0 Omni, so
  every request there says ``true`` or ``false`` explicitly; Turbo has no such setting;
* ``duration`` is an int, ``resolution`` a lower-case string, element ids strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from storyboard.plan import capabilities as caps
from storyboard.plan.bodies import RequestParts
from storyboard.plan.capabilities import IMAGE2VIDEO, OMNI, TEXT2VIDEO, StandardModel


def inline_shots(prompts: list[str], durations: list[int]) -> str:
    """The new API's explicit multi-shot prompt: ``shot 1, 3, words; shot 2, 4, words;``."""
    return " ".join(f"shot {n}, {seconds}, {text};" for n, (text, seconds) in enumerate(zip(prompts, durations), 1))


_LEGACY_TOKEN = re.compile(r"<<<((?:image|element|video|voice)_[0-9]+)>>>")
"""The legacy ``<<<image_1>>>`` tokens; the new API names a labelled part ``@image_1`` (§2.2)."""


def standard_prompt(parts: RequestParts) -> str:
    """The one prompt text a new-API request sends (multi-shot inline; negatives moved in)."""
    if parts.intelligence:  # a plain prompt with settings.multi_shot true: Kling splits it (§6.2)
        text = parts.intelligence_prompt
    elif parts.multi:
        text = inline_shots(parts.prompts, parts.durations)
    else:
        text = parts.prompts[0]
    if parts.negative_prompt:
        text = f"{text} Avoid: {parts.negative_prompt}."
    return _LEGACY_TOKEN.sub(r"@\1", text)


def build_standard_body(parts: RequestParts) -> dict[str, Any]:
    """The new-standard body of a request (its endpoint is ``standard_endpoint``)."""
    return STANDARD_BODY_BUILDERS[parts.family](parts, caps.NEW_API_MODELS[parts.model])


def standard_endpoint(parts: RequestParts) -> str:
    return caps.NEW_API_MODELS[parts.model].endpoint(parts.family)


def _settings(parts: RequestParts, model: StandardModel, *, aspect_ratio: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {"resolution": caps.NEW_API_RESOLUTIONS.get(parts.mode or "std", "720p")}
    if aspect_ratio:
        settings["aspect_ratio"] = parts.aspect_ratio
    settings["duration"] = parts.total_seconds
    if model.audio:
        settings["audio"] = "native" if parts.sound else "off"
    if model.multi_shot_setting:
        settings["multi_shot"] = parts.multi
    return settings


def _options(parts: RequestParts) -> dict[str, Any]:
    return {"watermark_info": {"enabled": True}} if parts.watermark else {}


def _finish(body: dict[str, Any], parts: RequestParts) -> dict[str, Any]:
    options = _options(parts)
    if options:
        body["options"] = options
    return body


def text2video_body(parts: RequestParts, model: StandardModel) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": standard_prompt(parts), "settings": _settings(parts, model, aspect_ratio=True)}
    return _finish(body, parts)


def _element_parts(parts: RequestParts) -> list[dict[str, Any]]:
    return [{"type": "element", "element_id": str(e["element_id"]), "id": f"element_{n}"}
            for n, e in enumerate(parts.elements, 1)]


def image2video_body(parts: RequestParts, model: StandardModel) -> dict[str, Any]:
    """Image-to-video takes no ``aspect_ratio``: the clip follows its first frame."""
    contents: list[dict[str, Any]] = [{"type": "prompt", "text": standard_prompt(parts)}]
    if parts.start_image:
        contents.append({"type": "first_frame", "url": parts.start_image})
    if parts.end_image:
        contents.append({"type": "last_frame", "url": parts.end_image})
    contents.extend(_element_parts(parts))
    contents.extend(voice_parts(parts))
    body: dict[str, Any] = {"contents": contents, "settings": _settings(parts, model, aspect_ratio=False)}
    return _finish(body, parts)


def voice_parts(parts: RequestParts) -> list[dict[str, Any]]:
    """kling-2.6 image-to-video's ``voice`` parts (§7.3: at most 2, audio on), labelled ``voice_N``: the
    prompt names each as ``@voice_N`` (``voice(n)`` in templates), as legacy names ``<<<voice_N>>>``."""
    return [{"type": "voice", "voice_id": voice_id, "id": f"voice_{n}"} for n, voice_id in enumerate(parts.voices, 1)]


def omni_body(parts: RequestParts, model: StandardModel) -> dict[str, Any]:
    """Omni: reference images as ``refer_image`` parts labelled image_N; a first frame sets the ratio."""
    contents: list[dict[str, Any]] = [{"type": "prompt", "text": standard_prompt(parts)}]
    contents.extend({"type": "refer_image", "url": image, "id": f"image_{n}"}
                    for n, image in enumerate(parts.reference_images, 1))
    if parts.start_image:
        contents.append({"type": "first_frame", "url": parts.start_image})
    if parts.end_image:
        contents.append({"type": "last_frame", "url": parts.end_image})
    contents.extend(_element_parts(parts))
    edit = parts.video is not None and parts.video.get("refer_type") == "base"
    if parts.video is not None:  # a reference or edited video (kling-api-2.md §2.2)
        contents.append({"type": "base_video" if edit else "feature_video", "url": parts.video["video_url"],
                         "id": "video_1"})
    settings = _settings(parts, model, aspect_ratio=not parts.start_image and not edit)
    if parts.video is not None:
        settings["audio"] = "original" if parts.video.get("keep_original_sound") == "yes" else "off"
        if edit:
            del settings["duration"]  # an edit keeps the clip's length (the legacy rule; §11 question 4)
    body: dict[str, Any] = {"contents": contents, "settings": settings}
    return _finish(body, parts)


STANDARD_BODY_BUILDERS: dict[str, Callable[[RequestParts, StandardModel], dict[str, Any]]] = {
    TEXT2VIDEO: text2video_body,
    IMAGE2VIDEO: image2video_body,
    OMNI: omni_body,
}
