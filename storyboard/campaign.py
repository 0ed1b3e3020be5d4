"""Campaigns: one storyboard, many variants, the fewest paid requests, one budget.

Why its own module: a campaign is a *generator* of storyboards. It owns the campaign file format
(``campaign.yaml``), its expansion into variants with stable ids, the merge of each variant's
overrides into the base storyboard document, and the sharing of identical requests across
variants. Everything after that (loading, planning, rendering, assembling) is the ordinary
pipeline, run per variant, so a variant behaves exactly like a storyboard a user wrote by hand.

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

Errors point where the user must edit: a problem in a value the campaign set is located at the
campaign file's line; a problem in what the variant inherited is located at the base storyboard's
line. Each variant is validated as merged YAML text through ``loader.load_text``; this module keeps
a map from every merged-document path the campaign touched to its campaign-file position, and maps
each problem's merged line back through it.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storyboard.errors import Location, Problem, StoryboardInvalid, UserError
from storyboard.load import loader
from storyboard.load.loader import LoadedStoryboard
from storyboard.load.spec import AspectRatio
from storyboard.plan import Plan, Request, planner

CAMPAIGN_FILE_NAMES = ("campaign.yaml", "campaign.yml")
ASPECT_VARIABLE = "aspect_ratio"
ASPECT_RATIOS: tuple[str, ...] = AspectRatio.__args__  # type: ignore[attr-defined]
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,31}$"

Part = str | int
Path_ = tuple[Part, ...]
Scalar = str | int | float | bool

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
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
# YAML positions (both directions: path -> line, line -> path)
# --------------------------------------------------------------------------------------------


class YamlPositions:
    """Line and column of every node of a YAML text, by document path, and back.

    Why both directions: a campaign problem is found by path (pydantic's ``loc``, an unknown
    value in an exclude) and must be shown at a line; a variant's problem is reported by the loader
    at a line of the merged text and must be traced back to the path that produced it.
    """

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.values: dict[Path_, tuple[int, int]] = {}
        self._by_line: dict[int, list[tuple[int, Path_]]] | None = None
        root = yaml.compose(text, Loader=_Loader)
        if root is not None:
            self._walk(root, (), set())

    def _walk(self, node: yaml.Node, path: Path_, seen: set[int]) -> None:
        self.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in seen:  # an alias pointing back up: stop
            return
        seen = seen | {id(node)}
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark.line)
                child = path + (key,)
                self.keys.setdefault(child, (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
                self._walk(value_node, child, seen)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, path + (index,), seen)

    def has(self, path: Path_) -> bool:
        return path in self.values

    def locate(self, path: Path_, *, dotted_path: str | None = None) -> Location:
        """The position of ``path``, or of its closest existing parent (for a missing key)."""
        shown = dotted(path) if dotted_path is None else dotted_path
        for length in range(len(path), -1, -1):
            prefix = tuple(path[:length])
            mark = self.keys.get(prefix) or self.values.get(prefix)
            if mark and (length or prefix in self.values):
                return Location(self.file, mark[0], mark[1], shown)
        return Location(self.file, 0, 0, shown)

    def path_at(self, line: int, col: int) -> Path_ | None:
        """The document path of the node written at ``line``:``col`` (or the deepest on that line)."""
        if self._by_line is None:
            self._by_line = {}
            for table in (self.keys, self.values):
                for path, (node_line, node_col) in table.items():
                    self._by_line.setdefault(node_line, []).append((node_col, path))
        for candidate_line in range(line, 0, -1):
            entries = self._by_line.get(candidate_line)
            if not entries:
                continue
            exact = [path for node_col, path in entries if node_col == col]
            if exact and candidate_line == line:
                return max(exact, key=len)
            return max((path for _, path in entries), key=len)
        return None


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


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    return Problem(Location(file, line, col), f"YAML syntax error: {error.problem or error}")


def _display(file: Path) -> str:
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def _closest(word: str, known: list[str]) -> str:
    match = difflib.get_close_matches(word, known, n=1)
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
    document: dict[str, Any]
    origins: dict[Path_, Location] = field(repr=False, compare=False)
    """Merged-document path -> campaign-file position of the value that set it."""

    @property
    def aspect_ratio(self) -> str:
        """The ratio this variant is cut for (its ``aspect_ratio`` value, else the base default)."""
        defaults = self.document.get("defaults")
        ratio = defaults.get("aspect_ratio") if isinstance(defaults, dict) else None
        return str(ratio or "16:9")

    def text(self) -> str:
        """The merged storyboard as YAML text, exactly what the loader validates."""
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
    positions: YamlPositions = field(repr=False, compare=False)
    base_positions: YamlPositions = field(repr=False, compare=False)

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
    candidate = Path(path).expanduser()
    if candidate.is_dir():
        for name in CAMPAIGN_FILE_NAMES:
            if (candidate / name).is_file():
                return (candidate / name).absolute()
        raise UserError(f"no campaign.yaml in {candidate}", "create campaign.yaml in that folder, or pass the campaign file itself")
    if candidate.is_file():
        return candidate.absolute()
    raise UserError(f"no such file or folder: {candidate}", "pass a campaign folder that holds campaign.yaml, or the file itself")


def load_campaign(path: Path | str) -> LoadedCampaign:
    """Read, validate and expand a campaign file; raise ``StoryboardInvalid`` with located problems."""
    file = find_campaign(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {_display(file)}: {error}", "save the campaign file as UTF-8 text") from None
    return load_campaign_text(text, file)


def load_campaign_text(text: str, file: Path | str) -> LoadedCampaign:
    """Validate campaign text as if read from ``file`` (the base storyboard is relative to it)."""
    file = Path(file).absolute()
    shown = _display(file)
    try:
        positions = YamlPositions(text, shown)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        raise StoryboardInvalid([_syntax_problem(shown, error)]) from None
    if not isinstance(data, dict):
        raise StoryboardInvalid([Problem(Location(shown, 1, 1), "a campaign file is a mapping with name, storyboard and matrix keys")])
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as error:
        raise StoryboardInvalid([_pydantic_problem(positions, item) for item in error.errors()]) from None

    storyboard_file = (file.parent / campaign.storyboard).absolute()
    _base_text, base_positions, base_document = _read_base(storyboard_file, positions)
    problems = _check_matrix(campaign, positions)
    if problems:
        raise StoryboardInvalid(problems)
    variants, problems = _expand(campaign, positions, base_document)
    if problems:
        raise StoryboardInvalid(problems)
    return LoadedCampaign(
        campaign=campaign,
        file=file,
        storyboard_file=storyboard_file,
        project_dir=storyboard_file.parent,
        variants=tuple(variants),
        positions=positions,
        base_positions=base_positions,
    )


def _pydantic_problem(positions: YamlPositions, error: dict[str, Any]) -> Problem:
    path = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    kind = error["type"]
    if kind == "extra_forbidden":
        known = {
            (): list(Campaign.model_fields),
        }
        parent = path[:-1]
        fields = known.get(parent)
        if fields is None and len(parent) == 3 and parent[0] == "matrix":
            fields = list(MatrixValue.model_fields)
        if fields is None and len(parent) == 2 and parent[0] == "variants":
            fields = list(VariantOverride.model_fields)
        message = f"unknown key {path[-1]!r}{_closest(str(path[-1]), fields or [])}"
        if fields:
            message += f"; allowed here: {', '.join(fields)}"
        return Problem(positions.locate(path), message)
    if kind == "missing":
        return Problem(positions.locate(path), f"missing required key {path[-1]!r}")
    message = error["msg"].removeprefix("Value error, ")
    return Problem(positions.locate(path), message)


def _read_base(storyboard_file: Path, positions: YamlPositions) -> tuple[str, YamlPositions, dict[str, Any]]:
    shown = _display(storyboard_file)
    if not storyboard_file.is_file():
        raise StoryboardInvalid(
            [Problem(positions.locate(("storyboard",)), f"the base storyboard {shown} does not exist: fix the path (relative to the campaign file)")]
        )
    try:
        text = storyboard_file.read_text(encoding="utf-8-sig")
        base_positions = YamlPositions(text, shown)
        document = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        raise StoryboardInvalid([_syntax_problem(shown, error)]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {shown}: {error}", "save the storyboard as UTF-8 text") from None
    if not isinstance(document, dict):
        raise StoryboardInvalid([Problem(Location(shown, 1, 1), "a storyboard is a mapping with name and shots keys")])
    return text, base_positions, document


def _check_matrix(campaign: Campaign, positions: YamlPositions) -> list[Problem]:
    """What the model cannot see: aspect ratios, slugs, and assignments naming real values."""
    problems: list[Problem] = []
    variables = list(campaign.matrix)
    for variable, values in campaign.matrix.items():
        seen: dict[str, str] = {}
        for index, (name, spec) in enumerate(values.items()):
            where = positions.locate(("matrix", variable, name)) if positions.has(("matrix", variable, name)) else positions.locate(("matrix", variable, index))
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
                problems.append(Problem(positions.locate((section, index)), f"an empty {section} entry matches every variant: give variable: value pairs"))
            for variable, value in assignment.items():
                where = positions.locate((section, index, variable))
                if variable not in campaign.matrix:
                    problems.append(Problem(where, f"{variable!r} is not a matrix variable{_closest(variable, variables)}; variables: {', '.join(variables)}"))
                    continue
                names = list(campaign.matrix[variable])
                if str(value) not in names:
                    extra = ' (quote ratios: unquoted, YAML reads 16:9 as the number 969)' if variable == ASPECT_VARIABLE and isinstance(value, int) else ""
                    problems.append(
                        Problem(where, f"{value!r} is not a value of {variable}{_closest(str(value), names)}; values: {', '.join(names)}{extra}")
                    )
    return problems


def _ratio_of(name: str, spec: MatrixValue) -> str:
    return str(spec.value) if spec.value is not None else name


def _matches(assignment: dict[str, str], pattern: dict[str, Scalar]) -> bool:
    return all(assignment.get(variable) == str(value) for variable, value in pattern.items())


def _expand(campaign: Campaign, positions: YamlPositions, base: dict[str, Any]) -> tuple[list[Variant], list[Problem]]:
    """The cartesian product minus the excludes plus the includes, in matrix order, merged."""
    variables = list(campaign.matrix)
    assignments = []
    for names in itertools.product(*(list(campaign.matrix[v]) for v in variables)):
        assignment = dict(zip(variables, names))
        excluded = any(_matches(assignment, pattern) for pattern in campaign.exclude)
        included = any(_matches(assignment, pattern) for pattern in campaign.include)
        if included or not excluded:
            assignments.append(assignment)

    problems: list[Problem] = []
    if not assignments:
        problems.append(Problem(positions.locate(("exclude",)), "the excludes remove every variant: nothing is left to render"))
    by_id: dict[str, dict[str, str]] = {}
    for assignment in assignments:
        by_id[variant_id(assignment)] = assignment
    for override_id in campaign.variants:
        if override_id not in by_id:
            problems.append(
                Problem(
                    positions.locate(("variants", override_id)),
                    f"no variant {override_id!r} in the matrix{_closest(override_id, list(by_id))}; "
                    "variant ids are the value names in matrix order, e.g. " + next(iter(by_id), "?"),
                )
            )
    if problems:
        return [], problems

    variants = []
    for vid, assignment in by_id.items():
        variant, merge_problems = _merge(campaign, positions, base, vid, assignment)
        problems.extend(p for p in merge_problems if p not in problems)
        variants.append(variant)
    return variants, problems


def _merge(
    campaign: Campaign, positions: YamlPositions, base: dict[str, Any], vid: str, assignment: dict[str, str]
) -> tuple[Variant, list[Problem]]:
    """Apply each chosen value's overrides (matrix order), then the variant's own, to a copy of the base."""
    document = copy.deepcopy(base)
    origins: dict[Path_, Location] = {}
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    if not isinstance(document.get("vars"), dict):
        document["vars"] = {}

    def apply(entries: dict[str, Any], where: Path_, under_vars: bool = False) -> None:
        for key, value in entries.items():
            keys = ["vars", str(key)] if under_vars else str(key).split(".")
            problem = _set(document, keys, value, where + (key,), positions, origins)
            if problem:
                problems.append(problem)

    for variable, name in assignment.items():
        spec = campaign.matrix[variable][name]
        value_path = ("matrix", variable, name) if positions.has(("matrix", variable, name)) else ("matrix", variable, list(campaign.matrix[variable]).index(name))
        value = spec.value if spec.value is not None else name
        values[variable] = value
        labels[variable] = spec.label or str(value)
        document["vars"][variable] = value
        origins[("vars", variable)] = positions.locate(value_path)
        if variable == ASPECT_VARIABLE:
            _apply_aspect(document, str(value), positions.locate(value_path), origins)
        if spec.vars:
            apply(spec.vars, value_path + ("vars",), under_vars=True)
        if spec.set:
            apply(spec.set, value_path + ("set",))

    override = campaign.variants.get(vid)
    label = " · ".join(labels.values())
    if override is not None:
        if override.vars:
            apply(override.vars, ("variants", vid, "vars"), under_vars=True)
        if override.set:
            apply(override.set, ("variants", vid, "set"))
        label = override.label or label
    return Variant(vid, dict(assignment), values, labels, label, document, origins), problems


def _apply_aspect(document: dict[str, Any], ratio: str, where: Location, origins: dict[Path_, Location]) -> None:
    """The aspect_ratio variable sets the default ratio and keeps only the outputs of that ratio.

    Why outputs too: a 9:16 variant is the vertical spot; cutting it again at 16:9 would duplicate
    its 16:9 sibling. A base output of the same ratio keeps its settings (height, reframe); when
    none exists the first output is re-aimed at the ratio.
    """
    defaults = document.get("defaults")
    if not isinstance(defaults, dict):
        defaults = document["defaults"] = {}
    defaults["aspect_ratio"] = ratio
    origins[("defaults", "aspect_ratio")] = where
    outputs = document.get("outputs")
    if isinstance(outputs, list) and outputs:
        same = [o for o in outputs if isinstance(o, dict) and str(o.get("aspect_ratio", "16:9")) == ratio]
        if not same:
            first = dict(outputs[0]) if isinstance(outputs[0], dict) else {}
            same = [{**first, "name": slug(ratio), "aspect_ratio": ratio}]
        if same != outputs:
            document["outputs"] = same
            origins[("outputs",)] = where


def _set(
    document: dict[str, Any],
    keys: list[str],
    value: Any,
    source: Path_,
    positions: YamlPositions,
    origins: dict[Path_, Location],
    at: Path_ = (),
) -> Problem | None:
    """Deep-merge one ``set`` entry into the document; record where each leaf came from.

    Lists of mappings are addressed by their items' ``id`` (shots) or ``name`` (outputs), or by
    index; a mapping value merges into an existing mapping key by key, anything else replaces.
    """
    where = positions.locate(source)
    container: Any = document
    path: list[Part] = list(at)
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if not key:
            return Problem(where, f"the key {'.'.join(keys)!r} has an empty part: remove the extra '.'")
        if isinstance(container, list):
            index = _list_index(container, key)
            if index is None:
                known = [str(item.get("id") or item.get("name")) for item in container if isinstance(item, dict) and (item.get("id") or item.get("name"))]
                return Problem(
                    where,
                    f"{dotted(path) or 'the storyboard'} has no item {key!r}{_closest(key, known)}"
                    + (f"; items: {', '.join(known)}" if known else "; use an index 0.." + str(len(container) - 1)),
                )
            path.append(index)
            if last:
                return _assign(container, index, value, path, source, positions, origins)
            else:
                container = container[index]
            continue
        if not isinstance(container, dict):
            return Problem(where, f"cannot set {key!r} inside {dotted(path)}: it is not a mapping in the base storyboard")
        path.append(key)
        if last:
            return _assign(container, key, value, path, source, positions, origins)
        else:
            if not isinstance(container.get(key), (dict, list)):
                container[key] = {}
                origins[tuple(path)] = where
            container = container[key]
    return None


def _assign(
    container: Any, key: Part, value: Any, path: list[Part], source: Path_, positions: YamlPositions, origins: dict[Path_, Location]
) -> Problem | None:
    existing = container[key] if (isinstance(container, list) or key in container) else None
    if isinstance(value, dict) and isinstance(existing, (dict, list)):
        for sub_key, sub_value in value.items():
            problem = _set(existing, str(sub_key).split("."), sub_value, source + (sub_key,), positions, origins, tuple(path))
            if problem:
                return problem
        return None
    container[key] = copy.deepcopy(value)
    _record(value, tuple(path), source, positions, origins)
    return None


def _record(value: Any, path: Path_, source: Path_, positions: YamlPositions, origins: dict[Path_, Location]) -> None:
    """Remember the campaign position of a value the campaign wrote, and of everything inside it."""
    origins[path] = positions.locate(source)
    if isinstance(value, dict):
        for key, item in value.items():
            _record(item, path + (str(key),), source + (str(key),), positions, origins)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _record(item, path + (index,), source + (index,), positions, origins)


def _list_index(items: list[Any], key: str) -> int | None:
    for index, item in enumerate(items):
        if isinstance(item, dict) and (str(item.get("id")) == key or str(item.get("name")) == key):
            return index
    if re.fullmatch(r"-?\d+", key):
        index = int(key)
        if -len(items) <= index < len(items):
            return index % len(items)
    return None


# --------------------------------------------------------------------------------------------
# Validating and planning variants (problems mapped back to the file the user must edit)
# --------------------------------------------------------------------------------------------


def variant_file(campaign: LoadedCampaign, variant: Variant) -> Path:
    """The name a variant's merged storyboard is validated under (it is never written)."""
    return campaign.folder / f"{campaign.file.name}#{variant.id}"


