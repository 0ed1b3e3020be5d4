"""The render engine: runs a plan through a provider, journaling every step, never paying twice.

Why it is built this way (ARCHITECTURE.md "Never pay twice"):

* Every request is one coroutine that walks the journal's state machine. Before the paid create it
  claims the request's row; after it, it records the task id; after success, the URL and the units
  Kling charged; after a verified download, the clip. A crash at any instant leaves a row that
  tells the next run exactly what to do: reuse, poll, look up, or create anew.
* Resume is the default. A verified clip is reused for free; a submitted task is polled; a
  claimed/unknown row (the create may or may not have arrived) is looked up by its
  ``external_task_id`` and only re-created if Kling proves it absent; a failed one is re-created
  with the next attempt's id.
* Adopt, never re-pay. The journal is not the only record of what was paid: the account is. A
  request with no journal row (a fresh, deleted or copied journal) is first looked up on the
  account by its external id (one cheap GET on a paid provider, before anything is claimed), and a
  create that Kling refuses as a reused external id, or answers with the existing task, yields that
  task. Either way the task is *adopted*: journaled as such, followed and downloaded like our own,
  announced with an ``adopted`` event, and never paid again under a new id.
* Failures are told apart by their type (``storyboard.errors``): a create that provably created
  nothing (``Rejected``, ``RateLimited``, ``AccountError``, ``NeverArrived``) fails its row; any
  other (``Ambiguous``, an unresolved ``ExternalIdInUse``) leaves it ``unknown`` to be looked up
  first; an ``AccountError`` stops every new create of the run. A free provider (``free``) skips
  prices, budget and account look-ups.
* A result is checked against what was asked and what Kling reports: a clip within half a second
  of the request's duration and of the reported one is kept (Kling returns 5.041 s or 5.1 s for a
  5 s request); one clearly wrong is refused with what it cost.
* A hard budget is enforced with reservations taken under a lock right before each create, so even
  with many creates in flight the spent-plus-reserved total never passes ``max_cost_units``.
* A concurrency semaphore mirrors Kling's per-account task slots (held from create until the task
  ends); downloads happen outside it, as soon as a task succeeds.
* It never prints: it emits ``RenderEvent``s; the CLI draws them.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Literal, cast

import av
from filelock import FileLock, Timeout

from storyboard.errors import (
    AccountError,
    DeadlineReached,
    ExternalIdInUse,
    HostUnreachable,
    InternalError,
    NeverArrived,
    ProviderError,
    RateLimited,
    Rejected,
    TaskFailed,
    UserError,
)
from storyboard.media import MediaError, ffmpeg_exe, probe
from storyboard.plan import (
    CLIP_SCHEME,
    ELEMENT_SCHEME,
    FRAME_SCHEME,
    IMAGE_SCHEME,
    SPEECH_SCHEME,
    UNIT_PRICE_USD,
    VIDEO_SCHEME,
    VOICE_SCHEME,
    ElementRegistration,
    Plan,
    Request,
    SpeechRequest,
    VoiceRegistration,
)
from storyboard.plan.capabilities import KIND_OUTPUT_SLACK
from storyboard.plan.lip_sync import (
    FACE_OVERLAP_SECONDS,
    SPEECH_END_SCHEME,
    SPEECH_SECONDS,
    face_placeholder,
    face_session_placeholder,
    parse_speech_end,
)
from storyboard.plan.pricing import kind_price
from storyboard.plan.speech import AUDIO_ID_DAYS, REUSE_SECONDS
from storyboard.render.health import HostHealth
from storyboard.render.journal import (
    IN_FLIGHT,
    AccountBudgetExceeded,
    AlreadyClaimed,
    Journal,
    RequestRecord,
    claim_timeout,
    external_task_id_for,
    journal_exists,
)
from storyboard.render.providers import provider_is_free
from storyboard.render.providers.base import FaceFinder, Job, Provider, SpeechResult, TaskState
from storyboard.workspace import Workspace

EventState = Literal["queued", "reused", "resumed", "adopted", "submitted", "processing", "downloading", "done",
                     "failed", "skipped", "speech"]
"""``adopted``: a task found on the account that an earlier render paid for ("adopted (already paid)");
``speech``: the request's speech was synthesized by TTS, or reused (``_speech``)."""
Decision = Literal["reuse", "resume", "create"]

DOWNLOAD_ATTEMPTS = 3
"""A corrupt or truncated download is deleted and fetched again this many times before giving up."""
DURATION_TOLERANCE = 0.5
"""Seconds a clip may differ from the requested duration and from the one Kling reports. Kling
returns a frame or a few more than asked (5.041 s, 5.1 s for 5 s); half a second off is a wrong result."""
MAX_ATTEMPTS = 20
"""External ids tried per request when earlier attempts are found failed on the account."""


@dataclass(frozen=True)
class RenderEvent:
    """One state change of one request; ``units`` is what this run has spent so far."""

    request_id: str
    key: str
    state: EventState
    elapsed: float
    units: float
    message: str = ""


@dataclass
class RenderResult:
    """What a render did. ``ok`` when nothing failed or was skipped."""

    provider: str
    done: list[str] = field(default_factory=list)
    """Requests rendered (created or resumed) and downloaded by this run."""
    reused: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    """Requests whose task was found on the account (paid by an earlier render) and downloaded."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    units_spent: float = 0.0
    """Units charged for tasks created by this run."""
    units_resumed: float = 0.0
    """Units charged for tasks an earlier run created (or an adopted task) and this run finished."""
    clips: dict[str, Path] = field(default_factory=dict)
    """Request key -> verified clip."""
    fatal: str | None = None
    cloned_voices: list[str] = field(default_factory=list)
    """One line per voice Kling cloned this run from a video element's clip (journaled with the element)."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def clip_path(project_dir: Path, provider_name: str, key: str) -> Path:
    """Clips are content-addressed per provider: a preview clip never satisfies a Kling request."""
    return Workspace.at(project_dir).clip(provider_name, key)


def rendered_clips(project_dir: Path, provider_name: str, requests: Iterable[Request]) -> dict[str, Path]:
    """Request key -> clip, for those of ``requests`` this provider has rendered (and verified:
    a clip is renamed into place only after its check)."""
    return Workspace.at(project_dir).rendered_clips(provider_name, requests)


def frame_path(project_dir: Path, key: str) -> Path:
    return Workspace.at(project_dir).frame(key)


@dataclass(frozen=True)
class ClipProblem:
    """Why a clip is refused. ``broken``: unreadable or truncated, worth fetching again; otherwise it
    plays but is the wrong length, and fetching the same result again cannot help."""

    text: str
    broken: bool


