"""The loader: every user-facing message pinned with its exact line and column.

The tables hold (storyboard text, expected "line:col: path: message" lines); the file name is
stripped so each row reads like the CLI output of that snippet. Snippets are whole, small
storyboards so the line numbers in the table are the line numbers of the text beside them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storyboard.errors import Location, StoryboardInvalid, UserError
from storyboard.load.loader import LoadedStoryboard, find_storyboard, load, load_text

HERO = {"refs/hero.png": (1024, 1024)}


def problems_of(project: Path) -> list[str]:
    """Every problem `load` reports, as 'line:col: path: message' (the file name dropped)."""
    with pytest.raises(StoryboardInvalid) as raised:
        load(project)
    file = str(project / "storyboard.yaml")
    lines = []
    for problem in raised.value.problems:
        assert problem.location.file == file
        lines.append(str(problem)[len(file) + 1 :])
    return lines


# --------------------------------------------------------------------------------------------
# Schema errors, translated from pydantic
# --------------------------------------------------------------------------------------------

SCHEMA_CASES = [
    pytest.param(
        """\
        name: demo
        shots:
          - id: a
            durtion: 5
        """,
        [
            "3:5: shots[0].duration: missing required key 'duration'",
            "4:5: shots[0].durtion: unknown key 'durtion': did you mean 'duration'?",
        ],
        id="unknown-key-close-and-missing-key",
    ),
    pytest.param(
        """\
        name: demo
        colour: red
        shots: [{id: a, duration: 5}]
        """,
        [
            "2:1: colour: unknown key 'colour': valid keys here are version, name, description, defaults, "
            "references, voices, vars, shots, groups, cut, outputs, outside_files"
        ],
        id="unknown-key-lists-valid-keys",
    ),
    pytest.param(
        """\
        shots: [{id: a, duration: 5}]
        """,
        ["1:1: name: missing required key 'name'"],
        id="missing-top-level-key-at-root",
    ),
    pytest.param(
        """\
        name: demo
        shots:
          - id: a
            duration: five
          - id: b
            duration:
        """,
        [
            "4:15: shots[0].duration: expected a number, got 'five'",
            "6:14: shots[1].duration: expected a number, got nothing (the value is empty)",
        ],
        id="wrong-type-number",
    ),
    pytest.param(
        """\
        name: 2024
        shots:
          - id: a
            duration: 5
            prompt: yes
        """,
        [
            "1:7: name: expected a string, got 2024: put it in quotes to keep it as text",
            "5:13: shots[0].prompt: expected a string, got true: put it in quotes to keep it as text",
        ],
        id="wrong-type-string",
    ),
    pytest.param(
        """\
        name: demo
        defaults:
          model: kling-3
          mode: ultra
        shots: [{id: a, duration: 5}]
        """,
        [
            "3:10: defaults.model: must be one of: kling-v3, kling-v3-turbo, kling-v3-omni, kling-video-o1, kling-v2-6, "
            "kling-v2-5-turbo, kling-v2-1, kling-v2-1-master, kling-v2-master, kling-v1-6, kling-v1-5, kling-v1; "
            "got 'kling-3': did you mean 'kling-v3'?",
            "4:9: defaults.mode: must be one of: std, pro, 4k; got 'ultra'",
        ],
        id="literal-with-and-without-suggestion",
    ),
    pytest.param(
        """\
        name: demo
        version: 2
        shots:
          - id: a
            duration: 20
            cfg_scale: -1
          - id: b
            duration: 0
        """,
        [
            "2:10: version: must be one of: 1; got 2",
            "5:15: shots[0].duration: must be at most 15, got 20",
            "6:16: shots[0].cfg_scale: must be at least 0, got -1",
            "8:15: shots[1].duration: must be more than 0, got 0",
        ],
        id="numeric-bounds",
    ),
    pytest.param(
        """\
        name: ""
        shots: []
        """,
        [
            "1:7: name: must not be empty",
            "2:8: shots: must have at least 1 item, got 0",
        ],
        id="empty-name-and-no-shots",
    ),
    pytest.param(
        """\
        name: demo
        references:
          hero:
            image: refs/hero.png
            element: {name: a-very-long-element-name-indeed, extra_images: [a.png, b.png, c.png, d.png]}
        shots: [{id: a, duration: 5, voices: [v1, v2, v3]}]
        """,
        [
            "5:21: references.hero.element.name: must be at most 20 characters long, got 31",
            "5:68: references.hero.element.extra_images: must have at most 3 items, got 4",
            "6:38: shots[0].voices: must have at most 2 items, got 3",
        ],
        id="lengths",
    ),
    pytest.param(
        """\
        name: demo
        shots:
          - id: my shot
            duration: 5
        """,
        [
            "3:9: shots[0].id: 'my shot' is not a valid id: use 1 to 48 letters, digits, '-' or '_', "
            "starting with a letter or a digit"
        ],
        id="id-pattern",
    ),
    pytest.param(
        """\
        name: demo
        references:
          my hero: refs/hero.png
        shots: [{id: a, duration: 5}]
        """,
        ["3:3: references: reference id 'my hero' must be letters, digits, - and _ (at most 48)"],
        id="reference-id-pattern",
    ),
    pytest.param(
        """\
        name: demo
        shots:
          - id: a
            duration: 5
            camera_control: {type: simple}
          - id: b
            duration: 5
            camera_control:
              type: down_back
              config: {zoom: 5}
        """,
        [
            "5:21: shots[0].camera_control: camera_control of type simple needs a config with exactly one non-zero axis",
            "9:7: shots[1].camera_control: camera_control of type down_back is a preset: remove its config",
        ],
        id="model-validator-messages",
    ),
    pytest.param(
        """\
        name: demo
        shots: [{id: a, duration: 5}, {id: b, duration: 5}]
        groups:
          - [a, 7]
        cut:
          transition: crossfade soon
          shots: [a, {shot: b, trim_in: -1}]
        """,
        [
            "4:9: groups[0].shots[1]: expected a string, got 7: put it in quotes to keep it as text",
            "6:15: cut.transition.duration: expected a number, got 'soon'",
            "7:33: cut.shots[1].trim_in: must be at least 0, got -1",
        ],
        id="shorthand-forms-located-on-what-was-written",
    ),
    pytest.param(
        """\
        name: demo
        vars: {1: one}
        shots: [{id: a, duration: 5, vars: {true: x}}]
        """,
        [
            "2:8: vars.1: keys here must be text, got 1: put the key in quotes",
            "3:37: shots[0].vars.true: keys here must be text, got true: put the key in quotes",
        ],
        id="non-text-keys",
    ),
    pytest.param(
        """\
        name: demo
        shots:
          - id: a
            duration: .inf
            motion_brush:
              dynamic_masks:
                - mask: refs/hero.png
                  trajectory: [[1, 2], [3]]
        """,
        [
            "4:15: shots[0].duration: must be a finite number, got .inf",
            "8:32: shots[0].motion_brush.dynamic_masks[0].trajectory[1][1]: missing item 2 of this list: it needs more values",
        ],
        id="infinity-and-short-tuple",
    ),
    pytest.param(
        """\
        name: demo
        references: [refs/hero.png]
        shots: [{id: a, duration: 5, references: hero}]
        cut: {audio: {bed: {file: 5}}}
        """,
        [
            "2:13: references: expected a mapping (key: value), got a list",
            "3:42: shots[0].references: expected a list, got 'hero'",
            "4:27: cut.audio.bed.file: expected a string, got 5: put it in quotes to keep it as text",
        ],
        id="wrong-container-types",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SCHEMA_CASES)
def test_schema_errors_are_located_and_reworded(make_project, text, expected):
    assert problems_of(make_project(text, HERO)) == expected


# --------------------------------------------------------------------------------------------
# YAML itself: syntax, duplicate keys, the top level
# --------------------------------------------------------------------------------------------

YAML_CASES = [
    pytest.param(
        "name: demo\nshots:\n\t- id: a\n",
        [
            "3:1: YAML syntax error: found character '\\t' that cannot start any token: "
            "YAML indents with spaces only (no tabs), and '@' or '`' cannot start a value: quote it"
        ],
        id="tab",
    ),
    pytest.param(
        "name: demo: the sequel\nshots: []\n",
        [
            "1:11: YAML syntax error: mapping values are not allowed here: "
            "a value that contains ': ' must be put in quotes, or the indentation is off"
        ],
        id="colon-in-value",
    ),
    pytest.param(
        "name: demo\nshots: [{id: a, duration: 5}\n",
        [
            "3:1: YAML syntax error: expected ',' or ']', but got '<stream end>': "
            "the file ends too early: a bracket or quote opened earlier is never closed "
            "(what is unfinished here started on line 2)"
        ],
        id="unclosed-bracket",
    ),
    pytest.param(
        'name: "demo\nshots: []\n',
        [
            "3:1: YAML syntax error: found unexpected end of stream: "
            "a quote or bracket opened earlier is never closed (what is unfinished here started on line 1)"
        ],
        id="unclosed-quote",
    ),
    pytest.param(
        "name: demo\n---\nshots: []\n",
        [
            "2:1: YAML syntax error: a second YAML document starts here: "
            "a storyboard is one YAML document: remove the '---' separator"
        ],
        id="two-documents",
    ),
    pytest.param(
        "name: demo\nshots: *nowhere\n",
        [
            "2:8: YAML syntax error: found undefined alias 'nowhere': "
            "define the anchor (&name) before using the alias (*name)"
        ],
        id="undefined-alias",
    ),
    pytest.param(
        "name: !shell demo\nshots: []\n",
        [
            "1:7: YAML error: could not determine a constructor for the tag '!shell': "
            "remove the '!' tag: a storyboard uses plain YAML values only"
        ],
        id="unknown-tag",
    ),
    pytest.param(
        "name: demo\nshots: [{id: a, duration: !!int five}]\n",
        ["2:27: YAML error: 'five' is not a valid !!int value: fix the value or remove the tag"],
        id="unbuildable-tagged-value",
    ),
    pytest.param(
        "name: demo\u0007\nshots: []\n",
        [
            "1:11: YAML syntax error: character #x0007 is not allowed: "
            "remove the invisible control character from the file"
        ],
        id="control-character",
    ),
    pytest.param("", ["1:1: the file is empty: a storyboard needs at least 'name:' and 'shots:'"], id="empty"),
    pytest.param("# only a comment\n", ["1:1: the file is empty: a storyboard needs at least 'name:' and 'shots:'"], id="comment-only"),
    pytest.param(
        "- id: a\n- id: b\n",
        ["1:1: the top level must be a mapping of keys (name:, shots:, ...), got a list: write one 'key: value' per line"],
        id="top-level-list",
    ),
    pytest.param(
        "just words\n",
        ["1:1: the top level must be a mapping of keys (name:, shots:, ...), got 'just words': write one 'key: value' per line"],
        id="top-level-text",
    ),
    pytest.param(
        """\
        name: demo
        name: demo two
        shots:
          - id: a
            duration: 5
            duration: 6
        """,
        [
            "2:1: name: duplicate key 'name' (first set on line 1): YAML keeps only the last one; remove or rename one of them",
            "6:5: shots[0].duration: duplicate key 'duration' (first set on line 5): "
            "YAML keeps only the last one; remove or rename one of them",
        ],
        id="duplicate-keys",
    ),
]


@pytest.mark.parametrize(("text", "expected"), YAML_CASES)
def test_yaml_problems(make_project, text, expected):
    assert problems_of(make_project(text)) == expected


def test_merge_keys_are_not_duplicates(make_project):
    project = make_project(
        """\
        name: demo
        vars:
          base: &base {duration: 5, mood: calm}
        shots:
          - <<: *base
            id: a
            mood: tense
        """
    )
    shot = load(project).storyboard.shots[0]
    assert (shot.duration, shot.mood) == (5, "tense")


# --------------------------------------------------------------------------------------------
# Ids and links between them
# --------------------------------------------------------------------------------------------

LINK_CASES = [
    pytest.param(
        """\
        name: demo
        shots:
          - id: intro
            duration: 5
          - id: pour
            duration: 5
          - id: intro
            duration: 3
        """,
        ["7:9: shots[2].id: duplicate shot id 'intro' (first used on line 3): give each shot its own id"],
        id="duplicate-shot-id",
    ),
    pytest.param(
        """\
        name: demo
        references:
          hero: refs/hero.png
          mug: refs/hero.png
        shots:
          - id: a
            duration: 5
            references: [hero, heor, table]
        """,
        [
            "8:24: shots[0].references[1]: unknown reference 'heor': did you mean 'hero'?",
            "8:30: shots[0].references[2]: unknown reference 'table': known references are hero, mug",
        ],
        id="unknown-references",
    ),
    pytest.param(
        """\
        name: demo
        shots:
          - {id: a, duration: 5, references: [hero]}
        """,
        ["3:39: shots[0].references[0]: unknown reference 'hero': no references are defined; add it under references:"],
        id="no-references-defined",
    ),
    pytest.param(
        """\
        name: demo
        references:
          hero: refs/hero.png
        shots:
          - id: a
            duration: 5
            start_frame: previous
          - id: b
            duration: 5
            start_frame: hreo
            end_frame: previous
          - id: c
            duration: 5
            start_frame: previous
            end_frame: hero
        """,
        [
            "7:18: shots[0].start_frame: 'previous' chains to the shot before, but this is the first shot: "
            "use an image path or a reference id",
            "10:18: shots[1].start_frame: unknown reference 'hreo': did you mean 'hero'?",
            "11:16: shots[1].end_frame: 'previous' only works as a start_frame: use an image path or a reference id",
        ],
        id="frames",
    ),
    pytest.param(
        """\
        name: demo
        shots:
          - {id: intro, duration: 5}
          - {id: pour, duration: 5}
        groups:
          - [intro, pur]
          - shots: [closing]
        cut:
          shots:
            - intro
            - shot: outro
        """,
        [
            "6:13: groups[0].shots[1]: unknown shot 'pur': did you mean 'pour'?",
            "7:13: groups[1].shots[0]: unknown shot 'closing': known shots are intro, pour",
            "11:13: cut.shots[1].shot: unknown shot 'outro': known shots are intro, pour",
        ],
        id="groups-and-cut",
    ),
    pytest.param(
        """\
        name: demo
        shots: [{id: a, duration: 5}]
        outputs:
          - {name: wide}
          - {name: wide, aspect_ratio: "9:16"}
        """,
        ["5:12: outputs[1].name: duplicate output name 'wide' (first used on line 4): give each output its own name"],
        id="duplicate-output",
    ),
    pytest.param(
        """\
        name: demo
        shots:
          - id: a
            duration: nope
            references: [ghost]
          - id: a
            duration: 5
        """,
        [
            "4:15: shots[0].duration: expected a number, got 'nope'",
            "5:18: shots[0].references[0]: unknown reference 'ghost': no references are defined; add it under references:",
            "6:9: shots[1].id: duplicate shot id 'a' (first used on line 3): give each shot its own id",
        ],
        id="links-checked-even-in-an-invalid-shot",
    ),
]


@pytest.mark.parametrize(("text", "expected"), LINK_CASES)
def test_link_problems(make_project, text, expected):
    assert problems_of(make_project(text, HERO)) == expected


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

FILES_STORYBOARD = """\
name: demo
references:
  hero: {file}
