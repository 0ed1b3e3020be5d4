"""``extra:``: JSON fields the format does not model, passed into a request's body as written.

Why a way around the format: Kling adds parameters faster than the format can model them (a
``settings.seed`` on the new API, a new legacy flag), and a user should not wait for a release to
try one. The price of that freedom is stated, not hidden:

* the fields go into the body of both wire forms as written; mappings merge into the body's own
  mappings (``extra: {settings: {seed: 7}}`` on the new API adds one setting), so the request's
  content key, which hashes the body, changes with them and a changed extra re-renders;
* a field the format already writes is refused at its line (it would silently override a value
  the plan priced and checked): set it through the format instead;
* the plan lists every unmodelled field in the request's notes, saying validate did not check it:
  Kling is the judge (the legacy service refuses an unknown field, the new one ignores unknown
  keys inside ``settings``).

A shot's ``extra`` merges over ``defaults.extra`` key by key, mappings included.
"""

from __future__ import annotations

import copy
from typing import Any

from storyboard.plan.shots import ResolvedShot


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings key by key, anything else replaced."""
    result = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def extra_of(defaults_extra: dict[str, Any] | None, shot: ResolvedShot) -> dict[str, Any]:
    """The unmodelled fields a shot's request sends: ``defaults.extra`` with the shot's own merged over it."""
    if not shot.spec.extra:  # the common case, asked for every pair of shots grouping compares: no copy
        return defaults_extra or {}
    return merged(defaults_extra or {}, shot.spec.extra)


def apply_extra(body: dict[str, Any], extra: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Merge ``extra`` into ``body`` in place; returns (the dotted fields added, the ones the format already writes).

    A field the format writes is left as the format wrote it and reported, so the caller can
    refuse it at its line; the body never carries a value the plan did not check *and* replace.
    """
    added: list[str] = []
    clashes: list[str] = []

    def merge(target: dict[str, Any], fields: dict[str, Any], prefix: str) -> None:
        for key, value in fields.items():
            path = f"{prefix}{key}"
            if key not in target:
                target[key] = copy.deepcopy(value)
                added.append(path)
            elif isinstance(value, dict) and isinstance(target[key], dict):
                merge(target[key], value, path + ".")
            else:
                clashes.append(path)

    merge(body, extra, "")
    return added, clashes
