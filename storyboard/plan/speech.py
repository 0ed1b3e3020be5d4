"""Speech made by Kling's text-to-speech (``POST /v1/audio/tts``): its identity, its estimated length, its price.

Why a module of its own: an avatar spoken from text (and, later, a lip sync from text) is a two-step
flow, TTS first, then the video request that takes the TTS ``audio_id`` (kling-api-2.md §4). The
video request is billed per second of speech, but the speech does not exist until TTS runs, so the
plan must price it *before* any spend from an estimate of how long the text takes to say. The
estimate, the digest that names one synthesis, and the limits of the TTS call live here so every
kind that speaks text shares them (``SpeechRequest`` in ``plan.requests`` is what the engine runs).

The estimate is ours, not Kling's (Kling documents no speaking rate). It brackets the length
between a *fast* reading and a *slow* one, both at the requested ``voice_speed``:

* English: 2.0 words per second slow (120 words a minute: slower than the 150-160 a minute of
  common TTS voices and of conversational speech), 3.5 fast (210 a minute); a run of digits counts
  as one word per digit in the slow reading (a number read digit by digit) and one in the fast.
* Chinese: 3.0 characters (syllables) per second slow, 6.0 fast (Mandarin news reading runs at
  about 4-5 syllables a second).
* The slow reading adds 0.35 s per sentence or clause break (``. , ! ? ; :`` and their full-width
  forms) and 0.5 s of lead-in and tail; the fast one adds nothing.

The plan prices the slow (upper) reading, so the real bill (per started second of the synthesized
audio) is at most what the plan showed unless the voice speaks slower than 2 words a second.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from storyboard.plan.pricing import canonical_json
from storyboard.plan.requests import SPEECH_SCHEME

TTS_PATH = "/v1/audio/tts"
TTS_UNITS = 0.05
"""Units per TTS call (kling-api-2.md §4, "TTS costs 0.05 units per call"). kling-api.md §11 lists
"text-to-audio 0.25 per call": that is Kling's sound-effects product (audio from a description),
not speech from text, and it is not what this call is billed."""
MAX_TEXT = 1000
"""Characters of text one TTS call takes (kling-api-2.md §4)."""
SPEED_RANGE = (0.8, 2.0)
"""``voice_speed``: 0.8-2.0, one decimal (default 1.0)."""
LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
"""Kling's default is zh; ours is en because a storyboard written in English expects English speech,
and the body always sends ``voice_language`` so Kling's default never decides."""
AUDIO_ID_DAYS = 30
"""Kling keeps a TTS audio id usable by the avatar for 30 days (kling-api-2.md §4)."""
REUSE_MARGIN_DAYS = 1
"""An audio id is reused only while it is younger than 30 days minus this margin: a render that
takes hours, or clocks a little apart, must not send an id that expires on the way."""
REUSE_SECONDS = (AUDIO_ID_DAYS - REUSE_MARGIN_DAYS) * 86400.0

_EN_SLOW_WORDS, _EN_FAST_WORDS = 2.0, 3.5
_ZH_SLOW_CHARS, _ZH_FAST_CHARS = 3.0, 6.0
_BREAK_SECONDS = 0.35
_LEAD_SECONDS = 0.5

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+")
_BREAKS = re.compile(r"[.,!?;:。，！？；：、]+")


@dataclass(frozen=True)
class SpeechEstimate:
    """How long a text takes to say: ``low`` (fast reading) to ``high`` (slow), in seconds."""

    low: float
    high: float

    @property
    def billed_seconds(self) -> int:
        """The started seconds the plan prices: the slow reading, never past Kling's 300 s of audio."""
        return max(1, math.ceil(min(self.high, 300.0) - 1e-9))


def estimate_seconds(text: str, language: str, speed: float) -> SpeechEstimate:
    """The bracket of the speech's length for ``text`` at ``speed`` (module docstring: the rates)."""
    cjk = len(_CJK.findall(text))
    latin = _CJK.sub(" ", text)
    words = _WORD.findall(latin)
    slow_words = sum(len(w) if w.isdigit() else 1 for w in words)
    breaks = len(_BREAKS.findall(text.rstrip(".。!！?？ \n")))  # the final full stop is the tail, already counted
    high = (slow_words / _EN_SLOW_WORDS + cjk / _ZH_SLOW_CHARS) / speed + breaks * _BREAK_SECONDS + _LEAD_SECONDS
    low = (len(words) / _EN_FAST_WORDS + cjk / _ZH_FAST_CHARS) / speed
    return SpeechEstimate(round(low, 2), round(high, 2))


def speech_digest(text: str, voice_id: str, language: str, speed: float) -> str:
    """sha256 of the TTS inputs: one synthesis, whatever audio id Kling gives it (it changes when re-made)."""
    canonical = canonical_json({"text": text, "voice_id": voice_id, "language": language, "speed": round(speed, 1)})
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def speech_placeholder(text: str, voice_id: str, language: str, speed: float) -> str:
    return SPEECH_SCHEME + speech_digest(text, voice_id, language, speed)


def tts_body(text: str, voice_id: str, language: str, speed: float) -> dict[str, object]:
    """The exact ``POST /v1/audio/tts`` body (kling-api-2.md §4): every field sent, none left to Kling's defaults."""
    return {"text": text, "voice_id": voice_id, "voice_language": language, "voice_speed": round(speed, 1)}
