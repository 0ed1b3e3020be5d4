"""The Kling provider: one provider named ``kling`` over both of Kling's wire forms.

Each job goes to the wire its plan chose (``request.api``): ``legacy`` is spoken here (the ``/v1``
tree), ``new`` by ``kling_standard.KlingStandardWire`` (model in the path, ``GET /tasks``). Both
share one ``kling_http.KlingHttp`` (exchange, back-off, download, scrub, the create policy), one
journal (keys and clips are per provider name, so a clip is never rendered twice because the
provider object changed) and one account: external ids are unique across both APIs.
``KlingCredentials`` and ``KlingAuth`` live in ``kling_http`` and are re-exported here, the names
callers have always imported.

Why it is shaped like this (kling-api.md §1, §2, §9, §10; ARCHITECTURE.md "Never pay twice"):

* Errors are decided on the envelope's business ``code``, never on the HTTP status: the fatal
  1100/1101/1102/1304 share HTTP 429 with the retryable 1302/1303.
* Every failure is raised as one kind of ``storyboard.errors`` (``NeverArrived``, ``Ambiguous``,
  ``Rejected``, ``ExternalIdInUse``, ``RateLimited``, ``AccountError``, ``TaskFailed``,
  ``DownloadFailed``): the engine decides from the kind alone what the failure means for money.
* A create (the call that costs money) is never retried blindly. It is re-sent only when it
  provably never arrived (connect error) or Kling refused it for rate/concurrency (1302/1303).
  After an ambiguous outcome (read timeout after sending, dropped connection, 5000/5002) the task
  is first looked up by its ``external_task_id``; only a lookup proving it absent allows a re-send.
* A create refused because its ``external_task_id`` is already used (1201 "... is already used by
  task N"), or answered with a task that existed before it was sent, is *adopted*: that task was
  paid for by an earlier render (a deleted or copied journal), so it is returned marked
  ``adopted`` and followed like our own, and nothing is sent under a new id.
* Looking a task up by ``external_task_id`` has three conventions in the wild on the legacy API
  (kling-api-2.md §8): the path slot (documented), a ``?external_task_id=`` list filter, and
  ``/{id}?external_task_id=true``. They are tried in that order, and the first that finds a task
  is remembered for the client, whose misses are then trusted.
* Reads (queries, lookups, downloads) are idempotent, so they retry with exponential back-off and
  jitter. The retry loops are small and explicit rather than ``tenacity``: the create policy
  branches on *what* failed (never arrived / refused / ambiguous → look up first), which is
  clearer as code than as a retry predicate, and it needs no new dependency.
* Secrets (access key, secret key, API key, JWTs) never leave the Kling client: the credentials hide
  them from ``repr`` and every message built from Kling or httpx text is scrubbed.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from storyboard.errors import (
    Ambiguous,
    DownloadFailed,
    ExternalIdInUse,
    InternalError,
    NeverArrived,
    ProviderError,
    RateLimited,
    Rejected,
    TaskFailed,
)
from storyboard.plan import ELEMENT_SCHEME, IMAGE_SCHEME, VOICE_SCHEME, ElementRegistration, SpeechRequest, VoiceRegistration
from storyboard.plan import capabilities as caps
from storyboard.plan.speech import TTS_PATH, tts_body
from storyboard.render.providers.base import Face, FaceSession, Job, RegisteredElement, SpeechResult, TaskState, TaskStatus
from storyboard.render.providers.kling_bodies import concrete_body
from storyboard.render.providers.kling_element_views import cloned_voice
from storyboard.render.providers.kling_http import (
    KlingAuth,
    KlingCredentials,
    KlingHttp,
    _decimal,
    answered_with_older_task,
)
from storyboard.render.providers.kling_standard import KlingStandardWire
from storyboard.workspace import Workspace

__all__ = ["KlingAuth", "KlingCredentials", "KlingProvider", "resolve_body", "task_state", "wants_watermark"]

ELEMENTS_PATH = "/v1/general/advanced-custom-elements"
IDENTIFY_FACE_PATH = "/v1/videos/identify-face"
VOICES_PATH = "/v1/general/custom-voices"

LookupConvention = Literal["path", "list_filter", "flag"]
LOOKUP_CONVENTIONS: tuple[LookupConvention, ...] = ("path", "list_filter", "flag")
"""How the legacy API may find a task by external id (kling-api-2.md §8), in the order tried:
``GET {family}/{id}`` (documented), ``GET {family}?external_task_id={id}`` (a list filter, paged),
``GET {family}/{id}?external_task_id=true``."""
LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_PAGES = 50
"""The list filter is paged (a server that ignores the filter lists every task, newest first):
at most this many pages of this size are read, the account's 5000 newest tasks."""



