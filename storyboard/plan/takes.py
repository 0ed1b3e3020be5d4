"""Takes: the same request rendered again on purpose, without paying twice for take 1.

Why a key per take: a request's key is the hash of its exact body, and the journal, the clip cache
and Kling's ``external_task_id`` all hang off that key, which is what makes "never pay twice"
hold. A second take of the same body therefore gets a key of its own, derived from the body's key
and the take number (``take_key``); take 1 keeps the body's key unchanged, so every journal and
clip written before takes existed stays valid, and take 1 is never paid again.

A take of an upstream request changes the last frame a chained request (``start_frame:
previous``) starts from: its body holds ``frame://last/<upstream key>``, so the chained body is
rewritten with the new take's key and, being a different body, becomes a new request (rendered
once, with a note saying why). ``with_takes`` does both, in plan order (upstream first).

This module is pure: which take each request uses comes in as data (the storyboard's per-shot
``take`` and the review's choices from the journal, decided by the pipeline).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from storyboard.plan.pricing import content_key, external_task_id
from storyboard.plan.requests import FRAME_SCHEME, Plan, Request


def take_key(base_key: str, take: int) -> str:
    """The key of take ``take`` of the request whose take-1 key is ``base_key`` (take 1: unchanged)."""
    if take <= 1:
        return base_key
    return hashlib.sha256(f"{base_key}/take/{take}".encode()).hexdigest()


def base_of(request: Request) -> str:
    """The take-1 key of a request (its own key for take 1)."""
    return request.base_key or request.key


def _replace_frames(value: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value.startswith(FRAME_SCHEME):
        upstream = value[len(FRAME_SCHEME):]
        return FRAME_SCHEME + renamed.get(upstream, upstream)
    if isinstance(value, dict):
        return {k: _replace_frames(v, renamed) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_frames(v, renamed) for v in value]
    return value


def with_takes(
    plan: Plan,
    *,
    fixed: Mapping[str, int] | None = None,
    chosen: Mapping[str, int] | None = None,
    reasons: Mapping[str, str] | None = None,
) -> tuple[Plan, dict[str, str]]:
    """The plan with each request at its take; and old key -> new key for every request that changed.

    ``fixed``: shot id -> take, from the storyboard (wins; a multi-shot request takes the highest
    its shots ask for). ``chosen``: take-1 key -> take, from the review. ``reasons``: take-1 key ->
    why that take was asked for (shown in the plan). Requests at take 1 whose upstream did not
    change come back untouched, so a storyboard without takes plans exactly as before.
    """
    fixed = fixed or {}
    chosen = chosen or {}
    reasons = reasons or {}
    renamed: dict[str, str] = {}
    by_key = {request.key: request for request in plan.requests}
    requests: list[Request] = []
    for request in plan.requests:
        update: dict[str, Any] = {}
        notes = list(request.notes)
        base = base_of(request)
        moved = [key for key in request.depends_on if key in renamed]
        if moved:
            body = _replace_frames(request.body, renamed)
            base = content_key(request.endpoint, body)
            update["body"] = body
            update["depends_on"] = [renamed.get(key, key) for key in request.depends_on]
            for key in moved:
                upstream = by_key[key]
                notes.append(f"rendered again: chained from {upstream.id}, whose new take changes its start frame")
        asked = [fixed[piece.shot_id] for piece in request.shots if piece.shot_id in fixed]
        take = max(asked) if asked else chosen.get(base, 1)
        key = take_key(base, take)
        if take > 1:
            why = "the storyboard's take" if asked else reasons.get(base, "the review's choice")
            notes.append(f"take {take} ({why}): a new render of the same body, paid once")
        if key == request.key and not update:
            requests.append(request)
            continue
        renamed[request.key] = key
        update.update(key=key, external_task_id=external_task_id(key), take=take,
                      base_key="" if take <= 1 else base, notes=notes)
        requests.append(request.model_copy(update=update))
    if not renamed:
        return plan, {}
    return plan.model_copy(update={"requests": requests}), renamed


__all__ = ["base_of", "take_key", "with_takes"]
