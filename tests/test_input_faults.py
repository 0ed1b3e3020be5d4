"""Hostile and broken input to the loader and the campaign loader (issue 16): located messages, at once.

Each case here crashed, hung or read without end before: odd duplicate-key shapes (a
``TypeError``), control characters in campaign.yaml (a ``ReaderError``
traceback), a 300-character ``storyboard:`` name (``OSError: File name too long``), FIFOs and
``/dev/zero`` named as images (a hang, a ``MemoryError``), and files far larger than any storyboard.
Everything runs on real files in a temporary folder; nothing is mocked.
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from storyboard.errors import StoryboardInvalid, UserError
from storyboard.load import loader
from storyboard.load.campaign import load_campaign, load_campaign_text
from storyboard.load.loader import MAX_SOURCE_BYTES, find_storyboard, load, load_text
from tests.conftest import write_image

MINIMAL = "name: demo\nshots:\n  - {id: a, duration: 5, prompt: a cup}\n"


def problems(text: str, tmp_path: Path) -> list[str]:
    """Every problem of ``text`` as 'line:col: message' (it must be invalid, and located)."""
    with pytest.raises(StoryboardInvalid) as raised:
        load_text(text, tmp_path / "storyboard.yaml", tmp_path)
    found = raised.value.problems
    assert found and all(p.location.line >= 1 and p.location.col >= 1 for p in found), [str(p) for p in found]
    return [f"{p.location.line}:{p.location.col}: {p.message}" for p in found]


def finishes(call: Any, seconds: float = 10.0) -> Any:
    """Run ``call`` in a thread; fail (instead of hanging the suite) when it is not done in time."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# ---- duplicate keys of every shape ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(MINIMAL + "? !!map x\n: 1\n? !!map x\n: 2\n", id="scalar-tagged-as-map-twice"),
        pytest.param("!!seq a: 1\n!!seq a: 2\n" + MINIMAL, id="scalar-tagged-as-seq-twice"),
        pytest.param(MINIMAL + "? !!omap x\n: 1\n", id="scalar-tagged-as-omap"),
        pytest.param(MINIMAL + "? !!set {a}\n: 1\n", id="set-key"),
        pytest.param(MINIMAL + "? [a, b]\n: 1\n? [a, b]\n: 2\n", id="list-keys"),
        pytest.param(MINIMAL + "? {a: 1}\n: 1\n? {a: 1}\n: 2\n", id="mapping-keys"),
        pytest.param("vars: {&k x: 1, *k : 2}\n" + MINIMAL, id="alias-as-key"),
        pytest.param("vars: {&k [1]: 1, *k : 2}\n" + MINIMAL, id="alias-of-a-list-as-key"),
        pytest.param("vars:\n  <<: {a: 1}\n  <<: {a: 2}\n  a: 3\n  a: 4\n" + MINIMAL, id="merge-keys-twice"),
        pytest.param("vars:\n  <<: [*x]\n" + MINIMAL, id="merge-of-an-undefined-alias"),
        pytest.param(MINIMAL + "? &k !!map x\n: 1\n*k : 2\n", id="alias-of-a-tagged-key"),
    ],
)
def test_odd_duplicate_key_shapes_are_located_problems(tmp_path, text):
    assert problems(text, tmp_path)


def test_a_mapping_merged_into_itself_loads(tmp_path):
    loaded = load_text("vars: &v\n  a: 1\n  <<: *v\n" + MINIMAL, tmp_path / "storyboard.yaml", tmp_path)
    assert loaded.storyboard.vars == {"a": 1}


def test_duplicates_beside_merge_keys_are_reported_once_each(tmp_path):
    text = "vars:\n  <<: {a: 1}\n  a: 2\n  b: 3\n  b: 4\n" + MINIMAL
    assert problems(text, tmp_path) == [
        "5:3: duplicate key 'b' (first set on line 4): YAML keeps only the last one; remove or rename one of them"
    ]


