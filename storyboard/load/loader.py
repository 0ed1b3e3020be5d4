"""The loader: storyboard.yaml text -> a validated ``Storyboard``, every problem at file:line:col.

Why its own module: the YAML format (``spec.py``) knows nothing of files or positions, and the
planner knows Kling's rules; between them someone has to turn text into the model and say, for
every mistake, *where* it is and what to do about it, in one pass. That is this module:

1. parse with PyYAML's composer, keeping the node graph (each node carries its start mark), and
   find what PyYAML would silently accept (duplicate keys) on that graph;
2. validate with pydantic, then translate each error: walk its ``loc`` down the node graph to a
   line and column, and rewrite pydantic's wording for people who write YAML;
3. check what pydantic cannot: unique shot ids, links between ids, and the images and audio the
   storyboard names (exist, readable, JPG/PNG, Kling's size and aspect-ratio rules).

The result keeps the node graph so later stages (the planner's Kling checks) can ``locate`` any
node of the file, present or absent, with the same positions.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import math
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError

from storyboard.errors import Location, Problem, StoryboardInvalid, UserError
from storyboard.load.spec import (
    PREVIOUS_FRAME,
    AudioBed,
    Card,
    CutShot,
    Group,
    Output,
    Reference,
    Shot,
    Storyboard,
)
from storyboard.workspace import Workspace

STORYBOARD_FILE_NAMES = ("storyboard.yaml", "storyboard.yml")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".avif")
"""Extensions that make a start/end frame value a path rather than a reference id."""

KLING_IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG"})
"""Pillow format names Kling accepts (MPO is the JPEG variant many phones write)."""

MAX_IMAGE_BYTES = 10_000_000
"""Kling's "10 MB", read as decimal megabytes: the stricter reading, so nothing we accept is refused."""

MIN_IMAGE_SIDE = 300
MAX_IMAGE_RATIO = 2.5
RECOMMENDED_SIDE = 1024
LOW_SIDE = 768

SUGGESTION_CUTOFF = 0.75
"""difflib similarity above which "did you mean" names a candidate: 'pur' -> 'pour', not 'outro' -> 'pour'."""

Part = str | int

MAX_SOURCE_BYTES = 2 * 1024 * 1024
"""The largest storyboard or campaign file read (2 MiB): a hand-written board is a few KB; anything
near this is generated or damaged, and refusing it at once beats parsing it for seconds."""

_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""libyaml's loader when PyYAML was built with it (the wheels are): same nodes, same marks."""


_PURE_ONLY = re.compile("[\ufeff\x85\u2028\u2029]")
"""Characters libyaml reads differently from PyYAML (a BOM inside the text, the Unicode line breaks
it may count apart): a text holding one is parsed by PyYAML alone, so its positions never differ."""


class _NamedText(io.StringIO):
    """Text with a ``name``: libyaml's parser takes a stream's name for every mark it makes."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def _too_large_problem(file: str, size: int) -> Problem:
    return Problem(
        Location(file, 1, 1),
        f"the file is {size / 1024 / 1024:.1f} MiB: storyboard and campaign files are limited to "
        f"{MAX_SOURCE_BYTES // 1024 // 1024} MiB; split it or remove what was pasted in by mistake",
    )


def regular_file_size(path: Path, shown: str, what: str = "file") -> int:
    """The size of ``path`` if it is a regular file (symlinks followed); else a ``UserError`` saying why.

    Why before every read: a FIFO blocks ``open`` forever and a symlink to ``/dev/zero`` reads until
    memory runs out; ``os.stat`` answers at once for both, and for a name the OS refuses (too long,
    a NUL byte) without opening anything.
    """
    try:
        facts = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"no such {what}: {shown}", "check the path") from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise UserError(f"cannot use {shown} as a {what}: {reason}", "check the path (its length, its characters)") from None
    if stat.S_ISDIR(facts.st_mode):
        raise UserError(f"{shown} is a folder, not a {what}", "name the file itself")
    if not stat.S_ISREG(facts.st_mode):
        raise UserError(
            f"{shown} is not a regular file (a device, a pipe or a socket)",
            f"name an ordinary {what}; a symlink must point at one",
        )
    return facts.st_size


def read_regular_file(path: Path, shown: str, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ``UserError`` otherwise, at once.

    Opened non-blocking (a file swapped for a FIFO after the check cannot hang the open), checked
    again on the open descriptor, and read to at most ``limit + 1`` bytes (a file that grows past
    its stat size cannot be read without end).
    """
    size = regular_file_size(path, shown, what)
    if size > limit:
        raise UserError(f"{shown} is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit for a {what}", "use a smaller file")
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise UserError(f"cannot read {shown}: {error.strerror or error}", "check the file's permissions") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UserError(f"{shown} is not a regular file (a device, a pipe or a socket)", f"name an ordinary {what}")
        try:
            content = handle.read(limit + 1)
        except OSError as error:
            raise UserError(f"cannot read {shown}: {error.strerror or error}", "check the file") from None
    if len(content) > limit:
        raise UserError(f"{shown} is over the {limit / 1e6:.1f} MB limit for a {what}", "use a smaller file")
    return content


