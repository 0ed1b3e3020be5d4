"""What each Kling model offers and what it costs, as data.

Why a table and not ``if model == ...`` scattered through the planner: Kling's rules change every
few months (4K arrived in 2026-04, multi-shot with frames in 2026-05). Keeping every model fact in
one place (kling-api.md §3-§6 for capabilities, §11 for prices) means a changelog entry is a one-line
edit here, and the planner's checks read as questions ("does this model offer voices here?")
instead of model-name comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from math import gcd

TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"
OMNI = "omni-video"
MULTI_IMAGE = "multi-image2video"
MOTION_CONTROL = "motion-control"
AVATAR = "avatar/image2video"
LIP_SYNC = "lip-sync"
ADVANCED_LIP_SYNC = "advanced-lip-sync"

ENDPOINTS = {
    TEXT2VIDEO: "/v1/videos/text2video",
    IMAGE2VIDEO: "/v1/videos/image2video",
    OMNI: "/v1/videos/omni-video",
    MULTI_IMAGE: "/v1/videos/multi-image2video",
    MOTION_CONTROL: "/v1/videos/motion-control",
    AVATAR: "/v1/videos/avatar/image2video",
    LIP_SYNC: "/v1/videos/lip-sync",
    ADVANCED_LIP_SYNC: "/v1/videos/advanced-lip-sync",
}
"""Create path of each request family (kling-api.md §4)."""

FAMILY_WORDS = {
    TEXT2VIDEO: "text-to-video",
    IMAGE2VIDEO: "image-to-video",
    OMNI: "omni-video",
    MULTI_IMAGE: "multi-image-to-video",
    MOTION_CONTROL: "motion control",
    AVATAR: "avatar",
    LIP_SYNC: "lip sync",
    ADVANCED_LIP_SYNC: "advanced lip sync",
}

MULTI_SHOT_MAX_SHOTS = 6
MULTI_SHOT_MIN_SECONDS = 3
MULTI_SHOT_MAX_SECONDS = 15
MULTI_SHOT_PROMPT_MAX = 512
PROMPT_MAX = 2500
OMNI_MAX_INPUTS = 7
"""Omni: reference images + frames + elements together, without a reference video (§4.4)."""
OMNI_MAX_ELEMENTS_WITH_FRAME = 3
MULTI_IMAGE_MAX = 4


@dataclass(frozen=True)
class CameraControlRule:
    """Where ``camera_control`` is offered: one family, mode and duration, some preset types."""

    family: str
    mode: str
    duration: int
    types: frozenset[str]

    def describe(self, model: str) -> str:
        kinds = "any type" if len(self.types) > 1 else f"type {next(iter(self.types))} only"
        return f"{model} {FAMILY_WORDS[self.family]} {self.mode} {self.duration} s ({kinds})"


@dataclass(frozen=True)
class ModelInfo:
    """Every fact the planner needs about one ``model_name`` (kling-api.md §3)."""

    name: str
    families: frozenset[str]
    modes: tuple[str, ...]
    durations: tuple[int, ...]
    sends_mode: bool = True
    """False where Kling rejects or ignores ``mode`` (kling-v2-master, kling-v2-1-master)."""
    pure_text_durations: tuple[int, ...] | None = None
    """kling-video-o1: pure text-to-video and first-frame-only requests take 5 or 10 s only."""
    multi_shot: bool = False
    sound_modes: frozenset[str] = frozenset()
    """Modes in which ``sound: on`` is offered; empty = the model has no native audio."""
    has_sound_field: bool = False
    """Whether the body carries ``sound`` at all (models with native audio in some mode)."""
    cfg_scale: bool = True
    four_k_families: frozenset[str] = frozenset()
    element_families: frozenset[str] = frozenset()
    max_elements: int = 0
    voice_modes: frozenset[str] = frozenset()
    voice_durations: tuple[int, ...] = ()
    camera_control: tuple[CameraControlRule, ...] = ()
    motion_brush_modes: frozenset[str] = frozenset()
    motion_brush_durations: tuple[int, ...] = ()
    end_frame_modes: frozenset[str] = frozenset({"std", "pro", "4k"})
    end_frame_durations: tuple[int, ...] | None = None
    end_frame_silent_only: bool = False
    fps: int = 24
    image2video_fps: int | None = None
    heights: dict[str, int] = field(default_factory=lambda: {"std": 720, "pro": 1080, "4k": 2160})
    fixed_height: int | None = None
    """Models without ``mode`` render one resolution whatever the storyboard asks."""
    always_sound: bool = False
    """The model always renders native audio (kling-v3-turbo): it is priced and labelled with sound."""

    @property
    def omni(self) -> bool:
        return OMNI in self.families

    @property
    def max_duration(self) -> int:
        return max(self.durations)

    def durations_for(self, *, pure_text: bool = False) -> tuple[int, ...]:
        if pure_text and self.pure_text_durations:
            return self.pure_text_durations
        return self.durations

    def offers_sound(self, mode: str) -> bool:
        return mode in self.sound_modes

    def fps_for(self, family: str) -> int:
        if family == IMAGE2VIDEO and self.image2video_fps:
            return self.image2video_fps
        return self.fps

    def camera_rule(self, family: str, mode: str, duration: int, kind: str) -> CameraControlRule | None:
        for rule in self.camera_control:
            if rule.family == family and rule.mode == mode and rule.duration == duration and kind in rule.types:
                return rule
        return None


_FIVE_TEN = (5, 10)
_ALL_PRESETS = frozenset({"simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"})

MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            "kling-v1",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
            ("std", "pro"),
            _FIVE_TEN,
            camera_control=(CameraControlRule(TEXT2VIDEO, "std", 5, _ALL_PRESETS),),
            motion_brush_modes=frozenset({"std", "pro"}),
            motion_brush_durations=(5,),
            end_frame_durations=(5,),
            fps=30,
            heights={"std": 720, "pro": 720},
        ),
        ModelInfo(
            "kling-v1-5",
            frozenset({IMAGE2VIDEO}),
            ("std", "pro"),
            _FIVE_TEN,
            camera_control=(CameraControlRule(IMAGE2VIDEO, "pro", 5, frozenset({"simple"})),),
            motion_brush_modes=frozenset({"pro"}),
            motion_brush_durations=(5,),
            end_frame_modes=frozenset({"pro"}),
            fps=30,
        ),
        ModelInfo(
            "kling-v1-6",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO, MULTI_IMAGE}),
            ("std", "pro"),
            _FIVE_TEN,
            end_frame_modes=frozenset({"pro"}),
            image2video_fps=30,
        ),
        ModelInfo(
            "kling-v2-master",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
            ("std", "pro"),
            _FIVE_TEN,
            sends_mode=False,
            cfg_scale=False,
            fixed_height=720,
        ),
        ModelInfo(
            "kling-v2-1",
            frozenset({IMAGE2VIDEO}),
            ("std", "pro"),
            _FIVE_TEN,
            cfg_scale=False,
            end_frame_modes=frozenset({"pro"}),
        ),
        ModelInfo(
            "kling-v2-1-master",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
            ("std", "pro"),
            _FIVE_TEN,
            sends_mode=False,
            cfg_scale=False,
            fixed_height=1080,
        ),
        ModelInfo(
            "kling-v2-5-turbo",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
            ("std", "pro"),
            _FIVE_TEN,
            cfg_scale=False,
            end_frame_modes=frozenset({"pro"}),
        ),
        ModelInfo(
            "kling-v2-6",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO, MOTION_CONTROL}),
            ("std", "pro"),
            _FIVE_TEN,
            sound_modes=frozenset({"pro"}),
            has_sound_field=True,
            cfg_scale=False,
            voice_modes=frozenset({"pro"}),
            voice_durations=_FIVE_TEN,
            end_frame_modes=frozenset({"pro"}),
            end_frame_silent_only=True,
        ),
        ModelInfo(
            "kling-v3",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO, MOTION_CONTROL}),
            ("std", "pro", "4k"),
            tuple(range(3, 16)),
            multi_shot=True,
            sound_modes=frozenset({"std", "pro", "4k"}),
            has_sound_field=True,
            four_k_families=frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
            element_families=frozenset({IMAGE2VIDEO}),
            max_elements=3,
        ),
        ModelInfo(
            # Kling 3.0 Turbo (kling-api-2.md §7 "3.0 Turbo specifics"): new-standard API only, no
            # audio switch (always native audio), first frame only, no elements; multi-shot only
            # through the inline "shot n, m, words;" prompt syntax.
            "kling-v3-turbo",
            frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
            ("std", "pro"),
            tuple(range(3, 16)),
            multi_shot=True,
            sound_modes=frozenset({"std", "pro"}),
            cfg_scale=False,
            always_sound=True,
        ),
        ModelInfo(
            "kling-video-o1",
            frozenset({OMNI}),
            ("std", "pro"),
            tuple(range(3, 11)),
            pure_text_durations=_FIVE_TEN,
            cfg_scale=False,
            element_families=frozenset({OMNI}),
            max_elements=OMNI_MAX_INPUTS,
        ),
        ModelInfo(
            "kling-v3-omni",
            frozenset({OMNI}),
            ("std", "pro", "4k"),
            tuple(range(3, 16)),
            multi_shot=True,
            sound_modes=frozenset({"std", "pro", "4k"}),
            has_sound_field=True,
            cfg_scale=False,
            four_k_families=frozenset({OMNI}),
            element_families=frozenset({OMNI}),
            max_elements=OMNI_MAX_INPUTS,
        ),
    )
}
"""Kling's legacy ``model_name`` values and what each offers (kling-api.md §3, capability map 2026)."""

