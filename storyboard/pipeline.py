"""The application layer: check → plan → classify → render → assemble → run, ONCE, for everything.

Why one layer: the project path used to be wired in ``cli/`` and the campaign path again in
``campaign.py``, and each rule (the budget, which clips a cut is made from, where a preview cut
goes) lived wherever it was first needed, so ``run`` and ``assemble`` disagreed. Here a project is a
campaign of one variant: both become a ``Work`` (its spots, i.e. the storyboards to cut, and the
distinct requests they need, each once, in cut order), and every step below takes a ``Work``.

Rules that live here, and only here:

* **Budget up front.** ``quote`` classifies every request (reuse / resume / create, from
  ``engine.preview_plan``); a ``--max-cost`` that cannot cover what is still to pay is refused
  before anything is sent, naming what the plan needs; ``partial`` keeps the requests that fit, in
  cut order, and names the shots left out. The engine's own per-create budget stays as a net.
* **Cuts from one provider's clips, paid clips first.** A spot whose clips all exist from Kling is
  cut from them, with no keys needed and nothing rendered over them; preview cuts go to
  ``out/preview/`` (``Workspace.cuts_dir(free=True)``), never a paid cut's name.
* **Incremental outputs.** Each output records the key of what it was made from (the timeline's
  decisions, the clips' identity, the assembler's code, the side-file inputs) in
  ``Workspace.outputs_record``; an unchanged output is not rewritten.

It never prints: progress and results are ``Event`` dataclasses passed to ``on_event``; the only
question it asks (may I spend?) goes to the ``confirm`` callback. The CLI draws and asks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel

from storyboard.errors import Location, Problem, ProviderError, StoryboardError, StoryboardInvalid, UserError
from storyboard.media import MediaError
from storyboard.workspace import Workspace

if TYPE_CHECKING:
    from storyboard.assemble.review import ReviewPage
    from storyboard.assemble.timeline import LoadedLike, Timeline
    from storyboard.load.campaign import LoadedCampaign
    from storyboard.load.loader import LoadedStoryboard
    from storyboard.plan import Plan, Request
    from storyboard.plan.sharing import CampaignPlan
    from storyboard.render.engine import Decision, RenderEvent, RenderResult
    from storyboard.render.providers.base import Provider
    from storyboard.render.repair import RepairReport

BUDGET_EPSILON = 1e-9

# --------------------------------------------------------------------------------------------
# What the pipeline works on
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spot:
    """One storyboard to cut: the project itself (``id`` ""), or one campaign variant."""

    id: str
    loaded: LoadedStoryboard | None
    plan: Plan | None
    keys: tuple[str, ...] = ()
    """Request keys its cuts need."""
    failure: str | None = None
    """Why it cannot be planned (an invalid variant); None when it can."""

    @property
    def ok(self) -> bool:
        return self.plan is not None and self.loaded is not None

    @property
    def label(self) -> str:
        return self.id or "project"


@dataclass(frozen=True)
class Work:
    """What one command works on: a project (one spot) or a campaign (a spot per variant)."""

    name: str
    state_dir: Path
    """The folder whose ``.storyboard/`` holds the journal and clips (the storyboard's folder)."""
    out_root: Path
    """The folder whose ``out/`` receives the cuts (the campaign file's folder for a campaign)."""
    spots: tuple[Spot, ...]
    requests: tuple[Request, ...]
    """The distinct requests, each once, in cut order (a campaign's first variant first)."""
    campaign: CampaignPlan | None = None
    storyboard_file: str = ""
    problems: tuple[Problem, ...] = ()
    """Advisories found by ``check`` (errors stop loading; an invalid variant is a spot with a failure)."""

    @property
    def is_campaign(self) -> bool:
        return self.campaign is not None

    @property
    def plan(self) -> Plan:
        """The distinct requests as one plan for the engine (one journal, one budget)."""
        from storyboard.plan import Plan

        units = round(sum(r.units for r in self.requests), 4)
        usd = round(sum(r.usd for r in self.requests), 4)
        return Plan(project=self.name, storyboard=self.storyboard_file, requests=list(self.requests), units=units, usd=usd)

    def cuts_dir(self, spot: Spot, free: bool) -> Path:
        """``out/`` (paid) or ``out/preview/`` (free), plus ``<variant-id>/`` for a campaign."""
        base = Workspace.at(self.out_root).cuts_dir(free)
        return base / spot.id if spot.id else base

    def spot(self, spot_id: str) -> Spot:
        for spot in self.spots:
            if spot.id == spot_id:
                return spot
        raise KeyError(spot_id)


def _cut_order(loaded: LoadedStoryboard, plan: Plan) -> list[Request]:
    """The plan's requests in the order the cut first shows them (unused ones last, in plan order)."""
    board = loaded.storyboard
    shot_ids = [c.shot for c in board.cut.shots] if board.cut.shots is not None else [s.id for s in board.shots]
    first: dict[str, int] = {}
    for index, shot_id in enumerate(shot_ids):
        try:
            request, _ = plan.request_for_shot(shot_id)
        except KeyError:
            continue
        first.setdefault(request.key, index)
    ordered = sorted(enumerate(plan.requests), key=lambda pair: (first.get(pair[1].key, len(shot_ids)), pair[0]))
    return [request for _, request in ordered]


def fixed_takes(loaded: LoadedStoryboard) -> dict[str, int]:
    """Shot id -> the take the storyboard asks for (``take:`` on a shot)."""
    return {shot.id: int(shot.take) for shot in loaded.storyboard.shots if shot.take}


def take_choices(state_dir: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Take-1 key -> the take the review chose (newest approved, else newest), and why, from the journal.

    Empty without a journal; reading never creates one (``validate`` and ``plan`` stay side-effect free).
    """
    from storyboard.render.journal import Journal

    if not Workspace.at(state_dir).journal_file.is_file():
        return {}, {}
    with Journal.open(state_dir) as journal:
        choices = journal.take_choices()
        reasons = {}
        for record in journal.takes():
            if choices.get(record.base_key) == record.take and record.reason:
                reasons[record.base_key] = record.reason
    return choices, reasons


def _at_takes(loaded: LoadedStoryboard, plan: Plan, choices: tuple[dict[str, int], dict[str, str]] | None = None
              ) -> tuple[Plan, dict[str, str]]:
    from storyboard.plan.takes import with_takes

    chosen, reasons = choices if choices is not None else take_choices(loaded.project_dir)
    return with_takes(plan, fixed=fixed_takes(loaded), chosen=chosen, reasons=reasons)


def plan_at_takes(loaded: LoadedStoryboard, plan: Plan) -> Plan:
    """The plan with each request at the take its storyboard or review chose (what render will send)."""
    return _at_takes(loaded, plan)[0]


def project_work(loaded: LoadedStoryboard, plan: Plan) -> Work:
    """A project as a campaign of one variant (each request at the take its storyboard or review chose)."""
    plan, _ = _at_takes(loaded, plan)
    ordered = tuple(_cut_order(loaded, plan))
    spot = Spot("", loaded, plan, tuple(r.key for r in plan.requests))
    return Work(plan.project, loaded.project_dir, loaded.project_dir, (spot,), ordered, None, plan.storyboard)


def campaign_work(cplan: CampaignPlan) -> Work:
    """A campaign: a spot per variant; the distinct requests variant by variant, each in cut order.

    Request ids become ``<variant-id>/<request id>`` (as ``CampaignPlan.combined_plan`` names
    them) so progress and journal lines say which spot a request belongs to.
    """
    spots: list[Spot] = []
    requests: list[Request] = []
    seen: set[str] = set()
    distinct_keys = {use.request.key: use.owner for use in cplan.distinct}
    choices = take_choices(cplan.campaign.project_dir)
    for item in cplan.variants:
        vid = item.variant.id
        if not item.ok or item.loaded is None or item.plan is None:
            spots.append(Spot(vid, item.loaded, None, (), item.failure or "invalid"))
            continue
        plan, renamed = _at_takes(item.loaded, item.plan, choices)
        original = {new_key: old_key for old_key, new_key in renamed.items()}
        keys = tuple(renamed.get(use.request.key, use.request.key) for use in cplan.uses[vid])
        spots.append(Spot(vid, item.loaded, plan, keys))
        for request in _cut_order(item.loaded, plan):
            if request.key in seen or distinct_keys.get(original.get(request.key, request.key)) != vid:
                continue
            seen.add(request.key)
            requests.append(request.model_copy(update={"id": f"{vid}/{request.id}"}))
    campaign = cplan.campaign
    problems = tuple(p for item in cplan.variants for p in item.problems)
    return Work(campaign.campaign.name, campaign.project_dir, campaign.folder, tuple(spots), tuple(requests), cplan,
                str(campaign.file), problems)


# --------------------------------------------------------------------------------------------
# Events (the CLI draws them; scripts may ignore them)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderChosen:
    """Which provider renders; ``fallback`` when it is the free preview because no keys were found."""

    provider: str
    free: bool
    fallback: bool = False


@dataclass(frozen=True)
class PaidClipsUsed:
    """Spots cut from paid clips that are all there already: nothing is rendered for them."""

    provider: str
    spots: tuple[str, ...]


@dataclass(frozen=True)
class QuoteRow:
    """One distinct request as this render sees it: reuse, resume or create, and what it may cost."""

    request: Request
    decision: Decision
    units: float
    """Units this run may newly spend on it (0 for reuse, a running task, or a free provider)."""
    included: bool = True
    """False when ``partial`` left it out (it did not fit the budget)."""


@dataclass(frozen=True)
class Quote:
    """What a render will reuse, resume and pay, checked against the budget before anything is sent."""

    provider: str
    free: bool
    rows: tuple[QuoteRow, ...]
    budget: float | None
    needed: float
    """Units every request still to pay needs together."""
    left_out: tuple[str, ...] = ()
    """Shots (``variant/shot`` in a campaign) whose requests ``partial`` left out."""

    @property
    def to_spend(self) -> float:
        """Units this render may spend: the included requests still to pay."""
        return round(sum(row.units for row in self.rows if row.included), 6)

    @property
    def included(self) -> list[Request]:
        return [row.request for row in self.rows if row.included]

    def count(self, decision: Decision) -> int:
        return sum(1 for row in self.rows if row.included and row.decision == decision)


@dataclass(frozen=True)
class RenderQuoted:
    quote: Quote


@dataclass(frozen=True)
class RequestProgress:
    """The engine's own event for one request (state, elapsed, units spent so far)."""

    event: RenderEvent


@dataclass(frozen=True)
class RenderFinished:
    result: RenderResult
    free: bool
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class CutProgress:
    spot: str
    cut: str
    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class CutFile:
    """One finished file of a spot (``out/[preview/][<variant-id>/]<output>.mp4``) and what was checked."""

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
    seconds: float = 0.0
    """How long writing it took (0 when unchanged)."""
    provider: str = ""
    """Whose clips the cut holds (``kling`` or ``preview``)."""
    unchanged: bool = False
    """True when nothing it is made from changed, so it was not rewritten."""
    files: tuple[Path, ...] = ()
    """Every file of the cut: video, SRT, OTIO (+EDL), contact sheet."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CutWritten:
    spot: str
    cut: CutFile


VariantStatus = Literal["planned", "invalid", "rendered", "failed", "incomplete", "assembled"]


@dataclass(frozen=True)
class VariantOutcome:
    """Where a spot (a variant, or the project: ``variant_id`` "") ended up, and why when not finished."""

    variant_id: str
    status: VariantStatus
    reason: str | None = None
    cuts: tuple[CutFile, ...] = ()
    provider: str = ""


SpotOutcome = VariantOutcome


@dataclass(frozen=True)
class SpotFinished:
    outcome: VariantOutcome


@dataclass(frozen=True)
class ReviewWritten:
    page: Path


Event = (ProviderChosen | PaidClipsUsed | RenderQuoted | RequestProgress | RenderFinished | CutProgress | CutWritten | SpotFinished
         | ReviewWritten)
EventSink = Callable[[Event], None]
Confirm = Callable[[Quote], bool]


def _ignore(_event: Event) -> None:
    """The default event sink: scripts that do not care see nothing."""


# --------------------------------------------------------------------------------------------
# check and plan
# --------------------------------------------------------------------------------------------


def check(path: Path | str) -> tuple[LoadedStoryboard, Plan, list[Problem]]:
    """Load and plan a storyboard and run every rule ``run`` applies later; raise with all errors.

    Why everything here: a problem found after money was spent (a trim that leaves nothing of a
    shot, a transition longer than a shot) is the worst kind. So the loader, the model and
    template rules, and the cut rules computed from the PLANNED durations run before any request
    is sent, and one run shows every problem. Returns the advisories.
    """
    from storyboard.load import loader
    from storyboard.plan import planner

    try:
        loaded = loader.load(path)
    except StoryboardInvalid as error:
        raise StoryboardInvalid(error.problems + _partial_problems(error, error.problems)) from None
    planned_problems, plan = planner.check_and_plan(loaded)
    problems = list(loaded.advisories) + planned_problems
    if plan is None or any(p.severity == "error" for p in problems):
        raise StoryboardInvalid(problems)
    cut = cut_problems(loaded, plan)
    if any(p.severity == "error" for p in cut):
        raise StoryboardInvalid(problems + cut)
    return loaded, plan, problems + cut


def cut_problems(loaded: LoadedStoryboard, plan: Plan) -> list[Problem]:
    """The cut rules (trims, transitions against shot lengths, colours, cards, fonts, bed, outputs)
    and the text rules (every drawn character present in its font), from the PLANNED durations.

    ``timeline.check_cut`` is the same code ``build_timelines`` runs at assembly, so check and
    assemble never disagree; a font problem both checks see is reported once.
    """
    from storyboard.assemble import timeline
    from storyboard.assemble.fonts import check_texts

    try:
        found = timeline.check_cut(_timeline_view(loaded), plan) + check_texts(_timeline_view(loaded), plan)
    except UserError as error:
        return [Problem(Location(str(loaded.file)), str(error))]
    unique: list[Problem] = []
    seen: set[tuple[object, str]] = set()
    for problem in found:
        if (problem.location, problem.message) not in seen:
            seen.add((problem.location, problem.message))
            unique.append(problem)
    return unique


def _timeline_view(loaded: LoadedStoryboard) -> LoadedLike:
    """The loaded storyboard as the timeline's protocol (its attributes are read-only there)."""
    return cast("LoadedLike", loaded)


def _partial_problems(error: StoryboardInvalid, known: list[Problem]) -> list[Problem]:
    """Model and template problems of the part of a broken storyboard the loader could salvage.

    Best effort by design: these findings come on top of the structural errors, so a failure
    here must never hide those; it only means the rest is reported on the next run.
    """
    from storyboard.load.loader import LoadedStoryboard
    from storyboard.plan import planner

    if not isinstance(error.partial, LoadedStoryboard):
        return []
    try:
        found = planner.check(error.partial)
    except Exception:  # noqa: BLE001 - extra findings are optional; the structural ones stand
        return []
    seen = {(p.location, p.message) for p in known}
    return [p for p in found if (p.location, p.message) not in seen]


def load_project(path: Path | str) -> tuple[Work, list[Problem]]:
    """Check and plan a project; its ``Work`` and the advisories."""
    loaded, plan, problems = check(path)
    return dataclasses.replace(project_work(loaded, plan), problems=tuple(problems)), problems


def load_campaign(path: Path | str, only: Sequence[str] | None = None) -> Work:
    """Plan a campaign (every variant, or ``only`` these); invalid variants are spots with a failure."""
    from storyboard.load.campaign import load_campaign as read_campaign
    from storyboard.plan.sharing import plan_campaign

    return campaign_work(plan_campaign(read_campaign(path), only=list(only) if only else None))


def is_campaign(path: Path | str) -> bool:
    """A campaign file or a folder holding one (and no storyboard.yaml of its own)."""
    from storyboard.load.campaign import CAMPAIGN_FILE_NAMES
    from storyboard.load.loader import STORYBOARD_FILE_NAMES

    candidate = Path(path).expanduser()
    if candidate.is_dir():
        if any((candidate / name).is_file() for name in STORYBOARD_FILE_NAMES):
            return False
        return any((candidate / name).is_file() for name in CAMPAIGN_FILE_NAMES)
    return candidate.name in CAMPAIGN_FILE_NAMES


# --------------------------------------------------------------------------------------------
# classify and quote (the budget, before anything is sent)
# --------------------------------------------------------------------------------------------


def classify(work: Work, provider_name: str, requests: Iterable[Request] | None = None) -> list[QuoteRow]:
    """Per distinct request: reuse (its clip is verified), resume (a task exists) or create."""
    from storyboard.plan import Plan
    from storyboard.render import engine

    wanted = list(work.requests if requests is None else requests)
    plan = Plan(project=work.name, storyboard=work.storyboard_file, requests=wanted, units=0, usd=0)
    return [QuoteRow(request, decision, units) for request, decision, units in
            engine.preview_plan(plan, work.state_dir, provider_name)]


def quote(work: Work, provider_name: str, *, budget: float | None = None, partial: bool = False,
          requests: Iterable[Request] | None = None) -> Quote:
    """Classify the requests and hold them against the budget; raise ``BudgetExceeded`` up front.

    Why up front: a budget that stops a render half-way leaves half a cut paid for and no cut.
    Without ``partial`` a budget that cannot cover every request still to pay is refused, naming
    the amount the plan needs. With it, the requests that fit are kept in cut order (a prefix,
    so a kept shot never waits for one left out), and the shots left out are named.
    """
    from storyboard.errors import BudgetExceeded
    from storyboard.plan import UNIT_PRICE_USD
    from storyboard.render import engine

    free = engine.is_free(provider_name)
    rows = classify(work, provider_name, requests)
    needed = round(sum(row.units for row in rows), 6)
    if budget is None or needed <= budget + BUDGET_EPSILON:
        return Quote(provider_name, free, tuple(rows), budget, needed)
    cost = f"{needed:g} units (${needed * UNIT_PRICE_USD:.2f})"
    if not partial:
        raise BudgetExceeded(
            f"--max-cost {budget:g} units cannot cover this plan: the requests still to pay need {cost}; nothing was sent",
            f"raise --max-cost to {needed:g}u, or add --partial to render only what fits, in cut order",
        )
    quoted = {row.request.key for row in rows}
    kept: list[QuoteRow] = []
    chosen: set[str] = set()
    spent = 0.0
    full = False
    for row in rows:
        include = True  # a clip that is there, or a task already paid for, needs nothing upstream
        if row.units > 0:
            upstream_ok = all(key in chosen for key in row.request.depends_on if key in quoted)
            include = not full and upstream_ok and spent + row.units <= budget + BUDGET_EPSILON
            full = full or not include  # a prefix in cut order: nothing after the first that does not fit
            spent += row.units if include else 0.0
        if include:
            chosen.add(row.request.key)
        kept.append(dataclasses.replace(row, included=include))
    if not any(row.included and row.units > 0 for row in kept):
        first = next(row for row in rows if row.units > 0)
        raise BudgetExceeded(
            f"--max-cost {budget:g} units covers none of the requests still to pay: the first in cut order, "
            f"{first.request.id}, needs {first.units:g} units (the whole plan {cost}); nothing was sent",
            f"raise --max-cost to at least {first.units:g}u",
        )
    left_out = tuple(_shot_names(work, [row.request for row in kept if not row.included]))
    return Quote(provider_name, free, tuple(kept), budget, needed, left_out)


def _shot_names(work: Work, requests: Iterable[Request]) -> list[str]:
    names: list[str] = []
    for request in requests:
        prefix = request.id.rsplit("/", 1)[0] + "/" if work.is_campaign and "/" in request.id else ""
        names.extend(prefix + piece.shot_id for piece in request.shots)
    return names


# --------------------------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------------------------


@dataclass
class RenderOutcome:
    """What a render did, for the whole work and for each spot."""

    quote: Quote
    result: RenderResult
    outcomes: dict[str, VariantOutcome]
    """Spot id -> rendered / failed / incomplete / invalid."""

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.quote.left_out


def choose_provider(requested: str | None, work: Work) -> ProviderChosen:
    """The provider a render uses: the one asked for, else Kling when keys are set, else preview."""
    from storyboard.render import engine
    from storyboard.render.providers import choose_provider_name

    name = choose_provider_name(requested, work.state_dir)
    return ProviderChosen(name, engine.is_free(name), fallback=requested is None and engine.is_free(name))


def settled_spots(work: Work) -> dict[str, str]:
    """Spot id -> the paid provider whose clips of it are ALL there (paid clips win, no keys needed)."""
    from storyboard.render import engine
    from storyboard.render.providers import PROVIDER_NAMES

    settled: dict[str, str] = {}
    for name in PROVIDER_NAMES:
        if engine.is_free(name):
            continue
        present = Workspace.at(work.state_dir).rendered_clips(name, _keyed(work.requests))
        for spot in work.spots:
            if spot.ok and spot.id not in settled and all(key in present for key in spot.keys):
                settled[spot.id] = name
    return settled


def _keyed(requests: Iterable[Request]) -> list[Request]:
    return list(requests)


async def render_async(
    work: Work,
    *,
    provider: str | None = None,
    max_cost: float | None = None,
    partial: bool = False,
    confirm: Confirm | None = None,
    on_event: EventSink | None = None,
    concurrency: int = 2,
    skip_settled: bool = False,
    provider_options: dict[str, Any] | None = None,
    **engine_options: Any,
) -> RenderOutcome:
    """Quote, confirm, render: every request the spots need (resuming earlier runs).

    ``confirm(quote)`` is asked only when money would be spent; without it nothing is spent
    (``BudgetExceeded``-like refusal). ``skip_settled`` leaves out spots whose paid clips are all
    there (``run``: they are cut from those, not re-rendered on the preview).
    """
    from storyboard.render.providers import open_provider

    emit = on_event or _ignore
    chosen = choose_provider(provider, work)
    settled = settled_spots(work) if skip_settled and chosen.free else {}
    wanted = _wanted_requests(work, settled)
    if settled:
        emit(PaidClipsUsed(next(iter(settled.values())), tuple(settled)))
    if wanted or not settled:
        emit(chosen)
    the_quote = quote(work, chosen.provider, budget=max_cost, partial=partial, requests=wanted)
    emit(RenderQuoted(the_quote))
    if not the_quote.free and the_quote.to_spend > 0 and (confirm is None or not confirm(the_quote)):
        raise SpendDeclined("nothing was sent: spending was not confirmed",
                            "confirm the spend (--yes on the command line, yes=True in Python)")
    if all(row.decision == "reuse" for row in the_quote.rows if row.included):
        result = _reused_result(work, chosen.provider, the_quote)
    else:
        options = dict(provider_options or {})
        if chosen.provider == "preview":
            options.setdefault("crop_ratios", preview_crop_ratios(work))
        the_provider = open_provider(chosen.provider, work.state_dir, **options)
        try:
            result = await _engine_render(work, the_provider, the_quote.included, concurrency=concurrency,
                                          max_cost_units=max_cost, on_event=emit, **engine_options)
        finally:
            await the_provider.aclose()
    emit(RenderFinished(result, the_quote.free, the_quote.left_out))
    return RenderOutcome(the_quote, result, _render_outcomes(work, result, wanted))


def preview_crop_ratios(work: Work) -> dict[str, tuple[float, ...]]:
    """Request key -> the aspect ratios (width / height) of every output that centre-crops its clip.

    Why the preview needs them: an image-to-video clip follows its start frame, so a 16:9 clip in
    a 9:16 cut loses two thirds of its width; the preview lays its cards and shot badges out inside
    what every cropping output keeps (``reframe: blur`` outputs keep the whole clip).
    """
    from storyboard.plan import capabilities as caps

    ratios: dict[str, set[float]] = {}
    for spot in work.spots:
        if not spot.ok or spot.loaded is None:
            continue
        board = spot.loaded.storyboard
        crops = ([caps.ASPECT_RATIOS[o.aspect_ratio] for o in board.outputs if o.reframe == "crop"]
                 if board.outputs else [caps.ASPECT_RATIOS[board.defaults.aspect_ratio]])
        for key in spot.keys:
            ratios.setdefault(key, set()).update(crops)
    return {key: tuple(sorted(found)) for key, found in ratios.items()}


async def repair_journal_async(work: Work, *, provider: str | None = None,
                               provider_options: dict[str, Any] | None = None) -> RepairReport:
    """Rebuild the journal of ``work``'s folder from the clip cache and the account (pays nothing).

    The provider is chosen as a render would choose it (Kling when credentials are set); with the
    free preview only the cache is read.
    """
    from storyboard.render.providers import open_provider
    from storyboard.render.repair import repair

    chosen = choose_provider(provider, work)
    the_provider = open_provider(chosen.provider, work.state_dir, **(provider_options or {}))
    try:
        return await repair(work.plan, work.state_dir, the_provider)
    finally:
        await the_provider.aclose()


class SpendDeclined(UserError):
    """Money would be spent and nobody confirmed it; nothing was sent."""


def _wanted_requests(work: Work, settled: dict[str, str]) -> list[Request]:
    """The distinct requests of the spots not settled by paid clips, in cut order."""
    if not settled:
        return list(work.requests)
    needed = {key for spot in work.spots if spot.ok and spot.id not in settled for key in spot.keys}
    return [request for request in work.requests if request.key in needed]


def _reused_result(work: Work, provider_name: str, the_quote: Quote) -> RenderResult:
    """Every clip is there and verified: the engine (lock, journal, probes again) has nothing to do."""
    from storyboard.render.engine import RenderResult

    result = RenderResult(provider=provider_name)
    for request in the_quote.included:
        result.reused.append(request.id)
        result.clips[request.key] = Workspace.at(work.state_dir).clip(provider_name, request.key)
    return result


async def _engine_render(work: Work, provider: Provider, requests: Sequence[Request], *, concurrency: int,
                         max_cost_units: float | None, on_event: EventSink, **engine_options: Any) -> RenderResult:
    from storyboard.plan import Plan
    from storyboard.render import engine

    plan = Plan(project=work.name, storyboard=work.storyboard_file, requests=list(requests),
                units=round(sum(r.units for r in requests), 4), usd=round(sum(r.usd for r in requests), 4))
    user_events = engine_options.pop("events", None)

    def forward(event: RenderEvent) -> None:
        if user_events is not None:
            user_events(event)
        on_event(RequestProgress(event))

    return await engine.render(plan, work.state_dir, provider, concurrency=concurrency,
                               max_cost_units=max_cost_units, events=forward, **engine_options)


def _render_outcomes(work: Work, result: RenderResult, wanted: Iterable[Request] | None = None) -> dict[str, VariantOutcome]:
    """Per spot: rendered, failed (with the reasons) or incomplete (what is not rendered)."""
    key_of = {request.id: request.key for request in work.requests}
    problems: dict[str, str] = {}
    for request_id, reason in list(result.failed) + list(result.skipped):
        problems[key_of.get(request_id, request_id)] = f"{request_id}: {reason}"
    wanted_keys = None if wanted is None else {r.key for r in wanted}
    outcomes: dict[str, VariantOutcome] = {}
    for spot in work.spots:
        if not spot.ok:
            outcomes[spot.id] = VariantOutcome(spot.id, "invalid", spot.failure)
            continue
        if wanted_keys is not None and not any(key in wanted_keys for key in spot.keys):
            continue
        reasons = [problems[key] for key in spot.keys if key in problems]
        ids = {r.key: r.id for r in work.requests}
        missing = [ids.get(key, key[:12]) for key in spot.keys if key not in result.clips]
        if reasons:
            outcomes[spot.id] = VariantOutcome(spot.id, "failed", "; ".join(dict.fromkeys(reasons)), provider=result.provider)
        elif missing:
            outcomes[spot.id] = VariantOutcome(spot.id, "incomplete", f"not rendered: {', '.join(missing)}",
                                               provider=result.provider)
        else:
            outcomes[spot.id] = VariantOutcome(spot.id, "rendered", provider=result.provider)
    return outcomes


# --------------------------------------------------------------------------------------------
# assemble (one provider's clips per cut; unchanged outputs are not rewritten)
# --------------------------------------------------------------------------------------------


def cut_provider(work: Work, spot: Spot, wanted: str | None = None) -> str | None:
    """Whose clips to cut ``spot`` from: ``wanted`` if given, else a paid provider whose clips are all
    there, else a free one whose clips are all there; None when no provider has them all."""
    from storyboard.render.providers import PROVIDER_NAMES, choose_provider_name

    names = [choose_provider_name(wanted, work.state_dir)] if wanted else list(PROVIDER_NAMES)
    for name in names:
        present = Workspace.at(work.state_dir).rendered_clips(name, work.requests)
        if all(key in present for key in spot.keys):
            return name
    return None


def assemble(
    work: Work,
    *,
    provider: str | None = None,
    providers: dict[str, str] | None = None,
    only_outputs: Sequence[str] | None = None,
    only_spots: Sequence[str] | None = None,
    failures: dict[str, str] | None = None,
    on_event: EventSink | None = None,
    force: bool = False,
) -> dict[str, VariantOutcome]:
    """Cut every spot whose clips exist; one spot's failure is recorded for it, never raised.

    ``providers`` fixes the provider per spot id (``run`` passes what it rendered with); otherwise
    ``cut_provider`` decides (paid clips win). Why catch broadly per spot: a campaign is dozens
    of independent spots, and one broken cut must not cost the reviewer the others. For a
    project (one spot) the error is raised, so the CLI shows it as it is.
    """
    emit = on_event or _ignore
    failures = dict(failures or {})
    if not failures:
        failures = render_failures(work, provider or "kling")
    outcomes: dict[str, VariantOutcome] = {}
    for spot in work.spots:
        if only_spots and spot.id not in only_spots:
            continue
        try:
            outcome = _assemble_spot(work, spot, (providers or {}).get(spot.id) or provider, only_outputs,
                                     failures, emit, force)
        except (StoryboardError, ProviderError, MediaError, OSError) as error:
            if not work.is_campaign:
                raise
            outcome = VariantOutcome(spot.id, "failed", f"assembly failed: {error}")
        outcomes[spot.id] = outcome
        emit(SpotFinished(outcome))
    return outcomes


def _assemble_spot(work: Work, spot: Spot, wanted: str | None, only_outputs: Sequence[str] | None,
                   failures: dict[str, str], emit: EventSink, force: bool) -> VariantOutcome:
    from storyboard.assemble import timeline
    from storyboard.render.journal import task_facts
    from storyboard.render.providers import provider_is_free  # not the engine: cutting renders nothing

    if not spot.ok or spot.loaded is None or spot.plan is None:
        return VariantOutcome(spot.id, "invalid", spot.failure)
    name = cut_provider(work, spot, wanted)
    if name is None:
        ids = {r.key: r.id for r in work.requests}
        present = Workspace.at(work.state_dir).rendered_clips(wanted or "preview", work.requests)
        missing = [key for key in spot.keys if key not in present]
        failed = [f"{ids.get(key, key[:12])} failed: {failures[key]}" for key in missing if key in failures]
        if failed:
            return VariantOutcome(spot.id, "failed", "; ".join(failed))
        shown = ", ".join(ids.get(key, key[:12]) for key in missing)
        command = "storyboard campaign render" if work.is_campaign else "storyboard render"
        if not work.is_campaign:
            raise UserError(f"not every clip is rendered yet ({shown}): no cut was assembled",
                            f"run `{command}` first (clips already rendered are kept and not paid again)")
        return VariantOutcome(spot.id, "incomplete", f"not rendered yet: {shown} (run `{command}`)")
    free = provider_is_free(name)
    clips = Workspace.at(work.state_dir).rendered_clips(name, [r for r in work.requests if r.key in spot.keys])
    folder = work.cuts_dir(spot, free)
    task_ids, charged = task_facts(work.state_dir, name)
    notes = review_notes(work.state_dir)
    record = OutputsRecord.read(Workspace.at(work.out_root))
    cuts = []
    for cut in timeline.build_timelines(_timeline_view(spot.loaded), spot.plan, clips, only=list(only_outputs) if only_outputs else None):
        mine = {segment.request.key for segment in cut.shots}
        side: dict[str, Any] = {"task_ids": {k: v for k, v in task_ids.items() if k in mine},
                                "costs": {k: v for k, v in charged.items() if k in mine}}
        reviewed = {segment.request.key: notes[_base(segment.request)] for segment in cut.shots
                    if _base(segment.request) in notes}
        if reviewed:  # only then: a cut nobody reviewed keeps its output key (not remade on upgrade)
            side["reviews"] = reviewed
        made = _write_or_keep(work, spot, cut, folder, name, side, record, emit, force)
        cuts.append(made)
        emit(CutWritten(spot.id, made))
    return VariantOutcome(spot.id, "assembled", None, tuple(cuts), provider=name)


def _write_or_keep(work: Work, spot: Spot, cut: Timeline, folder: Path, provider_name: str, side: dict[str, Any],
                   record: OutputsRecord, emit: EventSink, force: bool) -> CutFile:
    """Write one cut, unless the record says it was made from exactly this already."""
    from storyboard.assemble.video import write_cut
    from storyboard.media import probe

    key = output_key(cut, provider_name, side)
    video = folder / f"{cut.name}.mp4"
    kept = None if force else record.unchanged(video, key)
    if kept is not None:
        return kept
    work_dir = Workspace.at(work.state_dir).assemble_work_dir
    work_dir.mkdir(parents=True, exist_ok=True)

    def progress(stage: str, done: int, total: int) -> None:
        emit(CutProgress(spot.id, cut.name, stage, done, total))

    files = write_cut(cut, folder, work_dir=work_dir, task_ids=side["task_ids"], costs=side["costs"], progress=progress,
                      reviews=side.get("reviews"))
    facts = probe(files.video)
    vtt = files.subtitles.with_suffix(".vtt") if files.subtitles else None
    written = tuple(p for p in (files.video, files.subtitles, vtt, files.timeline, files.edl, files.contact_sheet)
                    if p and p.is_file())
    made = CutFile(
        name=cut.name, video=files.video, duration=facts.duration, frames=facts.frames,
        aspect_ratio=cut.output.aspect_ratio, width=facts.width, height=facts.height,
        contact_sheet=files.contact_sheet, subtitles=files.subtitles, path_taken=files.report.path_taken,
        seconds=files.report.seconds, provider=provider_name, files=written, notes=tuple(files.report.notes),
    )
    record.store(made, key)
    return made


# ---- the outputs record ---------------------------------------------------------------------

ASSEMBLER_MODULES = ("storyboard.assemble.timeline", "storyboard.assemble.video", "storyboard.assemble.sidefiles")
"""The code that decides what a cut's files hold: a change to any of them remakes every output."""

_assembler_version: str | None = None


def assembler_version() -> str:
    """A hash of the assembler's own source and of the ffmpeg it drives.

    Why the source and not a number someone must remember to bump: any change to how a cut is
    made (an encoder setting, a caption layout) must remake the outputs, and a forgotten bump
    would silently keep stale files.
    """
    global _assembler_version
    if _assembler_version is None:
        import importlib

        digest = hashlib.sha256()
        for name in ASSEMBLER_MODULES:
            module = importlib.import_module(name)
            digest.update(Path(module.__file__ or "").read_bytes())
        from storyboard.media import ffmpeg_exe

        digest.update(ffmpeg_exe().encode())
        _assembler_version = digest.hexdigest()[:16]
    return _assembler_version


def _stable(value: Any) -> Any:
    """A JSON-ready, order-stable form of a timeline's decisions.

    Files are named by what identifies their bytes (size and modification time; clips are also
    named by their content key), so an edited font or bed remakes the cut.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _stable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseModel):
        return _stable(value.model_dump(mode="json"))
    if isinstance(value, Path):
        return _file_identity(value)
    if isinstance(value, Fraction):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and os.path.isfile(value):
        return _file_identity(Path(value))
    return value


def _file_identity(path: Path) -> Any:
    try:
        facts = path.stat()
    except OSError:
        return str(path)
    return {"path": str(path), "size": facts.st_size, "mtime_ns": facts.st_mtime_ns}


def output_key(cut: Timeline, provider_name: str, side: dict[str, Any]) -> str:
    """The key of what an output is made from: timeline, clips, assembler, side-file inputs."""
    payload = {
        "timeline": _stable(cut),
        "provider": provider_name,
        "assembler": assembler_version(),
        "sidefiles": _stable(side),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class OutputsRecord:
    """``.storyboard/outputs.json``: per output video, the key it was made from and its files."""

    workspace: Workspace
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, workspace: Workspace) -> OutputsRecord:
        try:
            entries = json.loads(workspace.outputs_record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        return cls(workspace, entries if isinstance(entries, dict) else {})

    def _name(self, video: Path) -> str:
        try:
            return str(video.relative_to(self.workspace.root))
        except ValueError:
            return str(video)

    def unchanged(self, video: Path, key: str) -> CutFile | None:
        """The recorded cut when it was made from ``key`` and every file is still there as written."""
        entry = self.entries.get(self._name(video))
        if not entry or entry.get("key") != key:
            return None
        files = {self.workspace.root / name: size for name, size in entry.get("files", {}).items()}
        for path, size in files.items():
            try:
                if path.stat().st_size != size:
                    return None
            except OSError:
                return None
        facts = entry["facts"]
        sheet = self.workspace.root / facts["contact_sheet"] if facts.get("contact_sheet") else None
        subtitles = self.workspace.root / facts["subtitles"] if facts.get("subtitles") else None
        return CutFile(
            name=facts["name"], video=video, duration=facts["duration"], frames=facts["frames"],
            aspect_ratio=facts["aspect_ratio"], width=facts["width"], height=facts["height"],
            contact_sheet=sheet, subtitles=subtitles, path_taken=facts.get("path_taken", ""),
            provider=facts.get("provider", ""), unchanged=True, files=tuple(files),
        )

    def store(self, cut: CutFile, key: str) -> None:
        """Record a freshly written cut and save the record atomically."""
        facts = {
            "name": cut.name, "duration": cut.duration, "frames": cut.frames, "aspect_ratio": cut.aspect_ratio,
            "width": cut.width, "height": cut.height, "path_taken": cut.path_taken, "provider": cut.provider,
            "contact_sheet": self._name(cut.contact_sheet) if cut.contact_sheet else None,
            "subtitles": self._name(cut.subtitles) if cut.subtitles else None,
        }
        files = {self._name(path): path.stat().st_size for path in cut.files if path.is_file()}
        self.entries[self._name(cut.video)] = {"key": key, "files": files, "facts": facts}
        target = self.workspace.outputs_record
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(self.entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temp, target)


def render_failures(work: Work, provider_name: str) -> dict[str, str]:
    """Request key -> why its last render failed, from the journal (so assemble can say why)."""
    from storyboard.render.journal import Journal, journal_exists

    if not journal_exists(work.state_dir):
        return {}
    keys = {request.key for request in work.requests}
    with Journal.open(work.state_dir) as journal:
        return {r.key: r.error or "failed" for r in journal.records(provider_name) if r.key in keys and r.state == "failed"}


# --------------------------------------------------------------------------------------------
# run (render what is missing, then cut every spot from the right clips)
# --------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What ``run`` did: the render (None when nothing needed rendering) and each spot's outcome."""

    render: RenderOutcome | None
    outcomes: dict[str, VariantOutcome]
    review_page: Path | None = None

    @property
    def ok(self) -> bool:
        render_ok = self.render is None or self.render.ok
        return render_ok and all(o.status == "assembled" for o in self.outcomes.values())

    @property
    def cuts(self) -> list[CutFile]:
        return [cut for outcome in self.outcomes.values() for cut in outcome.cuts]


async def run_async(
    work: Work,
    *,
    provider: str | None = None,
    max_cost: float | None = None,
    partial: bool = False,
    confirm: Confirm | None = None,
    on_event: EventSink | None = None,
    concurrency: int = 2,
    review: bool = True,
    provider_options: dict[str, Any] | None = None,
    **engine_options: Any,
) -> RunOutcome:
    """Render what is missing, then cut every spot.

    Paid clips win: without an explicit provider, a spot whose Kling clips are all there is cut
    from them, and previews are rendered only for the others, so ``run`` without keys after a
    Kling render never replaces a paid cut (and preview cuts live in ``out/preview/`` anyway).
    """
    emit = on_event or _ignore
    settled = settled_spots(work) if provider is None else {}
    rendered = await render_async(
        work, provider=provider, max_cost=max_cost, partial=partial, confirm=confirm, on_event=emit,
        concurrency=concurrency, skip_settled=provider is None, provider_options=provider_options, **engine_options,
    )
    render_provider = rendered.result.provider
    providers = {spot.id: settled.get(spot.id, render_provider) for spot in work.spots}
    ready = [spot.id for spot in work.spots
             if spot.id in settled or rendered.outcomes.get(spot.id, VariantOutcome(spot.id, "planned")).status == "rendered"]
    skipped = {vid: o for vid, o in rendered.outcomes.items() if vid not in ready}
    if not work.is_campaign and not ready:
        raise UserError(
            "not every clip is rendered, so no cut was assembled",
            "fix what failed above and run again: clips already rendered are kept and not paid again"
            if not rendered.quote.left_out else
            f"left out by --partial: {', '.join(rendered.quote.left_out)}; run again with a larger --max-cost",
        )
    failures = {key: reason for key, reason in render_failures(work, render_provider).items()}
    made = assemble(work, providers=providers, only_spots=ready, failures=failures, on_event=emit) if ready else {}
    outcomes = {spot.id: skipped.get(spot.id) or made.get(spot.id) or VariantOutcome(spot.id, "planned")
                for spot in work.spots}
    page = None
    if work.campaign is not None and review:
        for page in write_reviews(work.campaign, outcomes, render_provider):
            emit(ReviewWritten(page))
    elif review and outcomes.get("") is not None and outcomes[""].cuts:
        page = write_project_review(work, outcomes[""], outcomes[""].provider or render_provider)
        emit(ReviewWritten(page))
    return RunOutcome(rendered, outcomes, page)


# --------------------------------------------------------------------------------------------
# Campaign forms (kept for the campaign's tests, benchmarks and the review page)
# --------------------------------------------------------------------------------------------


@dataclass
class CampaignRender:
    """The engine's result for the combined plan, and what it means for each variant."""

    result: Any
    """``engine.RenderResult`` of the combined plan."""
    outcomes: dict[str, VariantOutcome]


async def render_campaign(
    cplan: CampaignPlan,
    provider: Provider,
    *,
    concurrency: int = 2,
    max_cost_units: float | None = None,
    events: Callable[[RenderEvent], None] | None = None,
    **engine_options: Any,
) -> CampaignRender:
    """Render the campaign's distinct requests as ONE plan through the engine, with an open provider.

    Why one plan: one journal (resume pays nothing twice, across variants too), one concurrency
    limit (Kling's per-account slots), one hard budget checked before every create. Requests are
    ordered by variant, so the first variant's spot is complete first. A request that fails marks
    every variant that uses it as failed, with the reason; the others go on.
    """
    work = campaign_work(cplan)
    result = await _engine_render(work, provider, work.requests, concurrency=concurrency,
                                  max_cost_units=max_cost_units, on_event=_ignore, events=events, **engine_options)
    return CampaignRender(result, _render_outcomes(work, result))


def rendered_clips(cplan: CampaignPlan, provider_name: str) -> dict[str, Path]:
    """Request key -> clip, for every request of the campaign already rendered by this provider."""
    return Workspace.at(cplan.campaign.project_dir).rendered_clips(provider_name, [u.request for u in cplan.distinct])


def assemble_campaign(
    cplan: CampaignPlan,
    provider_name: str | None = None,
    *,
    only: list[str] | None = None,
    on_event: EventSink | None = None,
) -> dict[str, VariantOutcome]:
    """Assemble every variant whose clips exist (paid clips first unless ``provider_name`` is given)."""
    work = campaign_work(cplan)
    return assemble(work, provider=provider_name, only_spots=only, on_event=on_event)


def charged_units(cplan: CampaignPlan, provider_name: str) -> dict[str, float]:
    """Request key -> units the provider charged (this and earlier attempts), from the journal."""
    from storyboard.render.journal import task_facts

    keys = {use.request.key for use in cplan.distinct}
    _, charged = task_facts(cplan.campaign.project_dir, provider_name)
    return {key: units for key, units in charged.items() if key in keys}


def write_review(cplan: CampaignPlan, outcomes: dict[str, VariantOutcome], provider_name: str) -> Path:
    """Write the review page beside the cuts it shows: ``out/index.html`` (paid) or
    ``out/preview/index.html`` (free); cuts that exist from earlier runs are shown too."""
    from storyboard.assemble.review import PAGE_NAME, render_review_page, write_review_page
    from storyboard.render import engine

    free = engine.is_free(provider_name)
    folder = Workspace.at(cplan.campaign.folder).cuts_dir(free)
    if len(cplan.variants) < len(cplan.campaign.variants):
        # A partial assemble (-v a -v b) must not drop the other variants from the page: show them
        # all, the others with what is on disk beside the page.
        from storyboard.plan.sharing import plan_campaign

        cplan = plan_campaign(cplan.campaign)
    merged = dict(outcomes)
    for item in cplan.variants:
        vid = item.variant.id
        if vid not in merged or (not merged[vid].cuts and merged[vid].status == "planned"):
            merged[vid] = _existing_outcome(cplan, vid, folder)
    # A free provider charges nothing: show $0.00 rather than "unknown".
    charges = {} if free else charged_units(cplan, provider_name)
    page = review_from_campaign(cplan, merged, folder, provider=provider_name, charged_units=charges)
    page = with_review_details(page, campaign_work(cplan), merged, provider_name, folder)
    existing = folder / PAGE_NAME
    try:
        if existing.read_text(encoding="utf-8") == render_review_page(page):
            return existing  # an unchanged rerun rewrites nothing, the page included
    except OSError:
        pass
    return write_review_page(page, folder)


def write_reviews(cplan: CampaignPlan, outcomes: dict[str, VariantOutcome], default_provider: str) -> list[Path]:
    """One review page per provider whose cuts these outcomes hold (paid and preview never mix).

    An outcome with no cuts (failed, invalid, incomplete) is shown on every page; a variant cut
    from another provider shows, on this page, whatever an earlier run left beside it.
    """
    providers = list(dict.fromkeys(o.provider for o in outcomes.values() if o.cuts and o.provider)) or [default_provider]
    pages = []
    for name in providers:
        mine = {vid: o for vid, o in outcomes.items() if not o.cuts or o.provider == name}
        pages.append(write_review(cplan, mine, name))
    return pages


def _existing_outcome(cplan: CampaignPlan, variant_id: str, folder: Path) -> VariantOutcome:
    """What an earlier assemble left in ``<folder>/<variant-id>/`` (for the review page)."""
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


def out_dir(campaign: LoadedCampaign) -> Path:
    """The campaign's paid cuts folder (``out/``)."""
    return Workspace.at(campaign.folder).out_dir


def run_sync(coroutine: Any) -> Any:
    """Run a pipeline coroutine from synchronous code (the CLI and the public API)."""
    import asyncio  # here: validate and assemble never run a coroutine (issue 13, start-up)

    return asyncio.run(coroutine)


def review_from_campaign(cplan: CampaignPlan, outcomes: dict[str, VariantOutcome], out_dir: Path,
                         provider: str = "", charged_units: dict[str, float] | None = None) -> ReviewPage:
    """The review page's data for a campaign run: every planned variant, with its cuts when they exist.

    It lives here, not in ``assemble.review``, because it reads the pipeline's outcomes: the page
    module only knows its own data types, so it never imports a higher stage.
    ``charged_units`` maps request keys to the units the provider charged (from the journal); a
    variant's charge is what its own (not shared) requests cost, so the charges add up to the bill.
    """
    from storyboard.assemble.review import ReviewCut, ReviewPage, ReviewShot, ReviewVariant, relative_link
    from storyboard.plan import UNIT_PRICE_USD

    out_dir = Path(out_dir)
    campaign = cplan.campaign.campaign
    variables = {
        variable: [(name, value.label or (str(value.value) if value.value is not None else name)) for name, value in values.items()]
        for variable, values in campaign.matrix.items()
    }
    variants = []
    total_charged = None
    for item in cplan.variants:
        vid = item.variant.id
        outcome = outcomes.get(vid)
        cost = cplan.cost(vid) if item.ok else {"usd_before": 0.0, "usd_after": 0.0}
        charged = None
        if charged_units is not None and item.ok:
            owned = [u.request.key for u in cplan.uses[vid] if not u.shared]
            charged = round(sum(charged_units.get(k, 0.0) for k in owned) * UNIT_PRICE_USD, 4)
            total_charged = (total_charged or 0.0) + charged
        cuts = []
        if outcome is not None:
            for cut in outcome.cuts:
                cuts.append(
                    ReviewCut(
                        name=cut.name,
                        video=relative_link(cut.video, out_dir),
                        duration=cut.duration,
                        aspect_ratio=cut.aspect_ratio,
                        width=cut.width,
                        height=cut.height,
                        contact_sheet=relative_link(cut.contact_sheet, out_dir) if cut.contact_sheet else None,
                        subtitles=None,
                    )
                )
        shots = []
        if item.ok:
            for use in cplan.uses[vid]:
                for piece in use.request.shots:
                    shots.append(ReviewShot(piece.shot_id, piece.prompt, piece.caption, use.request.id, use.note()))
        status = outcome.status if outcome is not None else ("planned" if item.ok else "invalid")
        reason = outcome.reason if outcome is not None else item.failure
        variants.append(
            ReviewVariant(
                id=vid,
                label=item.variant.label,
                assignment=dict(item.variant.assignment),
                status=status,
                reason=reason,
                usd_estimated=cost["usd_after"],
                usd_alone=cost["usd_before"],
                usd_charged=charged,
                cuts=tuple(cuts),
                shots=tuple(shots),
            )
        )
    totals = cplan.cost()
    return ReviewPage(
        title=campaign.name,
        variables=variables,
        variants=tuple(variants),
        usd_before=totals["usd_before"],
        usd_after=totals["usd_after"],
        usd_charged=None if total_charged is None else round(total_charged, 4),
        provider=provider,
    )


# --------------------------------------------------------------------------------------------
# The review loop: takes on the page, verdicts in the journal, re-takes of what was rejected
# --------------------------------------------------------------------------------------------

REVIEW_FORMAT = "storyboard-review/1"


def _base(request: Request) -> str:
    return request.base_key or request.key


def review_notes(state_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Take-1 key -> every verdict on any take of it (for the cut's OTIO markers); empty without a journal."""
    from storyboard.render.journal import Journal

    if not Workspace.at(state_dir).journal_file.is_file():
        return {}
    with Journal.open(state_dir) as journal:
        verdicts = journal.verdicts()
    notes: dict[str, list[dict[str, Any]]] = {}
    for verdict in verdicts:
        notes.setdefault(verdict.base_key, []).append(
            {"take": verdict.take, "shot": verdict.shot, "verdict": verdict.verdict, "comment": verdict.comment})
    return notes


def vtt_data_url(vtt: Path) -> str:
    """The captions inline as a ``data:`` URL: Chromium refuses a ``<track>`` file from ``file://``
    (each file is its own origin there), and the page must work opened from the disk."""
    import base64

    return "data:text/vtt;charset=utf-8;base64," + base64.b64encode(vtt.read_bytes()).decode("ascii")


def _review_cut(cut: CutFile, folder: Path) -> Any:
    """A cut as the page shows it: relative links, its WebVTT captions and a poster frame."""
    from storyboard.assemble.review import ReviewCut, relative_link, write_poster

    vtt = cut.video.with_suffix(".vtt")
    poster = write_poster(cut.video, cut.video.with_suffix(".poster.jpg")) if cut.video.is_file() else None
    return ReviewCut(
        name=cut.name, video=relative_link(cut.video, folder), duration=cut.duration, aspect_ratio=cut.aspect_ratio,
        width=cut.width, height=cut.height,
        contact_sheet=relative_link(cut.contact_sheet, folder) if cut.contact_sheet else None,
        subtitles=vtt_data_url(vtt) if vtt.is_file() else None,
        poster=relative_link(poster, folder) if poster else None,
    )


def _review_shots(work: Work, spot: Spot, provider: str, folder: Path, notes: dict[str, str]) -> tuple[Any, ...]:
    """Each shot of a spot with every take of its request (clips side by side, recorded verdicts)."""
    from storyboard.assemble.review import ReviewShot, ReviewTake, relative_link
    from storyboard.plan.takes import take_key
    from storyboard.render.journal import Journal

    if spot.plan is None:
        return ()
    takes: dict[str, set[int]] = {}
    verdicts: dict[tuple[str, int, str], tuple[str, str]] = {}
    if Workspace.at(work.state_dir).journal_file.is_file():
        with Journal.open(work.state_dir) as journal:
            for record in journal.takes():
                takes.setdefault(record.base_key, set()).add(record.take)
            for verdict in journal.verdicts():
                verdicts[(verdict.base_key, verdict.take, verdict.shot)] = (verdict.verdict, verdict.comment)
    workspace = Workspace.at(work.state_dir)
    shots = []
    for request in spot.plan.requests:
        base = _base(request)
        numbers = sorted({1, request.take} | takes.get(base, set()))
        for piece in request.shots:
            row = []
            for number in numbers:
                key = take_key(base, number)
                clip = workspace.clip(provider, key)
                said = verdicts.get((base, number, piece.shot_id), ("", ""))
                row.append(ReviewTake(number, key, relative_link(clip, folder) if clip.is_file() else None,
                                      number == request.take, said[0], said[1]))
            note = notes.get(piece.shot_id) or ("; ".join(n for n in request.notes if n.startswith(("take ", "rendered again"))))
            shots.append(ReviewShot(piece.shot_id, piece.prompt, piece.caption, request.id, note, spot=spot.id,
                                    base_key=base, takes=tuple(row)))
    return tuple(shots)


def with_review_details(page: ReviewPage, work: Work, outcomes: dict[str, VariantOutcome], provider: str,
                        folder: Path) -> ReviewPage:
    """The campaign page with the review loop's parts: takes per shot, WebVTT captions, posters."""
    variants = []
    for variant in page.variants:
        try:
            spot = work.spot(variant.id)
        except KeyError:
            variants.append(variant)
            continue
        outcome = outcomes.get(variant.id)
        cuts = tuple(_review_cut(cut, folder) for cut in outcome.cuts) if outcome is not None else variant.cuts
        notes = {shot.id: shot.note for shot in variant.shots}
        shots = _review_shots(work, spot, provider, folder, notes) or variant.shots
        variants.append(dataclasses.replace(variant, cuts=cuts, shots=shots))
    return dataclasses.replace(page, variants=tuple(variants))


def _existing_project_cuts(work: Work, folder: Path) -> tuple[CutFile, ...]:
    from storyboard.media import probe

    spot = work.spots[0]
    if spot.loaded is None:
        return ()
    outputs = spot.loaded.storyboard.outputs
    cuts = []
    for output in outputs or []:
        video = folder / f"{output.name}.mp4"
        if video.is_file():
            try:
                facts = probe(video)
            except MediaError:
                continue
            sheet = video.with_suffix(".contact.png")
            cuts.append(CutFile(output.name, video, facts.duration, facts.frames, str(output.aspect_ratio), facts.width,
                                facts.height, sheet if sheet.is_file() else None))
    if not outputs and (folder / "main.mp4").is_file():
        video = folder / "main.mp4"
        facts = probe(video)
        sheet = video.with_suffix(".contact.png")
        cuts.append(CutFile("main", video, facts.duration, facts.frames, "", facts.width, facts.height,
                            sheet if sheet.is_file() else None))
    return tuple(cuts)


def write_project_review(work: Work, outcome: VariantOutcome | None, provider_name: str) -> Path:
    """A project's review page: ``out/index.html`` (paid) or ``out/preview/index.html`` (free), one card."""
    from storyboard.assemble.review import PAGE_NAME, ReviewPage, ReviewVariant, render_review_page, write_review_page
    from storyboard.plan import UNIT_PRICE_USD
    from storyboard.render import engine
    from storyboard.render.journal import task_facts

    free = engine.is_free(provider_name)
    folder = Workspace.at(work.out_root).cuts_dir(free)
    spot = work.spots[0]
    cut_files = outcome.cuts if outcome is not None and outcome.cuts else _existing_project_cuts(work, folder)
    charged = None
    if not free:
        _, units = task_facts(work.state_dir, provider_name)
        known = [units[r.key] for r in work.requests if r.key in units]
        charged = round(sum(known) * UNIT_PRICE_USD, 4) if known else None
    usd = round(sum(r.usd for r in work.requests), 4)
    status = outcome.status if outcome is not None else ("assembled" if cut_files else "planned")
    variant = ReviewVariant(
        id="", label=work.name, assignment={}, status=status, reason=outcome.reason if outcome else None,
        usd_estimated=usd, usd_alone=usd, usd_charged=0.0 if free else charged,
        cuts=tuple(_review_cut(cut, folder) for cut in cut_files),
        shots=_review_shots(work, spot, provider_name, folder, {}),
    )
    page = ReviewPage(title=work.name, variables={}, variants=(variant,), usd_before=usd, usd_after=usd,
                      usd_charged=0.0 if free else charged, provider=provider_name)
    existing = folder / PAGE_NAME
    try:
        if existing.read_text(encoding="utf-8") == render_review_page(page):
            return existing
    except OSError:
        pass
    return write_review_page(page, folder)


@dataclass(frozen=True)
class ShotVerdict:
    """One shot verdict of a ``review.json``: which spot, shot and take (by the key the page showed)."""

    spot: str
    shot: str
    key: str
    verdict: str
    comment: str = ""


def read_review_file(path: Path | str) -> tuple[list[ShotVerdict], list[dict[str, Any]]]:
    """The shot verdicts and cut verdicts of an exported ``review.json``; a clear error naming the entry."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{path}: cannot read the review file: {error.strerror or error}",
                        "export it from the review page (Export review.json)") from None
    except ValueError as error:
        raise UserError(f"{path}: not JSON: {error}", "export it again from the review page") from None
    if not isinstance(data, dict) or data.get("format") != REVIEW_FORMAT:
        raise UserError(f"{path}: not a storyboard review file (format {REVIEW_FORMAT!r} expected)",
                        "export it from the review page (Export review.json)")
    shots = []
    for index, entry in enumerate(data.get("shots") or []):
        where = f"{path}: shots[{index}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected an object", "export the file again from the review page")
        verdict = entry.get("verdict") or ""
        if verdict not in ("approved", "rejected", ""):
            raise UserError(f"{where}.verdict: {verdict!r} is not approved or rejected", "use approved or rejected")
        for name in ("shot", "key"):
            if not isinstance(entry.get(name), str) or not entry.get(name):
                raise UserError(f"{where}.{name}: missing", "export the file again from the review page")
        shots.append(ShotVerdict(str(entry.get("spot") or ""), entry["shot"], entry["key"], verdict,
                                 str(entry.get("comment") or "")))
    cuts = [entry for entry in data.get("cuts") or [] if isinstance(entry, dict)]
    return shots, cuts


@dataclass(frozen=True)
class Retake:
    """A request the review sends back: a new take (rejected), or rendered again because it is chained."""

    spot: str
    request: Request
    reason: str


@dataclass
class ApplyOutcome:
    """What ``review apply`` did: the verdicts recorded, the re-takes, the render and the new cuts."""

    recorded: int
    retakes: list[Retake]
    run: RunOutcome | None
    ignored: list[str] = field(default_factory=list)
    """Verdicts that name no shot of the current plan (said why)."""


def _find_shot(work: Work, verdict: ShotVerdict) -> tuple[Spot, Request, int] | None:
    """The spot and request of a verdict, and the take its key names (any take of the shot's request)."""
    from storyboard.plan.takes import take_key

    try:
        spot = work.spot(verdict.spot)
    except KeyError:
        return None
    if spot.plan is None:
        return None
    try:
        request, _ = spot.plan.request_for_shot(verdict.shot)
    except KeyError:
        return None
    base = _base(request)
    for number in range(1, 100):
        if take_key(base, number) == verdict.key:
            return spot, request, number
    return None


async def review_apply_async(
    path: Path | str,
    review_file: Path | str,
    *,
    provider: str | None = None,
    max_cost: float | None = None,
    confirm: Confirm | None = None,
    on_event: EventSink | None = None,
    concurrency: int = 2,
    provider_options: dict[str, Any] | None = None,
    **engine_options: Any,
) -> ApplyOutcome:
    """Record the review's verdicts, re-take exactly the rejected shots, render, reassemble, rewrite the page.

    Approved takes are never rendered again: a rejection of a take someone approved is ignored
    (said why). A rejected shot's request gets a new take (the next number); requests chained from
    it by ``start_frame: previous`` are rendered again with their new start frame (the plan says
    why). Nothing is recorded as a new take until the spend is confirmed, so a declined apply
    leaves the project as it was (its verdicts aside).
    """
    from storyboard.render.journal import Journal

    emit = on_event or _ignore
    shots, _cuts = read_review_file(review_file)
    campaign = _reviews_campaign(path, shots)

    def reload() -> Work:
        return load_campaign(path) if campaign else load_project(path)[0]

    work = reload()
    found: list[tuple[ShotVerdict, Spot, Request, int]] = []
    ignored: list[str] = []
    for verdict in shots:
        hit = _find_shot(work, verdict)
        label = f"{verdict.spot + '/' if verdict.spot else ''}{verdict.shot}"
        if hit is None:
            ignored.append(f"{label}: no such shot or take in the current plan (the storyboard changed since the review?)")
            continue
        found.append((verdict, *hit))
    approved = {(_base(r), take) for v, _, r, take in found if v.verdict == "approved"}
    with Journal.open(work.state_dir) as journal:
        for verdict, _spot, request, take in found:
            if verdict.verdict:
                journal.record_verdict(_base(request), take, verdict.shot, cast(Any, verdict.verdict), verdict.comment)
        existing = {(t.base_key, t.take) for t in journal.takes()}
    rejected: dict[str, tuple[Spot, Request, ShotVerdict]] = {}
    for verdict, spot, request, take in found:
        base = _base(request)
        label = f"{spot.id + '/' if spot.id else ''}{verdict.shot}"
        if verdict.verdict != "rejected":
            continue
        if (base, take) in approved:
            ignored.append(f"{label}: take {take} is approved elsewhere in the review; approved takes are not rendered again")
            continue
        if take != request.take:
            ignored.append(f"{label}: take {take} is not the one in the cut (take {request.take}); nothing re-taken")
            continue
        rejected.setdefault(base, (spot, request, verdict))
    newest = {base: max([1] + [t for b, t in existing if b == base]) for base in rejected}
    chosen = {base: newest[base] + 1 for base in rejected}
    reasons = {base: f"re-take: rejected in review{': ' + v.comment if v.comment else ''}" for base, (_, _, v) in rejected.items()}
    retakes: list[Retake] = []
    if rejected:
        choices, old_reasons = take_choices(work.state_dir)
        retake_work = _with_choices(work, {**choices, **chosen}, {**old_reasons, **reasons})
        before = {r.key for r in work.requests}
        for spot in retake_work.spots:
            for request in spot.plan.requests if spot.plan else []:
                if request.key in before or any(r.request.key == request.key for r in retakes):
                    continue
                why = reasons.get(_base(request)) if request.take > 1 and _base(request) in chosen else next(
                    (n for n in request.notes if n.startswith("rendered again")), "rendered again")
                retakes.append(Retake(spot.id, request, why or "re-take"))
        chosen_provider = choose_provider(provider, retake_work).provider
        the_quote = quote(retake_work, chosen_provider, budget=max_cost)
        if not the_quote.free and the_quote.to_spend > 0 and (confirm is None or not confirm(the_quote)):
            raise SpendDeclined("nothing was sent and no take was added: spending was not confirmed",
                                "confirm the spend (--yes on the command line, yes=True in Python); the verdicts are recorded")
        with Journal.open(work.state_dir) as journal:
            for base, (_spot, request, _verdict) in rejected.items():
                take_request = next(r.request for r in retakes if _base(r.request) == base)
                journal.add_take(base, chosen[base], take_request.key, request.id, reasons[base])
        # Planned again from the journal: the same code path every later command takes.
        work = reload()
    confirmed: Confirm | None = (lambda _quote: True) if rejected else confirm
    # Only the cuts the review touched are rendered and cut again (their OTIO carries the comments);
    # the page is written from the whole campaign, the others from what is on disk.
    new_keys = {retake.request.key for retake in retakes}
    touched = {verdict.spot for verdict, *_ in found} | {s.id for s in work.spots if new_keys & set(s.keys)}
    spots = tuple(s for s in work.spots if s.id in touched and s.ok)
    needed = {key for s in spots for key in s.keys}
    work = dataclasses.replace(work, spots=spots, requests=tuple(r for r in work.requests if r.key in needed))
    if not spots:
        return ApplyOutcome(sum(1 for v, *_ in found if v.verdict), retakes, None, ignored)
    outcome = await run_async(work, provider=provider, max_cost=max_cost, confirm=confirmed, on_event=emit,
                              concurrency=concurrency, provider_options=provider_options, **engine_options)
    return ApplyOutcome(sum(1 for v, *_ in found if v.verdict), retakes, outcome, ignored)


def _reviews_campaign(path: Path | str, shots: list[ShotVerdict]) -> bool:
    """Whether a review is of a campaign: the path is one, or its folder holds one and the review names variants.

    (A campaign's folder usually holds its base ``storyboard.yaml`` too, which alone reads as a project.)
    """
    from storyboard.load.campaign import CAMPAIGN_FILE_NAMES

    if is_campaign(path):
        return True
    folder = Path(path).expanduser()
    folder = folder if folder.is_dir() else folder.parent
    return any(v.spot for v in shots) and any((folder / name).is_file() for name in CAMPAIGN_FILE_NAMES)


def _with_choices(work: Work, chosen: dict[str, int], reasons: dict[str, str]) -> Work:
    """``work`` planned again with these take choices (what a re-take would render, before recording it)."""
    from storyboard.plan.takes import with_takes

    if work.campaign is not None:
        spots, requests, seen = [], [], set()
        for spot in work.spots:
            if spot.plan is None or spot.loaded is None:
                spots.append(spot)
                continue
            original = next(item.plan for item in work.campaign.variants if item.variant.id == spot.id)
            assert original is not None
            plan, renamed = with_takes(original, fixed=fixed_takes(spot.loaded), chosen=chosen, reasons=reasons)
            keys = tuple(renamed.get(k, k) for k in (u.request.key for u in work.campaign.uses[spot.id]))
            spots.append(dataclasses.replace(spot, plan=plan, keys=keys))
            for request in _cut_order(spot.loaded, plan):
                if request.key not in seen:
                    seen.add(request.key)
                    requests.append(request.model_copy(update={"id": f"{spot.id}/{request.id}"}))
        return dataclasses.replace(work, spots=tuple(spots), requests=tuple(requests))
    spot = work.spots[0]
    assert spot.loaded is not None
    from storyboard.plan import planner

    plan, _ = with_takes(planner.plan(spot.loaded), fixed=fixed_takes(spot.loaded), chosen=chosen, reasons=reasons)
    # Not project_work: it would apply the journal's choices again over these.
    single = Spot("", spot.loaded, plan, tuple(r.key for r in plan.requests))
    return dataclasses.replace(work, spots=(single,), requests=tuple(_cut_order(spot.loaded, plan)))