def read_source(file: Path, shown: str, what: str = "storyboard") -> str:
    """A storyboard or campaign file as text: a regular file, at most ``MAX_SOURCE_BYTES``, UTF-8.

    Every fault is a ``UserError`` (a ``StoryboardInvalid`` located at the byte for bad UTF-8 or
    at line 1 for a file too large), never an ``OSError`` or a hang.
    """
    size = regular_file_size(file, shown, f"{what} file")
    if size > MAX_SOURCE_BYTES:
        raise StoryboardInvalid([_too_large_problem(shown, size)])
    raw = read_regular_file(file, shown, MAX_SOURCE_BYTES, f"{what} file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        col = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise StoryboardInvalid(
            [Problem(Location(shown, line, col), f"the file is not UTF-8 text (byte 0x{raw[error.start]:02x}): save it as UTF-8")]
        ) from None


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedStoryboard:
    """A validated storyboard with where it came from, so later stages can point into the file."""

    storyboard: Storyboard
    file: Path
    project_dir: Path
    advisories: tuple[Problem, ...] = ()
    _document: YamlDocument | None = field(default=None, repr=False, compare=False)
    _digests: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _shot_indices: tuple[int, ...] | None = field(default=None, repr=False, compare=False)
    """For a partial storyboard (broken shots left out): each shot's index in the file."""

    def locate(self, *path: Part) -> Location:
        """Location of a node by its model path, e.g. ``locate("shots", 2, "duration")``.

        A node that is absent (missing or defaulted key) gets the position of its closest
        existing parent, with the full dotted path, so a message can still say what to add where.
        """
        if self._shot_indices is not None and len(path) > 1 and path[0] == "shots" and isinstance(path[1], int):
            path = ("shots", self._shot_indices[path[1]], *path[2:])
        if self._document is None:
            return Location(_display_name(self.file), 0, 0, _dotted(path))
        return self._document.locate(path)

    def resolve_path(self, relative: str) -> Path:
        """A project-relative path (as written in the storyboard) as an absolute path."""
        return self.project_dir / relative

    def image_digest(self, relative: str) -> str:
        """sha256 hex of the file's bytes: the content key of an image (cached, hashed once)."""
        absolute = str(self.resolve_path(relative))
        digest = self._digests.get(absolute)
        if digest is None:
            try:
                content = read_regular_file(Path(absolute), shown_path(relative), MAX_IMAGE_BYTES, "image")
            except UserError as error:
                raise UserError(
                    f"cannot read image {shown_path(relative)}: {error.message}",
                    "check that the file still exists, is an ordinary file and is readable, then run again",
                ) from None
            digest = hashlib.sha256(content).hexdigest()
            self._digests[absolute] = digest
        return digest


def find_file(path: Path | str, names: tuple[str, ...], what: str) -> Path:
    """The ``what`` file of a folder (the first of ``names`` in it), or the file itself.

    Never raises an ``OSError``: a name the OS refuses (too long, a NUL byte), a FIFO or a device
    is a ``UserError`` that says which path and why.
    """
    candidate = Path(path).expanduser()
    shown = shown_path(str(candidate))
    kind = _kind_of(candidate, shown)
    if kind == "folder":
        for name in names:
            if _kind_of(candidate / name, shown) == "file":
                return (candidate / name).absolute()
        raise UserError(f"no {names[0]} in {shown}", f"create {names[0]} in that folder, or pass the {what} file itself")
    if kind == "file":
        return candidate.absolute()
    if kind == "other":
        raise UserError(f"{shown} is not a regular file (a device, a pipe or a socket)", f"pass a folder that holds {names[0]}, or the file itself")
    raise UserError(f"no such file or folder: {shown}", f"pass a folder that holds {names[0]}, or the {what} file itself")


def _kind_of(path: Path, shown: str) -> Literal["file", "folder", "other"] | None:
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise UserError(f"cannot use {shown}: {reason}", "check the path (its length, its characters)") from None
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "other"


def find_storyboard(path: Path | str) -> Path:
    """The storyboard file of a project folder (its storyboard.yaml), or the file itself."""
    return find_file(path, STORYBOARD_FILE_NAMES, "storyboard")


def load(path: Path | str) -> LoadedStoryboard:
    """Load and validate a storyboard; raise ``StoryboardInvalid`` listing every problem found."""
    file = find_storyboard(path)
    text = read_source(file, _display_name(file))
    return load_text(text, file, file.parent)


def load_text(text: str, file: Path, project_dir: Path) -> LoadedStoryboard:
    """Validate storyboard text as if read from ``file``; image paths are relative to ``project_dir``."""
    return load_document(YamlDocument.parse(text, _display_name(Path(file).absolute())), file, project_dir)


def load_document(document: YamlDocument, file: Path, project_dir: Path) -> LoadedStoryboard:
    """Validate a parsed (or overlaid) document; every problem is located where its node was written.

    ``file`` names the storyboard for later stages (the journal, messages without a node); the
    document is not changed.
    """
    file = Path(file).absolute()
    project_dir = Path(project_dir).absolute()
    problems = list(document.problems)
    if not isinstance(document.data, dict):
        if document.root is not None or not problems:
            problems.extend(document.top_level_problems())
        raise StoryboardInvalid(problems)

    storyboard: Storyboard | None = None
    try:
        storyboard = Storyboard.model_validate(document.data)
    except ValidationError as error:
        problems.extend(_translate(document, dict(item)) for item in error.errors())

    files = _FileChecks(project_dir)
    parts = _Parts.of(storyboard, document.data)
    problems.extend(_check_ids(document, parts))
    problems.extend(_check_files(document, parts, files))
    problems.extend(_video_reference_uses(document, parts))

    errors = [p for p in problems if p.severity == "error"]
    if errors or storyboard is None:
        partial = _partial(document, errors, file, project_dir, files)
        raise StoryboardInvalid(problems, partial=partial)
    return LoadedStoryboard(
        storyboard=storyboard,
        file=file,
        project_dir=project_dir,
        advisories=tuple(sorted(problems, key=lambda p: (p.location, p.message))),
        _document=document,
        _digests=dict(files.digests),
    )


# --------------------------------------------------------------------------------------------
# The partial storyboard: what is left once the broken parts are set aside
# --------------------------------------------------------------------------------------------

_PROBLEM_PATH = re.compile(r"^(?P<top>[A-Za-z_]+)(?:\[(?P<index>\d+)\]|\.(?P<key>[^.\[]+))?")


