"""A strict fake of Kling's new-standard API (kling-api-2.md §7), sharing one account with the legacy fake.

Why one account: a Kling account has one set of tasks, one resource pack and one element registry,
and its external ids are unique across both APIs. So :class:`StandardApi` is not a second server
but the new-standard routes of a :class:`~tests.fakes.kling.FakeKling` (``fake.standard``): its
tasks live in ``fake.tasks``, its external ids in the same index (a legacy create cannot reuse a
new-API id, nor the reverse), its creates count in ``fake.creates`` / ``create_attempts``, its
charges in ``charged_units`` and its faults come from the same ``fake.inject(Fault(...))`` queue.
``tests/fakes/server.py`` therefore serves both route trees on one host.

Why STRICTER than the live service: the live API silently ignores unknown top-level fields and
unknown ``settings`` keys, and does not range-check ``duration`` (0, 1 and 20 are accepted, then
billed or failed, §7.3). Our bodies must carry only documented fields with documented values, so
this fake refuses (HTTP 400, code 1201, ``"<field path>: <what is wrong>"``) every field, setting,
part type or value the reference does not document *for that model and endpoint* (the settings
table and the part table of §7.3, the Turbo specifics, §1.2 motion control, §2.2 video parts).

Decisions where the reference leaves room (all here so tests can rely on them):

* Auth: ``Authorization: Bearer <API key>`` only; an AK/SK JWT is refused with 401/1002 (§7.1).
* Model path names are the documented ones (``kling-3.0-omni``, never the legacy-style
  ``kling-v3-omni`` the live service tolerated); another name: 400/1201 "model ... is not supported".
* ``GET /tasks`` takes exactly one of ``task_ids`` / ``external_task_ids`` (comma lists); an unknown
  id is HTTP 200 with ``data: []``. A ``task_ids`` query advances the task like a legacy poll
  (counted in ``fake.polls``); an ``external_task_ids`` lookup never advances it. Legacy tasks of
  the account are visible here too, in the new shape (one account).
* A create under a used external id follows ``fake.duplicate_external_id``: "reject" -> 400/1201
  ``"options.external_task_id: '<id>' is already used by task <id>; it must be unique"``, or
  "return_existing" -> 200 with that task.
* Results: ``outputs[0]`` ``{type: video, id, url, duration[, watermark_url]}`` (``watermark_url``
  only when ``options.watermark_info.enabled``, absent otherwise, as seen live, §9); ``billing``
  ``[{charge_type: unit, amount, package_type: video}]`` on terminal tasks, ``amount "0"`` when
  failed (failed tasks are not billed, §7.5). Prices: the legacy fake's table (§7.9: unchanged),
  Turbo 0.8 / 1.0 u/s with audio included.
* Inline multi-shot (``shot n, m, words;``, §6.2): n runs 1..6 in order, m >= 1, words <= 512
  characters, the m sum to ``settings.duration``; the result video has one colour per shot unless
  ``multi_shot`` is false on 3.0 / 3.0 Omni (then one shot).
* ``@image_N`` / ``@video_N`` / ``@element_N`` in a prompt must name the ``id`` of a part.
* Reference and motion videos cannot be fetched: their length comes from ``fake.reference_videos``
  or a ``_<N>s.mp4`` suffix, as in the legacy fake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx

from tests.fakes.kling import (
    ASPECT_RATIOS,
    ELEMENTS_FAMILY,
    FakeTask,
    KlingError,
    _invalid,
    _is_int,
    _nearest_aspect,
    _seconds_text,
    price_units,
    units_text,
)

if TYPE_CHECKING:
    from tests.fakes.kling import FakeKling

ENDPOINTS = ("text-to-video", "image-to-video", "omni-video", "motion-control")
STANDARD_FAMILY_PREFIX = "std:"
"""``FakeTask.family`` of a new-standard task (``std:image-to-video``): invisible to legacy routes."""

MODELS_BY_ENDPOINT: dict[str, tuple[str, ...]] = {
    "text-to-video": ("kling-3.0-turbo", "kling-3.0", "kling-2.6", "kling-2.5-turbo"),
    "image-to-video": ("kling-3.0-turbo", "kling-3.0", "kling-2.6", "kling-2.5-turbo"),
    "omni-video": ("kling-3.0-omni", "kling-o1"),
    "motion-control": ("kling-3.0", "kling-2.6"),
}
"""§7.2: the documented path model names per endpoint."""

PRICE_MODEL = {"kling-3.0-turbo": "kling-v3-turbo", "kling-3.0": "kling-v3", "kling-3.0-omni": "kling-v3-omni",
               "kling-o1": "kling-video-o1", "kling-2.6": "kling-v2-6", "kling-2.5-turbo": "kling-v2-5-turbo"}
"""Path name -> the legacy fake's price-table model (prices are the same on both APIs, §7.9)."""
RESOLUTION_MODE = {"720p": "std", "1080p": "pro", "4k": "4k"}

