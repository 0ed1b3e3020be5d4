"""Campaign files: their format, their expansion into variants, and each variant's merged storyboard.

Why here, in ``load``: a campaign is a *generator* of storyboards. This module reads the campaign
file (``campaign.yaml``), expands its matrix into variants with stable ids and overlays each
variant's overrides on the base storyboard; each variant is then loaded like any storyboard (the
planning and sharing of its requests is ``storyboard.plan.sharing``).

The campaign file, written by hand::

    version: 1
    name: Morning Roast launch
    storyboard: storyboard.yaml          # the base, relative to this file
    matrix:                              # variables, in the order ids are built from
      product:
        espresso:                        # value name -> overrides
          label: Espresso
          vars: {product_name: Espresso}
          set:
            references.cup.image: refs/espresso.png   # dotted keys; shots/outputs by id or name
        latte: Caffè latte               # value name -> a scalar: what templates see
      language:
        en: {vars: {tagline: Slow mornings.}}
        de: {vars: {tagline: Langsame Morgen.}, set: {shots.hero.caption: Guten Morgen}}
      aspect_ratio: ["16:9", "9:16"]     # a plain list of scalars
    exclude:
      - {product: latte, aspect_ratio: "9:16"}
    include: []                          # partial assignments added back after the excludes
    variants:                            # per-variant overrides, by id
      espresso-de-9x16:
        set: {cut.end_card.text: Jetzt probieren}

Ids are built from the *value names* in the matrix's variable order (``espresso-de-9x16``), never
from positions, so adding a product or reordering values renames nothing: journals, review links
and ``out/<variant-id>/`` folders stay valid.

Errors point where the user must edit, by construction rather than by mapping lines back: both
files are parsed once into the loader's ``YamlDocument`` (a node graph whose every node carries
its file, line and column), and a variant is an *overlay* (rendercv's habit): the base storyboard's
graph, copied only along the paths the campaign changes, with the campaign's own nodes grafted in
where it set a value. The loader validates that graph directly, so a problem in a value the
campaign set is located at the campaign file's line, and one in what the variant inherited at the
base storyboard's line; no text is re-rendered and no second parser or position table exists.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storyboard.errors import Location, Problem, StoryboardInvalid, UserError
from storyboard.load import loader
from storyboard.load.loader import LoadedStoryboard, YamlDocument
from storyboard.load.spec import AspectRatio

CAMPAIGN_FILE_NAMES = ("campaign.yaml", "campaign.yml")
ASPECT_VARIABLE = "aspect_ratio"
ASPECT_RATIOS: tuple[str, ...] = AspectRatio.__args__  # type: ignore[attr-defined]
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,31}$"

Part = str | int
Path_ = tuple[Part, ...]
Scalar = str | int | float | bool

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# --------------------------------------------------------------------------------------------
# The campaign file model
# --------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixValue(_Strict):
    """One value of a matrix variable and what choosing it changes."""

    value: Scalar | None = Field(None, description="What templates see as vars.<variable>; default: the value name.")
    label: str | None = Field(None, description="Human name on the review page; default: the value.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Template values merged into the storyboard's vars.")
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides deep-merged into the base storyboard; dotted keys; shots by id, outputs by name.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, (str, int, float, bool)):
            return {"value": value}
        return value


class VariantOverride(_Strict):
    """Explicit overrides of one variant, applied after its matrix values."""

    label: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)


class Campaign(_Strict):
    """A whole campaign file."""

    version: Literal[1] = Field(1, description="Format version of this file.")
    name: str = Field(min_length=1)
    description: str | None = None
    storyboard: str = Field("storyboard.yaml", description="The base storyboard, relative to this file.")
    matrix: dict[str, dict[str, MatrixValue]] = Field(min_length=1, description="Variables -> value name -> overrides.")
    include: list[dict[str, Scalar]] = Field(default_factory=list, description="Assignments added after the excludes.")
    exclude: list[dict[str, Scalar]] = Field(default_factory=list, description="Assignments removed from the product.")
    variants: dict[str, VariantOverride] = Field(default_factory=dict, description="Overrides by variant id.")

    @field_validator("matrix", mode="before")
    @classmethod
    def _matrix_shorthand(cls, value: Any) -> Any:
        """A variable given as a list of scalars: each scalar is both its name and its value."""
        if not isinstance(value, dict):
            return value
        expanded = {}
        for variable, values in value.items():
            if isinstance(values, list) and all(isinstance(v, (str, int, float, bool)) for v in values):
                values = {str(v): {"value": v} for v in values}
            elif isinstance(values, dict):
                values = {str(name): spec for name, spec in values.items()}
            expanded[variable] = values
        return expanded

    @field_validator("matrix")
    @classmethod
    def _matrix_names(cls, value: dict[str, dict[str, MatrixValue]]) -> dict[str, dict[str, MatrixValue]]:
        for variable, values in value.items():
            if not re.match(VARIABLE_NAME, variable):
                raise ValueError(f"variable name {variable!r} must be a word: letters, digits and _ (templates use vars.{variable})")
            if not values:
                raise ValueError(f"variable {variable!r} has no values: give at least one")
        return value


# --------------------------------------------------------------------------------------------
# Small helpers of the messages
# --------------------------------------------------------------------------------------------


def dotted(path: Path_ | list[Part]) -> str:
    """``("shots", 2, "duration")`` -> ``shots[2].duration`` (the loader's spelling)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[\w-]+", str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{part!r}]"
    return text


def _display(file: Path) -> str:
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def _closest(word: str, known: list[str]) -> str:
    match = difflib.get_close_matches(word, known[:200], n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------


def slug(value: str) -> str:
    """A value name as a piece of a variant id: ``16:9`` -> ``16x9``, ``Oat Latte`` -> ``oat-latte``."""
    text = str(value).strip().lower().replace(":", "x")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def variant_id(assignment: dict[str, str]) -> str:
    """The stable id of an assignment: its value names' slugs in the matrix's variable order."""
    return "-".join(slug(name) for name in assignment.values())


@dataclass(frozen=True)
class Variant:
    """One storyboard of the campaign: its choice of each variable and its merged document."""

    id: str
    assignment: dict[str, str]
    """Variable -> value name, in the matrix's variable order."""
    values: dict[str, Any]
    """Variable -> what templates see as ``vars.<variable>``."""
    labels: dict[str, str]
    """Variable -> human label of the chosen value."""
    label: str
    source: YamlDocument = field(repr=False, compare=False)
    """The merged storyboard as an overlay: base nodes and campaign nodes, each with its own position."""

    @property
    def document(self) -> dict[str, Any]:
        """The merged storyboard's values (what the loader validates)."""
        data = self.source.data
        return data if isinstance(data, dict) else {}

    @property
    def aspect_ratio(self) -> str:
        """The ratio this variant is cut for (its ``aspect_ratio`` value, else the base default)."""
        defaults = self.document.get("defaults")
        ratio = defaults.get("aspect_ratio") if isinstance(defaults, dict) else None
        return str(ratio or "16:9")

    def text(self) -> str:
        """The merged storyboard as YAML text, for people to read (validation reads ``source``)."""
        return yaml.dump(self.document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


@dataclass(frozen=True)
class LoadedCampaign:
    """A validated campaign file, its base storyboard, and its expanded variants in order."""

    campaign: Campaign
    file: Path
    storyboard_file: Path
    project_dir: Path
    """Where the base storyboard lives: image paths and the render journal are relative to it."""
    variants: tuple[Variant, ...]
    source: YamlDocument = field(repr=False, compare=False)
    """The campaign file, parsed."""
    base: YamlDocument = field(repr=False, compare=False)
    """The base storyboard, parsed."""

    @property
    def folder(self) -> Path:
        """The campaign folder: ``out/<variant-id>/`` and the review page are written here."""
        return self.file.parent

    @property
    def variables(self) -> list[str]:
        return list(self.campaign.matrix)

    def variant(self, variant_id: str) -> Variant:
        for variant in self.variants:
            if variant.id == variant_id:
                return variant
        raise UserError(
            f"no variant {variant_id!r} in {_display(self.file)}{_closest(variant_id, [v.id for v in self.variants])}",
            "run `storyboard campaign plan` to list the variant ids",
        )


def find_campaign(path: Path | str) -> Path:
    """The campaign file of a folder (its campaign.yaml), or the file itself."""
    return loader.find_file(path, CAMPAIGN_FILE_NAMES, "campaign")


def load_campaign(path: Path | str) -> LoadedCampaign:
    """Read, validate and expand a campaign file; raise ``StoryboardInvalid`` with located problems."""
    file = find_campaign(path)
    return load_campaign_text(loader.read_source(file, _display(file), "campaign"), file)


def load_campaign_text(text: str, file: Path | str) -> LoadedCampaign:
    """Validate campaign text as if read from ``file`` (the base storyboard is relative to it)."""
    file = Path(file).absolute()
    shown = _display(file)
    source = YamlDocument.parse(text, shown)
    if source.problems:
        raise StoryboardInvalid(source.problems)
    if not isinstance(source.data, dict):
        where = source.location(source.root) if source.root is not None else Location(shown, 1, 1)
        raise StoryboardInvalid([Problem(where, "a campaign file is a mapping with name, storyboard and matrix keys")])
    try:
        campaign = Campaign.model_validate(source.data)
    except ValidationError as error:
        raise StoryboardInvalid([_pydantic_problem(source, dict(item)) for item in error.errors()]) from None

    storyboard_file = (file.parent / campaign.storyboard).absolute()
    base = _read_base(storyboard_file, source)
    problems = _check_matrix(campaign, source)
    if problems:
        raise StoryboardInvalid(problems)
    variants, problems = _expand(campaign, source, base)
    if problems:
        raise StoryboardInvalid(problems)
    return LoadedCampaign(
        campaign=campaign,
        file=file,
        storyboard_file=storyboard_file,
        project_dir=storyboard_file.parent,
        variants=tuple(variants),
        source=source,
        base=base,
    )


def _locate(source: YamlDocument, path: Path_) -> Location:
    """A campaign path's position: the key that names it when written, else its value or closest parent."""
    node, key_node, kept = source.walk(path)
    return source.location(key_node if key_node is not None else node, kept)


def _pydantic_problem(source: YamlDocument, error: dict[str, Any]) -> Problem:
    path = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    kind = error["type"]
    where = _locate(source, path)
    if kind == "extra_forbidden":
        parent = path[:-1]
        fields: list[str] | None = list(Campaign.model_fields) if not parent else None
        if fields is None and len(parent) == 3 and parent[0] == "matrix":
            fields = list(MatrixValue.model_fields)
        if fields is None and len(parent) == 2 and parent[0] == "variants":
            fields = list(VariantOverride.model_fields)
        message = f"unknown key {str(path[-1])!r}{_closest(str(path[-1]), fields or [])}"
        if fields:
            message += f"; allowed here: {', '.join(fields)}"
        return Problem(where, message)
    if kind == "missing":
        return Problem(where, f"missing required key {str(path[-1])!r}")
    message = error["msg"].removeprefix("Value error, ")
    return Problem(where, message)


def _read_base(storyboard_file: Path, source: YamlDocument) -> YamlDocument:
    """The base storyboard, parsed; a path the OS refuses or a file that is not there is located at ``storyboard:``."""
    shown = _display(storyboard_file)
    where = _value_location(source, ("storyboard",))
    try:
        text = loader.read_source(storyboard_file, loader.shown_path(shown), "storyboard")
    except StoryboardInvalid:
        raise
    except UserError as error:
        if error.message.startswith("no such"):
            message = f"the base storyboard {loader.shown_path(shown)} does not exist: fix the path (relative to the campaign file)"
        else:
            message = f"the base storyboard cannot be read: {error.message}: fix the path (relative to the campaign file)"
        raise StoryboardInvalid([Problem(where, message)]) from None
    base = YamlDocument.parse(text, shown)
    if base.root is None and base.problems:
        raise StoryboardInvalid(base.problems)
    if not isinstance(base.data, dict) or not isinstance(base.root, yaml.MappingNode):
        where = base.location(base.root) if base.root is not None else Location(shown, 1, 1)
        raise StoryboardInvalid([Problem(where, "a storyboard is a mapping with name and shots keys")])
    return base


def _value_location(source: YamlDocument, path: Path_) -> Location:
    node, _, kept = source.walk(path)
    return source.location(node, kept)


def _value_node(source: YamlDocument, variable: str, name: str, index: int) -> yaml.Node:
    """The node that defines one matrix value: its key (``latte:``), or its item in a list shorthand."""
    matrix = source.node_at(("matrix", variable))
    if isinstance(matrix, yaml.MappingNode):
        keys = [key for key, _ in matrix.value if isinstance(key, yaml.ScalarNode) and str(key.value) == name]
        if keys:
            return keys[-1]
    if isinstance(matrix, yaml.SequenceNode) and 0 <= index < len(matrix.value):
        return matrix.value[index]
    node, _, _ = source.walk(("matrix", variable))
    return node


def _value_path(source: YamlDocument, variable: str, name: str, index: int) -> Path_:
    matrix = source.node_at(("matrix", variable))
    return ("matrix", variable, index) if isinstance(matrix, yaml.SequenceNode) else ("matrix", variable, name)


def _check_matrix(campaign: Campaign, source: YamlDocument) -> list[Problem]:
    """What the model cannot see: aspect ratios, slugs, and assignments naming real values."""
    problems: list[Problem] = []
    variables = list(campaign.matrix)
    for variable, values in campaign.matrix.items():
        seen: dict[str, str] = {}
        for index, (name, spec) in enumerate(values.items()):
            where = source.location(_value_node(source, variable, name, index), _value_path(source, variable, name, index))
            piece = slug(name)
            if not piece:
                problems.append(Problem(where, f"value name {name!r} has no letter or digit to build a variant id from: rename it"))
            elif piece in seen:
                problems.append(Problem(where, f"values {seen[piece]!r} and {name!r} give the same id piece {piece!r}: rename one"))
            seen[piece] = name
            if variable == ASPECT_VARIABLE:
                ratio = _ratio_of(name, spec)
                if ratio not in ASPECT_RATIOS:
                    hint = ""
                    if (isinstance(spec.value, int) and not isinstance(spec.value, bool)) or re.fullmatch(r"\d+", name):
                        hint = ' (write ratios in quotes, "16:9": unquoted, YAML reads 16:9 as the number 969)'
                    problems.append(
                        Problem(where, f"aspect_ratio value {spec.value if spec.value is not None else name!r} is not one of {', '.join(ASPECT_RATIOS)}{hint}")
                    )
    for section in ("include", "exclude"):
        for index, assignment in enumerate(getattr(campaign, section)):
            if not assignment:
                problems.append(Problem(_locate(source, (section, index)), f"an empty {section} entry matches every variant: give variable: value pairs"))
            for variable, value in assignment.items():
                where = _locate(source, (section, index, variable))
                if variable not in campaign.matrix:
                    problems.append(Problem(where, f"{variable!r} is not a matrix variable{_closest(variable, variables)}; variables: {', '.join(variables)}"))
                    continue
                names = list(campaign.matrix[variable])
                if str(value) not in names:
                    extra = ' (quote ratios: unquoted, YAML reads 16:9 as the number 969)' if variable == ASPECT_VARIABLE and isinstance(value, int) else ""
                    problems.append(
                        Problem(where, f"{value!r} is not a value of {variable}{_closest(str(value), names)}; values: {', '.join(names[:20])}{extra}")
                    )
    return problems


def _ratio_of(name: str, spec: MatrixValue) -> str:
    return str(spec.value) if spec.value is not None else name


def _matches(assignment: dict[str, str], pattern: dict[str, Scalar]) -> bool:
    return all(assignment.get(variable) == str(value) for variable, value in pattern.items())


MAX_VARIANTS = 10_000
"""More variants than anyone reviews: a matrix that multiplies past this is refused before it is expanded."""


def _expand(campaign: Campaign, source: YamlDocument, base: YamlDocument) -> tuple[list[Variant], list[Problem]]:
    """The cartesian product minus the excludes plus the includes, in matrix order, merged."""
    variables = list(campaign.matrix)
    size = 1
    for variable in variables:
        size *= len(campaign.matrix[variable])
    if size > MAX_VARIANTS:
        return [], [Problem(_locate(source, ("matrix",)), f"the matrix makes {size} variants, over the limit of {MAX_VARIANTS}: split the campaign")]
    assignments = []
    for names in itertools.product(*(list(campaign.matrix[v]) for v in variables)):
        assignment = dict(zip(variables, names, strict=True))
        excluded = any(_matches(assignment, pattern) for pattern in campaign.exclude)
        included = any(_matches(assignment, pattern) for pattern in campaign.include)
        if included or not excluded:
            assignments.append(assignment)

    problems: list[Problem] = []
    if not assignments:
        problems.append(Problem(_locate(source, ("exclude",)), "the excludes remove every variant: nothing is left to render"))
    by_id: dict[str, dict[str, str]] = {}
    for assignment in assignments:
        by_id[variant_id(assignment)] = assignment
    for override_id in campaign.variants:
        if override_id not in by_id:
            problems.append(
                Problem(
                    _locate(source, ("variants", override_id)),
                    f"no variant {override_id!r} in the matrix{_closest(override_id, list(by_id))}; "
                    "variant ids are the value names in matrix order, e.g. " + next(iter(by_id), "?"),
                )
            )
    if problems:
        return [], problems

    variants = []
    for vid, assignment in by_id.items():
        variant, merge_problems = _merge(campaign, source, base, vid, assignment)
        problems.extend(p for p in merge_problems if p not in problems)
        variants.append(variant)
    return variants, problems


# --------------------------------------------------------------------------------------------
# The overlay: a variant's node graph, copied from the base only where the campaign writes
# --------------------------------------------------------------------------------------------

Container = yaml.MappingNode | yaml.SequenceNode


class _Overlay:
    """One variant's node graph under construction: copy-on-write over the base storyboard's graph.

    Why copy-on-write: every variant starts from the same base graph; a container is copied (one
    level, its children shared) only when the campaign writes below it, so the base and the other
    variants never change and a variant costs the size of what it overrides.
    """

    def __init__(self, base_root: yaml.MappingNode, source: YamlDocument) -> None:
        self.source = source
        self._owned: list[yaml.Node] = []
        """Containers this variant made (kept alive, so their ids stay theirs)."""
        self._owned_ids: set[int] = set()
        self.root = self.copy_of(base_root)

    def copy_of(self, node: Container) -> Container:
        copied: Container
        if isinstance(node, yaml.MappingNode):
            copied = yaml.MappingNode(node.tag, list(node.value), node.start_mark, node.end_mark, node.flow_style)
        else:
            copied = yaml.SequenceNode(node.tag, list(node.value), node.start_mark, node.end_mark, node.flow_style)
        self.own(copied)
        return copied

    def own(self, node: Container) -> None:
        self._owned.append(node)
        self._owned_ids.add(id(node))

    def new_mapping(self, mark: Any) -> yaml.MappingNode:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [], mark, mark)
        self.own(node)
        return node

    def writable(self, parent: Container, at: int, node: Container) -> Container:
        """``node`` (the child of ``parent`` at position ``at``) as this variant's own copy."""
        if id(node) in self._owned_ids:
            return node
        copied = self.copy_of(node)
        if isinstance(parent, yaml.MappingNode):
            parent.value[at] = (parent.value[at][0], copied)
        else:
            parent.value[at] = copied
        return copied


def _pairs(mapping: yaml.MappingNode) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
    """A mapping's (key text, key node, value node), last one per key winning, in first-set order (as a dict)."""
    entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in mapping.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key = str(loader.scalar_key(key_node))
        entries[key] = (key_node, value_node)
    for key, (key_node, value_node) in entries.items():
        yield key, key_node, value_node


def _key_index(mapping: yaml.MappingNode, key: str) -> int | None:
    """The position of ``key`` (text) in a mapping; the last one wins, as in PyYAML."""
    found = None
    for index, (key_node, _) in enumerate(mapping.value):
        if isinstance(key_node, yaml.ScalarNode):
            value = loader.scalar_key(key_node)
            if isinstance(value, str) and value == key:
                found = index
    return found


def _scalar_node(value: Any, mark: Any) -> yaml.Node:
    """A node for a value the campaign computes (a variable's value, a ratio), placed at ``mark``."""
    node = yaml.representer.SafeRepresenter().represent_data(value)
    stack = [node]
    while stack:
        current = stack.pop()
        current.start_mark = current.end_mark = mark
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            stack.extend(n for pair in current.value for n in pair)
    return node


def _put(overlay: _Overlay, mapping: yaml.MappingNode, key: str, value: yaml.Node, mark: Any) -> None:
    """Set ``key`` in a mapping this variant owns: replace its value, or add the key at ``mark``."""
    index = _key_index(mapping, key)
    if index is None:
        mapping.value.append((_scalar_node(key, mark), value))
    else:
        mapping.value[index] = (mapping.value[index][0], value)


def _merge(
    campaign: Campaign, source: YamlDocument, base: YamlDocument, vid: str, assignment: dict[str, str]
) -> tuple[Variant, list[Problem]]:
    """Apply each chosen value's overrides (matrix order), then the variant's own, over the base."""
    assert isinstance(base.root, yaml.MappingNode)
    overlay = _Overlay(base.root, source)
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    assert isinstance(overlay.root, yaml.MappingNode), "the base storyboard is a mapping (checked when it is read)"
    vars_node = _writable_mapping(overlay, overlay.root, "vars", source.root.start_mark if source.root else None)

    def apply(entries_path: Path_, under_vars: bool = False) -> None:
        entries = source.node_at(entries_path)
        if not isinstance(entries, yaml.MappingNode):
            return
        for key, key_node, value_node in _pairs(entries):
            keys = ["vars", key] if under_vars else key.split(".")
            where = source.location(key_node, entries_path + (key,))
            problem = _set(overlay, overlay.root, keys, value_node, where, key_node.start_mark, [])
            if problem:
                problems.append(problem)

    for variable, name in assignment.items():
        spec = campaign.matrix[variable][name]
        index = list(campaign.matrix[variable]).index(name)
        mark = _value_node(source, variable, name, index).start_mark
        value_path = _value_path(source, variable, name, index)
        value = spec.value if spec.value is not None else name
        values[variable] = value
        labels[variable] = spec.label or str(value)
        _put(overlay, vars_node, variable, _scalar_node(value, mark), mark)
        if variable == ASPECT_VARIABLE:
            _apply_aspect(overlay, str(value), mark)
        if spec.vars:
            apply(value_path + ("vars",), under_vars=True)
        if spec.set:
            apply(value_path + ("set",))

    override = campaign.variants.get(vid)
    label = " · ".join(labels.values())
    if override is not None:
        if override.vars:
            apply(("variants", vid, "vars"), under_vars=True)
        if override.set:
            apply(("variants", vid, "set"))
        label = override.label or label
    merged = YamlDocument.overlay(f"{source.file}#{vid}", overlay.root, list(base.problems))
    return Variant(vid, dict(assignment), values, labels, label, merged), problems


def _writable_mapping(overlay: _Overlay, parent: yaml.MappingNode, key: str, mark: Any) -> yaml.MappingNode:
    """``parent[key]`` as a mapping this variant owns; a missing or non-mapping value becomes ``{}``."""
    index = _key_index(parent, key)
    if index is not None:
        child = parent.value[index][1]
        if isinstance(child, yaml.MappingNode):
            owned = overlay.writable(parent, index, child)
            assert isinstance(owned, yaml.MappingNode)
            return owned
    created = overlay.new_mapping(mark)
    _put(overlay, parent, key, created, mark)
    return created


def _apply_aspect(overlay: _Overlay, ratio: str, mark: Any) -> None:
    """The aspect_ratio variable sets the default ratio and keeps only the outputs of that ratio.

    Why outputs too: a 9:16 variant is the vertical spot; cutting it again at 16:9 would duplicate
    its 16:9 sibling. A base output of the same ratio keeps its settings (height, reframe) and
    their positions in the base file; when none exists the first output is re-aimed at the ratio.
    """
    root = overlay.root
    assert isinstance(root, yaml.MappingNode), "the base storyboard is a mapping (checked when it is read)"
    defaults = _writable_mapping(overlay, root, "defaults", mark)
    _put(overlay, defaults, "aspect_ratio", _scalar_node(ratio, mark), mark)
    index = _key_index(root, "outputs")
    outputs = root.value[index][1] if index is not None else None
    if not isinstance(outputs, yaml.SequenceNode) or not outputs.value:
        return
    constructor = yaml.constructor.SafeConstructor()

    def ratio_of(item: yaml.Node) -> str:
        if not isinstance(item, yaml.MappingNode):
            return "16:9"
        at = _key_index(item, "aspect_ratio")
        return str(constructor.construct_object(item.value[at][1], deep=True)) if at is not None else "16:9"

    same = [item for item in outputs.value if ratio_of(item) == ratio]
    if not same:
        first = outputs.value[0]
        aimed = overlay.copy_of(first) if isinstance(first, yaml.MappingNode) else overlay.new_mapping(mark)
        assert isinstance(aimed, yaml.MappingNode)
        _put(overlay, aimed, "name", _scalar_node(slug(ratio), mark), mark)
        _put(overlay, aimed, "aspect_ratio", _scalar_node(ratio, mark), mark)
        same = [aimed]
    if len(same) != len(outputs.value) or any(a is not b for a, b in zip(same, outputs.value, strict=False)):
        kept = yaml.SequenceNode("tag:yaml.org,2002:seq", same, mark, mark)
        overlay.own(kept)
        root.value[index] = (root.value[index][0], kept)


def _set(
    overlay: _Overlay,
    container: yaml.Node,
    keys: list[str],
    value: yaml.Node,
    where: Location,
    mark: Any,
    path: list[Part],
) -> Problem | None:
    """Overlay one ``set`` entry: ``value`` (a campaign node) is grafted at the dotted ``keys``.

    Lists of mappings are addressed by their items' ``id`` (shots) or ``name`` (outputs), or by
    index; a mapping value merges into an existing mapping or list key by key, anything else
    replaces. ``container`` is always one this variant owns.
    """
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if not key:
            return Problem(where, f"the key {'.'.join(keys)!r} has an empty part: remove the extra '.'")
        if isinstance(container, yaml.SequenceNode):
            index = _list_index(container, key)
            if index is None:
                known = [k for k in (_item_name(item) for item in container.value) if k]
                return Problem(
                    where,
                    f"{dotted(path) or 'the storyboard'} has no item {key!r}{_closest(key, known)}"
                    + (f"; items: {', '.join(known[:20])}" if known else "; use an index 0.." + str(len(container.value) - 1)),
                )
            path.append(index)
            child = container.value[index]
            if last:
                return _assign(overlay, container, index, child, value, where, path)
            if isinstance(child, (yaml.MappingNode, yaml.SequenceNode)):
                container = overlay.writable(container, index, child)
            else:
                container = child
            continue
        if not isinstance(container, yaml.MappingNode):
            return Problem(where, f"cannot set {key!r} inside {dotted(path)}: it is not a mapping in the base storyboard")
        path.append(key)
        at = _key_index(container, key)
        child = container.value[at][1] if at is not None else None
        if last:
            if at is None:
                container.value.append((_scalar_node(key, mark), value))
                return None
            return _assign(overlay, container, at, child, value, where, path)
        if at is None or not isinstance(child, (yaml.MappingNode, yaml.SequenceNode)):
            created = overlay.new_mapping(mark)
            _put(overlay, container, key, created, mark)
            container = created
        else:
            container = overlay.writable(container, at, child)
    return None


def _assign(
    overlay: _Overlay, container: Container, at: int, existing: Any, value: yaml.Node, where: Location, path: list[Part]
) -> Problem | None:
    if isinstance(value, yaml.MappingNode) and isinstance(existing, (yaml.MappingNode, yaml.SequenceNode)):
        owned = overlay.writable(container, at, existing)
        for sub_key, sub_key_node, sub_value in _pairs(value):
            sub_where = overlay.source.location(sub_key_node, [*path, sub_key])
            problem = _set(overlay, owned, sub_key.split("."), sub_value, sub_where, sub_key_node.start_mark, list(path))
            if problem:
                return problem
        return None
    if isinstance(container, yaml.MappingNode):
        container.value[at] = (container.value[at][0], value)
    else:
        container.value[at] = value
    return None


def _item_name(item: yaml.Node) -> str | None:
    """A list item's ``id`` (shots) or ``name`` (outputs), as text."""
    if not isinstance(item, yaml.MappingNode):
        return None
    for key in ("id", "name"):
        at = _key_index(item, key)
        if at is not None and isinstance(item.value[at][1], yaml.ScalarNode):
            return str(loader.scalar_key(item.value[at][1]))
    return None


def _list_index(items: yaml.SequenceNode, key: str) -> int | None:
    for index, item in enumerate(items.value):
        if _item_name(item) == key:
            return index
    if re.fullmatch(r"-?\d+", key):
        index = int(key)
        if -len(items.value) <= index < len(items.value):
            return index % len(items.value)
    return None


# --------------------------------------------------------------------------------------------
# Loading variants (their problems are already located in the file to edit)
# --------------------------------------------------------------------------------------------


def variant_file(campaign: LoadedCampaign, variant: Variant) -> Path:
    """The name a variant's merged storyboard is validated under (it is never written)."""
    return campaign.folder / f"{campaign.file.name}#{variant.id}"


def load_variant(campaign: LoadedCampaign, variant: Variant) -> LoadedStoryboard:
    """Validate a variant like any storyboard; its problems are located in the campaign or the base file."""
    try:
        return loader.load_document(variant.source, variant_file(campaign, variant), campaign.project_dir)
    except StoryboardInvalid as error:
        raise StoryboardInvalid(locate_variant_problems(campaign, variant, error.problems)) from None


def locate_variant_problems(campaign: LoadedCampaign, variant: Variant, problems: list[Problem]) -> list[Problem]:
    """Problems found in a loaded variant, named after it.

    Their positions need no mapping: every node of the overlay carries the file and line that set it.
    """
    return [_tag(problem, variant) for problem in problems]


def _tag(problem: Problem, variant: Variant) -> Problem:
    return Problem(problem.location, f"{problem.message} [variant {variant.id}]", problem.severity)


def merge_variant_problems(problems: list[Problem]) -> list[Problem]:
    """One line per finding: the same problem in many variants is listed once with their ids."""
    grouped: dict[tuple[Location, str, str], list[str]] = {}
    for problem in problems:
        match = re.fullmatch(r"(.*) \[variant (\S+)(, at .*)?\]", problem.message, flags=re.S)
        if not match:
            grouped.setdefault((problem.location, problem.message, problem.severity), [])
            continue
        message, vid, at = match.groups()
        grouped.setdefault((problem.location, message + (at or ""), problem.severity), []).append(vid)
    merged = []
    for (location, message, severity), ids in grouped.items():
        if not ids:
            merged.append(Problem(location, message, severity))  # type: ignore[arg-type]
            continue
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        noun = "variant" if len(ids) == 1 else "variants"
        merged.append(Problem(location, f"{message} [{noun} {shown}]", severity))  # type: ignore[arg-type]
    return sorted(merged, key=lambda p: (p.location, p.message))