MULTI_SHOT_MODELS = tuple(name for name, info in MODELS.items() if info.multi_shot)
SOUND_MODELS = ("kling-v3", "kling-v3-omni", "kling-v2-6 (pro)")


# --- motion control, avatar, lip sync (kling-api-2.md §1, §4, §5) -------------------------------

AVATAR_MODEL = "kling-avatar"
"""The plan's name for Kling's avatar: its body has no model field (§4)."""
LIP_SYNC_MODEL = "kling-lip-sync"
"""The plan's name for Kling's classic lip sync (§5.2); the body has no model field."""
KIND_OUTPUT_SLACK = 0.05
"""Seconds a shot may keep beyond its input's probed length (frame rounding of the input file)."""
LIP_SYNC_BLOCK_SECONDS = 5
"""Lip sync is billed per started 5 s of video (§5.2)."""
ADVANCED_LIP_SYNC_MODEL = "kling-advanced-lip-sync"
"""The plan's name for Kling's advanced lip sync (§5.1); the body has no model field."""
FACE_RECOGNITION_UNITS = "0.05"
"""Units per identify-face call, the advanced lip sync's first step (kling-api.md §11 "face recognition")."""

KIND_RATES: dict[tuple[str, str], dict[str, str]] = {
    # (family, model) -> mode -> units: per rounded output second (motion control, §1.3), per
    # second of audio (avatar, §4), per started 5 s block (lip sync, §5.2).
    (MOTION_CONTROL, "kling-v3"): {"std": "0.9", "pro": "1.2"},
    (MOTION_CONTROL, "kling-v2-6"): {"std": "0.5", "pro": "0.8"},
    (AVATAR, AVATAR_MODEL): {"std": "0.4", "pro": "0.8"},
    (LIP_SYNC, LIP_SYNC_MODEL): {"std": "0.5"},
    # the reference lists no price of its own for advanced lip sync: assumed equal to the classic
    # one (0.5 per started 5 s), unverified; its face step adds FACE_RECOGNITION_UNITS
    (ADVANCED_LIP_SYNC, ADVANCED_LIP_SYNC_MODEL): {"std": "0.5"},
}

