"""Request bodies: what one request says, written out as the JSON Kling's create endpoint takes.

Why two steps: ``RequestParts`` is what the planner decided (model, prompts, seconds, frames,
images, elements, controls), independent of how Kling spells it; a body builder writes it in one
wire form. Today that is the legacy ``/v1/videos/<family>`` form, one builder per family
(kling-api.md §4). Kling's newer ``settings{...}`` form (kling-api-2.md) would be a second set of
builders over the same parts, without touching grouping, prompts or prices.

Key order matters: a plan's JSON shows bodies as built, so the builders always write fields in
the same order (model, mode, prompts, duration, family fields, then controls and flags).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.load.spec import CameraControl, MotionBrush
from storyboard.plan import ELEMENT_SCHEME, IMAGE_SCHEME, VOICE_SCHEME, ElementRegistration, VoiceRegistration
from storyboard.plan.capabilities import IMAGE2VIDEO, MULTI_IMAGE, OMNI, TEXT2VIDEO
from storyboard.plan.video_elements import video_element_registration

if TYPE_CHECKING:
    from storyboard.load.loader import LoadedStoryboard
    from storyboard.load.spec import Storyboard


def number(value: float) -> int | float:
    """A whole float as an int (``5.0`` -> ``5``), so bodies carry the numbers users wrote."""
    return int(value) if float(value).is_integer() else value


@dataclass
class ImagePlaceholders:
    """Project images a request sends, as ``image://sha256/<hex>`` placeholders, in first-use order."""

    loaded: LoadedStoryboard
    images: dict[str, str] = field(default_factory=dict)
    """sha256 hex -> the project-relative path, as ``Request.images`` holds them."""

    def of(self, relative: str) -> str:
        digest = self.loaded.image_digest(relative)
        self.images.setdefault(digest, Path(relative).as_posix())
        return IMAGE_SCHEME + digest


def element_entry(
    board: Storyboard, ref: str, images: ImagePlaceholders, registrations: list[ElementRegistration]
) -> dict[str, Any]:
    """The ``element_list`` entry of a reference: its existing id, or a placeholder to register first."""
    reference = board.references[ref]
    element = reference.element
    assert element is not None
    if element.element_id is not None:
        return {"element_id": element.element_id}
    custom_voice = custom_voice_of(board, element.voice)
    voice_id = custom_voice.placeholder if custom_voice else element.voice_id
    if reference.video is not None:  # a video-character element (plan.video_elements)
        registration = video_element_registration(images.loaded, ref, voice_id, custom_voice)
        registrations.append(registration)
        return {"element_id": registration.placeholder}
    assert reference.image is not None
    frontal = images.of(reference.image)
    placeholder = ELEMENT_SCHEME + element_digest(frontal[len(IMAGE_SCHEME) :], voice_id)
    description = element.description or reference.description or ref
    registrations.append(
        ElementRegistration(
            placeholder=placeholder,
            reference=ref,
            name=(element.name or ref)[:20],
            description=description[:100],
            frontal_image=frontal,
            refer_images=[images.of(extra) for extra in element.extra_images],
            tags=list(element.tags),
            voice_id=voice_id,
            custom_voice=custom_voice,
        )
    )
    return {"element_id": placeholder}


def custom_voice_of(board: Storyboard, voice: str | None) -> VoiceRegistration | None:
    """The registration of one of the storyboard's ``voices`` (None: no such voice, or none asked).

    Its digest hashes the recording's URL and the name: the same recording under the same name is
    one voice on the account, whatever the storyboard calls it.
    """
    if voice is None or voice not in board.voices:
        return None
    spec = board.voices[voice]
    name = (spec.name or voice)[:20]
    digest = hashlib.sha256(f"{spec.url}\nname:{name}".encode()).hexdigest()
    return VoiceRegistration(placeholder=VOICE_SCHEME + digest, voice=voice, name=name, url=spec.url)


def element_digest(frontal_digest: str, voice_id: str | None) -> str:
    """The identity of an element to register: its frontal image, and the voice bound to it if any.

    Why the voice is part of it: the same face with another voice is another Kling element, so
    the journal (keyed by provider + digest) must register it once more, not reuse the silent one.
    Without a voice the digest stays the image's own, so elements journaled before voices keep
    their ids.
    """
    if voice_id is None:
        return frontal_digest
    return hashlib.sha256(f"{frontal_digest}\nvoice:{voice_id}".encode()).hexdigest()


def camera_control_body(control: CameraControl) -> dict[str, Any]:
    body: dict[str, Any] = {"type": control.type}
    if control.config is not None:
        body["config"] = {k: number(v) for k, v in control.config.model_dump().items()}
    return body


def motion_brush_fields(brush: MotionBrush, images: ImagePlaceholders) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if brush.static_mask:
        fields["static_mask"] = images.of(brush.static_mask)
    if brush.dynamic_masks:
        fields["dynamic_masks"] = [
            {"mask": images.of(m.mask), "trajectories": [{"x": x, "y": y} for x, y in m.trajectory]}
            for m in brush.dynamic_masks
        ]
    return fields


