"""The shot kinds that are not prompt-to-video: motion control, avatar, lip sync, and omni video inputs.

Why one module beside the planner: each of these kinds takes a *file* the user made (a motion
video, a portrait, a speech track, a clip to edit) whose facts decide what Kling renders and
bills: the output of motion control follows the reference video's usable motion, an avatar lasts
as long as its audio, a lip sync as long as its source clip, an omni edit as long as the clip it
edits. So the checks here probe those files with PyAV (``storyboard.media``) and report Kling's
limits at the YAML line that named the file, before anything is sent (kling-api-2.md §1, §2, §4,
§5). Motion control, avatar and lip sync are one request per shot, never packed into a multi-shot
request; a video reference is an option of an ordinary omni request (``video_reference_entry``).

Placeholders (resolved just before sending, like ``image://``):

* ``audio://sha256/<hex>``: a project audio file, sent as raw base64 (avatar ``sound_file`` and
  lip sync ``audio_file`` take base64 up to 5 MB);
* ``video://sha256/<hex>``: a project video without a ``url:``. Kling takes input videos by URL
  only, so the Kling client refuses such a request before sending; the preview renders it;
* ``clip://<request key>``: the clip of another request of the plan (lip sync of a rendered
  shot), sent as the URL Kling gave for it (or its video id to an advanced lip sync's face step).

Lip sync (classic and advanced, audio or text) lives in ``plan.lip_sync``, built on the helpers here.

``Request.media`` maps each audio/video placeholder to its project-relative path.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyboard.errors import Location
from storyboard.plan import AUDIO_SCHEME, VIDEO_SCHEME, FaceStep, Request, ShotSlice, SpeechRequest
from storyboard.plan import capabilities as caps
from storyboard.plan.capabilities import AVATAR, MOTION_CONTROL, OMNI
from storyboard.plan.pricing import content_key, external_task_id, kind_price, total_units, usd
from storyboard.plan.rules import Findings, check_text, seconds_text
from storyboard.plan.speech import TTS_UNITS, SpeechEstimate, estimate_seconds, speech_placeholder

if TYPE_CHECKING:
    from storyboard.load.spec import Shot
    from storyboard.media import FileFactsCache
    from storyboard.plan.bodies import ImagePlaceholders
    from storyboard.plan.shots import ResolvedShot

KIND_FIELDS = ("motion_control", "video_reference", "avatar", "lip_sync")
"""The shot fields that make a shot one of these kinds; a shot takes at most one."""
OWN_REQUEST_KINDS = ("motion_control", "avatar", "lip_sync")
"""Kinds that are a request family of their own (a video reference is an omni option)."""

KIND_WORDS = {
    "motion_control": "motion control",
    "video_reference": "a video reference",
    "avatar": "an avatar",
    "lip_sync": "lip sync",
}


# --- Kling's limits on input files (kling-api-2.md) -------------------------------------------------


@dataclass(frozen=True)
class VideoLimits:
    """What Kling accepts as an input video of one kind."""

    what: str
    max_bytes: int
    min_side: int
    max_side: int
    min_seconds: float
    max_seconds: float
    min_fps: float | None = None
    max_fps: float | None = None
    formats: tuple[str, ...] = (".mp4", ".mov")


@dataclass(frozen=True)
class AudioLimits:
    what: str
    max_bytes: int
    min_seconds: float
    max_seconds: float
    formats: tuple[str, ...] = (".mp3", ".wav", ".m4a", ".aac")


MB = 1_000_000
"""Kling's megabytes read as decimal: the stricter reading, so nothing accepted here is refused."""


def motion_video_limits(orientation: str) -> VideoLimits:
    """§1.1: mp4/mov, at most 100 MB, sides 340-3850 px, 3 s to 10 s (orientation image) or 30 s (video)."""
    return VideoLimits("the motion video", 100 * MB, 340, 3850, 3, 30 if orientation == "video" else 10)


def reference_video_limits(model: str) -> VideoLimits:
    """§2.1: mp4/mov, at most 200 MB, sides 720-2160 px, 24-60 fps, 3 s to 10 s (o1) or 15 s (v3-omni)."""
    return VideoLimits("the reference video", 200 * MB, 720, 2160, 3, 15 if model == "kling-v3-omni" else 10, 24, 60)