def load_variant(campaign: LoadedCampaign, variant: Variant) -> LoadedStoryboard:
    """Validate a variant like any storyboard; its problems are located in the campaign or the base file."""
    text = variant.text()
    file = variant_file(campaign, variant)
    try:
        return loader.load_text(text, file, campaign.project_dir)
    except StoryboardInvalid as error:
        raise StoryboardInvalid(_remap(campaign, variant, text, error.problems)) from None


def locate_variant_problems(campaign: LoadedCampaign, variant: Variant, problems: list[Problem]) -> list[Problem]:
    """Problems the planner found in a loaded variant, located in the campaign or the base file."""
    return _remap(campaign, variant, variant.text(), problems)


def _remap(campaign: LoadedCampaign, variant: Variant, text: str, problems: list[Problem]) -> list[Problem]:
    """Point each problem of the merged text at the line the user wrote.

    The problem's merged line gives the merged-document path (by composing the merged text); the
    deepest ancestor the campaign set wins, else the deepest ancestor present in the base file.
    """
    merged_name = f"{campaign.file.name}#{variant.id}"
    merged: YamlPositions | None = None
    remapped = []
    for problem in problems:
        location = problem.location
        if not location.file.endswith(merged_name):
            remapped.append(_tag(problem, location, variant))
            continue
        if merged is None:
            merged = YamlPositions(text, location.file)
        path = merged.path_at(location.line, location.col) if location.line else None
        remapped.append(_tag(problem, _origin(campaign, variant, path, location), variant))
    return remapped