# --------------------------------------------------------------------------------------------
# Bodies


def resolve_body(job: Job) -> dict[str, Any]:
    """The plan's legacy body with placeholders made concrete, plus this attempt's ``external_task_id``.

    ``image://`` and ``frame://`` become the raw base64 of the file (no ``data:`` prefix, §2);
    ``element://`` becomes the int ``element_id``. Nothing else changes: the body sent is the body
    that was priced and shown.
    """
    body = concrete_body(job, int)
    body["external_task_id"] = job.external_task_id
    return body


TASK_STATUSES: dict[str, TaskStatus] = {"submitted": "submitted", "processing": "processing",
                                        "succeed": "succeed", "failed": "failed"}
"""Kling's task statuses (note ``succeed``); anything else is read as still processing."""


def task_state(data: dict[str, Any]) -> TaskState:
    """A ``TaskState`` from a task object (create or query ``data``, §9.1/§9.2).

    The video's ``duration`` is a decimal string of seconds (legacy ``"5.1"``, new API ``"5.041"``,
    kling-api-2.md §9): kept as Kling reports it, so a download is checked against it.
    """
    result = data.get("task_result") or {}
    videos = result.get("videos") or []
    video = videos[0] if videos and isinstance(videos[0], dict) else {}
    status = TASK_STATUSES.get(str(data.get("task_status") or "submitted"), "processing")
    return TaskState(task_id=str(data.get("task_id", "")), status=status, video_url=video.get("url"),
                     units_charged=_decimal(data.get("final_unit_deduction")),
                     message=data.get("task_status_msg") or "", duration=_decimal(video.get("duration")),
                     watermark_url=video.get("watermark_url") or None,
                     video_id=str(video["id"]) if video.get("id") not in (None, "") else None)


def wants_watermark(job: Job) -> bool:
    """Whether the request asked Kling for a watermarked copy (legacy top level, new ``options``)."""
    body = job.request.body
    info = (body.get("options") or {}).get("watermark_info") if "options" in body else body.get("watermark_info")
    return bool(isinstance(info, dict) and info.get("enabled"))



def _external_id_of(data: dict[str, Any]) -> str | None:
    return (data.get("task_info") or {}).get("external_task_id")


# --------------------------------------------------------------------------------------------
# The provider


MAX_ELEMENT_ATTEMPTS = 20
"""Registrations of one element tried before giving up (each failed one keeps its external id)."""