def check_clip(path: Path, request: Request, reported: float | None = None) -> ClipProblem | None:
    """None when ``path`` is a decodable video within ``DURATION_TOLERANCE`` of the request's duration
    and of ``reported`` (the duration the provider reports for the result); else what is wrong."""
    try:
        facts = probe(path)
        _decode_first_frame(path)
    except MediaError as error:
        return ClipProblem(str(error), broken=True)
    targets: list[tuple[str, float]] = []
    if request.family not in ("motion-control", "avatar/image2video", "lip-sync", "advanced-lip-sync"):
        # the output follows its input's length: the motion video, the audio, the source clip (§4.5)
        targets.append((f"{request.duration:g} s were requested", float(request.duration)))
    if reported is not None:
        targets.append((f"the provider reported {reported:g} s", reported))
    wrong = [label for label, seconds in targets if abs(facts.duration - seconds) > DURATION_TOLERANCE]
    if wrong:
        return ClipProblem(f"the clip is {facts.duration:.3f} s long ({facts.frames} frames at {float(facts.fps):g} fps)"
                           f" where {' and '.join(wrong)}, more than {DURATION_TOLERANCE:g} s off", broken=False)
    return None


def verify_clip(path: Path, request: Request, reported: float | None = None) -> str | None:
    """None when ``path`` is a playable video of the request's length (see ``check_clip``); else why not."""
    problem = check_clip(path, request, reported)
    return problem.text if problem else None


def _decode_first_frame(path: Path) -> None:
    """Decode one frame: demuxing alone (``probe``) passes a file whose packets are garbage."""
    try:
        with av.open(str(path)) as container:
            next(container.decode(video=0))
    except (av.FFmpegError, OSError, ValueError, StopIteration) as error:
        raise MediaError(f"{path}: the video does not decode ({error or 'no frame'})") from error


def is_free(provider: str | Provider) -> bool:
    """Whether a provider (or the provider of that name) renders for nothing: its ``free`` property."""
    return provider_is_free(provider) if isinstance(provider, str) else bool(provider.free)


def preview_plan(plan: Plan, project_dir: Path, provider_name: str) -> list[tuple[Request, Decision, float]]:
    """For the plan display: per request, reuse (clip verified), resume (a task exists) or create, and
    the units this run may newly spend on it. Reads the journal without creating one."""
    project_dir = Path(project_dir)
    records: dict[str, RequestRecord] = {}
    made: set[str] = set()
    """Placeholders of speech the journal holds with an audio id still young enough to reuse (not paid again)."""
    faces_paid: set[str] = set()
    """Keys of requests whose paid face step the journal already holds."""
    if journal_exists(project_dir):
        with Journal.open(project_dir) as journal:
            records = {r.key: r for r in journal.records(provider_name)}
            for speech in (s for r in plan.requests for s in r.speech):
                known = journal.speech(provider_name, speech.placeholder.removeprefix(SPEECH_SCHEME))
                if known is not None and journal.speech_age(known) < REUSE_SECONDS:
                    made.add(speech.placeholder)
            faces_paid = {request.key for request in plan.requests if request.face is not None
                          and journal.face_session(provider_name, face_source_key(request.face.source)) is not None}
    free = is_free(provider_name)
    rows: list[tuple[Request, Decision, float]] = []
    for request in plan.requests:
        reused_speech = sum(s.units for s in request.speech if s.placeholder in made)
        owed = _create_units(request) if request.key in faces_paid else request.units
        units = 0.0 if free else max(0.0, owed - reused_speech)
        clip = clip_path(project_dir, provider_name, request.key)
        record = records.get(request.key)
        reported = record.reported_duration if record else None
        if clip.is_file() and verify_clip(clip, request, reported) is None:
            rows.append((request, "reuse", 0.0))
        elif record and record.state in ("submitted", "succeeded", "downloaded"):
            rows.append((request, "resume", 0.0))
        elif record and record.state in ("claimed", "unknown"):
            rows.append((request, "resume", units))  # looked up first; re-created only if absent
        else:
            rows.append((request, "create", units))
    return rows


async def extract_last_frame(clip: Path, dest: Path) -> Path:
    """Write the clip's last frame as a PNG (for chaining shots), atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.png")
    process = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-sseof", "-1", "-i", str(clip),
        "-update", "1", "-frames:v", "1000", str(temp),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0 or not temp.is_file():
        temp.unlink(missing_ok=True)
        raise InternalError(f"could not extract the last frame of {clip}: {stderr.decode(errors='replace')[-400:]}")
    await asyncio.to_thread(_meet_minimum_side, temp)
    os.replace(temp, dest)
    return dest


MIN_IMAGE_SIDE = 300
"""Kling rejects input images with a side under 300 px (kling-api.md §2)."""


def _meet_minimum_side(path: Path) -> None:
    """Upscale a frame whose short side is under Kling's 300 px minimum (small clips, previews)."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        if min(width, height) >= MIN_IMAGE_SIDE:
            return
        scale = MIN_IMAGE_SIDE / min(width, height)
        size = (max(MIN_IMAGE_SIDE, round(width * scale)), max(MIN_IMAGE_SIDE, round(height * scale)))
        image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(path, format="PNG")


class _Budget:
    """Units spent and reserved by this run, against an optional hard limit."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.charged = 0.0
        self.reserved = 0.0
        self.lock = asyncio.Lock()

    async def reserve(self, units: float) -> str | None:
        """Reserve ``units``; None when granted, else why not."""
        async with self.lock:
            if self.limit is not None and self.charged + self.reserved + units > self.limit + 1e-9:
                return (f"budget: {units:g} units would bring this run to {self.charged + self.reserved + units:.2f} "
                        f"units, over the {self.limit:g}-unit budget; raise --max-cost to render it")
            self.reserved += units
            return None

    async def settle(self, reserved: float, charged: float) -> None:
        async with self.lock:
            self.reserved = max(0.0, self.reserved - reserved)
            self.charged += charged


class _ClaimedElsewhere(Exception):
    """A render elsewhere (another checkout or machine on the shared journal) holds the request's row."""


class _SessionExpired(Exception):
    """Kling refused an advanced lip sync because its identify-face session has expired."""


