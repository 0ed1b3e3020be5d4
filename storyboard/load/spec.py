"""Pydantic models of the storyboard YAML, and nothing else.

Why a separate module: the YAML format is the contract with our users (and with editors, through
the JSON Schema `storyboard schema` prints). It must not depend on I/O, on Kling's rules or on
templates; the loader adds file positions and file checks, the planner adds Kling's rules.

Conventions:
* every model forbids unknown keys (``extra="forbid"``), so typos are caught and the loader can
  suggest the closest valid key;
* shorthand forms (a reference given as a bare path, ``element: true``, a transition given as
  ``"crossfade 0.5"``, a cut shot given as its id) are expanded in *before* validators, so the
  rest of the code sees one explicit form only. Pydantic cannot see what a before validator
  accepts, so every model with one also declares its short forms for the JSON Schema
  (``json_schema_extra=_short_forms(...)``) right beside it: editors then accept what the loader
  accepts (``tests/test_schema.py`` holds the two together);
* every field has a description (editors show it on hover), and field names are the YAML keys;
* a text style cascades: the fields a file sets replace those of its context's default style
  (``CardStyle`` for title and end cards, ``TextStyle`` for captions), the others stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT_VERSION: Literal[1] = 1

ModelName = Literal[
    "kling-v3",
    "kling-v3-turbo",
    "kling-v3-omni",
    "kling-video-o1",
    "kling-v2-6",
    "kling-v2-5-turbo",
    "kling-v2-1",
    "kling-v2-1-master",
    "kling-v2-master",
    "kling-v1-6",
    "kling-v1-5",
    "kling-v1",
]
Mode = Literal["std", "pro", "4k"]
Api = Literal["legacy", "new"]
"""Which Kling wire form a request is sent in: the legacy ``/v1/videos/...`` API or the new-standard one."""
AspectRatio = Literal["16:9", "9:16", "1:1"]
Role = Literal["subject", "style", "environment"]
Strategy = Literal["auto", "multi_shot", "per_shot"]
CameraPreset = Literal["simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"]
TransitionKind = Literal["cut", "crossfade", "dissolve", "fade_black", "fade_white"]
Reframe = Literal["crop", "blur"]
TextPosition = Literal["top", "center", "bottom"]

SHOT_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$"
"""Shot and reference ids: short, readable, safe in file names and in Kling's external ids."""

PREVIOUS_FRAME = "previous"
"""``start_frame: previous`` chains a shot to the last frame of the shot before it."""


class Strict(BaseModel):
    """Base of every YAML model: unknown keys are errors, values are immutable after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _short_forms(*forms: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` that makes a model's schema ``anyOf: [*forms, the mapping]``.

    Why: the short forms a ``mode="before"`` validator expands are invisible to pydantic's schema,
    which then underlines valid files in editors. The mapping keeps ``additionalProperties:
    false``, so a typo in the long form is still refused; the description moves to the ``anyOf``
    so editors show it whichever form is written.
    """

    def extend(schema: dict[str, Any]) -> None:
        mapping = dict(schema)
        schema.clear()
        if "description" in mapping:
            schema["description"] = mapping.pop("description")
        schema["anyOf"] = [*forms, mapping]

    return extend


class Settings(Strict):
    """Generation settings a shot inherits from ``defaults`` unless it sets them itself."""

    model: ModelName | None = Field(
        None,
        description="Kling model (model_name) that renders the shot, e.g. kling-v3; "
        "what it can do (durations, sound, multi-shot, camera_control) is checked by validate.",
    )
    mode: Mode | None = Field(
        None, description="Quality and resolution: std = 720p, pro = 1080p, 4k = 2160p (kling-v3 family only)."
    )
    aspect_ratio: AspectRatio | None = Field(
        None,
        description="Frame of text-to-video requests: 16:9, 9:16 or 1:1. "
        "Image-to-video follows its start frame; outputs reframe to their own ratio.",
    )
    sound: bool | None = Field(
        None, description="Ask Kling for native audio (kling-v3, kling-v3-omni, kling-v2-6 pro); costs more units."
    )
    cfg_scale: float | None = Field(
        None, ge=0, le=1, description="Prompt adherence, 0 (free) to 1 (strict); Kling's default is 0.5; not on kling-v2.x."
    )
    negative_prompt: str | None = Field(None, description="What to avoid in the video; at most 2500 characters.")
    template: str | None = Field(
        None, description="Prompt template name: templates/<name>.j2 in the project, else a built-in one (motion)."
    )
    watermark: bool | None = Field(None, description="Also ask Kling for a watermarked copy of each clip.")
    api: Api | None = Field(
        None,
        description="Kling API the request goes to: legacy (/v1/videos/..., every model and control) or new "
        "(the new-standard API: model in the path, API key only). Unset: legacy, except kling-v3-turbo, "
        "which exists only on the new API.",
    )
    extra: dict[str, Any] | None = Field(
        None,
        description="JSON fields the format does not model, merged into the request body as written (both APIs; "
        "mappings merge, e.g. {settings: {seed: 7}} on the new API). Not checked by validate: Kling judges them; "
        "the plan lists them. A field the format already writes is refused. A shot's extra merges over defaults'.",
    )


