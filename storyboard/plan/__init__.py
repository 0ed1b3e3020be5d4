"""Plan: a loaded storyboard → the exact, priced provider requests.

The request types (``Plan``, ``Request``, …) are re-exported here because every later stage reads
them; the planner that writes them lives in ``storyboard.plan.planner``.
"""

from storyboard.plan.requests import (
    AUDIO_SCHEME,
    CLIP_SCHEME,
    ELEMENT_SCHEME,
    FACE_SCHEME,
    FRAME_SCHEME,
    IMAGE_SCHEME,
    SPEECH_SCHEME,
    UNIT_PRICE_USD,
    VIDEO_SCHEME,
    VOICE_SCHEME,
    ElementRegistration,
    FaceStep,
    Family,
    Plan,
    Request,
    ShotSlice,
    SpeechRequest,
    VoiceRegistration,
)

__all__ = [
    "AUDIO_SCHEME",
    "CLIP_SCHEME",
    "ELEMENT_SCHEME",
    "FACE_SCHEME",
    "FRAME_SCHEME",
    "IMAGE_SCHEME",
    "SPEECH_SCHEME",
    "UNIT_PRICE_USD",
    "VIDEO_SCHEME",
    "VOICE_SCHEME",
    "ElementRegistration",
    "FaceStep",
    "Family",
    "Plan",
    "Request",
    "ShotSlice",
    "SpeechRequest",
    "VoiceRegistration",
]
