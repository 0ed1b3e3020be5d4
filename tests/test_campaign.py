"""Campaigns: expansion and stable ids, errors located in the right file, request sharing, and
rendering the whole campaign as one plan against the fake Kling (budget, failure isolation, resume).

The only thing faked is Kling itself (``tests/fakes/kling.py`` behind httpx's MockTransport); the
loader, planner, engine, journal, timeline and assembler are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard import pipeline as pipelines
from storyboard.errors import StoryboardInvalid
from storyboard.load import campaign as campaigns
from storyboard.load.campaign import load_campaign, slug, variant_id
from storyboard.media import probe
from storyboard.plan.sharing import plan_campaign
from storyboard.render.journal import Journal
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from tests.conftest import write_image
from tests.fakes.kling import FakeKling

BASE = """\
version: 1
name: Test spot
defaults:
  model: kling-v3
  mode: std
  aspect_ratio: "16:9"
  strategy: per_shot
references:
  hero: refs/hero.png
vars:
  blend: House
shots:
  - id: open
    duration: 3
    start_frame: hero
    prompt: steam rises from a cup of {{ vars.blend }} coffee
  - id: close
    duration: 3
    prompt: a bag of {{ vars.blend }} beans on a wooden table
    caption: Good morning
cut:
  transition: cut
  audio:
    loudness_lufs: null
outputs:
  - name: main
    aspect_ratio: "16:9"
    height: 144
    fps: 24
"""

CAMPAIGN = """\
version: 1
name: Test campaign
storyboard: storyboard.yaml
matrix:
  product:
    espresso:
      vars: {blend: Espresso}
    latte:
      label: Caffè latte
      vars: {blend: Latte}
      set:
        references.hero.image: refs/latte.png
  language:
    en: {}
    de:
      set:
        shots.close.caption: Guten Morgen
  aspect_ratio: ["16:9", "9:16"]