_T_2500 = 2500
_T_3072 = 3072
_FIVE_TEN = (5, 10)
_THREE_FIFTEEN = tuple(range(3, 16))


@dataclass(frozen=True)
class Capability:
    """What one (endpoint, model) takes, straight from the §7.3 tables (None = setting absent)."""

    resolutions: tuple[str, ...]
    aspect_ratio: bool
    durations: tuple[int, ...] | None
    audio: tuple[str, ...] | None
    multi_shot: bool
    parts: frozenset[str]
    prompt_max: int
    max_elements: int = 0


def _cap(resolutions: tuple[str, ...], aspect: bool, durations: tuple[int, ...] | None, audio: tuple[str, ...] | None,
         multi: bool, parts: set[str], prompt_max: int, max_elements: int = 0) -> Capability:
    return Capability(resolutions, aspect, durations, audio, multi, frozenset(parts), prompt_max, max_elements)


HD = ("720p", "1080p")
HD4K = ("720p", "1080p", "4k")
CAPABILITIES: dict[tuple[str, str], Capability] = {
    ("text-to-video", "kling-3.0-turbo"): _cap(HD, True, _THREE_FIFTEEN, None, False, set(), _T_3072),
    ("image-to-video", "kling-3.0-turbo"): _cap(HD, False, _THREE_FIFTEEN, None, False,
                                                {"prompt", "first_frame"}, _T_2500),
    ("text-to-video", "kling-3.0"): _cap(HD4K, True, _THREE_FIFTEEN, ("native", "off"), True, set(), _T_3072),
    ("image-to-video", "kling-3.0"): _cap(HD4K, False, _THREE_FIFTEEN, ("native", "off"), True,
                                          {"prompt", "first_frame", "last_frame", "element"}, _T_3072, 3),
    ("omni-video", "kling-3.0-omni"): _cap(HD4K, True, _THREE_FIFTEEN, ("native", "original", "off"), True,
                                           {"prompt", "first_frame", "last_frame", "refer_image", "feature_video",
                                            "base_video", "element"}, _T_3072, 7),
    ("omni-video", "kling-o1"): _cap(HD, True, tuple(range(3, 11)), ("original", "off"), False,
                                     {"prompt", "first_frame", "last_frame", "refer_image", "feature_video",
                                      "base_video", "element"}, _T_2500, 7),
    ("text-to-video", "kling-2.6"): _cap(HD, True, _FIVE_TEN, ("native", "off"), False, set(), _T_2500),
    ("image-to-video", "kling-2.6"): _cap(HD, False, _FIVE_TEN, ("native", "off"), False,
                                          {"prompt", "first_frame", "last_frame", "voice"}, _T_2500),
    ("text-to-video", "kling-2.5-turbo"): _cap(HD, True, _FIVE_TEN, None, False, set(), _T_2500),
    ("image-to-video", "kling-2.5-turbo"): _cap(HD, False, _FIVE_TEN, None, False,
                                                {"prompt", "first_frame", "last_frame"}, _T_2500),
    ("motion-control", "kling-3.0"): _cap(HD, False, None, ("original", "off"), False,
                                          {"prompt", "image", "video", "element"}, _T_2500, 1),
    ("motion-control", "kling-2.6"): _cap(HD, False, None, ("original", "off"), False,
                                          {"prompt", "image", "video"}, _T_2500),
}