@dataclass
class RequestParts:
    """Everything one request says, before it is written in a wire form."""

    family: str
    model: str
    mode: str | None
    """None for models that take no ``mode`` (kling-v2-master, kling-v2-1-master)."""
    multi: bool
    prompts: list[str]
    durations: list[int]
    aspect_ratio: str
    negative_prompt: str | None = None
    start_image: str | None = None
    end_image: str | None = None
    reference_images: list[str] = field(default_factory=list)
    """Image placeholders of the references sent as images (omni, multi-image)."""
    elements: list[dict[str, Any]] = field(default_factory=list)
    camera_control: dict[str, Any] | None = None
    motion_brush: dict[str, Any] = field(default_factory=dict)
    voices: list[str] = field(default_factory=list)
    sound: bool | None = None
    """None for models whose body has no ``sound`` field."""
    cfg_scale: float | None = None
    watermark: bool = False
    intelligence: bool = False
    """Multi-shot ``shot_type: intelligence``: the prompts go as one prompt, Kling cuts the shots itself."""
    api: str = "legacy"
    """The wire form the body is written in: ``legacy`` or ``new`` (``capabilities.decide_api``)."""
    video: dict[str, str] | None = None
    """Omni: the ``video_list`` entry of a reference or edited video (``plan.kinds``)."""

    @property
    def total_seconds(self) -> int:
        return sum(self.durations)

    @property
    def intelligence_prompt(self) -> str:
        """The one prompt of an ``intelligence`` request: the shots' prompts in story order.

        Why "Cut to:" between them: Kling chooses the shots itself (kling-api-2.md §6.1); film
        language that marks where the story moves on is the only hint a plain prompt can give.
        """
        return intelligence_prompt(self.prompts)


def intelligence_prompt(prompts: list[str]) -> str:
    """Shot prompts as one prompt, each after the first introduced by "Cut to:" (see ``RequestParts``)."""
    text = ""
    for prompt in (p.strip() for p in prompts):
        if text:
            text += ("" if text[-1] in ".!?" else ".") + " Cut to: "
        text += prompt
    return text


def build_body(parts: RequestParts) -> dict[str, Any]:
    """The legacy-API body of a request (``/v1/videos/<family>``)."""
    return LEGACY_BODY_BUILDERS[parts.family](parts)


def text2video_body(parts: RequestParts) -> dict[str, Any]:
    body = _head(parts)
    body["aspect_ratio"] = parts.aspect_ratio
    return _tail(parts, body)


def image2video_body(parts: RequestParts) -> dict[str, Any]:
    """Image-to-video takes no ``aspect_ratio``: the clip follows its start frame."""
    body = _head(parts)
    if parts.start_image:
        body["image"] = parts.start_image
    if parts.end_image:
        body["image_tail"] = parts.end_image
    return _tail(parts, body)


def omni_body(parts: RequestParts) -> dict[str, Any]:
    """Omni lists references and frames in one ``image_list``; a first frame sets the ratio."""
    body = _head(parts)
    image_list: list[dict[str, str]] = [{"image_url": image} for image in parts.reference_images]
    if parts.start_image:
        image_list.append({"image_url": parts.start_image, "type": "first_frame"})
    if parts.end_image:
        image_list.append({"image_url": parts.end_image, "type": "end_frame"})
    if image_list:
        body["image_list"] = image_list
    if parts.video is not None:
        body["video_list"] = [parts.video]
        if parts.video.get("refer_type") == "base":
            del body["duration"]  # an edit renders the clip's own length; Kling ignores duration (§2.1)
    if not parts.start_image and not (parts.video and parts.video.get("refer_type") == "base"):
        body["aspect_ratio"] = parts.aspect_ratio
    return _tail(parts, body)


def multi_image_body(parts: RequestParts) -> dict[str, Any]:
    body = _head(parts)
    body["image_list"] = [{"image": image} for image in parts.reference_images]
    body["aspect_ratio"] = parts.aspect_ratio
    return _tail(parts, body)


LEGACY_BODY_BUILDERS: dict[str, Callable[[RequestParts], dict[str, Any]]] = {
    TEXT2VIDEO: text2video_body,
    IMAGE2VIDEO: image2video_body,
    OMNI: omni_body,
    MULTI_IMAGE: multi_image_body,
}


def _head(parts: RequestParts) -> dict[str, Any]:
    """Model, mode, prompts, negative prompt and duration: the same in every family."""
    body: dict[str, Any] = {"model_name": parts.model}
    if parts.mode is not None:
        body["mode"] = parts.mode
    if parts.intelligence:
        body["prompt"] = parts.intelligence_prompt
        body["multi_shot"] = True
        body["shot_type"] = "intelligence"
    elif parts.multi:
        body["prompt"] = ""
        body["multi_shot"] = True
        body["shot_type"] = "customize"
        body["multi_prompt"] = [
            {"index": n, "prompt": prompt, "duration": str(seconds)}
            for n, (prompt, seconds) in enumerate(zip(parts.prompts, parts.durations), 1)
        ]
    else:
        body["prompt"] = parts.prompts[0]
    if parts.negative_prompt is not None and parts.family != OMNI:
        body["negative_prompt"] = parts.negative_prompt
    body["duration"] = str(parts.total_seconds)
    return body


def _tail(parts: RequestParts, body: dict[str, Any]) -> dict[str, Any]:
    """Elements, controls, voices and flags, after the family's own fields."""
    if parts.elements:
        body["element_list"] = parts.elements
    if parts.camera_control is not None:
        body["camera_control"] = parts.camera_control
    body.update(parts.motion_brush)
    if parts.voices:
        body["voice_list"] = [{"voice_id": v} for v in parts.voices]
    if parts.sound is not None:
        body["sound"] = "on" if parts.sound else "off"
    if parts.cfg_scale is not None:
        body["cfg_scale"] = number(parts.cfg_scale)
    if parts.watermark:
        body["watermark_info"] = {"enabled": True}
    return body
