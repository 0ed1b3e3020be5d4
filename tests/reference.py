"""Where the tests' protocol fixtures and sample media live: inside the repository.

Why inside: a user's clone has nothing beside it, so the README's test command must pass with the
repository alone. The fixtures are a copy (see ``tests/data/README.md``); the photographs are the
example projects' own, credited in their ``LICENSES.md``.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KLING_FIXTURES = REPO / "tests" / "data" / "kling-fixtures.json"
MEDIA = REPO / "projects" / "cat-boards" / "refs"
