"""A stateful, strict fake of Kling's legacy ``/v1`` video API, for tests only.

Why a fake and not recorded responses: the engine's money-saving logic (journal, dedupe by
``external_task_id``, retries that must not double-pay, concurrency back-off, verified downloads)
only shows its bugs against a server that keeps state, enforces the protocol field for field
(Kling's legacy protocol reference, mirrored in ``tests/data/kling-fixtures.json``) and misbehaves on demand. Everything the real client sends is
checked as strictly as the reference allows, so a body the fake accepts is a body the planner may
ship; what the reference leaves open is documented at the decision below.

Seams: :meth:`FakeKling.transport` (an ``httpx.MockTransport`` for sync and async clients) and
:meth:`FakeKling.handle` (the core, also served over loopback HTTP by ``tests/fakes/server.py``).

Decisions on the reference's open questions (all in one place so tests can rely on them):

* Unknown task id / external id, or a task queried on another family: HTTP 404, code 1203.
* The fake is one Kling *account*: its tasks and external ids outlive any journal, so a project
  whose ``.storyboard/`` was deleted, or a copy of it, meets the tasks it paid for again.
* Lookup by external id (kling-api-2.md §8), each form switchable with ``lookup_conventions``
  (default: all three): ``"path"`` ``GET {family}/{external_id}`` (the path slot also takes task
  ids, always); ``"list_filter"`` ``GET {family}?external_task_id=<id>`` answers a list (the match,
  or ``[]``) and takes ``pageNum``/``pageSize``; ``"flag"`` ``GET {family}/{external_id}?external_task_id=true``.
  A form switched off behaves as a server that does not know it: the path slot answers 1203 for an
  external id; the list filter and the flag are unknown query parameters (400/1201), or, with
  ``list_filter_unsupported="ignore"``, the filter is silently ignored and the whole list is served.
* Body-field problems (types, enums, ranges, unknown fields, mutual exclusions, model not offered
  on the endpoint): HTTP 400, code 1201, message ``"<field path>: <what is wrong>"``. Malformed
  JSON / non-object body / missing ``Content-Type: application/json`` on a POST: 400/1200.
  Unknown ``model_name``: 404/1203.
* ``cfg_scale`` on any ``kling-v2*`` model: rejected. ``mode`` on ``kling-v2-master`` /
  ``kling-v2-1-master``: rejected. ``voice_list`` on text2video: rejected (unknown field).
  ``aspect_ratio`` on image2video: rejected (output follows the image).
* JSON ``null`` for a top-level optional field is treated as absent.
* Elements (kling-api.md §7.1, kling-api-2.md §3.1): creating one is not charged (the reference
  leaves its price open, kling-api.md §14; the planner prices none). ``video_refer`` takes exactly
  one clip by http(s) URL (3-8 s by the URL rules below), never an image list; ``image_refer``
  never a video list. A clip whose URL is in ``fake.voiced_videos`` holds a human voice: the element
  comes back with a cloned ``element_voice_info`` (unless ``element_voice_id`` bound one). Omni with
  a reference video takes the 2026-09 rule: at most 1 video-character element, never mixed with
  multi-image elements or with reference images; kling-video-o1 takes no video-character element.
* Duplicate ``external_task_id`` (account-wide): ``duplicate_external_id="reject"`` (default)
  -> 400/1201 ``"external_task_id: '<id>' is already used by task <task_id>; it must be unique"``;
  ``"return_existing"`` -> 200 with the existing task as a query shows it now (nothing new is
  created or counted in ``creates``; ``create_attempts`` counts the POST).
* A result's reported ``duration`` is the video's length as a decimal string (``"3.0"``,
  ``"5.041"``); ``script(..., video_seconds=5.041)`` makes a task's video that long (Kling returns
  a frame or so more than asked), ``reported_seconds`` makes it report another figure.
* ``multi_shot`` accepts ``true``/``false`` and the strings ``"true"``/``"false"`` (one official
  example sends the string).
* JWT: HS256 only, ``iss`` must be the access key, ``exp`` required (integer), ``nbf`` optional
  (integer); no leeway: ``nbf > now`` -> 1003, ``exp <= now`` -> 1004. Lifetime unbounded.
* A 5000/5002 fault on a create drops the task unless ``Fault(recorded=True)``, in which case the
  task exists (and can be found by external id) although the client saw the error.
* Failed tasks are never charged; a task is charged once, when a query first reports ``succeed``.
* Prices for models missing from the official 2026 table (kling-v1, v1-5, v1-6, v2-1: 0.4/0.7 per
  s std/pro; v2-master, v2-1-master: 2.0 per s) are the reference's reseller estimates (§11.2).
* Reference videos (omni ``video_list``, motion-control ``video_url``, element videos) cannot be
  fetched, so their length comes from ``fake.reference_videos[url]``, else from a ``_<N>s.mp4``
  suffix in the URL (the fixtures' convention, e.g. ``dance_8s.mp4``), else 5 s. A URL of one of
  the fake's own results (lip sync of a rendered clip) has that result's length.
* Avatar (``/v1/videos/avatar/image2video``, kling-api-2.md §4): exactly one of ``audio_id`` /
  ``sound_file``; a base64 ``sound_file`` is decoded and its length probed with PyAV (2-300 s,
  at most 5 MB); a URL one is 5 s unless ``fake.reference_videos`` says otherwise. Billed per
  *started* second of audio (the reference leaves the rounding open; the planner prices the same).
* Text-to-speech (``POST /v1/audio/tts``, kling-api-2.md §4): exactly ``text`` (1-1000 characters),
  ``voice_id`` (one of ``PRESET_VOICES``: the reference names a "preset list" without its ids, so
  the list is the fake's own), ``voice_language`` (zh|en, default zh) and ``voice_speed`` (a number
  0.8-2.0 with one decimal, default 1.0); anything else is refused (1201). Synchronous, as the
  reference infers: the create's ``task_result.audios[]`` holds ``{id, url, duration}``; 0.05 units
  charged per call at once. The duration is computed from the text (``tts_seconds``: 2.6 words or
  4.5 CJK characters per second at speed 1.0, 0.25 s per clause break, 0.3 s of lead). An avatar
  takes ``audio_id`` only if this fake issued it within the last 30 days of ``fake.clock``, and bills
  per started second of that audio.
* Classic lip sync (``/v1/videos/lip-sync``, §5.2): ``{"input": {...}}`` plus the common
  ``external_task_id`` / ``callback_url`` (the reference shows only ``input``; every other video
  endpoint takes them). Billed 0.5 units per started 5 s of the source video (2-60 s); base64
  audio is probed (2-60 s, at most 5 MB). The result keeps the source's length. ``text2video``
  takes ``text``, ``voice_id`` (one of ``fake.lip_sync_voice_ids`` or a custom voice made on this
  account, else 400/1201 "Voice id not found"), ``voice_language`` zh|en, ``voice_speed`` <= 2.0
  (the error names it ``voiceSpeed``, as live); audio fields with it are refused. The text length
  is not limited (the reseller's 120 characters is unverified).
* Identify-face (``POST /v1/videos/identify-face``, §5.1): synchronous, ``{video_id | video_url}``
  (exactly one; a video id of a result of this account, at most 60 s; a URL as for reference
  videos, 2-60 s), charged 0.05 units at once (``identify_calls`` counts them). The faces of a
  video are ``fake.faces[video_id or url]`` (windows in seconds; ``[]`` is the "no face" control),
  else one face over the whole video; they are listed by start time with ids ``"0"``, ``"1"``...
  ``expire_face_sessions()`` makes every issued session expired (the reference does not say how
  long one lives): a create naming it is refused 400/1201 "session_id: session expired".
* Advanced lip sync (``POST /v1/videos/advanced-lip-sync``): a session this fake issued, exactly
  one ``face_choose`` entry with a face id of that session, ``sound_file`` (probed, 2-60 s, 5 MB)
  or ``audio_id`` (issued by this fake's TTS within 30 days, 2-60 s), integer ms ``sound_start_time`` <
  ``sound_end_time`` <= the audio (crop >= 2 s),
  ``sound_insert_time`` with the inserted crop inside the video and overlapping the face's window
  by >= 2 s, volumes in [0, 2]. Billed 0.5 units per started 5 s of the video (assumed as classic).
  Queried at ``GET /v1/videos/advanced-lip-sync/{task_id}``; the external-id lookup forms answer
  as for every family (kling-api.md §4.6 lists this family; the 2026-09 page shows only task_id).
"""

from __future__ import annotations

import base64
import binascii
import collections
import io
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from PIL import Image

from tests.fakes import videos

DEFAULT_ACCESS_KEY = "ak_test_7f3c2a9e51d04b6c"
DEFAULT_SECRET_KEY = "sk_test_b91e4d07c6a24f35a8d2e0f1c3b5a7d9"
DEFAULT_API_KEY = "kling_api_key_test"
DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
CDN_BASE_URL = "https://cdn.fake-kling.test"
UNREACHABLE_FILE_MESSAGE = "Something went wrong when we tried to get the contents of the file."

HTTP_STATUS = {
    0: 200, 1000: 401, 1001: 401, 1002: 401, 1003: 401, 1004: 401,
    1100: 429, 1101: 429, 1102: 429, 1103: 403,
    1200: 400, 1201: 400, 1202: 404, 1203: 404,
    1300: 400, 1301: 400, 1302: 429, 1303: 429, 1304: 429,
    5000: 500, 5001: 503, 5002: 504,
}
"""Business code -> HTTP status, the §10.1 table (1102 and 1303 are both 429)."""

DEFAULT_MESSAGES = {
    1001: "Authorization is empty",
    1002: "Authorization is invalid",
    1003: "Authorization is not yet valid",
    1004: "Authorization has expired",
    1102: "Resource pack exhausted or expired",
    1202: "The requested method is invalid",
    1203: "The requested resource does not exist",
    1302: "The API request is too fast",
    1303: "parallel task over resource pack limit",
    5000: "Server internal error",
    5001: "Server temporarily unavailable",
    5002: "Server internal timeout",
}

VIDEO_FAMILIES = ("text2video", "image2video", "multi-image2video", "omni-video", "motion-control",
                  "avatar/image2video", "lip-sync", "advanced-lip-sync")
AVATAR_FIELDS = frozenset({"image", "audio_id", "sound_file", "prompt", "mode", "watermark_info", "callback_url",
                           "external_task_id"})
LIP_SYNC_FIELDS = frozenset({"input", "callback_url", "external_task_id"})
LIP_SYNC_INPUT_FIELDS = frozenset({"mode", "video_id", "video_url", "audio_type", "audio_file", "audio_url", "text",
                                   "voice_id", "voice_language", "voice_speed", "model_name"})
AVATAR_PRICE = {"std": "0.4", "pro": "0.8"}
LIP_SYNC_PRICE_PER_5S = "0.5"
ADVANCED_LIP_SYNC_FIELDS = frozenset({"session_id", "face_choose", "watermark_info", "callback_url", "external_task_id"})
FACE_CHOOSE_FIELDS = frozenset({"face_id", "audio_id", "sound_file", "sound_start_time", "sound_end_time",
                                "sound_insert_time", "sound_volume", "original_audio_volume"})
FACE_RECOGNITION_PRICE = "0.05"
LIP_SYNC_VOICE_IDS = frozenset({"oversea_male1", "uk_man2", "commercial_lady_en_f-v1", "genshin_vindi2"})
"""Lip-sync voices the fake knows (a sample: the reference lists none; custom voices count too)."""
ELEMENTS_FAMILY = "advanced-custom-elements"
VOICES_FAMILY = "custom-voices"
"""Custom voices (kling-api.md §7.4, kling-api-2.md §3.2): a task per voice, 0.05 units each."""
VOICE_FIELDS = frozenset({"voice_name", "voice_url", "video_id", "callback_url", "external_task_id"})
TTS_PATH = "/v1/audio/tts"
TTS_FIELDS = frozenset({"text", "voice_id", "voice_language", "voice_speed"})
TTS_UNITS = "0.05"
AUDIO_ID_LIFETIME = 30 * 86400
"""Seconds a TTS audio id stays usable by the avatar (kling-api-2.md §4)."""
PRESET_VOICES = frozenset({"uk_man2", "uk_boy1", "reader_en_m-v1", "commercial_lady_en_f-v1", "calm_story1",
                           "genshin_vindi2", "zhinen_xuesheng", "ai_shatang", "ai_kaiya"})
"""The fake account's preset voices (the reference documents the list's endpoint, not its ids)."""
LOOKUP_CONVENTIONS = ("path", "list_filter", "flag")
"""Ways of finding a task by external id on the legacy API (kling-api-2.md §8)."""