class _Stop(Exception):
    """Ends one request's coroutine with a final state (failed/skipped) and a reason."""

    def __init__(self, state: EventState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


NOTHING_CREATED = (Rejected, RateLimited, AccountError, NeverArrived, TaskFailed)
"""Create failures that prove no task is outstanding: the row fails and a rerun sends the next id.
``ExternalIdInUse`` is a ``Rejected`` but is caught before (the task it names exists)."""


class _Run:
    def __init__(self, plan: Plan, project_dir: Path, provider: Provider, journal: Journal, *, concurrency: int,
                 max_cost_units: float | None, events: Callable[[RenderEvent], None] | None,
                 sleep: Callable[[float], Awaitable[None]], clock: Callable[[], float], poll_initial: float,
                 poll_max: float, poll_timeout: float) -> None:
        self.plan = plan
        self.project_dir = project_dir
        self.provider = provider
        self.name = provider.name
        self.free = is_free(provider)
        self.journal = journal
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.budget = _Budget(max_cost_units)
        self.events = events
        self.sleep = sleep
        self.clock = clock
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.poll_timeout = poll_timeout
        self.started = clock()
        self.result = RenderResult(provider=provider.name)
        self.finished: dict[str, asyncio.Future[Path | None]] = {}
        self.element_tasks: dict[str, asyncio.Task[int]] = {}
        self.voice_tasks: dict[str, asyncio.Task[str]] = {}
        self.speech_tasks: dict[str, asyncio.Task[SpeechResult]] = {}
        self.fatal: AccountError | None = None
        self.run_id = 0
        self.shared = journal.shared
        """Other machines use this journal: a row held by another render is waited for, not resumed."""
        self.claim_timeout = claim_timeout()

    # ---- events ----------------------------------------------------------------------------

    def emit(self, request: Request, state: EventState, message: str = "") -> None:
        if self.events is not None:
            self.events(RenderEvent(request.id, request.key, state, self.clock() - self.started,
                                    self.budget.charged, message))

    # ---- one request -----------------------------------------------------------------------

    async def run_request(self, request: Request) -> None:
        future = self.finished[request.key]
        try:
            clip = await self._render(request)
        except _Stop as stop:
            (self.result.failed if stop.state == "failed" else self.result.skipped).append((request.id, stop.reason))
            if not future.done():
                future.set_result(None)
            self.emit(request, stop.state, stop.reason)
            return
        except BaseException:
            if not future.done():
                future.set_result(None)
            raise
        self.result.clips[request.key] = clip
        future.set_result(clip)

    async def _render(self, request: Request) -> Path:
        """Render one request; on a shared journal, a claim lost to another render is waited for
        (then its clip downloaded here) and the request looked at again."""
        for _ in range(MAX_ATTEMPTS):
            try:
                return await self._render_once(request)
            except _ClaimedElsewhere:
                if not self.shared:
                    raise _Stop("skipped", "another render claimed this request; run again when it has finished") from None
        raise _Stop("skipped", "other renders kept claiming this request; run again when they have finished")

    async def _render_once(self, request: Request) -> Path:
        for upstream in request.depends_on:
            if upstream in self.finished and await self.finished[upstream] is None:
                raise _Stop("skipped", f"the request it continues from ({self._id_of(upstream)}) did not render")
        clip = clip_path(self.project_dir, self.name, request.key)
        record = self.journal.get(self.name, request.key)
        reported = record.reported_duration if record else None
        if clip.is_file() and await asyncio.to_thread(verify_clip, clip, request, reported) is None:
            if record is None:
                self.journal.record_reused_clip(self.name, request.key, request.id, request.external_task_id, str(clip))
            elif record.state == "succeeded":
                self.journal.mark_downloaded(self.name, request.key, str(clip))
            self.result.reused.append(request.id)
            self.emit(request, "reused", "clip already rendered")
            return clip
        job = await self._job(request, record)
        if record is not None and record.state in IN_FLIGHT and record.owner != self.journal.owner:
            held = await self._hold_or_wait(request, job, record)
            if isinstance(held, Path):
                return held
            record = held
        if record and record.task_id and record.state in ("submitted", "succeeded", "downloaded"):
            self.emit(request, "resumed", f"task {record.task_id} from an earlier run")
            state = await self._follow(request, job, record.task_id, reserved=None)
            return await self._download(request, job, state)
        if record and record.state in ("claimed", "unknown"):
            self.emit(request, "resumed", "looking up a submission whose outcome is unknown")
            try:
                found = await self.provider.lookup(job, thorough=True)
            except ProviderError as error:
                self._note_fatal(error)
                raise _Stop("failed", f"{error} (the submission is still unresolved; run again)") from None
            if found is not None:
                self.journal.mark_submitted(self.name, request.key, found.task_id)
                state = await self._follow(request, job, found.task_id, reserved=None, known=found)
                return await self._download(request, job, state)
            # Kling proves it never arrived: send it again, same attempt id, without a new claim.
            state = await self._create(request, job, claim=False)
        elif (record is None or (record.task_id is None and record.state == "downloaded")) and not self.free:
            # No row, or only a note of a clip that has vanished since: the account may hold the task.
            adopted = await self._adopt_from_account(request, job)
            if adopted is not None:
                return adopted
            state = await self._create(request, job, claim=True)
        else:
            state = await self._create(request, job, claim=True)
        return await self._download(request, job, state)

    async def _hold_or_wait(self, request: Request, job: Job, record: RequestRecord) -> RequestRecord | Path:
        """Own an in-flight row before working on it, or wait for the render that owns it.

        A local journal has one render at a time (the project lock): its in-flight rows are a crashed
        run's, taken over at once. On a shared journal the owner may be alive on another machine:
        while its heartbeat is fresh this render waits, then downloads the clip from the recorded
        result URL into its own checkout (nothing is created twice); once the owner has been quiet
        for ``claim_timeout`` seconds (crashed, killed, unplugged) the row is taken over and resumed
        the usual way: a task id is followed, a claim without one is looked up by its external id
        before anything is sent.
        """
        if not self.shared:
            return self.journal.take_over(self.name, request.key, None) or record
        interval = min(self.poll_initial, max(0.2, self.claim_timeout / 4))
        announced = False
        current: RequestRecord | None = record
        while True:
            if current is None or current.state not in IN_FLIGHT:
                if current is not None and current.state == "failed":
                    raise _Stop("failed", f"the render that held it ({_who(current.owner)}) failed it: "
                                          f"{current.error or 'no reason given'}; run again to retry it")
                if current is not None and current.state == "downloaded" and current.video_url:
                    return await self._download_shared(request, job, current)
                raise _ClaimedElsewhere()  # gone or a vanished-clip note: look at the request again
            if current.owner == self.journal.owner:
                return current
            if current.state == "succeeded" and current.video_url:
                return await self._download_shared(request, job, current)
            quiet = self.journal.quiet_for(current)
            if quiet >= self.claim_timeout:
                taken = self.journal.take_over(self.name, request.key, self.claim_timeout)
                if taken is not None:
                    then = (f"its task {taken.task_id} is followed, not paid again" if taken.task_id else
                            "its task is looked up by its external id before anything is sent")
                    self.emit(request, "resumed", f"taken over from {_who(current.owner)} (no heartbeat for "
                                                  f"{quiet:.0f} s); {then}")
                    return taken
            elif not announced:
                announced = True
                self.emit(request, "processing", f"rendered by {_who(current.owner)}; waiting for its result")
            await self.sleep(interval)
            current = self.journal.get(self.name, request.key)

    async def _download_shared(self, request: Request, job: Job, record: RequestRecord) -> Path:
        """The clip of a task another render created, fetched from the result URL it recorded."""
        self.emit(request, "resumed", f"task {record.task_id} was rendered by {_who(record.owner)}; "
                                      "downloading its result (not paid again)")
        state = TaskState(task_id=record.task_id or "", status="succeed", video_url=record.video_url,
                          units_charged=record.units, duration=record.reported_duration)
        return await self._download(request, job, state)

    def _id_of(self, key: str) -> str:
        return next((r.id for r in self.plan.requests if r.key == key), key[:12])

    async def _job(self, request: Request, record: RequestRecord | None) -> Job:
        """The request with its images, chained frames and element ids made concrete."""
        images: dict[str, Path] = {IMAGE_SCHEME + digest: self.project_dir / rel for digest, rel in request.images.items()}
        images.update({placeholder: self.project_dir / rel for placeholder, rel in request.media.items()})
        urls: dict[str, str] = {}
        for upstream in request.depends_on:
            upstream_clip = self.result.clips.get(upstream) or clip_path(self.project_dir, self.name, upstream)
            if not upstream_clip.is_file():
                raise _Stop("skipped", f"the clip it continues from ({self._id_of(upstream)}) is missing")
            if request.family in ("lip-sync", "advanced-lip-sync"):  # the clip itself, not its last frame
                images[CLIP_SCHEME + upstream] = upstream_clip
                upstream_record = self.journal.get(self.name, upstream)
                if upstream_record is not None and upstream_record.video_url:
                    urls[CLIP_SCHEME + upstream] = upstream_record.video_url
                continue
            frame = frame_path(self.project_dir, upstream)
            if not frame.is_file():
                await extract_last_frame(upstream_clip, frame)
            images[FRAME_SCHEME + upstream] = frame
        elements: dict[str, int] = {}
        for registration in request.elements:
            elements[registration.placeholder] = await self._element(request, registration, images)
        if record is not None and record.state not in ("failed",):
            request = request.model_copy(update={"external_task_id": record.external_task_id})
        return Job(request=request, project_dir=self.project_dir, images=images, elements=elements, urls=urls)

    @staticmethod
    def _with_external_id(job: Job, external_task_id: str) -> Job:
        return replace(job, request=job.request.model_copy(update={"external_task_id": external_task_id}))

    async def _element(self, request: Request, registration: ElementRegistration, images: dict[str, Path]) -> int:
        digest = registration.placeholder.removeprefix(ELEMENT_SCHEME)
        known = self.journal.element_id(self.name, digest)
        if known is not None:
            return known
        if digest not in self.element_tasks:
            async def register() -> int:
                if self.fatal is not None:
                    raise self.fatal
                concrete = registration
                if registration.custom_voice is not None:  # its voice first: the element is bound to it
                    voice_id = await self._voice(registration.custom_voice)
                    concrete = registration.model_copy(update={"voice_id": voice_id})
                registered = await self.provider.register_element(concrete, images)
                self.journal.record_element(self.name, digest, registered.element_id)
                if registered.cloned_voice is not None:  # Kling heard a voice in the clip (video element)
                    self.journal.record_element_voice(self.name, digest, registered.element_id,
                                                      registration.reference, registered.cloned_voice)
                    shown = registered.cloned_voice.shown(registration.reference)
                    self.result.cloned_voices.append(shown)
                    self.emit(request, "processing", shown)
                return registered.element_id
            self.element_tasks[digest] = asyncio.ensure_future(register())
        try:
            return await asyncio.shield(self.element_tasks[digest])
        except ProviderError as error:
            self._note_fatal(error)
            raise _Stop("failed", f"element {registration.reference}: {error}") from None

    async def _voice(self, registration: VoiceRegistration) -> str:
        """The voice_id of a storyboard custom voice: from the journal, else registered once (shared by waiters)."""
        digest = registration.placeholder.removeprefix(VOICE_SCHEME)
        known = self.journal.voice_id(self.name, digest)
        if known is not None:
            return known
        if digest not in self.voice_tasks:
            async def register() -> str:
                voice_id = await self.provider.register_voice(registration)
                self.journal.record_voice(self.name, digest, voice_id)
                return voice_id
            self.voice_tasks[digest] = asyncio.ensure_future(register())
        return await asyncio.shield(self.voice_tasks[digest])

    # ---- speech (TTS) before a request that speaks text -------------------------------------------

    async def _spoken(self, request: Request, job: Job) -> tuple[Request, Job]:
        """The request and job with their speech made (or reused) and, for an avatar, the price of its real length.

        Run right before the paid create, never for a clip reused or a task resumed (those need no
        audio id). The avatar is billed per started second of the speech Kling made, so from here
        the request is reserved and settled at that length, not the plan's estimate: a create over
        the budget left is not sent. Speech outside the avatar's 2-300 s is not sent either.
        """
        audio_ids, images = dict(job.audio_ids), dict(job.images)
        seconds = 0.0
        lengths: dict[str, float] = {}
        for speech in request.speech:
            result = await self._speech(request, speech)
            audio_ids[speech.placeholder] = result.audio_id
            if result.path is not None:
                images[speech.placeholder] = result.path
            seconds = max(seconds, result.duration)
            lengths[speech.placeholder] = result.duration
        job = replace(job, audio_ids=audio_ids, images=images)
        if request.family == "advanced-lip-sync":
            return self._speech_crop(request, job, lengths)
        if request.family != "avatar/image2video":
            return request, job  # a kind billed by other lengths (a lip sync bills its video) keeps its price
        if not 2.0 <= seconds <= 300.0:
            raise _Stop("failed", f"its speech lasts {seconds:.2f} s and Kling's avatar takes 2-300 s of speech: "
                                  "change the text (the speech is kept; only the new text is synthesized)")
        billed = max(1, math.ceil(seconds - 1e-9))
        units = kind_price(request.family, request.model, request.mode, billed).units
        keep = max((piece.keep for piece in request.shots), default=0.0)
        if seconds + KIND_OUTPUT_SLACK < keep:
            self.emit(request, "speech", f"the speech lasts {seconds:.2f} s, less than the {keep:g} s the cut keeps: "
                                         f"the cut holds the clip's last frame, silent, for {keep - seconds:.2f} s; "
                                         f"set the shot's duration to {math.floor(seconds * 10) / 10:g} to avoid it")
        update = {"units": units, "duration": billed}
        return request.model_copy(update=update), replace(job, request=job.request.model_copy(update=update))

    def _speech_crop(self, request: Request, job: Job, lengths: dict[str, float]) -> tuple[Request, Job]:
        """An advanced lip sync from text: its crop's end filled with the speech's real length, checked first.

        Why here, before the face step: the speech's length is known only now, and a speech outside
        Kling's 2-60 s, or one that runs past the video's end from ``insert_at``, would be refused
        after the face step's 0.05 units; so it stops here, with only the TTS call paid (journaled:
        a changed text or insert point reuses nothing, an unchanged one pays nothing again). The
        face step then checks the real length against the face's window. The TTS units leave the
        request's price: they were paid on their own call (``_synthesize``), not by the create.
        """
        urls = dict(job.urls)
        face = request.face
        tts = sum(s.units for s in request.speech)
        paid = (f"its speech was paid ({tts:g} units of TTS, journaled: an unchanged text is not paid again); "
                "face recognition and the lip sync were not sent")
        for entry in request.body.get("face_choose", []):
            end = entry.get("sound_end_time")
            if not (isinstance(end, str) and end.startswith(SPEECH_END_SCHEME)):
                continue
            speech, room_ms = parse_speech_end(end)
            speech_ms = int(lengths[speech] * 1000)  # floored: the crop never passes the audio's end
            low, high = SPEECH_SECONDS
            if not low * 1000 <= speech_ms <= high * 1000:
                raise _Stop("failed", f"its speech lasts {speech_ms / 1000:.2f} s and Kling's advanced lip sync takes "
                                      f"{low:g}-{high:g} s of speech; {paid}. Change the text")
            if speech_ms > room_ms:
                insert = int(entry.get("sound_insert_time", 0))
                raise _Stop("failed", f"its speech lasts {speech_ms / 1000:.2f} s; inserted at {insert / 1000:g} s it "
                                      f"ends at {(insert + speech_ms) / 1000:g} s, past the end of the video "
                                      f"({(insert + room_ms) / 1000:g} s); {paid}. Insert it earlier or shorten the text")
            urls[end] = str(speech_ms)
            if face is not None:
                face = face.model_copy(update={"crop_ms": speech_ms})
        units = float(Decimal(str(request.units)) - Decimal(str(tts)))
        update: dict[str, object] = {"units": units, "face": face}
        return request.model_copy(update=update), replace(job, request=job.request.model_copy(update=update),
                                                          urls=urls)

    async def _speech(self, request: Request, speech: SpeechRequest) -> SpeechResult:
        """The speech's audio id: from the journal while Kling still keeps it, else made once by TTS.

        An audio id lives 30 days (kling-api-2.md §4); one younger than ``REUSE_SECONDS`` (29 days)
        is reused for free, an older one is made again (one 0.05-unit call) and says so. The call
        is reserved and settled in this run's budget and the account's ledger like any spend, and
        several requests speaking the same line share one call. A free provider is always asked
        (its speech is a local file it caches itself), and nothing of it is journaled.
        """
        digest = speech.placeholder.removeprefix(SPEECH_SCHEME)
        if self.free:
            return await self.provider.synthesize(speech)
        known = self.journal.speech(self.name, digest)
        if known is not None:
            age = self.journal.speech_age(known)
            if age < REUSE_SECONDS:
                self.emit(request, "speech", f"speech reused: {known.duration:.2f} s, audio id {known.audio_id} "
                                             f"made {age / 86400:.1f} days ago (nothing paid)")
                return SpeechResult(known.audio_id, known.duration, known.url)
            self.emit(request, "speech", f"the speech's audio id is {age / 86400:.1f} days old (Kling keeps it "
                                         f"{AUDIO_ID_DAYS}): synthesizing it again ({speech.units:g} units)")
        if digest not in self.speech_tasks:
            self.speech_tasks[digest] = asyncio.ensure_future(self._synthesize(request, speech, digest))
        try:
            return await asyncio.shield(self.speech_tasks[digest])
        except ProviderError as error:
            self._note_fatal(error)
            raise _Stop("failed", f"speech: {error}") from None

    async def _synthesize(self, request: Request, speech: SpeechRequest, digest: str) -> SpeechResult:
        """One paid TTS call: reserved (run budget, then the account's ledger), sent, settled, journaled."""
        if self.fatal is not None:
            raise _Stop("skipped", self._fatal_reason())
        units = speech.units
        refusal = await self.budget.reserve(units)
        if refusal:
            raise _Stop("skipped", f"{refusal} (its speech: {units:g} units of TTS, before the avatar)")
        try:
            attempt = self.journal.reserve_speech(self.name, digest, units)
        except AccountBudgetExceeded as refusal_of_account:
            await self.budget.settle(units, 0.0)
            raise _Stop("skipped", f"budget: {refusal_of_account}") from None
        try:
            result = await self.provider.synthesize(speech)
        except NOTHING_CREATED:
            self.journal.settle_speech(self.name, digest, attempt, 0.0)
            await self.budget.settle(units, 0.0)
            raise
        except ProviderError:
            # Lost on the way back (no TTS lookup exists): the ledger keeps the call reserved, as spent
            # for this run's budget; the next run synthesizes again (at most one call is lost).
            await self.budget.settle(units, units)
            raise
        self.journal.record_speech(self.name, digest, result.audio_id, result.duration, result.url)
        self.journal.settle_speech(self.name, digest, attempt, units)
        await self._account(units, units)
        self.emit(request, "speech", f"speech synthesized: {result.duration:.2f} s, audio id {result.audio_id} "
                                     f"({units:g} units)")
        return result

    def _note_fatal(self, error: ProviderError) -> None:
        if isinstance(error, AccountError) and self.fatal is None:
            self.fatal = error

    def _fatal_reason(self) -> str:
        return f"not sent: {self.fatal.message}" if self.fatal else ""

    # ---- adoption ----------------------------------------------------------------------------

    async def _adopt_from_account(self, request: Request, job: Job) -> Path | None:
        """The clip of a task the account already has for this request, when the journal has no row.

        Why look before the first create: the journal is only this folder's record; a deleted
        ``.storyboard/``, a copied project or a teammate's checkout has none, while the account
        still holds the paid task under the same external id. One cheap GET per request settles
        it (a quick lookup: a miss costs nothing, since a create under a used id is refused or
        answered with the task, and adopted then). A task found failed moves on to the next
        attempt's id, as a rerun after a failure would. None: nothing found, create it.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            external_id = external_task_id_for(request.external_task_id, attempt)
            attempt_job = self._with_external_id(job, external_id)
            try:
                found = await self.provider.lookup(attempt_job, thorough=False)
            except ProviderError as error:
                self._note_fatal(error)
                raise _Stop("failed", f"could not check the account for an earlier render of it ({error}); "
                                      "nothing was sent: run again") from None
            if found is None:
                return None
            try:
                self.journal.adopt(self.name, request.key, request.id, external_id, attempt, found.task_id,
                                   request.units, self.run_id)
            except AlreadyClaimed:
                raise _ClaimedElsewhere() from None
            if found.status == "failed":
                self._record_earlier_failure(request, found)
                continue
            return await self._follow_adopted(request, attempt_job, found)
        return None

    def _record_earlier_failure(self, request: Request, found: TaskState) -> None:
        units = found.units_charged or 0.0
        self.journal.mark_failed(self.name, request.key,
                                 f"an earlier render's task {found.task_id} had failed: {found.message or 'no reason given'}",
                                 money_spent=units > 0, units=units or None)

    def _announce_adopted(self, request: Request, task_id: str, how: str) -> None:
        self.result.adopted.append(request.id)
        self.emit(request, "adopted", f"adopted (already paid): task {task_id}, {how}; it is downloaded, "
                                      "not paid again")

    async def _follow_adopted(self, request: Request, job: Job, found: TaskState) -> Path:
        self._announce_adopted(request, found.task_id, "found on the account under this request's external id")
        state = await self._follow(request, job, found.task_id, reserved=None, known=found)
        return await self._download(request, job, state)

    # ---- the face step of an advanced lip sync (kling-api-2.md §5.1) --------------------------

    async def _face_step(self, request: Request, job: Job, *, again: bool = False) -> Job:
        """The job with its ``face://`` placeholders filled from identify-face, paid once per source.

        Why here, just before the create: the faces are known only from Kling's answer, and that
        answer decides whether the paid create may be sent at all (the chosen face must exist and be
        on screen while the speech plays). The answer is journaled per source (a rendered clip's
        request key, or the video's URL), so a rerun, a retry or a second lip sync of the same clip
        pays nothing; ``again`` (the session expired) asks once more and says so. The free preview
        sends no body and needs no face.
        """
        step = request.face
        if step is None or self.free:
            return job
        source_key = face_source_key(step.source)
        known = None if again else self.journal.face_session(self.name, source_key)
        if known is not None:
            session_id, faces = known.session_id, known.faces
        else:
            source = self._face_source(step.source)
            session_id, faces = await self._identify_face(request, source_key, source, step.units)
        paid = self.journal.face_session(self.name, source_key)
        paid_units = paid.units if paid is not None else step.units
        spoken = sum(s.units for s in request.speech)
        what_paid = (f"face recognition of it was paid ({paid_units:g} units, journaled: it is not paid again)"
                     + (f" and its speech ({spoken:g} units of TTS, journaled)" if spoken else "")
                     + "; the lip sync was not sent")
        if not faces:
            raise _Stop("failed", f"Kling found no face in the clip it re-voices; {what_paid}. Use a clip where a face "
                                  "is on screen, or method: classic")
        if step.face > len(faces):
            raise _Stop("failed", f"lip_sync face is {step.face}, but Kling found {len(faces)} face(s) in the clip; "
                                  f"{what_paid}. Set face to 1-{len(faces)} (ordered by when each appears)")
        chosen = faces[step.face - 1]
        start, end = int(chosen["start_ms"]), int(chosen["end_ms"])
        speech_end = step.insert_ms + step.crop_ms
        overlap = min(end, speech_end) - max(start, step.insert_ms)
        if overlap < FACE_OVERLAP_SECONDS * 1000:
            raise _Stop("failed", f"face {step.face} is on screen {start / 1000:g}-{end / 1000:g} s, and the speech plays "
                                  f"{step.insert_ms / 1000:g}-{speech_end / 1000:g} s of the video: Kling needs them to "
                                  f"overlap by {FACE_OVERLAP_SECONDS:g} s; {what_paid}. Move insert_at into the face's "
                                  "time, or choose another face")
        urls = {**job.urls, face_session_placeholder(step.source): session_id,
                face_placeholder(step.face): str(chosen["face_id"])}
        return replace(job, urls=urls)  # keeps the speech's audio ids (an advanced lip sync from text)

    def _face_source(self, source: str) -> dict[str, str]:
        """The identify-face body naming a face step's source: a rendered clip's Kling video id, else a URL."""
        if source.startswith(CLIP_SCHEME):
            upstream = source.removeprefix(CLIP_SCHEME)
            record = self.journal.get(self.name, upstream)
            if record is not None and record.video_id:
                return {"video_id": record.video_id}
            if record is not None and record.video_url:  # rendered before video ids were journaled
                return {"video_url": record.video_url}
            raise _Stop("failed", f"the journal has neither Kling's video id nor URL of {self._id_of(upstream)}'s clip, "
                                  "so its faces cannot be identified; nothing was sent: render that shot on Kling, "
                                  "then run again")
        if source.startswith(VIDEO_SCHEME):
            raise _Stop("failed", "the lip sync's video has no url: Kling identifies faces in videos it can fetch by "
                                  "URL only; nothing was sent: add url: beside the video in the storyboard")
        return {"video_url": source}

    async def _identify_face(self, request: Request, source_key: str, source: dict[str, str],
                             units: float) -> tuple[str, list[dict[str, object]]]:
        finder = self.provider
        if not hasattr(finder, "identify_face"):
            raise _Stop("failed", f"provider {self.name} cannot identify faces for an advanced lip sync; nothing was sent")
        refusal = await self.budget.reserve(units)
        if refusal:
            raise _Stop("skipped", refusal)
        self.emit(request, "processing", f"identify-face ({units:g} units): finding the faces of its video")
        try:
            session = await cast(FaceFinder, finder).identify_face(source)
        except ProviderError as error:
            self._note_fatal(error)
            spent = "nothing was charged" if error.money_spent is False else \
                f"it may have been charged {units:g} units (face recognition)"
            await self.budget.settle(units, 0.0)
            raise _Stop("failed", f"identify-face failed: {error}; {spent}; run again") from None
        faces: list[dict[str, object]] = [{"face_id": face.face_id, "start_ms": face.start_ms, "end_ms": face.end_ms}
                                          for face in session.faces]
        self.journal.record_face_session(self.name, source_key, session.session_id, faces, session.units_charged)
        await self._account(session.units_charged, units)
        return session.session_id, faces

    # ---- creates -----------------------------------------------------------------------------

    async def _create(self, request: Request, job: Job, *, claim: bool) -> TaskState:
        if self.fatal is not None:
            raise _Stop("skipped", self._fatal_reason())
        if request.speech:
            request, job = await self._spoken(request, job)
        job = await self._face_step(request, job)
        self.emit(request, "queued")
        async with self.slots:
            for _ in range(MAX_ATTEMPTS):
                if self.fatal is not None:
                    raise _Stop("skipped", self._fatal_reason())
                units = 0.0 if self.free else _create_units(request)
                refusal = await self.budget.reserve(units)
                if refusal:
                    raise _Stop("skipped", refusal)
                if claim:
                    try:
                        record = self.journal.claim(self.name, request.key, request.id, request.external_task_id,
                                                    units, self.run_id)
                    except AlreadyClaimed:
                        await self.budget.settle(units, 0.0)
                        raise _ClaimedElsewhere() from None
                    except AccountBudgetExceeded as refusal:
                        await self.budget.settle(units, 0.0)
                        raise _Stop("skipped", f"budget: {refusal}") from None
                    job = self._with_external_id(job, record.external_task_id)
                try:
                    created = await self._send_create(request, job, units)
                except _SessionExpired:
                    self.emit(request, "processing", "the face session had expired: identifying the face again "
                                                     f"(face recognition is paid again, {request.face.units if request.face else 0:g} units)")
                    job = await self._face_step(request, job, again=True)
                    created = await self._send_create(request, job, units, session_retry=False)
                self.journal.mark_submitted(self.name, request.key, created.task_id, adopted=created.adopted)
                if not created.adopted:
                    self.emit(request, "submitted", f"task {created.task_id}")
                    return await self._follow(request, job, created.task_id, reserved=units, known=created)
                await self.budget.settle(units, 0.0)  # nothing new was spent on it
                if created.status != "failed":
                    self._announce_adopted(request, created.task_id, "which Kling answered the create with "
                                           "(its external id was used by an earlier render)")
                    return await self._follow(request, job, created.task_id, reserved=None, known=created)
                self._record_earlier_failure(request, created)
                claim = True  # that id is spent on a failed task: the next attempt's id
        raise _Stop("failed", f"{MAX_ATTEMPTS} earlier attempts of it are failed tasks on the account; "
                              "change the request (e.g. its prompt), then run again")

    async def _send_create(self, request: Request, job: Job, units: float, *, session_retry: bool = True) -> TaskState:
        """The paid call, with its failure journaled by kind: failed (nothing outstanding) or unknown.

        An advanced lip sync refused for an expired face session raises ``_SessionExpired`` once
        (nothing was created, the claim and the reservation stand): the caller identifies again.
        """
        try:
            return await self.provider.create(job)
        except ExternalIdInUse as error:  # the task exists but could not be found: never re-send under -2
            self.journal.mark_unknown(self.name, request.key, str(error))
            await self.budget.settle(units, 0.0)
            raise _Stop("failed", str(error)) from None
        except NOTHING_CREATED as error:
            if session_retry and request.face is not None and _session_expired(error):
                raise _SessionExpired() from None
            self._note_fatal(error)
            charged = error.units_charged if isinstance(error, TaskFailed) else 0.0
            self.journal.mark_failed(self.name, request.key, str(error), money_spent=charged > 0, units=charged or None)
            await self.budget.settle(units, charged)
            raise _Stop("failed", str(error)) from None
        except ProviderError as error:  # Ambiguous, or a kind that cannot say: the task may exist
            self.journal.mark_unknown(self.name, request.key, str(error))
            raise _Stop("failed", f"{error} (it is looked up on the next run before anything is re-sent)") from None

    async def _follow(self, request: Request, job: Job, task_id: str, *, reserved: float | None,
                      known: TaskState | None = None) -> TaskState:
        """Poll until the task ends; journal and settle its charge. ``reserved`` None = not paid by this run."""
        interval = self.poll_initial
        deadline = self.clock() + self.poll_timeout
        state = known if known is not None and known.status in ("succeed", "failed") else None
        record = self.journal.get(self.name, request.key)
        if state is None and record is not None and record.state in ("succeeded", "downloaded") and record.video_url:
            return TaskState(task_id=task_id, status="succeed", video_url=record.video_url, units_charged=record.units,
                             duration=record.reported_duration)  # already settled by the run that saw it succeed
        while state is None:
            try:
                current = await self.provider.query(job, task_id)
            except ProviderError as error:
                self._note_fatal(error)
                raise _Stop("failed", f"{error} (task {task_id} is kept; run again to pick it up, no new charge)") from None
            if current.status in ("succeed", "failed"):
                state = current
                break
            self.emit(request, "processing", current.status)
            if self.clock() >= deadline:
                raise _Stop("failed", f"task {task_id} still {current.status} after {self.poll_timeout:.0f} s; "
                                      "run again later to pick it up (no new charge)")
            await self.sleep(interval)
            interval = min(self.poll_max, interval * 1.5)
        charged = 0.0 if self.free else (state.units_charged if state.units_charged is not None else
                                         (request.units if state.status == "succeed" else 0.0))
        if state.status == "failed":
            failure = TaskFailed(f"task {task_id} failed: {state.message or 'no reason given'}", task_id=task_id,
                                 units_charged=charged, money_spent=charged > 0)
            self.journal.mark_failed(self.name, request.key, failure.message, money_spent=charged > 0,
                                     units=charged or None)
        else:
            self.journal.mark_succeeded(self.name, request.key, state.video_url, charged, state.duration,
                                        state.video_id)
        await self._account(charged, reserved)
        if state.status == "failed":
            raise _Stop("failed", f"{failure.message}; {f'it was charged {charged:g} units' if charged else 'nothing was charged'}; "
                                  "run again to retry it")
        return state

    async def _account(self, charged: float, reserved: float | None) -> None:
        if reserved is None:
            self.result.units_resumed += charged
        else:
            await self.budget.settle(reserved, charged)
            self.result.units_spent += charged
        self.journal.add_run_units(self.run_id, charged)

    # ---- downloads ---------------------------------------------------------------------------

    async def _download(self, request: Request, job: Job, state: TaskState) -> Path:
        clip = clip_path(self.project_dir, self.name, request.key)
        clip.parent.mkdir(parents=True, exist_ok=True)
        problem = ClipProblem("not fetched", broken=True)
        for attempt in range(DOWNLOAD_ATTEMPTS):
            self.emit(request, "downloading")
            temp = clip.with_name(f".{request.key}.{uuid.uuid4().hex[:8]}.part")
            try:
                await self.provider.download(job, state, temp)
                found = await asyncio.to_thread(check_clip, temp, request, state.duration)
                if found is None:
                    os.replace(temp, clip)
                    self.journal.mark_downloaded(self.name, request.key, str(clip))
                    if request.id not in self.result.adopted:
                        self.result.done.append(request.id)
                    self.emit(request, "done")
                    return clip
                problem = found
                if not problem.broken:
                    raise _Stop("failed", f"the result of task {state.task_id} is refused: {problem.text}; "
                                          f"{self._paid(request)}; the clip is not used. Run again to fetch it once "
                                          "more (no new charge), or ask Kling support about the task")
            except ProviderError as error:
                problem = ClipProblem(str(error), broken=True)
            finally:
                temp.unlink(missing_ok=True)
            if attempt + 1 < DOWNLOAD_ATTEMPTS:
                await self.sleep(1.0 * (attempt + 1))
                if state.task_id:  # a fresh URL in case the old one expired
                    try:
                        fresh = await self.provider.query(job, state.task_id)
                        if fresh.video_url:
                            state = fresh
                    except ProviderError:
                        pass
        raise _Stop("failed", f"the video could not be downloaded intact ({problem.text}); {self._paid(request)}: "
                              "run again to download it without a new charge")

    def _paid(self, request: Request) -> str:
        """What the task behind a refused or missing clip cost, from the journal, in words."""
        if self.free:
            return "it cost nothing"
        record = self.journal.get(self.name, request.key)
        units = record.units if record and record.units is not None else request.units
        by = " by an earlier render" if record and record.adopted else ""
        return f"it is paid for{by} ({units:g} units, ${units * UNIT_PRICE_USD:.2f})"


def face_source_key(source: str) -> str:
    """The journal's key of a face step's source: a rendered clip by its request key (its video id
    comes from that request's row), a file by its URL."""
    if source.startswith(CLIP_SCHEME):
        return "clip:" + source.removeprefix(CLIP_SCHEME)
    return "url:" + source


def _create_units(request: Request) -> float:
    """Units the create itself costs: the plan's price less the face step's (paid on its own call)."""
    if request.face is None:
        return request.units
    return float(Decimal(str(request.units)) - Decimal(str(request.face.units)))


def _session_expired(error: ProviderError) -> bool:
    """Whether Kling refused an advanced lip sync for its face session's age (the fake's wording; Kling
    documents no lifetime, so any refusal naming an expired session counts)."""
    text = str(error).lower()
    return "session" in text and "expire" in text


def _who(owner: str | None) -> str:
    """``user@host`` of a row's owner (its pid and token are noise in a message)."""
    return owner.split("/", 1)[0] if owner else "an earlier render"


async def _beat(journal: Journal, interval: float) -> None:
    """Keep this render's claims alive on a shared journal until the run ends (cancelled then)."""
    while True:
        await asyncio.sleep(interval)
        journal.heartbeat()


def _deadline_reached(deadline: float, result: RenderResult) -> DeadlineReached:
    kept = len(result.done) + len(result.reused) + len(result.adopted)
    return DeadlineReached(
        f"the run's deadline ({deadline:g} s) passed: nothing new was sent after it; the {kept} clip(s) rendered "
        "are kept, and tasks already submitted are followed and downloaded by the next run without paying again",
        hint="run again (with a longer --deadline, or none) to finish",
    )


def _lock_project(project_dir: Path):
    """One render per project at a time: the journal's claims guard rows, this guards the whole run."""
    lock_file = Workspace.at(project_dir).render_lock
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"another render is running in {project_dir}",
                        hint="wait for it to finish (or stop it), then run again") from None
    return _Held(lock)


class _Held:
    """A held ``FileLock`` with the ``close()`` the run's ``finally`` calls."""

    def __init__(self, lock: FileLock) -> None:
        self._lock = lock

    def close(self) -> None:
        self._lock.release()


def _clean_partial_downloads(project_dir: Path, provider_name: str) -> None:
    """Partial downloads left by a crash: no render holds them (we hold the project lock)."""
    folder = Workspace.at(project_dir).clips_dir(provider_name)
    if folder.is_dir():
        for leftover in folder.glob(".*.part"):
            leftover.unlink(missing_ok=True)


async def render(
    plan: Plan,
    project_dir: Path,
    provider: Provider,
    *,
    concurrency: int = 2,
    max_cost_units: float | None = None,
    events: Callable[[RenderEvent], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_initial: float = 5.0,
    poll_max: float = 30.0,
    poll_timeout: float = 4 * 3600.0,
    deadline: float | None = None,
    host_health: HostHealth | None = None,
) -> RenderResult:
    """Render every request of ``plan`` (resuming what earlier runs left) and return what happened.

    A failure of one request never loses the others; an exception that is not a provider error
    (a bug, a cancellation, a crash hook in tests) stops the run with the journal consistent, so
    the next run resumes. The caller owns ``provider`` (and closes it).

    One ``HostHealth`` (``host_health``, else a default one) watches the provider's host for the
    whole run: after a few failures in a row with no answer it raises ``HostUnreachable`` naming the
    host, once, and nothing new is sent. ``deadline`` (seconds) bounds the whole run for unattended
    use: when it passes, ``DeadlineReached`` is raised; rendered clips are kept, tasks already
    submitted are followed by the next run and a create whose answer was cut off is looked up by
    its external id first (the journal holds it as claimed), so nothing is paid twice.
    """
    project_dir = Path(project_dir)
    lock = _lock_project(project_dir)
    try:
        journal = Journal.open(project_dir)
    except BaseException:
        lock.close()
        raise
    health = host_health or HostHealth()
    if hasattr(provider, "health"):
        provider.health = health  # the provider's exchange path reports to it and asks it before each send
    run = _Run(plan, project_dir, provider, journal, concurrency=concurrency, max_cost_units=max_cost_units,
               events=events, sleep=sleep, clock=clock, poll_initial=poll_initial, poll_max=poll_max,
               poll_timeout=poll_timeout)
    outcome = "crashed"
    heartbeat: asyncio.Task[None] | None = None
    try:
        _clean_partial_downloads(project_dir, provider.name)
        run.run_id = journal.start_run(provider.name, plan.storyboard)
        if journal.shared:
            heartbeat = asyncio.create_task(_beat(journal, max(0.1, run.claim_timeout / 4)))
        loop = asyncio.get_running_loop()
        for request in plan.requests:
            run.finished[request.key] = loop.create_future()
        try:
            async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
                for request in plan.requests:
                    group.create_task(run.run_request(request))
        except BaseExceptionGroup as group_error:
            first = group_error.exceptions[0]
            if isinstance(first, HostUnreachable):
                outcome = "host unreachable"
            raise first from None
        except TimeoutError:
            outcome = "deadline"
            raise _deadline_reached(deadline or 0.0, run.result) from None
        result = run.result
        if run.fatal is not None:
            kept = len(result.done) + len(result.reused) + len(result.adopted)
            what = run.fatal.message.split(";")[0].rstrip(".")
            todo = run.fatal.hint or "fix it, then run again"
            result.fatal = f"{what}: {todo}; the {kept} clips already rendered are kept"
            if run.fatal.code is not None:
                result.fatal += f" (Kling code {run.fatal.code})"
        outcome = "ok" if result.ok else "incomplete"
        return result
    finally:
        for task in run.element_tasks.values():
            task.cancel()
        for voice_task in run.voice_tasks.values():
            voice_task.cancel()
        for speech_task in run.speech_tasks.values():
            speech_task.cancel()
        if heartbeat is not None:
            heartbeat.cancel()
            # A heartbeat that died (the database went away) says so through the calls below too.
            await asyncio.gather(heartbeat, return_exceptions=True)
        journal.release()
        journal.finish_run(run.run_id, outcome) if run.run_id else None
        journal.close()
        lock.close()
