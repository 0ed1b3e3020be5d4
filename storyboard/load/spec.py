"""Pydantic models of the storyboard YAML, and nothing else.

Why a separate module: the YAML format is the contract with our users (and with editors, through
the JSON Schema `storyboard schema` prints). It must not depend on I/O, on Kling's rules or on
templates; the loader adds file positions and file checks, the planner adds Kling's rules.

Conventions:
* every model forbids unknown keys (``extra="forbid"``), so typos are caught and the loader can
  suggest the closest valid key;
* shorthand forms (a reference given as a bare path, ``element: true``, a transition given as
  ``"crossfade 0.5"``, a cut shot given as its id) are expanded in *before* validators, so the
  rest of the code sees one explicit form only;
* field names are the YAML keys.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT_VERSION = 1

ModelName = Literal[
    "kling-v3",
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


class Settings(Strict):
    """Generation settings a shot inherits from ``defaults`` unless it sets them itself."""

    model: ModelName | None = Field(None, description="Kling model_name, e.g. kling-v3.")
    mode: Mode | None = Field(None, description="std = 720p, pro = 1080p, 4k = 2160p (kling-v3 family).")
    aspect_ratio: AspectRatio | None = Field(None, description="Output aspect ratio of text-to-video requests.")
    sound: bool | None = Field(None, description="Kling native audio (kling-v3, kling-v3-omni, kling-v2-6 pro).")
    cfg_scale: float | None = Field(None, ge=0, le=1, description="Prompt adherence 0..1; not for kling-v2.x.")
    negative_prompt: str | None = Field(None, description="What to avoid; at most 2500 characters.")
    template: str | None = Field(None, description="Prompt template name (templates/<name>.j2).")
    watermark: bool | None = Field(None, description="Ask Kling for a watermarked copy too.")


class Defaults(Settings):
    """Project-wide settings; every field has a value so a shot can always resolve its own."""

    model: ModelName = "kling-v3"
    mode: Mode = "std"
    aspect_ratio: AspectRatio = "16:9"
    sound: bool = False
    template: str = "motion"
    watermark: bool = False
    strategy: Strategy = Field("auto", description="auto packs shots into multi-shot requests where the model allows it.")


class Element(Strict):
    """How a reference becomes a Kling element (a reusable subject the model keeps consistent)."""

    element_id: int | None = Field(None, description="An element that already exists in your Kling account.")
    name: str | None = Field(None, max_length=20, description="Element name; defaults to the reference id.")
    description: str | None = Field(None, max_length=100)
    extra_images: list[str] = Field(
        default_factory=list, max_length=3, description="1-3 more views of the subject (paths), as Kling asks."
    )
    tags: list[Literal["o_101", "o_102", "o_103", "o_104", "o_105", "o_106", "o_107", "o_108"]] = Field(
        default_factory=list
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        if isinstance(value, int) and not isinstance(value, bool):
            return {"element_id": value}
        return value


class Reference(Strict):
    """A named image bound to the project as a subject, a style or an environment."""

    image: str = Field(description="Path relative to the project folder (JPG or PNG).")
    role: Role = "subject"
    description: str | None = None
    element: Element | None = Field(
        None, description="true to register this image as a Kling element once, or an existing element_id."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"image": value}
        if isinstance(value, dict) and value.get("element") is False:
            return {k: v for k, v in value.items() if k != "element"}
        return value


class CameraConfig(Strict):
    horizontal: float = Field(0, ge=-10, le=10)
    vertical: float = Field(0, ge=-10, le=10)
    pan: float = Field(0, ge=-10, le=10)
    tilt: float = Field(0, ge=-10, le=10)
    roll: float = Field(0, ge=-10, le=10)
    zoom: float = Field(0, ge=-10, le=10)


class CameraControl(Strict):
    """Kling's structured ``camera_control`` (older models only: see kling-api.md 4.7)."""

    type: CameraPreset = "simple"
    config: CameraConfig | None = None

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
    mask: str = Field(description="Mask image path (same size and aspect ratio as the start frame).")
    trajectory: list[tuple[int, int]] = Field(
        min_length=2, max_length=77, description="Pixel points [x, y], origin bottom-left, in motion order."
    )


class MotionBrush(Strict):
    """Kling's motion brush: a static area and up to six moving areas with their paths."""

    static_mask: str | None = None
    dynamic_masks: list[DynamicMask] = Field(default_factory=list, max_length=6)


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
    camera_control: CameraControl | None = None
    motion_brush: MotionBrush | None = None
    voices: list[str] = Field(default_factory=list, max_length=2, description="Kling voice ids (kling-v2-6 pro).")
    caption: str | None = Field(None, description="Text overlay shown over this shot in the cut.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Template values for this shot only.")


