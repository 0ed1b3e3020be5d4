"""What a campaign shares: each variant planned alone, then every identical request paid for once.

Why its own module: planning a variant is the ordinary planner's job and loading it the campaign
loader's (``storyboard.load.campaign``); what only a campaign has is the question "which of these
requests are the same paid call?". Two requests with the same content key are, whatever variant
asks for them: a language variant that changes only captions reuses its sibling's video, and an
image-to-video request (its ratio follows the start frame) is rendered once and reframed for the
other ratios. The result, ``CampaignPlan``, is what rendering, assembling and the review page read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storyboard.errors import Problem, StoryboardInvalid, UserError
from storyboard.load.campaign import LoadedCampaign, Variant, load_variant, locate_variant_problems
from storyboard.load.loader import LoadedStoryboard
from storyboard.plan import Plan, Request, planner


@dataclass(frozen=True)
class VariantPlan:
    """A variant validated and planned, or the reason it could not be."""

    variant: Variant
    loaded: LoadedStoryboard | None
    plan: Plan | None
    problems: tuple[Problem, ...] = ()
    """Errors (when the variant is invalid) and advisories, located in the file to edit."""
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.plan is not None


@dataclass(frozen=True)
class RequestUse:
    """One request as one variant uses it: who pays for it, and how this variant gets its video."""

    variant_id: str
    request: Request
    owner: str
    """The first variant (in campaign order) that needs this request: it is rendered for that one."""
    reframed_from: str | None = None
    """The ratio of the video when this variant's output differs (its shots are reframed)."""

    @property
    def shared(self) -> bool:
        return self.owner != self.variant_id

    def note(self) -> str:
        bits = []
        if self.shared:
            bits.append(f"reuses {self.owner}'s video")
        if self.reframed_from:
            reason = (
                "image-to-video follows its start frame's ratio"
                if self.request.family in ("image2video", "motion-control") or _has_first_frame(self.request)
                else "the model renders one ratio"
            )
            bits.append(f"reframed from the {self.reframed_from} video ({reason})")
        return "; ".join(bits)


def _has_first_frame(request: Request) -> bool:
    if request.family == "image2video":
        return True
    return any(isinstance(item, dict) and item.get("type") == "first_frame" for item in request.body.get("image_list") or [])


@dataclass(frozen=True)
class CampaignPlan:
    """Every variant's plan, and the distinct requests the whole campaign pays for once."""

    campaign: LoadedCampaign
    variants: tuple[VariantPlan, ...]
    uses: dict[str, tuple[RequestUse, ...]]
    """Variant id -> its requests, with sharing."""
    distinct: tuple[RequestUse, ...]
    """The requests to render, each once, in variant order (the first variant's all come first)."""

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.variants)

    @property
    def failed(self) -> list[VariantPlan]:
        return [v for v in self.variants if not v.ok]

    def variant_plan(self, variant_id: str) -> VariantPlan:
        for item in self.variants:
            if item.variant.id == variant_id:
                return item
        raise KeyError(variant_id)

    def cost(self, variant_id: str | None = None) -> dict[str, float]:
        """Units and dollars before sharing (as if planned alone) and after (what it adds to the campaign)."""
        uses = self.uses.get(variant_id, ()) if variant_id else [u for us in self.uses.values() for u in us]
        before_units = sum(u.request.units for u in uses)
        before_usd = sum(u.request.usd for u in uses)
        after_units = sum(u.request.units for u in uses if not u.shared)
        after_usd = sum(u.request.usd for u in uses if not u.shared)
        return {
            "units_before": round(before_units, 4),
            "usd_before": round(before_usd, 4),
            "units_after": round(after_units, 4),
            "usd_after": round(after_usd, 4),
        }

    def combined_plan(self) -> Plan:
        """One plan of the distinct requests, ordered by variant, for the engine (one budget, one journal).

        Request ids become ``<variant-id>/<request id>`` so progress and journal lines say which
        spot a request belongs to.
        """
        requests = [use.request.model_copy(update={"id": f"{use.owner}/{use.request.id}"}) for use in self.distinct]
        units = round(sum(r.units for r in requests), 4)
        usd = round(sum(r.usd for r in requests), 4)
        shared = sum(1 for uses in self.uses.values() for u in uses if u.shared)
        notes = [f"{len(self.variants)} variants, {len(requests)} distinct requests ({shared} uses shared)"]
        return Plan(
            project=self.campaign.campaign.name,
            storyboard=str(self.campaign.file),
            requests=requests,
            units=units,
            usd=usd,
            notes=notes,
        )

    def variants_using(self, key: str) -> list[str]:
        return [vid for vid, uses in self.uses.items() if any(u.request.key == key for u in uses)]

    def to_json(self) -> dict[str, Any]:
        """The same data as the human view, for scripts: variants, requests, sharing, costs."""
        variants = []
        for item in self.variants:
            entry: dict[str, Any] = {
                "id": item.variant.id,
                "label": item.variant.label,
                "assignment": item.variant.assignment,
                "aspect_ratio": item.variant.aspect_ratio,
                "ok": item.ok,
                "problems": [str(p) for p in item.problems],
                "failure": item.failure,
            }
            if item.ok:
                entry["requests"] = [
                    {
                        "id": use.request.id,
                        "key": use.request.key,
                        "shots": [piece.shot_id for piece in use.request.shots],
                        "family": use.request.family,
                        "aspect_ratio": use.request.aspect_ratio,
                        "duration": use.request.duration,
                        "units": use.request.units,
                        "usd": use.request.usd,
                        "owner": use.owner,
                        "shared": use.shared,
                        "reframed_from": use.reframed_from,
                        "note": use.note(),
                    }
                    for use in self.uses[item.variant.id]
                ]
                entry["cost"] = self.cost(item.variant.id)
            variants.append(entry)
        combined = self.combined_plan()
        total_uses = sum(len(u) for u in self.uses.values())
        return {
            "campaign": self.campaign.campaign.name,
            "file": str(self.campaign.file),
            "storyboard": str(self.campaign.storyboard_file),
            "variables": {name: list(values) for name, values in self.campaign.campaign.matrix.items()},
            "variants": variants,
            "requests": {
                "uses": total_uses,
                "distinct": len(self.distinct),
                "shared": total_uses - len(self.distinct),
            },
            "cost": self.cost(),
            "plan": planner.plan_to_json(combined),
        }


