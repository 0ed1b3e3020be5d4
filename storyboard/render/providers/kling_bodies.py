"""A planned body made concrete for sending: the placeholders of both Kling wire forms resolved.

Why one resolver for both wires: the plan's bodies carry ``image://``, ``frame://`` and
``element://`` placeholders (and ``audio://``, ``video://``, ``clip://`` for the shot kinds) so they can be priced and shown before any file is read or element
registered. Both APIs take raw base64 images (no ``data:`` prefix, kling-api.md §2, kling-api-2.md
§7.3); they differ only in how an element id is spelled (legacy an int64, new-standard a string),
so that one difference is the caller's ``element_as``. Nothing else changes: the body sent is the
body that was priced and shown.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storyboard.errors import InternalError, Rejected
from storyboard.plan import (
    AUDIO_SCHEME,
    CLIP_SCHEME,
    ELEMENT_SCHEME,
    FACE_SCHEME,
    FRAME_SCHEME,
    IMAGE_SCHEME,
    SPEECH_SCHEME,
    VIDEO_SCHEME,
)
from storyboard.plan.lip_sync import SPEECH_END_SCHEME
from storyboard.render.providers.base import Job


def concrete_body(job: Job, element_as: Callable[[int], Any]) -> dict[str, Any]:
    """A deep copy of ``job.request.body`` with every placeholder replaced by what Kling takes."""
    cache: dict[str, str] = {}

    def concrete(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: concrete(v) for k, v in value.items()}
        if isinstance(value, list):
            return [concrete(v) for v in value]
        if isinstance(value, str):
            if value.startswith((IMAGE_SCHEME, FRAME_SCHEME)):
                if value not in cache:
                    path = job.images.get(value)
                    if path is None:
                        raise InternalError(f"request {job.request.id}: no file for placeholder {value}")
                    cache[value] = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                return cache[value]
            if value.startswith(AUDIO_SCHEME):  # avatar / lip sync audio: base64, at most 5 MB (plan.kinds)
                if value not in cache:
                    audio = job.images.get(value)
                    if audio is None:
                        raise InternalError(f"request {job.request.id}: no file for placeholder {value}")
                    cache[value] = base64.b64encode(Path(audio).read_bytes()).decode("ascii")
                return cache[value]
            if value.startswith((VIDEO_SCHEME, CLIP_SCHEME)):
                if value in job.urls:
                    return job.urls[value]
                raise Rejected(
                    message=f"{job.request.id} sends a video Kling can only fetch by URL, and it has none; "
                    "nothing was sent.",
                    hint="add url: (a public http(s) link to the same file) beside the video in the storyboard, "
                    "or render the source shot on Kling first; or use --provider preview",
                    details={"during": "create"},
                )
            if value.startswith(SPEECH_END_SCHEME):  # advanced lip sync from text: the speech's length in ms
                if value not in job.urls:
                    raise InternalError(f"request {job.request.id}: the speech's length did not fill {value}")
                return int(job.urls[value])
            if value.startswith(SPEECH_SCHEME):  # an avatar from text: the audio id TTS gave (engine._speech)
                if value not in job.audio_ids:
                    raise InternalError(f"request {job.request.id}: speech {value} was not synthesized")
                return job.audio_ids[value]
            if value.startswith(FACE_SCHEME):  # advanced lip sync: the face step's session and face id
                if value not in job.urls:
                    raise InternalError(f"request {job.request.id}: the face step did not fill {value}")
                return job.urls[value]
            if value.startswith(ELEMENT_SCHEME):
                if value not in job.elements:
                    raise InternalError(f"request {job.request.id}: element {value} is not registered")
                return element_as(int(job.elements[value]))
        return value

    body = concrete(job.request.body)
    if not isinstance(body, dict):
        raise InternalError(f"request {job.request.id}: its body is not an object")
    return body