shots: [{{id: a, duration: 5}}]
"""

FILE_CASES = [
    pytest.param(
        "refs/missing.png",
        {},
        "3:9: references.hero.image: file not found: refs/missing.png (looked for {project}/refs/missing.png): "
        "check the path, relative to the project folder",
        id="missing",
    ),
    pytest.param(
        "refs", {"refs/x.png": (1024, 1024)}, "3:9: references.hero.image: refs is a folder, not a file: name the file itself", id="folder"
    ),
    pytest.param(
        "refs/hero.png",
        {"refs/hero.png": b"not a picture"},
        "3:9: references.hero.image: refs/hero.png is not an image that can be read: use a JPG or PNG file",
        id="not-an-image",
    ),
    pytest.param(
        "refs/hero.png",
        {"refs/hero.png": (1024, 1024, "WEBP")},
        "3:9: references.hero.image: refs/hero.png is a WEBP image: Kling accepts only JPG or PNG; convert it",
        id="format-by-content",
    ),
    pytest.param(
        "refs/hero.png",
        {"refs/hero.png": b"\x89PNG\r\n\x1a\n" + bytes(10_000_000)},
        "3:9: references.hero.image: refs/hero.png is 10.0 MB: Kling accepts images up to 10 MB; export it smaller",
        id="too-large",
    ),
    pytest.param(
        "refs/hero.jpg",
        {"refs/hero.jpg": (299, 1024)},
        "3:9: references.hero.image: refs/hero.jpg is 299x1024 px: Kling needs both sides at least 300 px; use a larger image",
        id="too-small",
    ),
    pytest.param(
        "refs/hero.jpg",
        {"refs/hero.jpg": (2600, 1024)},
        "3:9: references.hero.image: refs/hero.jpg has aspect ratio 2.54:1 (2600x1024): Kling accepts 1:2.5 to 2.5:1; crop it",
        id="too-wide",
    ),
    pytest.param(
        "refs/hero.png",
        {"refs/hero.png": (400, 1001)},
        "3:9: references.hero.image: refs/hero.png has aspect ratio 1:2.50 (400x1001): Kling accepts 1:2.5 to 2.5:1; crop it",
        id="too-tall",
    ),
]


@pytest.mark.parametrize(("file", "content", "expected"), FILE_CASES)
def test_image_errors(make_project, file, content, expected):
    images = {k: v for k, v in content.items() if isinstance(v, tuple)}
    files = {k: v for k, v in content.items() if isinstance(v, bytes)}
    project = make_project(FILES_STORYBOARD.format(file=file), images, files)
    assert problems_of(project) == [expected.format(project=project)]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1024, 2560), []),
        ((1000, 1000), ["refs/hero.png is 1000x1000 px: image-to-video guides recommend ≥1024 px on the shorter side"]),
        (
            (767, 1200),
            [
                "refs/hero.png is only 767x1200 px: expect a soft, low-detail video; "
                "image-to-video guides recommend ≥1024 px on the shorter side"
            ],
        ),
    ],
    ids=["large-enough", "below-1024", "below-768"],
)
def test_small_images_are_advisories_not_errors(make_project, size, expected):
    loaded = load(make_project(FILES_STORYBOARD.format(file="refs/hero.png"), {"refs/hero.png": size}))
    assert [p.message for p in loaded.advisories] == expected
    assert all(p.severity == "advisory" and p.location.line == 3 for p in loaded.advisories)


def test_every_named_file_is_checked(make_project):
    project = make_project(
        """\
        name: demo
        references:
          hero:
            image: refs/hero.png
            element: {extra_images: [refs/side.png]}
        shots:
          - id: a
            duration: 5
            start_frame: frames/start.png
            end_frame: frames/end.jpg
            motion_brush:
              static_mask: masks/static.png
              dynamic_masks: [{mask: masks/move.png, trajectory: [[1, 2], [3, 4]]}]
        cut:
          title: {text: Hello, background: cards/title.png}
          end_card: {text: Bye, background: "#102030"}
          audio: {bed: music/bed.mp3}
        """,
        {"refs/hero.png": (1024, 1024), "cards/title.png": (200, 100)},
    )
    assert [line.split(": ", 2)[:2] for line in problems_of(project)] == [
        ["5:30", "references.hero.element.extra_images[0]"],
        ["9:18", "shots[0].start_frame"],
        ["10:16", "shots[0].end_frame"],
        ["12:20", "shots[0].motion_brush.static_mask"],
        ["13:30", "shots[0].motion_brush.dynamic_masks[0].mask"],
        ["17:16", "cut.audio.bed.file"],
    ]  # the small title card is fine: it never goes to Kling, only into the local cut


def test_a_file_used_twice_is_reported_once(make_project):
    project = make_project(
        """\
        name: demo
        references:
          hero: refs/gone.png
        shots:
          - {id: a, duration: 5, start_frame: refs/gone.png}
        """
    )
    assert [line.split(":")[0] for line in problems_of(project)] == ["3"]


def test_all_problems_of_a_file_come_in_one_run(make_project):
    project = make_project(
        """\
        name: demo
        references:
          hero: refs/missing.png
        shots:
          - id: a
            duration: 50
            start_frame: hreo
        cut:
          shots: [b]
        """
    )
    assert [line.split(": ")[1] for line in problems_of(project)] == [
        "references.hero.image",
        "shots[0].duration",
        "shots[0].start_frame",
        "cut.shots[0].shot",
    ]


# --------------------------------------------------------------------------------------------
# The happy path, locate, find_storyboard
# --------------------------------------------------------------------------------------------

FULL = """\
name: coffee launch
description: Thirty seconds of a morning pour.
defaults:
  model: kling-v3
  mode: pro
