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


def price(model: str, mode: str, sound: bool, seconds: int, *, voice: bool) -> Price:
    """What Kling bills for one request; an invalid combination (already reported) costs 0, estimated."""
    info = caps.MODELS[model]
    sound = sound or info.always_sound
    price_mode = mode if info.sends_mode else ("pro" if caps.output_height(model, mode) >= 1080 else "std")
    try:
        units, estimated = caps.units_for(model, price_mode, sound and info.offers_sound(mode), seconds, voice=voice)
    except ValueError:
        units, estimated = 0.0, True
    return Price(units, estimated, price_mode)


def estimate_note(model: str) -> str:
    return f"price is an estimate: {caps.ESTIMATE_SOURCES.get(model, 'not in the official table')}"