# --- prices -------------------------------------------------------------------------------------

_OFFICIAL_RATES: dict[str, dict[tuple[str, str], str]] = {
    # (feature, mode) -> units per second; kling-api.md §11.1 (vendor page, 2026-09-20).
    "kling-v3": {
        ("silent", "std"): "0.6", ("silent", "pro"): "0.8", ("silent", "4k"): "3.0",
        ("audio", "std"): "0.9", ("audio", "pro"): "1.2", ("audio", "4k"): "3.0",
    },
    "kling-v3-omni": {
        ("silent", "std"): "0.6", ("silent", "pro"): "0.8", ("silent", "4k"): "3.0",
        ("audio", "std"): "0.8", ("audio", "pro"): "1.0", ("audio", "4k"): "3.0",
        ("video", "std"): "0.9", ("video", "pro"): "1.2",
    },
    "kling-video-o1": {
        ("silent", "std"): "0.6", ("silent", "pro"): "0.8",
        ("video", "std"): "0.9", ("video", "pro"): "1.2",
    },
    "kling-v2-6": {
        ("silent", "std"): "0.3", ("silent", "pro"): "0.5",
        ("audio", "pro"): "1.0", ("voice", "pro"): "1.2",
    },
    "kling-v2-5-turbo": {("silent", "std"): "0.3", ("silent", "pro"): "0.5"},
    # kling-api-2.md §7.9: Kling 3.0 Turbo, audio included, 720p / 1080p.
    "kling-v3-turbo": {("audio", "std"): "0.8", ("audio", "pro"): "1.0"},
}  # fmt: skip

