"""The campaign review page: one static ``out/index.html`` to watch and compare every variant.

Why static and self-contained: reviewers open it by double-clicking, from a shared drive or a zip,
often with no server and no network. So the page uses relative paths only (``<variant-id>/…``
beside it), inline CSS and JS, no CDN, no fetch: ``file://`` is enough. Cards are rendered into the
HTML itself, so the page reads even with scripts off; the script only filters cards by the
campaign's variables (one select per matrix variable, plus status).

The data model below is plain and typed so the page can be written from a campaign run (see
``pipeline.review_from_campaign``) or from anything else that has cuts to show.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

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
    """WebVTT captions (the ``.vtt`` beside the cut's ``.srt``)."""
    poster: str | None = None


@dataclass(frozen=True)
class ReviewTake:
    """One render of a shot's request: take 1, or a deliberate re-take (``plan.takes``)."""

    take: int
    key: str
    clip: str | None = None
    """The request's clip, relative to the page (None when not rendered by this provider)."""
    current: bool = False
    """The take the cut uses."""
    verdict: str = ""
    """What an applied review said (approved / rejected), empty when nothing yet."""
    comment: str = ""


@dataclass(frozen=True)
class ReviewShot:
    id: str
    prompt: str
    caption: str | None = None
    request: str = ""
    note: str = ""
    spot: str = ""
    """The variant id ("" for a project): with ``id`` and the take's key, what a verdict names."""
    base_key: str = ""
    """Take 1's key of the shot's request (groups its takes)."""
    takes: tuple[ReviewTake, ...] = ()


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
  .tools { display: flex; gap: 8px; align-items: center; margin-top: 8px; flex-wrap: wrap; }
  .tools button, .verdict button { font: inherit; padding: 2px 10px; border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
  .verdict { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
  .verdict textarea { flex: 1 1 160px; font: inherit; font-size: 12px; min-height: 28px; }
  .verdict button.approve.chosen { background: var(--ok); color: #fff; }
  .verdict button.reject.chosen { background: var(--bad); color: #fff; }
  .takes { display: flex; gap: 8px; overflow-x: auto; }
  .take { margin: 0; flex: 1 1 0; min-width: 150px; border: 1px solid var(--line); border-radius: 4px; padding: 4px; }
  .take.current { border-color: var(--ink); }
  .take video { max-height: 200px; }
  .take figcaption { font-size: 12px; }
  .recorded { font-size: 12px; color: var(--muted); }
  #compare { display: none; grid-template-columns: 1fr 1fr; gap: 12px; padding: 12px 24px 0; }
  #compare.on { display: grid; }
  #compare figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
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
  <div class="tools">
    <button type="button" id="export-review">Export review.json</button>
    <label>Load review.json <input type="file" id="load-review" accept="application/json,.json"></label>
    <span id="review-count"></span>
    <span class="recorded">verdicts are kept in this browser; export them and run <code>storyboard review apply review.json</code> to re-take the rejected shots</span>
  </div>
</header>
<section id="compare" aria-label="two variants side by side"></section>
<main id="cards">
{% for variant in page.variants %}
  <article class="card" id="variant-{{ variant.id or 'project' }}" data-id="{{ variant.id }}" data-status="{{ variant.status }}"
    {%- for variable, value in variant.assignment.items() %} data-var-{{ variable }}="{{ value }}"{% endfor %}>
    <h2><span>{{ variant.label }}</span><code>{{ variant.id }}</code></h2>
    {% if variant.cuts %}<label class="recorded"><input type="checkbox" class="compare-pick" value="{{ variant.id }}"> compare side by side</label>{% endif %}
    <div class="tags">
      {% for variable, value in variant.assignment.items() %}<span class="tag">{{ variable }}: {{ value }}</span>{% endfor %}
      <span class="status {{ variant.status }}">{{ variant.status }}</span>
    </div>
    {% if variant.reason %}<div class="reason">{{ variant.reason }}</div>{% endif %}
    {% if variant.cuts %}
      {% set main = variant.cuts[0] %}
      <video controls preload="metadata" src="{{ main.video }}" data-cut="{{ main.name }}" data-expected-duration="{{ '%.3f'|format(main.duration) }}"
        {%- if main.poster %} poster="{{ main.poster }}"{% endif %}
        {%- if main.width %} width="{{ main.width }}" height="{{ main.height }}"{% endif %}>
        {% if main.subtitles %}<track kind="captions" src="{{ main.subtitles }}" srclang="und" label="captions" default>{% endif %}
      </video>
      <div class="costs"><span>{{ main.name }} · {{ main.aspect_ratio }} · {{ '%.2f'|format(main.duration) }} s</span>
        {% if variant.cuts|length > 1 %}<span class="other-cuts">also:
          {% for cut in variant.cuts[1:] %}<a href="{{ cut.video }}">{{ cut.name }} ({{ cut.aspect_ratio }})</a>{% endfor %}</span>{% endif %}
      </div>
      {% for cut in variant.cuts %}
      <div class="verdict" data-kind="cut" data-spot="{{ variant.id }}" data-cut="{{ cut.name }}">
        <b>cut {{ cut.name }}</b>
        <button type="button" class="approve">approve</button><button type="button" class="reject">reject</button>
        <textarea class="comment" placeholder="comment on the cut"></textarea>
      </div>
      {% endfor %}
      {% if main.contact_sheet %}<details class="sheet"><summary>contact sheet</summary><img src="{{ main.contact_sheet }}" alt="contact sheet of {{ variant.id }}" loading="lazy"></details>{% endif %}
    {% endif %}
    <div class="costs">
      <span>estimated <b>${{ '%.2f'|format(variant.usd_estimated) }}</b> (alone ${{ '%.2f'|format(variant.usd_alone) }})</span>
      <span>charged <b>{% if variant.usd_charged is none %}–{% else %}${{ '%.2f'|format(variant.usd_charged) }}{% endif %}</b></span>
    </div>
    {% if variant.shots %}
    <section><b>{{ variant.shots|length }} shot(s) and prompts</b>
      <ol class="shots">
      {% for shot in variant.shots %}
        <li class="shot" data-spot="{{ shot.spot }}" data-shot="{{ shot.id }}"><b>{{ shot.id }}</b>{% if shot.request %} <code>{{ shot.request }}</code>{% endif %}
          {% if shot.caption %}<div>caption: “{{ shot.caption }}”</div>{% endif %}
          <div class="prompt">{{ shot.prompt }}</div>
          {% if shot.note %}<div class="note">{{ shot.note }}</div>{% endif %}
          {% if shot.takes %}<div class="takes">
          {% for take in shot.takes %}
            <figure class="take{% if take.current %} current{% endif %}" data-take="{{ take.take }}" data-key="{{ take.key }}">
              {% if take.clip %}<video controls preload="metadata" src="{{ take.clip }}"></video>{% endif %}
              <figcaption>take {{ take.take }}{% if take.current %} · in the cut{% endif %}
                {% if take.verdict %}<span class="recorded">· {{ take.verdict }}{% if take.comment %}: “{{ take.comment }}”{% endif %}</span>{% endif %}</figcaption>
              <div class="verdict" data-kind="shot" data-spot="{{ shot.spot }}" data-shot="{{ shot.id }}" data-key="{{ take.key }}"
                data-base-key="{{ shot.base_key }}" data-take="{{ take.take }}" data-recorded="{{ take.verdict }}" data-recorded-comment="{{ take.comment }}">
                <button type="button" class="approve">approve</button><button type="button" class="reject">reject</button>
                <textarea class="comment" placeholder="comment on take {{ take.take }}"></textarea>
              </div>
            </figure>
          {% endfor %}
          </div>{% endif %}</li>
      {% endfor %}
      </ol>
    </section>
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
  // Filters live in the URL hash (#product=latte&status=failed), so a reload or a shared link keeps them.
  function readHash() {
    var wanted = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      if (!pair) { return; }
      var parts = pair.split("=");
      wanted[decodeURIComponent(parts[0])] = decodeURIComponent(parts.slice(1).join("="));
    });
    selects.forEach(function (select) {
      var value = wanted[select.getAttribute("data-variable")] || "";
      if (Array.prototype.some.call(select.options, function (o) { return o.value === value; })) { select.value = value; }
    });
  }
  function writeHash() {
    var parts = selects.filter(function (s) { return s.value; }).map(function (s) {
      return encodeURIComponent(s.getAttribute("data-variable")) + "=" + encodeURIComponent(s.value);
    });
    history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname + location.search);
  }
  selects.forEach(function (select) { select.addEventListener("change", function () { writeHash(); apply(); }); });
  window.addEventListener("hashchange", function () { readHash(); apply(); });
  readHash();
  apply();

  // Verdicts: kept in localStorage per page, exported as review.json, loaded back from one.
  var data = JSON.parse(document.getElementById("review-data").textContent);
  var storeKey = "storyboard-review:" + data.title + ":" + location.pathname;
  var controls = Array.prototype.slice.call(document.querySelectorAll(".verdict"));
  function idOf(box) {
    return box.getAttribute("data-kind") === "cut"
      ? "cut|" + box.getAttribute("data-spot") + "|" + box.getAttribute("data-cut")
      : "shot|" + box.getAttribute("data-spot") + "|" + box.getAttribute("data-shot") + "|" + box.getAttribute("data-key");
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { return {}; }
  }
  var state = load();
  controls.forEach(function (box) {  // what an applied review recorded, until this browser says otherwise
    var recorded = box.getAttribute("data-recorded");
    if (recorded && !state[idOf(box)]) { state[idOf(box)] = {verdict: recorded, comment: box.getAttribute("data-recorded-comment") || ""}; }
  });
  function save() { try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* private mode: kept in the page only */ } }
  function paint() {
    var counts = {approved: 0, rejected: 0};
    controls.forEach(function (box) {
      var entry = state[idOf(box)] || {};
      box.setAttribute("data-verdict", entry.verdict || "");
      box.querySelector(".approve").classList.toggle("chosen", entry.verdict === "approved");
      box.querySelector(".reject").classList.toggle("chosen", entry.verdict === "rejected");
      var area = box.querySelector(".comment");
      if (document.activeElement !== area) { area.value = entry.comment || ""; }
      if (entry.verdict) { counts[entry.verdict] += 1; }
    });
    document.getElementById("review-count").textContent = counts.approved + " approved · " + counts.rejected + " rejected";
  }
  controls.forEach(function (box) {
    function set(verdict) {
      var entry = state[idOf(box)] || {verdict: "", comment: ""};
      entry.verdict = entry.verdict === verdict ? "" : verdict;
      state[idOf(box)] = entry; save(); paint();
    }
    box.querySelector(".approve").addEventListener("click", function () { set("approved"); });
    box.querySelector(".reject").addEventListener("click", function () { set("rejected"); });
    box.querySelector(".comment").addEventListener("input", function (event) {
      var entry = state[idOf(box)] || {verdict: "", comment: ""};
      entry.comment = event.target.value; state[idOf(box)] = entry; save(); paint();
    });
  });
  function exported() {
    var shots = [], cuts = [];
    controls.forEach(function (box) {
      var entry = state[idOf(box)];
      if (!entry || (!entry.verdict && !entry.comment)) { return; }
      var common = {spot: box.getAttribute("data-spot"), verdict: entry.verdict || "", comment: entry.comment || ""};
      if (box.getAttribute("data-kind") === "cut") {
        common.cut = box.getAttribute("data-cut"); cuts.push(common);
      } else {
        common.shot = box.getAttribute("data-shot"); common.key = box.getAttribute("data-key");
        common.base_key = box.getAttribute("data-base-key"); common.take = parseInt(box.getAttribute("data-take"), 10);
        shots.push(common);
      }
    });
    return {format: "storyboard-review/1", title: data.title, provider: data.provider, shots: shots, cuts: cuts};
  }
  document.getElementById("export-review").addEventListener("click", function () {
    var blob = new Blob([JSON.stringify(exported(), null, 1)], {type: "application/json"});
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob); link.download = "review.json";
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  });
  document.getElementById("load-review").addEventListener("change", function (event) {
    var file = event.target.files[0];
    if (!file) { return; }
    file.text().then(function (text) {
      var review = JSON.parse(text);
      if (!review || review.format !== "storyboard-review/1") { throw new Error("not a storyboard review.json"); }
      (review.shots || []).forEach(function (e) { state["shot|" + e.spot + "|" + e.shot + "|" + e.key] = {verdict: e.verdict, comment: e.comment}; });
      (review.cuts || []).forEach(function (e) { state["cut|" + e.spot + "|" + e.cut] = {verdict: e.verdict, comment: e.comment}; });
      save(); paint();
    }).catch(function (error) { document.getElementById("review-count").textContent = "could not load: " + error.message; });
  });
  paint();

  // Two variants side by side: tick two cards' "compare".
  var compare = document.getElementById("compare");
  var picks = Array.prototype.slice.call(document.querySelectorAll(".compare-pick"));
  function showCompare() {
    var chosen = picks.filter(function (p) { return p.checked; }).slice(-2);
    picks.forEach(function (p) { if (p.checked && chosen.indexOf(p) < 0) { p.checked = false; } });
    compare.textContent = "";
    compare.classList.toggle("on", chosen.length === 2);
    if (chosen.length !== 2) { return; }
    chosen.forEach(function (pick) {
      var card = pick.closest("article.card");
      var figure = document.createElement("figure");
      var caption = document.createElement("figcaption");
      caption.textContent = card.querySelector("h2 span").textContent;
      var player = card.querySelector("video").cloneNode(true);
      figure.appendChild(caption); figure.appendChild(player);
      figure.setAttribute("data-id", card.getAttribute("data-id"));
      compare.appendChild(figure);
    });
  }
  picks.forEach(function (pick) { pick.addEventListener("change", showCompare); });
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