# ---- control characters, sizes ----------------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\x7f", "\ufffe"])
def test_a_control_character_in_a_storyboard_is_located(tmp_path, character):
    text = f"name: demo\nshots:\n  - {{id: a, duration: 5, prompt: a{character}b}}\n"
    lines = problems(text, tmp_path)
    assert lines == [f"3:35: YAML syntax error: character #x{ord(character):04x} is not allowed: remove the invisible control character from the file"]


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    big = tmp_path / "storyboard.yaml"
    big.write_text(MINIMAL + "vars:\n  l: [" + "1, " * (MAX_SOURCE_BYTES // 3 + 10) + "]\n", encoding="utf-8")
    started = time.process_time()
    with pytest.raises(StoryboardInvalid) as raised:
        load(tmp_path)
    assert time.process_time() - started < 1.0
    [problem] = raised.value.problems
    assert (problem.location.line, problem.location.col) == (1, 1)
    assert "limited to 2 MiB" in problem.message and "2.0 MiB" in problem.message
    with pytest.raises(StoryboardInvalid, match="limited to 2 MiB"):
        load_text(big.read_text(encoding="utf-8"), big, tmp_path)


def test_a_large_storyboard_under_the_limit_validates_in_linear_time(tmp_path):
    """~1.4 MiB of shots, a cut naming each and one unknown id per ten: was quadratic in the id checks."""

    def board(count: int) -> str:
        shots = "".join(f"  - id: s{i}\n    duration: 3\n    prompt: shot {i} of the board\n" for i in range(count))
        cut = "cut:\n  shots: [" + ", ".join(f"s{i}" if i % 10 else f"x{i}" for i in range(count)) + "]\n"
        return "name: big\ndefaults: {model: kling-v3, strategy: per_shot}\nshots:\n" + shots + cut

    def seconds(count: int) -> float:
        text = board(count)
        started = time.process_time()
        with pytest.raises(StoryboardInvalid):
            load_text(text, tmp_path / "storyboard.yaml", tmp_path)
        return time.process_time() - started

    small, large = seconds(4_000), seconds(16_000)
    assert len(board(16_000)) > 1_000_000
    assert large < 5.0, large
    assert large < 8 * small + 0.5, (small, large)  # 4x the input: about 4x the time, never 16x


# ---- paths the OS refuses, files that are not files --------------------------------------------


def test_a_path_too_long_for_the_os_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot use") as raised:
        find_storyboard(tmp_path / ("x" * 300 + ".yaml"))
    assert "too long" in str(raised.value).lower()
    with pytest.raises(UserError):
        find_storyboard(str(tmp_path) + "/a\x00b")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_or_a_device_named_as_an_image_is_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "bed.m4a").symlink_to("/dev/zero")
    write_image(tmp_path / "refs/ok.png", 1024, 1024)
    (tmp_path / "storyboard.yaml").write_text(
        textwrap.dedent(
            """\
            name: demo
            references:
              pipe: pipe.png
              zero: {image: zero.png}
            shots:
              - {id: a, duration: 5, start_frame: pipe, references: [zero]}
            cut:
              audio: {bed: bed.m4a}
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(StoryboardInvalid) as raised:
        finishes(lambda: load(tmp_path))
    found = {p.location.path: p for p in raised.value.problems}
    for path, line in (("references.pipe.image", 3), ("references.zero.image", 4), ("cut.audio.bed.file", 8)):
        assert "not a regular file" in found[path].message, [str(p) for p in raised.value.problems]
        assert found[path].location.line == line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_as_the_storyboard_or_swapped_in_after_validation_never_hangs(tmp_path):
    os.mkfifo(tmp_path / "storyboard.yaml")
    with pytest.raises(UserError, match="not a regular file"):
        finishes(lambda: find_storyboard(tmp_path / "storyboard.yaml"))
    with pytest.raises(UserError, match="not a regular file"):
        finishes(lambda: loader.read_source(tmp_path / "storyboard.yaml", "storyboard.yaml"))
    os.unlink(tmp_path / "storyboard.yaml")

    write_image(tmp_path / "hero.png", 1024, 1024)
    (tmp_path / "storyboard.yaml").write_text(MINIMAL.replace("prompt: a cup", "start_frame: hero.png"), encoding="utf-8")
    loaded = load(tmp_path)
    loaded._digests.clear()  # as if the image had not been hashed while validating
    os.unlink(tmp_path / "hero.png")
    (tmp_path / "hero.png").symlink_to("/dev/zero")
    with pytest.raises(UserError, match="cannot read image hero.png: .*not a regular file"):
        finishes(lambda: loaded.image_digest("hero.png"))


# ---- campaign files ------------------------------------------------------------------------------

BASE = """\
name: Base
defaults: {model: kling-v3, mode: std}
shots:
  - {id: a, duration: 5, prompt: a cup}
"""


def campaign_folder(tmp_path: Path, campaign: str | bytes, base: str = BASE) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir(exist_ok=True)
    (folder / "storyboard.yaml").write_text(base, encoding="utf-8")
    target = folder / "campaign.yaml"
    if isinstance(campaign, bytes):
        target.write_bytes(campaign)
    else:
        target.write_text(campaign, encoding="utf-8")
    return folder


CAMPAIGN = "version: 1\nname: C\nstoryboard: storyboard.yaml\nmatrix:\n  language: {en: {}, de: {}}\n"


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1f", "\x7f", "\x9b", "\ufffe"])
def test_a_control_character_in_a_campaign_file_is_located(tmp_path, character):
    text = CAMPAIGN.replace("name: C", f"name: C{character}x")
    with pytest.raises(StoryboardInvalid) as raised:
        load_campaign(campaign_folder(tmp_path, text))
    [problem] = raised.value.problems
    assert problem.location.file.endswith("campaign.yaml")
    assert (problem.location.line, problem.location.col) == (2, 8)
    assert f"character #x{ord(character):04x} is not allowed" in problem.message


def test_a_storyboard_name_the_os_refuses_is_located_at_its_line(tmp_path):
    for name in ("s" * 300 + ".yaml", "a" * 5000, "sub/" * 2000 + "s.yaml"):
        text = CAMPAIGN.replace("storyboard: storyboard.yaml", f"storyboard: {name}")
        with pytest.raises(StoryboardInvalid) as raised:
            load_campaign(campaign_folder(tmp_path, text))
        [problem] = raised.value.problems
        assert problem.location.file.endswith("campaign.yaml") and problem.location.line == 3, str(problem)
        assert "the base storyboard" in problem.message and "fix the path" in problem.message
        assert len(problem.message) < 600  # the path is shortened, not printed whole


def test_a_campaign_file_over_the_limit_and_a_broken_base_are_located(tmp_path):
    huge = CAMPAIGN + "description: " + "x" * (MAX_SOURCE_BYTES + 1) + "\n"
    with pytest.raises(StoryboardInvalid, match="limited to 2 MiB"):
        load_campaign(campaign_folder(tmp_path, huge))
    with pytest.raises(StoryboardInvalid) as raised:
        load_campaign(campaign_folder(tmp_path, CAMPAIGN, base="name: Base\nshots: [\x07]\n"))
    [problem] = raised.value.problems
    assert problem.location.file.endswith("storyboard.yaml") and (problem.location.line, problem.location.col) == (2, 9)


def test_duplicate_keys_in_a_campaign_file_are_reported(tmp_path):
    text = CAMPAIGN + "name: D\n"
    with pytest.raises(StoryboardInvalid) as raised:
        load_campaign_text(text, campaign_folder(tmp_path, text) / "campaign.yaml")
    [problem] = raised.value.problems
    assert problem.location.line == 6 and "duplicate key 'name' (first set on line 2)" in problem.message