def plan_variant(campaign: LoadedCampaign, variant: Variant) -> VariantPlan:
    """Load, check and plan one variant; an invalid variant is returned with its problems, not raised."""
    try:
        loaded = load_variant(campaign, variant)
    except StoryboardInvalid as error:
        return VariantPlan(variant, None, None, tuple(error.problems), _first_error(error.problems))
    except UserError as error:
        return VariantPlan(variant, None, None, (), str(error))
    # planner.plan runs every Kling and template check and raises with all of them: calling
    # planner.check first would compile the templates twice per variant (the cost that dominates
    # planning a large campaign, see benchmarks/campaign.py).
    try:
        the_plan = planner.plan(loaded)
    except StoryboardInvalid as error:
        located = tuple(locate_variant_problems(campaign, variant, list(loaded.advisories) + list(error.problems)))
        return VariantPlan(variant, loaded, None, located, _first_error(located))
    except UserError as error:
        return VariantPlan(variant, loaded, None, (), str(error))
    advisories = tuple(locate_variant_problems(campaign, variant, list(loaded.advisories)))
    return VariantPlan(variant, loaded, the_plan, advisories)


def _first_error(problems: tuple[Problem, ...] | list[Problem]) -> str:
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        return "invalid"
    return str(errors[0]) + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def plan_campaign(campaign: LoadedCampaign, only: list[str] | None = None) -> CampaignPlan:
    """Plan every variant (or the ``only`` ones) and share identical requests across them.

    Two requests with the same content key are the same paid call, whatever variant asks for it:
    a language variant that changes only captions reuses its sibling's video, and an aspect-ratio
    variant whose requests start from an image (image-to-video follows the image's ratio) gets the
    same keys, so its shots are reframed from the sibling's video. A text-to-video or omni request
    without a first frame carries ``aspect_ratio`` in its body, so it gets its own key and is
    rendered natively at that ratio.
    """
    chosen = [campaign.variant(vid) for vid in only] if only else list(campaign.variants)
    variant_plans = tuple(plan_variant(campaign, variant) for variant in chosen)
    owners: dict[str, str] = {}
    uses: dict[str, tuple[RequestUse, ...]] = {}
    distinct: list[RequestUse] = []
    rendered: set[str] = set()
    for item in variant_plans:
        if item.plan is None:
            continue
        vid = item.variant.id
        ratio = item.variant.aspect_ratio
        outputs = item.loaded.storyboard.outputs if item.loaded else []
        wanted: set[str] = {str(o.aspect_ratio) for o in outputs} or {ratio}
        mine = []
        for request in item.plan.requests:
            owner = owners.setdefault(request.key, vid)
            reframed = request.aspect_ratio if request.aspect_ratio not in wanted else None
            use = RequestUse(vid, request, owner, reframed)
            mine.append(use)
            if owner == vid and request.key not in rendered:
                rendered.add(request.key)
                distinct.append(use)
        uses[vid] = tuple(mine)
    return CampaignPlan(campaign, variant_plans, uses, tuple(distinct))