class KlingProvider(KlingHttp):
    """``providers.base.Provider`` over Kling: each job on the wire its request names (``request.api``).

    One provider, not two: the journal keys clips and tasks by provider name, and a storyboard may
    mix both APIs; dispatching per job keeps one journal, one budget and one connection pool.
    """

    name = "kling"
    free = False

    def __init__(
        self,
        credentials: KlingCredentials,
        *,
        element_poll_interval: float = 3.0,
        element_poll_limit: int = 200,
        lookup_page_size: int = LOOKUP_PAGE_SIZE,
        lookup_max_pages: int = LOOKUP_MAX_PAGES,
        **http_options: Any,
    ) -> None:
        super().__init__(credentials, **http_options)
        self.element_poll_interval = element_poll_interval
        self.element_poll_limit = element_poll_limit
        self.lookup_page_size = lookup_page_size
        self.lookup_max_pages = lookup_max_pages
        self.lookup_convention: LookupConvention | None = None
        """The external-id lookup convention that found a task on this account (None until one has)."""
        self.standard = KlingStandardWire(self)
        """The new-standard wire (``request.api == "new"``), over this same HTTP client."""

    @classmethod
    def for_project(cls, project_dir: Path, **options: Any) -> KlingProvider:
        """The client for a project: credentials from the environment, else the project's ``.env``."""
        credentials = KlingCredentials.from_env(project_dir)
        if credentials is None:
            from storyboard.errors import UserError

            half = KlingCredentials.half_set_error(project_dir)
            if half is not None:
                raise half
            raise UserError(
                "no Kling credentials are configured",
                hint="set KLINGAI_ACCESS_KEY and KLINGAI_SECRET_KEY (or KLINGAI_API_KEY) in the environment "
                "or in the project's .env file, or use --provider preview",
            )
        return cls(credentials, **options)

    def __repr__(self) -> str:
        return f"KlingProvider(base_url={self._credentials.base_url!r}, auth={self._credentials.kind!r})"

    @staticmethod
    def _is_standard(job: Job) -> bool:
        return job.request.api == "new"

    async def create(self, job: Job) -> TaskState:
        """Submit the request (the paid call) under the never-pay-twice policy, on its wire."""
        if self._is_standard(job):
            return await self.standard.create(job)
        return await self._create(job.request.endpoint, resolve_body(job), job.external_task_id, job.request.id)

    async def _create(self, endpoint: str, body: dict[str, Any], external_task_id: str, label: str) -> TaskState:
        """POST a legacy create; re-send only what provably did not arrive; adopt a task that already existed."""

        async def post(sent_at: float) -> TaskState:
            envelope = await self._exchange("POST", endpoint, body=body, during="create")
            return self._created(envelope.get("data") or {}, sent_at)

        async def find() -> TaskState | None:
            return await self._lookup(endpoint, external_task_id, thorough=True)

        async def adopt(refusal: ExternalIdInUse) -> TaskState:
            return await self._adopt(endpoint, external_task_id, refusal)

        return await self._create_with_policy(post, find, adopt, label)

    def _created(self, data: dict[str, Any], sent_at: float) -> TaskState:
        """The task a create answered with, marked adopted when it existed before the create was sent."""
        return answered_with_older_task(task_state(data), data.get("created_at"), sent_at)

    async def _adopt(self, endpoint: str, external_task_id: str, refusal: ExternalIdInUse) -> TaskState:
        """The existing task a refused create named (by the id in Kling's message, else by external id)."""
        state: TaskState | None = None
        if refusal.task_id:
            state = await self._task_at(f"{endpoint}/{refusal.task_id}", None, external_task_id)
        if state is None:
            state = await self._lookup(endpoint, external_task_id, thorough=True)
        if state is None:
            raise replace(refusal, external_task_id=external_task_id,
                          message=refusal.message + " It could not be looked up, so nothing was adopted or re-sent.")
        return replace(state, adopted=True)

    async def query(self, job: Job, task_id: str) -> TaskState:
        if self._is_standard(job):
            return await self.standard.query(job, task_id)
        envelope = await self._read(f"{job.request.endpoint}/{task_id}", during="query")
        return task_state(envelope.get("data") or {})

    async def lookup(self, job: Job, *, thorough: bool = True) -> TaskState | None:
        if self._is_standard(job):
            return await self.standard.lookup(job, thorough=thorough)
        return await self._lookup(job.request.endpoint, job.external_task_id, thorough=thorough)

    async def _lookup(self, endpoint: str, external_task_id: str, *, thorough: bool) -> TaskState | None:
        """Find a task by external id with the convention this account answers (kling-api-2.md §8).

        Once a convention has found a task it is the only one used (a miss there is a real miss).
        Until then a thorough lookup tries each in turn; a quick one (``thorough=False``, the check
        before a first create) makes one call with the documented path slot, since a miss costs
        nothing there: a create under a used id is refused or answered with that task, and adopted.
        """
        if self.lookup_convention is not None:
            return await self._lookup_with(self.lookup_convention, endpoint, external_task_id)
        for convention in LOOKUP_CONVENTIONS if thorough else LOOKUP_CONVENTIONS[:1]:
            found = await self._lookup_with(convention, endpoint, external_task_id)
            if found is not None:
                self.lookup_convention = convention
                return found
        return None

    async def _lookup_with(self, convention: LookupConvention, endpoint: str, external_task_id: str) -> TaskState | None:
        if convention == "path":
            return await self._task_at(f"{endpoint}/{external_task_id}", None, external_task_id)
        if convention == "flag":
            return await self._task_at(f"{endpoint}/{external_task_id}", {"external_task_id": "true"}, external_task_id)
        for page in range(1, self.lookup_max_pages + 1):
            params = {"external_task_id": external_task_id, "pageNum": page, "pageSize": self.lookup_page_size}
            try:
                envelope = await self._read(endpoint, params=params, during="lookup")
            except Rejected:
                return None  # this server does not take the filter
            data = envelope.get("data")
            items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
            for item in items:
                if isinstance(item, dict) and item.get("task_id") and _external_id_of(item) == external_task_id:
                    return task_state(item)
            if len(items) < self.lookup_page_size:
                return None
        return None

    async def _task_at(self, path: str, params: dict | None, external_task_id: str) -> TaskState | None:
        """The task a single-task GET answers, if it is the one with ``external_task_id``; None when absent."""
        try:
            envelope = await self._read(path, params=params, during="lookup")
        except Rejected:
            return None  # 1201/1203: no such task (or this form is not understood here)
        data = envelope.get("data")
        if not isinstance(data, dict) or not data.get("task_id"):
            return None
        if _external_id_of(data) not in (None, external_task_id):
            return None
        return task_state(data)

    async def download(self, job: Job, state: TaskState, dest: Path) -> None:
        """Stream the result video to ``dest``, and its watermarked copy beside the clip when asked for.

        The watermarked copy (``watermark_info.enabled``, kling-api-2.md §9) goes straight to its
        place in the workspace (``Workspace.watermarked_clip``): it is a side file, never used for
        assembly. It is fetched in the same step as the clip, because a clip once in place is never
        downloaded again; a failure to fetch it fails the step (the engine retries, nothing is paid
        again). A task that reports no ``watermark_url`` (absent, null or "") has no copy to fetch.
        """
        if not state.video_url:
            raise DownloadFailed(message=f"Kling reported {job.request.id} finished but gave no video URL.",
                                 hint="run again to fetch the task again")
        await self._download(state.video_url, Path(dest), job.request.id)
        if wants_watermark(job) and state.watermark_url:
            target = Workspace.at(job.project_dir).watermarked_clip(self.name, job.request.key)
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.part")
            await self._download(state.watermark_url, temp, f"{job.request.id} (watermarked copy)")
            os.replace(temp, target)

    # ---- advanced lip sync's face step (kling-api-2.md §5.1) ------------------------------------

    async def identify_face(self, source: dict[str, str]) -> FaceSession:
        """``POST /v1/videos/identify-face``: the session and faces of a video, 0.05 units a call.

        Sent once, never retried here: it is synchronous and paid, and nothing identifies a lost
        call afterwards (no task, no external id), so an ambiguous failure is reported as possibly
        charged and the engine's journal keeps every answer it got so it is not asked again.
        """
        envelope = await self._exchange("POST", IDENTIFY_FACE_PATH, body=dict(source), during="create")
        data = envelope.get("data") or {}
        session_id = data.get("session_id")
        if not session_id:
            raise ProviderError(message="Kling answered identify-face without a session_id.", money_spent=None,
                                retryable=True, hint="run again", details={"during": "identify-face"})
        faces = []
        for item in data.get("face_data") or []:
            if isinstance(item, dict) and item.get("face_id") is not None:
                faces.append(Face(str(item["face_id"]), int(item.get("start_time") or 0), int(item.get("end_time") or 0)))
        faces.sort(key=lambda face: (face.start_ms, face.end_ms))
        charged = _decimal(data.get("final_unit_deduction"))
        return FaceSession(str(session_id), tuple(faces),
                           charged if charged is not None else float(caps.FACE_RECOGNITION_UNITS))

    # ---- elements -----------------------------------------------------------------------------

    async def register_element(self, registration: ElementRegistration, images: dict[str, Path]) -> RegisteredElement:
        """Create an image or video-character element (§7.1, kling-api-2.md §3.1), poll until it succeeds.

        A video element's clip goes by URL only: without one nothing is sent (the plan advised it).
        Kling clones a human voice it hears in the clip; that voice comes back with the id.
        """

        def b64(placeholder: str) -> str:
            path = images.get(placeholder) or images.get(placeholder.removeprefix(IMAGE_SCHEME))
            if path is None:
                raise InternalError(f"element {registration.reference}: no file for {placeholder}")
            return base64.b64encode(Path(path).read_bytes()).decode("ascii")

        if registration.reference_type == "video_refer" and (
                registration.video_url is None or not registration.video_url.startswith(("http://", "https://"))):
            raise Rejected(
                message=f"element {registration.reference} is made from a video Kling can only fetch by URL, and it "
                "has none; nothing was sent.",
                hint=f"add url: (a public http(s) link to the same file) beside references.{registration.reference}"
                ".video, or use --provider preview",
                details={"during": "element"},
            )

        def body_for(external_id: str) -> dict[str, Any]:
            body: dict[str, Any] = {
                "element_name": registration.name,
                "element_description": registration.description,
                "reference_type": registration.reference_type,
            }
            if registration.reference_type == "video_refer":
                body["element_video_list"] = {"refer_videos": [{"video_url": registration.video_url}]}
            else:
                assert registration.frontal_image is not None
                body["element_image_list"] = {
                    "frontal_image": b64(registration.frontal_image),
                    "refer_images": [{"image_url": b64(p)} for p in registration.refer_images],
                }
            body["external_task_id"] = external_id
            if registration.tags:
                body["tag_list"] = [{"tag_id": tag} for tag in registration.tags]
            if registration.voice_id is not None:
                body["element_voice_id"] = registration.voice_id
            return body

        # the element's identity (its frontal image, and its bound voice if any: bodies.element_digest)
        digest = registration.placeholder.removeprefix(ELEMENT_SCHEME)
        label = f"element {registration.reference}"
        # Kling keeps external ids unique per account, failed tasks included: after a failed
        # registration the next attempt needs the next id (sb-el-<digest>, then -2, -3, ...).
        # Each id is looked up first: an earlier, lost run may have registered it already.
        attempt = 1
        while True:
            external_id = f"sb-el-{digest[:40]}" + (f"-{attempt}" if attempt > 1 else "")
            found = await self._lookup(ELEMENTS_PATH, external_id, thorough=True)
            if found is None:
                found = await self._create(ELEMENTS_PATH, body_for(external_id), external_id, label)
            if found.status != "failed" or attempt >= MAX_ELEMENT_ATTEMPTS:
                break
            attempt += 1
        state_task = found.task_id
        for _ in range(self.element_poll_limit):
            envelope = await self._read(f"{ELEMENTS_PATH}/{state_task}", during="element")
            data = envelope.get("data") or {}
            status = data.get("task_status")
            if status == "succeed":
                elements = (data.get("task_result") or {}).get("elements") or []
                if elements and elements[0].get("element_id") is not None:
                    voice = cloned_voice(elements[0], registration.voice_id)
                    return RegisteredElement(int(elements[0]["element_id"]),
                                             voice if registration.reference_type == "video_refer" else None)
            if status == "failed":
                raise TaskFailed(
                    message=f"Kling could not create the element for {registration.reference}: "
                            f"{self.scrub(data.get('task_status_msg') or 'no reason given')}.",
                    task_id=state_task, hint="use other reference images for this element, then run again",
                    details={"during": "element"},
                )
            await self._sleep(self.element_poll_interval)
        raise ProviderError(message=f"the element for {registration.reference} was not ready in time.",
                            money_spent=None, retryable=True, hint="run again later", details={"during": "element"})

    # ---- custom voices (kling-api.md §7.4, kling-api-2.md §3.2) ---------------------------------

    async def register_voice(self, registration: VoiceRegistration) -> str:
        """Clone a custom voice from its recording's URL once, poll until it succeeds, return its voice_id.

        Why looked up first: the external id (``sb-vo-<digest>``) is the voice's identity on the
        account, so a lost create, another project or a deleted journal finds the voice it paid
        0.05 units for instead of cloning it again.
        """
        digest = registration.placeholder.removeprefix(VOICE_SCHEME)
        external_id = f"sb-vo-{digest[:40]}"
        label = f"voice {registration.voice}"
        found = await self._lookup(VOICES_PATH, external_id, thorough=True)
        if found is None:
            body = {"voice_name": registration.name, "voice_url": registration.url, "external_task_id": external_id}
            found = await self._create(VOICES_PATH, body, external_id, label)
        for _ in range(self.element_poll_limit):
            data = (await self._read(f"{VOICES_PATH}/{found.task_id}", during="voice")).get("data") or {}
            status = data.get("task_status")
            if status == "succeed":
                voices = (data.get("task_result") or {}).get("voices") or []
                if voices and voices[0].get("voice_id") is not None:
                    return str(voices[0]["voice_id"])
            if status == "failed":
                raise TaskFailed(
                    message=f"Kling could not clone the voice {registration.voice}: "
                            f"{self.scrub(data.get('task_status_msg') or 'no reason given')}.",
                    task_id=found.task_id, details={"during": "voice"},
                    hint="give the voice a clean 5-30 s recording of one speaker, under a new name, then run again",
                )
            await self._sleep(self.element_poll_interval)
        raise ProviderError(message=f"the voice {registration.voice} was not ready in time.",
                            money_spent=None, retryable=True, hint="run again later", details={"during": "voice"})

    # ---- text-to-speech (kling-api-2.md §4) -------------------------------------------------------

    async def synthesize(self, speech: SpeechRequest) -> SpeechResult:
        """``POST /v1/audio/tts``: the speech's audio id, length and URL, from the create's own answer.

        TTS is synchronous as documented (the create answers ``task_result.audios[]``) and has no
        query path and no ``external_task_id``, so an answer lost on the way back cannot be looked
        up: the call is re-sent only when it provably never arrived (connect error) or was refused
        for rate (1302/1303); after an ambiguous outcome it raises ``Ambiguous`` and the next run
        synthesizes again, so at most one 0.05-unit call is lost. Nothing is invented to find it.
        All audio APIs are on ``/v1`` (there is no new-standard TTS), with either credential.
        """
        body = tts_body(speech.text, speech.voice_id, speech.language, speech.speed)
        refusals = 0
        while True:
            try:
                envelope = await self._exchange("POST", TTS_PATH, body=body, during="tts")
                break
            except (NeverArrived, RateLimited) as error:
                refusals += 1
                if refusals > self.max_create_refusals or (isinstance(error, RateLimited) and error.code == 5001):
                    raise
                await self._backoff(refusals - 1)
            except Ambiguous as error:
                raise Ambiguous(
                    message=f"the TTS call got no clear answer ({error}); Kling documents no way to look a TTS "
                            f"result up, so it may have cost {speech.units:g} units for speech that cannot be used.",
                    money_spent=None, hint="run again: the speech is synthesized again", details={"during": "tts"},
                ) from None
        data = envelope.get("data") or {}
        audios = (data.get("task_result") or {}).get("audios") or []
        audio = audios[0] if audios and isinstance(audios[0], dict) else {}
        if not audio.get("id"):
            status = data.get("task_status") or "no status"
            reason = self.scrub(str(data.get("task_status_msg") or ""))
            raise Ambiguous(
                message=f"Kling answered the TTS call without an audio ({status}{': ' + reason if reason else ''}); "
                        "no TTS query path is documented, so it cannot be followed, and it may have cost "
                        f"{speech.units:g} units.",
                money_spent=None, hint="run again to synthesize it again; if it persists, try another voice_id",
                details={"during": "tts"},
            )
        duration = _decimal(audio.get("duration"))
        return SpeechResult(audio_id=str(audio["id"]), duration=duration if duration is not None else speech.high_seconds,
                            url=audio.get("url") or None)
