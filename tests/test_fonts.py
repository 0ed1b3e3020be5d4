"""Fonts: the shipped Noto Sans draws ad copy's accents and dashes, ``font:`` finds files and system
families, and ``check_texts`` reports, at the storyboard line, every text its font cannot draw."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fontTools import subset
from PIL import ImageFont

from storyboard import fonts
from storyboard.assemble.fonts import (
    DEFAULT_BOLD_FONT,
    DEFAULT_FONT,
    FontNotFound,
    check_texts,
    drawn_texts,
    font_file,
    layout_engine,
    load_font,
    missing_characters,
)
from storyboard.assemble.video import text_image
from storyboard.load import loader
from storyboard.load.spec import TextStyle

REPO = Path(__file__).resolve().parent.parent
COPY = "Morning Roast · Cat Café — Morgen früh probieren. Straße, España, 5 € – naïve"


def ascii_font(folder: Path) -> Path:
    """A real TrueType font without é, ü, ß, €, —: Noto Sans cut down to printable ASCII."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ascii.ttf"
    options = subset.Options()
    face = subset.load_font(str(DEFAULT_FONT), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=range(0x20, 0x7F))
    subsetter.subset(face)
    subset.save_font(face, str(path), options)
    return path


def test_the_default_font_is_shipped_with_its_licence() -> None:
    assert DEFAULT_FONT.is_file() and DEFAULT_BOLD_FONT.is_file()
    assert "SIL OPEN FONT LICENSE" in (DEFAULT_FONT.parent / "OFL.txt").read_text(encoding="utf-8").upper()
    assert font_file(None) == DEFAULT_FONT
    assert font_file(None, bold=True) == DEFAULT_BOLD_FONT
    assert font_file("Noto Sans") == DEFAULT_FONT  # the shipped family answers to its name


def test_the_default_font_has_the_accents_dashes_and_currency_of_ad_copy() -> None:
    assert missing_characters(COPY, None) == ""
    # and says what it lacks, each character once, in order
    assert missing_characters("日本の朝 日本 🙂", None) == "日本の朝🙂"
    # line breaks and tabs need no glyph
    assert missing_characters("a\nb\tc", None) == ""


def test_a_font_without_the_characters_is_caught(tmp_path: Path) -> None:
    font = ascii_font(tmp_path)
    assert missing_characters("Cat Café — Morgen früh", font) == "é—ü"
    assert missing_characters("Cat Cafe - Morgen frueh", font) == ""


def test_accents_are_drawn_not_boxed() -> None:
    """The drawn accent differs from the bare letter, and a letter differs from a missing glyph's box."""
    style = TextStyle(size=120, position="center")

    def pixels(text: str) -> np.ndarray:
        return np.asarray(text_image(text, style, 400, 300))[..., 3]

    assert (pixels("é") != pixels("e")).any()
    assert (pixels("ß") != pixels("日")).any()  # 日 is not in Noto Sans: the box
    assert (pixels("ü") != pixels("日")).any()


def test_layout_uses_raqm_when_pillow_has_it() -> None:
    from PIL import features

    font = load_font(None, 40)
    assert isinstance(font, ImageFont.FreeTypeFont)
    expected = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    assert layout_engine() == expected and font.layout_engine == expected


def test_a_family_name_is_found_in_the_font_folders_without_fontconfig(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "fonts" / "nested"
    folder.mkdir(parents=True)
    shutil.copy(DEFAULT_FONT, folder / "TestFace-Regular.ttf")
    monkeypatch.setattr(fonts, "_system_font_dirs", lambda: [tmp_path / "fonts"])
    monkeypatch.setattr(fonts.shutil, "which", lambda name: None)  # no fc-match on this machine
    font_file.cache_clear()
    try:
        assert font_file("Test Face") == folder / "TestFace-Regular.ttf"
        with pytest.raises(FontNotFound) as caught:
            font_file("Missing Face")
    finally:
        font_file.cache_clear()
    message = str(caught.value)
    assert "'Missing Face' was not found" in message
    assert "fc-match (not installed)" in message and str(tmp_path / "fonts") in message
    assert "fc-list" in message and "Noto Sans (the default)" in message


@pytest.mark.skipif(shutil.which("fc-match") is None, reason="fontconfig is not installed")
def test_fc_match_answers_only_for_the_family_asked() -> None:
    families = fonts.subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True).stdout.split("\n")
    installed = next((f.split(",")[0] for f in families if f.strip()), None)
    if installed is None:
        pytest.skip("no system font")
    found = font_file(installed)
    assert found.is_file()
    assert missing_characters("A", found) == ""
    # fc-match names its fallback for anything: that is not a match
    with pytest.raises(FontNotFound) as caught:
        font_file("Zz Nonexistent Family")
    assert "another family" in str(caught.value)


