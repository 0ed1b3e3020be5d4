"""The JSON Schemas editors read agree with the loader: what one accepts the other accepts.

Why with ``jsonschema`` (Draft 2020-12) and not only pydantic: editors validate with the schema
alone, so a short form the loader expands but the schema does not know underlines a valid file,
and a schema that accepts a typo hides it until ``validate``. Every check below runs the same
document through both and compares their verdicts; the examples and the README's snippets must
pass both.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from storyboard.load import loader, spec
from storyboard.load.campaign import Campaign
from storyboard.load.schema import (
    CAMPAIGN_SCHEMA_FILE,
    CAMPAIGN_SCHEMA_ID,
    SCHEMA_DIALECT,
    STORYBOARD_SCHEMA_FILE,
    STORYBOARD_SCHEMA_ID,
    campaign_schema,
    schema_text,
    storyboard_schema,
)
from storyboard.load.spec import Storyboard, json_schema

_register_commands()

REPO = Path(__file__).resolve().parent.parent
STORYBOARDS = sorted(REPO.glob("projects/*/storyboard.yaml"))
CAMPAIGNS = sorted(REPO.glob("projects/*/campaign.yaml"))


@pytest.fixture(scope="module")
def storyboard_validator() -> Draft202012Validator:
    return Draft202012Validator(storyboard_schema())


@pytest.fixture(scope="module")
def campaign_validator() -> Draft202012Validator:
    return Draft202012Validator(campaign_schema())


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def accepted_by_model(model: type[BaseModel], document: Any) -> bool:
    try:
        model.model_validate(document)
    except ValidationError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# The documents themselves
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "build", "schema_id"),
    [(STORYBOARD_SCHEMA_FILE, storyboard_schema, STORYBOARD_SCHEMA_ID), (CAMPAIGN_SCHEMA_FILE, campaign_schema, CAMPAIGN_SCHEMA_ID)],
)
def test_committed_schema_files_are_the_generated_ones(file_name, build, schema_id):
    schema = build()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == schema_id and schema_id.startswith("https://") and schema_id.endswith("/" + file_name)
    committed = (REPO / file_name).read_text(encoding="utf-8")
    assert committed == schema_text(schema), f"regenerate it: python -m storyboard.load.schema  (writes {file_name})"


def test_schema_command_prints_the_storyboard_schema():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == storyboard_schema() == json_schema()


CONDITIONS = ("if", "then", "else", "not")
"""Keys holding constraints on properties declared elsewhere, not properties of their own."""


def _properties(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (path, property schema) of a schema, through $defs, anyOf and items alike."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            found.append((f"{where}.{name}", prop))
        for key, child in node.items():
            if key in CONDITIONS:
                continue
            if key != "properties" or not isinstance(child, dict):
                found.extend(_properties(child, f"{where}/{key}"))
            else:
                for name, prop in child.items():
                    found.extend(_properties(prop, f"{where}.{name}"))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_properties(child, f"{where}[{index}]"))
    return found


@pytest.mark.parametrize("build", [storyboard_schema, campaign_schema])
def test_every_property_has_a_description(build):
    properties = _properties(build())
    undescribed = [path for path, prop in properties if not prop.get("description")]
    assert len(properties) > 10
    assert undescribed == [], f"{len(properties) - len(undescribed)}/{len(properties)} described"


def _models(module: Any) -> list[type[BaseModel]]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__
    ]


def test_every_default_is_in_the_schema():
    """Literal defaults and factory defaults alike (``cut``, ``outputs: []``), as the model builds them."""
    definitions = storyboard_schema()["$defs"]
    checked = 0
    for model in _models(spec):
        if model.__name__ not in definitions and model is not Storyboard:
            continue
        definition = storyboard_schema() if model is Storyboard else definitions[model.__name__]
        mapping = next((form for form in definition.get("anyOf", []) if "properties" in form), definition)
        for name, field in model.model_fields.items():
            if field.is_required():
                assert "default" not in mapping["properties"][name], f"{model.__name__}.{name} has no default"
                continue
            expected = field.get_default(call_default_factory=True)
            if isinstance(expected, BaseModel):
                expected = expected.model_dump(mode="json")
            assert mapping["properties"][name].get("default", "missing") == expected, f"{model.__name__}.{name}"
            checked += 1
    assert checked > 50


def test_every_shorthand_validator_declares_its_short_forms():
    """A model that expands a short form in a before validator must offer it in its schema too."""
    with_short_forms = []
    for model in _models(spec):
        decorators = model.__pydantic_decorators__
        before = [d for d in decorators.model_validators.values() if d.info.mode == "before"]
        before += [d for d in decorators.field_validators.values() if d.info.mode == "before"]
        if before:
            schema = model.model_json_schema()
            assert "anyOf" in schema, f"{model.__name__} expands a short form the schema does not show"
            with_short_forms.append(model.__name__)
    assert set(with_short_forms) >= {"Element", "Reference", "Group", "Transition", "Card", "CutShot", "AudioBed"}


# --------------------------------------------------------------------------------------------
# Examples and README
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", STORYBOARDS, ids=lambda p: p.parent.name)
def test_every_example_storyboard_validates(path, storyboard_validator):
    errors = [f"{e.json_path}: {e.message}" for e in storyboard_validator.iter_errors(read_yaml(path))]
    assert errors == []
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=../../storyboard.schema.json"
    assert (path.parent / "../../storyboard.schema.json").resolve() == REPO / STORYBOARD_SCHEMA_FILE


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.parent.name)
def test_every_example_campaign_validates(path, campaign_validator):
    errors = [f"{e.json_path}: {e.message}" for e in campaign_validator.iter_errors(read_yaml(path))]
    assert errors == []
    assert path.read_text(encoding="utf-8").splitlines()[0] == "# yaml-language-server: $schema=../../campaign.schema.json"


def readme_yaml_blocks() -> list[tuple[str, Any]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [("campaign" if "matrix" in (doc := yaml.safe_load(block)) else "storyboard", doc) for block in blocks]


def test_every_readme_yaml_snippet_validates(storyboard_validator, campaign_validator):
    blocks = readme_yaml_blocks()
    assert sorted(kind for kind, _ in blocks) == ["campaign", "storyboard"]
    for kind, document in blocks:
        validator = campaign_validator if kind == "campaign" else storyboard_validator
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == [], f"README {kind} snippet"
        assert accepted_by_model(Campaign if kind == "campaign" else Storyboard, document)


# --------------------------------------------------------------------------------------------
# Short forms and typos: the schema and the model agree
# --------------------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "name": "Probe",
    "references": {"cup": {"image": "refs/cup.png"}},
    "shots": [{"id": "a", "duration": 3, "prompt": "a cup"}, {"id": "b", "duration": 3, "prompt": "a spoon"}],
}


def with_value(path: str, value: Any, base: dict[str, Any] = BASE) -> dict[str, Any]:
    """``base`` with ``value`` set at a dotted path (``shots.0.camera``), creating mappings."""
    document = copy.deepcopy(base)
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = document
    for part in parts[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[parts[-1]] = value
    return document


STORYBOARD_CASES = [
    # (path, value, valid)
    ("cut.transition", "crossfade 0.5", True),
    ("cut.transition", "fade_white 1s", True),
    ("cut.transition", "dissolve .5", True),
    ("cut.transition", "cut", True),
    ("cut.transition", "  crossfade   2  ", True),
    ("cut.transition", "crossfade 5", True),
    ("cut.transition", {"type": "crossfade", "duration": 1}, True),
    ("cut.transition", "crossfade 6", False),
    ("cut.transition", "crossfade 5.5", False),
    ("cut.transition", "wipe 1", False),
    ("cut.transition", "crossfade fast", False),
    ("cut.transition", {"type": "crossfade", "durration": 1}, False),
    ("cut.shots", ["a", "b"], True),
    ("cut.shots", ["a", {"shot": "b", "trim_in": 0.5, "transition": "fade_black 1"}], True),
    ("cut.shots", [3], False),
    ("cut.shots", [{"shot": "b", "trim": 1}], False),
    ("cut.end_card", "Slow mornings, strong coffee.", True),
    ("cut.title", "Morning Roast", True),
    ("cut.title", {"text": "Morning Roast", "duration": 1.5, "style": {"font": "fonts/Brand.ttf"}}, True),
    ("cut.title", {"txt": "Morning Roast"}, False),
    ("cut.title", 5, False),
    ("groups", [["a", "b"]], True),
    ("groups", [{"shots": ["a", "b"]}], True),
    ("groups", [[]], False),
    ("groups", [{"shot": ["a"]}], False),
    ("references.plain", "refs/other.png", True),
    ("references.cup.element", True, True),
    ("references.cup.element", False, True),
    ("references.cup.element", 829836802793406551, True),
    ("references.cup.element", {"name": "cup", "tags": ["o_104"]}, True),
    ("references.cup.element", "yes please", False),
    ("references.cup.element", {"nmae": "cup"}, False),
    ("references.cup.element", {"tags": ["o_109"]}, False),
    ("references.bad id", {"image": "refs/x.png"}, False),
    ("references.plain", 3, False),
    ("references.host", {"video": "media/host.mp4", "url": "https://x.test/h.mp4"}, True),
    ("references.host", {"video": "media/host.mp4", "element": {"name": "Host", "voice_id": "v1"}}, True),
    ("references.host", {"video": "media/host.mp4", "image": "refs/x.png"}, False),
    ("references.host", {"image": "refs/x.png", "url": "https://x.test/h.mp4"}, False),
    ("references.host", {"description": "neither image nor video"}, False),
    ("references.host", {"video": "media/host.mp4", "role": "style"}, False),
    ("references.host", {"video": "media/host.mp4", "element": False}, False),
    ("references.host", {"video": "media/host.mp4", "element": {"extra_images": ["refs/x.png"]}}, False),
    ("cut.audio.bed", "music/bed.m4a", True),
    ("cut.audio.bed", {"file": "music/bed.m4a", "volume_db": -6, "loop": False}, True),
    ("cut.audio.bed", {"fil": "music/bed.m4a"}, False),
    ("cut.audio.bed", {"file": "music/bed.m4a", "duck_db": 3}, False),
    ("shots.0.camera_control", {"type": "simple", "config": {"zoom": 5}}, True),
    ("shots.0.camera_control", {"config": {"pan": -2}}, True),
    ("shots.0.camera_control", {"type": "down_back"}, True),
    ("shots.0.camera_control", {"type": "simple"}, False),
    ("shots.0.camera_control", {}, False),
    ("shots.0.camera_control", {"type": "down_back", "config": {"zoom": 5}}, False),
    ("cut.captions", {"font": "Noto Sans"}, True),
    ("cut.captions", {"position": "middle"}, False),
]


@pytest.mark.parametrize(("path", "value", "valid"), STORYBOARD_CASES, ids=[f"{p}={v!r}" for p, v, _ in STORYBOARD_CASES])
def test_short_forms_are_accepted_and_bad_ones_refused_by_both(path, value, valid, storyboard_validator):
    document = with_value(path, value)
    assert accepted_by_model(Storyboard, document) is valid, "the model's verdict"
    assert storyboard_validator.is_valid(document) is valid, "the schema's verdict"


TYPOS = [
    # (misspelt or wrong path, value, where the schema's best error points)
    ("shot", [], ()),
    ("defaults.modle", "kling-v3", ("defaults",)),
    ("defaults.mode", "hd", ("defaults", "mode")),
    ("defaults.model", "kling-v4", ("defaults", "model")),
    ("defaults.aspect_ratio", "4:3", ("defaults", "aspect_ratio")),
    ("defaults.strategy", "multishot", ("defaults", "strategy")),
    ("shots.0.durration", 3, ("shots", 0)),
    ("shots.0.camera_control", {"type": "simple", "config": {"zooom": 5}}, ("shots", 0, "camera_control")),
    ("shots.0.motion_brush", {"dynamic_masks": [{"mask": "m.png", "trajectory": [[1, 2], [3, 4]], "path": []}]}, ("shots", 0)),
    ("references.cup.rol", "subject", ("references", "cup")),
    ("references.cup.role", "hero", ("references", "cup")),
    ("cut.audio.bed", {"file": "bed.m4a", "volume": -6}, ("cut", "audio", "bed")),
    ("cut.audio.clip_audio", "mute", ("cut", "audio", "clip_audio")),
    ("cut.title", {"text": "T", "styl": {}}, ("cut", "title")),
    ("cut.title", {"text": "T", "style": {"fnt": "x"}}, ("cut", "title")),
    ("outputs", [{"name": "wide", "fpss": 24}], ("outputs", 0)),
    ("outputs", [{"name": "wide", "reframe": "stretch"}], ("outputs", 0, "reframe")),
]


@pytest.mark.parametrize(("path", "value", "where"), TYPOS, ids=[p for p, _, _ in TYPOS])
def test_typos_and_wrong_enum_values_fail_at_their_place(path, value, where, storyboard_validator):
    document = with_value(path, value)
    assert not accepted_by_model(Storyboard, document)
    error = best_match(storyboard_validator.iter_errors(document))
    assert error is not None
    assert tuple(error.absolute_path)[: len(where)] == where, error.message


CAMPAIGN_BASE: dict[str, Any] = {"name": "Launch", "matrix": {"language": {"en": {}, "de": {"vars": {"tagline": "Guten Morgen"}}}}}

CAMPAIGN_CASES = [
    ("matrix.language.en", None, True),
    ("matrix.product", {"latte": "Caffè latte", "mocha": 3}, True),
    ("matrix.aspect_ratio", ["16:9", "9:16"], True),
    ("matrix.product", {"latte": {"label": "Latte", "set": {"shots.a.caption": "Latte"}}}, True),
    ("variants", {"en": {"set": {"cut.end_card.text": "Try it"}}}, True),
    ("exclude", [{"language": "de"}], True),
    ("matrix.language.en", {"labl": "English"}, False),
    ("matrix.language", {}, False),
    ("matrix.language", [], False),
    ("matrix.language", [{"not": "a scalar"}], False),
    ("matrix.bad-name", {"x": None}, False),
    ("variants", {"en": {"sett": {}}}, False),
    ("storybord", "storyboard.yaml", False),
]


@pytest.mark.parametrize(("path", "value", "valid"), CAMPAIGN_CASES, ids=[f"{p}={v!r}" for p, v, _ in CAMPAIGN_CASES])
def test_campaign_short_forms_and_typos_agree_with_the_model(path, value, valid, campaign_validator):
    document = with_value(path, value, CAMPAIGN_BASE)
    assert accepted_by_model(Campaign, document) is valid, "the model's verdict"
    assert campaign_validator.is_valid(document) is valid, "the schema's verdict"


# --------------------------------------------------------------------------------------------
# Text styles cascade
# --------------------------------------------------------------------------------------------

CASCADE = """\
version: 1
name: Cascade
shots:
  - {id: a, duration: 3, prompt: a cup, caption: Hello}