PART_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "prompt": (frozenset({"text"}), frozenset()),
    "first_frame": (frozenset({"url"}), frozenset({"id"})),
    "last_frame": (frozenset({"url"}), frozenset({"id"})),
    "refer_image": (frozenset({"url"}), frozenset({"id"})),
    "feature_video": (frozenset({"url"}), frozenset({"id"})),
    "base_video": (frozenset({"url"}), frozenset({"id"})),
    "element": (frozenset({"element_id", "id"}), frozenset()),
    "voice": (frozenset({"voice_id", "id"}), frozenset()),
    "image": (frozenset({"url"}), frozenset()),
    "video": (frozenset({"url"}), frozenset()),
}
"""Part type -> (required fields, optional fields) besides ``type`` (§7.3 part table)."""
FRAME_ID_ENDPOINTS = ("omni-video",)
"""``id`` on a frame part is documented on omni only."""

OPTIONS_FIELDS = frozenset({"callback_url", "external_task_id", "watermark_info"})
INLINE_SHOT = re.compile(r"shot\s+([0-9]+)\s*,\s*([0-9]+)\s*,\s*([^;]*);", re.IGNORECASE)
LABEL = re.compile(r"@((?:image|video|element|voice)_[0-9]+)")


@dataclass
class _Validated:
    """What a validated create will render and cost."""

    model: str
    shots: tuple[float, ...]
    sound: bool
    aspect_ratio: str
    units: Decimal
    prompt: str


