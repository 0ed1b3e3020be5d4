"""Reading Kling's view of an element: the voice bound to it, in both wire forms.

Why its own module: Kling describes an element in two shapes (kling-api-2.md §3.1). The legacy
query (``GET /v1/general/advanced-custom-elements/{id}``) has ``element_voice_info{voice_id,
voice_name, trial_url, owned_by}``; the new-standard views list the element's parts, the voice as
``{type: "voice", role: "refer", url, id, name, owned_by}``, in ``references[]`` (the query
schema, image roles ``frontal``/``reference``) or ``materials[]`` (the callback schema, roles
``frontal``/``refer``). The sources disagree on the array's name and the roles, so both are read.
"""

from __future__ import annotations

from typing import Any

from storyboard.render.journal import ElementVoice


def bound_voice(element: dict[str, Any]) -> ElementVoice | None:
    """The voice an element view says is bound to the element (None: it has none)."""
    info = element.get("element_voice_info")
    if isinstance(info, dict) and info.get("voice_id"):
        return ElementVoice(str(info["voice_id"]), _text(info.get("voice_name")), _text(info.get("trial_url")),
                            _text(info.get("owned_by")))
    for array in ("references", "materials"):
        for part in element.get(array) or []:
            if isinstance(part, dict) and part.get("type") == "voice" and (part.get("id") or part.get("voice_id")):
                return ElementVoice(str(part.get("id") or part["voice_id"]), _text(part.get("name")),
                                    _text(part.get("url")), _text(part.get("owned_by")))
    return None


def cloned_voice(element: dict[str, Any], bound_voice_id: str | None) -> ElementVoice | None:
    """The voice Kling cloned from the element's clip: a bound voice that is not the one the request bound."""
    voice = bound_voice(element)
    if voice is None or (bound_voice_id is not None and voice.voice_id == bound_voice_id):
        return None
    return voice


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
