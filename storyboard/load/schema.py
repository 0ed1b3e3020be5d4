"""JSON Schemas of ``storyboard.yaml`` and ``campaign.yaml``, for editors and for ``jsonschema``.

Why a module of its own: the pydantic models are the format; this module turns them into the
documents editors read (yaml-language-server, through a ``# yaml-language-server: $schema=``
comment) and adds what pydantic leaves out:

* the dialect (``$schema``: Draft 2020-12) and a stable ``$id`` under ``SCHEMA_BASE_URL``. The id
  names the schema; nothing is served there, so projects point at a file (the repository's, or
  the copy ``storyboard init`` writes beside the storyboard);
* the defaults of fields built by a factory (``cut``, ``defaults``, lists), which pydantic omits;
* until the campaign model declares them itself, the campaign file's short forms (a matrix value
  given as a scalar or left empty, a variable given as a list of values) and the descriptions its
  model lacks.

The committed ``storyboard.schema.json`` and ``campaign.schema.json`` are these documents, written
by ``write_schema_files`` (``python -m storyboard.load.schema``); a test keeps them equal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from storyboard.load.spec import Storyboard

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_URL = "https://storyboard.dev/schema/"
STORYBOARD_SCHEMA_FILE = "storyboard.schema.json"
CAMPAIGN_SCHEMA_FILE = "campaign.schema.json"
STORYBOARD_SCHEMA_ID = SCHEMA_BASE_URL + STORYBOARD_SCHEMA_FILE
CAMPAIGN_SCHEMA_ID = SCHEMA_BASE_URL + CAMPAIGN_SCHEMA_FILE

_SCALAR = {"type": ["string", "number", "boolean"]}


class _FactoryDefaults(GenerateJsonSchema):
    """Pydantic's generator, plus the default of every field that has a ``default_factory``.

    Why: an editor shows the default on hover; ``cut.transition`` defaulting to a hard cut or
    ``outputs`` to an empty list is what a user needs to know, and pydantic only reports
    literal defaults.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)


def _document(model: type[BaseModel], schema_id: str, title: str) -> dict[str, Any]:
    body: JsonSchemaValue = model.model_json_schema(schema_generator=_FactoryDefaults)
    body.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "$id": schema_id, "title": title, **body}


def storyboard_schema() -> dict[str, Any]:
    """The JSON Schema of storyboard.yaml (what ``storyboard schema`` prints)."""
    return _document(Storyboard, STORYBOARD_SCHEMA_ID, "storyboard.yaml")


# --------------------------------------------------------------------------------------------
# campaign.yaml
# --------------------------------------------------------------------------------------------

_CAMPAIGN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "Campaign": {
        "name": "Name of the campaign; the review page is titled with it.",
        "description": "Free text for the people working on it.",
    },
    "VariantOverride": {
        "label": "Human name of this variant on the review page; default: built from its values' labels.",
        "vars": "Template values merged into this variant's vars, after its matrix values'.",
        "set": "Overrides deep-merged into this variant's storyboard, after its matrix values'; dotted keys; "
        "shots by id, outputs by name.",
    },
}
"""Descriptions the campaign model does not carry yet (the model's own always win)."""


def _campaign_model() -> tuple[type[BaseModel], str]:
    """The campaign model and its variable-name pattern, wherever the campaign module lives now."""
    try:
        from storyboard.load.campaign import VARIABLE_NAME, Campaign  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from storyboard.campaign import VARIABLE_NAME, Campaign  # type: ignore[no-redef,unused-ignore]
    return Campaign, VARIABLE_NAME


def _add_campaign_short_forms(schema: dict[str, Any], variable_name: str) -> None:
    """The short forms the campaign model's before validators accept, where it does not declare them.

    A matrix value may be left empty (``en:``) or be a scalar (``latte: Caffè latte``, what
    templates see); a variable may be a plain list of scalars (``aspect_ratio: ["16:9", "9:16"]``),
    each both the value's name and its value.
    """
    definitions = schema.get("$defs", {})
    value = definitions.get("MatrixValue")
    if value is not None and "anyOf" not in value:
        mapping = dict(value)
        value.clear()
        value["description"] = mapping.pop("description", "One value of a matrix variable and what choosing it changes.")
        value["anyOf"] = [
            {"type": "null", "description": "Nothing but the value's name, which templates see."},
            {**_SCALAR, "description": "What templates see as vars.<variable>."},
            mapping,
        ]
    matrix = schema.get("properties", {}).get("matrix")
    if matrix is not None:
        values = matrix.get("additionalProperties", {})
        if "anyOf" not in values:
            mapping = {**values, "minProperties": 1, "description": "Value name -> what choosing it changes."}
            values.clear()
            values["anyOf"] = [
                {
                    "type": "array",
                    "items": _SCALAR,
                    "minItems": 1,
                    "description": "Shorthand: the values themselves; each is also its name.",
                },
                mapping,
            ]
        matrix.setdefault("propertyNames", {"pattern": variable_name})


def _add_campaign_descriptions(schema: dict[str, Any]) -> None:
    for model_name, descriptions in _CAMPAIGN_DESCRIPTIONS.items():
        target = schema if model_name == "Campaign" else schema.get("$defs", {}).get(model_name, {})
        for field, description in descriptions.items():
            prop = target.get("properties", {}).get(field)
            if prop is not None:
                prop.setdefault("description", description)


def campaign_schema() -> dict[str, Any]:
    """The JSON Schema of campaign.yaml."""
    campaign, variable_name = _campaign_model()
    schema = _document(campaign, CAMPAIGN_SCHEMA_ID, "campaign.yaml")
    _add_campaign_short_forms(schema, variable_name)
    _add_campaign_descriptions(schema)
    return schema


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def schema_text(schema: dict[str, Any]) -> str:
    """How a schema is written to a file: the bytes ``storyboard schema`` prints."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schema_files(folder: Path) -> list[Path]:
    """Write ``storyboard.schema.json`` and ``campaign.schema.json`` into ``folder``."""
    written = []
    for name, schema in ((STORYBOARD_SCHEMA_FILE, storyboard_schema()), (CAMPAIGN_SCHEMA_FILE, campaign_schema())):
        target = folder / name
        target.write_text(schema_text(schema), encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":  # regenerate the committed files: python -m storyboard.load.schema [folder]
    write_schema_files(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
