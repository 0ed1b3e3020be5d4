"""Fuzzing the loader: whatever the text, ``load_text`` returns or raises ``StoryboardInvalid``.

Why: a user's storyboard can be any text at all (half-saved, pasted from a chat, hand-merged),
and a traceback instead of a located message is a bug. Hypothesis starts from a valid storyboard
and damages it at two levels: the data (drop keys, wrong types, unknown keys, random unicode)
and the text (duplicate lines, insert characters, truncate anywhere). Derandomized, so a run is
reproducible; the example counts keep the whole file to a few seconds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import LoadedStoryboard, load_text
from storyboard.load.spec import Storyboard
from storyboard.plan import planner

VALID = """\
name: fuzz
defaults: {model: kling-v3, mode: std, aspect_ratio: "16:9"}
references:
  hero: refs/hero.png
  mug: {image: refs/mug.jpg, role: subject, element: {extra_images: [refs/side.png]}}
vars: {brand: Beanery, year: 2026}
shots:
  - id: intro
    duration: 5
    start_frame: hero
    prompt: "{{ vars.brand }} at dawn"
    camera_control: {type: simple, config: {zoom: 4}}
  - id: pour
    duration: 4.5
    start_frame: previous
    end_frame: refs/mug.jpg
    references: [mug]
    motion_brush:
      static_mask: refs/mask.png
      dynamic_masks: [{mask: refs/mask.png, trajectory: [[1, 2], [3, 4]]}]
  - {id: closing, duration: 3, caption: See you}
groups:
  - [intro, pour]
cut:
  transition: crossfade 0.5
  shots: [intro, {shot: pour, trim_in: 0.5}, closing]
  title: Beanery presents
  end_card: {text: Bye, background: refs/hero.png}
  audio: {bed: music/bed.mp3, loudness_lufs: -14}
outputs:
  - {name: wide}
  - {name: story, aspect_ratio: "9:16", height: 1920}
"""

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["previous", "hero", "refs/none.png", "kling-3", "crossfade x", "#fff", "../../etc/passwd", "\x00"]),
)
YAML_SNIPPETS = st.sampled_from(
    ["!!int ", "!!bool ", "!!timestamp ", "!!binary ", "!!float ", "!!set ", "!x ", "&a ", "*a", "<<: ", "? ", ": ",
     "- ", "# ", "{", "}", "[", "]", "'", '"', "|", ">", "---\n", "...\n", "%YAML 1.1\n", "\ufeff", "\x85"]
)
"""Pieces of YAML syntax: tags, anchors, merges, flow brackets, block scalars, document markers."""
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), SCALARS, max_size=3),
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    write_image(folder / "refs/hero.png", 1024, 1024)
    write_image(folder / "refs/mug.jpg", 1024, 768)
    write_image(folder / "refs/side.png", 320, 320)
    write_image(folder / "refs/mask.png", 1024, 1024)
    (folder / "music").mkdir()
    (folder / "music/bed.mp3").write_bytes(b"ID3")
    return folder


def load_or_invalid(text: str, project: Path) -> None:
    """The property: a storyboard or a located ``StoryboardInvalid``; nothing else escapes.

    The model and template checks run too, as ``storyboard validate`` runs them: on the loaded
    storyboard, or on the partial one the loader salvages from a broken file; and a clean
    storyboard must plan.
    """
    try:
        loaded = load_text(text, project / "storyboard.yaml", project)
    except StoryboardInvalid as invalid:
        assert any(p.severity == "error" for p in invalid.problems)
        for problem in invalid.problems:
            assert problem.location.line >= 1 and problem.location.col >= 1, problem
            assert problem.message
        str(invalid)  # the CLI prints it
        if invalid.partial is not None:
            for problem in planner.check(invalid.partial):
                assert problem.location.line >= 1, problem
    else:
        assert isinstance(loaded, LoadedStoryboard)
        assert isinstance(loaded.storyboard, Storyboard)
        problems = planner.check(loaded)
        if not any(p.severity == "error" for p in problems):
            planner.plan(loaded)


def test_the_seed_is_valid(project):
    loaded = load_text(VALID, project / "storyboard.yaml", project)
    # the seed must load, or every mutation would merely be "still invalid"
    assert [p.location.path for p in loaded.advisories] == ["references.mug.image", "references.mug.element.extra_images[0]"]


def _containers(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every mapping and list inside ``value`` (the places a mutation can happen)."""
    found = []
    if isinstance(value, dict):
        found.append(path)
        for key, child in value.items():
            found.extend(_containers(child, (*path, key)))
    elif isinstance(value, list):
        found.append(path)
        for index, child in enumerate(value):
            found.extend(_containers(child, (*path, index)))
    return found


def _at(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    data = copy.deepcopy(yaml.safe_load(VALID))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        places = _containers(data)
        container = _at(data, draw(st.sampled_from(places)))
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        operation = draw(st.sampled_from(["drop", "replace", "insert"]))
        if operation == "insert" or not keys:
            if isinstance(container, dict):
                container[draw(st.one_of(st.text(max_size=10), st.integers(), st.booleans()))] = draw(VALUES)
            else:
                container.append(draw(VALUES))
        elif operation == "drop":
            del container[draw(st.sampled_from(keys))]
        else:
            container[draw(st.sampled_from(keys))] = draw(VALUES)
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    lines = VALID.splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        operation = draw(st.sampled_from(["duplicate", "insert", "delete", "indent"]))
        if operation == "duplicate":
            lines.insert(index, lines[index])
        elif operation == "insert":
            line = lines[index]
            at = draw(st.integers(min_value=0, max_value=len(line)))
            lines[index] = line[:at] + draw(st.one_of(st.text(min_size=1, max_size=4), YAML_SNIPPETS)) + line[at:]
        elif operation == "delete" and len(lines) > 1:
            del lines[index]
        else:
            lines[index] = draw(st.sampled_from([" ", "  ", "\t", "- "])) + lines[index]
    text = "".join(lines)
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text


@FUZZ
@given(text=mutated_data())
def test_mutated_data_never_crashes(project, text):
    load_or_invalid(text, project)


@FUZZ
@given(text=mutated_text())
def test_mutated_text_never_crashes(project, text):
    load_or_invalid(text, project)


@settings(FUZZ, max_examples=100)
@given(text=st.text(max_size=200))
def test_any_text_never_crashes(project, text):
    load_or_invalid(text, project)
