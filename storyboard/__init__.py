"""storyboard: multi-shot storyboards for Kling AI video, validated, planned, priced, rendered and cut.

The Python API is the command line's pipeline without the terminal (``storyboard.pipeline``)::

    import storyboard

    project = storyboard.load("projects/coffee-spot")   # checked and planned; raises StoryboardInvalid
    print(storyboard.plan(project).usd)                 # what Kling would charge, nothing spent
    result = storyboard.run(project, provider="preview")
    for cut in result.cuts:
        print(cut.video, cut.provider, cut.unchanged)

Every function takes a path (a project or campaign folder, or its file) or what ``load`` returned.
Nothing is printed: pass ``on_event`` to see progress (the ``pipeline`` event dataclasses). Money
is spent only with ``yes=True`` (and within ``max_cost`` units, refused up front if it cannot cover
the plan; ``partial=True`` renders what fits in cut order).

Why lazy: ``import storyboard`` must stay cheap for scripts and tools that only want the types or
the version, so the pipeline (pydantic, Jinja2, PyAV, ffmpeg lookups) is imported on first use,
by the functions below or by PEP 562 ``__getattr__`` for the re-exported types.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from storyboard.errors import Problem, ProviderError, StoryboardError, StoryboardInvalid, UserError
    from storyboard.pipeline import CutFile, EventSink, Quote, RenderOutcome, RunOutcome, VariantOutcome, Work
    from storyboard.plan import Plan

__all__ = [
    "CutFile",
    "Plan",
    "Problem",
    "ProviderError",
    "Quote",
    "RenderOutcome",
    "RunOutcome",
    "StoryboardError",
    "StoryboardInvalid",
    "UserError",
    "VariantOutcome",
    "Work",
    "__version__",
    "assemble",
    "assemble_campaign",
    "check",
    "load",
    "load_campaign",
    "plan",
    "plan_campaign",
    "render",
    "render_campaign",
    "run",
    "run_campaign",
]

_LAZY = {
    "CutFile": "storyboard.pipeline",
    "Quote": "storyboard.pipeline",
    "RenderOutcome": "storyboard.pipeline",
    "RunOutcome": "storyboard.pipeline",
    "VariantOutcome": "storyboard.pipeline",
    "Work": "storyboard.pipeline",
    "Plan": "storyboard.plan",
    "Problem": "storyboard.errors",
    "ProviderError": "storyboard.errors",
    "StoryboardError": "storyboard.errors",
    "StoryboardInvalid": "storyboard.errors",
    "UserError": "storyboard.errors",
}


def __getattr__(name: str) -> Any:
    """PEP 562: the re-exported types are imported when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'storyboard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load(path: str | Path, *, variants: Sequence[str] | None = None) -> Work:
    """Load, check and plan a project (or a campaign: a folder with campaign.yaml, or that file).

    Raises ``StoryboardInvalid`` with every problem (``file:line:col``) when a project is invalid;
    an invalid campaign variant is kept, with its reason, and the others go on.
    """
    from storyboard import pipeline

    if pipeline.is_campaign(path):
        return pipeline.load_campaign(path, variants)
    work, _ = pipeline.load_project(path)
    return work


def load_campaign(path: str | Path, *, variants: Sequence[str] | None = None) -> Work:
    """Load and plan a campaign: one spot per variant (or only ``variants``), shared requests once."""
    from storyboard import pipeline

    return pipeline.load_campaign(path, variants)


def _work(target: str | Path | Work, variants: Sequence[str] | None = None) -> Work:
    from storyboard import pipeline

    return target if isinstance(target, pipeline.Work) else load(target, variants=variants)


def check(target: str | Path | Work) -> list[Problem]:
    """Every rule ``run`` applies, before anything is spent: the advisories (errors raise)."""
    return list(_work(target).problems)


def plan(target: str | Path | Work) -> Plan:
    """The exact Kling requests (each distinct request once), priced; spends nothing."""
    return _work(target).plan


