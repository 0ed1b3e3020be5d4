"""The small protocol every provider satisfies, so the engine drives Kling and preview alike.

Why create/query/lookup/download and not one ``render`` call: the engine journals every step
(claimed, submitted with a task id, succeeded with a URL, downloaded) so that a crash at any point
resumes without paying twice. A provider only performs the steps; the engine owns the order, the
retries around them, the budget and the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from storyboard.plan import ElementRegistration, Request, SpeechRequest, VoiceRegistration
from storyboard.render.journal import ElementVoice

TaskStatus = Literal["submitted", "processing", "succeed", "failed"]


@dataclass(frozen=True)
class Job:
    """A planned request with its placeholders made concrete for this run."""

    request: Request
    project_dir: Path
    images: dict[str, Path] = field(default_factory=dict)
    """Placeholder (``image://…`` or ``frame://…``) -> local image file."""
    elements: dict[str, int] = field(default_factory=dict)
    """Placeholder (``element://…``) -> registered Kling element_id."""
    urls: dict[str, str] = field(default_factory=dict)
    """Placeholder (``clip://<key>``) -> the URL the provider gave for that request's result (lip sync)."""
    audio_ids: dict[str, str] = field(default_factory=dict)
    """Placeholder (``speech://…``) -> the audio id TTS gave the speech (the body sends it as ``audio_id``)."""

    @property
    def external_task_id(self) -> str:
        return self.request.external_task_id


@dataclass(frozen=True)
class TaskState:
    """What the provider says about a task."""

    task_id: str
    status: TaskStatus
    video_url: str | None = None
    units_charged: float | None = None
    message: str = ""
    duration: float | None = None
    """Seconds of the result video as the provider reports them (Kling: ``"5.1"``, ``"5.041"``):
    slightly more than requested is normal, so a download is checked against this and the request."""
    watermark_url: str | None = None
    """The watermarked copy of the result, when the request asked for one (kling-api-2.md §9)."""
    adopted: bool = False
    """The task existed before this run asked for it (an earlier render under the same external id,
    paid then): it is followed and downloaded, never paid again."""
    video_id: str | None = None
    """Kling's id of the result video (``task_result.videos[].id``): what an advanced lip sync of
    this clip sends to identify-face (kling-api-2.md §5.1)."""


@dataclass(frozen=True)
class Face:
    """One face Kling found in a video: its id in the session and when it is on screen (ms)."""

    face_id: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class FaceSession:
    """What identify-face answered (kling-api-2.md §5.1): the session the lip sync names, the faces
    by start time, and what the call cost."""

    session_id: str
    faces: tuple[Face, ...]
    units_charged: float


class FaceFinder(Protocol):
    """A provider that can run an advanced lip sync's face step (Kling; the free preview needs none)."""

    async def identify_face(self, source: dict[str, str]) -> FaceSession:
        """``POST /v1/videos/identify-face`` with ``{video_id}`` or ``{video_url}``: paid, synchronous."""


@dataclass(frozen=True)
class SpeechResult:
    """Speech a provider's TTS made: what a request sends (``audio_id``) and how long it lasts."""

    audio_id: str
    duration: float
    url: str | None = None
    path: Path | None = None
    """A local file of the speech, when the provider made one (the preview); Kling keeps its own."""


@dataclass(frozen=True)
class RegisteredElement:
    """An element the account now has: its id, and the voice Kling cloned from its clip, if it heard one.

    Why the voice comes back with the id: a video-character element's clip with a human voice is
    cloned and bound by Kling itself (kling-api-2.md §3.1); the engine journals that voice with the
    element and shows it, so nobody registers the same voice again.
    """

    element_id: int
    cloned_voice: ElementVoice | None = None


class Provider(Protocol):
    """A video provider. ``name`` goes into the journal so clips of one never satisfy another.

    ``free`` says whether a create costs money; the engine skips budgets, prices and account
    look-ups for a free provider (the preview) because of this property, never because of its name.
    """

    name: str
    free: bool

    async def create(self, job: Job) -> TaskState:
        """Submit the request (this is the call that costs money)."""

    async def query(self, job: Job, task_id: str) -> TaskState:
        """The task's current state."""

    async def lookup(self, job: Job, *, thorough: bool = True) -> TaskState | None:
        """Find the task by ``job.external_task_id``; None if the account has none.

        ``thorough`` (after an ambiguous create) tries every way the provider may answer; without it
        one cheap call is made (the check before a first create, where a miss costs nothing).
        """

    async def download(self, job: Job, state: TaskState, dest: Path) -> None:
        """Write the result video to ``dest`` (the engine verifies and renames it)."""

    async def register_element(self, registration: ElementRegistration, images: dict[str, Path]) -> RegisteredElement:
        """Create the element (once per account; the engine journals the id and any cloned voice)."""

    async def register_voice(self, registration: VoiceRegistration) -> str:
        """Create the custom voice (once per account; the engine journals the id) and return its voice_id."""

    async def synthesize(self, speech: SpeechRequest) -> SpeechResult:
        """Make the speech with text-to-speech (paid per call on Kling; the engine journals the result)."""

    async def aclose(self) -> None:
        """Release connections."""