references:
  hero: refs/hero.png
  mug:
    image: refs/mug.jpg
    role: subject
    element: true
  saved: {image: refs/hero.png, element: 829836802793406551}
vars: {brand: Beanery}
shots:
  - id: intro
    duration: 5
    start_frame: hero
    prompt: "{{ vars.brand }} morning"
  - id: pour
    duration: 4.5
    start_frame: previous
    end_frame: frames/end.png
    references: [mug]
  - id: closing
    duration: 3
groups:
  - [intro, pour]
cut:
  transition: crossfade 0.5
  shots: [intro, {shot: pour, trim_in: 0.5}, closing]
  title: Beanery presents
  audio: {bed: music/bed.mp3}
outputs:
  - {name: wide}
  - {name: story, aspect_ratio: "9:16"}
"""


@pytest.fixture
def full_project(make_project) -> Path:
    return make_project(
        FULL,
        {"refs/hero.png": (1024, 1024), "refs/mug.jpg": (1280, 1024), "frames/end.png": (1024, 1024)},
        {"music/bed.mp3": b"ID3 not really audio"},
    )


def test_happy_path_expands_shorthand(full_project):
    loaded = load(full_project)
    board = loaded.storyboard
    assert loaded.file == full_project / "storyboard.yaml"
    assert loaded.project_dir == full_project
    assert loaded.advisories == ()
    assert board.defaults.mode == "pro" and board.defaults.template == "motion"
    assert board.references["hero"].image == "refs/hero.png"
    assert board.references["mug"].element is not None and board.references["mug"].element.element_id is None
    assert board.references["saved"].element.element_id == 829836802793406551
    assert [s.id for s in board.shots] == ["intro", "pour", "closing"]
    assert board.shots[1].duration == 4.5
    assert board.groups[0].shots == ["intro", "pour"]
    assert (board.cut.transition.type, board.cut.transition.duration) == ("crossfade", 0.5)
    assert [(c.shot, c.trim_in) for c in board.cut.shots] == [("intro", 0), ("pour", 0.5), ("closing", 0)]
    assert board.cut.title.text == "Beanery presents"
    assert board.cut.audio.bed.file == "music/bed.mp3"
    assert [o.aspect_ratio for o in board.outputs] == ["16:9", "9:16"]


def test_locate_present_and_absent_nodes(full_project):
    loaded = load(full_project)
    file = str(full_project / "storyboard.yaml")
    assert loaded.locate("shots", 1, "duration") == Location(file, 20, 15, "shots[1].duration")
    assert str(loaded.locate("shots", 1, "duration")) == f"{file}:20:15: shots[1].duration"
    assert loaded.locate("references", "mug", "image") == Location(file, 9, 12, "references.mug.image")
    # shorthand: the bare path stands for the whole reference
    assert loaded.locate("references", "hero", "image") == Location(file, 7, 9, "references.hero.image")
    assert loaded.locate("cut", "shots", 1, "shot") == Location(file, 30, 25, "cut.shots[1].shot")
    # absent nodes: the closest existing parent, with the full path
    assert loaded.locate("shots", 2, "model") == Location(file, 24, 5, "shots[2].model")
    assert loaded.locate("defaults", "sound") == Location(file, 4, 3, "defaults.sound")
    assert loaded.locate("shots", 9, "duration") == Location(file, 15, 3, "shots[9].duration")
    assert loaded.locate() == Location(file, 1, 1, "")
    # pydantic-internal loc parts (validator wrappers, union members) are not YAML keys
    assert loaded.locate("cut", "function-after[_check(), Cut]", "transition") == Location(file, 29, 15, "cut.transition")
    assert loaded.locate("shots", 0, "duration", "float") == Location(file, 16, 15, "shots[0].duration")


def test_paths_and_digests(full_project):
    loaded = load(full_project)
    assert loaded.resolve_path("refs/hero.png") == full_project / "refs" / "hero.png"
    expected = hashlib.sha256((full_project / "refs/hero.png").read_bytes()).hexdigest()
    assert loaded.image_digest("refs/hero.png") == expected
    # cached: a digest is the content the storyboard was validated with
    (full_project / "refs/hero.png").write_bytes(b"changed")
    assert loaded.image_digest("refs/hero.png") == expected
    with pytest.raises(UserError, match="cannot read image refs/none.png"):
        loaded.image_digest("refs/none.png")


def test_load_text_uses_the_given_names(full_project):
    text = (full_project / "storyboard.yaml").read_text()
    loaded = load_text(text, full_project / "variant.yaml", full_project)
    assert isinstance(loaded, LoadedStoryboard)
    assert loaded.locate("name").file == str(full_project / "variant.yaml")
    with pytest.raises(StoryboardInvalid) as raised:
        load_text("name: x\n", full_project / "variant.yaml", full_project)
    assert [str(p) for p in raised.value.problems] == [f"{full_project / 'variant.yaml'}:1:1: shots: missing required key 'shots'"]


def test_file_names_are_shown_relative_to_the_working_folder(make_project, monkeypatch):
    project = make_project("name: demo\n")
    monkeypatch.chdir(project.parent)
    with pytest.raises(StoryboardInvalid) as raised:
        load(project.name)
    assert str(raised.value) == f"{project.name}/storyboard.yaml:1:1: shots: missing required key 'shots'"


def test_invalid_utf8_is_a_located_problem(tmp_path):
    (tmp_path / "storyboard.yaml").write_bytes(b"name: caf\xe9\nshots: []\n")
    with pytest.raises(StoryboardInvalid) as raised:
        load(tmp_path)
    assert [str(p) for p in raised.value.problems] == [
        f"{tmp_path / 'storyboard.yaml'}:1:10: the file is not UTF-8 text (byte 0xe9): save it as UTF-8"
    ]


def test_a_bom_is_accepted(tmp_path):
    (tmp_path / "storyboard.yaml").write_bytes("\ufeffname: demo\nshots: [{id: a, duration: 5}]\n".encode())
    assert load(tmp_path).storyboard.name == "demo"


def test_find_storyboard(tmp_path):
    (tmp_path / "storyboard.yaml").write_text("name: x\n")
    assert find_storyboard(tmp_path) == tmp_path / "storyboard.yaml"
    assert find_storyboard(str(tmp_path / "storyboard.yaml")) == tmp_path / "storyboard.yaml"
    other = tmp_path / "other"
    other.mkdir()
    (other / "storyboard.yml").write_text("name: x\n")
    assert find_storyboard(other) == other / "storyboard.yml"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no storyboard.yaml in"):
        find_storyboard(empty)
    with pytest.raises(UserError, match="no such file or folder"):
        find_storyboard(tmp_path / "nowhere")