def plan_campaign(path: str | Path, *, variants: Sequence[str] | None = None) -> Plan:
    """The campaign's distinct requests as one priced plan; spends nothing."""
    return load_campaign(path, variants=variants).plan


def render(
    target: str | Path | Work,
    *,
    provider: str | None = None,
    max_cost: float | None = None,
    partial: bool = False,
    yes: bool = False,
    concurrency: int = 2,
    on_event: EventSink | None = None,
) -> RenderOutcome:
    """Render every request not rendered yet (resuming earlier runs; nothing is paid twice).

    ``provider``: "kling" or "preview" (default: Kling when keys are set, else the free preview).
    Money is spent only with ``yes=True``; ``max_cost`` is in units (see ``plan(...).units``).
    """
    from storyboard import pipeline

    return pipeline.run_sync(pipeline.render_async(
        _work(target), provider=provider, max_cost=max_cost, partial=partial, confirm=lambda _quote: yes,
        on_event=on_event, concurrency=concurrency))


def assemble(
    target: str | Path | Work,
    *,
    provider: str | None = None,
    outputs: Sequence[str] | None = None,
    on_event: EventSink | None = None,
) -> RunOutcome:
    """Cut the rendered clips: Kling's when they are all there (``out/``), else the preview's
    (``out/preview/``). Outputs whose inputs did not change are not rewritten."""
    from storyboard import pipeline

    work = _work(target)
    outcomes = pipeline.assemble(work, provider=provider, only_outputs=outputs, on_event=on_event)
    page = None
    if work.campaign is not None:
        default = pipeline.choose_provider(provider, work).provider
        page = next(iter(pipeline.write_reviews(work.campaign, outcomes, default)), None)
    return pipeline.RunOutcome(None, outcomes, page)


def run(
    target: str | Path | Work,
    *,
    provider: str | None = None,
    max_cost: float | None = None,
    partial: bool = False,
    yes: bool = False,
    concurrency: int = 2,
    on_event: EventSink | None = None,
) -> RunOutcome:
    """Check, plan, render what is missing and cut everything, synchronously (``storyboard run``)."""
    from storyboard import pipeline

    return pipeline.run_sync(pipeline.run_async(
        _work(target), provider=provider, max_cost=max_cost, partial=partial, confirm=lambda _quote: yes,
        on_event=on_event, concurrency=concurrency))


def render_campaign(path: str | Path, *, variants: Sequence[str] | None = None, **options: Any) -> RenderOutcome:
    """``render`` for a campaign file or folder (``variants``: only these ids)."""
    return render(load_campaign(path, variants=variants), **options)


def assemble_campaign(path: str | Path, *, variants: Sequence[str] | None = None, **options: Any) -> RunOutcome:
    """``assemble`` for a campaign: ``out/[preview/]<variant-id>/`` and the review page."""
    return assemble(load_campaign(path, variants=variants), **options)


def run_campaign(path: str | Path, *, variants: Sequence[str] | None = None, **options: Any) -> RunOutcome:
    """``run`` for a campaign: render once per distinct request, cut every variant, write the review page."""
    return run(load_campaign(path, variants=variants), **options)


_VERBS = frozenset({"load", "check", "plan", "render", "assemble", "run"})


class _Package(types.ModuleType):
    """The package module, keeping its verbs when a stage subpackage of the same name is imported.

    Why: the API's verbs share their names with the stage subpackages (``load/``, ``plan/``,
    ``render/``, ``assemble/``), and the import system sets a package attribute for every
    submodule it imports, which would replace ``storyboard.plan`` the function with the module.
    The subpackages stay reachable the usual way, ``from storyboard.plan import planner``
    (through ``sys.modules``); ``import storyboard.plan as name`` would give the function.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _VERBS and isinstance(value, types.ModuleType) and callable(self.__dict__.get(name)):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
