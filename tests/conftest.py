"""Shared fixtures: a throwaway project folder with a storyboard and real images.

Why real images: the loader reads image headers (format, size) by content, so tests must write
genuine PNG/JPG files, not empty files with an image extension. Images are flat colours; Pillow
writes them in microseconds.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures: a real PostgreSQL, a schema per test)

KEY_VARS = ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY", "KLINGAI_BASE_URL")
"""The variables that give storyboard Kling credentials or a host: a test sets them itself or not at all."""

ImageSpec = tuple[int, int] | tuple[int, int, str]
"""(width, height) or (width, height, Pillow format); the format defaults to the file's extension."""


def write_image(path: Path, width: int, height: int, image_format: str | None = None) -> Path:
    """A real image file of that size; the format follows the extension unless given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (width, height), (40, 90, 160))
    image.save(path, format=image_format)
    return path


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """``make_project(yaml_text, images={"refs/hero.png": (1024, 1024)}, files={...})`` -> folder.

    Writes ``storyboard.yaml`` (dedented) and the images into a fresh folder under ``tmp_path``;
    ``files`` holds other files by relative path (bytes or text), e.g. an audio bed.
    """
    counter = iter(range(1_000_000))

    def make(yaml_text: str, images: dict[str, ImageSpec] | None = None, files: dict[str, bytes | str] | None = None) -> Path:
        project = tmp_path / f"project{next(counter)}"
        project.mkdir()
        (project / "storyboard.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
        for relative, spec in (images or {}).items():
            write_image(project / relative, *spec)
        for relative, content in (files or {}).items():
            target = project / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        return project

    return make


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Kling credentials or host from the machine running the tests (so the preview is chosen,
    and a test that wants Kling sets exactly the fake's); returns ``monkeypatch`` for that."""
    for name in KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def kling_env(fake: Any, base_url: str) -> dict[str, str]:
    """The environment that points storyboard at a fake Kling served on ``base_url``."""
    return {"KLINGAI_ACCESS_KEY": fake.access_key, "KLINGAI_SECRET_KEY": fake.secret_key, "KLINGAI_BASE_URL": base_url}


def use_kling(monkeypatch: pytest.MonkeyPatch, fake: Any, base_url: str) -> None:
    """Point this process's environment at a fake Kling (see ``kling_env``)."""
    for name, value in kling_env(fake, base_url).items():
        monkeypatch.setenv(name, value)
