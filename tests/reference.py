"""Where the shared protocol reference lives: ``../shared`` beside the repository.

Why not a fixed path: CI clones the repository into a fresh folder with ``shared/`` beside it, so
the reference is found relative to this checkout (``STORYBOARD_SHARED`` overrides it).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STORYBOARD_SHARED") or REPO.parent / "shared")
KLING_FIXTURES = SHARED / "kling-fixtures.json"
MEDIA = SHARED / "media"
