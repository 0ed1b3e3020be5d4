"""Fuzzing validate, plan and the campaign expansion: a located user error or a result, quickly.

Why: a user's storyboard or campaign file can be any text at all (half-saved, pasted from a chat,
hand-merged), and a traceback or a hang instead of a located message is a bug. Hypothesis starts
from valid files and damages them at two levels: the data (drop keys, wrong types, unknown keys,
random unicode) and the text (duplicate lines, insert characters or YAML syntax, truncate
anywhere). Every case must end in a result or a ``UserError`` (``StoryboardInvalid`` with every
problem located) within ``CASE_BUDGET_S`` of CPU time. Derandomized (seeded), so a CI run is
reproducible; the example counts keep the whole file well under a minute. The crashes and hangs
fuzzing once found are pinned below as plain regression tests.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import write_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyboard.errors import StoryboardInvalid, UserError
from storyboard.load.campaign import load_campaign_text
from storyboard.load.loader import MAX_SOURCE_BYTES, LoadedStoryboard, load_text
from storyboard.load.spec import Storyboard
from storyboard.plan import planner
from storyboard.plan.sharing import plan_campaign

CASE_BUDGET_S = 5.0
"""CPU seconds one fuzzed case may take (generous: a case normally takes milliseconds). CPU, not
wall time, so a busy CI machine does not fail the suite; a hang or a quadratic step still does."""


@contextmanager
def within_budget(what: str = "case") -> Iterator[None]:
    started = time.process_time()
    yield
    spent = time.process_time() - started
    assert spent < CASE_BUDGET_S, f"{what} took {spent:.1f} s of CPU (budget {CASE_BUDGET_S} s)"

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
    with within_budget():
        try:
            loaded = load_text(text, project / "storyboard.yaml", project)
        except StoryboardInvalid as invalid:
            assert_located(invalid)
            if invalid.partial is not None:
                for problem in planner.check(invalid.partial):
                    assert problem.location.line >= 1, problem
        else:
            assert isinstance(loaded, LoadedStoryboard)
            assert isinstance(loaded.storyboard, Storyboard)
            problems = planner.check(loaded)
            if not any(p.severity == "error" for p in problems):
                try:
                    planner.plan(loaded)
                except StoryboardInvalid as invalid:
                    assert_located(invalid)
                except UserError as error:
                    assert str(error)


def assert_located(invalid: StoryboardInvalid) -> None:
    """Every problem has a file, a line and a column, and the whole prints (the CLI prints it)."""
    assert any(p.severity == "error" for p in invalid.problems)
    for problem in invalid.problems:
        assert problem.location.file and problem.location.line >= 1 and problem.location.col >= 1, problem
        assert problem.message
    str(invalid)


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


# ---- campaigns: the campaign file mutated, each surviving variant loaded and planned ------------

CAMPAIGN_BASE = """\
name: fuzz base
defaults: {model: kling-v3, mode: std, aspect_ratio: "16:9", strategy: per_shot}
references:
  hero: refs/hero.png
vars: {brand: Beanery}
shots:
  - {id: intro, duration: 5, start_frame: hero, prompt: "{{ vars.brand }} at dawn"}
  - {id: closing, duration: 3, prompt: a cup, caption: See you}
outputs:
  - {name: wide, height: 144}
"""

CAMPAIGN_VALID = """\
version: 1
name: fuzz campaign
storyboard: storyboard.yaml
matrix:
  product:
    classic: {label: Classic, vars: {brand: Classic}}
    launch:
      vars: {brand: Launch}
      set:
        references.hero.image: refs/mug.jpg
        shots.closing: {caption: Launch day, duration: 4}
  aspect_ratio: ["16:9", "9:16"]
exclude: [{product: launch, aspect_ratio: "9:16"}]
variants:
  classic-9x16: {set: {cut.end_card.text: Bye}}
