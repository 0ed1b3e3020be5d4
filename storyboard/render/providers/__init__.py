"""Providers render a planned request into a clip: Kling for real, ``preview`` for free.

``open_provider`` is the one place that picks and builds a provider, so the CLI, the engine's
tests and the benchmarks agree on the rule: an explicit choice wins; otherwise Kling when
credentials are configured (environment or the project's ``.env``), else the free preview.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storyboard.errors import UserError
from storyboard.render.providers.base import Provider

PROVIDER_NAMES = ("kling", "preview")


def choose_provider_name(requested: str | None, project_dir: Path) -> str:
    """The provider a render uses: ``requested``, else kling when credentials exist, else preview."""
    if requested:
        if requested not in PROVIDER_NAMES:
            raise UserError(f"unknown provider {requested!r}", hint=f"use one of: {', '.join(PROVIDER_NAMES)}")
        return requested
    from storyboard.render.providers.kling import KlingCredentials

    return "kling" if KlingCredentials.from_env(project_dir) else "preview"


def open_provider(name: str, project_dir: Path, **options: Any) -> Provider:
    """Build the named provider for a project. ``options`` go to the provider (e.g. ``transport``)."""
    if name == "kling":
        from storyboard.render.providers.kling import KlingCredentials, KlingProvider

        credentials = KlingCredentials.from_env(project_dir)
        if credentials is None:
            raise UserError(
                "no Kling credentials are configured",
                hint="set KLINGAI_ACCESS_KEY and KLINGAI_SECRET_KEY (or KLINGAI_API_KEY) in the environment "
                "or in the project's .env file, or use --provider preview",
            )
        return KlingProvider(credentials, **options)
    if name == "preview":
        from storyboard.render.providers.preview import PreviewProvider

        return PreviewProvider(Path(project_dir), **options)
    raise UserError(f"unknown provider {name!r}", hint=f"use one of: {', '.join(PROVIDER_NAMES)}")
