"""Plan: a loaded storyboard → the exact, priced provider requests.

The request types (``Plan``, ``Request``, …) are re-exported here because every later stage reads
them; the planner that writes them lives in ``storyboard.plan.planner``.
"""

from storyboard.plan.requests import (
    ELEMENT_SCHEME,
    FRAME_SCHEME,
    IMAGE_SCHEME,
    UNIT_PRICE_USD,
    VOICE_SCHEME,
    ElementRegistration,
    Family,
    Plan,
    Request,
    ShotSlice,
    VoiceRegistration,
)

__all__ = [
    "ELEMENT_SCHEME",
    "FRAME_SCHEME",
    "IMAGE_SCHEME",
    "UNIT_PRICE_USD",
    "VOICE_SCHEME",
    "ElementRegistration",
    "Family",
    "Plan",
    "Request",
    "ShotSlice",
    "VoiceRegistration",
]