class Defaults(Settings):
    """Project-wide settings; every field has a value so a shot can always resolve its own."""

    model: ModelName = Field("kling-v3", description=Settings.model_fields["model"].description)
    mode: Mode = Field("std", description=Settings.model_fields["mode"].description)
    aspect_ratio: AspectRatio = Field("16:9", description=Settings.model_fields["aspect_ratio"].description)
    sound: bool = Field(False, description=Settings.model_fields["sound"].description)
    template: str = Field("motion", description=Settings.model_fields["template"].description)
    watermark: bool = Field(False, description=Settings.model_fields["watermark"].description)
    strategy: Strategy = Field(
        "auto",
        description="How shots become requests: auto packs consecutive shots into multi-shot requests where "
        "the model allows it, multi_shot insists, per_shot renders one request per shot.",
    )


class Element(Strict):
    """How a reference becomes a Kling element (a reusable subject the model keeps consistent)."""

    model_config = ConfigDict(
        json_schema_extra=_short_forms(
            {"type": "boolean", "description": "true: register this image as a new Kling element once; false: do not."},
            {"type": "integer", "description": "The element_id of an element that already exists in your Kling account."},
        )
    )

    element_id: int | None = Field(None, description="An element that already exists in your Kling account.")
    name: str | None = Field(None, max_length=20, description="Element name (at most 20 characters); defaults to the reference id.")
    description: str | None = Field(
        None, max_length=100, description="What the element is (at most 100 characters); defaults to the reference's description."
    )
    extra_images: list[str] = Field(
        default_factory=list, max_length=3, description="1-3 more views of the subject (paths), as Kling asks."
    )
    voice_id: str | None = Field(
        None,
        min_length=1,
        description="A Kling voice (custom or preset voice_id) bound to the element when it is registered "
        "(element_voice_id); on kling-v3 / kling-v3-omni the element then speaks in it when the shot has "
        "sound: true and the prompt names the element (<<<element_N>>>, ref() in templates).",
    )
    voice: str | None = Field(
        None,
        description="The id of one of the storyboard's voices: that custom voice is registered once per Kling "
        "account, then bound to the element like voice_id.",
    )
    tags: list[Literal["o_101", "o_102", "o_103", "o_104", "o_105", "o_106", "o_107", "o_108"]] = Field(
        default_factory=list,
        description="Kling element tags: o_101 hottest, o_102 character, o_103 animal, o_104 item, "
        "o_105 costume, o_106 scene, o_107 effect, o_108 others.",
    )

    @model_validator(mode="after")
    def _voice_needs_registration(self) -> Element:
        if self.voice_id is not None and self.voice is not None:
            raise ValueError("give the element voice_id (a Kling voice) or voice (one of the storyboard's voices), not both")
        if (self.voice_id is not None or self.voice is not None) and self.element_id is not None:
            raise ValueError(
                "voice_id binds a voice when the element is registered; an existing element_id keeps the voice "
                "it was made with: remove voice_id, or remove element_id to register a new voiced element"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        if isinstance(value, int) and not isinstance(value, bool):
            return {"element_id": value}
        return value


VOICE_URL = r"^https?://\S+\.(?:[Mm][Pp]3|[Ww][Aa][Vv]|[Mm][Pp]4|[Mm][Oo][Vv])(?:\?\S*)?$"
"""Kling clones a custom voice from a public URL of an mp3, wav, mp4 or mov file (kling-api.md §7.4)."""


class CustomVoice(Strict):
    """A voice Kling clones from a recording, registered once per account and journaled like elements."""

    url: str = Field(
        description="Public http(s) URL of an mp3, wav, mp4 or mov recording: one clean speaker, 5-30 s "
        "(Kling fetches it; a local file cannot be sent).",
        json_schema_extra={"pattern": VOICE_URL},
    )
    name: str | None = Field(
        None, max_length=20, description="Voice name in your Kling library (at most 20 characters); defaults to the voice id."
    )

    @field_validator("url")
    @classmethod
    def _public_recording(cls, value: str) -> str:
        if not re.match(VOICE_URL, value):
            raise ValueError(
                f"{value!r} is not a public URL of a recording: Kling clones a voice from an http(s) URL of an "
                "mp3, wav, mp4 or mov file (5-30 s, one speaker); upload the recording and give its URL"
            )
        return value


def _reference_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema of a reference: its string short form, and the mapping's rules between fields.

    Why spelled out: the model's after-validator (exactly one of image or video; url, a subject role,
    no ``element: false`` and no extra views only with a video) is invisible to pydantic's schema,
    and editors must refuse what the loader refuses. ``if``/``then`` reads the same in Draft 7.
    """
    schema["oneOf"] = [{"required": ["image"]}, {"required": ["video"]}]
    schema["allOf"] = [
        {"if": {"required": ["url"]}, "then": {"required": ["video"]}},
        {"if": {"required": ["video"]}, "then": {"properties": {
            "role": {"const": "subject"},
            "element": {"not": {"const": False}, "properties": {"extra_images": {"maxItems": 0}}},
        }}},
    ]
    _short_forms({"type": "string", "description": "Shorthand: just the image path (a subject reference)."})(schema)


class Reference(Strict):
    """A named image (or, for a video-character element, a video) bound to the project as a subject,
    a style or an environment."""

    model_config = ConfigDict(json_schema_extra=_reference_schema)

    image: str | None = Field(
        None,
        description="Path relative to the project folder: JPG or PNG, at least 300 px a side (1024 advised), "
        "ratio between 1:2.5 and 2.5:1, at most 10 MB. Give image or video.",
    )
    video: str | None = Field(
        None,
        description="Or a video-character element's clip (path): mp4 or mov, 3-8 s, 1080p (1920x1080 or "
        "1080x1920, 16:9 or 9:16), at most 200 MB, probed at validate. Kling takes only a realistic human in it "
        "(validate cannot check that: Kling refuses the element otherwise); a human voice in the clip is cloned "
        "and bound to the element. A video reference is always an element (kling-v3-omni; kling-v3 "
        "image-to-video per Kling's capability map) and never a frame or a reference image.",
    )
    url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Public http(s) URL of the same video, where Kling fetches it (element videos go by URL "
        "only); without it only the preview provider can render the shots that use this element.",
    )
    role: Role = Field(
        "subject", description="subject (who or what appears), style (the look) or environment (the place)."
    )
    description: str | None = Field(None, description="What the image shows; templates and elements use it.")
    element: Element | None = Field(
        None,
        description="true to register this image as a Kling element once, an existing element_id, "
        "or a mapping (name, description, extra_images, tags, voice_id); a video reference is always one.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"image": value}
        if isinstance(value, dict) and value.get("element") is False:
            if value.get("video") is not None:
                raise ValueError("a video reference is always a Kling element (video_refer): remove element: false, "
                                 "or give an image instead of the video")
            return {k: v for k, v in value.items() if k != "element"}
        if isinstance(value, dict) and value.get("video") is not None and value.get("element") is None:
            return {**value, "element": {}}  # a video reference is always an element
        return value

    @model_validator(mode="after")
    def _image_or_video(self) -> Reference:
        if (self.image is None) == (self.video is None):
            raise ValueError("a reference takes exactly one of image (a picture) or video (a video-character "
                             "element's clip)")
        if self.video is None:
            if self.url is not None:
                raise ValueError("url goes with video (Kling fetches element videos by URL); an image is uploaded "
                                 "from its file: remove url")
            return self
        if self.role != "subject":
            raise ValueError(f"a video reference is a character (a video-character element), not a {self.role}: "
                             "remove role, or use an image")
        if self.element is not None and self.element.extra_images:
            raise ValueError("a video-character element is made from its clip alone: remove element.extra_images "
                             "(extra views belong to image elements)")
        return self


_AXIS = "Strength -10..10; exactly one axis is non-zero in a simple move."


class CameraConfig(Strict):
    """The one axis a ``simple`` camera move uses, and how strongly."""

    horizontal: float = Field(0, ge=-10, le=10, description=f"Move sideways (negative: left). {_AXIS}")
    vertical: float = Field(0, ge=-10, le=10, description=f"Move up or down (negative: down). {_AXIS}")
    pan: float = Field(0, ge=-10, le=10, description=f"Turn left or right about the vertical axis. {_AXIS}")
    tilt: float = Field(0, ge=-10, le=10, description=f"Turn up or down about the horizontal axis. {_AXIS}")
    roll: float = Field(0, ge=-10, le=10, description=f"Rotate about the lens axis. {_AXIS}")
    zoom: float = Field(0, ge=-10, le=10, description=f"Zoom in (positive) or out (negative). {_AXIS}")


class CameraControl(Strict):
    """Kling's structured ``camera_control`` (older models only: see kling-api.md 4.7)."""

    model_config = ConfigDict(
        json_schema_extra={
            # what ``_check`` enforces, as far as a schema can say it (one non-zero axis is left to validate)
            "if": {"properties": {"type": {"const": "simple"}}},
            "then": {
                "required": ["config"],
                "properties": {"config": {"type": "object", "description": "A simple move needs the axis it uses."}},
            },
            "else": {"properties": {"config": {"type": "null", "description": "A preset move takes no config."}}},
        }
    )

    type: CameraPreset = Field(
        "simple",
        description="simple (one axis, set in config) or a preset move: down_back, forward_up, "
        "right_turn_forward, left_turn_forward (no config).",
    )
    config: CameraConfig | None = Field(None, description="The axis of a simple move; leave out for presets.")

    @model_validator(mode="after")
    def _check(self) -> CameraControl:
        if self.type == "simple":
            if self.config is None:
                raise ValueError("camera_control of type simple needs a config with exactly one non-zero axis")
            moved = [k for k, v in self.config.model_dump().items() if v]
            if len(moved) != 1:
                raise ValueError(
                    "camera_control of type simple takes exactly one non-zero value among "
                    "horizontal, vertical, pan, tilt, roll, zoom"
                    + (f" (got {', '.join(moved)})" if moved else " (all are zero)")
                )
        elif self.config is not None:
            raise ValueError(f"camera_control of type {self.type} is a preset: remove its config")
        return self