_T2V_MODELS = frozenset({
    "kling-v1", "kling-v1-6", "kling-v2-master", "kling-v2-1-master", "kling-v2-5-turbo", "kling-v2-6", "kling-v3",
})
MODELS_BY_ENDPOINT: dict[str, frozenset[str]] = {
    "text2video": _T2V_MODELS,
    "image2video": _T2V_MODELS | {"kling-v1-5", "kling-v2-1"},
    "multi-image2video": frozenset({"kling-v1-6"}),
    "omni-video": frozenset({"kling-video-o1", "kling-v3-omni"}),
    "motion-control": frozenset({"kling-v2-6", "kling-v3"}),
}
KNOWN_MODELS = frozenset().union(*MODELS_BY_ENDPOINT.values())
DEFAULT_MODEL = {
    "text2video": "kling-v1", "image2video": "kling-v1", "multi-image2video": "kling-v1-6",
    "omni-video": "kling-video-o1", "motion-control": "kling-v2-6",
}
MODEL_MODES: dict[str, tuple[str, ...]] = {
    "kling-v1": ("std", "pro"), "kling-v1-5": ("std", "pro"), "kling-v1-6": ("std", "pro"),
    "kling-v2-master": (), "kling-v2-1-master": (), "kling-v2-1": ("std", "pro"),
    "kling-v2-5-turbo": ("std", "pro"), "kling-v2-6": ("std", "pro"), "kling-v3": ("std", "pro", "4k"),
    "kling-video-o1": ("std", "pro"), "kling-v3-omni": ("std", "pro", "4k"),
}
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
CAMERA_TYPES = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
CAMERA_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")
ELEMENT_TAGS = tuple(f"o_{n}" for n in range(101, 109))

_COMMON_FIELDS = frozenset({"model_name", "model", "watermark_info", "callback_url", "external_task_id"})
_SHOT_FIELDS = frozenset({"multi_shot", "shot_type", "multi_prompt"})
FIELDS_BY_ENDPOINT: dict[str, frozenset[str]] = {
    "text2video": _COMMON_FIELDS | _SHOT_FIELDS | {
        "prompt", "negative_prompt", "sound", "cfg_scale", "mode", "camera_control", "aspect_ratio", "duration"},
    "image2video": _COMMON_FIELDS | _SHOT_FIELDS | {
        "prompt", "negative_prompt", "sound", "cfg_scale", "mode", "camera_control", "duration",
        "image", "image_tail", "static_mask", "dynamic_masks", "element_list", "voice_list"},
    "multi-image2video": _COMMON_FIELDS | {
        "image_list", "prompt", "negative_prompt", "mode", "duration", "aspect_ratio"},
    "omni-video": _COMMON_FIELDS | _SHOT_FIELDS | {
        "prompt", "image_list", "element_list", "video_list", "sound", "mode", "aspect_ratio", "duration"},
    "motion-control": _COMMON_FIELDS | {
        "prompt", "image_url", "video_url", "character_orientation", "mode", "keep_original_sound", "element_list"},
}
ELEMENT_FIELDS = frozenset({
    "element_name", "element_description", "reference_type", "element_image_list", "element_video_list",
    "element_voice_id", "tag_list", "callback_url", "external_task_id",
})

PRICE_PER_SECOND: dict[tuple[str, str], dict[str, str]] = {
    ("kling-v3", "silent"): {"std": "0.6", "pro": "0.8", "4k": "3.0"},
    ("kling-v3", "audio"): {"std": "0.9", "pro": "1.2", "4k": "3.0"},
    ("kling-v3", "motion_control"): {"std": "0.9", "pro": "1.2"},
    ("kling-v3-omni", "silent"): {"std": "0.6", "pro": "0.8", "4k": "3.0"},
    ("kling-v3-omni", "audio"): {"std": "0.8", "pro": "1.0", "4k": "3.0"},
    ("kling-v3-omni", "video_input"): {"std": "0.9", "pro": "1.2"},
    ("kling-video-o1", "silent"): {"std": "0.6", "pro": "0.8"},
    ("kling-video-o1", "video_input"): {"std": "0.9", "pro": "1.2"},
    ("kling-v2-6", "silent"): {"std": "0.3", "pro": "0.5"},
    ("kling-v2-6", "audio"): {"pro": "1.0"},
    ("kling-v2-6", "audio_voice"): {"pro": "1.2"},
    ("kling-v2-6", "motion_control"): {"std": "0.5", "pro": "0.8"},
    ("kling-v2-5-turbo", "silent"): {"std": "0.3", "pro": "0.5"},
    # Not in the official 2026 table: reseller estimates from kling-api.md §11.2.
    ("kling-v1", "silent"): {"std": "0.4", "pro": "0.7"},
    ("kling-v1-5", "silent"): {"std": "0.4", "pro": "0.7"},
    ("kling-v1-6", "silent"): {"std": "0.4", "pro": "0.7"},
    ("kling-v2-1", "silent"): {"std": "0.4", "pro": "0.7"},
    ("kling-v2-master", "silent"): {"none": "2.0"},
    # kling-api-2.md §7.9: Kling 3.0 Turbo (new-standard API only), audio always included.
    ("kling-v3-turbo", "audio"): {"std": "0.8", "pro": "1.0"},
    ("kling-v2-1-master", "silent"): {"none": "2.0"},
}
"""Units per generated second by (model, feature) and mode (``"none"`` for models without modes)."""

FAULT_KINDS = {
    "rate_limit_1302": 1302, "concurrency_1303": 1303, "internal_5000": 5000, "unavailable_5001": 5001,
    "timeout_5002": 5002, "resource_pack_1102": 1102,
    "drop_after_create": None, "drop_before_create": None, "truncated_download": None, "slow_download": None,
}
FAULT_TARGETS = ("create", "query", "download", "any")
_DEFAULT_TARGET = {"drop_after_create": "create", "drop_before_create": "create",
                   "truncated_download": "download", "slow_download": "download"}


def price_units(model: str, mode: str | None, seconds: float, feature: str = "silent") -> Decimal:
    """Units for ``seconds`` of ``model`` in ``mode`` with ``feature`` (silent/audio/audio_voice/
    video_input/motion_control), from :data:`PRICE_PER_SECOND`. Raises KeyError when not offered."""
    rate = PRICE_PER_SECOND[(model, feature)][mode or "none"]
    return (Decimal(rate) * Decimal(str(seconds))).normalize()


def units_text(units: Decimal) -> str:
    """Kling's decimal-string form of a unit amount: ``"3"``, ``"6.3"``, ``"18"``."""
    text = format(units.normalize(), "f")
    return text


def make_token(access_key: str = DEFAULT_ACCESS_KEY, secret_key: str = DEFAULT_SECRET_KEY, *,
               now: float | None = None, ttl: int = 1800, skew: int = 5) -> str:
    """An AK/SK JWT exactly as the official sample builds it (iss, exp = now+ttl, nbf = now-skew)."""
    issued = int(time.time() if now is None else now)
    claims = {"iss": access_key, "exp": issued + ttl, "nbf": issued - skew}
    return jwt.encode(claims, secret_key, algorithm="HS256", headers={"alg": "HS256", "typ": "JWT"})


class KlingError(Exception):
    """Raised inside the fake to answer with an error envelope (never escapes ``handle``)."""

    def __init__(self, code: int, message: str | None = None):
        super().__init__(message or DEFAULT_MESSAGES.get(code, "error"))
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, "error")


def _invalid(field_path: str, problem: str) -> KlingError:
    return KlingError(1201, f"{field_path}: {problem}")


@dataclass
class Fault:
    """A scripted misbehaviour, queued with :meth:`FakeKling.inject`.

    ``kind``: one of :data:`FAULT_KINDS`. ``times``: how many consecutive matching requests it hits.
    ``on``: "create" | "query" | "download" | "any" (default: "create" for the drop kinds,
    "download" for the download kinds, else "any"). ``after``: let this many matching requests pass
    first. ``recorded`` (internal_5000/timeout_5002 on a create): the task is recorded although the
    client gets the error. ``error`` (drop_after_create): "remote_protocol" -> httpx.RemoteProtocolError,
    "read_timeout" -> httpx.ReadTimeout. ``seconds`` (slow_download): the server sleeps this long
    before answering; in transport mode the download is only marked (``fake.slow_downloads``).
    ``full_length`` (truncated_download): the headers still announce the whole file, as when a
    connection dies mid-body (the server then hangs up after half); otherwise the short body is a
    complete, consistent response that only probing can catch.
    drop_after_create, a recorded 5000/5002 and the download kinds wait for the next matching
    request that succeeds (a create rejected by validation does not use them up).
    """

    kind: str
    times: int = 1
    on: str | None = None
    recorded: bool = False
    error: str = "remote_protocol"
    seconds: float = 0.0
    full_length: bool = False
    after: int = 0
    hits: int = field(default=0, init=False)
    passed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"Fault kind must be one of {sorted(FAULT_KINDS)}, got {self.kind!r}")
        if self.on is None:
            self.on = _DEFAULT_TARGET.get(self.kind, "any")
        if self.on not in FAULT_TARGETS:
            raise ValueError(f"Fault on must be one of {FAULT_TARGETS}, got {self.on!r}")
        if self.kind in ("drop_after_create", "drop_before_create") and self.on != "create":
            raise ValueError(f"{self.kind} only applies to creates (on='create')")
        if self.kind in ("truncated_download", "slow_download") and self.on != "download":
            raise ValueError(f"{self.kind} only applies to downloads (on='download')")
        if self.error not in ("remote_protocol", "read_timeout"):
            raise ValueError("Fault error must be 'remote_protocol' or 'read_timeout'")
        if self.times < 1 or self.after < 0:
            raise ValueError("Fault times must be >= 1 and after >= 0")

    def matches(self, target: str) -> bool:
        return self.on == "any" or self.on == target


@dataclass
class FakeTask:
    """One task the fake accepted (a video, or an element creation)."""

    task_id: str
    family: str
    body: dict[str, Any]
    external_task_id: str | None
    created_at: int
    updated_at: int
    polls_to_finish: int
    fail_message: str | None = None
    status: str = "submitted"
    status_message: str = ""
    units: float = 0.0
    units_text: str = "0"
    model: str = ""
    mode: str | None = None
    shots: tuple[float, ...] = ()
    sound: bool = False
    aspect_ratio: str = "16:9"
    watermark: bool = False
    queries: int = 0
    charged: bool = False
    video_id: str | None = None
    video_url: str | None = None
    watermark_url: str | None = None
    element: dict[str, Any] | None = None
    voice: dict[str, Any] | None = None
    video_seconds: float | None = None
    """Scripted length of the result video (else the requested shots)."""
    reported_seconds: float | None = None
    """Scripted duration the task reports (else the video's length)."""
    api: str = "legacy"
    """Which API created it: "legacy" (``/v1``) or "new" (``tests.fakes.kling_standard``)."""

    @property
    def duration(self) -> float:
        """Seconds of the result video (multi-shot: the sum of the shots)."""
        return self.video_seconds if self.video_seconds is not None else float(sum(self.shots))

    @property
    def reported_duration(self) -> float:
        return self.reported_seconds if self.reported_seconds is not None else self.duration

    @property
    def video_bytes(self) -> bytes:
        """The result MP4 (made on first use, cached by duration/shots/sound/aspect)."""
        shots = (self.video_seconds,) if self.video_seconds is not None else self.shots
        return videos.result_video(shots, sound=self.sound, aspect_ratio=self.aspect_ratio)

    @property
    def element_id(self) -> int | None:
        return self.element["element_id"] if self.element else None

    @property
    def active(self) -> bool:
        return self.status in ("submitted", "processing")


@dataclass
class _Script:
    key: str
    polls: int | None
    fail: str | None
    remaining: int | None
    video_seconds: float | None = None
    reported_seconds: float | None = None


@dataclass
class _Render:
    """What a validated create will produce and cost."""

    model: str
    mode: str | None
    shots: tuple[float, ...]
    sound: bool
    aspect_ratio: str
    units: Decimal
    fail_message: str | None = None