class Group(Strict):
    """An explicit multi-shot request: these shots, consecutive, in one Kling call."""

    shots: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"shots": value} if isinstance(value, list) else value


class Transition(Strict):
    """How a shot joins the one before it."""

    type: TransitionKind = "cut"
    duration: float = Field(0.5, ge=0, le=5)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            kind, _, seconds = value.strip().partition(" ")
            return {"type": kind, **({"duration": seconds.strip().rstrip("s")} if seconds.strip() else {})}
        return value


class TextStyle(Strict):
    font: str | None = Field(None, description="A font file path, or a font name the system knows.")
    size: int = Field(48, ge=8, le=400, description="Font size at 1080p; scaled with the output.")
    color: str = "#ffffff"
    position: TextPosition = "bottom"


class Card(Strict):
    """A title or end card: text on a colour (or an image) for a few seconds."""

    text: str
    duration: float = Field(2.0, gt=0, le=30)
    background: str = Field("#000000", description="A colour, or an image path.")
    style: TextStyle = TextStyle(position="center", size=72)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class CutShot(Strict):
    """One shot in the cut: which, which part of it, and how it joins the one before."""

    shot: str
    trim_in: float = Field(0, ge=0, description="Seconds cut from the start of the shot.")
    trim_out: float = Field(0, ge=0, description="Seconds cut from the end of the shot.")
    transition: Transition | None = Field(None, description="Into this shot; default: the cut's transition.")
    caption: str | None = Field(None, description="Overrides the shot's caption in this cut.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"shot": value} if isinstance(value, str) else value


class AudioBed(Strict):
    file: str = Field(description="Music file, relative to the project.")
    volume_db: float = Field(-12, ge=-60, le=12)
    fade_in: float = Field(0.5, ge=0)
    fade_out: float = Field(1.0, ge=0)
    loop: bool = Field(True, description="Loop a bed shorter than the cut (it is always trimmed to the cut).")
    duck_db: float = Field(-10, le=0, description="Gain applied to the bed while clip audio plays.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value


class Audio(Strict):
    clip_audio: Literal["keep", "drop"] = Field("keep", description="Keep Kling's native sound or drop it.")
    bed: AudioBed | None = None
    loudness_lufs: float | None = Field(-14, ge=-40, le=-5, description="EBU R128 integrated target; null = off.")


class Output(Strict):
    """One final file of the cut: a format (aspect ratio, size, fps) and how clips are reframed."""

    name: str = Field(pattern=SHOT_ID)
    aspect_ratio: AspectRatio = "16:9"
    height: int = Field(1080, ge=144, le=2160, description="Output height in pixels; width follows the ratio.")
    fps: int = Field(24, ge=1, le=60)
    reframe: Reframe = Field("crop", description="When a clip's ratio differs: centre crop, or fit over a blurred fill.")


class Cut(Strict):
    """The edit the assembler makes from the rendered shots, for every output."""

    shots: list[CutShot] | None = Field(None, description="Order and trims; default: every shot in storyboard order.")
    transition: Transition = Field(default_factory=Transition, description="Default join between shots.")
    audio: Audio = Field(default_factory=Audio)
    title: Card | None = None
    end_card: Card | None = None
    captions: TextStyle = Field(default_factory=TextStyle)


class Storyboard(Strict):
    """A whole storyboard file."""

    version: Literal[1] = Field(FORMAT_VERSION, description="Format version of this file.")
    name: str = Field(min_length=1)
    description: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    references: dict[str, Reference] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict, description="Values every template sees as vars.")
    shots: list[Shot] = Field(min_length=1)
    groups: list[Group] = Field(default_factory=list, description="Explicit multi-shot requests.")
    cut: Cut = Field(default_factory=Cut)
    outputs: list[Output] = Field(default_factory=list, description="Final files; default: one at the project ratio.")

    @field_validator("references")
    @classmethod
    def _reference_ids(cls, value: dict[str, Reference]) -> dict[str, Reference]:
        for key in value:
            if not re.match(SHOT_ID, key):
                raise ValueError(f"reference id {key!r} must be letters, digits, - and _ (at most 48)")
        return value


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the storyboard format, for editors (yaml-language-server) to autocomplete."""
    schema = Storyboard.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "storyboard.yaml"
    return schema