class DynamicMask(Strict):
    """One moving area of a motion brush and the path it follows."""

    mask: str = Field(description="Mask image path (same size and aspect ratio as the start frame).")
    trajectory: list[tuple[int, int]] = Field(
        min_length=2, max_length=77, description="Pixel points [x, y], origin bottom-left, in motion order."
    )


class MotionBrush(Strict):
    """Kling's motion brush: a static area and up to six moving areas with their paths."""

    static_mask: str | None = Field(None, description="Mask image path of the area that must not move.")
    dynamic_masks: list[DynamicMask] = Field(
        default_factory=list, max_length=6, description="Up to six moving areas, each a mask and its trajectory."
    )


VideoUse = Literal["reference", "edit"]
Orientation = Literal["image", "video"]

_VIDEO_URL = (
    "Public http(s) URL of the same video, where Kling fetches it (Kling takes input videos by URL only). "
    "Without it only the preview provider can render the shot."
)


class MotionControl(Strict):
    """A motion-control shot: a character image driven by the motion of a reference video.

    Kling renders as long as the usable motion in the video lasts (no duration of its own) and
    bills the output seconds, rounded (kling-api-2.md §1).
    """

    video: str = Field(
        description="The motion source (path): mp4 or mov, at most 100 MB, each side 340-3850 px, 3 s or more, "
        "at most 10 s with orientation image or 30 s with orientation video; one continuous take of one person."
    )
    url: str | None = Field(None, pattern=r"^https?://", description=_VIDEO_URL)
    character: str = Field(
        description="Who moves: a reference id or an image path (JPG or PNG, upper or full body with the head "
        "visible). A reference with an element also sends the element (kling-v3 only)."
    )
    orientation: Orientation = Field(
        description="image keeps the character's orientation from the image (video at most 10 s); "
        "video follows the person in the video (at most 30 s)."
    )
    keep_sound: bool = Field(True, description="Keep the reference video's own sound in the clip.")


