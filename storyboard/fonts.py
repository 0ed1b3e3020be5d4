"""Fonts for every text the project draws: the cut's captions and cards, contact sheets, previews.

Why a base-layer module: the preview provider (``render/``) and the assembler (``assemble/``) both
draw text, and ``render`` may not import ``assemble``. Ad copy is German, French, Spanish, with em
dashes and euro signs, and Pillow's built-in font has none of é, ü, ß, ñ, €, — or –: the shipped
campaign burned "Cat Caf□" into its MP4s and nothing said so. So:

* the default is Noto Sans (Latin, Greek, Cyrillic), shipped inside the package under the SIL
  Open Font License (``fonts/OFL.txt`` beside it), so a fresh install draws the same letters
  everywhere;
* ``font:`` is a file (the timeline has already made a project-relative path absolute) or a family
  name the system knows: fontconfig's ``fc-match`` answers when it is installed, otherwise the
  usual font folders are scanned; a name found nowhere is an error naming everything tried;
* text is laid out with Pillow's complex layout (raqm: shaping, bidi, combining marks) when this
  Pillow has it, its basic layout otherwise;
* ``missing_characters`` reads a font's character map (fontTools), so a text the font cannot draw
  is found before anything renders (``assemble.fonts.check_texts`` reports it at its line).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

from PIL import ImageFont, features

from storyboard.errors import UserError

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