def write_poster(video: Path, dest: Path) -> Path | None:
    """A JPEG of the cut's first frame (the ``<video>``'s poster), rewritten only when the video is newer.

    Why: a page of dozens of players shows black boxes until each loads; a poster shows the shot.
    None when the video cannot be decoded (the player simply has no poster).
    """
    import av

    try:
        if dest.is_file() and dest.stat().st_mtime_ns >= video.stat().st_mtime_ns:
            return dest
        with av.open(str(video)) as container:
            frame = next(container.decode(video=0))
            image = frame.to_image()
        tmp = dest.with_name(f".{dest.name}.tmp")
        image.save(tmp, format="JPEG", quality=80)
        os.replace(tmp, dest)
    except (OSError, StopIteration, av.FFmpegError):
        return None
    return dest


def relative_link(path: Path | str, base: Path) -> str:
    """A path relative to the page, with forward slashes (URLs), each part percent-safe."""
    from urllib.parse import quote

    relative = os.path.relpath(Path(path), base)
    return "/".join(quote(part) for part in Path(relative).parts)


__all__ = [
    "ReviewCut",
    "ReviewPage",
    "ReviewShot",
    "ReviewTake",
    "ReviewVariant",
    "relative_link",
    "render_review_page",
    "write_poster",
    "write_review_page",
]
