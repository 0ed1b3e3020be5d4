"""The pipeline: check → plan → classify → render → assemble → run, for a project and a campaign.

(Work in progress: the campaign's render and assemble steps, moved here from ``campaign.py`` so
that the campaign module keeps only its file format, expansion and sharing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from storyboard.load.campaign import LoadedCampaign
from storyboard.plan.sharing import CampaignPlan
from storyboard.workspace import Workspace

# --------------------------------------------------------------------------------------------
# Rendering and assembling a campaign (one engine run, one budget; one failure stops no one else)
# --------------------------------------------------------------------------------------------

VariantStatus = Literal["planned", "invalid", "rendered", "failed", "incomplete", "assembled"]


@dataclass(frozen=True)
class CutFile:
    """One finished file of a variant (``out/<variant-id>/<output>.mp4``) and what was checked."""

    name: str
    video: Path
    duration: float
    frames: int
    aspect_ratio: str
    width: int
    height: int
    contact_sheet: Path | None = None
    subtitles: Path | None = None
    path_taken: str = ""


@dataclass(frozen=True)
class VariantOutcome:
    """Where a variant ended up after render and/or assemble, and why when it is not finished."""

    variant_id: str
    status: VariantStatus
    reason: str | None = None
    cuts: tuple[CutFile, ...] = ()


@dataclass
class CampaignRender:
    """The engine's result for the combined plan, and what it means for each variant."""

    result: Any
    """``engine.RenderResult`` of the combined plan."""
    outcomes: dict[str, VariantOutcome]


def out_dir(campaign: LoadedCampaign) -> Path:
    return Workspace.at(campaign.folder).out_dir


async def render_campaign(
    cplan: CampaignPlan,
    provider: Any,
    *,
    concurrency: int = 2,
    max_cost_units: float | None = None,
    events: Any = None,
    **engine_options: Any,
) -> CampaignRender:
    """Render the campaign's distinct requests as ONE plan through the engine.

    Why one plan: one journal (resume pays nothing twice, across variants too), one concurrency
    limit (Kling's per-account slots), one hard budget checked before every create. Requests are
    ordered by variant, so the first variant's spot is complete first. A request that fails marks
    every variant that uses it as failed, with the reason; the others go on.
    """
    from storyboard.render import engine

    combined = cplan.combined_plan()
    result = await engine.render(
        combined,
        cplan.campaign.project_dir,
        provider,
        concurrency=concurrency,
        max_cost_units=max_cost_units,
        events=events,
        **engine_options,
    )
    key_of = {request.id: request.key for request in combined.requests}
    problems: dict[str, str] = {}
    for request_id, reason in list(result.failed) + list(result.skipped):
        problems[key_of.get(request_id, request_id)] = f"{request_id}: {reason}"
    outcomes: dict[str, VariantOutcome] = {}
    for item in cplan.variants:
        vid = item.variant.id
        if not item.ok:
            outcomes[vid] = VariantOutcome(vid, "invalid", item.failure)
            continue
        reasons = [problems[u.request.key] for u in cplan.uses[vid] if u.request.key in problems]
        missing = [u.request.id for u in cplan.uses[vid] if u.request.key not in result.clips]
        if reasons:
            outcomes[vid] = VariantOutcome(vid, "failed", "; ".join(dict.fromkeys(reasons)))
        elif missing:
            outcomes[vid] = VariantOutcome(vid, "incomplete", f"not rendered: {', '.join(missing)}")
        else:
            outcomes[vid] = VariantOutcome(vid, "rendered")
    return CampaignRender(result, outcomes)


def rendered_clips(cplan: CampaignPlan, provider_name: str) -> dict[str, Path]:
    """Request key -> clip, for every request of the campaign already rendered by this provider."""
    from storyboard.render import engine

    return engine.rendered_clips(cplan.campaign.project_dir, provider_name, [use.request for use in cplan.distinct])


def assemble_variant(
    cplan: CampaignPlan, variant_id: str, clips: dict[str, Path], *, provider_name: str, progress: Any = None,
    failures: dict[str, str] | None = None,
) -> VariantOutcome:
    """Cut one variant into ``out/<variant-id>/``: every output, with subtitles, OTIO and a contact sheet."""
    from storyboard.assemble import timeline
    from storyboard.assemble.video import write_cut
    from storyboard.media import probe
    from storyboard.render.journal import task_facts

    item = cplan.variant_plan(variant_id)
    if not item.ok or item.loaded is None or item.plan is None:
        return VariantOutcome(variant_id, "invalid", item.failure)
    missing = [u.request for u in cplan.uses[variant_id] if u.request.key not in clips]
    failures = failures or {}
    failed = [f"{r.id} failed: {failures[r.key]}" for r in missing if r.key in failures]
    if failed:
        return VariantOutcome(variant_id, "failed", "; ".join(failed))
    if missing:
        shown = ", ".join(r.id for r in missing)
        return VariantOutcome(variant_id, "incomplete", f"not rendered yet: {shown} (run `storyboard campaign render`)")
    folder = out_dir(cplan.campaign) / variant_id
    folder.mkdir(parents=True, exist_ok=True)
    work_dir = Workspace.at(cplan.campaign.project_dir).assemble_work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    cuts = []
    mine = {key: path for key, path in clips.items() if any(u.request.key == key for u in cplan.uses[variant_id])}
    task_ids, charged = task_facts(cplan.campaign.project_dir, provider_name)
    for cut in timeline.build_timelines(item.loaded, item.plan, mine):
        callback = (lambda stage, done, total, _name=cut.name: progress(variant_id, _name, done, total)) if progress else None
        files = write_cut(cut, folder, work_dir=work_dir, task_ids=task_ids, costs=charged, progress=callback)
        video, report, subtitles, sheet = files.video, files.report, files.subtitles, files.contact_sheet
        facts = probe(video)
        cuts.append(
            CutFile(
                name=cut.name,
                video=video,
                duration=facts.duration,
                frames=facts.frames,
                aspect_ratio=cut.output.aspect_ratio,
                width=facts.width,
                height=facts.height,
                contact_sheet=sheet,
                subtitles=subtitles,
                path_taken=report.path_taken,
            )
        )
    return VariantOutcome(variant_id, "assembled", None, tuple(cuts))