LIP_SYNC_VIDEO = VideoLimits("the lip-sync video", 100 * MB, 512, 2160, 2, 60)
"""§5.1: mp4/mov, at most 100 MB, 2-60 s, 720p or 1080p, sides 512-2160 px."""
AVATAR_AUDIO = AudioLimits("the avatar's audio", 5 * MB, 2, 300)
"""§4: mp3/wav/m4a/aac, at most 5 MB, 2-300 s."""
LIP_SYNC_AUDIO = AudioLimits("the lip-sync audio", 5 * MB, 2, 60)
"""§5.1: mp3/wav/m4a/aac, at most 5 MB, 2-60 s."""

MOTION_CONTROL_MODELS = ("kling-v3", "kling-v2-6")
MOTION_CONTROL_ELEMENT_MODELS = ("kling-v3",)
MAX_IMAGES_WITH_VIDEO = 4
"""Omni: reference images + elements together with a reference video (§2.1)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: list[FileFactsCache[str]] = []
"""The digest cache, made on first use: PyAV (``storyboard.media``) loads only when a plan has these kinds,
so ``validate`` of an ordinary storyboard stays light."""


def media_digest(path: Path) -> str:
    """sha256 hex of an input video or audio file (its content key part; hashed once per file).

    Raises ``OSError`` or ``media.MediaError`` for a missing or empty file.
    """
    from storyboard.media import FileFactsCache

    if not _DIGESTS:
        _DIGESTS.append(FileFactsCache(_sha256))
    return _DIGESTS[0].get(path)


def safe_media_digest(path: Path, relative: str) -> str:
    """``media_digest``, or a digest of the path for a missing file (reported at its line; no plan is made)."""
    from storyboard.media import MediaError

    try:
        return media_digest(path)
    except (MediaError, OSError):
        return hashlib.sha256(relative.encode("utf-8", "surrogatepass")).hexdigest()


# --- what kind a shot is --------------------------------------------------------------------------------


def kind_of(spec: Shot) -> str | None:
    """The first kind field the shot sets (None: an ordinary prompt-to-video shot)."""
    return next((name for name in KIND_FIELDS if getattr(spec, name) is not None), None)


def own_request_kind(spec: Shot) -> str | None:
    """The kind of a shot that is a request family of its own (motion control, avatar, lip sync)."""
    kind = kind_of(spec)
    return kind if kind in OWN_REQUEST_KINDS else None


def check_one_kind(findings: Findings, shot: ResolvedShot) -> None:
    """A shot is at most one kind: each is a different Kling endpoint."""
    kinds = [name for name in KIND_FIELDS if getattr(shot.spec, name) is not None]
    for extra in kinds[1:]:
        findings.error(
            findings.at("shots", shot.index, extra),
            f"shot {shot.id} is already {KIND_WORDS[kinds[0]]} shot ({kinds[0]}); {extra} is another kind of "
            "request: keep one, or make a second shot",
        )


# --- file facts, located -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoFacts:
    duration: float
    width: int
    height: int
    fps: float
    has_audio: bool


def _file_problem(findings: Findings, location: Location, relative: str, formats: tuple[str, ...], max_bytes: int,
                  what: str) -> Path | None:
    path = findings.loaded.resolve_path(relative)
    if path.suffix.lower() not in formats:
        findings.error(location, f"{relative} is a {path.suffix or 'suffix-less'} file: Kling takes "
                                 f"{what} as {'/'.join(f.lstrip('.') for f in formats)}; convert it")
        return None
    if not path.is_file():
        findings.error(location, f"file not found: {relative} ({what}): check the path, relative to the project folder")
        return None
    size = path.stat().st_size
    if size > max_bytes:
        findings.error(location, f"{relative} is {size / MB:.1f} MB: Kling takes {what} up to "
                                 f"{max_bytes // MB} MB; export it smaller")
        return None
    return path


def video_facts(findings: Findings, location: Location, relative: str, limits: VideoLimits) -> VideoFacts | None:
    """Probe an input video and report every Kling limit it breaks at ``location`` (None: unusable)."""
    from storyboard.media import MediaError, probe

    path = _file_problem(findings, location, relative, limits.formats, limits.max_bytes, limits.what)
    if path is None:
        return None
    try:
        facts = probe(path)
    except MediaError as error:
        findings.error(location, f"{relative} is not a video that can be read ({error}): export it as H.264 MP4")
        return None
    fps = float(facts.fps)
    result = VideoFacts(facts.duration, facts.width, facts.height, fps, facts.has_audio)
    size = f"{facts.width}x{facts.height}"
    if min(facts.width, facts.height) < limits.min_side:
        findings.error(location, f"{relative} is {size} px: Kling needs {limits.what}'s sides at least "
                                 f"{limits.min_side} px; use a larger video")
    elif max(facts.width, facts.height) > limits.max_side:
        findings.error(location, f"{relative} is {size} px: Kling takes {limits.what}'s sides up to "
                                 f"{limits.max_side} px; scale it down")
    if not limits.min_seconds <= facts.duration <= limits.max_seconds:
        findings.error(location, f"{relative} lasts {facts.duration:.2f} s: Kling takes {limits.what} from "
                                 f"{seconds_text(limits.min_seconds)} to {seconds_text(limits.max_seconds)}; trim it")
    if limits.min_fps is not None and limits.max_fps is not None and not limits.min_fps <= fps <= limits.max_fps:
        findings.error(location, f"{relative} runs at {fps:g} fps: Kling takes {limits.what} at "
                                 f"{limits.min_fps:g}-{limits.max_fps:g} fps; convert it")
    return result


def audio_seconds(findings: Findings, location: Location, relative: str, limits: AudioLimits) -> float | None:
    """Probe an input audio file and report every Kling limit it breaks (None: unusable)."""
    from storyboard.media import MediaError, audio_probe

    path = _file_problem(findings, location, relative, limits.formats, limits.max_bytes, limits.what)
    if path is None:
        return None
    try:
        facts = audio_probe(path)
    except MediaError as error:
        findings.error(location, f"{relative} is not audio that can be read ({error}): export it as WAV or MP3")
        return None
    if not limits.min_seconds <= facts.duration <= limits.max_seconds:
        findings.error(location, f"{relative} lasts {facts.duration:.2f} s: Kling takes {limits.what} from "
                                 f"{seconds_text(limits.min_seconds)} to {seconds_text(limits.max_seconds)}; trim it")
    return facts.duration


def round_half_up(seconds: float) -> int:
    """Seconds rounded to the nearest integer, halves up (Kling's "rounded" billing, §1.3, §2.1)."""
    return int(Decimal(str(seconds)).quantize(Decimal(1), ROUND_HALF_UP))


# --- exclusions shared by the kinds of their own ---------------------------------------------------------

_NOT_TAKEN = ("start_frame", "end_frame", "camera_control", "motion_brush", "voices", "references", "negative_prompt",
              "cfg_scale", "aspect_ratio")
"""Shot fields that none of motion control, avatar or lip sync sends (each is its own body)."""


def _check_not_taken(findings: Findings, shot: ResolvedShot, kind: str, extra: tuple[str, ...] = ()) -> None:
    for name in (*_NOT_TAKEN, *extra):
        if name in shot.spec.model_fields_set and getattr(shot.spec, name) not in (None, [], {}):
            findings.error(findings.at("shots", shot.index, name),
                           f"shot {shot.id} is {KIND_WORDS[kind]} shot, which takes no {name}: remove it"
                           + (" (the character image is the start; the video gives the motion)"
                              if kind == "motion_control" and name in ("start_frame", "end_frame") else ""))


def _check_kind_mode(findings: Findings, shot: ResolvedShot, kind: str) -> None:
    if shot.mode not in ("std", "pro"):
        findings.error(findings.where(shot, "mode"),
                       f"{KIND_WORDS[kind]} renders in std or pro only, not {shot.mode}: set mode std or pro")


def _check_kept(findings: Findings, shot: ResolvedShot, output: float, what: str) -> None:
    if shot.spec.duration > output + caps.KIND_OUTPUT_SLACK:
        findings.error(findings.at("shots", shot.index, "duration"),
                       f"shot {shot.id} keeps {seconds_text(shot.spec.duration)}, but its clip lasts about "
                       f"{output:.2f} s ({what}): shorten the shot's duration")


def _image_path(findings: Findings, value: str) -> str:
    reference = findings.board.references.get(value)
    return reference.image if reference and reference.image else value  # a video: refused by load.loader


# --- building one request of a kind of its own -------------------------------------------------------------


@dataclass
class KindBuild:
    """What the planner hands over to build one motion-control, avatar or lip-sync request."""

    findings: Findings
    shot: ResolvedShot
    images: ImagePlaceholders
    prompt: str | None
    request_of_shot: dict[int, Request]
    requests_so_far: int
    element: dict[str, Any] | None = None
    """``element_list`` entry of the character's element (motion control on kling-v3)."""
    media: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    speech: list[SpeechRequest] = field(default_factory=list)
    """Speech TTS makes before the request (an avatar from text, ``plan.speech``)."""
    extra_units: float = 0.0
    """Units of calls made for the request besides its own (the TTS call), added to its price."""

    def media_placeholder(self, scheme: str, relative: str) -> str:
        placeholder = scheme + safe_media_digest(self.findings.loaded.resolve_path(relative), relative)
        self.media.setdefault(placeholder, Path(relative).as_posix())
        return placeholder


@dataclass
class KindRequest:
    """A built request of a kind of its own, before it becomes a ``Request``."""

    family: str
    endpoint: str
    model: str
    mode: str
    body: dict[str, Any]
    seconds: int
    """The request's nominal length (what the plan shows and the cut may keep up to)."""
    billed: int
    sound: bool
    aspect_ratio: str
    width: int
    height: int
    fps: int
    api: str = "legacy"
    face: FaceStep | None = None
    """The paid identify-face step an advanced lip sync needs before its create (``plan.lip_sync``)."""


def check_kind_shot(findings: Findings, shot: ResolvedShot) -> None:
    """Rules of a motion-control, avatar or lip-sync shot that do not need its files."""
    kind = own_request_kind(shot.spec)
    assert kind is not None
    check_one_kind(findings, shot)
    spec = shot.spec
    if kind == "motion_control":
        _check_not_taken(findings, shot, kind)
        if shot.model not in MOTION_CONTROL_MODELS:
            findings.error(findings.where(shot, "model"),
                           f"motion control runs on {' or '.join(MOTION_CONTROL_MODELS)}, not {shot.model}: set model")
        _check_kind_mode(findings, shot, kind)
        if shot.sound:
            findings.error(findings.where(shot, "sound"),
                           "motion control has no native sound: set sound false and use motion_control.keep_sound "
                           "to keep the reference video's own sound")
    elif kind == "avatar":
        _check_not_taken(findings, shot, kind)
        _check_kind_mode(findings, shot, kind)
        if shot.sound and "sound" in spec.model_fields_set:
            findings.advise(findings.at("shots", shot.index, "sound"),
                            "an avatar's sound is its audio file: sound is ignored")
    else:
        from storyboard.plan.lip_sync import check_lip_sync_shot  # late: lip_sync builds on this module

        _check_not_taken(findings, shot, kind, ("prompt", "subject", "action", "camera", "mood"))
        check_lip_sync_shot(findings, shot)


def build_kind_request(build: KindBuild) -> Request:
    """The planned request of a motion-control, avatar or lip-sync shot, priced by its own billing rule."""
    kind = own_request_kind(build.shot.spec)
    if kind in ("avatar", "lip_sync") and build.shot.requested_api == caps.NEW_API:
        build.findings.advise(build.findings.where(build.shot, "api"),
                              f"{KIND_WORDS[kind]} exists only on Kling's /v1 paths (kling-api-2.md §4, §5): "
                              "this shot goes there whatever api says")
    from storyboard.plan.lip_sync import lip_sync_request  # late: lip_sync builds on this module

    made = {"motion_control": _motion_control, "avatar": _avatar, "lip_sync": lip_sync_request}[kind or ""](build)
    shot = build.shot
    check_text(build.findings, build.findings.at("shots", shot.index), f"shot {shot.id}'s request", build.prompt)
    cost = kind_price(made.family, made.model, made.mode, made.billed)
    build.notes.append(cost.note + (f" + {build.extra_units:g} units for TTS" if build.extra_units else ""))
    units = total_units((cost.units, build.extra_units)) if build.extra_units else cost.units
    key = content_key(made.endpoint, made.body)
    keep = min(float(shot.spec.duration), float(made.seconds)) if made.seconds else float(shot.spec.duration)
    return Request(
        id=f"r{build.requests_so_far + 1:02d}-{shot.id}",
        key=key,
        external_task_id=external_task_id(key),
        api=made.api,
        family=made.family,
        endpoint=made.endpoint,
        model=made.model,
        mode=made.mode,
        duration=made.seconds,
        sound=made.sound,
        aspect_ratio=made.aspect_ratio,
        width=made.width,
        height=made.height,
        fps=made.fps,
        body=made.body,
        images=build.images.images,
        media=build.media,
        depends_on=build.depends_on,
        speech=build.speech,
        shots=[ShotSlice(shot_id=shot.id, offset=0, rendered=made.seconds, keep=_number(keep),
                         prompt=build.prompt or "", camera=shot.spec.camera, caption=shot.spec.caption)],
        units=units,
        usd=usd(units),
        notes=build.notes,
        face=made.face,
    )


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _video_field(build: KindBuild, relative: str, url: str | None, location: Location) -> str:
    """A video as the body sends it: its URL, else a ``video://`` placeholder Kling cannot take.

    The placeholder is listed in ``Request.media`` either way: the preview renders the local file.
    """
    placeholder = build.media_placeholder(VIDEO_SCHEME, relative)
    if url:
        return url
    build.findings.advise(location, f"{relative} has no url: Kling fetches input videos by URL only, so only the "
                                    "preview provider can render this shot; add url: (a public http(s) link to "
                                    "the same file) to render it on Kling")
    return placeholder


def _output_size(mode: str, aspect_ratio: str) -> tuple[int, int]:
    return caps.output_size("kling-v3", mode, aspect_ratio)


def _snapped_ratio(build: KindBuild, relative: str) -> str:
    size = _image_size(build, relative)
    return caps.snap_aspect_ratio(*size) if size else "16:9"


def _image_size(build: KindBuild, relative: str) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(build.findings.loaded.resolve_path(relative)) as image:
            return image.size
    except (OSError, ValueError):
        return None  # the loader has already reported an unreadable image at its line


def _motion_control(build: KindBuild) -> KindRequest:
    """§1.1: ``POST /v1/videos/motion-control``; output and billing follow the motion video's length."""
    findings, shot = build.findings, build.shot
    spec = shot.spec.motion_control
    assert spec is not None
    where = ("shots", shot.index, "motion_control")
    facts = video_facts(findings, findings.at(*where, "video"), spec.video, motion_video_limits(spec.orientation))
    seconds = facts.duration if facts else 3.0
    billed = round_half_up(seconds)
    if facts:
        _check_kept(findings, shot, seconds, f"the motion video {spec.video}")
        if spec.keep_sound and not facts.has_audio:
            findings.advise(findings.at(*where, "keep_sound"),
                            f"{spec.video} has no sound track: keep_sound keeps nothing")
    character = _image_path(findings, spec.character)
    body: dict[str, Any] = {"model_name": shot.model, "mode": shot.mode}
    if build.prompt:
        body["prompt"] = build.prompt
    body["image_url"] = build.images.of(character)
    body["video_url"] = _video_field(build, spec.video, spec.url, findings.at(*where, "video"))
    body["character_orientation"] = spec.orientation
    body["keep_original_sound"] = "yes" if spec.keep_sound else "no"
    if build.element is not None:
        body["element_list"] = [build.element]
        if spec.orientation == "image":
            findings.advise(findings.at(*where, "orientation"),
                            "with an element, Kling always follows the orientation of the person in the video")
    if shot.watermark:
        body["watermark_info"] = {"enabled": True}
    endpoint, api = caps.ENDPOINTS[MOTION_CONTROL], caps.LEGACY_API
    if shot.api == caps.NEW_API:
        body, endpoint, api = standard_motion_control_body(body, shot.model), _standard_motion_endpoint(shot.model), caps.NEW_API
        build.notes.append(f"api new: {endpoint} (kling-api-2.md §1.2)")
    build.notes.append(
        f"motion control: the clip follows the usable motion of {spec.video} ({seconds:.2f} s), billed "
        f"{billed} s (output seconds rounded); Kling may keep less when the motion is fast or cut"
    )
    ratio = _snapped_ratio(build, character)
    width, height = _output_size(shot.mode, ratio)
    return KindRequest(MOTION_CONTROL, endpoint, shot.model, shot.mode, body, max(1, billed), billed,
                       bool(spec.keep_sound and facts and facts.has_audio), ratio, width, height, 24, api)


MOTION_CONTROL_PATH_MODELS = {"kling-v3": "kling-3.0", "kling-v2-6": "kling-2.6"}
"""The new-standard path model of each motion-control model (§1.2)."""


def _standard_motion_endpoint(model: str) -> str:
    return f"{caps.NEW_API_ENDPOINTS[MOTION_CONTROL]}/{MOTION_CONTROL_PATH_MODELS.get(model, model)}"


def standard_motion_control_body(legacy: dict[str, Any], model: str) -> dict[str, Any]:
    """The new-standard form of a motion-control body (§1.2): typed ``contents`` and ``settings``.

    Written from the legacy body so both forms say the same thing: ``image_url`` becomes an
    ``image`` part, ``video_url`` a ``video`` part, the element an ``element`` part labelled
    ``element_1`` (3.0 only), ``mode`` the resolution and ``keep_original_sound`` ``audio``.
    """
    contents: list[dict[str, Any]] = []
    if legacy.get("prompt"):
        contents.append({"type": "prompt", "text": legacy["prompt"]})
    contents.append({"type": "image", "url": legacy["image_url"]})
    contents.append({"type": "video", "url": legacy["video_url"]})
    for n, element in enumerate(legacy.get("element_list", []), 1):
        contents.append({"type": "element", "element_id": str(element["element_id"]), "id": f"element_{n}"})
    body: dict[str, Any] = {
        "contents": contents,
        "settings": {
            "character_orientation": legacy["character_orientation"],
            "audio": "original" if legacy["keep_original_sound"] == "yes" else "off",
            "resolution": caps.NEW_API_RESOLUTIONS[legacy["mode"]],
        },
    }
    if "watermark_info" in legacy:
        body["options"] = {"watermark_info": legacy["watermark_info"]}
    return body


def _avatar(build: KindBuild) -> KindRequest:
    """§4: ``POST /v1/videos/avatar/image2video``: a portrait speaking an audio file; billed per audio second."""
    findings, shot = build.findings, build.shot
    spec = shot.spec.avatar
    assert spec is not None
    if spec.text is not None:
        return _spoken_avatar(build)
    assert spec.audio is not None
    where = ("shots", shot.index, "avatar")
    seconds = audio_seconds(findings, findings.at(*where, "audio"), spec.audio, AVATAR_AUDIO)
    length = seconds if seconds is not None else AVATAR_AUDIO.min_seconds
    billed = math.ceil(length - 1e-9)
    if seconds is not None:
        _check_kept(findings, shot, seconds, f"the audio {spec.audio}")
    image = _image_path(findings, spec.image)
    body: dict[str, Any] = {"image": build.images.of(image),
                            "sound_file": build.media_placeholder(AUDIO_SCHEME, spec.audio)}
    if build.prompt:
        body["prompt"] = build.prompt
    body["mode"] = shot.mode
    if shot.watermark:
        body["watermark_info"] = {"enabled": True}
    build.notes.append(f"avatar: the clip lasts as long as {spec.audio} ({length:.2f} s); priced per started "
                       f"second of audio ({billed} s), Kling does not document its rounding")
    ratio = _snapped_ratio(build, image)
    width, height = _output_size(shot.mode, ratio)
    return KindRequest(AVATAR, caps.ENDPOINTS[AVATAR], caps.AVATAR_MODEL, shot.mode, body, billed, billed, True,
                       ratio, width, height, 24)


def check_speech_length(findings: Findings, text_at: Location, estimate: SpeechEstimate, limits: tuple[float, float],
                        product: str, split: str) -> None:
    """Check text that Kling's TTS speaks first against the speech length ``product`` takes.

    Why on the estimate's bracket (``plan.speech``): the real length is known only after the paid
    TTS call, so a text surely outside ``limits`` is refused, and one that may be is advised (Kling
    would refuse the request after the TTS call had been paid). ``split`` is the fix for a too-long text.
    """
    low, high = limits
    said = f"about {estimate.low:g}-{estimate.high:g} s (estimated from the text)"
    if estimate.high < low:
        findings.error(text_at, f"this text takes {said} to say: {product} needs {seconds_text(low)} to "
                                f"{seconds_text(high)} of speech; write a longer line (or a lower speed)")
    elif estimate.low < low:
        findings.advise(text_at, f"this text may take under {seconds_text(low)} to say ({said}): {product} refuses "
                                 f"speech under {seconds_text(low)}, after the {TTS_UNITS:g}-unit TTS call; "
                                 "a longer line is safer")
    if estimate.low > high:
        findings.error(text_at, f"this text takes {said} to say: {product} takes at most {seconds_text(high)} "
                                f"of speech; {split}")
    elif estimate.high > high:
        findings.advise(text_at, f"this text may take over {seconds_text(high)} to say ({said}): {product} refuses "
                                 f"speech over {seconds_text(high)}; a shorter line is safer")


def _spoken_avatar(build: KindBuild) -> KindRequest:
    """§4, text + voice: TTS makes the speech first (``SpeechRequest``), the avatar takes its ``audio_id``.

    The speech's length is unknown until TTS runs, so the request is priced on the slow reading of
    ``plan.speech`` plus the TTS call, and its limits are checked on the bracket: a text surely
    under 2 s or over 300 s of speech is refused, one that may be is advised (Kling would refuse the
    avatar after the 0.05-unit TTS call). The body names the speech by its placeholder, so its
    content key follows the text, voice, language and speed, not the audio id.
    """
    findings, shot = build.findings, build.shot
    spec = shot.spec.avatar
    assert spec is not None and spec.text is not None and spec.voice_id is not None
    where = ("shots", shot.index, "avatar")
    if spec.voice_id in findings.board.voices:
        findings.error(findings.at(*where, "voice_id"),
                       f"{spec.voice_id} is one of the storyboard's custom voices: Kling's TTS speaks its preset "
                       "voices only (kling-api-2.md §4); give a preset voice id, or record the line and use audio:")
    estimate = estimate_seconds(spec.text, spec.language, spec.speed)
    check_speech_length(findings, findings.at(*where, "text"), estimate,
                        (AVATAR_AUDIO.min_seconds, AVATAR_AUDIO.max_seconds), "Kling's avatar", "split it into two shots")
    if shot.spec.duration > estimate.high + caps.KIND_OUTPUT_SLACK:
        findings.error(findings.at("shots", shot.index, "duration"),
                       f"shot {shot.id} keeps {seconds_text(shot.spec.duration)}, but its speech lasts about "
                       f"{estimate.low:g}-{estimate.high:g} s (estimated from the text): shorten the shot's duration")
    elif shot.spec.duration > estimate.low + caps.KIND_OUTPUT_SLACK:
        findings.advise(findings.at("shots", shot.index, "duration"),
                        f"shot {shot.id} keeps {seconds_text(shot.spec.duration)}, and its speech may be as short as "
                        f"{estimate.low:g} s: if it is, the cut holds the clip's last frame, silent, for the rest "
                        "(the render says so once the speech is made); a shorter duration avoids it")
    placeholder = speech_placeholder(spec.text, spec.voice_id, spec.language, spec.speed)
    speech = SpeechRequest(placeholder=placeholder, text=spec.text, voice_id=spec.voice_id, language=spec.language,
                           speed=spec.speed, low_seconds=estimate.low, high_seconds=estimate.high, units=TTS_UNITS)
    image = _image_path(findings, spec.image)
    body: dict[str, Any] = {"image": build.images.of(image), "audio_id": placeholder}
    if build.prompt:
        body["prompt"] = build.prompt
    body["mode"] = shot.mode
    if shot.watermark:
        body["watermark_info"] = {"enabled": True}
    billed = estimate.billed_seconds
    build.speech.append(speech)
    build.extra_units += TTS_UNITS
    build.notes.append(
        f"avatar from text: Kling's TTS speaks it first ({spec.voice_id}, {spec.language}, speed {spec.speed:g}; "
        f"{TTS_UNITS:g} units per call); its length is an estimate, {estimate.low:g}-{estimate.high:g} s "
        f"(plan.speech: words or characters per second), priced on the slow reading ({billed} s) plus the TTS call; "
        "the real bill is per started second of the speech Kling makes"
    )
    ratio = _snapped_ratio(build, image)
    width, height = _output_size(shot.mode, ratio)
    return KindRequest(AVATAR, caps.ENDPOINTS[AVATAR], caps.AVATAR_MODEL, shot.mode, body, billed, billed, True,
                       ratio, width, height, 24)


# --- omni: a video reference or a video edit (§2) ----------------------------------------------------------


@dataclass(frozen=True)
class VideoInput:
    """An omni request's video, as planned: its body entry, length, and how it bills."""

    entry: dict[str, str]
    use: str
    seconds: float | None
    """The video's probed length (None when unreadable: already reported)."""

    @property
    def edit(self) -> bool:
        return self.use == "edit"


def video_reference_entry(findings: Findings, shot: ResolvedShot, family: str, has_frames: bool,
                          images_and_elements: int, placeholder: Any) -> VideoInput | None:
    """Check an omni shot's video reference and the ``video_list`` entry it sends (None: no video)."""
    spec = shot.spec.video_reference
    if spec is None:
        return None
    check_one_kind(findings, shot)
    where = ("shots", shot.index, "video_reference")
    if family != OMNI:
        findings.error(findings.at(*where),
                       f"a video reference needs an omni model (kling-v3-omni, kling-video-o1), not {shot.model}: "
                       "set model")
        return None
    facts = video_facts(findings, findings.at(*where, "video"), spec.video, reference_video_limits(shot.model))
    if shot.sound:
        findings.error(findings.where(shot, "sound"),
                       "a reference video excludes native sound: set sound false "
                       "(video_reference.keep_sound keeps the video's own sound)")
    if shot.mode == "4k":
        findings.error(findings.where(shot, "mode"), "a reference video renders in std or pro, not 4k: set mode")
    if images_and_elements > MAX_IMAGES_WITH_VIDEO:
        findings.error(findings.at("shots", shot.index, "references"),
                       f"with a reference video Kling takes at most {MAX_IMAGES_WITH_VIDEO} reference images and "
                       f"elements together (this shot has {images_and_elements}): use fewer references")
    if spec.use == "edit" and has_frames:
        findings.error(findings.at(*where, "use"),
                       "a video edit keeps the clip's own first and last frames: remove start_frame and end_frame, "
                       "or use reference")
    if spec.keep_sound and facts and not facts.has_audio:
        findings.advise(findings.at(*where, "keep_sound"), f"{spec.video} has no sound track: keep_sound keeps nothing")
    if spec.use == "edit" and facts:
        _check_kept(findings, shot, facts.duration, f"the edited video {spec.video}")
    local = placeholder(spec.video)  # listed in Request.media either way: the preview renders the file
    if spec.url:
        url = spec.url
    else:
        findings.advise(findings.at(*where, "video"),
                        f"{spec.video} has no url: Kling fetches input videos by URL only, so only the preview "
                        "provider can render this shot; add url: to render it on Kling")
        url = local
    entry = {"video_url": url, "refer_type": "base" if spec.use == "edit" else "feature",
             "keep_original_sound": "yes" if spec.keep_sound else "no"}
    return VideoInput(entry, spec.use, facts.duration if facts else None)


def check_standard_video_audio(findings: Findings, shot: ResolvedShot, video: VideoInput) -> None:
    """New API: with a ``feature_video``, 3.0 Omni takes only ``audio: off`` (§2.2)."""
    if shot.api == caps.NEW_API and not video.edit and shot.model == "kling-v3-omni" and \
            video.entry["keep_original_sound"] == "yes":
        findings.error(findings.at("shots", shot.index, "video_reference", "keep_sound"),
                       "on the new API, kling-v3-omni takes a reference video with audio off only: set keep_sound "
                       "false, use edit, or api legacy")


def standard_video_part(video: VideoInput) -> dict[str, str]:
    """The new-standard ``contents[]`` part of an omni video (§2.2): ``feature_video`` or ``base_video``."""
    return {"type": "base_video" if video.edit else "feature_video", "url": video.entry["video_url"], "id": "video_1"}
