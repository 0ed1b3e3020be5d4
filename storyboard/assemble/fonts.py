"""Checking every text the cut burns in (captions, title and end cards) against its font.

Why here: which texts a cut draws, in which font and at which storyboard line, is the cut's
knowledge (``cut.captions``, ``cut.title``, templated shot captions). The fonts themselves (the
shipped Noto Sans, ``font:`` lookup, raqm layout, character maps) live in ``storyboard.fonts``,
the base layer, so the preview provider draws with them too; their names are re-exported here so
``storyboard.assemble.fonts`` keeps working for existing callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from storyboard.errors import Problem
from storyboard.fonts import (
    DEFAULT_BOLD_FONT,
    DEFAULT_FAMILY,
    DEFAULT_FONT,
    FONT_DIR,
    FONT_SUFFIXES,
    FontNotFound,
    font_file,
    layout_engine,
    load_font,
    missing_characters,
)

if TYPE_CHECKING:
    from storyboard.load.spec import Storyboard, TextStyle
    from storyboard.plan import Plan

__all__ = [
    "DEFAULT_BOLD_FONT",
    "DEFAULT_FAMILY",
    "DEFAULT_FONT",
    "FONT_DIR",
    "FONT_SUFFIXES",
    "DrawnText",
    "FontNotFound",
    "LoadedLike",
    "check_texts",
    "drawn_texts",
    "font_file",
    "layout_engine",
    "load_font",
    "missing_characters",
]


# --------------------------------------------------------------------------------------------
# Checking every text a storyboard draws


class LoadedLike(Protocol):
    """What ``check_texts`` needs of a LoadedStoryboard (tests may build it by hand)."""

    storyboard: Storyboard
    file: Path
    project_dir: Path

    def resolve_path(self, relative: str) -> Path: ...


@dataclass(frozen=True)
class DrawnText:
    """One text the cut burns in, with the font it is drawn in and where it is written."""

    what: str
    """"caption", "title card", "end card"."""
    text: str
    font: str | None
    font_path: tuple[str | int, ...]
    """Where the font is chosen (for a font that is not found)."""
    path: tuple[str | int, ...]
    """Where the text is written in the storyboard, e.g. ("shots", 2, "caption")."""
    raw: str
    """The text as written (before templating)."""


def _project_font(loaded: LoadedLike, style: TextStyle) -> str | None:
    """A font given as a project file, made absolute (as the timeline does); a name stays a name."""
    if not style.font:
        return None
    candidate = Path(loaded.resolve_path(style.font))
    if not candidate.is_absolute():
        candidate = Path(loaded.project_dir) / candidate
    return str(candidate.resolve()) if candidate.is_file() else style.font


def _templated_captions(loaded: LoadedLike, plan: Plan | None) -> dict[str, str | None]:
    """Shot id -> the caption after templating, from the plan (planned here when the storyboard
    has templated captions and no plan was given; a storyboard that cannot plan keeps raw text)."""
    board = loaded.storyboard
    if plan is None:
        if not any(shot.caption and ("{{" in shot.caption or "{%" in shot.caption) for shot in board.shots):
            return {}
        from storyboard.errors import StoryboardError
        from storyboard.plan import planner

        try:
            plan = planner.plan(loaded)  # type: ignore[arg-type]
        except StoryboardError:
            return {}
    captions: dict[str, str | None] = {}
    for request in plan.requests:
        for piece in request.shots:
            captions.setdefault(piece.shot_id, piece.caption)
    return captions


def drawn_texts(loaded: LoadedLike, plan: Plan | None = None) -> Iterator[DrawnText]:
    """Every text the cut draws: each cut shot's caption (the cut's own, else the shot's after
    templating), the title card and the end card, with the fonts they are drawn in."""
    board = loaded.storyboard
    cut = board.cut
    caption_font = _project_font(loaded, cut.captions)
    caption_font_path: tuple[str | int, ...] = ("cut", "captions", "font")
    templated = _templated_captions(loaded, plan)
    index_of = {shot.id: index for index, shot in enumerate(board.shots)}
    listed: list[tuple[str, str | None, tuple[str | int, ...]]]
    if cut.shots is None:
        listed = [(shot.id, None, ()) for shot in board.shots]
    else:
        listed = [(c.shot, c.caption, ("cut", "shots", n, "caption")) for n, c in enumerate(cut.shots)]
    seen: set[tuple[str | int, ...]] = set()
    for shot_id, cut_caption, cut_path in listed:
        if cut_caption is not None:
            text, raw, path = cut_caption, cut_caption, cut_path
        elif shot_id in index_of:
            shot = board.shots[index_of[shot_id]]
            raw = shot.caption or ""
            text = templated.get(shot_id) or raw
            path = ("shots", index_of[shot_id], "caption")
        else:
            continue  # an unknown shot: the timeline reports it
        if text and path not in seen:
            seen.add(path)
            yield DrawnText("caption", text, caption_font, caption_font_path, path, raw)
    for kind, card, name in (("title card", cut.title, "title"), ("end card", cut.end_card, "end_card")):
        if card is not None and card.text:
            yield DrawnText(
                kind, card.text, _project_font(loaded, card.style), ("cut", name, "style", "font"), ("cut", name, "text"),
                card.text,
            )


def _shown(characters: str) -> str:
    return ", ".join(repr(c) if c.isprintable() and not c.isspace() else f"U+{ord(c):04X}" for c in characters)


def check_texts(loaded: LoadedLike, plan: Plan | None = None) -> list[Problem]:
    """A located error for every drawn text whose font lacks some of its characters, and for every
    font that cannot be found (once per font setting).

    ``plan``: the storyboard's plan when the caller has one, so templated captions are checked as
    they will be drawn; without it, templated captions are planned here (or checked as written
    when the storyboard cannot be planned).
    """
    from storyboard.assemble.timeline import locator  # late: the timeline imports the video module

    where = locator(loaded)
    problems: list[Problem] = []
    bad_fonts: set[tuple[str | int, ...]] = set()
    for drawn in drawn_texts(loaded, plan):
        if drawn.font_path in bad_fonts:
            continue
        try:
            missing = missing_characters(drawn.text, drawn.font)
        except FontNotFound as exc:
            bad_fonts.add(drawn.font_path)
            problems.append(Problem(where(*drawn.font_path), f"{exc.message}: {exc.hint}"))
            continue
        if not missing:
            continue
        font_name = drawn.font or f"{DEFAULT_FAMILY} (the default)"
        plural = len(missing) > 1
        uses = f"uses {_shown(missing)}"
        if drawn.text != drawn.raw:
            uses = f"(templated: {drawn.text!r}) {uses}"
        if drawn.font:
            fix = (
                f"use a font that has {'them' if plural else 'it'}, e.g. {DEFAULT_FAMILY} "
                "(the default: remove `font`)"
            )
        else:
            fix = (
                f"set `font` to a font that has {'them' if plural else 'it'} "
                "(for CJK, Arabic, Devanagari or emoji, e.g. the matching Noto family), or change the text"
            )
        problems.append(
            Problem(
                where(*drawn.path),
                f"{drawn.what} {uses} which the font {font_name} lacks (drawn as a box); {fix}",
            )
        )
    return problems