def _origin(campaign: LoadedCampaign, variant: Variant, path: Path_ | None, location: Location) -> Location:
    storyboard_path = location.path
    if path is None:
        return Location(_display(campaign.storyboard_file), 0, 0, storyboard_path)
    for length in range(len(path), -1, -1):
        prefix = tuple(path[:length])
        if prefix in variant.origins:
            origin = variant.origins[prefix]
            return Location(origin.file, origin.line, origin.col, origin.path)
        if length and campaign.base_positions.has(prefix):
            found = campaign.base_positions.locate(prefix)
            return Location(found.file, found.line, found.col, storyboard_path or found.path)
    return campaign.base_positions.locate((), dotted_path=storyboard_path)


def _tag(problem: Problem, location: Location, variant: Variant) -> Problem:
    """The same finding, relocated, naming the variant (and the storyboard path when relocated)."""
    where = ""
    if problem.location.path and problem.location.path != location.path:
        where = f", at {problem.location.path}"
    return Problem(location, f"{problem.message} [variant {variant.id}{where}]", problem.severity)


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


@dataclass(frozen=True)
class VariantPlan:
    """A variant validated and planned, or the reason it could not be."""

    variant: Variant
    loaded: LoadedStoryboard | None
    plan: Plan | None
    problems: tuple[Problem, ...] = ()
    """Errors (when the variant is invalid) and advisories, located in the file to edit."""
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.plan is not None