"""

SET_KEYS = st.sampled_from(
    ["shots.intro.prompt", "shots.closing", "shots.0.duration", "shots.-1.caption", "shots.nope.x", "references.hero",
     "defaults.model", "cut.title.text", "outputs.wide.height", "outputs", "vars.brand", "a..b", ".", "shots.intro.id",
     "name", "shots", "version"]
)


@pytest.fixture(scope="module")
def campaign_project(project: Path) -> Path:
    (project / "storyboard.yaml").write_text(CAMPAIGN_BASE, encoding="utf-8")
    return project


def expand_or_invalid(text: str, folder: Path) -> None:
    """The property for campaigns: variants that load and plan, or located user errors, in budget."""
    with within_budget("campaign case"):
        try:
            loaded = load_campaign_text(text, folder / "campaign.yaml")
        except StoryboardInvalid as invalid:
            assert_located(invalid)
            return
        cplan = plan_campaign(loaded)
        for item in cplan.variants:
            for problem in item.problems:
                assert problem.location.file and problem.location.line >= 1 and problem.location.col >= 1, problem
            assert item.ok or item.failure
        cplan.to_json()


def test_the_campaign_seed_is_valid(campaign_project):
    cplan = plan_campaign(load_campaign_text(CAMPAIGN_VALID, campaign_project / "campaign.yaml"))
    assert cplan.ok and [v.variant.id for v in cplan.variants] == ["classic-16x9", "classic-9x16", "launch-16x9"]


@st.composite
def mutated_campaign_data(draw: st.DrawFn) -> str:
    data = copy.deepcopy(yaml.safe_load(CAMPAIGN_VALID))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        container = _at(data, draw(st.sampled_from(_containers(data))))
        keys = list(container) if isinstance(container, dict) else list(range(len(container)))
        operation = draw(st.sampled_from(["drop", "replace", "insert", "set"]))
        if operation == "set" and isinstance(container, dict):
            container.setdefault("set", {})
            if isinstance(container["set"], dict):
                container["set"][draw(SET_KEYS)] = draw(VALUES)
        elif operation == "insert" or not keys:
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
def mutated_campaign_text(draw: st.DrawFn) -> str:
    lines = CAMPAIGN_VALID.splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        operation = draw(st.sampled_from(["duplicate", "insert", "delete", "indent"]))
        if operation == "duplicate":
            lines.insert(index, lines[index])
        elif operation == "insert":
            line = lines[index]
            at = draw(st.integers(min_value=0, max_value=len(line)))
            piece = draw(st.one_of(st.text(min_size=1, max_size=4), YAML_SNIPPETS, st.sampled_from(["\x00", "\x07", "\x1b", "\ufffe"])))
            lines[index] = line[:at] + piece + line[at:]
        elif operation == "delete" and len(lines) > 1:
            del lines[index]
        else:
            lines[index] = draw(st.sampled_from([" ", "  ", "\t", "- "])) + lines[index]
    text = "".join(lines)
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return text


CAMPAIGN_FUZZ = settings(FUZZ, max_examples=60)


@CAMPAIGN_FUZZ
@given(text=mutated_campaign_data())
def test_mutated_campaign_data_never_crashes(campaign_project, text):
    expand_or_invalid(text, campaign_project)


@CAMPAIGN_FUZZ
@given(text=mutated_campaign_text())
def test_mutated_campaign_text_never_crashes(campaign_project, text):
    expand_or_invalid(text, campaign_project)


# ---- regressions: what fuzzing found once, pinned ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(VALID + "? !!map x\n: 1\n? !!map x\n: 2\n", id="duplicate-keys-tagged-as-map"),
        pytest.param("!!seq a: 1\n!!seq a: 2\n" + VALID, id="duplicate-keys-tagged-as-seq"),
        pytest.param(VALID.replace("name: fuzz", "name: fuzz\x1b"), id="control-character"),
    ],
)
def test_crashes_fuzzing_found_are_located_errors(project, text):
    with pytest.raises(StoryboardInvalid) as raised:
        load_text(text, project / "storyboard.yaml", project)
    assert_located(raised.value)
    load_or_invalid(text, project)


def test_a_lone_surrogate_in_a_prompt_is_a_located_plan_error(project):
    """Was a ``UnicodeEncodeError`` in ``planner.content_key``; the planner now locates it."""
    text = VALID.replace('"{{ vars.brand }} at dawn"', '"{{ vars.brand }} \\udc80 at dawn"')
    loaded = load_text(text, project / "storyboard.yaml", project)
    with pytest.raises(StoryboardInvalid) as raised:
        planner.plan(loaded)
    assert_located(raised.value)
    load_or_invalid(text, project)


def test_a_control_character_in_a_campaign_file_is_a_located_error(campaign_project):
    with pytest.raises(StoryboardInvalid) as raised:
        load_campaign_text(CAMPAIGN_VALID.replace("name: fuzz campaign", "name: fuzz\x00campaign"), campaign_project / "campaign.yaml")
    [problem] = raised.value.problems
    assert (problem.location.line, problem.location.col) == (2, 11)


def test_a_large_storyboard_validates_and_plans_in_budget(project):
    """About 1.5 MiB: 4,000 shots with prompts, a cut naming each, a long vars list (was > 5 s)."""
    shots = "".join(f"  - id: s{i}\n    duration: 3\n    prompt: shot {i} of the board, {'word ' * 40}\n" for i in range(4_000))
    cut = "cut:\n  shots: [" + ", ".join(f"s{i}" for i in range(4_000)) + "]\n"
    text = "name: big\ndefaults: {model: kling-v3, strategy: per_shot}\nvars: {l: [" + "7, " * 20_000 + "]}\nshots:\n" + shots + cut
    assert 1_000_000 < len(text) < MAX_SOURCE_BYTES
    with within_budget("validate of 1.5 MiB"):
        loaded = load_text(text, project / "storyboard.yaml", project)
    assert len(loaded.storyboard.shots) == 4_000
    with within_budget("plan of 4,000 shots"):
        assert len(planner.plan(loaded).requests) == 4_000


def test_a_24_mb_list_is_refused_at_once(project):
    text = "name: big\nshots: [" + "{id: a, duration: 3}, " * 1_100_000 + "]\n"
    assert len(text) > 24_000_000
    with within_budget("refusing 24 MB"), pytest.raises(StoryboardInvalid, match="limited to 2 MiB"):
        load_text(text, project / "storyboard.yaml", project)


