"""Fonts for every text the cut burns in (captions, title and end cards, contact sheets).

Why a module of its own: ad copy is German, French, Spanish, with em dashes and euro signs, and
Pillow's built-in font has none of é, ü, ß, ñ, €, — or –: the shipped campaign burned "Cat Caf□"
into its MP4s and nothing said so. So:

* the default is Noto Sans (Latin, Greek, Cyrillic), shipped inside the package under the SIL
  Open Font License (``fonts/OFL.txt`` beside it), so a fresh install draws the same letters
  everywhere;
* ``font:`` is a file (the timeline has already made a project-relative path absolute) or a family
  name the system knows: fontconfig's ``fc-match`` answers when it is installed, otherwise the
  usual font folders are scanned; a name found nowhere is an error naming everything tried;
* text is laid out with Pillow's complex layout (raqm: shaping, bidi, combining marks) when this
  Pillow has it, its basic layout otherwise;
* ``check_texts`` reads each chosen font's character map (fontTools) before anything renders, and
  reports, at the storyboard line, every text with characters its font lacks, and how to fix it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PIL import ImageFont, features

from storyboard.errors import Problem, UserError

if TYPE_CHECKING:
    from storyboard.load.spec import Storyboard, TextStyle
    from storyboard.plan import Plan

FONT_DIR = Path(__file__).with_name("fonts")
DEFAULT_FONT = FONT_DIR / "NotoSans-Regular.ttf"
DEFAULT_BOLD_FONT = FONT_DIR / "NotoSans-Bold.ttf"
DEFAULT_FAMILY = "Noto Sans"
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")

FC_MATCH_TIMEOUT_S = 10


class FontNotFound(UserError):
    """A ``font:`` that is neither a readable font file nor a family name found on the system."""


def layout_engine() -> ImageFont.Layout:
    """Raqm (HarfBuzz shaping, FriBiDi) when this Pillow was built with it, else the basic layout."""
    return ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC


def _system_font_dirs() -> list[Path]:
    """Where operating systems keep fonts, for the scan used when fontconfig is absent."""
    home = Path.home()
    folders = [
        home / ".local" / "share" / "fonts",
        home / ".fonts",
        Path("/usr/local/share/fonts"),
        Path("/usr/share/fonts"),
        home / "Library" / "Fonts",
        Path("/Library/Fonts"),
        Path("/System/Library/Fonts"),
    ]
    if sys.platform == "win32":
        windir = Path(os.environ.get("WINDIR", r"C:\Windows"))
        folders.insert(0, windir / "Fonts")
        local = os.environ.get("LOCALAPPDATA")
        if local:
            folders.insert(0, Path(local) / "Microsoft" / "Windows" / "Fonts")
    return folders


def _squash(name: str) -> str:
    """A family or file name reduced for comparison: "DejaVu Sans" ~ "DejaVuSans" ~ "dejavu-sans"."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _fc_match(name: str) -> tuple[Path | None, str]:
    """fontconfig's answer for ``name``: (file, what it said). fc-match always names *some* font
    (its fallback), so the answer counts only when its family is the one asked for."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None, "fc-match (not installed)"
    try:
        result = subprocess.run(
            [fc_match, "--format", "%{family}\t%{file}", name],
            capture_output=True,
            text=True,
            timeout=FC_MATCH_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"fc-match (failed: {exc})"
    families, _, file = result.stdout.strip().partition("\t")
    wanted = _squash(name.split(":", 1)[0])
    if result.returncode == 0 and file and any(_squash(f) == wanted for f in families.split(",")):
        return Path(file), f"fc-match {name!r}"
    shown = families.split(",")[0] if families else "nothing"
    return None, f"fc-match {name!r} (its closest font is {shown}, another family)"


def _scan_folders(name: str) -> tuple[Path | None, str]:
    """A font file whose name is the family's (``DejaVuSans.ttf``, ``NotoSans-Regular.otf``)."""
    wanted = _squash(name)
    candidates = {wanted, wanted + "regular"}
    folders = [folder for folder in _system_font_dirs() if folder.is_dir()]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in FONT_SUFFIXES and _squash(path.stem) in candidates:
                return path, ""
    shown = ", ".join(str(folder) for folder in folders) or "no font folder exists"
    return None, f"files named {name}.ttf/.otf/-Regular.ttf in {shown}"


@functools.lru_cache(maxsize=64)
def font_file(font: str | None, *, bold: bool = False) -> Path:
    """The file of a ``font:`` value: None is the bundled Noto Sans (bold for headings), an
    existing file is itself, anything else a family name looked up on the system."""
    if not font:
        return DEFAULT_BOLD_FONT if bold else DEFAULT_FONT
    if _squash(font) in {_squash(DEFAULT_FAMILY), _squash(DEFAULT_FAMILY) + "regular"}:
        return DEFAULT_FONT
    if _squash(font) == _squash(DEFAULT_FAMILY) + "bold":
        return DEFAULT_BOLD_FONT
    path = Path(font).expanduser()
    tried = [f"the file {path}"]
    if path.is_file():
        return path
    looks_like_path = path.suffix.lower() in FONT_SUFFIXES or "/" in font or "\\" in font
    if not looks_like_path:
        for lookup in (_fc_match, _scan_folders):
            found, said = lookup(font)
            if found is not None and found.is_file():
                return found
            tried.append(said)
    raise FontNotFound(
        f"font {font!r} was not found; tried {'; '.join(tried)}",
        f"give the path of a .ttf/.otf file (relative to the project) or a family name that "
        f"`fc-list : family` shows, or remove `font` to use {DEFAULT_FAMILY} (the default)",
    )


@functools.lru_cache(maxsize=128)
def _load(path: Path, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), px, layout_engine=layout_engine())


def load_font(font: str | None, px: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A Pillow font for ``font:`` at ``px`` pixels (see ``font_file``), cached per file and size."""
    path = font_file(font, bold=bold)
    try:
        return _load(path, px)
    except OSError as exc:
        raise FontNotFound(
            f"font {font or DEFAULT_FAMILY!r} ({path}) cannot be read: {exc}",
            "use a TrueType or OpenType font file (.ttf, .otf)",
        ) from None


@functools.lru_cache(maxsize=64)
def _characters(path: Path, mtime_ns: int) -> frozenset[int]:
    """Code points the font maps to a glyph (the union of its Unicode cmap subtables)."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(str(path), lazy=True, fontNumber=0) as face:
            cmap = face.getBestCmap() or {}
            return frozenset(cmap)
    except (TTLibError, OSError, KeyError) as exc:
        raise FontNotFound(
            f"font {path} cannot be read: {exc}", "use a TrueType or OpenType font file (.ttf, .otf)"
        ) from None


def _drawn(character: str) -> bool:
    """Whether a character needs a glyph: line breaks, tabs and invisible format marks do not."""
    return unicodedata.category(character) not in {"Cc", "Cf", "Zl", "Zp"}


def missing_characters(text: str, font: str | Path | None) -> str:
    """The characters of ``text`` the font has no glyph for, each once, in order of appearance.

    ``font`` is a ``font:`` value (None: the default) or a font file. Why the cmap and not a test
    render: Pillow draws a missing glyph as the font's empty box without complaint.
    """
    path = font if isinstance(font, Path) else font_file(font)
    known = _characters(path, path.stat().st_mtime_ns)
    missing: dict[str, None] = {}
    for character in text:
        if _drawn(character) and ord(character) not in known:
            missing[character] = None
    return "".join(missing)


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
