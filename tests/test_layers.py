"""The import layers: no lower stage imports a higher one, not even lazily inside a function.

Why a test: the layout promises that a newcomer finds a behaviour under the verb they typed and
that each stage can be used alone; one convenient upward import (the assembler reaching into the
pipeline, the loader into the planner) quietly breaks both. Every ``import``/``from`` statement of
every module is read with ``ast`` — including those inside functions and ``TYPE_CHECKING`` blocks —
and checked against the order below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "storyboard"

LAYERS: list[tuple[str, ...]] = [
    ("storyboard.errors", "storyboard.media", "storyboard.workspace", "storyboard.fonts"),
    ("storyboard.load",),
    ("storyboard.plan",),
    ("storyboard.render",),
    ("storyboard.assemble",),
    ("storyboard.pipeline",),
    ("storyboard.cli",),
]
"""Lowest first. A module may import its own layer and those below it."""


def layer_of(module: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return index
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "storyboard":
                found += [(node.lineno, f"storyboard.{alias.name}") for alias in node.names]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    unplaced = [module_name(p) for p in MODULES if module_name(p) != "storyboard" and layer_of(module_name(p)) is None]
    assert unplaced == [], f"modules outside every layer (add them to LAYERS): {unplaced}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_lower_stage_imports_a_higher_one(path: Path) -> None:
    name = module_name(path)
    if name == "storyboard":  # the public API on top of everything (lazy, PEP 562)
        return
    own = layer_of(name)
    assert own is not None
    upward = []
    for line, target in imported_modules(path):
        target_layer = layer_of(target)
        if target_layer is not None and target_layer > own:
            upward.append(f"{path.name}:{line} imports {target}")
    assert upward == [], "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The test itself can fail: a lazy import of the pipeline inside a loader function is caught."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from storyboard.pipeline import run\n    import storyboard.cli\n")
    targets = [layer_of(target) for _, target in imported_modules(sample)]
    assert targets == [LAYERS.index(("storyboard.pipeline",)), LAYERS.index(("storyboard.cli",))]