class StandardApi:
    """The new-standard routes of one fake account (``FakeKling.standard``)."""

    def __init__(self, account: FakeKling) -> None:
        self.account = account

    @staticmethod
    def is_create_path(path: str) -> bool:
        parts = path.strip("/").split("/")
        return len(parts) == 2 and parts[0] in ENDPOINTS

    @staticmethod
    def handles(path: str) -> bool:
        first = path.strip("/").split("/")[0]
        return first in ENDPOINTS or first == "tasks"

    # ---------------------------------------------------------------- routing

    def route(self, request: httpx.Request, path: str) -> httpx.Response:
        self._require_api_key(request)
        parts = path.strip("/").split("/")
        if parts == ["tasks"]:
            if request.method == "GET":
                return self._get_tasks(request)
            raise KlingError(1202, f"{request.method} /tasks is not emulated by the fake (use GET)")
        if len(parts) == 2 and parts[0] in ENDPOINTS:
            if request.method != "POST":
                raise KlingError(1202, f"{request.method} is not supported on {path}")
            return self._create(parts[0], parts[1], self.account._json_body(request))
        raise KlingError(1203, f"{path} does not exist")

    def _require_api_key(self, request: httpx.Request) -> None:
        token = (request.headers.get("authorization") or "")[7:]
        if token not in self.account.api_keys:
            raise KlingError(1002, "Authorization is invalid: the new-standard API accepts API keys only")

    # ---------------------------------------------------------------- create

    def _create(self, endpoint: str, model: str, body: dict[str, Any]) -> httpx.Response:
        fake = self.account
        if model not in MODELS_BY_ENDPOINT[endpoint]:
            offered = ", ".join(MODELS_BY_ENDPOINT[endpoint])
            raise _invalid("model", f"model '{model}' is not supported on /{endpoint} (documented: {offered})")
        checked = self._validate(endpoint, model, body)
        options = body.get("options") or {}
        external_id = options.get("external_task_id")
        if external_id is not None and external_id in fake._by_external:
            existing = fake.tasks[fake._by_external[external_id]]
            if fake.duplicate_external_id == "reject":
                raise _invalid("options.external_task_id",
                               f"'{external_id}' is already used by task {existing.task_id}; it must be unique")
            return fake._ok(self.task_data(existing))
        fake._check_capacity(checked.units)
        now = fake._now_ms()
        script = fake._scripted(external_id, {"prompt": checked.prompt}, fake.polls_to_finish)
        task = FakeTask(
            task_id=fake._new_task_id(), family=STANDARD_FAMILY_PREFIX + endpoint, body=body,
            external_task_id=external_id, created_at=now, updated_at=now,
            polls_to_finish=script.polls if script.polls is not None else fake.polls_to_finish,
            fail_message=script.fail, units=float(checked.units), units_text=units_text(checked.units),
            model=checked.model, mode=None, shots=checked.shots, sound=checked.sound,
            aspect_ratio=checked.aspect_ratio,
            watermark=bool((options.get("watermark_info") or {}).get("enabled", False)),
            video_seconds=script.video_seconds, reported_seconds=script.reported_seconds, api="new")
        fake._store(task)
        fake.creates[external_id or ""] += 1
        return fake._ok({"id": task.task_id, "status": "submitted", "message": "", "create_time": now,
                         "update_time": now, "external_id": external_id})

    # ---------------------------------------------------------------- query

    def _get_tasks(self, request: httpx.Request) -> httpx.Response:
        fake = self.account
        params = parse_qs(request.url.query.decode() if isinstance(request.url.query, bytes) else request.url.query,
                          keep_blank_values=True)
        unknown = sorted(set(params) - {"task_ids", "external_task_ids"})
        if unknown:
            raise _invalid(unknown[0], "unknown query parameter (use task_ids or external_task_ids)")
        if len(params) != 1:
            raise _invalid("task_ids", "task_ids or external_task_ids is required (exactly one of them)")
        (name, values), = params.items()
        ids = [i for value in values for i in value.split(",") if i]
        if not ids:
            raise _invalid(name, "must not be empty")
        found = []
        for ident in ids:
            task_id = ident if name == "task_ids" else fake._by_external.get(ident)
            task = fake.tasks.get(task_id or "")
            if task is None or task.family == ELEMENTS_FAMILY:
                continue
            if name == "task_ids":
                fake.polls[task.task_id] += 1
                fake._advance(task)
            found.append(self.task_data(task))
        return fake._ok(found)

    def task_data(self, task: FakeTask) -> dict[str, Any]:
        """A task as the new API shows it (§7.5): id, status, message, times, external_id, outputs, billing."""
        status = {"succeed": "succeeded"}.get(task.status, task.status)
        data: dict[str, Any] = {"id": task.task_id, "status": status, "message": task.status_message,
                                "create_time": task.created_at, "update_time": task.updated_at,
                                "external_id": task.external_task_id or "", "outputs": []}
        if task.status == "succeed":
            video: dict[str, Any] = {"type": "video", "id": task.video_id, "url": task.video_url,
                                     "duration": _seconds_text(task.reported_duration)}
            if task.watermark_url:
                video["watermark_url"] = task.watermark_url
            data["outputs"] = [video]
            data["billing"] = [{"charge_type": "unit", "amount": task.units_text, "package_type": "video"}]
        elif task.status == "failed":
            data["billing"] = [{"charge_type": "unit", "amount": "0", "package_type": "video"}]
        return data

    # ------------------------------------------------------------ validation

    def _validate(self, endpoint: str, model: str, body: dict[str, Any]) -> _Validated:
        cap = CAPABILITIES[(endpoint, model)]
        allowed_top = {"prompt", "settings", "options"} if endpoint == "text-to-video" else {"contents", "settings", "options"}
        unknown = sorted(set(body) - allowed_top)
        if unknown:
            raise _invalid(unknown[0], f"not a field of /{endpoint}/{model} (documented: {', '.join(sorted(allowed_top))})")
        self._options(body.get("options"))
        settings = body.get("settings", {})
        if not isinstance(settings, dict):
            raise _invalid("settings", "must be an object")
        parts = self._parts(endpoint, model, cap, body) if endpoint != "text-to-video" else {}
        if endpoint == "text-to-video":
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise _invalid("prompt", "required non-blank string")
            if len(prompt) > cap.prompt_max:
                raise _invalid("prompt", f"must be at most {cap.prompt_max} characters, got {len(prompt)}")
        else:
            prompt = parts.get("prompt_text", "")
        return self._settings(endpoint, model, cap, settings, parts, prompt)

    def _options(self, options: Any) -> None:
        if options is None:
            return
        if not isinstance(options, dict):
            raise _invalid("options", "must be an object")
        unknown = sorted(set(options) - OPTIONS_FIELDS)
        if unknown:
            raise _invalid(f"options.{unknown[0]}", "unknown field (documented: callback_url, external_task_id, watermark_info)")
        if "external_task_id" in options:
            value = options["external_task_id"]
            if not isinstance(value, str) or not value.strip():
                raise _invalid("options.external_task_id", f"must be a non-empty string, got {value!r}")
        if "callback_url" in options:
            url = options["callback_url"]
            if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
                raise _invalid("options.callback_url", f"must be an http(s) URL, got {url!r}")
        if "watermark_info" in options:
            info = options["watermark_info"]
            if not isinstance(info, dict) or set(info) - {"enabled"} or not isinstance(info.get("enabled", False), bool):
                raise _invalid("options.watermark_info", 'must be {"enabled": true|false}')

    def _parts(self, endpoint: str, model: str, cap: Capability, body: dict[str, Any]) -> dict[str, Any]:
        """Check ``contents[]`` part by part; returns what was found (prompt, frames, videos, ...)."""
        fake = self.account
        contents = body.get("contents")
        if contents is None:
            raise _invalid("contents", "contents cannot be empty")
        if not isinstance(contents, list):
            raise _invalid("contents", "contents value type is invalid, expected array")
        if not contents:
            raise _invalid("contents", "contents cannot be empty")
        found: dict[str, Any] = {"types": [], "labels": set(), "elements": 0, "refer_images": 0, "videos": [],
                                 "voices": 0, "first_size": None}
        for position, part in enumerate(contents):
            where = f"contents[{position}]"
            if not isinstance(part, dict):
                raise _invalid(where, "must be an object {type, ...}")
            kind = part.get("type")
            if kind not in PART_FIELDS:
                raise _invalid(f"{where}.type", f"contents[{position}].type value '{kind}' is invalid")
            if kind not in cap.parts:
                raise _invalid(f"{where}.type", f"part type '{kind}' is not allowed on /{endpoint}/{model}")
            required, optional = PART_FIELDS[kind]
            if kind in ("first_frame", "last_frame") and endpoint not in FRAME_ID_ENDPOINTS:
                optional = frozenset()
            extra = sorted(set(part) - {"type"} - required - optional)
            if extra:
                raise _invalid(f"{where}.{extra[0]}", f"unknown field of a '{kind}' part")
            missing = sorted(required - set(part))
            if missing:
                raise _invalid(f"{where}.{missing[0]}", f"required on a '{kind}' part")
            if "id" in part:
                label = part["id"]
                if not isinstance(label, str) or not label.strip():
                    raise _invalid(f"{where}.id", "must be a non-empty string")
                if label in found["labels"]:
                    raise _invalid(f"{where}.id", f"'{label}' labels two parts; labels must be unique")
                found["labels"].add(label)
            if kind == "prompt":
                text = part["text"]
                if not isinstance(text, str) or not text.strip():
                    raise _invalid(f"{where}.text", "content item of type 'prompt' must have non-blank text")
                if "prompt_text" in found:
                    raise _invalid(where, "at most one 'prompt' part")
                if len(text) > cap.prompt_max:
                    raise _invalid(f"{where}.text", f"must be at most {cap.prompt_max} characters, got {len(text)}")
                found["prompt_text"] = text
            elif kind in ("first_frame", "last_frame", "refer_image", "image"):
                url = part["url"]
                if not isinstance(url, str) or not url.strip():
                    raise _invalid(f"{where}.url", f"content item of type '{kind}' must have a non-blank url")
                size = fake._image(url, f"{where}.url")
                if kind in found["types"] and kind != "refer_image":
                    raise _invalid(where, f"at most one '{kind}' part")
                if kind == "first_frame" or (kind == "image" and endpoint == "motion-control"):
                    found["first_size"] = size
                found["refer_images"] += kind == "refer_image"
            elif kind in ("feature_video", "base_video", "video"):
                seconds = fake._video_url(part["url"], f"{where}.url")
                found["videos"].append((kind, seconds, f"{where}.url"))
            elif kind == "element":
                element_id = part["element_id"]
                if not isinstance(element_id, str) or not re.fullmatch(r"[0-9]+", element_id):
                    raise _invalid(f"{where}.element_id", f"must be the element id as a string of digits, got {element_id!r}")
                task = fake._element_task(int(element_id))
                if task is not None and task.element["status"] == "deleted":
                    raise _invalid(f"{where}.element_id", f"element {element_id} was deleted")
                if fake.require_known_elements and (task is None or task.status != "succeed"):
                    raise _invalid(f"{where}.element_id", f"element {element_id} does not exist")
                found["elements"] += 1
            elif kind == "voice":  # kling-2.6 i2v only (CAPABILITIES); the prompt names it @<id> (§7.3)
                if not isinstance(part["voice_id"], str) or not part["voice_id"]:
                    raise _invalid(f"{where}.voice_id", "must be a non-empty string")
                found["voices"] += 1
                found.setdefault("voice_labels", []).append((where, part["id"]))
            found["types"].append(kind)
        types = found["types"]
        if "last_frame" in types and "first_frame" not in types:
            raise _invalid("contents", "a last_frame needs a first_frame")
        if endpoint == "image-to-video" and "first_frame" not in types:
            raise _invalid("contents", "image-to-video needs a first_frame part")
        if endpoint == "motion-control" and ("image" not in types or "video" not in types):
            raise _invalid("contents", "motion control needs an 'image' part and a 'video' part")
        if found["elements"] > cap.max_elements:
            raise _invalid("contents", f"at most {cap.max_elements} element part(s) on /{endpoint}/{model}, "
                                       f"got {found['elements']}")
        if found["voices"] > 2:
            raise _invalid("contents", "at most 2 voice parts")
        videos = [v for v in found["videos"] if v[0] != "video"]
        if len(videos) > 1:
            raise _invalid("contents", "at most one reference video (feature_video or base_video)")
        if videos:
            kind, seconds, where = videos[0]
            longest = 15.5 if model == "kling-3.0-omni" else 10.0
            if not 3 <= seconds <= longest:
                raise _invalid(where, f"reference video must be 3-{longest:g} s, got {seconds:g} s")
            if kind == "base_video" and ({"first_frame", "last_frame"} & set(types)):
                raise _invalid("contents", "a base_video (edit) cannot be combined with frames")
            if model == "kling-o1" and kind == "feature_video" and "last_frame" in types:
                raise _invalid("contents", "kling-o1 with a feature_video allows only a first frame")
            if found["refer_images"] + found["elements"] > 4:
                raise _invalid("contents", "with a reference video, refer images + elements must be at most 4")
        elif found["refer_images"] + found["elements"] > 7:
            raise _invalid("contents", "refer images + elements must be at most 7")
        for motion in (v for v in found["videos"] if v[0] == "video"):
            if not 3 <= motion[1] <= 30:
                raise _invalid(motion[2], f"motion video must be 3-30 s, got {motion[1]:g} s")
        text = found.get("prompt_text", "")
        for where, label in found.get("voice_labels", []):
            if not re.search(rf"@{re.escape(str(label))}(?![0-9A-Za-z_])", text):
                raise _invalid(f"{where}.id", f"the prompt must name voice '{label}' as @{label}")
        for label in LABEL.findall(text):
            if label not in found["labels"]:
                raise _invalid("contents", f"the prompt refers to @{label} but no part has id '{label}'")
        found["video_kind"] = videos[0][0] if videos else None
        found["video_seconds"] = videos[0][1] if videos else None
        found["motion_seconds"] = next((v[1] for v in found["videos"] if v[0] == "video"), None)
        return found

    def _settings(self, endpoint: str, model: str, cap: Capability, settings: dict[str, Any],
                  parts: dict[str, Any], prompt: str) -> _Validated:
        known = {"resolution", "duration", "aspect_ratio", "audio", "multi_shot", "character_orientation"}
        documented = {"resolution"}
        if cap.aspect_ratio:
            documented.add("aspect_ratio")
        if cap.durations is not None:
            documented.add("duration")
        if cap.audio is not None:
            documented.add("audio")
        if cap.multi_shot:
            documented.add("multi_shot")
        if endpoint == "motion-control":
            documented.add("character_orientation")
        for name in sorted(settings):
            if name not in documented:
                why = "not a documented setting" if name not in known else f"not a setting of /{endpoint}/{model}"
                raise _invalid(f"settings.{name}", why)
        resolution = settings.get("resolution", "720p")
        if not isinstance(resolution, str) or resolution not in cap.resolutions:
            raise _invalid("settings.resolution", f"value {resolution!r} is invalid (allowed: {', '.join(cap.resolutions)})")
        types = parts.get("types", [])
        video_kind = parts.get("video_kind")
        aspect = settings.get("aspect_ratio")
        if aspect is not None and (not isinstance(aspect, str) or aspect not in ASPECT_RATIOS):
            raise _invalid("settings.aspect_ratio", f"value {aspect!r} is invalid (allowed: {', '.join(ASPECT_RATIOS)})")
        if endpoint == "omni-video" and aspect is None and "first_frame" not in types and video_kind is None:
            raise _invalid("settings.aspect_ratio", "required unless a first frame or a video is given "
                                                    "(the output then follows it)")
        audio = settings.get("audio")
        if audio is not None and (not isinstance(audio, str) or audio not in (cap.audio or ())):
            raise _invalid("settings.audio", f"value {audio!r} is invalid for {model} (allowed: {', '.join(cap.audio or ())})")
        if video_kind == "feature_video" and model == "kling-3.0-omni" and audio not in (None, "off"):
            raise _invalid("settings.audio", "must be 'off' with a feature_video on kling-3.0-omni")
        if video_kind == "base_video" and audio == "native":
            raise _invalid("settings.audio", "cannot be 'native' with a base_video")
        if audio == "original" and endpoint == "omni-video" and video_kind is None:
            raise _invalid("settings.audio", "'original' needs a reference video")
        if model == "kling-2.6" and endpoint == "text-to-video" and audio == "native" and resolution != "1080p":
            raise _invalid("settings.audio", "'native' on kling-2.6 text-to-video needs resolution 1080p")
        if "last_frame" in types and model in ("kling-2.6", "kling-2.5-turbo") and resolution != "1080p":
            raise _invalid("settings.resolution", f"a last_frame on {model} needs 1080p")
        if parts.get("voices") and audio in (None, "off"):
            raise _invalid("settings.audio", "voice parts need audio 'native'")
        multi = settings.get("multi_shot", True) if cap.multi_shot else False
        if not isinstance(multi, bool):
            raise _invalid("settings.multi_shot", f"must be a boolean, got {multi!r}")
        if video_kind == "base_video" and cap.multi_shot and settings.get("multi_shot", True):
            raise _invalid("settings.multi_shot", "must be false with a base_video (an edit is one shot)")
        if endpoint == "motion-control":
            orientation = settings.get("character_orientation")
            if orientation not in ("image", "video"):
                raise _invalid("settings.character_orientation", f"required: 'image' or 'video', got {orientation!r}")
            seconds = float(parts["motion_seconds"])
            if orientation == "image" and seconds > 10:
                raise _invalid("contents", f"motion video must be at most 10 s for orientation 'image', got {seconds:g} s")
            billed = int(Decimal(str(seconds)).quantize(Decimal(1), ROUND_HALF_UP))
            return _Validated(model, (seconds,), (audio or "original") == "original",
                              _nearest_aspect(parts["first_size"]) if parts.get("first_size") else "16:9",
                              self._units(model, resolution, billed, "motion_control"), prompt)
        duration = settings.get("duration", 5)
        if not _is_int(duration):
            raise _invalid("settings.duration", f"must be an integer, got {type(duration).__name__} {duration!r}")
        allowed = cap.durations or ()
        if model == "kling-o1" and not parts.get("refer_images") and not parts.get("elements") and video_kind is None:
            allowed = _FIVE_TEN  # text only, or a first frame only (§7.3 O1 column)
        if duration not in allowed:
            raise _invalid("settings.duration", f"value {duration} is out of range for {model} "
                                                f"(allowed: {', '.join(map(str, allowed))})")
        shots = self._inline_shots(prompt, duration)
        if shots and cap.multi_shot and not multi:
            shots = None  # multi_shot false makes an inline prompt one shot (§6.2)
        if video_kind == "base_video":
            seconds = float(parts["video_seconds"])
            billed: float = int(Decimal(str(seconds)).quantize(Decimal(1), ROUND_HALF_UP))
            length: tuple[float, ...] = (seconds,)
        else:
            billed, length = duration, shots or (float(duration),)
        if model == "kling-3.0-turbo":
            sound, feature = True, "audio"
        elif video_kind is not None:
            sound, feature = audio == "original", "video_input"
        elif audio == "native":
            sound, feature = True, "audio_voice" if parts.get("voices") else "audio"
        else:
            sound, feature = False, "silent"
        if aspect is None:
            aspect = _nearest_aspect(parts["first_size"]) if parts.get("first_size") else "16:9"
        return _Validated(model, length, sound, aspect, self._units(model, resolution, billed, feature), prompt)

    @staticmethod
    def _inline_shots(prompt: str, duration: int) -> tuple[float, ...] | None:
        """The shots of an inline ``shot n, m, words;`` prompt (§6.2), checked; None for a plain prompt."""
        found = INLINE_SHOT.findall(prompt)
        if not found:
            return None
        if len(found) > 6:
            raise _invalid("prompt", f"at most 6 inline shots, got {len(found)}")
        seconds = []
        for position, (number, length, words) in enumerate(found, 1):
            if int(number) != position:
                raise _invalid("prompt", f"inline shot {position} is numbered {number}")
            if int(length) < 1:
                raise _invalid("prompt", f"inline shot {position} must last at least 1 s")
            if len(words.strip()) > 512:
                raise _invalid("prompt", f"inline shot {position} has {len(words.strip())} characters; at most 512")
            seconds.append(float(length))
        if sum(seconds) != duration:
            raise _invalid("prompt", f"inline shots sum to {sum(seconds):g} s but settings.duration is {duration}")
        return tuple(seconds)

    def _units(self, model: str, resolution: str, seconds: float, feature: str) -> Decimal:
        try:
            return price_units(PRICE_MODEL[model], RESOLUTION_MODE[resolution], seconds, feature)
        except KeyError:
            raise _invalid("settings.resolution", f"{model} {resolution} with {feature.replace('_', ' ')} "
                                                  "is not offered") from None