def assemble_campaign(
    cplan: CampaignPlan,
    provider_name: str,
    *,
    only: list[str] | None = None,
    progress: Any = None,
    on_variant: Any = None,
) -> dict[str, VariantOutcome]:
    """Assemble every variant whose clips exist; a failure is recorded for that variant, never raised.

    Why catch broadly here: a campaign is dozens of independent spots; one broken cut (a missing
    font, an unreadable clip) must not cost the reviewer the other spots.
    """
    from storyboard.errors import ProviderError, StoryboardError
    from storyboard.media import MediaError

    clips = rendered_clips(cplan, provider_name)
    failures = render_failures(cplan, provider_name)
    outcomes: dict[str, VariantOutcome] = {}
    for item in cplan.variants:
        vid = item.variant.id
        if only and vid not in only:
            continue
        try:
            outcome = assemble_variant(cplan, vid, clips, provider_name=provider_name, progress=progress, failures=failures)
        except (StoryboardError, ProviderError, MediaError, OSError) as error:
            outcome = VariantOutcome(vid, "failed", f"assembly failed: {error}")
        outcomes[vid] = outcome
        if on_variant is not None:
            on_variant(outcome)
    return outcomes


def render_failures(cplan: CampaignPlan, provider_name: str) -> dict[str, str]:
    """Request key -> why its last render failed, from the journal (so assemble can say why)."""
    from storyboard.render.journal import Journal, journal_path

    project_dir = cplan.campaign.project_dir
    if not journal_path(project_dir).is_file():
        return {}
    keys = {use.request.key for use in cplan.distinct}
    with Journal.open(project_dir) as journal:
        return {r.key: r.error or "failed" for r in journal.records(provider_name) if r.key in keys and r.state == "failed"}


def charged_units(cplan: CampaignPlan, provider_name: str) -> dict[str, float]:
    """Request key -> units the provider charged (this and earlier attempts), from the journal."""
    from storyboard.render.journal import task_facts

    keys = {use.request.key for use in cplan.distinct}
    _, charged = task_facts(cplan.campaign.project_dir, provider_name)
    return {key: units for key, units in charged.items() if key in keys}


def write_review(cplan: CampaignPlan, outcomes: dict[str, VariantOutcome], provider_name: str) -> Path:
    """Write ``out/index.html`` for the campaign (cuts that exist from earlier runs are shown too)."""
    from storyboard.assemble.review import review_from_campaign, write_review_page
    from storyboard.render import engine

    folder = out_dir(cplan.campaign)
    merged = dict(outcomes)
    for item in cplan.variants:
        vid = item.variant.id
        if vid not in merged:
            merged[vid] = _existing_outcome(cplan, vid, folder)
    # A free provider charges nothing: show $0.00 rather than "unknown".
    charges = {} if engine.is_free(provider_name) else charged_units(cplan, provider_name)
    page = review_from_campaign(cplan, merged, folder, provider=provider_name, charged_units=charges)
    return write_review_page(page, folder)


def _existing_outcome(cplan: CampaignPlan, variant_id: str, folder: Path) -> VariantOutcome:
    """What an earlier ``campaign assemble`` left in ``out/<variant-id>/`` (for the review page)."""
    from storyboard.media import MediaError, probe

    item = cplan.variant_plan(variant_id)
    if not item.ok or item.loaded is None:
        return VariantOutcome(variant_id, "invalid", item.failure)
    outputs = item.loaded.storyboard.outputs
    names = [o.name for o in outputs] or ["main"]
    cuts = []
    for output_name in names:
        video = folder / variant_id / f"{output_name}.mp4"
        if not video.is_file():
            continue
        try:
            facts = probe(video)
        except MediaError:
            continue
        sheet = video.with_suffix(".contact.png")
        ratio = next((o.aspect_ratio for o in outputs if o.name == output_name), item.variant.aspect_ratio)
        cuts.append(CutFile(output_name, video, facts.duration, facts.frames, ratio, facts.width, facts.height,
                            sheet if sheet.is_file() else None))
    if cuts:
        return VariantOutcome(variant_id, "assembled", None, tuple(cuts))
    return VariantOutcome(variant_id, "planned")
