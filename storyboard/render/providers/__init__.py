"""Providers render a planned request into a clip: Kling for real, ``preview`` for free.

``open_provider`` is the one place that picks and builds a provider, so the CLI, the engine's
tests and the benchmarks agree on the rule: an explicit choice wins; otherwise Kling when
credentials are configured (environment or the project's ``.env``), else the free preview.

Whether a provider costs money is its class's ``free`` attribute; ``provider_is_free`` reads it
by name (for plan displays made before a provider is opened), so no caller compares names.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from storyboard.errors import UserError
from storyboard.render.providers.base import Provider

PROVIDER_CLASSES = {
    "kling": ("storyboard.render.providers.kling", "KlingProvider"),
    "preview": ("storyboard.render.providers.preview", "PreviewProvider"),
}
"""Provider name -> (module, class), imported on first use (Kling's client pulls in httpx and jwt)."""
PROVIDER_NAMES = tuple(PROVIDER_CLASSES)

FREE = {"kling": False, "preview": True}
"""Each provider class's ``free``, known without importing the class (tests hold them equal): the
Kling module pulls in httpx, jwt and asyncio (~0.1 s), which ``storyboard assemble`` never uses."""


def _known(name: str) -> str:
    if name not in PROVIDER_CLASSES:
        raise UserError(f"unknown provider {name!r}", hint=f"use one of: {', '.join(PROVIDER_NAMES)}")
    return name


def _provider_class(name: str) -> Any:
    module, attribute = PROVIDER_CLASSES[_known(name)]
    return getattr(import_module(module), attribute)


def provider_is_free(name: str) -> bool:
    """Whether rendering with the named provider costs nothing (its class's ``free``)."""
    return FREE[_known(name)]


def choose_provider_name(requested: str | None, project_dir: Path) -> str:
    """The provider a render uses: ``requested``, else kling when credentials exist, else preview."""
    if requested:
        _known(requested)
        if requested != "kling":
            return requested
    from storyboard.render.providers.kling import KlingCredentials

    if KlingCredentials.from_env(project_dir):
        return "kling"
    half = KlingCredentials.half_set_error(project_dir)
    if half is not None:
        raise half  # half a key pair means Kling was meant: name the missing key, never fall back to the preview
    return requested or "preview"


def open_provider(name: str, project_dir: Path, **options: Any) -> Provider:
    """Build the named provider for a project. ``options`` go to the provider (e.g. ``transport``).

    Each provider class builds itself for a project (``for_project``): Kling reads its credentials
    from the environment or the project's ``.env`` and says how to set them when there are none;
    the preview keeps its cache in the project folder.
    """
    provider: Provider = _provider_class(name).for_project(Path(project_dir), **options)
    return provider