_ESTIMATED_RATES: dict[str, dict[str, str]] = {
    # mode -> units per second; kling-api.md §11.2, not in the 2026 official table.
    "kling-v1-6": {"std": "0.4", "pro": "0.7"},  # ~2 units / 5 s std, ~3.5 units / 5 s pro
    "kling-v2-master": {"std": "2.0", "pro": "2.0"},  # ~10 units / 5 s
    "kling-v2-1-master": {"std": "2.0", "pro": "2.0"},
    # No published figure at all: priced like kling-v1-6, the closest documented older model.
    "kling-v1": {"std": "0.4", "pro": "0.7"},
    "kling-v1-5": {"std": "0.4", "pro": "0.7"},
    "kling-v2-1": {"std": "0.4", "pro": "0.7"},
}
ESTIMATE_SOURCES = {
    "kling-v1-6": "kling-api.md §11.2 (reseller figures, not an official table)",
    "kling-v2-master": "kling-api.md §11.2 (reseller figures, not an official table)",
    "kling-v2-1-master": "kling-api.md §11.2 (reseller figures, not an official table)",
    "kling-v1": "no published price: assumed equal to kling-v1-6",
    "kling-v1-5": "no published price: assumed equal to kling-v1-6",
    "kling-v2-1": "no published price: assumed equal to kling-v1-6",
}


def _rate(model: str, mode: str, sound: bool, *, video_input: bool, voice: bool) -> tuple[Decimal, bool]:
    if model in _OFFICIAL_RATES:
        official = _OFFICIAL_RATES[model]
        feature = "video" if video_input else "voice" if voice else "audio" if sound else "silent"
        if (feature, mode) not in official:
            raise ValueError(f"Kling lists no price for {model} {mode} ({feature}): the combination is not offered")
        return Decimal(official[(feature, mode)]), False
    if model in _ESTIMATED_RATES:
        if sound or voice or video_input:
            raise ValueError(f"{model} has no native audio, voices or video input")
        table = _ESTIMATED_RATES[model]
        if mode not in table:
            raise ValueError(f"no price for {model} {mode}")
        return Decimal(table[mode]), True
    raise ValueError(f"unknown model {model!r}")


def units_per_second(
    model: str, mode: str, sound: bool, *, video_input: bool = False, voice: bool = False
) -> tuple[float, bool]:
    """Kling units billed per generated second, and whether the figure is an estimate.

    Raises ``ValueError`` for a combination Kling does not offer (``check`` reports those first).
    """
    rate, estimated = _rate(model, mode, sound, video_input=video_input, voice=voice)
    return float(rate), estimated