@dataclass(frozen=True)
class RequestUse:
    """One request as one variant uses it: who pays for it, and how this variant gets its video."""

    variant_id: str
    request: Request
    owner: str
    """The first variant (in campaign order) that needs this request: it is rendered for that one."""
    reframed_from: str | None = None
    """The ratio of the video when this variant's output differs (its shots are reframed)."""

    @property
    def shared(self) -> bool:
        return self.owner != self.variant_id

    def note(self) -> str:
        bits = []
        if self.shared:
            bits.append(f"reuses {self.owner}'s video")
        if self.reframed_from:
            reason = (
                "image-to-video follows its start frame's ratio"
                if self.request.family in ("image2video", "motion-control") or _has_first_frame(self.request)
                else "the model renders one ratio"
            )
            bits.append(f"reframed from the {self.reframed_from} video ({reason})")
        return "; ".join(bits)


def _has_first_frame(request: Request) -> bool:
    if request.family == "image2video":
        return True
    return any(isinstance(item, dict) and item.get("type") == "first_frame" for item in request.body.get("image_list") or [])


@dataclass(frozen=True)
class CampaignPlan:
    """Every variant's plan, and the distinct requests the whole campaign pays for once."""

    campaign: LoadedCampaign
    variants: tuple[VariantPlan, ...]
    uses: dict[str, tuple[RequestUse, ...]]
    """Variant id -> its requests, with sharing."""
    distinct: tuple[RequestUse, ...]
    """The requests to render, each once, in variant order (the first variant's all come first)."""

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.variants)

    @property
    def failed(self) -> list[VariantPlan]:
        return [v for v in self.variants if not v.ok]

    def variant_plan(self, variant_id: str) -> VariantPlan:
        for item in self.variants:
            if item.variant.id == variant_id:
                return item
        raise KeyError(variant_id)

    def cost(self, variant_id: str | None = None) -> dict[str, float]:
        """Units and dollars before sharing (as if planned alone) and after (what it adds to the campaign)."""
        uses = self.uses.get(variant_id, ()) if variant_id else [u for us in self.uses.values() for u in us]
        before_units = sum(u.request.units for u in uses)
        before_usd = sum(u.request.usd for u in uses)
        after_units = sum(u.request.units for u in uses if not u.shared)
        after_usd = sum(u.request.usd for u in uses if not u.shared)
        return {
            "units_before": round(before_units, 4),
            "usd_before": round(before_usd, 4),
            "units_after": round(after_units, 4),
            "usd_after": round(after_usd, 4),
        }

    def combined_plan(self) -> Plan:
        """One plan of the distinct requests, ordered by variant, for the engine (one budget, one journal).

        Request ids become ``<variant-id>/<request id>`` so progress and journal lines say which
        spot a request belongs to.
        """
        requests = [use.request.model_copy(update={"id": f"{use.owner}/{use.request.id}"}) for use in self.distinct]
        units = round(sum(r.units for r in requests), 4)
        usd = round(sum(r.usd for r in requests), 4)
        shared = sum(1 for uses in self.uses.values() for u in uses if u.shared)
        notes = [f"{len(self.variants)} variants, {len(requests)} distinct requests ({shared} uses shared)"]
        return Plan(
            project=self.campaign.campaign.name,
            storyboard=str(self.campaign.file),
            requests=requests,
            units=units,
            usd=usd,
            notes=notes,
        )

    def variants_using(self, key: str) -> list[str]:
        return [vid for vid, uses in self.uses.items() if any(u.request.key == key for u in uses)]

    def to_json(self) -> dict[str, Any]:
        """The same data as the human view, for scripts: variants, requests, sharing, costs."""
        variants = []
        for item in self.variants:
            entry: dict[str, Any] = {
                "id": item.variant.id,
                "label": item.variant.label,
                "assignment": item.variant.assignment,
                "aspect_ratio": item.variant.aspect_ratio,
                "ok": item.ok,
                "problems": [str(p) for p in item.problems],
                "failure": item.failure,
            }
            if item.ok:
                entry["requests"] = [
                    {
                        "id": use.request.id,
                        "key": use.request.key,
                        "shots": [piece.shot_id for piece in use.request.shots],
                        "family": use.request.family,
                        "aspect_ratio": use.request.aspect_ratio,
                        "duration": use.request.duration,
                        "units": use.request.units,
                        "usd": use.request.usd,
                        "owner": use.owner,
                        "shared": use.shared,
                        "reframed_from": use.reframed_from,
                        "note": use.note(),
                    }
                    for use in self.uses[item.variant.id]
                ]
                entry["cost"] = self.cost(item.variant.id)
            variants.append(entry)
        combined = self.combined_plan()
        total_uses = sum(len(u) for u in self.uses.values())
        return {
            "campaign": self.campaign.campaign.name,
            "file": str(self.campaign.file),
            "storyboard": str(self.campaign.storyboard_file),
            "variables": {name: list(values) for name, values in self.campaign.campaign.matrix.items()},
            "variants": variants,
            "requests": {
                "uses": total_uses,
                "distinct": len(self.distinct),
                "shared": total_uses - len(self.distinct),
            },
            "cost": self.cost(),
            "plan": planner.plan_to_json(combined),
        }