"""


def make_campaign(tmp_path: Path, campaign: str = CAMPAIGN, base: str = BASE, name: str = "shop") -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "storyboard.yaml").write_text(textwrap.dedent(base), encoding="utf-8")
    (folder / "campaign.yaml").write_text(textwrap.dedent(campaign), encoding="utf-8")
    write_image(folder / "refs" / "hero.png", 1024, 576)
    write_image(folder / "refs" / "latte.png", 1024, 576)
    return folder


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


# ---- expansion and ids ------------------------------------------------------------------------


def test_ids_are_built_from_value_names_in_matrix_order(tmp_path):
    loaded = load_campaign(make_campaign(tmp_path))
    assert [v.id for v in loaded.variants] == [
        "espresso-en-16x9", "espresso-en-9x16", "espresso-de-16x9", "espresso-de-9x16",
        "latte-en-16x9", "latte-en-9x16", "latte-de-16x9", "latte-de-9x16",
    ]
    latte = loaded.variant("latte-de-9x16")
    assert latte.values == {"product": "latte", "language": "de", "aspect_ratio": "9:16"}
    assert latte.document["vars"]["blend"] == "Latte" and latte.document["vars"]["language"] == "de"
    assert latte.document["defaults"]["aspect_ratio"] == "9:16"
    assert latte.document["references"]["hero"]["image"] == "refs/latte.png"
    assert latte.document["shots"][1]["caption"] == "Guten Morgen"
    assert latte.document["outputs"] == [{"name": "9x16", "aspect_ratio": "9:16", "height": 144, "fps": 24}]
    assert latte.labels["product"] == "Caffè latte" and latte.aspect_ratio == "9:16"


def test_slugs():
    assert slug("16:9") == "16x9"
    assert slug("Oat Latte") == "oat-latte"
    assert slug("pt_BR") == "pt-br"
    assert variant_id({"a": "Flat White", "b": "9:16"}) == "flat-white-9x16"


def test_ids_and_documents_survive_reordering_and_additions(tmp_path):
    before = load_campaign(make_campaign(tmp_path, name="before"))
    grown = CAMPAIGN.replace(
        "  product:\n    espresso:",
        "  product:\n    mocha:\n      vars: {blend: Mocha}\n    espresso:",
    ).replace("    en: {}\n    de:", "    fr: {}\n    de:").replace(
        "  aspect_ratio: [\"16:9\", \"9:16\"]", "  aspect_ratio: [\"9:16\", \"1:1\", \"16:9\"]\n"
    ) + "    # en comes last now\n"
    grown = grown.replace("    fr: {}\n", "    fr: {}\n    en: {}\n", 1)
    after = load_campaign(make_campaign(tmp_path, grown, name="after"))
    after_by_id = {v.id: v for v in after.variants}
    assert len(after.variants) == 3 * 3 * 3
    for variant in before.variants:
        assert variant.id in after_by_id, variant.id
        assert after_by_id[variant.id].text() == variant.text()


def test_exclude_then_include(tmp_path):
    text = CAMPAIGN + textwrap.dedent("""\
        exclude:
          - {product: latte, aspect_ratio: "9:16"}
          - {language: de}
        include:
          - {product: latte, language: de, aspect_ratio: "9:16"}
        variants:
          latte-de-9x16:
            label: Latte for the German stories
            vars: {blend: Milchkaffee}
        """)
    loaded = load_campaign(make_campaign(tmp_path, text))
    assert [v.id for v in loaded.variants] == ["espresso-en-16x9", "espresso-en-9x16", "latte-en-16x9", "latte-de-9x16"]
    special = loaded.variant("latte-de-9x16")
    assert special.label == "Latte for the German stories"
    assert special.document["vars"]["blend"] == "Milchkaffee"


# ---- errors, located in the file the user must edit -------------------------------------------


@pytest.mark.parametrize(
    "edit, needle, expected",
    [
        (lambda t: t.replace("      vars: {blend: Espresso}", "      varz: {blend: Espresso}"), "varz", "unknown key 'varz'"),
        (lambda t: t + "exclude:\n  - {product: mocha}\n", "product: mocha", "'mocha' is not a value of product"),
        (lambda t: t + "exclude:\n  - {flavour: x}\n", "flavour", "'flavour' is not a matrix variable"),
        (lambda t: t.replace('["16:9", "9:16"]', "[16:9, 9:16]"), "aspect_ratio: [16:9", "write ratios in quotes"),
        (lambda t: t + "variants:\n  latte-fr-16x9: {label: x}\n", "latte-fr-16x9", "no variant 'latte-fr-16x9'"),
        (
            lambda t: t.replace("shots.close.caption: Guten Morgen", "shots.closing.caption: Guten Morgen"),
            "shots.closing.caption",
            "has no item 'closing' (did you mean 'close'?)",
        ),
    ],
)
def test_campaign_file_errors_point_at_the_campaign_line(tmp_path, edit, needle, expected):
    text = edit(CAMPAIGN)
    folder = make_campaign(tmp_path, text)
    with pytest.raises(StoryboardInvalid) as raised:
        load_campaign(folder)
    problems = raised.value.problems
    assert any(expected in p.message for p in problems), [str(p) for p in problems]
    hit = next(p for p in problems if expected in p.message)
    assert hit.location.file.endswith("campaign.yaml")
    assert hit.location.line == line_of(text, needle)


def test_a_value_the_campaign_set_is_reported_at_the_campaign_line(tmp_path):
    text = CAMPAIGN.replace("references.hero.image: refs/latte.png", "references.hero.image: refs/missing.png")
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path, text)))
    assert [v.variant.id for v in cplan.failed] == ["latte-en-16x9", "latte-en-9x16", "latte-de-16x9", "latte-de-9x16"]
    problem = next(p for p in cplan.failed[0].problems if p.severity == "error")
    assert problem.location.file.endswith("campaign.yaml")
    assert problem.location.line == line_of(text, "refs/missing.png")
    assert "refs/missing.png" in problem.message and "variant latte-en-16x9" in problem.message
    # the espresso variants are not affected, and the latte ones share nothing they cannot use
    assert all(v.ok for v in cplan.variants if v.variant.id.startswith("espresso"))
    assert len(cplan.distinct) == 3


def test_a_problem_of_the_base_is_reported_at_the_base_line_once(tmp_path):
    base = BASE.replace("    prompt: a bag of", "    camera_control: {type: simple}\n    prompt: a bag of")
    base = base.replace("  - id: close\n    duration: 3", "  - id: close\n    duration: 30")
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path, base=base)))
    assert not any(v.ok for v in cplan.variants)
    problems = campaigns.merge_variant_problems([p for v in cplan.variants for p in v.problems if p.severity == "error"])
    duration = [p for p in problems if "duration" in p.location.path or "duration" in p.message]
    assert duration, [str(p) for p in problems]
    assert duration[0].location.file.endswith("storyboard.yaml")
    assert duration[0].location.line == line_of(base, "duration: 30")
    assert "variants espresso-en-16x9" in duration[0].message and "5 more" in duration[0].message


def test_a_template_value_from_the_campaign_that_breaks_a_prompt_points_at_the_campaign(tmp_path):
    text = CAMPAIGN.replace("      vars: {blend: Espresso}", "      vars: {blend: Espresso}\n      set: {shots.open.prompt: 'a {{ vars.nope }} cup'}")
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path, text)))
    failed = cplan.failed
    assert [v.variant.id for v in failed] == ["espresso-en-16x9", "espresso-en-9x16", "espresso-de-16x9", "espresso-de-9x16"]
    problem = next(p for p in failed[0].problems if p.severity == "error")
    assert problem.location.file.endswith("campaign.yaml"), str(problem)
    assert problem.location.line == line_of(text, "vars.nope")


# ---- sharing ------------------------------------------------------------------------------------


def test_language_variants_share_everything_and_ratio_variants_share_image_to_video(tmp_path):
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path)))
    assert cplan.ok
    uses = cplan.uses
    assert sum(len(u) for u in uses.values()) == 16
    # per product: one image-to-video request (ratio follows the image) + one text-to-video per ratio
    assert len(cplan.distinct) == 6
    assert len({u.request.key for u in cplan.distinct}) == 6
    assert [u.owner for u in cplan.distinct][:2] == ["espresso-en-16x9", "espresso-en-16x9"]
    # German: captions only, so every video is the English sibling's
    owners = {u.request.family: u.owner for u in uses["espresso-de-9x16"] if u.shared}
    assert owners == {"image2video": "espresso-en-16x9", "text2video": "espresso-en-9x16"}
    vertical = {u.request.family: u for u in uses["espresso-en-9x16"]}
    assert vertical["image2video"].owner == "espresso-en-16x9"
    assert vertical["image2video"].reframed_from == "16:9"
    assert "reframed from the 16:9 video" in vertical["image2video"].note()
    assert vertical["text2video"].owner == "espresso-en-9x16" and vertical["text2video"].request.body["aspect_ratio"] == "9:16"
    assert vertical["text2video"].reframed_from is None
    # costs: before = every variant alone; after = each distinct request once
    total = cplan.cost()
    alone = sum(v.plan.usd for v in cplan.variants)
    assert total["usd_before"] == pytest.approx(alone)
    assert total["usd_after"] == pytest.approx(sum(u.request.usd for u in cplan.distinct))
    assert total["usd_after"] < total["usd_before"]
    assert cplan.cost("espresso-de-16x9")["usd_after"] == 0
    combined = cplan.combined_plan()
    assert [r.id for r in combined.requests][:2] == ["espresso-en-16x9/r01-open", "espresso-en-16x9/r02-close"]
    assert combined.usd == pytest.approx(total["usd_after"])


def test_campaign_plan_cli_json_and_exit_codes(tmp_path):
    from storyboard.cli import _register_commands, app

    _register_commands()
    folder = make_campaign(tmp_path)
    result = CliRunner().invoke(app, ["campaign", "plan", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["requests"] == dict(uses=16, distinct=6, shared=10)
    assert len(data["variants"]) == 8 and data["variants"][0]["cost"]["usd_after"] > 0
    human = CliRunner().invoke(app, ["campaign", "plan", str(folder)])
    assert human.exit_code == 0 and "16 request(s) planned, 6 distinct (10 shared)" in human.stdout
    broken = make_campaign(tmp_path, CAMPAIGN.replace("refs/latte.png", "refs/gone.png"), name="broken")
    failed = CliRunner().invoke(app, ["campaign", "plan", str(broken)])
    assert failed.exit_code == 1
    assert f"campaign.yaml:{line_of(CAMPAIGN, 'refs/latte.png')}:" in failed.stderr
    assert "Traceback" not in failed.output


def test_the_example_campaign_plans_with_sharing():
    example = Path(__file__).resolve().parent.parent / "projects" / "coffee-campaign"
    cplan = plan_campaign(load_campaign(example))
    assert cplan.ok and len(cplan.variants) == 12
    assert sum(len(u) for u in cplan.uses.values()) == 24 and len(cplan.distinct) == 9


# ---- rendering against the fake Kling ------------------------------------------------------------


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def kling_for(fake: FakeKling) -> KlingProvider:
    credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)
    return KlingProvider(credentials, transport=fake.transport(), sleep=no_sleep)


def render(cplan, fake: FakeKling, **options) -> pipelines.CampaignRender:
    async def go():
        provider = kling_for(fake)
        try:
            return await pipelines.render_campaign(cplan, provider, sleep=no_sleep, **options)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_budget_is_never_exceeded_with_concurrency_8(tmp_path):
    fake = FakeKling()
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path)))
    each = cplan.distinct[0].request.units
    budget = each * 3.5
    rendered = render(cplan, fake, concurrency=8, max_cost_units=budget)
    assert fake.charged_units <= budget + 1e-9
    assert sum(fake.creates.values()) == 3
    assert rendered.result.units_spent <= budget + 1e-9
    assert rendered.result.skipped  # the rest waits for more budget, with a reason
    statuses = {vid: o.status for vid, o in rendered.outcomes.items()}
    assert statuses["espresso-en-16x9"] == "rendered"  # variant order: the first spot is complete first
    assert "failed" in statuses.values() or "incomplete" in statuses.values()


def test_a_refused_request_fails_its_variants_only_and_the_others_are_assembled(tmp_path):
    fake = FakeKling()
    fake.script("Latte beans", fail="Failure to pass the risk control system")
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path)))
    rendered = render(cplan, fake, concurrency=4)
    failed = sorted(vid for vid, o in rendered.outcomes.items() if o.status == "failed")
    assert failed == ["latte-de-16x9", "latte-de-9x16", "latte-en-16x9", "latte-en-9x16"]
    assert "risk control" in rendered.outcomes["latte-en-16x9"].reason
    assert all(o.status == "rendered" for vid, o in rendered.outcomes.items() if vid.startswith("espresso"))

    outcomes = pipelines.assemble_campaign(cplan, "kling")
    for vid in ("espresso-en-16x9", "espresso-de-9x16"):
        outcome = outcomes[vid]
        assert outcome.status == "assembled", outcome
        cut = outcome.cuts[0]
        facts = probe(cut.video)
        assert cut.video == cplan.campaign.folder / "out" / vid / f"{cut.name}.mp4"
        assert facts.frames == 6 * 24 and facts.height == 144
        assert (facts.width > facts.height) == vid.endswith("16x9")
    assert outcomes["latte-en-16x9"].status == "failed" and "risk control" in outcomes["latte-en-16x9"].reason
    page = pipelines.write_review(cplan, outcomes, "kling")
    html = page.read_text(encoding="utf-8")
    assert html.count('<article class="card"') == 8 and "risk control" in html


class Killed(Exception):
    """Stands for the process dying mid-render."""


def test_resume_after_a_kill_pays_nothing_twice(tmp_path):
    fake = FakeKling(polls_to_finish=3)
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path)))
    submitted = []

    def die_after_two_submits(event):
        if event.state == "submitted":
            submitted.append(event.key)
            if len(submitted) == 2:
                raise Killed()

    with pytest.raises(Killed):
        render(cplan, fake, concurrency=2, events=die_after_two_submits)
    assert 1 <= sum(fake.creates.values()) < len(cplan.distinct)  # killed mid-run
    again = render(cplan, fake, concurrency=8)
    assert all(o.status == "rendered" for o in again.outcomes.values()), again.outcomes
    assert sum(fake.creates.values()) == len(cplan.distinct) == 6
    assert all(count == 1 for count in fake.creates.values())
    with Journal.open(cplan.campaign.project_dir) as journal:
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units)
    third = render(cplan, fake, concurrency=8)
    assert sum(fake.creates.values()) == 6 and sorted(third.result.reused) == sorted(r.id for r in cplan.combined_plan().requests)


def test_campaign_run_on_the_preview_provider_writes_cuts_and_the_review_page(tmp_path, monkeypatch):
    from storyboard.cli import _register_commands, app

    _register_commands()
    for name in ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    folder = make_campaign(tmp_path)
    result = CliRunner().invoke(app, ["campaign", "run", str(folder), "--variant", "latte-de-9x16", "--provider", "preview"])
    assert result.exit_code == 0, result.output
    video = folder / "out" / "preview" / "latte-de-9x16" / "9x16.mp4"  # preview cuts: out/preview/
    facts = probe(video)
    assert facts.frames == 6 * 24 and facts.height == 144 and facts.width < facts.height
    assert (folder / "out" / "preview" / "latte-de-9x16" / "9x16.contact.png").is_file()
    html = (folder / "out" / "preview" / "index.html").read_text(encoding="utf-8")
    assert 'src="latte-de-9x16/9x16.mp4"' in html


# ---- the overlay: each merged value keeps the position it came from ----------------------------


def test_a_nested_set_value_is_located_at_its_own_campaign_line_and_inherited_ones_at_the_base(tmp_path):
    text = CAMPAIGN.replace(
        "        shots.close.caption: Guten Morgen",
        "        shots.close:\n          caption: Guten Morgen\n          duration: 99\n        cut.title.text: Hallo",
    )
    base = BASE.replace("    caption: Good morning", "    caption: Good morning\n    mood: 7")
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path, text, base)))
    german = cplan.variant_plan("espresso-de-16x9")
    assert not german.ok
    by_path = {p.location.path: p for p in german.problems if p.severity == "error"}
    duration, mood = by_path["shots[1].duration"], by_path["shots[1].mood"]
    assert duration.location.file.endswith("campaign.yaml") and duration.location.line == line_of(text, "duration: 99")
    assert mood.location.file.endswith("storyboard.yaml") and mood.location.line == line_of(base, "mood: 7")
    loaded = load_campaign(make_campaign(tmp_path, text, base, name="again"))
    document = loaded.variant("espresso-de-16x9").document
    # merged key by key: the base's prompt stays, the campaign's caption and duration win
    assert document["shots"][1]["prompt"].startswith("a bag of") and document["shots"][1]["caption"] == "Guten Morgen"
    assert document["cut"]["title"] == {"text": "Hallo"}
    # no variant (and not the base) sees another variant's overrides
    english = loaded.variant("espresso-en-16x9").document
    assert english["shots"][1]["caption"] == "Good morning" and "title" not in english["cut"]
    assert loaded.base.data["shots"][1]["duration"] == 3 and loaded.base.data["vars"] == {"blend": "House"}


def test_merge_keys_and_duplicates_of_the_base_are_judged_once_in_the_base(tmp_path):
    base = BASE.replace(
        "  - id: close\n    duration: 3\n",
        "  - &close\n    id: close\n    duration: 3\n",
    ).replace("cut:\n", "groups: []\ngroups: []\ncut:\n") + "x-common: &more {duration: 3, mood: calm}\n"
    base = base.replace("shots:\n", "shots:\n  - <<: *more\n    id: extra\n    duration: 4\n    prompt: more\n", 1)
    base = base.replace("x-common: &more {duration: 3, mood: calm}\n", "")
    base = "x-common: &more {duration: 3, mood: calm}\n" + base
    cplan = plan_campaign(load_campaign(make_campaign(tmp_path, base=base)))
    problems = merge_variant_problems_of(cplan)
    # the override of a merged key is no duplicate; the repeated `groups` is, at its base line, once
    duplicates = [p for p in problems if "duplicate key" in p.message]
    assert [(p.location.file.rsplit("/", 1)[-1], p.location.line) for p in duplicates] == [("storyboard.yaml", line_of(base, "groups: []") + 1)]
    assert "variants espresso-en-16x9" in duplicates[0].message


def merge_variant_problems_of(cplan) -> list:
    return campaigns.merge_variant_problems([p for v in cplan.variants for p in v.problems])


def test_there_is_one_position_engine():
    import importlib
    import importlib.util

    campaign_files = importlib.import_module("storyboard.load.campaign")
    assert importlib.util.find_spec("storyboard.campaign") is None
    assert not hasattr(campaign_files, "YamlPositions")
