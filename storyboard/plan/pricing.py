"""Prices and content keys: what a request costs, and the name under which it is paid once.

Why together: both are the money side of a request. The key hashes the exact body (image
placeholders included), so renaming an image changes nothing and editing one prompt re-renders
exactly one request; the price is computed in decimal from ``capabilities``' per-second table,
so 0.6 x 5 is exactly 3 units and a plan's total is the sum of what each request will be billed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from storyboard.plan import UNIT_PRICE_USD
from storyboard.plan import capabilities as caps


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_key(endpoint: str, body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of endpoint and body (placeholders included).

    Encoded with ``surrogatepass`` so any Python text hashes: valid text gives the same bytes as
    plain UTF-8 (keys do not change), and a lone surrogate, which the rules report as an error,
    cannot crash planning on its way to being reported.
    """
    text = canonical_json({"endpoint": endpoint, "body": body})
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def external_task_id(key: str) -> str:
    """The id sent to Kling with a create, so a lost create can be found again by it."""
    return "sb-" + key[:40]


def usd(units: float) -> float:
    """Dollars of a number of units, rounded to cents (Kling lists one unit at $0.14)."""
    return round(float(Decimal(str(units)) * Decimal(str(UNIT_PRICE_USD))), 2)


def total_units(units: Iterable[float]) -> float:
    return float(sum(Decimal(str(u)) for u in units))


@dataclass(frozen=True)
class Price:
    units: float
    estimated: bool
    mode: str
    """The mode the price (and the output size) is read at: models without ``mode`` by their resolution."""


def price(model: str, mode: str, sound: bool, seconds: int, *, voice: bool, video_input: bool = False) -> Price:
    """What Kling bills for one request; an invalid combination (already reported) costs 0, estimated.

    ``video_input``: an omni request with a reference or edited video, billed at the video-input
    rate (kling-api-2.md §2.3) on ``seconds`` (an edit: the input's length, rounded).
    """
    info = caps.MODELS[model]
    sound = sound or info.always_sound
    price_mode = mode if info.sends_mode else ("pro" if caps.output_height(model, mode) >= 1080 else "std")
    try:
        units, estimated = caps.units_for(
            model, price_mode, sound and info.offers_sound(mode), seconds, voice=voice, video_input=video_input
        )
    except ValueError:
        units, estimated = 0.0, True
    return Price(units, estimated, price_mode)


def estimate_note(model: str) -> str:
    return f"price is an estimate: {caps.ESTIMATE_SOURCES.get(model, 'not in the official table')}"


@dataclass(frozen=True)
class KindPrice:
    """The price of a motion-control, avatar or lip-sync request, and the billing rule the plan shows."""

    units: float
    note: str


def kind_price(family: str, model: str, mode: str, billed: int) -> KindPrice:
    """Units of one request of a kind with its own billing rule (``capabilities.KIND_RATES``).

    ``billed``: motion control, the output seconds rounded; avatar, the audio's started seconds;
    lip sync, the seconds of its started 5 s blocks (each block costs the 5 s rate).
    """
    try:
        rate = Decimal(caps.KIND_RATES[(family, model)][mode])
    except KeyError:  # a model or mode the kind does not take: already reported by the rules
        return KindPrice(0.0, f"no price: {caps.FAMILY_WORDS[family]} is not offered on {model} {mode}")
    if family == caps.LIP_SYNC:
        blocks = billed // caps.LIP_SYNC_BLOCK_SECONDS
        return KindPrice(float(rate * blocks), f"price: {blocks} x {rate} units per started "
                                               f"{caps.LIP_SYNC_BLOCK_SECONDS} s of video")
    if family == caps.ADVANCED_LIP_SYNC:
        blocks = billed // caps.LIP_SYNC_BLOCK_SECONDS
        face = Decimal(caps.FACE_RECOGNITION_UNITS)
        return KindPrice(float(face + rate * blocks),
                         f"price: {face} units face recognition + {blocks} x {rate} units per started "
                         f"{caps.LIP_SYNC_BLOCK_SECONDS} s of video (advanced lip sync assumed priced as the "
                         "classic one: the reference gives it no price of its own, unverified)")
    per = {caps.MOTION_CONTROL: "output second (rounded)", caps.AVATAR: "second of audio"}[family]
    return KindPrice(float(rate * billed), f"price: {billed} s x {rate} units per {per}")