def plan_variant(campaign: LoadedCampaign, variant: Variant) -> VariantPlan:
    """Load, check and plan one variant; an invalid variant is returned with its problems, not raised."""
    try:
        loaded = load_variant(campaign, variant)
    except StoryboardInvalid as error:
        return VariantPlan(variant, None, None, tuple(error.problems), _first_error(error.problems))
    except UserError as error:
        return VariantPlan(variant, None, None, (), str(error))
    # planner.plan runs every Kling and template check and raises with all of them: calling
    # planner.check first would compile the templates twice per variant (the cost that dominates
    # planning a large campaign, see benchmarks/campaign.py).
    try:
        the_plan = planner.plan(loaded)
    except StoryboardInvalid as error:
        located = tuple(locate_variant_problems(campaign, variant, list(loaded.advisories) + list(error.problems)))
        return VariantPlan(variant, loaded, None, located, _first_error(located))
    except UserError as error:
        return VariantPlan(variant, loaded, None, (), str(error))
    advisories = tuple(locate_variant_problems(campaign, variant, list(loaded.advisories)))
    return VariantPlan(variant, loaded, the_plan, advisories)


def _first_error(problems: tuple[Problem, ...] | list[Problem]) -> str:
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        return "invalid"
    return str(errors[0]) + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def plan_campaign(campaign: LoadedCampaign, only: list[str] | None = None) -> CampaignPlan:
    """Plan every variant (or the ``only`` ones) and share identical requests across them.

    Two requests with the same content key are the same paid call, whatever variant asks for it:
    a language variant that changes only captions reuses its sibling's video, and an aspect-ratio
    variant whose requests start from an image (image-to-video follows the image's ratio) gets the
    same keys, so its shots are reframed from the sibling's video. A text-to-video or omni request
    without a first frame carries ``aspect_ratio`` in its body, so it gets its own key and is
    rendered natively at that ratio.
    """
    chosen = [campaign.variant(vid) for vid in only] if only else list(campaign.variants)
    variant_plans = tuple(plan_variant(campaign, variant) for variant in chosen)
    owners: dict[str, str] = {}
    uses: dict[str, tuple[RequestUse, ...]] = {}
    distinct: list[RequestUse] = []
    rendered: set[str] = set()
    for item in variant_plans:
        if item.plan is None:
            continue
        vid = item.variant.id
        ratio = item.variant.aspect_ratio
        outputs = item.loaded.storyboard.outputs if item.loaded else []
        wanted = {o.aspect_ratio for o in outputs} or {ratio}
        mine = []
        for request in item.plan.requests:
            owner = owners.setdefault(request.key, vid)
            reframed = request.aspect_ratio if request.aspect_ratio not in wanted else None
            use = RequestUse(vid, request, owner, reframed)
            mine.append(use)
            if owner == vid and request.key not in rendered:
                rendered.add(request.key)
                distinct.append(use)
        uses[vid] = tuple(mine)
    return CampaignPlan(campaign, variant_plans, uses, tuple(distinct))