def test_a_font_path_is_used_as_it_is(tmp_path: Path) -> None:
    font = ascii_font(tmp_path)
    assert font_file(str(font)) == font
    with pytest.raises(FontNotFound, match="fonts/none.ttf"):
        font_file(str(tmp_path / "fonts" / "none.ttf"))


# --------------------------------------------------------------------------------------------
# check_texts: every drawn text, located


def load(tmp_path: Path, text: str) -> loader.LoadedStoryboard:
    (tmp_path / "storyboard.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return loader.load(tmp_path / "storyboard.yaml")


def test_check_texts_locates_every_text_its_font_lacks(tmp_path: Path) -> None:
    ascii_font(tmp_path / "fonts")
    board = load(
        tmp_path,
        """\
        name: demo
        vars: {place: Cat Café}
        shots:
          - id: one
            duration: 3
            prompt: a cup
            caption: "{{ vars.place }}"
          - id: two
            duration: 3
            prompt: a cat
            caption: Morgen früh
          - id: three
            duration: 3
            prompt: a mug
            caption: plain ascii
        cut:
          shots:
            - one
            - two
            - {shot: three, caption: "Straße"}
          captions: {font: fonts/ascii.ttf}
          title: {text: "日本の朝", duration: 1}
          end_card: "Slow mornings — strong coffee."
        """,
    )
    problems = check_texts(board)
    by_line = {p.location.line: p for p in problems}
    assert sorted(by_line) == [7, 11, 20, 22], [str(p) for p in problems]
    templated = by_line[7]
    assert templated.location.path == "shots[0].caption" and templated.severity == "error"
    assert "(templated: 'Cat Café') uses 'é'" in templated.message
    assert "ascii.ttf lacks" in templated.message and "Noto Sans (the default" in templated.message
    assert "uses 'ü' which the font" in by_line[11].message
    assert by_line[20].location.path == "cut.shots[2].caption" and "'ß'" in by_line[20].message
    # the title is in the default font: it has no CJK, and the advice says what to do
    title = by_line[22]
    assert title.location.path.startswith("cut.title")
    assert "'日', '本', 'の', '朝' which the font Noto Sans (the default) lacks" in title.message
    assert "set `font` to a font that has them" in title.message
    # the end card's em dash is fine in Noto Sans
    assert not any("end_card" in p.location.path for p in problems)


def test_check_texts_reports_a_font_not_found_once_at_its_line(tmp_path: Path) -> None:
    board = load(
        tmp_path,
        """\
        name: demo
        shots:
          - {id: one, duration: 3, prompt: a, caption: first}
          - {id: two, duration: 3, prompt: b, caption: second}
        cut:
          captions:
            font: No Such Family Zz
        """,
    )
    (problem,) = check_texts(board)
    assert (problem.location.line, problem.location.path) == (7, "cut.captions.font")
    assert "'No Such Family Zz' was not found; tried" in problem.message


def test_check_texts_is_quiet_for_text_the_default_font_draws(tmp_path: Path) -> None:
    board = load(
        tmp_path,
        f"""\
        name: demo
        shots:
          - {{id: one, duration: 3, prompt: a, caption: "{COPY}"}}
        cut:
          end_card: "Morgen früh probieren."
        """,
    )
    assert check_texts(board) == []


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (REPO / "projects").glob("*/storyboard.yaml")))
def test_every_example_draws_all_its_text(name: str) -> None:
    board = loader.load(REPO / "projects" / name)
    assert check_texts(board) == []


def test_every_campaign_variant_draws_its_german_and_accented_copy() -> None:
    from storyboard.load.campaign import load_campaign, load_variant

    campaign = load_campaign(REPO / "projects" / "coffee-campaign")
    texts = []
    for variant in campaign.variants:
        board = load_variant(campaign, variant)
        assert check_texts(board) == [], variant.id
        texts += [t.text for t in drawn_texts(board)]
    assert any("Café" in t for t in texts) and any("früh" in t for t in texts)
