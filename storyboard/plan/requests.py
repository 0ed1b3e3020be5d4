"""The plan: the typed, immutable list of requests a storyboard compiles to.

Why its own module: every later stage reads a plan (the renderer sends its bodies, the preview
provider animates them, the assembler cuts its clips at the shot boundaries, campaigns share its
content keys), while only the planner writes one. Keeping the types here lets each stage depend on
the data, not on the code that produced it.

Placeholders in ``Request.body``. A plan never holds image bytes or ids that do not exist yet; the
body holds strings the engine resolves just before sending:

* ``image://sha256/<hex>``: a project image; ``Request.images`` maps the hex digest to its path.
  The content key hashes the body *with the placeholder*, so renaming a file changes nothing and
  editing its pixels changes the key.
* ``frame://last/<request key>``: the last frame of another request's clip (shot chaining);
  the upstream request is listed in ``Request.depends_on``.
* ``element://sha256/<hex>``: a reference to register as a Kling element (its frontal image's
  digest); resolved to the int64 ``element_id`` once registered. Listed in ``Request.elements``.
* ``audio://sha256/<hex>``, ``video://sha256/<hex>``: a project audio or video file (avatar, lip
  sync, motion control, omni video inputs); ``Request.media`` maps the placeholder to its path.
* ``clip://<request key>``: the clip of another request (lip sync of a rendered shot), listed in
  ``Request.depends_on``; ``plan.kinds`` says how each is sent.
* ``speech://sha256/<hex>``: speech Kling's TTS makes from text first (``Request.speech``; the
  digest of text, voice, language and speed, ``plan.speech``); resolved to the TTS ``audio_id``.
* ``face://session`` and ``face://<n>``: an advanced lip sync's ``session_id`` and the ``face_id`` of
  the n-th face (by start time) of Kling's identify-face answer, known only at render time
  (``Request.face`` says how to get them; ``plan.lip_sync``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IMAGE_SCHEME = "image://sha256/"
FRAME_SCHEME = "frame://last/"
ELEMENT_SCHEME = "element://sha256/"
AUDIO_SCHEME = "audio://sha256/"
VIDEO_SCHEME = "video://sha256/"
CLIP_SCHEME = "clip://"
FACE_SCHEME = "face://"
"""``face://session`` / ``face://<n>``: filled from the identify-face step of an advanced lip sync."""
VOICE_SCHEME = "voice://sha256/"
"""A storyboard custom voice to register first (sha256 of its URL and name); resolved to Kling's voice_id."""
SPEECH_SCHEME = "speech://sha256/"
"""Speech to synthesize first (``SpeechRequest``); resolved to the audio id Kling's TTS gives it."""

UNIT_PRICE_USD = 0.14
"""Kling lists one unit at $0.14 (kling-api.md 11)."""

Family = Literal[
    "text2video", "image2video", "omni-video", "multi-image2video", "motion-control", "avatar/image2video", "lip-sync",
    "advanced-lip-sync",
]
Api = Literal["legacy", "new"]
"""Which Kling wire form a request's body is written in (``plan.capabilities.decide_api``)."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ShotSlice(Frozen):
    """Where one storyboard shot lives inside a request's clip, and what the cut keeps of it."""

    shot_id: str
    offset: float = Field(description="Seconds from the clip start where this shot begins.")
    rendered: float = Field(description="Seconds Kling renders for this shot.")
    keep: float = Field(description="Seconds the cut keeps (the shot's duration), from the shot's start.")
    prompt: str = Field(description="The rendered prompt of this shot.")
    camera: str | None = Field(None, description="The shot's camera direction in words (for the preview).")
    start_image: str | None = Field(None, description="Placeholder of the shot's start frame, if any.")
    end_image: str | None = Field(None, description="Placeholder of the shot's end frame, if any.")
    caption: str | None = None


class VoiceRegistration(Frozen):
    """A custom voice the engine registers once per account (``POST /v1/general/custom-voices``)."""

    placeholder: str = Field(description="voice://sha256/<digest of url and name>: the journal's key.")
    voice: str = Field(description="The voice's id in the storyboard's voices.")
    name: str
    url: str


class SpeechRequest(Frozen):
    """Speech the engine has Kling's TTS make before the request that speaks it (``POST /v1/audio/tts``).

    Its identity is ``placeholder`` (the digest of text, voice, language and speed), never the
    audio id, which changes each time the speech is made again (an id lives 30 days): so a request
    body naming the placeholder keeps its content key when the speech is re-made.
    """

    placeholder: str = Field(description="speech://sha256/<digest of text, voice, language, speed>: the journal's key.")
    text: str
    voice_id: str
    language: Literal["en", "zh"]
    speed: float
    low_seconds: float = Field(description="The speech's length read fast (plan.speech): the shortest it is expected.")
    high_seconds: float = Field(description="Read slowly: the length the plan prices.")
    units: float = Field(description="What the TTS call costs (0.05 units).")