class VideoReference(Strict):
    """An omni shot given a video (kling-v3-omni, kling-video-o1): a reference to follow or a clip to edit."""

    video: str = Field(
        description="The video (path): mp4 or mov, at most 200 MB, each side 720-2160 px, 24-60 fps, "
        "3 s or more, at most 10 s (kling-video-o1) or 15 s (kling-v3-omni). The prompt names it <<<video_1>>>."
    )
    url: str | None = Field(None, pattern=r"^https?://", description=_VIDEO_URL)
    use: VideoUse = Field(
        "reference",
        description="reference: generate the next shot or borrow its style or camera move (renders the shot's "
        "duration); edit: transform the clip itself (renders and bills the video's length, no frames).",
    )
    keep_sound: bool = Field(False, description="Keep the video's own sound (sound must then be off).")


class Avatar(Strict):
    """An avatar shot: a still portrait that speaks an audio file, or text through Kling's TTS (billed per audio second)."""

    image: str = Field(
        description="The face: a reference id or an image path (JPG or PNG, at least 300 px, ratio 1:2.5 to 2.5:1, "
        "at most 10 MB); with several faces Kling picks the speaker."
    )
    audio: str | None = Field(
        None, description="What it says (path): mp3, wav, m4a or aac, 2-300 s, at most 5 MB. Or give text and voice_id."
    )
    text: str | None = Field(
        None, min_length=1, max_length=1000,
        description="Or what it says as text (at most 1000 characters), spoken by Kling's text-to-speech first "
        "(0.05 units); the clip lasts as long as the speech, which the plan estimates from the text.",
    )
    voice_id: str | None = Field(
        None, min_length=1,
        description="With text: the id of one of Kling's preset voices (GET /v1/general/presets-voices) that speaks it.",
    )
    language: Literal["en", "zh"] = Field(
        "en", description="With text: the language it is spoken in, en or zh (Kling's own default is zh; this one is en)."
    )
    speed: float = Field(1.0, ge=0.8, le=2.0, description="With text: how fast it is spoken, 0.8-2.0 with one decimal.")

    @field_validator("speed")
    @classmethod
    def _one_decimal(cls, value: float) -> float:
        if round(value, 1) != value:
            raise ValueError(f"speed {value:g} has more than one decimal: Kling takes 0.8-2.0 in steps of 0.1, "
                             f"e.g. {round(value, 1):g}")
        return value

    @field_validator("text")
    @classmethod
    def _something_to_say(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("text is blank: write what the avatar says")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Avatar:
        if (self.audio is None) == (self.text is None):
            raise ValueError("avatar takes exactly one of audio (a file) or text (spoken by Kling's TTS with voice_id)")
        if self.text is not None and self.voice_id is None:
            raise ValueError("avatar text needs voice_id: the id of a Kling preset voice that speaks it")
        if self.text is None:
            spoken = [name for name in ("voice_id", "language", "speed") if name in self.model_fields_set]
            if spoken:
                raise ValueError(f"{', '.join(spoken)} go with text; an audio file is sent as it is: remove them")
        return self


class LipSync(Strict):
    """A lip-sync shot: the mouth of a rendered shot (or of a video file) re-driven by speech.

    The speech is an audio file (``audio``) or a text Kling speaks in one of its voices (``text`` +
    ``voice_id``: classic sends it as ``text2video``, advanced has Kling's TTS speak it first and
    inserts that audio). ``method`` picks Kling's endpoint (kling-api-2.md §5): ``classic``
    (``/v1/videos/lip-sync``, the whole clip, verified by a paid live run) or ``advanced``
    (identify-face then ``/v1/videos/advanced-lip-sync``: one chosen face, a crop of the audio
    inserted at a point of the clip, volumes; documented 2026-09, 0.05 units more for the face step).
    """

    shot: str | None = Field(None, description="Id of an earlier shot whose clip is lip-synced (its whole clip).")
    video: str | None = Field(
        None, description="Or a video file (path): mp4 or mov, 2-60 s, at most 100 MB, 720p or 1080p."
    )
    url: str | None = Field(None, pattern=r"^https?://", description=_VIDEO_URL)
    audio: str | None = Field(
        None, description="The new speech (path): mp3, wav, m4a or aac, 2-60 s, at most 5 MB. Or give text."
    )
    text: str | None = Field(
        None, description="Or the words Kling speaks in voice_id: classic sends them as text2video (a reseller "
        "says at most 120 characters, unverified: validate advises above it); advanced has Kling's TTS speak them "
        "first (0.05 units, 2-60 s of speech) and inserts that audio at insert_at."
    )
    voice_id: str | None = Field(None, description="With text: the Kling lip-sync voice that speaks it.")
    language: Literal["en", "zh"] = Field("en", description="With text: the voice's language (voice_language).")
    speed: float = Field(1.0, description="With text: speaking speed, at most 2.0 (Kling's TTS takes 0.8-2.0).")
    method: Literal["classic", "advanced"] = Field(
        "classic", description="classic (default: verified by a paid live run, no face step, lip-syncs the whole "
        "clip) or advanced (identify-face first, 0.05 units more; one face, an audio crop inserted at insert_at)."
    )
    face: int = Field(1, ge=1, description="advanced: which face speaks, 1-based in Kling's face list (by start time).")
    audio_start: float = Field(0, ge=0, description="advanced: seconds into the audio where the crop starts.")
    audio_end: float | None = Field(
        None, gt=0, description="advanced: seconds into the audio where the crop ends (default: its end); "
        "the crop lasts at least 2 s."
    )
    insert_at: float = Field(0, ge=0, description="advanced: seconds into the video where the cropped audio starts.")
    volume: float | None = Field(None, ge=0, le=2, description="advanced: the new speech's volume, 0-2 (Kling: 1).")
    original_volume: float | None = Field(
        None, ge=0, le=2, description="advanced: the clip's own sound's volume, 0-2 (Kling: 1)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> LipSync:
        if (self.shot is None) == (self.video is None):
            raise ValueError("lip_sync takes exactly one of shot (a rendered shot's id) or video (a file)")
        if self.url is not None and self.video is None:
            raise ValueError("lip_sync url goes with video; a shot's clip is sent by Kling's own URL")
        return self


class Shot(Settings):
    """One shot of the storyboard, with its per-shot overrides of ``defaults``."""

    id: str = Field(pattern=SHOT_ID, description="Unique id: letters, digits, - and _.")
    duration: float = Field(gt=0, le=15, description="Seconds the cut keeps of this shot.")
    prompt: str | None = Field(None, description="Prompt text; may use Jinja2 variables ({{ vars.brand }}).")
    subject: str | None = Field(None, description="Who or what is on screen (templates use it).")
    action: str | None = Field(None, description="What moves and how (templates put it first).")
    camera: str | None = Field(None, description="Camera direction in words: 'slow push-in', 'orbit left'.")
    mood: str | None = Field(None, description="Pace, light and mood.")
    start_frame: str | None = Field(
        None, description="A reference id, an image path, or 'previous' for the last frame of the shot before."
    )
    end_frame: str | None = Field(None, description="A reference id or an image path.")
    references: list[str] = Field(default_factory=list, description="Reference ids this shot uses.")
    camera_control: CameraControl | None = Field(
        None, description="Structured camera move for the kling-v1 family (validate says which model, mode and duration); "
        "newer models take `camera` in words."
    )
    motion_brush: MotionBrush | None = Field(
        None, description="Areas that stay still or move along a path (kling-v1 family, 5 s shots)."
    )
    voices: list[str] = Field(default_factory=list, max_length=2, description="Kling voice ids (kling-v2-6 pro).")
    caption: str | None = Field(None, description="Text overlay shown over this shot in the cut.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Template values for this shot only.")
    motion_control: MotionControl | None = Field(
        None, description="Make this a motion-control shot: a character driven by a reference video "
        "(kling-v3, kling-v2-6; std or pro)."
    )
    video_reference: VideoReference | None = Field(
        None, description="Give this omni shot a video: a reference to follow or a clip to edit "
        "(kling-v3-omni, kling-video-o1)."
    )
    avatar: Avatar | None = Field(
        None, description="Make this an avatar shot: a portrait image speaking an audio file or text (std or pro)."
    )
    lip_sync: LipSync | None = Field(
        None, description="Make this a lip-sync shot: a rendered shot or a video file re-voiced by an audio file."
    )
    take: int | None = Field(
        None, ge=1, le=99, description="Which take of this shot the cut uses (2 or more: a deliberate re-take, paid once); "
        "default: the newest approved in review, else the newest."
    )


class Group(Strict):
    """An explicit multi-shot request: these shots, consecutive, in one Kling call."""

    model_config = ConfigDict(
        json_schema_extra=_short_forms(
            {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "Shorthand: just the shot ids, e.g. [reveal, swirl].",
            }
        )
    )

    shots: list[str] = Field(min_length=1, description="Ids of consecutive shots rendered by one multi-shot request.")
    shot_type: Literal["customize", "intelligence"] = Field(
        "customize",
        description="customize: each shot is sent with its own prompt and seconds (multi_prompt). intelligence: "
        "the shots' prompts are sent as one prompt and Kling splits it into shots itself (kling-v3, kling-v3-omni), "
        "so where each shot starts is not known: the cut plays the group as one shot (hard cuts inside, "
        "captions and trims only at its ends).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"shots": value} if isinstance(value, list) else value


_TRANSITION_KINDS = "|".join(TransitionKind.__args__)  # type: ignore[attr-defined]
_SECONDS_0_TO_5 = r"(?:0*[0-4](?:\.[0-9]*)?|0*5(?:\.0*)?|\.[0-9]+)"
TRANSITION_SHORTHAND = rf"^\s*(?:{_TRANSITION_KINDS})(?: +{_SECONDS_0_TO_5}s?)?\s*$"
"""``"crossfade 0.5"``, ``"fade_white 1s"``, ``"cut"``: a kind and optional seconds (0 to 5)."""


class Transition(Strict):
    """How a shot joins the one before it."""

    model_config = ConfigDict(
        json_schema_extra=_short_forms(
            {
                "type": "string",
                "pattern": TRANSITION_SHORTHAND,
                "description": "Shorthand: the kind and optional seconds, e.g. 'crossfade 0.5' or 'cut'.",
            }
        )
    )

    type: TransitionKind = Field(
        "cut", description="cut (none), crossfade or dissolve (overlap), fade_black or fade_white (through a colour)."
    )
    duration: float = Field(0.5, ge=0, le=5, description="Seconds the transition lasts (ignored for cut).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            kind, _, seconds = value.strip().partition(" ")
            return {"type": kind, **({"duration": seconds.strip().rstrip("s")} if seconds.strip() else {})}
        return value


class TextStyle(Strict):
    """How text is drawn over the video: the captions' style, and the base of a card's.

    A style in the file only names the fields it changes; the others keep the defaults of its
    context (here: captions at the bottom, 48 px), so setting ``font`` alone moves nothing.
    """

    font: str | None = Field(
        None, description="A font file path relative to the project, or a font family name the system knows."
    )
    size: int = Field(48, ge=8, le=400, description="Font size in pixels at 1080p; scaled with the output height.")
    color: str = Field("#ffffff", description="Text colour: a name or #rrggbb.")
    position: TextPosition = Field("bottom", description="Where the text sits: top, center or bottom.")


class CardStyle(TextStyle):
    """A title or end card's text style: centred and larger than captions unless the file says so.

    Why a model of its own rather than a default instance: pydantic fills the fields a file leaves
    out from the model's field defaults, so ``style: {font: x}`` on a card kept size 48 at the
    bottom (the captions' defaults). Here the card's defaults are the field defaults.
    """

    size: int = Field(72, ge=8, le=400, description=TextStyle.model_fields["size"].description)
    position: TextPosition = Field("center", description=TextStyle.model_fields["position"].description)


class Card(Strict):
    """A title or end card: text on a colour (or an image) for a few seconds."""

    model_config = ConfigDict(
        json_schema_extra=_short_forms({"type": "string", "description": "Shorthand: just the text of the card."})
    )

    text: str = Field(description="The words on the card.")
    duration: float = Field(2.0, gt=0, le=30, description="Seconds the card stays on screen.")
    background: str = Field("#000000", description="A colour, or an image path.")
    style: CardStyle = Field(default_factory=CardStyle, description="Text style; fields not set keep the card's defaults.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class CutShot(Strict):
    """One shot in the cut: which, which part of it, and how it joins the one before."""

    model_config = ConfigDict(
        json_schema_extra=_short_forms({"type": "string", "description": "Shorthand: just the shot id, untrimmed."})
    )

    shot: str = Field(description="Id of a shot of this storyboard.")
    trim_in: float = Field(0, ge=0, description="Seconds cut from the start of the shot.")
    trim_out: float = Field(0, ge=0, description="Seconds cut from the end of the shot.")
    transition: Transition | None = Field(None, description="Into this shot; default: the cut's transition.")
    caption: str | None = Field(None, description="Overrides the shot's caption in this cut.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"shot": value} if isinstance(value, str) else value


class AudioBed(Strict):
    """Music under the whole cut."""

    model_config = ConfigDict(
        json_schema_extra=_short_forms(
            {"type": "string", "description": "Shorthand: just the music file, with the default levels and fades."}
        )
    )

    file: str = Field(description="Music file, relative to the project.")
    volume_db: float = Field(-12, ge=-60, le=12, description="Gain of the bed in dB (0 = as recorded).")
    fade_in: float = Field(0.5, ge=0, description="Seconds the bed fades in at the start of the cut.")
    fade_out: float = Field(1.0, ge=0, description="Seconds the bed fades out at the end of the cut.")
    loop: bool = Field(True, description="Loop a bed shorter than the cut (it is always trimmed to the cut).")
    duck_db: float = Field(-10, le=0, description="Gain applied to the bed while clip audio plays.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value


class Audio(Strict):
    """The cut's sound: the clips' own audio, a music bed, and the loudness target."""

    clip_audio: Literal["keep", "drop"] = Field("keep", description="Keep Kling's native sound or drop it.")
    bed: AudioBed | None = Field(None, description="Music under the cut: a file, or a file with levels and fades.")
    loudness_lufs: float | None = Field(-14, ge=-40, le=-5, description="EBU R128 integrated target; null = off.")


class Output(Strict):
    """One final file of the cut: a format (aspect ratio, size, fps) and how clips are reframed."""

    name: str = Field(pattern=SHOT_ID, description="File name of this output in out/ (letters, digits, - and _).")
    aspect_ratio: AspectRatio = Field("16:9", description="Frame of this output: 16:9, 9:16 or 1:1.")
    height: int = Field(1080, ge=144, le=2160, description="Output height in pixels; width follows the ratio.")
    fps: int = Field(24, ge=1, le=60, description="Frames per second of this output.")
    reframe: Reframe = Field("crop", description="When a clip's ratio differs: centre crop, or fit over a blurred fill.")


class Cut(Strict):
    """The edit the assembler makes from the rendered shots, for every output."""

    shots: list[CutShot] | None = Field(None, description="Order and trims; default: every shot in storyboard order.")
    transition: Transition = Field(default_factory=Transition, description="Default join between shots.")
    audio: Audio = Field(default_factory=Audio, description="Clip sound, music bed and loudness.")
    title: Card | None = Field(None, description="A card before the first shot: its text, or text with duration and style.")
    end_card: Card | None = Field(None, description="A card after the last shot: its text, or text with duration and style.")
    captions: TextStyle = Field(
        default_factory=TextStyle, description="Style of the shots' captions; fields not set keep the caption defaults."
    )


class Storyboard(Strict):
    """A whole storyboard file."""

    version: Literal[1] = Field(FORMAT_VERSION, description="Format version of this file.")
    name: str = Field(min_length=1, description="Name of the video; cuts and plans are titled with it.")
    description: str | None = Field(None, description="Free text for the people working on it.")
    defaults: Defaults = Field(default_factory=Defaults, description="Settings every shot inherits unless it sets its own.")
    references: dict[str, Reference] = Field(
        default_factory=dict,
        description="Named images (subject, style or environment) shots use by id.",
        json_schema_extra={"propertyNames": {"pattern": SHOT_ID}},
    )
    voices: dict[str, CustomVoice] = Field(
        default_factory=dict,
        description="Custom voices by id, cloned from a recording once per Kling account (0.05 units each); "
        "an element binds one with element: {voice: <id>}.",
        json_schema_extra={"propertyNames": {"pattern": SHOT_ID}},
    )
    vars: dict[str, Any] = Field(default_factory=dict, description="Values every template sees as vars.")
    shots: list[Shot] = Field(min_length=1, description="The shots, in story order.")
    groups: list[Group] = Field(default_factory=list, description="Explicit multi-shot requests.")
    cut: Cut = Field(default_factory=Cut, description="What the assembler makes of the clips.")
    outputs: list[Output] = Field(default_factory=list, description="Final files; default: one at the project ratio.")
    outside_files: Literal["advise", "refuse"] = Field(
        "advise", description="Files this storyboard names that lie outside its project folder (after symlinks), "
        "which are uploaded to Kling like any other: advise (validate says so at their line, the plan lists them) "
        "or refuse (an error at their line). Set refuse for boards received from someone else."
    )

    @field_validator("voices")
    @classmethod
    def _voice_ids(cls, value: dict[str, CustomVoice]) -> dict[str, CustomVoice]:
        for key in value:
            if not re.match(SHOT_ID, key):
                raise ValueError(f"voice id {key!r} must be letters, digits, - and _ (at most 48)")
        return value

    @field_validator("references")
    @classmethod
    def _reference_ids(cls, value: dict[str, Reference]) -> dict[str, Reference]:
        for key in value:
            if not re.match(SHOT_ID, key):
                raise ValueError(f"reference id {key!r} must be letters, digits, - and _ (at most 48)")
        return value


def json_schema() -> dict[str, Any]:
    """The JSON Schema of storyboard.yaml (``storyboard schema``), built by ``load.schema``.

    Why a re-export: the command and the tests ask the format module for its schema; the
    generation details (dialect, ``$id``, defaults of factories) live in ``load.schema``.
    """
    from storyboard.load.schema import storyboard_schema

    return storyboard_schema()