def _partial(
    document: YamlDocument, errors: list[Problem], file: Path, project_dir: Path, files: _FileChecks
) -> LoadedStoryboard | None:
    """The storyboard without its broken parts, for the model and template checks.

    Why: "every problem in one run". A typo in shot 2 must not hide that shot 5 asks for sound on
    a model without it. Broken shots and references are left out whole (a half-checked shot would
    give misleading findings), as are shots chained to a left-out shot; broken defaults keys fall
    back to their defaults; groups, cut and outputs go when they are broken or name a left-out
    shot. None when the remains do not validate or nothing is left: then only the structural
    problems are reported.
    """
    import copy

    data = copy.deepcopy(document.data)
    if not isinstance(data, dict) or not isinstance(data.get("shots"), list):
        return None
    raw_shots = data["shots"]
    bad_shots: set[int] = set()
    bad_references: set[str] = set()
    for problem in errors:
        match = _PROBLEM_PATH.match(problem.location.path or "")
        if not match:
            return None  # a file-level problem (YAML syntax...): nothing to salvage
        top, index, key = match["top"], match["index"], match["key"]
        if top == "shots" and index is not None:
            bad_shots.add(int(index))
        elif top == "references" and key is not None:
            bad_references.add(key)
        elif top == "defaults" and key is not None and isinstance(data.get("defaults"), dict):
            data["defaults"].pop(key, None)
        elif top in ("shots", "references", "vars"):
            return None  # the list, the mapping or the template values themselves are broken
        else:
            data.pop(top, None)  # defaults, groups, cut, outputs, name, version, unknown keys
    if isinstance(data.get("references"), dict):
        for name in bad_references:
            data["references"].pop(name, None)
        known = set(data["references"])
    else:
        known = set()
    kept: list[int] = []
    for index, raw in enumerate(raw_shots):
        chained = isinstance(raw, dict) and raw.get("start_frame") == PREVIOUS_FRAME
        if index in bad_shots or not isinstance(raw, dict) or (chained and (not kept or kept[-1] != index - 1)):
            continue
        if any(isinstance(ref, str) and ref in bad_references for ref in _list(raw.get("references"))):
            continue
        if any(raw.get(name) in bad_references for name in ("start_frame", "end_frame")):
            continue
        kept.append(index)
    if not kept:
        return None
    data["shots"] = [raw_shots[i] for i in kept]
    kept_ids = {raw_shots[i].get("id") for i in kept}
    if isinstance(data.get("groups"), list):
        members = lambda group: _list(group.get("shots") if isinstance(group, dict) else group)  # noqa: E731
        data["groups"] = [g for g in data["groups"] if all(s in kept_ids for s in members(g))]
    if len(kept) < len(raw_shots):
        data.pop("cut", None)
    try:
        storyboard = Storyboard.model_validate(data)
    except ValidationError:
        return None
    if any(ref not in known for shot in storyboard.shots for ref in shot.references):
        return None
    return LoadedStoryboard(
        storyboard=storyboard,
        file=file,
        project_dir=project_dir,
        _document=document,
        _digests=dict(files.digests),
        _shot_indices=tuple(kept),
    )


# --------------------------------------------------------------------------------------------
# YAML: parsing, node marks, duplicate keys
# --------------------------------------------------------------------------------------------

_SYNTAX_HINTS = (
    ("mapping values are not allowed here", "a value that contains ': ' must be put in quotes, or the indentation is off"),
    ("that cannot start any token", "YAML indents with spaces only (no tabs), and '@' or '`' cannot start a value: quote it"),
    ("could not find expected ':'", "each line of a mapping needs 'key: value': look for a missing ':' or an unclosed quote"),
    ("did not find expected key", "the indentation of this line does not match the lines above it"),
    ("did not find expected '-' indicator", "the items of a list must all start with '- ' at the same indentation"),
    ("found unexpected end of stream", "a quote or bracket opened earlier is never closed"),
    ("'<stream end>'", "the file ends too early: a bracket or quote opened earlier is never closed"),
    ("expected a single document", "a storyboard is one YAML document: remove the '---' separator"),
    ("found undefined alias", "define the anchor (&name) before using the alias (*name)"),
    ("unhashable key", "keys must be plain words, not lists or mappings"),
    ("could not determine a constructor", "remove the '!' tag: a storyboard uses plain YAML values only"),
    ("special characters are not allowed", "remove the invisible control character from the file"),
)