def units_for(
    model: str, mode: str, sound: bool, seconds: int, *, video_input: bool = False, voice: bool = False
) -> tuple[float, bool]:
    """Units for a clip of ``seconds``, computed in decimal so 0.6 x 5 is exactly 3 (not 3.0000000000000004)."""
    rate, estimated = _rate(model, mode, sound, video_input=video_input, voice=voice)
    return float(rate * seconds), estimated


# --- output geometry ----------------------------------------------------------------------------

ASPECT_RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}


def output_height(model: str, mode: str) -> int:
    info = MODELS[model]
    if info.fixed_height:
        return info.fixed_height
    return info.heights.get(mode, 720)


def output_size(model: str, mode: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixel size of a clip: the short side is the mode's resolution (720/1080/2160)."""
    short = output_height(model, mode)
    wide, tall = (int(part) for part in aspect_ratio.split(":"))
    divisor = gcd(wide, tall)
    wide, tall = wide // divisor, tall // divisor
    if wide >= tall:
        return round(short * wide / tall), short
    return short, round(short * tall / wide)


def snap_aspect_ratio(width: int, height: int) -> str:
    """The Kling output ratio (16:9, 9:16, 1:1) closest to an image's, compared on a log scale."""
    from math import log

    ratio = width / height
    return min(ASPECT_RATIOS, key=lambda name: (abs(log(ratio) - log(ASPECT_RATIOS[name])), name))


def next_allowed_duration(seconds: int, allowed: tuple[int, ...]) -> int | None:
    """The shortest allowed render length that holds ``seconds``; None when none does."""
    fitting = [d for d in allowed if d >= seconds]
    return min(fitting) if fitting else None


def describe_durations(allowed: tuple[int, ...]) -> str:
    if len(allowed) > 2 and list(allowed) == list(range(allowed[0], allowed[-1] + 1)):
        return f"{allowed[0]}-{allowed[-1]} s"
    return ", ".join(str(d) for d in allowed)


def models_offering(predicate) -> list[str]:
    """Names of the models for which ``predicate(info)`` holds, in table order (for messages)."""
    return [name for name, info in MODELS.items() if predicate(info)]


# --- the two Kling APIs ---------------------------------------------------------------------------

LEGACY_API = "legacy"
NEW_API = "new"
APIS = (LEGACY_API, NEW_API)

NEW_API_ENDPOINTS = {
    TEXT2VIDEO: "/text-to-video",
    IMAGE2VIDEO: "/image-to-video",
    OMNI: "/omni-video",
    MOTION_CONTROL: "/motion-control",
}
"""Create path of each family on the new-standard API; the path model name follows (§7.2)."""

NEW_API_RESOLUTIONS = {"std": "720p", "pro": "1080p", "4k": "4k"}
"""The format's ``mode`` as the new API's ``settings.resolution`` (std/pro were 720p/1080p, §1.2)."""


@dataclass(frozen=True)
class StandardModel:
    """What one model takes on the new-standard API (kling-api-2.md §7.2, §7.3 settings table).

    Why a second table rather than flags on ``ModelInfo``: the new API names models differently
    (in the path), takes other fields (``settings{resolution, duration, audio, multi_shot}``) and
    has its own ranges; it is checked by ``validate`` because the live service does not check them.
    """

    path_name: str
    families: frozenset[str]
    modes: tuple[str, ...]
    """Format modes offered, as ``settings.resolution`` (``NEW_API_RESOLUTIONS``)."""
    durations: tuple[int, ...]
    pure_text_durations: tuple[int, ...] | None = None
    audio: tuple[str, ...] = ()
    """``settings.audio`` values; empty = the body has no ``audio`` (2.5 Turbo; Turbo: always on)."""
    multi_shot_setting: bool = False
    """``settings.multi_shot`` exists and defaults to true: a single-shot request must send false."""
    last_frame_families: frozenset[str] = frozenset()
    element_families: frozenset[str] = frozenset()
    max_elements: int = 0
    reference_images: bool = False
    """``refer_image`` parts (omni only)."""
    prompt_max: int = PROMPT_MAX

    def endpoint(self, family: str) -> str:
        return f"{NEW_API_ENDPOINTS[family]}/{self.path_name}"


_THREE_TO_FIFTEEN = tuple(range(3, 16))

NEW_API_MODELS: dict[str, StandardModel] = {
    "kling-v3-turbo": StandardModel(
        "kling-3.0-turbo", frozenset({TEXT2VIDEO, IMAGE2VIDEO}), ("std", "pro"), _THREE_TO_FIFTEEN
    ),
    "kling-v3": StandardModel(
        "kling-3.0",
        frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
        ("std", "pro", "4k"),
        _THREE_TO_FIFTEEN,
        audio=("native", "off"),
        multi_shot_setting=True,
        last_frame_families=frozenset({IMAGE2VIDEO}),
        element_families=frozenset({IMAGE2VIDEO}),
        max_elements=3,
    ),
    "kling-v3-omni": StandardModel(
        "kling-3.0-omni",
        frozenset({OMNI}),
        ("std", "pro", "4k"),
        _THREE_TO_FIFTEEN,
        audio=("native", "original", "off"),
        multi_shot_setting=True,
        last_frame_families=frozenset({OMNI}),
        element_families=frozenset({OMNI}),
        max_elements=OMNI_MAX_INPUTS,
        reference_images=True,
    ),
    "kling-video-o1": StandardModel(
        "kling-o1",
        frozenset({OMNI}),
        ("std", "pro"),
        tuple(range(3, 11)),
        pure_text_durations=_FIVE_TEN,
        audio=("original", "off"),
        last_frame_families=frozenset({OMNI}),
        element_families=frozenset({OMNI}),
        max_elements=OMNI_MAX_INPUTS,
        reference_images=True,
    ),
    "kling-v2-6": StandardModel(
        "kling-2.6",
        frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
        ("std", "pro"),
        _FIVE_TEN,
        audio=("native", "off"),
        last_frame_families=frozenset({IMAGE2VIDEO}),
    ),
    "kling-v2-5-turbo": StandardModel(
        "kling-2.5-turbo",
        frozenset({TEXT2VIDEO, IMAGE2VIDEO}),
        ("std", "pro"),
        _FIVE_TEN,
        last_frame_families=frozenset({IMAGE2VIDEO}),
    ),
}
"""The format's model names -> their new-standard form. Models missing here exist only on the legacy API."""

NEW_API_ONLY = frozenset({"kling-v3-turbo"})
"""Models that exist only on the new-standard API (no legacy ``model_name``): Kling 3.0 Turbo."""


@dataclass(frozen=True)
class ApiChoice:
    """Which API a request goes to, and the sentence the plan shows for it."""

    api: str
    reason: str


def decide_api(model: str, requested: str | None) -> ApiChoice:
    """The API a request of ``model`` goes to, given the storyboard's ``api`` (None when unset).

    The default is the legacy API, for three reasons: every model of the format exists there
    (the new API lacks kling-v1 to kling-v2-1-master and multi-image-to-video); its bodies can
    express everything the format has (negative_prompt, cfg_scale, camera_control, motion_brush,
    voices, per-shot durations in multi_prompt), while the new one drops those; and it takes both
    kinds of credentials (an AK/SK pair or an API key), the new one an API key only. Keeping the
    default also keeps every existing request's body and content key, so journals made before
    the new API existed still find what they paid for. Turbo exists only on the new API, so it
    goes there whatever the default; an explicit ``api: legacy`` on it is an error (``validate``).
    """
    if model in NEW_API_ONLY:
        if requested == LEGACY_API:
            return ApiChoice(LEGACY_API, f"api legacy was asked, but {model} exists only on the new API")
        return ApiChoice(NEW_API, f"{model} exists only on Kling's new-standard API")
    if requested == NEW_API:
        return ApiChoice(NEW_API, "api new chosen in the storyboard")
    if requested == LEGACY_API:
        return ApiChoice(LEGACY_API, "api legacy chosen in the storyboard")
    return ApiChoice(LEGACY_API, "the default API (legacy: every model and control, either kind of credentials)")