class FaceStep(Frozen):
    """The identify-face call an advanced lip sync needs before its create (kling-api-2.md §5.1).

    Why in the plan: it is paid (``units``) and its answer decides whether the create can be sent
    at all (the chosen face must exist and its time window must overlap the inserted audio by
    2 s); the engine journals the answer per ``source`` so a second run does not pay it again.
    """

    source: str = Field(description="What identify-face is given: clip://<request key> (a rendered shot: its "
                        "Kling video_id) or the video file's URL.")
    face: int = Field(ge=1, description="1-based index of the face in Kling's list, ordered by start time.")
    insert_ms: int = Field(description="Where the cropped audio starts in the video (sound_insert_time).")
    crop_ms: int = Field(description="Length of the cropped audio (sound_end_time - sound_start_time).")
    units: float = Field(description="What the identify-face call costs (0.05 units).")


class ElementRegistration(Frozen):
    """A reference the engine registers once per account as a Kling element before it is used."""

    placeholder: str
    reference: str
    name: str
    description: str
    frontal_image: str | None = Field(
        None, description="Image placeholder of the frontal view (an image element; None for a video element)."
    )
    refer_images: list[str] = Field(default_factory=list, description="Image placeholders of the extra views (1-3).")
    reference_type: Literal["image_refer", "video_refer"] = Field(
        "image_refer", description="image_refer: a multi-image element; video_refer: a video-character element."
    )
    video_url: str | None = Field(
        None,
        description="A video element's clip as Kling fetches it: its URL, else a video:// placeholder that only the "
        "preview can use (kling-api-2.md §3.1).",
    )
    video_file: str | None = Field(None, description="A video element's clip (project-relative path), for the preview.")
    tags: list[str] = Field(default_factory=list)
    voice_id: str | None = Field(
        None,
        description="A voice bound to the element at registration (element_voice_id), or the voice:// placeholder "
        "of a custom voice registered first; part of the element's identity.",
    )
    custom_voice: VoiceRegistration | None = Field(
        None, description="The storyboard voice to register before the element, when voice_id is its placeholder."
    )


class Request(Frozen):
    """One paid Kling call, exactly as it will be sent (placeholders aside), with its price."""

    id: str = Field(description="Readable id in plan order, e.g. r02-pour (the first shot's id).")
    key: str = Field(description="Content key: sha256 of the canonical body (placeholders included).")
    external_task_id: str = Field(description="Sent to Kling so a lost create can be found again.")
    api: Api = Field(
        "legacy", description="Kling API the body is written for: legacy (/v1/videos/...) or new (new-standard)."
    )
    family: Family
    endpoint: str = Field(description="Create path, e.g. /v1/videos/image2video or /image-to-video/kling-3.0.")
    model: str
    mode: str
    duration: int = Field(description="Seconds Kling renders (and bills).")
    sound: bool
    aspect_ratio: str = Field(description="Expected output ratio (i2v: the start frame's, snapped).")
    width: int
    height: int
    fps: int
    body: dict[str, Any]
    images: dict[str, str] = Field(default_factory=dict, description="sha256 hex -> project-relative path.")
    media: dict[str, str] = Field(
        default_factory=dict, description="audio:// and video:// placeholder -> project-relative path."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Keys of requests whose last frame (or clip, for lip sync) is used."
    )
    elements: list[ElementRegistration] = Field(default_factory=list)
    speech: list[SpeechRequest] = Field(
        default_factory=list, description="Speech made by TTS before this request (its units are in this request's)."
    )
    shots: list[ShotSlice]
    units: float
    usd: float
    notes: list[str] = Field(default_factory=list, description="Why the planner built it this way.")
    take: int = Field(1, ge=1, description="Which render of this body: 1, or a deliberate re-take (plan.takes).")
    base_key: str = Field("", description="Take 1's key when this is a later take (empty for take 1).")
    face: FaceStep | None = Field(None, description="The paid face step an advanced lip sync needs first.")


class Plan(Frozen):
    """Every request of a storyboard, in order, with the total price."""

    project: str
    storyboard: str = Field(description="Path of the storyboard file the plan was made from.")
    requests: list[Request]
    units: float
    usd: float
    notes: list[str] = Field(default_factory=list)
    outside_files: list[str] = Field(
        default_factory=list,
        description="Files the requests upload that lie outside the project folder (as the storyboard names them).",
    )

    def request_for_shot(self, shot_id: str) -> tuple[Request, ShotSlice]:
        """The request that renders a shot, and the shot's slice of its clip."""
        for request in self.requests:
            for piece in request.shots:
                if piece.shot_id == shot_id:
                    return request, piece
        raise KeyError(shot_id)