class YamlDocument:
    """One parsed YAML file (or an overlay of several): values, and where each value was written.

    Why one type for the storyboard and the campaign: positions come from the node graph PyYAML
    composes, and every node carries its own start mark *with its file name*. A campaign variant is
    an overlay (rendercv's habit): the base storyboard's node graph with the campaign's nodes
    grafted in where the campaign set a value, so each value keeps the position it came from and a
    problem in a variant points at the line that set it, with no text re-rendering and no second
    parser or position engine. ``data`` is what PyYAML constructs from that graph.
    """

    def __init__(self, file: str, root: yaml.Node | None, data: Any, problems: list[Problem]) -> None:
        self.file = file
        """The name shown for positions no node has (an empty file, a problem of the whole file)."""
        self.root = root
        self.data = data
        self.problems = problems

    @classmethod
    def parse(cls, text: str, file: str) -> YamlDocument:
        """Parse ``text`` once: libyaml when the text is valid YAML (fast), PyYAML to explain when not.

        Why two parsers but one syntax-error path: libyaml composes about ten times faster (a 2 MiB
        file in about a second instead of twenty), but its messages differ from the ones our hints
        know; a text libyaml refuses is parsed again by the pure-Python reader, which finds the same
        fault and says it in the wording below.
        """
        if len(text) > MAX_SOURCE_BYTES:
            return cls(file, None, None, [_too_large_problem(file, len(text.encode("utf-8", "surrogatepass")))])
        if _FAST_LOADER is not None and not _PURE_ONLY.search(text, 1):
            try:
                fast = _FAST_LOADER(_NamedText(text, file))
                try:
                    root = fast.get_single_node()
                finally:
                    fast.dispose()
            except (yaml.YAMLError, ValueError):
                pass  # explained below, by the reader whose messages the hints are written for
            except RecursionError:
                return cls(file, None, None, [Problem(Location(file, 1, 1), "the YAML is nested too deeply to read: flatten it")])
            else:
                return cls._construct(file, root, fast)
        loader = None
        try:
            loader = yaml.SafeLoader(text)  # its reader rejects control characters right here
            loader.name = file  # every mark (so every position) names the file it is in
            root = loader.get_single_node()
            return cls._construct(file, root, loader)
        except yaml.MarkedYAMLError as error:
            return cls(file, None, None, [_syntax_problem(file, error)])
        except yaml.reader.ReaderError as error:
            line = text.count("\n", 0, error.position) + 1
            col = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
            message = f"YAML syntax error: character #x{error.character:04x} is not allowed"
            return cls(file, None, None, [Problem(Location(file, line, col), f"{message}: {_SYNTAX_HINTS[-1][1]}")])
        except RecursionError:
            return cls(file, None, None, [Problem(Location(file, 1, 1), "the YAML is nested too deeply to read: flatten it")])
        finally:
            if loader is not None:
                loader.dispose()

    @classmethod
    def _construct(cls, file: str, root: yaml.Node | None, constructor: Any, check: bool = True) -> YamlDocument:
        """Check the composed graph for duplicate keys, then build the values."""
        if root is None:
            return cls(file, None, None, [])
        problems = _duplicate_keys(root, file) if check else []
        try:
            data = constructor.construct_document(root)
        except _TAGGED_SCALAR_FAILURES:
            # an explicit tag PyYAML cannot build (``!!int abc``, ``!!bool maybe``) raises a
            # plain Python error without a mark: find the scalar that fails to say where
            return cls(file, None, None, [_unbuildable_scalar(file, root)])
        except yaml.MarkedYAMLError as error:
            return cls(file, None, None, [_syntax_problem(file, error)])
        except RecursionError:
            return cls(file, None, None, [Problem(Location(file, 1, 1), "the YAML is nested too deeply to read: flatten it")])
        return cls(file, root, data, problems)

    @classmethod
    def overlay(cls, file: str, root: yaml.Node, problems: list[Problem]) -> YamlDocument:
        """A document from a node graph assembled from other documents' nodes (a campaign variant).

        The values are constructed afresh from the graph; the positions are the nodes' own. The
        graph is not checked again: its parts were checked when their files were parsed (and
        construction has since flattened their merge keys, which a second check would misread as
        duplicates); ``problems`` carries what those checks found.
        """
        document = cls._construct(file, root, yaml.constructor.SafeConstructor(), check=False)
        document.problems = [*problems, *document.problems]
        return document

    def top_level_problems(self) -> list[Problem]:
        """Problems of a file that parsed but is not a mapping (empty, a list, a bare value)."""
        where = self.position(self.root) if self.root is not None else (1, 1)
        if self.data is None:
            message = "the file is empty: a storyboard needs at least 'name:' and 'shots:'"
        else:
            message = (
                f"the top level must be a mapping of keys (name:, shots:, ...), got {_shown(self.data)}: "
                "write one 'key: value' per line"
            )
        return [Problem(Location(self.file, *where), message)]

    @staticmethod
    def position(node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def location(self, node: yaml.Node, path: tuple[Part, ...] | list[Part] = ()) -> Location:
        """Where ``node`` was written: its own file (an overlay mixes files), line and column."""
        return _node_location(node, self.file, path)

    def node_at(self, path: tuple[Part, ...]) -> yaml.Node | None:
        """The node at exactly this data path, or None when any part of it is absent."""
        node = self.root
        for part in path:
            if isinstance(node, yaml.MappingNode):
                found = _find_key(node, part)
                if found is None:
                    return None
                node = found[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
            else:
                return None
        return node

    def has(self, path: tuple[Part, ...]) -> bool:
        return self.node_at(path) is not None

    def walk(self, path: tuple[Part, ...]) -> tuple[yaml.Node, yaml.Node | None, list[Part]]:
        """Follow a model path down the node graph.

        Returns the deepest node reached (the node itself when present, else its closest existing
        parent), the key node of the last part when it is a present mapping key, and the path with
        pydantic-internal parts (union tags, ``function-after[...]``) removed. The walk goes on
        past an absent part, so a shorthand (``groups: [[a, b]]`` validated as ``{shots: [a, b]}``)
        still lands on the list item.
        """
        assert self.root is not None, "walk needs a parsed document"
        node: yaml.Node = self.root
        key_node: yaml.Node | None = None
        kept: list[Part] = []
        for part in path:
            if part == "[key]":
                continue  # the error is about the key itself: keep the key node of the last part
            key_node = None
            if isinstance(node, yaml.MappingNode):
                found = _find_key(node, part)
                if found is not None:
                    key_node, node = found
                    # a mapping key is shown as written (``vars.true``), never as a list index
                    kept.append(part if isinstance(part, str) else str(key_node.value))
                    continue
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                kept.append(part)
                continue
            if not _is_internal(part):
                kept.append(part)
        return node, key_node, kept

    def locate(self, path: tuple[Part, ...]) -> Location:
        if self.root is None:
            return Location(self.file, 1, 1, _dotted(path))
        node, _, kept = self.walk(path)
        return self.location(node, kept)


_TAGGED_SCALAR_FAILURES = (ValueError, KeyError, AttributeError, TypeError, OverflowError)


def _unbuildable_scalar(file: str, root: yaml.Node) -> Problem:
    """The first scalar (in file order) whose explicit tag cannot build its value."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                yaml.constructor.SafeConstructor().construct_object(node)
            except (*_TAGGED_SCALAR_FAILURES, yaml.YAMLError):
                line, col = node.start_mark.line + 1, node.start_mark.column + 1
                tag = node.tag.replace("tag:yaml.org,2002:", "!!")
                return Problem(
                    Location(file, line, col),
                    f"YAML error: {_shown(node.value)} is not a valid {tag} value: fix the value or remove the tag",
                )
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            stack.extend(reversed([n for pair in node.value for n in pair]))
    return Problem(Location(file, 1, 1), "YAML error: a tagged value cannot be read: remove the '!!' tags")


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = (error.problem or "invalid YAML").rstrip(".")
    if "expected a single document" in (error.context or ""):
        problem = "a second YAML document starts here"
    elif error.context and "while" not in error.context:
        problem = f"{problem} ({error.context})"
    hint = next(
        (text for needle, text in _SYNTAX_HINTS if needle in (error.problem or "") + (error.context or "")),
        "check the indentation and the quotes on this line and the line before",
    )
    started = error.context_mark
    unfinished = "while" in (error.context or "") and not isinstance(error, yaml.constructor.ConstructorError)
    if started and mark and unfinished and started.line != mark.line:
        hint += f" (what is unfinished here started on line {started.line + 1})"
    kind = "YAML error" if isinstance(error, yaml.constructor.ConstructorError) else "YAML syntax error"
    return Problem(Location(file, line, col), f"{kind}: {problem}: {hint}")


def scalar_key(node: yaml.Node) -> Any:
    """The value PyYAML constructs for a key node (so ``1`` matches the int key 1 pydantic reports)."""
    if not isinstance(node, yaml.ScalarNode):
        return object()
    if node.tag == "tag:yaml.org,2002:str":
        return node.value  # the common case, without building a constructor per key
    try:
        return yaml.constructor.SafeConstructor().construct_object(node)
    except (*_TAGGED_SCALAR_FAILURES, yaml.YAMLError):
        return node.value


def _find_key(mapping: yaml.MappingNode, part: Part) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key, value) nodes of ``part`` in a mapping; the last one wins, as in PyYAML."""
    found = None
    for key_node, value_node in mapping.value:
        key = scalar_key(key_node)
        if isinstance(key, str) == isinstance(part, str) and key == part:
            found = (key_node, value_node)
    return found


def _duplicate_keys(root: yaml.Node, file: str) -> list[Problem]:
    """Every key set twice in one mapping: PyYAML keeps the last silently, we say so.

    Runs on the raw node graph, before construction flattens merge keys (``<<: *base``), so a key
    that overrides a merged one is not reported. Iterative, and each node is visited once, so
    recursive aliases cannot loop and an alias bomb costs its size in nodes, not its expansion.
    Keys that are not plain scalars (lists, mappings, aliases of them) and scalars whose tag builds
    a list or a mapping (``!!map x``) cannot be compared: construction refuses them with its own
    located message, so they are skipped here.
    """
    problems: list[Problem] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[Part, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(reversed([(child, (*path, index)) for index, child in enumerate(node.value)]))
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[tuple[type, Any], int] = {}
            children = []
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    children.append((value_node, path))
                    continue
                key = scalar_key(key_node)
                shown = key if isinstance(key, str) else (str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?")
                child_path = (*path, shown)
                children.append((key_node, child_path))
                children.append((value_node, child_path))
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # PyYAML itself refuses list and mapping keys, at their line
                marker = (type(key), key)
                try:
                    hash(marker)
                except TypeError:
                    continue  # a tag that builds a list or mapping key (``? !!map x``): refused at construction
                if marker in first_line:
                    problems.append(
                        Problem(
                            _node_location(key_node, file, child_path),
                            f"duplicate key '{shown_path(key_node.value)}' (first set on line {first_line[marker]}): "
                            "YAML keeps only the last one; remove or rename one of them",
                        )
                    )
                else:
                    first_line[marker] = key_node.start_mark.line + 1
            stack.extend(reversed(children))
    return problems


def _node_location(node: yaml.Node, fallback_file: str, path: tuple[Part, ...] | list[Part] = ()) -> Location:
    """Where ``node`` was written: the file its mark names (an overlay mixes files), line, column."""
    name = getattr(node.start_mark, "name", None)
    file = name if isinstance(name, str) and name and not name.startswith("<") else fallback_file
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1, _dotted(path))


# --------------------------------------------------------------------------------------------
# pydantic errors -> YAML author's messages
# --------------------------------------------------------------------------------------------

_INTERNAL_PART = re.compile(r"^[a-z][\w-]*\[.*\]$")
_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "tuple"}


def _is_internal(part: Part) -> bool:
    """pydantic loc parts that name a validator or a union member, not a YAML key."""
    return isinstance(part, str) and (bool(_INTERNAL_PART.match(part)) or part in _TYPE_TAGS)


def _translate(document: YamlDocument, error: dict[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    node, key_node, kept = document.walk(loc)
    location = document.location(node, kept)

    if kind == "extra_forbidden":
        if key_node is not None:
            location = document.location(key_node, kept)
        return Problem(location, _unknown_key_message(str(kept[-1]) if kept else "?", _model_at(kept[:-1])))
    if kind == "missing":
        name = kept[-1] if kept else "?"
        if isinstance(name, int):
            return Problem(location, f"missing item {name + 1} of this list: it needs more values")
        return Problem(location, f"missing required key '{name}'")
    if loc and loc[-1] == "[key]":
        if key_node is not None:
            location = document.location(key_node, kept)
        return Problem(location, f"keys here must be text, got {_shown(value)}: put the key in quotes")
    return Problem(location, _value_message(kind, value, ctx, error["msg"], _annotation_at(kept)))


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def _value_message(kind: str, value: Any, ctx: dict[str, Any], pydantic_message: str, annotation: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {_shown(value)}"
    if kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_shown(value)}"
        if kind == "string_type" and isinstance(value, (bool, int, float, date)):
            message += ": put it in quotes to keep it as text"
        return message
    if kind == "literal_error":
        allowed = [str(v) for v in get_args(annotation)] if get_origin(annotation) is Literal else []
        if not allowed:
            allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", ""))) or [str(ctx.get("expected", ""))]
        message = f"must be one of: {', '.join(allowed)}; got {_shown(value)}"
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=SUGGESTION_CUTOFF)
        return message + (f": did you mean '{close[0]}'?" if close else "")
    bounds = {
        "less_than_equal": ("at most", "le"),
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {_number(ctx.get(key))}, got {_shown(value)}"
    if kind == "too_short":
        wanted = ctx.get("min_length", 1)
        return f"must have at least {wanted} item{'s' if wanted != 1 else ''}, got {ctx.get('actual_length', 0)}"
    if kind == "too_long":
        wanted = ctx.get("max_length")
        return f"must have at most {wanted} item{'s' if wanted != 1 else ''}, got {ctx.get('actual_length')}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long, got {len(str(value))}"
    if kind == "string_pattern_mismatch":
        return (
            f"{_shown(value)} is not a valid id: use 1 to 48 letters, digits, '-' or '_', "
            "starting with a letter or a digit"
        )
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value|Assertion) error, ", "", pydantic_message)
    return pydantic_message[:1].lower() + pydantic_message[1:]


def _unknown_key_message(key: str, model: type[BaseModel] | None) -> str:
    valid = list(model.model_fields) if model else []
    close = difflib.get_close_matches(key, valid, n=1, cutoff=SUGGESTION_CUTOFF)
    if close:
        return f"unknown key '{key}': did you mean '{close[0]}'?"
    if valid:
        return f"unknown key '{key}': valid keys here are {', '.join(valid)}"
    return f"unknown key '{key}': remove it"


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (the storyboard's only unions are optional values)."""
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not NoneType]
        if len(members) == 1:
            return members[0]
    return annotation


def _annotation_at(path: list[Part]) -> Any:
    """The type the model expects at a model path (None when the path leaves the model)."""
    annotation: Any = Storyboard
    for part in path:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return None
            annotation = annotation.model_fields[part].annotation
        elif origin is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is tuple and isinstance(part, int) and part < len(get_args(annotation)):
            annotation = get_args(annotation)[part]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return _unwrap(annotation)


def _model_at(path: list[Part]) -> type[BaseModel] | None:
    annotation = _annotation_at(path)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


# --------------------------------------------------------------------------------------------
# Ids and links between them
# --------------------------------------------------------------------------------------------


@dataclass
class _Parts:
    """The pieces of a storyboard the id and file checks read.

    From the validated model when there is one; otherwise each piece is validated on its own, so
    one bad shot does not hide a missing image of another in the same run.
    """

    reference_ids: list[str]
    references: dict[str, Reference]
    shots: list[tuple[int, Shot | None, dict]]
    groups: list[tuple[int, Group]]
    cut_shots: list[tuple[int, CutShot]]
    cards: list[tuple[str, Card]]
    bed: AudioBed | None
    outputs: list[tuple[int, Output]]
    outside_files: str = "advise"

    @classmethod
    def of(cls, storyboard: Storyboard | None, data: dict) -> _Parts:
        if storyboard is not None:
            cut = storyboard.cut
            return cls(
                reference_ids=list(storyboard.references),
                references=dict(storyboard.references),
                shots=[(i, shot, {}) for i, shot in enumerate(storyboard.shots)],
                groups=list(enumerate(storyboard.groups)),
                cut_shots=list(enumerate(cut.shots or [])),
                cards=[(name, card) for name, card in (("title", cut.title), ("end_card", cut.end_card)) if card],
                bed=cut.audio.bed,
                outputs=list(enumerate(storyboard.outputs)),
                outside_files=storyboard.outside_files,
            )
        raw_references: dict = data["references"] if isinstance(data.get("references"), dict) else {}
        raw_cut: dict = data["cut"] if isinstance(data.get("cut"), dict) else {}
        raw_audio: dict = raw_cut["audio"] if isinstance(raw_cut.get("audio"), dict) else {}
        references = {k: r for k, v in raw_references.items() if isinstance(k, str) and (r := _valid(Reference, v))}
        shots = [(i, _valid(Shot, raw), raw if isinstance(raw, dict) else {}) for i, raw in enumerate(_list(data.get("shots")))]
        cards = [(name, c) for name in ("title", "end_card") if (c := _valid(Card, raw_cut.get(name)))]
        return cls(
            reference_ids=[k for k in raw_references if isinstance(k, str)],
            references=references,
            shots=shots,
            groups=[(i, g) for i, raw in enumerate(_list(data.get("groups"))) if (g := _valid(Group, raw))],
            cut_shots=[(i, c) for i, raw in enumerate(_list(raw_cut.get("shots"))) if (c := _valid(CutShot, raw))],
            cards=cards,
            bed=_valid(AudioBed, raw_audio.get("bed")),
            outputs=[(i, o) for i, raw in enumerate(_list(data.get("outputs"))) if (o := _valid(Output, raw))],
            outside_files="refuse" if data.get("outside_files") == "refuse" else "advise",
        )


def _valid(model: type[BaseModel], value: Any) -> Any:
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _shot_field(shot: Shot | None, raw: dict, name: str) -> Any:
    """A shot's field, from the model, or from the raw mapping when the shot failed validation."""
    if shot is not None:
        return getattr(shot, name)
    value = raw.get(name)
    if name == "references":
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    return value if isinstance(value, str) else None


def _is_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.lower().endswith(IMAGE_EXTENSIONS)


SUGGESTION_CANDIDATES = 50
"""At most this many names are compared for one "did you mean": a board with thousands of ids and
thousands of unknown ones must stay linear, and a close match of a long list is a guess anyway."""


class _KnownNames:
    """The ids a "did you mean" may suggest, indexed by length once so each lookup costs a bounded pool."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._by_length: dict[int, list[str]] | None = None

    def pool(self, value: str) -> list[str]:
        """All names of a short list; else at most ``SUGGESTION_CANDIDATES`` of a similar length."""
        if len(self.names) <= SUGGESTION_CANDIDATES:
            return self.names
        if self._by_length is None:
            self._by_length = {}
            for name in self.names:
                self._by_length.setdefault(len(name), []).append(name)
        pool: list[str] = []
        for length in (len(value), len(value) - 1, len(value) + 1, len(value) - 2, len(value) + 2):
            pool.extend(self._by_length.get(length, ())[: SUGGESTION_CANDIDATES - len(pool)])
        return pool


def _unknown_id_message(kind: str, plural: str, value: str, names: _KnownNames, where: str) -> str:
    known = names.names
    close = difflib.get_close_matches(value, names.pool(value), n=1, cutoff=SUGGESTION_CUTOFF)
    if close:
        return f"unknown {kind} '{value}': did you mean '{close[0]}'?"
    if known:
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        return f"unknown {kind} '{value}': known {plural} are {shown}"
    return f"unknown {kind} '{value}': no {plural} are defined; add it under {where}"


def _check_ids(document: YamlDocument, parts: _Parts) -> list[Problem]:
    problems: list[Problem] = []
    shot_ids: list[str] = []
    first_line: dict[str, int] = {}
    for index, shot, raw in parts.shots:
        shot_id = shot.id if shot is not None else raw.get("id")
        if not isinstance(shot_id, str):
            continue
        location = document.locate(("shots", index, "id"))
        if shot_id in first_line:
            problems.append(
                Problem(location, f"duplicate shot id '{shot_id}' (first used on line {first_line[shot_id]}): give each shot its own id")
            )
        else:
            first_line[shot_id] = location.line
            shot_ids.append(shot_id)

    known_refs = parts.reference_ids
    known_ref_set = set(known_refs)
    known_ref_names = _KnownNames(known_refs)
    for index, shot, raw in parts.shots:
        for position, ref in enumerate(_shot_field(shot, raw, "references")):
            if ref not in known_ref_set:
                problems.append(
                    Problem(
                        document.locate(("shots", index, "references", position)),
                        _unknown_id_message("reference", "references", ref, known_ref_names, "references:"),
                    )
                )
        for name in ("start_frame", "end_frame"):
            value = _shot_field(shot, raw, name)
            if value is None or value in known_ref_set or _is_path(value):
                continue
            location = document.locate(("shots", index, name))
            if value == PREVIOUS_FRAME and name == "start_frame":
                if index == 0:
                    problems.append(
                        Problem(location, "'previous' chains to the shot before, but this is the first shot: use an image path or a reference id")
                    )
            elif value == PREVIOUS_FRAME:
                problems.append(Problem(location, "'previous' only works as a start_frame: use an image path or a reference id"))
            else:
                problems.append(
                    Problem(location, _unknown_id_message("reference", "references", value, known_ref_names, "references:"))
                )

    shot_names = _KnownNames(shot_ids)

    def check_shot(value: str, path: tuple[Part, ...]) -> None:
        if value not in first_line:
            problems.append(Problem(document.locate(path), _unknown_id_message("shot", "shots", value, shot_names, "shots:")))

    for index, group in parts.groups:
        for position, value in enumerate(group.shots):
            check_shot(value, ("groups", index, "shots", position))
    for index, cut_shot in parts.cut_shots:
        check_shot(cut_shot.shot, ("cut", "shots", index, "shot"))

    output_lines: dict[str, int] = {}
    for index, output in parts.outputs:
        location = document.locate(("outputs", index, "name"))
        if output.name in output_lines:
            problems.append(
                Problem(location, f"duplicate output name '{output.name}' (first used on line {output_lines[output.name]}): give each output its own name")
            )
        else:
            output_lines[output.name] = location.line
    return problems


# --------------------------------------------------------------------------------------------
# Files the storyboard names
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ImageFacts:
    """What one read of an image file told us (or why it could not be read)."""

    error: str | None = None
    format: str | None = None
    width: int = 0
    height: int = 0
    size: int = 0


class _FileChecks:
    """Reads each named file once: one read gives the bytes for the header and for the hash."""

    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.images: dict[str, _ImageFacts] = {}
        self.digests: dict[str, str] = {}

    def image(self, relative: str) -> _ImageFacts:
        """What the image at a project-relative path is (read once per path)."""
        absolute = str(self.project_dir / relative)
        if absolute not in self.images:
            self.images[absolute] = self._read(Path(absolute), relative)
        return self.images[absolute]

    def _read(self, path: Path, relative: str) -> _ImageFacts:
        missing = self.missing(relative)
        relative = shown_path(relative)
        if missing:
            return _ImageFacts(error=missing)
        try:
            size = regular_file_size(path, relative, "image")
            if size > MAX_IMAGE_BYTES:
                return _ImageFacts(size=size)
            content = read_regular_file(path, relative, MAX_IMAGE_BYTES, "image")
        except UserError as error:
            return _ImageFacts(error=f"{error.message}: {error.hint}")
        self.digests[str(path)] = hashlib.sha256(content).hexdigest()
        try:
            with Image.open(io.BytesIO(content)) as image:
                width, height = image.size
                image_format = image.format
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError, struct.error):
            return _ImageFacts(error=f"{relative} is not an image that can be read: use a JPG or PNG file")
        return _ImageFacts(format=image_format, width=width, height=height, size=size)

    def missing(self, relative: str) -> str | None:
        """Why a named file cannot be used at all (absent, a folder), or None."""
        path = self.project_dir / relative
        relative, shown = shown_path(relative), shown_path(str(path))
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return f"file not found: {relative} (looked for {shown}): check the path, relative to the project folder"
        except (OSError, ValueError):
            return f"{relative} is not a usable file path: check the path, relative to the project folder"
        if stat.S_ISDIR(mode):
            return f"{relative} is a folder, not a file: name the file itself"
        if not stat.S_ISREG(mode):
            return f"{relative} is not a regular file (a device, a pipe or a socket): name an ordinary file; a symlink must point at one"
        return None


def _image_problems(facts: _ImageFacts, relative: str, location: Location, for_kling: bool) -> list[Problem]:
    """Errors and advisories of one image; ``for_kling`` adds Kling's rules (kling-api.md 2)."""
    relative = shown_path(relative)
    if facts.error:
        return [Problem(location, facts.error)]
    if facts.format is None:
        return [Problem(location, f"{relative} is {facts.size / 1e6:.1f} MB: Kling accepts images up to 10 MB; export it smaller")]
    if not for_kling:
        return []
    if facts.format not in KLING_IMAGE_FORMATS:
        return [Problem(location, f"{relative} is a {facts.format} image: Kling accepts only JPG or PNG; convert it")]
    problems: list[Problem] = []
    width, height = facts.width, facts.height
    if min(width, height) < MIN_IMAGE_SIDE:
        problems.append(
            Problem(location, f"{relative} is {width}x{height} px: Kling needs both sides at least {MIN_IMAGE_SIDE} px; use a larger image")
        )
    elif max(width, height) > MAX_IMAGE_RATIO * min(width, height):
        ratio = max(width, height) / min(width, height)
        shape = f"{ratio:.2f}:1" if width >= height else f"1:{ratio:.2f}"
        problems.append(
            Problem(location, f"{relative} has aspect ratio {shape} ({width}x{height}): Kling accepts 1:2.5 to 2.5:1; crop it")
        )
    elif min(width, height) < LOW_SIDE:
        problems.append(
            Problem(
                location,
                f"{relative} is only {width}x{height} px: expect a soft, low-detail video; "
                f"image-to-video guides recommend ≥{RECOMMENDED_SIDE} px on the shorter side",
                "advisory",
            )
        )
    elif min(width, height) < RECOMMENDED_SIDE:
        problems.append(
            Problem(
                location,
                f"{relative} is {width}x{height} px: image-to-video guides recommend ≥{RECOMMENDED_SIDE} px on the shorter side",
                "advisory",
            )
        )
    return problems


def _video_reference_uses(document: YamlDocument, parts: _Parts) -> list[Problem]:
    """A video reference (a video-character element) named where Kling takes a picture, at that line.

    Why at load: these fields name a file to upload as an image; a video reference has none, so
    nothing after loading could use the value (plan.video_elements checks where elements go).
    """
    videos = {ref_id for ref_id, reference in parts.references.items() if reference.video is not None}
    if not videos:
        return []
    problems: list[Problem] = []
    for index, shot, raw in parts.shots:
        uses: list[tuple[tuple[Part, ...], Any, str]] = [
            (("shots", index, name), _shot_field(shot, raw, name), what)
            for name, what in (("start_frame", "a start frame"), ("end_frame", "an end frame"))
        ]
        if shot is not None and shot.motion_control is not None:
            uses.append((("shots", index, "motion_control", "character"), shot.motion_control.character,
                         "a motion-control character (its image is the start)"))
        if shot is not None and shot.avatar is not None:
            uses.append((("shots", index, "avatar", "image"), shot.avatar.image, "an avatar's face"))
        for path, value, what in uses:
            if value in videos:
                problems.append(Problem(
                    document.locate(path),
                    f"reference {value} is a video (a video-character element): Kling takes a picture as {what}, "
                    f"not a video: name an image reference or an image path, and list {value} in references instead",
                ))
    return problems


def _check_files(document: YamlDocument, parts: _Parts, files: _FileChecks) -> list[Problem]:
    """Check every file the storyboard names; each file is reported once, at its first use."""
    uses: list[tuple[str, tuple[Part, ...], bool]] = []  # (relative path, model path, goes to Kling)
    for ref_id, reference in parts.references.items():
        if reference.image is not None:  # a video reference is probed by plan.video_elements
            uses.append((reference.image, ("references", ref_id, "image"), True))
        if reference.element is not None:
            uses.extend(
                (extra, ("references", ref_id, "element", "extra_images", i), True)
                for i, extra in enumerate(reference.element.extra_images)
            )
    for index, shot, raw in parts.shots:
        for name in ("start_frame", "end_frame"):
            value = _shot_field(shot, raw, name)
            if value is not None and value not in set(parts.reference_ids) and _is_path(value):
                uses.append((value, ("shots", index, name), True))
        for kind, name in (("motion_control", "character"), ("avatar", "image")):
            value = getattr(getattr(shot, kind, None), name, None) if shot is not None else None
            if value is not None and value not in set(parts.reference_ids) and _is_path(value):
                uses.append((value, ("shots", index, kind, name), True))
        if shot is not None and shot.motion_brush is not None:
            brush = shot.motion_brush
            if brush.static_mask:
                uses.append((brush.static_mask, ("shots", index, "motion_brush", "static_mask"), True))
            uses.extend(
                (mask.mask, ("shots", index, "motion_brush", "dynamic_masks", i, "mask"), True)
                for i, mask in enumerate(brush.dynamic_masks)
            )
    for name, card in parts.cards:
        if not card.background.startswith("#") and _is_path(card.background):
            uses.append((card.background, ("cut", name, "background"), False))

    problems: list[Problem] = []
    reported: set[str] = set()
    for relative, path, for_kling in uses:
        key = f"{relative}\0{for_kling}"
        if key in reported:
            continue
        reported.add(key)
        problems.extend(_image_problems(files.image(relative), relative, document.locate(path), for_kling))
    for index, shot, _raw in parts.shots:
        for kind in ("avatar", "lip_sync"):
            audio = getattr(getattr(shot, kind, None), "audio", None) if shot is not None else None
            if audio is not None:
                uses.append((audio, ("shots", index, kind, "audio"), True))
    problems.extend(_outside_problems(document, parts, files, [(r, p) for r, p, kling in uses if kling]))

    if parts.bed is not None:
        missing = files.missing(parts.bed.file)
        if missing:
            problems.append(Problem(document.locate(("cut", "audio", "bed", "file")), missing))
    return problems


def _outside_problems(document: YamlDocument, parts: _Parts, files: _FileChecks,
                      uploads: list[tuple[str, tuple[Part, ...]]]) -> list[Problem]:
    """Every uploaded file outside the project folder, once, at its first use: an advisory, or an
    error under ``outside_files: refuse`` (a board from someone else could upload any image or
    audio file this machine can read)."""
    workspace = Workspace.at(files.project_dir)
    severity: Literal["error", "advisory"] = "error" if parts.outside_files == "refuse" else "advisory"
    problems: list[Problem] = []
    seen: set[str] = set()
    for relative, path in uploads:
        if relative in seen:
            continue
        seen.add(relative)
        if files.missing(relative) is not None:
            continue  # absent, a folder, a device: reported as such, not as a file from outside
        real = workspace.outside(relative)
        if real is None:
            continue
        todo = ("copy it into the project folder and name it from there"
                if severity == "error" else
                "copy it into the project folder, or set outside_files: refuse to forbid files from outside")
        problems.append(Problem(
            document.locate(path),
            f"{shown_path(relative)} lies outside the project folder ({shown_path(str(real))}) and is uploaded "
            f"to Kling: {todo}",
            severity,
        ))
    return problems


# --------------------------------------------------------------------------------------------
# Small formatting rules shared by the messages
# --------------------------------------------------------------------------------------------


def _dotted(path: tuple[Part, ...] | list[Part]) -> str:
    """``("shots", 2, "duration")`` -> ``shots[2].duration``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[\w-]+", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _shown(value: Any) -> str:
    """A value as the YAML author wrote it, short."""
    if value is None:
        return "nothing (the value is empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan" if math.isnan(value) else _number(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return f"'{value if len(value) <= 40 else value[:37] + '...'}'"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return type(value).__name__


def shown_path(path: str) -> str:
    """A path as a message shows it: control characters escaped, very long ones shortened."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)
    return text if len(text) <= 200 else text[:100] + "..." + text[-97:]


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _display_name(file: Path) -> str:
    """The file as messages show it: relative to the working folder when inside it."""
    try:
        return str(Path(file).relative_to(Path.cwd()))
    except ValueError:
        return str(file)