cut:
  title: {text: Morning Roast, style: {font: fonts/Brand.ttf}}
  end_card: {text: Bye, style: {position: top}}
  captions: {color: "#ff0000"}
"""


def test_setting_one_style_field_keeps_the_others_of_the_context(make_project):
    cut = loader.load(make_project(CASCADE)).storyboard.cut
    assert cut.title is not None and cut.end_card is not None
    title, end = cut.title.style, cut.end_card.style
    assert (title.font, title.size, title.position, title.color) == ("fonts/Brand.ttf", 72, "center", "#ffffff")
    assert (end.font, end.size, end.position) == (None, 72, "top")
    captions = cut.captions
    assert (captions.color, captions.size, captions.position, captions.font) == ("#ff0000", 48, "bottom", None)


def test_a_card_without_style_and_a_card_shorthand_use_the_card_defaults():
    cut = Storyboard.model_validate(with_value("cut.title", "Hi")).cut
    assert cut.title is not None
    assert (cut.title.style.size, cut.title.style.position) == (72, "center")
    assert cut.captions.size == 48 and cut.captions.position == "bottom"


def test_the_schema_shows_each_context_its_own_style_defaults():
    definitions = storyboard_schema()["$defs"]
    card = definitions["CardStyle"]["properties"]
    captions = definitions["TextStyle"]["properties"]
    assert (card["size"]["default"], card["position"]["default"]) == (72, "center")
    assert (captions["size"]["default"], captions["position"]["default"]) == (48, "bottom")


# --------------------------------------------------------------------------------------------
# Editors that only speak draft-07
# --------------------------------------------------------------------------------------------


def test_a_draft_07_validator_reaches_the_same_verdicts():
    """yaml-language-server implements draft-07 (2020-12 support is partial): the schema keeps to
    keywords it knows, so what it accepts and refuses does not depend on the editor's draft."""
    validator = Draft7Validator(storyboard_schema())
    for path in STORYBOARDS:
        assert validator.is_valid(read_yaml(path)), path
    for kind, document in readme_yaml_blocks():
        if kind == "storyboard":
            assert validator.is_valid(document)
    for path, value, valid in STORYBOARD_CASES:
        assert validator.is_valid(with_value(path, value)) is valid, (path, value)
    for path, value, _ in TYPOS:
        assert not validator.is_valid(with_value(path, value)), path
    campaigns = Draft7Validator(campaign_schema())
    for path in CAMPAIGNS:
        assert campaigns.is_valid(read_yaml(path)), path
    for path, value, valid in CAMPAIGN_CASES:
        assert campaigns.is_valid(with_value(path, value, CAMPAIGN_BASE)) is valid, (path, value)