class FakeKling:
    """The fake Kling account: tasks, elements, prices, faults and counters. Thread-safe.

    Typical use::

        fake = FakeKling()                       # polls_to_finish=2
        client = httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url)
        fake.script("shot-03", fail="Failure to pass the risk control system")
        fake.inject(Fault("drop_after_create"))  # next accepted create is recorded, then the line drops
        ... run the engine ...
        assert fake.creates["shot-01"] == 1 and fake.charged_units == 3.0

    Lifecycle: a create answers ``submitted``; the N-th single-task query of a task scripted for N
    polls shows the terminal state (``succeed``, charged then and only then, or ``failed``); earlier
    queries show ``processing`` (the first one ``submitted`` when N >= 3). Lists never advance tasks.
    Result URLs: ``https://cdn.fake-kling.test/videos/<task_id>.mp4`` (``<served>/cdn/videos/...``
    under ``serve()``), answered by this same handler without auth, with real MP4 bytes and Range.

    Counters: ``creates`` (accepted video creates per external_task_id, "" when absent),
    ``create_attempts`` (video create POSTs that reached the server, accepted or not),
    ``element_creates``, ``polls`` (single-task queries per task_id), ``downloads`` (per task_id),
    ``slow_downloads``, ``faults_hit`` (per kind), ``dropped_connects``, ``charged_units``.
    Limits: ``units_balance`` is the account's total allowance: a create is refused (429/1102) when
    charged units + units of still-running tasks + this task's units would exceed it.
    ``concurrency_limit``: video tasks in submitted/processing at once; one more -> 429/1303.
    """

    def __init__(self, *, access_key: str = DEFAULT_ACCESS_KEY, secret_key: str = DEFAULT_SECRET_KEY,
                 api_keys: tuple[str, ...] | list[str] = (DEFAULT_API_KEY,), polls_to_finish: int = 2,
                 clock: Callable[[], float] = time.time, base_url: str = DEFAULT_BASE_URL,
                 element_polls_to_finish: int = 1, duplicate_external_id: str = "reject",
                 require_known_elements: bool = False, seed: int | None = None,
                 lookup_conventions: tuple[str, ...] | frozenset[str] | set[str] = LOOKUP_CONVENTIONS,
                 list_filter_unsupported: str = "reject"):
        if duplicate_external_id not in ("reject", "return_existing"):
            raise ValueError("duplicate_external_id must be 'reject' or 'return_existing'")
        if not set(lookup_conventions) <= set(LOOKUP_CONVENTIONS):
            raise ValueError(f"lookup_conventions must be among {LOOKUP_CONVENTIONS}, got {sorted(lookup_conventions)}")
        if list_filter_unsupported not in ("reject", "ignore"):
            raise ValueError("list_filter_unsupported must be 'reject' or 'ignore'")
        self.access_key = access_key
        self.secret_key = secret_key
        self.api_keys = tuple(api_keys)
        self.polls_to_finish = polls_to_finish
        self.element_polls_to_finish = element_polls_to_finish
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.cdn_base_url = CDN_BASE_URL
        """Where result URLs point; ``serve()`` switches it to ``<served base>/cdn``."""
        self.duplicate_external_id = duplicate_external_id
        """What a create under a used external id gets: "reject" (400/1201) or "return_existing"."""
        self.lookup_conventions = frozenset(lookup_conventions)
        """Which ways of finding a task by external id this account answers (module docstring)."""
        self.list_filter_unsupported = list_filter_unsupported
        self.require_known_elements = require_known_elements
        """When True, ``element_list`` ids must be elements created (and not deleted) on this fake."""

        self.creates: collections.Counter[str] = collections.Counter()
        self.create_attempts = 0
        self.element_creates: collections.Counter[str] = collections.Counter()
        self.voice_creates: collections.Counter[str] = collections.Counter()
        self.tts_calls = 0
        """TTS calls that were accepted (each charged 0.05 units)."""
        self.audios: dict[str, dict[str, Any]] = {}
        """Audio id -> {duration, issued_at, text} of the speech this fake's TTS made."""
        self.polls: collections.Counter[str] = collections.Counter()
        self.downloads: collections.Counter[str] = collections.Counter()
        self.slow_downloads: collections.Counter[str] = collections.Counter()
        self.faults_hit: collections.Counter[str] = collections.Counter()
        self.dropped_connects = 0
        self.charged_units = 0.0
        self.tasks: dict[str, FakeTask] = {}
        self.requests_log: list[httpx.Request] = []
        self.units_balance: float | None = None
        self.concurrency_limit: int | None = None
        self.reference_videos: dict[str, float] = {}
        """Reference video URL -> its length in seconds (see the module docstring)."""
        self.unreachable_urls: set[str] = set()
        """Input URLs that answer 400/1201 with the live "could not get the contents" message."""
        self.lip_sync_voice_ids: set[str] = set(LIP_SYNC_VOICE_IDS)
        """Voice ids classic text lip sync takes (besides custom voices made on this account)."""
        self.faces: dict[str, list[tuple[float, float]]] = {}
        """video_id or URL -> its faces' (start, end) seconds ([] = no face); else one face, the whole video."""
        self.face_sessions: dict[str, dict[str, Any]] = {}
        """session_id -> {"seconds", "aspect", "faces": [{face_id, start_time, end_time}], "expired"}."""
        self.identify_calls = 0
        self.voiced_videos: set[str] = set()
        """Video-element clip URLs that hold a human voice: Kling clones it and binds it to the element
        (kling-api-2.md §3.1), so the element's ``element_voice_info`` names a new voice."""

        self._faults: list[Fault] = []
        self._scripts: list[_Script] = []
        self._by_external: dict[str, str] = {}
        self._charged_exact = Decimal(0)
        self.extra_hosts: set[str] = set()
        """Hosts that reach the API besides ``base_url``'s (``serve()`` adds the loopback ones)."""
        self._lock = threading.RLock()
        self._random = random.Random(seed)
        self._id_counter = itertools.count(1)
        from tests.fakes.kling_standard import StandardApi  # late: that module builds on this one

        self.standard = StandardApi(self)
        """The new-standard routes of this same account (``/text-to-video/{model}``, ``GET /tasks``...)."""

    # ------------------------------------------------------------------ seams

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering from this fake; works for ``Client`` and ``AsyncClient``."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (or raise the httpx error a scripted network fault calls for)."""
        with self._lock:
            return self._handle(request)

    # -------------------------------------------------------------- scripting

    def script(self, external_task_id_or_prompt_substring: str, *, polls: int | None = None,
               fail: str | None = None, times: int | None = None, video_seconds: float | None = None,
               reported_seconds: float | None = None) -> None:
        """Script the lifecycle of matching tasks: terminal after ``polls`` queries, failing with
        ``task_status_msg=fail`` when given, with a result video ``video_seconds`` long reporting
        ``reported_seconds`` (defaults: the request's length, and the video's). Matches a task whose
        external_task_id equals the key, else whose prompt (or a shot prompt) contains it; applies
        to tasks created later and to a matching task that is not finished yet. ``times`` limits
        how many new tasks it applies to."""
        key = external_task_id_or_prompt_substring
        with self._lock:
            for task in self.tasks.values():
                if task.active and (key in (task.task_id, task.external_task_id) or key in _prompts(task.body)):
                    if polls is not None:
                        task.polls_to_finish = polls
                    task.fail_message = fail
                    task.video_seconds, task.reported_seconds = video_seconds, reported_seconds
            self._scripts.append(_Script(key, polls, fail, times, video_seconds, reported_seconds))

    def inject(self, fault: Fault) -> None:
        """Queue a fault; the first queued fault matching a request applies."""
        with self._lock:
            self._faults.append(fault)

    # ---------------------------------------------------------------- helpers

    def token(self, *, ttl: int = 1800) -> str:
        """A valid JWT for this fake's keys at the fake's clock."""
        return make_token(self.access_key, self.secret_key, now=self.clock(), ttl=ttl)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}

    def task_by_external_id(self, external_task_id: str) -> FakeTask | None:
        task_id = self._by_external.get(external_task_id)
        return self.tasks.get(task_id) if task_id else None

    def requests_containing(self, needle: str, *, include_authorization: bool = False) -> list[str]:
        """Requests whose URL, headers or body contain ``needle`` (for secret-leak assertions).
        The ``Authorization`` header is skipped unless asked, since it legitimately carries the token."""
        hits = []
        for request in self.requests_log:
            headers = [f"{k}: {v}" for k, v in request.headers.items()
                       if include_authorization or k.lower() != "authorization"]
            body = request.content.decode("utf-8", "replace") if request.content else ""
            if needle in str(request.url) or any(needle in h for h in headers) or needle in body:
                hits.append(f"{request.method} {request.url}")
        return hits

    # ------------------------------------------------------------- dispatch

    def _handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host not in self._known_hosts():
            raise httpx.ConnectError(f"fake Kling: no route to host {host!r}", request=request)
        path = request.url.path
        target = self._target_of(request.method, host, path)
        fault = self._next_fault(target)
        if fault is not None and fault.kind == "drop_before_create":
            self._consume(fault)
            self.dropped_connects += 1
            raise httpx.ConnectError("fake Kling: connection refused (scripted drop_before_create)",
                                     request=request)
        self.requests_log.append(request)
        if target == "create" and self._is_video_create_path(path):
            self.create_attempts += 1
        if fault is not None and FAULT_KINDS[fault.kind] is not None and not (
                fault.recorded and target == "create" and fault.kind in ("internal_5000", "timeout_5002")):
            self._consume(fault)
            return self._error(KlingError(FAULT_KINDS[fault.kind]))

        response = self._route(request, host, path)

        if fault is not None and response.status_code < 300:
            if fault.kind in ("internal_5000", "timeout_5002"):
                self._consume(fault)
                return self._error(KlingError(FAULT_KINDS[fault.kind]))
            if fault.kind == "drop_after_create":
                self._consume(fault)
                if fault.error == "read_timeout":
                    raise httpx.ReadTimeout("fake Kling: read timed out (scripted drop_after_create)",
                                            request=request)
                raise httpx.RemoteProtocolError(
                    "fake Kling: server disconnected without sending a response (scripted drop_after_create)",
                    request=request)
            if fault.kind == "truncated_download":
                self._consume(fault)
                half = response.content[: len(response.content) // 2]
                headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
                if not fault.full_length:
                    return httpx.Response(response.status_code, headers=headers, content=half)
                headers["content-length"] = str(len(response.content))
                return httpx.Response(response.status_code, headers=headers, stream=httpx.ByteStream(half),
                                      extensions={"fake_truncated": True})
            if fault.kind == "slow_download":
                self._consume(fault)
                task_id = response.extensions.get("fake_task_id", "")
                self.slow_downloads[task_id] += 1
                response.extensions["fake_slow_seconds"] = fault.seconds
        return response

    def _known_hosts(self) -> set[str]:
        return {urlsplit(self.base_url).hostname, urlsplit(self.cdn_base_url).hostname,
                urlsplit(CDN_BASE_URL).hostname} | self.extra_hosts

    def _is_cdn(self, host: str, path: str) -> bool:
        if host == urlsplit(CDN_BASE_URL).hostname:
            return True
        cdn = urlsplit(self.cdn_base_url)
        return host == cdn.hostname and cdn.path not in ("", "/") and path.startswith(cdn.path + "/")

    def _target_of(self, method: str, host: str, path: str) -> str:
        if self._is_cdn(host, path):
            return "download"
        if method == "POST" and (path.rstrip("/") in {f"/v1/videos/{f}" for f in VIDEO_FAMILIES}
                                 or path.rstrip("/") in (f"/v1/general/{ELEMENTS_FAMILY}", f"/v1/general/{VOICES_FAMILY}",
                                                         TTS_PATH)
                                 or self.standard.is_create_path(path)):
            return "create"
        if method == "GET":
            return "query"
        return "other"

    def _is_video_create_path(self, path: str) -> bool:
        return path.rstrip("/") in {f"/v1/videos/{f}" for f in VIDEO_FAMILIES} or self.standard.is_create_path(path)

    def _next_fault(self, target: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(target):
                if fault.passed < fault.after:
                    fault.passed += 1
                    continue
                return fault
        return None

    def _consume(self, fault: Fault) -> None:
        fault.hits += 1
        self.faults_hit[fault.kind] += 1
        if fault.hits >= fault.times:
            self._faults.remove(fault)

    def _route(self, request: httpx.Request, host: str, path: str) -> httpx.Response:
        if self._is_cdn(host, path):
            return self._download(request, path)
        try:
            self._authenticate(request)
            return self._route_api(request, path.rstrip("/") or "/")
        except KlingError as error:
            return self._error(error)

    def _route_api(self, request: httpx.Request, path: str) -> httpx.Response:
        method = request.method
        parts = path.strip("/").split("/")
        if parts[:4] == ["v1", "videos", "avatar", "image2video"]:  # a family path of two segments
            parts = ["v1", "videos", "avatar/image2video", *parts[4:]]
        if parts == ["v1", "videos", "identify-face"]:
            if method == "POST":
                return self._identify_face(self._json_body(request))
            raise KlingError(1202, f"{method} is not supported on {path}")
        if len(parts) >= 3 and parts[:2] == ["v1", "videos"] and parts[2] in VIDEO_FAMILIES and len(parts) <= 4:
            family = parts[2]
            if len(parts) == 3:
                if method == "POST":
                    return self._create_video(family, self._json_body(request))
                if method == "GET":
                    return self._list_or_lookup(family, request)
            elif method == "GET":
                return self._query_one(family, parts[3], request)
            raise KlingError(1202, f"{method} is not supported on {path}")
        if parts[:2] == ["v1", "general"] and len(parts) in (3, 4):
            name = parts[2]
            if name == ELEMENTS_FAMILY:
                if len(parts) == 3:
                    if method == "POST":
                        return self._create_element(self._json_body(request))
                    if method == "GET":
                        return self._list_or_lookup(ELEMENTS_FAMILY, request)
                elif method == "GET":
                    return self._query_one(ELEMENTS_FAMILY, parts[3], request)
                raise KlingError(1202, f"{method} is not supported on {path}")
            if name == VOICES_FAMILY:
                if len(parts) == 3:
                    if method == "POST":
                        return self._create_voice(self._json_body(request))
                    if method == "GET":
                        return self._list_or_lookup(VOICES_FAMILY, request)
                elif method == "GET":
                    return self._query_one(VOICES_FAMILY, parts[3], request)
                raise KlingError(1202, f"{method} is not supported on {path}")
            if name == "advanced-presets-elements" and len(parts) == 3:
                if method == "GET":
                    self._page(dict(request.url.params))
                    return self._ok([self._preset_element()])
                raise KlingError(1202, f"{method} is not supported on {path}")
            if name in ("delete-elements", "delete-advanced-elements") and len(parts) == 3:
                if method == "POST":
                    return self._delete_element(self._json_body(request))
                raise KlingError(1202, f"{method} is not supported on {path}")
        if path == TTS_PATH:
            if method == "POST":
                return self._tts(self._json_body(request))
            raise KlingError(1202, f"{method} is not supported on {path}")
        if self.standard.handles(path):
            return self.standard.route(request, path)
        raise KlingError(1203, f"{path} does not exist (not emulated by the fake)")

    # ------------------------------------------------------------------ auth

    def _authenticate(self, request: httpx.Request) -> None:
        header = request.headers.get("authorization")
        if header is None or not header.strip():
            raise KlingError(1001)
        if not header.startswith("Bearer ") or header[7:8] in (" ", "") or header != header.strip():
            raise KlingError(1002, "Authorization must be 'Bearer <token>' with exactly one space")
        token = header[7:]
        if token in self.api_keys:
            return
        if token.count(".") != 2:
            raise KlingError(1002)
        try:
            jose = jwt.get_unverified_header(token)
            if jose.get("alg") != "HS256":
                raise KlingError(1002, "Authorization is invalid: only HS256 tokens are accepted")
            claims = jwt.decode(token, self.secret_key, algorithms=["HS256"], options={
                "verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                "verify_iss": False})
        except jwt.PyJWTError:
            raise KlingError(1002) from None
        if claims.get("iss") != self.access_key:
            raise KlingError(1002, "Authorization is invalid: unknown access key")
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not _is_int(exp) or (nbf is not None and not _is_int(nbf)):
            raise KlingError(1002, "Authorization is invalid: exp (and nbf) must be integer seconds")
        now = self.clock()
        if nbf is not None and nbf > now:
            raise KlingError(1003)
        if exp <= now:
            raise KlingError(1004)

    # ------------------------------------------------------------- envelope

    def _ok(self, data: Any) -> httpx.Response:
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()),
                                         "data": data})

    def _error(self, error: KlingError) -> httpx.Response:
        return httpx.Response(HTTP_STATUS[error.code], json={
            "code": error.code, "message": error.message, "request_id": str(uuid.uuid4())})

    @staticmethod
    def _json_body(request: httpx.Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if "application/json" not in content_type.lower():
            raise KlingError(1200, "Content-Type: application/json is required")
        try:
            body = json.loads(request.content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KlingError(1200, f"request body is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise KlingError(1200, "request body must be a JSON object")
        return {key: value for key, value in body.items() if value is not None}

    # --------------------------------------------------------------- create

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _new_task_id(self) -> str:
        while True:
            task_id = str(self._random.randrange(860_000_000_000_000_000, 870_000_000_000_000_000))
            if task_id not in self.tasks:
                return task_id

    def _create_video(self, family: str, body: dict[str, Any]) -> httpx.Response:
        render = self._validate(family, body)
        external_id = body.get("external_task_id")
        if external_id is not None and external_id in self._by_external:
            return self._duplicate(external_id)
        self._check_capacity(render.units)
        now = self._now_ms()
        script = self._scripted(external_id, body, self.polls_to_finish)
        task = FakeTask(
            task_id=self._new_task_id(), family=family, body=body, external_task_id=external_id,
            created_at=now, updated_at=now, polls_to_finish=script.polls if script.polls is not None else self.polls_to_finish,
            fail_message=script.fail if script.fail is not None else render.fail_message,
            units=float(render.units), units_text=units_text(render.units), model=render.model, mode=render.mode,
            shots=render.shots, sound=render.sound, aspect_ratio=render.aspect_ratio,
            watermark=bool(body.get("watermark_info", {}).get("enabled", False)),
            video_seconds=script.video_seconds, reported_seconds=script.reported_seconds)
        self._store(task)
        self.creates[external_id or ""] += 1
        return self._ok(self._create_data(task))

    def _check_capacity(self, units: Decimal) -> None:
        """Refuse a create the resource pack (1102) or the parallel-task limit (1303) cannot take.

        Counts the video tasks of both APIs: it is one account, one pack, one limit.
        """
        video_tasks = [t for t in self.tasks.values() if t.active and (t.family in VIDEO_FAMILIES or t.api == "new")]
        if self.units_balance is not None:
            committed = self._charged_exact + sum((Decimal(t.units_text) for t in video_tasks), Decimal(0))
            if committed + units > Decimal(str(self.units_balance)):
                raise KlingError(1102, f"Resource pack exhausted: this task needs {units_text(units)} units")
        if self.concurrency_limit is not None and len(video_tasks) >= self.concurrency_limit:
            raise KlingError(1303)

    def _store(self, task: FakeTask) -> None:
        self.tasks[task.task_id] = task
        if task.external_task_id:
            self._by_external[task.external_task_id] = task.task_id

    def _scripted(self, external_id: str | None, body: dict[str, Any], default_polls: int) -> _Script:
        """The script that applies to a new task (one use of it), or an empty one with ``default_polls``."""
        prompts = _prompts(body)
        chosen = next((s for s in self._scripts if external_id and s.key == external_id and s.remaining != 0), None)
        if chosen is None:
            chosen = next((s for s in self._scripts if s.remaining != 0 and s.key in prompts), None)
        if chosen is None:
            return _Script("", default_polls, None, None)
        if chosen.remaining is not None:
            chosen.remaining -= 1
        return chosen

    def _duplicate(self, external_id: str) -> httpx.Response:
        """A create under an external id the account already used: refused, or the existing task."""
        existing = self.tasks[self._by_external[external_id]]
        if self.duplicate_external_id == "reject":
            raise _invalid("external_task_id",
                           f"'{external_id}' is already used by task {existing.task_id}; it must be unique")
        return self._ok(self._task_data(existing))

    def _create_data(self, task: FakeTask) -> dict[str, Any]:
        data: dict[str, Any] = {"task_id": task.task_id, "task_status": "submitted"}
        if task.family != "multi-image2video":  # the documented create response omits task_info here
            data["task_info"] = {"external_task_id": task.external_task_id} if task.external_task_id else {}
        data["created_at"] = task.created_at
        data["updated_at"] = task.created_at
        return data

    # ---------------------------------------------------------------- query

    def _find(self, family: str, id_or_external: str, *, by_external: bool = True) -> FakeTask:
        task = self.tasks.get(id_or_external) or (self.task_by_external_id(id_or_external) if by_external else None)
        if task is None or task.family != family:
            raise KlingError(1203, f"task {id_or_external} does not exist on {family}")
        return task

    def _query(self, family: str, id_or_external: str, *, by_external: bool = True) -> httpx.Response:
        task = self._find(family, id_or_external, by_external=by_external)
        self.polls[task.task_id] += 1
        self._advance(task)
        return self._ok(self._task_data(task))

    def _query_one(self, family: str, ident: str, request: httpx.Request) -> httpx.Response:
        """``GET {family}/{id}``: a task id always; an external id in the path slot when ``"path"`` is
        on, or with ``?external_task_id=true`` when ``"flag"`` is on (else an unknown parameter)."""
        params = dict(request.url.params)
        if params:
            if set(params) != {"external_task_id"} or "flag" not in self.lookup_conventions:
                raise _invalid(sorted(params)[0], "unknown query parameter")
            if params["external_task_id"] != "true":
                raise _invalid("external_task_id", f"must be true, got {params['external_task_id']!r}")
            return self._query(family, ident)
        return self._query(family, ident, by_external="path" in self.lookup_conventions)

    def _list_or_lookup(self, family: str, request: httpx.Request) -> httpx.Response:
        """``GET {family}``: the newest-first list, paged; with ``?external_task_id=`` the list filter
        (the matching task, or ``[]``) when ``"list_filter"`` is on. Lists never advance tasks."""
        params = dict(request.url.params)
        tasks = sorted((t for t in self.tasks.values() if t.family == family),
                       key=lambda t: (t.created_at, t.task_id), reverse=True)
        if "external_task_id" in params:
            if "list_filter" in self.lookup_conventions:
                wanted = params.pop("external_task_id")
                tasks = [t for t in tasks if t.external_task_id == wanted]
            elif self.list_filter_unsupported == "reject":
                raise _invalid("external_task_id", "unknown query parameter (use pageNum, pageSize)")
            else:
                params.pop("external_task_id")
        number, size = self._page(params)
        page = tasks[(number - 1) * size: number * size]
        return self._ok([self._task_data(t) for t in page])

    @staticmethod
    def _page(params: dict[str, str]) -> tuple[int, int]:
        extra = set(params) - {"pageNum", "pageSize"}
        if extra:
            raise _invalid(sorted(extra)[0], "unknown query parameter (use pageNum, pageSize)")
        values = []
        for name, default, top in (("pageNum", 1, 1000), ("pageSize", 30, 500)):
            raw = params.get(name, str(default))
            if not re.fullmatch(r"[0-9]+", raw) or not 1 <= int(raw) <= top:
                raise _invalid(name, f"must be an integer in [1, {top}], got {raw!r}")
            values.append(int(raw))
        return values[0], values[1]

    def _advance(self, task: FakeTask) -> None:
        """One query's worth of progress: N-th query of a task scripted for N polls is terminal."""
        if not task.active:
            return
        task.queries += 1
        before = task.status
        if task.queries >= task.polls_to_finish:
            if task.fail_message is not None:
                task.status, task.status_message = "failed", task.fail_message
            else:
                self._succeed(task)
        elif task.queries == 1 and task.polls_to_finish >= 3:
            task.status = "submitted"
        else:
            task.status = "processing"
        if task.status != before:
            task.updated_at = max(self._now_ms(), task.created_at + task.queries)

    def _succeed(self, task: FakeTask) -> None:
        task.status = "succeed"
        if task.family == ELEMENTS_FAMILY:
            task.element["status"] = "succeed"
            return
        if task.family == VOICES_FAMILY:
            task.voice["status"] = "succeed"
            if not task.charged:
                task.charged = True
                self._charged_exact += Decimal(task.units_text)
                self.charged_units = float(self._charged_exact)
            return
        task.video_id = str(self._random.randrange(860_000_000_000_000_000, 870_000_000_000_000_000))
        base = self.cdn_base_url.rstrip("/")
        task.video_url = f"{base}/videos/{task.task_id}.mp4"
        if task.watermark:
            task.watermark_url = f"{base}/videos/{task.task_id}_watermark.mp4"
        if not task.charged:
            task.charged = True
            self._charged_exact += Decimal(task.units_text)
            self.charged_units = float(self._charged_exact)

    def _task_data(self, task: FakeTask) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "task_status": task.status,
            "task_status_msg": task.status_message,
            "task_info": {"external_task_id": task.external_task_id} if task.external_task_id else {},
        }
        if task.family not in (ELEMENTS_FAMILY, VOICES_FAMILY):
            data["watermark_info"] = {"enabled": task.watermark}
        data["created_at"] = task.created_at
        data["updated_at"] = task.updated_at
        if task.status == "succeed":
            if task.family == ELEMENTS_FAMILY:
                data["task_result"] = {"elements": [dict(task.element)]}
            elif task.family == VOICES_FAMILY:
                data["task_result"] = {"voices": [dict(task.voice)]}
            else:
                video: dict[str, Any] = {"id": task.video_id, "url": task.video_url,
                                         "duration": _seconds_text(task.reported_duration)}
                if task.watermark_url:
                    video["watermark_url"] = task.watermark_url
                data["task_result"] = {"videos": [video]}
            data["final_unit_deduction"] = task.units_text
        return data

    # ------------------------------------------------------------- download

    def _download(self, request: httpx.Request, path: str) -> httpx.Response:
        cdn_path = urlsplit(self.cdn_base_url).path.rstrip("/")
        if cdn_path and path.startswith(cdn_path + "/"):
            path = path[len(cdn_path):]
        match = re.fullmatch(r"/videos/([0-9]+)(_watermark)?\.mp4", path)
        if request.method != "GET":
            return httpx.Response(405, text="method not allowed")
        task = self.tasks.get(match.group(1)) if match else None
        if task is None or task.status != "succeed" or task.family in (ELEMENTS_FAMILY, VOICES_FAMILY) or (
                match.group(2) and not task.watermark):
            return httpx.Response(404, headers={"content-type": "application/xml"},
                                  text="<Error><Code>NoSuchKey</Code></Error>")
        content = task.video_bytes
        status, headers = 200, {"content-type": "video/mp4", "accept-ranges": "bytes"}
        range_header = request.headers.get("range")
        if range_header:
            found = re.fullmatch(r"bytes=([0-9]+)-([0-9]*)", range_header.strip())
            start = int(found.group(1)) if found else len(content)
            end = int(found.group(2)) if found and found.group(2) else len(content) - 1
            if start >= len(content) or end < start:
                return httpx.Response(416, headers={"content-range": f"bytes */{len(content)}"})
            end = min(end, len(content) - 1)
            headers["content-range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start:end + 1], 206
        self.downloads[task.task_id] += 1
        return httpx.Response(status, headers=headers, content=content,
                              extensions={"fake_task_id": task.task_id})

    # ------------------------------------------------------------- elements

    def _create_element(self, body: dict[str, Any]) -> httpx.Response:
        self._validate_element(body)
        external_id = body.get("external_task_id")
        if external_id is not None and external_id in self._by_external:
            return self._duplicate(external_id)
        now = self._now_ms()
        script = self._scripted(external_id, body, self.element_polls_to_finish)
        polls = script.polls if script.polls is not None else self.element_polls_to_finish
        fail = script.fail
        element_id = self._random.randrange(2**53 + 1, 2**63 - 1)
        element = {
            "element_id": element_id,
            "element_name": body["element_name"],
            "element_description": body["element_description"],
            "reference_type": body["reference_type"],
            "element_image_list": body.get("element_image_list", {}),
            "element_video_list": body.get("element_video_list", {}),
            "element_voice_info": self._element_voice_info(body),
            "tag_list": body.get("tag_list", []),
            "owned_by": "4123987",
            "status": "submitted",
        }
        task = FakeTask(task_id=self._new_task_id(), family=ELEMENTS_FAMILY, body=body,
                        external_task_id=external_id, created_at=now, updated_at=now,
                        polls_to_finish=polls, fail_message=fail, element=element)
        self._store(task)
        self.element_creates[external_id or ""] += 1
        return self._ok(self._create_data(task))

    def _element_voice_info(self, body: dict[str, Any]) -> dict[str, Any]:
        """The voice bound to a new element: the one asked for, else a clone of a voice heard in its clip."""
        if body.get("element_voice_id"):
            return {"voice_id": body["element_voice_id"], "voice_name": "voice", "trial_url": "", "owned_by": "fake"}
        clips = (body.get("element_video_list") or {}).get("refer_videos") or []
        if body.get("reference_type") == "video_refer" and clips and clips[0]["video_url"] in self.voiced_videos:
            voice_id = str(self._random.randrange(850_000_000_000_000_000, 860_000_000_000_000_000))
            return {"voice_id": voice_id, "voice_name": f"{body['element_name']} voice"[:20],
                    "trial_url": f"{self.cdn_base_url.rstrip('/')}/voices/{voice_id}.mp3", "owned_by": "4123987"}
        return {}

    # --------------------------------------------------------------- voices

    def _create_voice(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /v1/general/custom-voices``: a name and one source, a task that yields a voice_id."""
        unknown = sorted(set(body) - VOICE_FIELDS)
        if unknown:
            raise _invalid(unknown[0], f"unknown field for /v1/general/{VOICES_FAMILY}")
        name = body.get("voice_name")
        if not isinstance(name, str) or not name.strip() or len(name) > 20:
            raise _invalid("voice_name", "required, a string of at most 20 characters")
        sources = [k for k in ("voice_url", "video_id") if body.get(k) is not None]
        if len(sources) != 1:
            raise _invalid("voice_url", "exactly one of voice_url and video_id is required")
        url = body.get("voice_url")
        if url is not None and (not isinstance(url, str)
                                or not re.fullmatch(r"https?://\S+\.(mp3|wav|mp4|mov)(\?\S*)?", url, re.I)):
            raise _invalid("voice_url", "must be an http(s) URL of an mp3, wav, mp4 or mov file")
        external_id = body.get("external_task_id")
        if external_id is not None and external_id in self._by_external:
            return self._duplicate(external_id)
        now = self._now_ms()
        script = self._scripted(external_id, body, self.element_polls_to_finish)
        polls = script.polls if script.polls is not None else self.element_polls_to_finish
        voice = {"voice_id": str(self._random.randrange(850_000_000_000_000_000, 860_000_000_000_000_000)),
                 "voice_name": name, "trial_url": "", "owned_by": "4123987", "status": "submitted"}
        task = FakeTask(task_id=self._new_task_id(), family=VOICES_FAMILY, body=body, external_task_id=external_id,
                        created_at=now, updated_at=now, polls_to_finish=polls, fail_message=script.fail,
                        units_text="0.05", voice=voice)
        self._store(task)
        self.voice_creates[external_id or ""] += 1
        return self._ok(self._create_data(task))

    # ------------------------------------------------------------------ TTS

    def _tts(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /v1/audio/tts``: speech made at once, its audio id valid 30 days; 0.05 units."""
        unknown = sorted(set(body) - TTS_FIELDS)
        if unknown:
            raise _invalid(unknown[0], f"unknown field for {TTS_PATH}")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _invalid("text", "required, a non-empty string")
        if len(text) > 1000:
            raise _invalid("text", f"at most 1000 characters, got {len(text)}")
        voice = body.get("voice_id")
        if not isinstance(voice, str) or not voice:
            raise _invalid("voice_id", "required, a preset voice id")
        if voice not in PRESET_VOICES:
            raise _invalid("voice_id", f"Voice id not found: {voice}")
        language = body.get("voice_language", "zh")
        if language not in ("zh", "en"):
            raise _invalid("voice_language", f"must be zh or en, got {language!r}")
        speed = body.get("voice_speed", 1.0)
        if not _is_number(speed) or not 0.8 <= speed <= 2.0:
            raise _invalid("voice_speed", f"must be a number in [0.8, 2.0], got {speed!r}")
        if Decimal(str(speed)) != Decimal(str(speed)).quantize(Decimal("0.1")):
            raise _invalid("voice_speed", f"at most one decimal, got {speed!r}")
        seconds = tts_seconds(text, float(speed))
        now = self._now_ms()
        audio_id = str(self._random.randrange(880_000_000_000_000_000, 890_000_000_000_000_000))
        self.audios[audio_id] = {"duration": seconds, "issued_at": self.clock(), "text": text}
        self.tts_calls += 1
        self._charged_exact += Decimal(TTS_UNITS)
        self.charged_units = float(self._charged_exact)
        audio = {"id": audio_id, "url": f"{self.cdn_base_url.rstrip('/')}/audios/{audio_id}.mp3",
                 "duration": _seconds_text(seconds)}
        return self._ok({"task_id": self._new_task_id(), "task_status": "succeed", "task_status_msg": "",
                         "task_result": {"audios": [audio]}, "created_at": now, "updated_at": now})

    def _element_task(self, element_id: int) -> FakeTask | None:
        return next((t for t in self.tasks.values() if t.element and t.element["element_id"] == element_id), None)

    def _delete_element(self, body: dict[str, Any]) -> httpx.Response:
        unknown = sorted(set(body) - {"element_id"})
        if unknown:
            raise _invalid(unknown[0], "unknown field")
        raw = body.get("element_id")
        if not isinstance(raw, str) or not re.fullmatch(r"[0-9]+", raw):
            raise _invalid("element_id", f"must be the element id as a string of digits, got {raw!r}")
        task = self._element_task(int(raw))
        if task is None or task.status != "succeed" or task.element["status"] == "deleted":
            raise KlingError(1203, f"element {raw} does not exist")
        task.element["status"] = "deleted"
        return self._ok({"task_id": self._new_task_id(), "task_status": "succeed"})

    @staticmethod
    def _preset_element() -> dict[str, Any]:
        return {
            "task_id": "868000000000000001", "task_status": "succeed", "task_status_msg": "", "task_info": {},
            "task_result": {"elements": [{
                "element_id": 829836802793400001, "element_name": "Preset Cat",
                "element_description": "Official preset: an orange tabby cat", "reference_type": "image_refer",
                "element_image_list": {}, "element_video_list": {}, "element_voice_info": {},
                "tag_list": [{"tag_id": "o_103"}], "owned_by": "kling", "status": "succeed"}]},
            "final_unit_deduction": "0", "created_at": 1774800000000, "updated_at": 1774800000000,
        }

    # ------------------------------------------------------------ validation

    def _validate(self, family: str, body: dict[str, Any]) -> _Render:
        if family == "avatar/image2video":
            return self._validate_avatar(body)
        if family == "lip-sync":
            return self._validate_lip_sync(body)
        if family == "advanced-lip-sync":
            return self._validate_advanced_lip_sync(body)
        unknown = sorted(set(body) - FIELDS_BY_ENDPOINT[family])
        if unknown:
            raise _invalid(unknown[0], f"unknown field for /v1/videos/{family}")
        model = body.get("model_name", DEFAULT_MODEL[family])
        if not isinstance(model, str):
            raise _invalid("model_name", f"must be a string, got {type(model).__name__}")
        if model not in KNOWN_MODELS:
            raise KlingError(1203, f"model_name {model} does not exist")
        if model not in MODELS_BY_ENDPOINT[family]:
            offered = ", ".join(sorted(MODELS_BY_ENDPOINT[family]))
            raise _invalid("model_name", f"{model} is not offered on /v1/videos/{family} (offered: {offered})")
        self._check_common(body)
        validator = {
            "text2video": self._validate_t2v, "image2video": self._validate_i2v,
            "multi-image2video": self._validate_mi2v, "omni-video": self._validate_omni,
            "motion-control": self._validate_motion,
        }[family]
        return validator(model, body)

    def _check_common(self, body: dict[str, Any]) -> None:
        if "model" in body and not isinstance(body["model"], str):
            raise _invalid("model", "must be a string")
        if "watermark_info" in body:
            info = body["watermark_info"]
            if not isinstance(info, dict) or set(info) - {"enabled"} or not isinstance(info.get("enabled", False), bool):
                raise _invalid("watermark_info", 'must be {"enabled": true|false}')
        if "callback_url" in body:
            url = body["callback_url"]
            if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
                raise _invalid("callback_url", f"must be an http(s) URL, got {url!r}")
        if "external_task_id" in body:
            external = body["external_task_id"]
            if not isinstance(external, str) or not external.strip():
                raise _invalid("external_task_id", f"must be a non-empty string, got {external!r}")

    # -- shared field checks

    @staticmethod
    def _text(body: dict[str, Any], name: str, limit: int = 2500) -> str | None:
        if name not in body:
            return None
        value = body[name]
        if not isinstance(value, str):
            raise _invalid(name, f"must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise _invalid(name, f"must be at most {limit} characters, got {len(value)}")
        return value

    @staticmethod
    def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
        value = body.get(name, default)
        if value is None:
            return None
        if not isinstance(value, str) or value not in allowed:
            raise _invalid(name, f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return value

    def _mode(self, body: dict[str, Any], model: str, default: str, *, allow_4k: bool = True) -> str | None:
        modes = MODEL_MODES[model]
        if not modes:
            if "mode" in body:
                raise _invalid("mode", f"{model} does not support the mode parameter; omit it")
            return None
        if not allow_4k:
            modes = tuple(m for m in modes if m != "4k")
        return self._choice(body, "mode", modes, default)

    @staticmethod
    def _duration(body: dict[str, Any], model: str, allowed: tuple[int, ...], default: str = "5",
                  why: str = "") -> int:
        raw = body.get("duration", default)
        if not isinstance(raw, str):
            raise _invalid("duration", f'must be a string like "5", got {type(raw).__name__} {raw!r}')
        if not re.fullmatch(r"[0-9]+", raw) or int(raw) not in allowed:
            listed = ", ".join(f'"{a}"' for a in allowed)
            raise _invalid("duration", f"value '{raw}' is not supported for model {model}{why} (allowed: {listed})")
        return int(raw)

    @staticmethod
    def _durations_for(model: str) -> tuple[int, ...]:
        if model in ("kling-v3", "kling-v3-omni"):
            return tuple(range(3, 16))
        if model == "kling-video-o1":
            return tuple(range(3, 11))
        return (5, 10)

    @staticmethod
    def _multi_shot_on(body: dict[str, Any]) -> bool:
        raw = body.get("multi_shot", False)
        if raw in (True, "true"):
            return True
        if raw in (False, "false"):
            return False
        raise _invalid("multi_shot", f"must be a boolean, got {raw!r}")

    def _shots(self, body: dict[str, Any], model: str, total: int, family: str) -> tuple[float, ...] | None:
        """The shot durations of a multi-shot request (None when multi_shot is off)."""
        if not self._multi_shot_on(body):
            return None
        if model not in ("kling-v3", "kling-v3-omni"):
            raise _invalid("multi_shot", f"multi-shot is only available on kling-v3 and kling-v3-omni, not {model}")
        shot_type = body.get("shot_type")
        if shot_type is None:
            raise _invalid("shot_type", "required when multi_shot is true ('customize' or 'intelligence')")
        self._choice(body, "shot_type", ("customize", "intelligence"), None)
        if shot_type == "intelligence":
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise _invalid("prompt", "required (non-empty) for shot_type 'intelligence'")
            parts = min(3, total)
            return tuple(float(total // parts + (1 if i < total % parts else 0)) for i in range(parts))
        shots = body.get("multi_prompt")
        if shots is None:
            raise _invalid("multi_prompt", "required for shot_type 'customize'")
        if not isinstance(shots, list) or not 1 <= len(shots) <= 6:
            count = len(shots) if isinstance(shots, list) else type(shots).__name__
            raise _invalid("multi_prompt", f"must be a list of 1 to 6 shots, got {count}")
        durations: list[int] = []
        seen_indexes: set[int] = set()
        for position, shot in enumerate(shots):
            where = f"multi_prompt[{position}]"
            if not isinstance(shot, dict):
                raise _invalid(where, "must be an object {index, prompt, duration}")
            extra = sorted(set(shot) - {"index", "prompt", "duration"})
            if extra:
                raise _invalid(f"{where}.{extra[0]}", "unknown field")
            index = shot.get("index")
            if not _is_int(index) or index < 1 or index in seen_indexes:
                raise _invalid(f"{where}.index", f"must be a unique integer >= 1, got {index!r}")
            seen_indexes.add(index)
            prompt = shot.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise _invalid(f"{where}.prompt", "required non-empty string")
            if len(prompt) > 512:
                raise _invalid(f"{where}.prompt", f"must be at most 512 characters, got {len(prompt)}")
            raw = shot.get("duration")
            if not isinstance(raw, str) or not re.fullmatch(r"[0-9]+", raw):
                raise _invalid(f"{where}.duration", f'must be a string of whole seconds like "3", got {raw!r}')
            if not 1 <= int(raw) <= total:
                raise _invalid(f"{where}.duration", f"must be between 1 and the total duration {total}, got {raw}")
            durations.append(int(raw))
            self._check_references(prompt, body, f"{where}.prompt", family)
        if sum(durations) != total:
            raise _invalid("multi_prompt", f"shot durations sum to {sum(durations)} but duration is {total}")
        return tuple(float(d) for d in durations)

    @staticmethod
    def _check_references(prompt: str, body: dict[str, Any], where: str, family: str) -> None:
        """``<<<image_N>>>`` / ``<<<element_N>>>`` / ``<<<video_N>>>`` / ``<<<voice_N>>>`` must name an item."""
        lists = {"image": "image_list" if family == "omni-video" else None, "element": "element_list",
                 "video": "video_list" if family == "omni-video" else None, "voice": "voice_list"}
        for kind, number in re.findall(r"<<<(image|element|video|voice)_([0-9]+)>>>", prompt):
            list_name = lists[kind]
            items = body.get(list_name) if list_name else None
            count = len(items) if isinstance(items, list) else 0
            if not 1 <= int(number) <= count:
                raise _invalid(where, f"<<<{kind}_{number}>>> refers to item {number} but "
                                      f"{list_name or kind + ' references'} has {count} item(s)")

    def _image(self, value: Any, where: str, *, max_side: int | None = None) -> tuple[int, int] | None:
        """Check an image input (URL or raw base64 JPG/PNG); returns its size when it was decoded."""
        if not isinstance(value, str) or not value:
            raise _invalid(where, "must be an image URL or raw base64 string")
        if value.startswith(("http://", "https://")):
            if value in self.unreachable_urls:
                raise KlingError(1201, UNREACHABLE_FILE_MESSAGE)
            return None
        if value.startswith("data:"):
            raise _invalid(where, "send raw base64 without a 'data:image/...;base64,' prefix")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(where, "neither an http(s) URL nor valid base64") from None
        if len(raw) > 10 * 1024 * 1024:
            raise _invalid(where, f"image is {len(raw)} bytes; the limit is 10 MB")
        try:
            with Image.open(io.BytesIO(raw)) as image:
                image_format, (width, height) = image.format, image.size
        except Exception:
            raise _invalid(where, "base64 does not decode to a readable image") from None
        if image_format not in ("JPEG", "PNG"):
            raise _invalid(where, f"image format must be JPG or PNG, got {image_format}")
        if min(width, height) < 300:
            raise _invalid(where, f"image is {width}x{height}; width and height must be at least 300 px")
        if max_side is not None and max(width, height) > max_side:
            raise _invalid(where, f"image is {width}x{height}; sides must be at most {max_side} px")
        if not 1 / 2.5 <= width / height <= 2.5:
            raise _invalid(where, f"image is {width}x{height}; aspect ratio must be between 1:2.5 and 2.5:1")
        return width, height

    def _video_url(self, value: Any, where: str) -> float:
        """Check a reference-video URL; returns its (known or assumed) length in seconds."""
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise _invalid(where, f"must be an http(s) URL of an mp4/mov video, got {value!r}")
        if value in self.unreachable_urls:
            raise KlingError(1201, UNREACHABLE_FILE_MESSAGE)
        if value in self.reference_videos:
            return float(self.reference_videos[value])
        found = re.search(r"_([0-9]+(?:\.[0-9]+)?)s\.(?:mp4|mov)$", urlsplit(value).path, re.IGNORECASE)
        return float(found.group(1)) if found else 5.0

    def _element_ids(self, body: dict[str, Any], limit: int) -> list[int]:
        items = body.get("element_list", [])
        if not isinstance(items, list) or len(items) > limit:
            raise _invalid("element_list", f"must be a list of at most {limit} elements")
        ids = []
        for position, item in enumerate(items):
            where = f"element_list[{position}]"
            if not isinstance(item, dict) or set(item) != {"element_id"}:
                raise _invalid(where, "must be an object {element_id: <int64>}")
            element_id = item["element_id"]
            if not _is_int(element_id) or element_id <= 0:
                raise _invalid(f"{where}.element_id", f"must be a positive integer, got {element_id!r}")
            task = self._element_task(element_id)
            if task is not None and task.element["status"] == "deleted":
                raise _invalid(f"{where}.element_id", f"element {element_id} was deleted")
            if self.require_known_elements and (task is None or task.status != "succeed"):
                raise _invalid(f"{where}.element_id", f"element {element_id} does not exist")
            ids.append(element_id)
        return ids

    def _cfg_scale(self, body: dict[str, Any], model: str) -> None:
        if "cfg_scale" not in body:
            return
        if model.startswith("kling-v2"):
            raise _invalid("cfg_scale", f"not supported by {model} (no kling-v2* model supports it); omit it")
        value = body["cfg_scale"]
        if not _is_number(value) or not 0 <= value <= 1:
            raise _invalid("cfg_scale", f"must be a number in [0, 1], got {value!r}")

    def _camera(self, body: dict[str, Any], model: str, mode: str | None, duration: int, family: str) -> None:
        camera = body.get("camera_control")
        if camera is None:
            return
        if not isinstance(camera, dict) or set(camera) - {"type", "config"}:
            raise _invalid("camera_control", "must be an object {type, config}")
        camera_type = camera.get("type")
        if camera_type not in CAMERA_TYPES:
            raise _invalid("camera_control.type", f"must be one of {', '.join(CAMERA_TYPES)}, got {camera_type!r}")
        config = camera.get("config")
        if camera_type == "simple":
            if not isinstance(config, dict):
                raise _invalid("camera_control.config", "required for type 'simple'")
            extra = sorted(set(config) - set(CAMERA_AXES))
            if extra:
                raise _invalid(f"camera_control.config.{extra[0]}", "unknown axis")
            for axis, value in config.items():
                if not _is_number(value) or not -10 <= value <= 10:
                    raise _invalid(f"camera_control.config.{axis}", f"must be a number in [-10, 10], got {value!r}")
            moving = [axis for axis, value in config.items() if value != 0]
            if len(moving) != 1:
                raise _invalid("camera_control.config", f"exactly one axis must be non-zero for 'simple', got {moving}")
        elif config is not None:
            raise _invalid("camera_control.config", f"must be absent for preset type {camera_type!r}")
        if family == "text2video" and not (model == "kling-v1" and mode == "std" and duration == 5):
            raise _invalid("camera_control", f"only supported on kling-v1 std 5 s text2video, not {model} {mode} {duration} s")
        if family == "image2video" and not (model == "kling-v1-5" and mode == "pro" and duration == 5
                                            and camera_type == "simple"):
            raise _invalid("camera_control", "on image2video only kling-v1-5 pro 5 s with type 'simple' is supported")

    def _sound(self, body: dict[str, Any], model: str, mode: str | None) -> bool:
        sound = self._choice(body, "sound", ("on", "off"), "off") == "on"
        if sound and not (model == "kling-v3" or model == "kling-v3-omni" or (model == "kling-v2-6" and mode == "pro")):
            raise _invalid("sound", f"'on' is only supported on kling-v3, kling-v3-omni and kling-v2-6 pro, not {model} {mode}")
        return sound

    @staticmethod
    def _units(model: str, mode: str | None, seconds: float, feature: str) -> Decimal:
        try:
            return price_units(model, mode, seconds, feature)
        except KeyError:
            raise _invalid("mode", f"{model} {mode} with {feature.replace('_', ' ')} is not offered") from None

    # -- per endpoint

    def _validate_t2v(self, model: str, body: dict[str, Any]) -> _Render:
        mode = self._mode(body, model, "std")
        duration = self._duration(body, model, self._durations_for(model))
        prompt = self._text(body, "prompt")
        self._text(body, "negative_prompt")
        self._cfg_scale(body, model)
        sound = self._sound(body, model, mode)
        aspect = self._choice(body, "aspect_ratio", ASPECT_RATIOS, "16:9")
        self._camera(body, model, mode, duration, "text2video")
        shots = self._shots(body, model, duration, "text2video")
        customize = shots is not None and body.get("shot_type") == "customize"
        if not customize and (prompt is None or not prompt.strip()):
            raise _invalid("prompt", "required (non-empty) unless multi-shot 'customize'")
        feature = "audio" if sound else "silent"
        return _Render(model, mode, shots or (float(duration),), sound, aspect,
                       self._units(model, mode, duration, feature))

    def _validate_i2v(self, model: str, body: dict[str, Any]) -> _Render:
        mode = self._mode(body, model, "std")
        duration = self._duration(body, model, self._durations_for(model))
        prompt = self._text(body, "prompt") or ""
        self._text(body, "negative_prompt")
        self._cfg_scale(body, model)
        sound = self._sound(body, model, mode)
        if "image" not in body and "image_tail" not in body:
            raise _invalid("image", "image or image_tail is required")
        size = self._image(body["image"], "image") if "image" in body else None
        has_tail = "image_tail" in body
        has_masks = "static_mask" in body or "dynamic_masks" in body
        has_camera = "camera_control" in body
        groups = [name for name, present in (("image_tail", has_tail), ("static_mask/dynamic_masks", has_masks),
                                             ("camera_control", has_camera)) if present]
        if len(groups) > 1:
            raise _invalid(groups[0], f"cannot be combined with {groups[1]} (image_tail, masks and "
                                      "camera_control are mutually exclusive)")
        fail_message = None
        if has_tail:
            self._image(body["image_tail"], "image_tail")
            if model == "kling-v1" and duration != 5:
                raise _invalid("image_tail", "kling-v1 supports image_tail only for 5 s")
            if model in ("kling-v1-5", "kling-v1-6", "kling-v2-1", "kling-v2-5-turbo", "kling-v2-6") and mode != "pro":
                raise _invalid("image_tail", f"{model} supports image_tail only in pro mode")
            if model == "kling-v2-6" and sound:
                raise _invalid("image_tail", "kling-v2-6 supports image_tail only with sound 'off'")
            if "image" not in body and not (model in ("kling-v1-5", "kling-v1-6") and mode == "pro"):
                raise _invalid("image", f"end-frame-only (image_tail without image) is not supported on {model}")
        if has_masks:
            if not (model == "kling-v1" and duration == 5) and not (model == "kling-v1-5" and mode == "pro" and duration == 5):
                raise _invalid("dynamic_masks" if "dynamic_masks" in body else "static_mask",
                               "motion brush is only supported on kling-v1 5 s and kling-v1-5 pro 5 s")
            mask_sizes = []
            if "static_mask" in body:
                mask_sizes.append(self._image(body["static_mask"], "static_mask"))
            masks = body.get("dynamic_masks", [])
            if "dynamic_masks" in body and (not isinstance(masks, list) or not 1 <= len(masks) <= 6):
                raise _invalid("dynamic_masks", "must be a list of 1 to 6 masks")
            for position, item in enumerate(masks):
                where = f"dynamic_masks[{position}]"
                if not isinstance(item, dict) or set(item) != {"mask", "trajectories"}:
                    raise _invalid(where, "must be an object {mask, trajectories}")
                mask_sizes.append(self._image(item["mask"], f"{where}.mask"))
                points = item["trajectories"]
                if not isinstance(points, list) or not 2 <= len(points) <= 77:
                    raise _invalid(f"{where}.trajectories", "must be a list of 2 to 77 points")
                for index, point in enumerate(points):
                    if not isinstance(point, dict) or set(point) != {"x", "y"} or not all(
                            _is_int(point[k]) for k in ("x", "y")):
                        raise _invalid(f"{where}.trajectories[{index}]", "must be {x: int, y: int}")
            known = {s for s in mask_sizes if s is not None} | ({size} if size else set())
            if len(known) > 1:  # documented: accepted, then the task fails
                fail_message = "mask resolution or aspect ratio does not match the image"
        self._camera(body, model, mode, duration, "image2video")
        elements = self._element_ids(body, 3) if "element_list" in body else []
        if elements and model != "kling-v3":
            raise _invalid("element_list", f"elements on image2video need kling-v3, not {model}")
        voices = body.get("voice_list")
        voice_used = False
        if voices is not None:
            if elements:
                raise _invalid("voice_list", "cannot be combined with element_list")
            if not isinstance(voices, list) or not 1 <= len(voices) <= 2:
                raise _invalid("voice_list", "must be a list of 1 or 2 voices")
            for position, item in enumerate(voices):
                if not isinstance(item, dict) or set(item) != {"voice_id"} or not isinstance(item["voice_id"], str) \
                        or not item["voice_id"]:
                    raise _invalid(f"voice_list[{position}]", "must be an object {voice_id: <string>}")
            if not (model == "kling-v2-6" and mode == "pro" and duration in (5, 10)):
                raise _invalid("voice_list", f"voice control is only supported on kling-v2-6 pro 5/10 s, not {model} {mode}")
            if not sound:
                raise _invalid("sound", "must be 'on' when voice_list is used")
            voice_used = bool(re.search(r"<<<voice_[0-9]+>>>", prompt))
        elif re.search(r"<<<voice_[0-9]+>>>", prompt):
            raise _invalid("prompt", "refers to <<<voice_N>>> but voice_list is empty")
        self._check_references(prompt, body, "prompt", "image2video")
        shots = self._shots(body, model, duration, "image2video")
        if shots is not None and body.get("shot_type") == "intelligence" and not prompt.strip():
            raise _invalid("prompt", "required for shot_type 'intelligence'")
        aspect = _nearest_aspect(size) if size else "16:9"
        if model == "kling-v2-6" and sound:
            feature = "audio_voice" if voice_used else "audio"
        else:
            feature = "audio" if sound else "silent"
        return _Render(model, mode, shots or (float(duration),), sound, aspect,
                       self._units(model, mode, duration, feature), fail_message)

    def _validate_mi2v(self, model: str, body: dict[str, Any]) -> _Render:
        mode = self._mode(body, model, "std")
        duration = self._duration(body, model, (5, 10))
        prompt = self._text(body, "prompt")
        if prompt is None or not prompt.strip():
            raise _invalid("prompt", "required (non-empty)")
        self._text(body, "negative_prompt")
        aspect = self._choice(body, "aspect_ratio", ASPECT_RATIOS, "16:9")
        images = body.get("image_list")
        if not isinstance(images, list) or not 1 <= len(images) <= 4:
            raise _invalid("image_list", "required: a list of 1 to 4 items {image: <URL or base64>}")
        for position, item in enumerate(images):
            if not isinstance(item, dict) or set(item) != {"image"}:
                raise _invalid(f"image_list[{position}]", "must be an object with exactly the key 'image'")
            self._image(item["image"], f"image_list[{position}].image")
        return _Render(model, mode, (float(duration),), False, aspect, self._units(model, mode, duration, "silent"))

    def _validate_omni(self, model: str, body: dict[str, Any]) -> _Render:
        prompt = self._text(body, "prompt")
        images = body.get("image_list", [])
        if not isinstance(images, list):
            raise _invalid("image_list", "must be a list")
        first = end = 0
        first_size = None
        for position, item in enumerate(images):
            where = f"image_list[{position}]"
            if not isinstance(item, dict) or "image_url" not in item or set(item) - {"image_url", "type"}:
                raise _invalid(where, "must be an object {image_url, type?}")
            size = self._image(item["image_url"], f"{where}.image_url")
            kind = item.get("type")
            if kind is not None and kind not in ("first_frame", "end_frame"):
                raise _invalid(f"{where}.type", f"must be 'first_frame' or 'end_frame', got {kind!r}")
            if kind == "first_frame":
                first += 1
                first_size = size
            end += kind == "end_frame"
        if first > 1 or end > 1:
            raise _invalid("image_list", "at most one first_frame and one end_frame")
        if end and not first:
            raise _invalid("image_list", "an end_frame requires a first_frame")
        if model == "kling-video-o1" and (first or end) and len(images) > 2:
            raise _invalid("image_list", "kling-video-o1 cannot set frames when more than 2 images are given")
        elements = self._element_ids(body, 7) if "element_list" in body else []
        clips = body.get("video_list", [])
        if not isinstance(clips, list) or len(clips) > 1:
            raise _invalid("video_list", "must be a list of at most 1 video")
        reference_seconds = None
        refer_type = None
        for position, item in enumerate(clips):
            where = f"video_list[{position}]"
            if not isinstance(item, dict) or "video_url" not in item or \
                    set(item) - {"video_url", "refer_type", "keep_original_sound"}:
                raise _invalid(where, "must be an object {video_url, refer_type?, keep_original_sound?}")
            reference_seconds = self._video_url(item["video_url"], f"{where}.video_url")
            refer_type = self._choice(item, "refer_type", ("base", "feature"), "base")
            self._choice(item, "keep_original_sound", ("yes", "no"), None)
            longest = 15 if model == "kling-v3-omni" else 10
            if not 3 <= reference_seconds <= longest:
                raise _invalid(f"{where}.video_url", f"reference video must be 3-{longest} s, got {reference_seconds:g} s")
        has_video = bool(clips)
        if (first or end) and refer_type == "base":
            raise _invalid("image_list", "first/end frames cannot be combined with a 'base' (edit) video")
        video_elements = [e for e in elements if self._is_video_element(e)]
        if video_elements and model == "kling-video-o1":
            raise _invalid("element_list", "kling-video-o1 takes multi-image elements only, not video-character elements")
        if has_video and video_elements:  # the 2026-09 rule (the 2026-03 page allowed none, kling-api-2.md §2.1)
            if len(video_elements) > 1:
                raise _invalid("element_list", "at most 1 video-character element with a reference video")
            if len(video_elements) < len(elements):
                raise _invalid("element_list", "video-character and multi-image elements cannot be mixed with a "
                                               "reference video")
            if images:
                raise _invalid("image_list", "reference images cannot be combined with a video-character element "
                                             "and a reference video")
        limit = 4 if has_video else 7
        if len(images) + len(elements) > limit:
            raise _invalid("image_list", f"images + elements must be at most {limit}"
                                         f"{' with a reference video' if has_video else ''}, got {len(images) + len(elements)}")
        if first and not end and len(elements) > 3:
            raise _invalid("element_list", "at most 3 elements with a first frame")
        if first and end and len(elements) > (3 if model == "kling-v3-omni" else 0):
            raise _invalid("element_list", f"{model} allows {'3' if model == 'kling-v3-omni' else 'no'} elements with first+end frames")
        mode = self._mode(body, model, "pro", allow_4k=not has_video)
        sound = self._choice(body, "sound", ("on", "off"), "off") == "on"
        if sound and has_video:
            raise _invalid("sound", "must be 'off' with a reference video (use keep_original_sound)")
        if sound and model == "kling-video-o1":
            raise _invalid("sound", "kling-video-o1 has no native audio")
        aspect = self._choice(body, "aspect_ratio", ASPECT_RATIOS, None)
        if aspect is None and not first and refer_type != "base":
            raise _invalid("aspect_ratio", "required unless a first frame or a 'base' video is given")
        if refer_type == "base":
            if "duration" in body:
                self._duration(body, model, self._durations_for(model))  # type-checked, then ignored
            duration = float(reference_seconds)
            billed = int(Decimal(str(reference_seconds)).quantize(Decimal(1), ROUND_HALF_UP))
        else:
            allowed = self._durations_for(model)
            pure = not images and not elements and not has_video
            first_only = first == 1 and len(images) == 1 and not elements and not has_video
            if model == "kling-video-o1" and (pure or first_only):
                allowed = (5, 10)
            duration = billed = self._duration(body, model, allowed,
                                               why=" for text-only / first-frame-only" if allowed == (5, 10) and model == "kling-video-o1" else "")
        shots = self._shots(body, model, int(duration), "omni-video") if refer_type != "base" else None
        if refer_type == "base" and self._multi_shot_on(body):
            raise _invalid("multi_shot", "cannot be combined with a 'base' (edit) video")
        if shots is not None and refer_type == "feature" and body.get("shot_type") != "intelligence":
            raise _invalid("shot_type", "a feature reference video combines with multi-shot only as 'intelligence'")
        customize = shots is not None and body.get("shot_type") == "customize"
        if not customize and (prompt is None or not prompt.strip()):
            raise _invalid("prompt", "required (non-empty) unless multi-shot 'customize'")
        self._check_references(prompt or "", body, "prompt", "omni-video")
        if has_video:
            feature = "video_input"
        else:
            feature = "audio" if sound else "silent"
        if aspect is None:
            aspect = _nearest_aspect(first_size) if first_size else "16:9"
        return _Render(model, mode, shots or (float(duration),), sound or bool(
            clips and clips[0].get("keep_original_sound") == "yes"), aspect,
            self._units(model, mode, billed, feature))

    def _is_video_element(self, element_id: int) -> bool:
        task = self._element_task(element_id)
        return bool(task and task.element["reference_type"] == "video_refer")

    def _validate_motion(self, model: str, body: dict[str, Any]) -> _Render:
        self._text(body, "prompt")
        if "image_url" not in body:
            raise _invalid("image_url", "required (character/background image)")
        size = self._image(body["image_url"], "image_url", max_side=65536)
        if "video_url" not in body:
            raise _invalid("video_url", "required (motion source video)")
        seconds = self._video_url(body["video_url"], "video_url")
        if "character_orientation" not in body:
            raise _invalid("character_orientation", "required: 'image' or 'video'")
        orientation = self._choice(body, "character_orientation", ("image", "video"), None)
        if "mode" not in body:
            raise _invalid("mode", "required: 'std' or 'pro'")
        mode = self._mode(body, model, "std", allow_4k=False)
        keep_sound = self._choice(body, "keep_original_sound", ("yes", "no"), "yes") == "yes"
        elements = self._element_ids(body, 1) if "element_list" in body else []
        if elements and model != "kling-v3":
            raise _invalid("element_list", "elements on motion-control need kling-v3")
        longest = 30 if orientation == "video" else 10
        if not 3 <= seconds <= longest:
            raise _invalid("video_url", f"motion video must be 3-{longest} s for character_orientation "
                                        f"'{orientation}', got {seconds:g} s")
        billed = int(Decimal(str(seconds)).quantize(Decimal(1), ROUND_HALF_UP))
        aspect = _nearest_aspect(size) if size else "16:9"
        return _Render(model, mode, (float(seconds),), keep_sound, aspect,
                       self._units(model, mode, billed, "motion_control"))

    def _audio(self, value: Any, where: str, longest: float) -> float:
        """Check an audio input (URL or raw base64 mp3/wav/m4a/aac); returns its length in seconds."""
        if not isinstance(value, str) or not value:
            raise _invalid(where, "must be an audio URL or raw base64 string")
        if value.startswith(("http://", "https://")):
            seconds = float(self.reference_videos.get(value, 5.0))
        else:
            if value.startswith("data:"):
                raise _invalid(where, "send raw base64 without a 'data:audio/...;base64,' prefix")
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _invalid(where, "neither an http(s) URL nor valid base64") from None
            if len(raw) > 5 * 1000 * 1000:
                raise _invalid(where, f"audio is {len(raw)} bytes; the limit is 5 MB")
            seconds = _audio_seconds(raw, where)
        if not 2 <= seconds <= longest:
            raise _invalid(where, f"audio must be 2-{longest:g} s, got {seconds:.2f} s")
        return seconds

    def _validate_avatar(self, body: dict[str, Any]) -> _Render:
        unknown = sorted(set(body) - AVATAR_FIELDS)
        if unknown:
            raise _invalid(unknown[0], "unknown field for /v1/videos/avatar/image2video")
        self._check_common(body)
        if "image" not in body:
            raise _invalid("image", "required (the face)")
        size = self._image(body["image"], "image", max_side=65536)
        if ("audio_id" in body) == ("sound_file" in body):
            raise _invalid("sound_file", "exactly one of audio_id or sound_file is required")
        if "audio_id" in body:
            if not isinstance(body["audio_id"], str) or not body["audio_id"]:
                raise _invalid("audio_id", "must be a non-empty string")
            made = self.audios.get(body["audio_id"])
            if made is None or self.clock() - made["issued_at"] > AUDIO_ID_LIFETIME:
                raise _invalid("audio_id", f"audio {body['audio_id']} not found or expired (TTS audio is kept 30 days)")
            seconds = float(made["duration"])
            if not 2 <= seconds <= 300:
                raise _invalid("audio_id", f"audio must be 2-300 s, got {seconds:.2f} s")
        else:
            seconds = self._audio(body["sound_file"], "sound_file", 300)
        self._text(body, "prompt")
        mode = self._choice(body, "mode", ("std", "pro"), "std") or "std"
        billed = int(Decimal(str(seconds)).to_integral_value(rounding="ROUND_CEILING"))
        aspect = _nearest_aspect(size) if size else "16:9"
        return _Render("kling-avatar", mode, (round(seconds * 24) / 24,), True, aspect,
                       Decimal(AVATAR_PRICE[mode]) * billed)

    def _validate_lip_sync(self, body: dict[str, Any]) -> _Render:
        unknown = sorted(set(body) - LIP_SYNC_FIELDS)
        if unknown:
            raise _invalid(unknown[0], "unknown field for /v1/videos/lip-sync")
        self._check_common(body)
        data = body.get("input")
        if not isinstance(data, dict):
            raise _invalid("input", "required: an object")
        unknown = sorted(set(data) - LIP_SYNC_INPUT_FIELDS)
        if unknown:
            raise _invalid(f"input.{unknown[0]}", "unknown field for /v1/videos/lip-sync")
        mode = self._choice(data, "mode", ("audio2video", "text2video"), None)
        if mode is None:
            raise _invalid("input.mode", "required: 'audio2video' or 'text2video'")
        if ("video_id" in data) == ("video_url" in data):
            raise _invalid("input.video_id", "video_id or video_url is required (exactly one)")
        if "video_id" in data:
            source = next((t for t in self.tasks.values() if t.video_id == data["video_id"]), None)
            if source is None:
                raise KlingError(1203, "video_id not found")
            seconds = source.duration
        else:
            source = next((t for t in self.tasks.values() if t.video_url == data["video_url"]), None)
            seconds = source.duration if source else self._video_url(data["video_url"], "input.video_url")
        if not 2 <= seconds <= 60:
            raise _invalid("input.video_url", f"video must be 2-60 s, got {seconds:g} s")
        if mode == "audio2video":
            audio_type = self._choice(data, "audio_type", ("file", "url"), None)
            if audio_type is None:
                raise _invalid("input.audio_type", "Audio type is null")
            wanted, other = ("audio_file", "audio_url") if audio_type == "file" else ("audio_url", "audio_file")
            if wanted not in data or other in data:
                raise _invalid(f"input.{wanted}", f"required with audio_type {audio_type} (and {other} must be absent)")
            if audio_type == "file" and str(data[wanted]).startswith(("http://", "https://")):
                raise _invalid("input.audio_file", "must be raw base64 with audio_type file")
            self._audio(data[wanted], f"input.{wanted}", 60)
            if any(name in data for name in ("text", "voice_id", "voice_language", "voice_speed")):
                raise _invalid("input.text", "text/voice fields are for mode text2video")
        else:
            if any(name in data for name in ("audio_type", "audio_file", "audio_url")):
                raise _invalid("input.audio_type", "audio fields are for mode audio2video")
            if not isinstance(data.get("text"), str) or not data["text"].strip():
                raise _invalid("input.text", "required for text2video")
            if not isinstance(data.get("voice_id"), str) or data["voice_id"] not in self._known_voice_ids():
                raise _invalid("input.voice_id", "Voice id not found")
            self._choice(data, "voice_language", ("zh", "en"), None)
            speed = data.get("voice_speed", 1.0)
            if not _is_number(speed) or not 0 < float(speed) <= 2.0:
                raise _invalid("input.voiceSpeed", f"must be a number up to 2.0, got {speed!r}")
        blocks = int((Decimal(str(seconds)) / 5).to_integral_value(rounding="ROUND_CEILING"))
        aspect = source.aspect_ratio if source else "16:9"
        return _Render("kling-lip-sync", None, (float(seconds),), True, aspect, Decimal(LIP_SYNC_PRICE_PER_5S) * blocks)

    def _known_voice_ids(self) -> set[str]:
        custom = {str(t.voice["voice_id"]) for t in self.tasks.values()
                  if t.family == VOICES_FAMILY and t.voice and t.voice.get("status") == "succeed"}
        return self.lip_sync_voice_ids | custom

    # -------------------------------------------------------- advanced lip sync

    def expire_face_sessions(self) -> None:
        """Every session issued so far is expired from now on (a create naming one is refused)."""
        with self._lock:
            for session in self.face_sessions.values():
                session["expired"] = True

    def _identify_face(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /v1/videos/identify-face``: synchronous, charged 0.05 units, answers the faces."""
        unknown = sorted(set(body) - {"video_id", "video_url"})
        if unknown:
            raise _invalid(unknown[0], "unknown field for /v1/videos/identify-face")
        if ("video_id" in body) == ("video_url" in body):
            raise _invalid("video_id", "exactly one of video_id or video_url is required")
        if "video_id" in body:
            key = body["video_id"]
            source = next((t for t in self.tasks.values() if t.video_id and t.video_id == key), None)
            if source is None:
                raise KlingError(1203, "video_id not found")
            seconds, aspect = source.duration, source.aspect_ratio
            if seconds > 60:
                raise _invalid("video_id", f"video must be at most 60 s, got {seconds:g} s")
        else:
            key = body["video_url"]
            source = next((t for t in self.tasks.values() if t.video_url and t.video_url == key), None)
            seconds = source.duration if source else self._video_url(key, "video_url")
            aspect = source.aspect_ratio if source else "16:9"
            if not 2 <= seconds <= 60:
                raise _invalid("video_url", f"video must be 2-60 s, got {seconds:g} s")
        windows = sorted(self.faces.get(str(key), [(0.0, seconds)]))
        session_id = f"fs-{uuid.UUID(int=self._random.getrandbits(128)).hex[:20]}"
        faces = [{"face_id": str(n), "face_image": f"{self.cdn_base_url}/faces/{session_id}-{n}.png",
                  "start_time": round(start * 1000), "end_time": round(end * 1000)}
                 for n, (start, end) in enumerate(windows)]
        self.face_sessions[session_id] = {"seconds": seconds, "aspect": aspect, "faces": faces, "expired": False}
        self.identify_calls += 1
        self._charged_exact += Decimal(FACE_RECOGNITION_PRICE)
        self.charged_units = float(self._charged_exact)
        return self._ok({"session_id": session_id, "final_unit_deduction": FACE_RECOGNITION_PRICE,
                         "face_data": faces})

    def _validate_advanced_lip_sync(self, body: dict[str, Any]) -> _Render:
        unknown = sorted(set(body) - ADVANCED_LIP_SYNC_FIELDS)
        if unknown:
            raise _invalid(unknown[0], "unknown field for /v1/videos/advanced-lip-sync")
        self._check_common(body)
        session = self.face_sessions.get(body.get("session_id"))  # type: ignore[arg-type]
        if session is None:
            raise _invalid("session_id", "not a session issued by identify-face")
        if session["expired"]:
            raise _invalid("session_id", "session expired")
        chosen = body.get("face_choose")
        if not isinstance(chosen, list) or len(chosen) != 1 or not isinstance(chosen[0], dict):
            raise _invalid("face_choose", "must be a list of exactly one face")
        entry = chosen[0]
        unknown = sorted(set(entry) - FACE_CHOOSE_FIELDS)
        if unknown:
            raise _invalid(f"face_choose[0].{unknown[0]}", "unknown field for /v1/videos/advanced-lip-sync")
        face = next((f for f in session["faces"] if f["face_id"] == entry.get("face_id")), None)
        if face is None:
            raise _invalid("face_choose[0].face_id", "not a face of this session")
        if ("audio_id" in entry) == ("sound_file" in entry):
            raise _invalid("face_choose[0].sound_file", "exactly one of audio_id or sound_file is required")
        if "audio_id" in entry:  # TTS audio this fake issued within 30 days, 2-60 s (kling-api-2.md §5.1)
            made = self.audios.get(entry["audio_id"]) if isinstance(entry["audio_id"], str) else None
            if made is None or self.clock() - made["issued_at"] > AUDIO_ID_LIFETIME:
                raise _invalid("face_choose[0].audio_id",
                               f"audio {entry['audio_id']!r} not found or expired (TTS audio is kept 30 days)")
            if not 2 <= float(made["duration"]) <= 60:
                raise _invalid("face_choose[0].audio_id", f"audio must be 2-60 s, got {made['duration']:.2f} s")
            audio_ms = int(float(made["duration"]) * 1000)
        else:
            audio_ms = int(self._audio(entry["sound_file"], "face_choose[0].sound_file", 60) * 1000)
        times = {}
        for name in ("sound_start_time", "sound_end_time", "sound_insert_time"):
            value = entry.get(name)
            if not _is_int(value) or value < 0:
                raise _invalid(f"face_choose[0].{name}", f"required: a non-negative integer of ms, got {value!r}")
            times[name] = int(value)
        start, end, insert = times["sound_start_time"], times["sound_end_time"], times["sound_insert_time"]
        if end > audio_ms:
            raise _invalid("face_choose[0].sound_end_time", f"must be at most the audio's length ({audio_ms} ms)")
        if end - start < 2000:
            raise _invalid("face_choose[0].sound_end_time", "the cropped audio must last at least 2 s")
        video_ms = round(session["seconds"] * 1000)
        if insert + (end - start) > video_ms:
            raise _invalid("face_choose[0].sound_insert_time", "the inserted audio must stay inside the video")
        overlap = min(insert + end - start, face["end_time"]) - max(insert, face["start_time"])
        if overlap < 2000:
            raise _invalid("face_choose[0].sound_insert_time",
                           "the inserted audio must overlap the face's time window by at least 2 s")
        for name in ("sound_volume", "original_audio_volume"):
            if name in entry and (not _is_number(entry[name]) or not 0 <= float(entry[name]) <= 2):
                raise _invalid(f"face_choose[0].{name}", f"must be a number in [0, 2], got {entry[name]!r}")
        seconds = session["seconds"]
        blocks = int((Decimal(str(seconds)) / 5).to_integral_value(rounding="ROUND_CEILING"))
        return _Render("kling-advanced-lip-sync", None, (float(seconds),), True, session["aspect"],
                       Decimal(LIP_SYNC_PRICE_PER_5S) * blocks)

    def _validate_element(self, body: dict[str, Any]) -> None:
        unknown = sorted(set(body) - ELEMENT_FIELDS)
        if unknown:
            raise _invalid(unknown[0], "unknown field for /v1/general/advanced-custom-elements")
        self._check_common(body)
        for name, limit in (("element_name", 20), ("element_description", 100)):
            value = self._text(body, name, limit)
            if value is None or not value.strip():
                raise _invalid(name, f"required (non-empty, at most {limit} characters)")
        if "reference_type" not in body:
            raise _invalid("reference_type", "required: 'image_refer' or 'video_refer'")
        reference_type = self._choice(body, "reference_type", ("image_refer", "video_refer"), None)
        if reference_type == "image_refer":
            if "element_video_list" in body:
                raise _invalid("element_video_list", "not allowed for reference_type 'image_refer'")
            images = body.get("element_image_list")
            if not isinstance(images, dict):
                raise _invalid("element_image_list", "required for reference_type 'image_refer'")
            extra = sorted(set(images) - {"frontal_image", "refer_images"})
            if extra:
                raise _invalid(f"element_image_list.{extra[0]}", "unknown field")
            if "frontal_image" not in images:
                raise _invalid("element_image_list.frontal_image", "required")
            self._image(images["frontal_image"], "element_image_list.frontal_image")
            refs = images.get("refer_images")
            if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
                raise _invalid("element_image_list.refer_images", "must be a list of 1 to 3 {image_url}")
            for position, item in enumerate(refs):
                where = f"element_image_list.refer_images[{position}]"
                if not isinstance(item, dict) or set(item) != {"image_url"}:
                    raise _invalid(where, "must be an object {image_url}")
                self._image(item["image_url"], f"{where}.image_url")
        else:
            if "element_image_list" in body:
                raise _invalid("element_image_list", "not allowed for reference_type 'video_refer'")
            clips = body.get("element_video_list")
            if not isinstance(clips, dict) or set(clips) != {"refer_videos"}:
                raise _invalid("element_video_list", "required for 'video_refer': {refer_videos: [{video_url}]}")
            refs = clips["refer_videos"]
            if not isinstance(refs, list) or len(refs) != 1 or not isinstance(refs[0], dict) or set(refs[0]) != {"video_url"}:
                raise _invalid("element_video_list.refer_videos", "must hold exactly 1 {video_url}")
            seconds = self._video_url(refs[0]["video_url"], "element_video_list.refer_videos[0].video_url")
            if not 3 <= seconds <= 8:
                raise _invalid("element_video_list.refer_videos[0].video_url", f"video must be 3-8 s, got {seconds:g} s")
        if "element_voice_id" in body and (not isinstance(body["element_voice_id"], str) or not body["element_voice_id"]):
            raise _invalid("element_voice_id", "must be a non-empty string")
        tags = body.get("tag_list", [])
        if not isinstance(tags, list):
            raise _invalid("tag_list", "must be a list of {tag_id}")
        for position, item in enumerate(tags):
            if not isinstance(item, dict) or set(item) != {"tag_id"} or item["tag_id"] not in ELEMENT_TAGS:
                raise _invalid(f"tag_list[{position}]", f"must be {{tag_id}} with tag_id in {', '.join(ELEMENT_TAGS)}")


def _audio_seconds(raw: bytes, where: str) -> float:
    """Length of base64-decoded audio bytes, probed with PyAV (an unreadable file is a 1201)."""
    import av

    try:
        with av.open(io.BytesIO(raw)) as container:
            if not container.streams.audio:
                raise _invalid(where, "does not decode to audio")
            stream = container.streams.audio[0]
            end = 0.0
            for packet in container.demux(stream):
                if packet.pts is not None and packet.duration and packet.time_base:
                    end = max(end, float((packet.pts + packet.duration) * packet.time_base))
            return end
    except av.FFmpegError:
        raise _invalid(where, "does not decode to audio (mp3/wav/m4a/aac)") from None


def tts_seconds(text: str, speed: float) -> float:
    """The fake TTS's speech length: 2.6 words or 4.5 CJK characters a second at speed 1.0, 0.25 s per
    clause break, 0.3 s of lead, to the millisecond (deterministic, so tests know the real bill)."""
    cjk = len(re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]", text))
    words = len(re.findall(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+", re.sub(r"[\u3400-\u4dbf\u4e00-\u9fff]", " ", text)))
    breaks = len(re.findall(r"[.,!?;:。，！？；：、]+", text.rstrip(".。!！?？ \n")))
    return round((words / 2.6 + cjk / 4.5) / speed + 0.25 * breaks + 0.3, 3)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _nearest_aspect(size: tuple[int, int]) -> str:
    """The Kling aspect ratio closest to an input image's (the output follows the image)."""
    ratio = size[0] / size[1]
    return min(ASPECT_RATIOS, key=lambda name: abs(ratio - _ratio_value(name)))


def _ratio_value(name: str) -> float:
    width, height = name.split(":")
    return int(width) / int(height)


def _seconds_text(seconds: float) -> str:
    """Kling's decimal-string duration: ``"5.0"``, ``"5.1"``, ``"5.041"`` (at most millisecond precision)."""
    text = f"{seconds:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _prompts(body: dict[str, Any]) -> str:
    """All prompt text of a body (top level and shots), for prompt-substring scripting."""
    texts = [body.get("prompt") or ""]
    contents = body.get("contents")  # a new-standard body (tests.fakes.kling_standard)
    if isinstance(contents, list):
        texts += [c.get("text") or "" for c in contents if isinstance(c, dict) and c.get("type") == "prompt"]
    shots = body.get("multi_prompt")
    if isinstance(shots, list):
        texts += [s.get("prompt") or "" for s in shots if isinstance(s, dict)]
    return "\n".join(t for t in texts if isinstance(t, str))
