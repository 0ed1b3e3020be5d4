"""The campaign review page: one static ``out/index.html`` to watch and compare every variant.

Why static and self-contained: reviewers open it by double-clicking, from a shared drive or a zip,
often with no server and no network. So the page uses relative paths only (``<variant-id>/…``
beside it), inline CSS and JS, no CDN, no fetch: ``file://`` is enough. Cards are rendered into the
HTML itself, so the page reads even with scripts off; the script only filters cards by the
campaign's variables (one select per matrix variable, plus status).

The data model below is plain and typed so the page can be written from a campaign run (see
``review_from_campaign``) or from anything else that has cuts to show.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup

from storyboard.plan import UNIT_PRICE_USD

if TYPE_CHECKING:
    from storyboard.campaign import CampaignPlan
    from storyboard.pipeline import VariantOutcome

PAGE_NAME = "index.html"


@dataclass(frozen=True)
class ReviewCut:
    """One finished file of a variant; paths are relative to the page."""

    name: str
    video: str
    duration: float
    aspect_ratio: str
    width: int = 0
    height: int = 0
    contact_sheet: str | None = None
    subtitles: str | None = None


@dataclass(frozen=True)
class ReviewShot:
    id: str
    prompt: str
    caption: str | None = None
    request: str = ""
    note: str = ""


@dataclass(frozen=True)
class ReviewVariant:
    id: str
    label: str
    assignment: dict[str, str]
    """Variable -> value name (what the filters match)."""
    status: str
    """planned, rendered, assembled, failed, invalid, incomplete."""
    reason: str | None = None
    usd_estimated: float = 0.0
    """What this variant adds to the campaign (after sharing)."""
    usd_alone: float = 0.0
    """What it would cost planned alone (before sharing)."""
    usd_charged: float | None = None
    """What the provider charged for the requests this variant paid for (None: nothing known)."""
    cuts: tuple[ReviewCut, ...] = ()
    shots: tuple[ReviewShot, ...] = ()


@dataclass(frozen=True)
class ReviewPage:
    title: str
    variables: dict[str, list[tuple[str, str]]]
    """Variable -> [(value name, label)] in matrix order: the filter options."""
    variants: tuple[ReviewVariant, ...]
    usd_before: float = 0.0
    usd_after: float = 0.0
    usd_charged: float | None = None
    provider: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page.title }} — review</title>
<style>
  :root { --bg: #f6f5f2; --card: #fff; --ink: #1d1d1f; --muted: #6b6b70; --line: #e2e0da;
          --ok: #1f7a3a; --bad: #b3261e; --warn: #8a5a00; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--ink); }
  header { padding: 16px 24px; border-bottom: 1px solid var(--line); background: var(--card); position: sticky; top: 0; z-index: 1; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  .summary { color: var(--muted); margin: 0 0 10px; }
  .filters { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
  .filters label { display: flex; gap: 6px; align-items: center; font-weight: 600; }
  .filters select { font: inherit; padding: 3px 6px; }
  #shown { color: var(--muted); margin-left: auto; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 16px; padding: 16px 24px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; display: flex; flex-direction: column; gap: 8px; }
  .card[hidden] { display: none; }
  .card h2 { font-size: 15px; margin: 0; display: flex; justify-content: space-between; gap: 8px; }
  .card h2 code { font-size: 12px; color: var(--muted); font-weight: 400; }
  .tags { display: flex; flex-wrap: wrap; gap: 4px; }
  .tag { font-size: 12px; background: #eeece6; border-radius: 4px; padding: 1px 6px; }
  .status { font-size: 12px; font-weight: 700; text-transform: uppercase; }
  .status.assembled, .status.rendered { color: var(--ok); }
  .status.failed, .status.invalid { color: var(--bad); }
  .status.planned, .status.incomplete { color: var(--warn); }
  .reason { color: var(--bad); white-space: pre-wrap; font-size: 12px; }
  video { width: 100%; max-height: 420px; background: #000; border-radius: 4px; }
  .sheet img { width: 100%; border: 1px solid var(--line); border-radius: 4px; }
  .costs { font-size: 12px; color: var(--muted); display: flex; gap: 12px; flex-wrap: wrap; }
  .costs b { color: var(--ink); }
  details { font-size: 13px; }
  ol.shots { margin: 6px 0 0; padding-left: 20px; }
  ol.shots li { margin-bottom: 6px; }
  .prompt { color: var(--muted); }
  .note { font-size: 12px; color: var(--warn); }
  .other-cuts a { margin-right: 8px; }
</style>
</head>
<body>
<header>
  <h1>{{ page.title }}</h1>
  <p class="summary">{{ page.variants|length }} variant(s){% if page.provider %} · rendered with {{ page.provider }}{% endif %}
    · estimated ${{ '%.2f'|format(page.usd_after) }} after sharing (${{ '%.2f'|format(page.usd_before) }} planned one by one)
    {%- if page.usd_charged is not none %} · charged ${{ '%.2f'|format(page.usd_charged) }}{% endif %}</p>
  <div class="filters">
    {% for variable, options in page.variables.items() %}
    <label>{{ variable }}
      <select data-variable="{{ variable }}" id="filter-{{ variable }}">
        <option value="">all</option>
        {% for name, label in options %}<option value="{{ name }}">{{ label }}</option>{% endfor %}
      </select>
    </label>
    {% endfor %}
    <label>status
      <select data-variable="status" id="filter-status">
        <option value="">all</option>
        {% for status in statuses %}<option value="{{ status }}">{{ status }}</option>{% endfor %}
      </select>
    </label>
    <span id="shown">{{ page.variants|length }} of {{ page.variants|length }} shown</span>
  </div>
</header>
<main id="cards">
{% for variant in page.variants %}
  <article class="card" id="variant-{{ variant.id }}" data-id="{{ variant.id }}" data-status="{{ variant.status }}"
    {%- for variable, value in variant.assignment.items() %} data-var-{{ variable }}="{{ value }}"{% endfor %}>
    <h2><span>{{ variant.label }}</span><code>{{ variant.id }}</code></h2>
    <div class="tags">
      {% for variable, value in variant.assignment.items() %}<span class="tag">{{ variable }}: {{ value }}</span>{% endfor %}
      <span class="status {{ variant.status }}">{{ variant.status }}</span>
    </div>
    {% if variant.reason %}<div class="reason">{{ variant.reason }}</div>{% endif %}
    {% if variant.cuts %}
      {% set main = variant.cuts[0] %}
      <video controls preload="metadata" src="{{ main.video }}" data-cut="{{ main.name }}" data-expected-duration="{{ '%.3f'|format(main.duration) }}"
        {%- if main.width %} width="{{ main.width }}" height="{{ main.height }}"{% endif %}>
        {% if main.subtitles %}<track kind="captions" src="{{ main.subtitles }}" srclang="und" label="captions">{% endif %}
      </video>
      <div class="costs"><span>{{ main.name }} · {{ main.aspect_ratio }} · {{ '%.2f'|format(main.duration) }} s</span>
        {% if variant.cuts|length > 1 %}<span class="other-cuts">also:
          {% for cut in variant.cuts[1:] %}<a href="{{ cut.video }}">{{ cut.name }} ({{ cut.aspect_ratio }})</a>{% endfor %}</span>{% endif %}
      </div>
      {% if main.contact_sheet %}<details class="sheet"><summary>contact sheet</summary><img src="{{ main.contact_sheet }}" alt="contact sheet of {{ variant.id }}" loading="lazy"></details>{% endif %}
    {% endif %}
    <div class="costs">
      <span>estimated <b>${{ '%.2f'|format(variant.usd_estimated) }}</b> (alone ${{ '%.2f'|format(variant.usd_alone) }})</span>
      <span>charged <b>{% if variant.usd_charged is none %}–{% else %}${{ '%.2f'|format(variant.usd_charged) }}{% endif %}</b></span>
    </div>
    {% if variant.shots %}
    <details><summary>{{ variant.shots|length }} shot(s) and prompts</summary>
      <ol class="shots">
      {% for shot in variant.shots %}
        <li><b>{{ shot.id }}</b>{% if shot.request %} <code>{{ shot.request }}</code>{% endif %}
          {% if shot.caption %}<div>caption: “{{ shot.caption }}”</div>{% endif %}
          <div class="prompt">{{ shot.prompt }}</div>
          {% if shot.note %}<div class="note">{{ shot.note }}</div>{% endif %}</li>
      {% endfor %}
      </ol>
    </details>
    {% endif %}
  </article>
{% endfor %}
</main>
<script type="application/json" id="review-data">{{ data_json }}</script>
<script>
(function () {
  "use strict";
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-variable]"));
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  var shown = document.getElementById("shown");
  function apply() {
    var count = 0;
    cards.forEach(function (card) {
      var visible = selects.every(function (select) {
        var wanted = select.value;
        if (!wanted) { return true; }
        var variable = select.getAttribute("data-variable");
        var have = variable === "status" ? card.getAttribute("data-status") : card.getAttribute("data-var-" + variable);
        return have === wanted;
      });
      card.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = count + " of " + cards.length + " shown";
  }
  selects.forEach(function (select) { select.addEventListener("change", apply); });
  apply();
}());
</script>
</body>
</html>
"""



SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
"""What JSON inside a ``<script>`` element must never contain literally.

``</script>`` closes the element, ``<!--`` switches the HTML parser into its "script data escaped"
state (a later ``<script>`` then swallows the page's own code), and U+2028/U+2029 end a line in
older JavaScript parsers. As ``\\uXXXX`` escapes they are the same JSON strings, and inert.
"""


_SCRIPT_TABLE = str.maketrans(SCRIPT_ESCAPES)


def script_json(data: object) -> str:
    """``data`` as JSON that is safe to embed verbatim between ``<script>`` tags."""
    return json.dumps(data, ensure_ascii=False).translate(_SCRIPT_TABLE)


def render_review_page(page: ReviewPage) -> str:
    """The page's HTML (autoescaped; the embedded JSON cannot close its script tag)."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(_TEMPLATE)
    statuses = list(dict.fromkeys(v.status for v in page.variants))
    return template.render(page=page, statuses=statuses, data_json=Markup(script_json(asdict(page))))


def write_review_page(page: ReviewPage, dest: Path) -> Path:
    """Write the page to ``dest`` (a folder gets ``index.html``); paths in ``page`` are relative to it."""
    dest = Path(dest)
    if dest.is_dir() or not dest.suffix:
        dest = dest / PAGE_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(render_review_page(page), encoding="utf-8")
    os.replace(tmp, dest)
    return dest


def review_from_campaign(cplan: CampaignPlan, outcomes: dict[str, VariantOutcome], out_dir: Path,
                         provider: str = "", charged_units: dict[str, float] | None = None) -> ReviewPage:
    """The page data of a campaign run: every planned variant, with its cuts when they exist.

    ``charged_units`` maps request keys to the units the provider charged (from the journal); a
    variant's charge is what its own (not shared) requests cost, so the charges add up to the bill.
    """
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
                        video=_relative(cut.video, out_dir),
                        duration=cut.duration,
                        aspect_ratio=cut.aspect_ratio,
                        width=cut.width,
                        height=cut.height,
                        contact_sheet=_relative(cut.contact_sheet, out_dir) if cut.contact_sheet else None,
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


def _relative(path: Path | str, base: Path) -> str:
    """A path relative to the page, with forward slashes (URLs), each part percent-safe."""
    from urllib.parse import quote

    relative = os.path.relpath(Path(path), base)
    return "/".join(quote(part) for part in Path(relative).parts)


__all__ = [
    "ReviewCut",
    "ReviewPage",
    "ReviewShot",
    "ReviewVariant",
    "render_review_page",
    "review_from_campaign",
    "write_review_page",
]
