"""The review page driven in headless Chromium: verdicts, comments, export, load back, URL filters,
compare, takes side by side; then one full round on the preview provider with the example campaign
(``projects/coffee-campaign``): run → review in the browser → export → ``review apply`` → new page.

Skipped (with the reason) without Debian's chromium or the Playwright package, as
tests/test_review_page.py is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard.assemble.review import ReviewCut, ReviewPage, ReviewShot, ReviewTake, ReviewVariant, write_review_page
from storyboard.cli import _register_commands, app
from storyboard.media import probe
from storyboard.pipeline import vtt_data_url
from storyboard.render.journal import Journal
from tests.test_review_page import CHROMIUM, CHROMIUM_ARGS, make_cut

_register_commands()
REPO = Path(__file__).resolve().parents[1]


def browser_or_skip():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    return pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def takes_page(out: Path) -> Path:
    variants = []
    for vid, product, seconds in (("espresso-en", "espresso", 1.0), ("latte-en", "latte", 1.5)):
        video = make_cut(out / vid / "main.mp4", seconds, "160x90")
        (out / vid / "main.vtt").write_text("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nHello\n", encoding="utf-8")
        take1 = make_cut(out / "clips" / f"{vid}-1.mp4", 1.0, "160x90")
        take2 = make_cut(out / "clips" / f"{vid}-2.mp4", 1.0, "160x90")
        facts = probe(video)
        variants.append(ReviewVariant(
            id=vid, label=f"{product} · en", assignment={"product": product}, status="assembled",
            cuts=(ReviewCut("main", f"{vid}/main.mp4", facts.duration, "16:9", facts.width, facts.height,
                            subtitles=vtt_data_url(out / vid / "main.vtt")),),
            shots=(ReviewShot("open", "steam rises", None, "r01-open", "", spot=vid, base_key=f"base-{vid}",
                              takes=(ReviewTake(1, f"key1-{vid}", f"clips/{take1.name}", False, "rejected", "too dark"),
                                     ReviewTake(2, f"key2-{vid}", f"clips/{take2.name}", True))),),
        ))
    page = ReviewPage(title="Takes </script>", variables={"product": [("espresso", "Espresso"), ("latte", "Latte")]},
                      variants=tuple(variants), provider="preview")
    return write_review_page(page, out)


def test_verdicts_export_load_filters_compare_and_takes_in_chromium(tmp_path):
    playwright_api = browser_or_skip()
    index = takes_page(tmp_path / "out")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(index.as_uri())
            # what an applied review recorded shows as the starting state
            assert page.locator("#review-count").inner_text() == "0 approved · 2 rejected"
            take2 = page.locator('#variant-espresso-en .verdict[data-kind="shot"][data-take="2"]')
            take2.locator(".approve").click()
            take2.locator(".comment").fill("warm, keep it")
            latte_take2 = page.locator('#variant-latte-en .verdict[data-kind="shot"][data-take="2"]')
            latte_take2.locator(".reject").click()
            cut = page.locator('#variant-latte-en .verdict[data-kind="cut"]')
            cut.locator(".approve").click()
            cut.locator(".comment").fill("ship it & <b>fast</b>")
            assert "chosen" in (take2.locator(".approve").get_attribute("class") or "")
            assert page.locator("#review-count").inner_text() == "2 approved · 3 rejected"

            with page.expect_download() as download_info:
                page.click("#export-review")
            exported = tmp_path / "review.json"
            download_info.value.save_as(exported)
            assert download_info.value.suggested_filename == "review.json"
            review = json.loads(exported.read_text(encoding="utf-8"))
            assert review["format"] == "storyboard-review/1" and review["title"] == "Takes </script>"
            shots = {(s["spot"], s["take"]): (s["verdict"], s["comment"], s["key"], s["base_key"]) for s in review["shots"]}
            assert shots[("espresso-en", 2)] == ("approved", "warm, keep it", "key2-espresso-en", "base-espresso-en")
            assert shots[("espresso-en", 1)] == ("rejected", "too dark", "key1-espresso-en", "base-espresso-en")
            assert shots[("latte-en", 2)][0] == "rejected"
            assert review["cuts"] == [{"spot": "latte-en", "cut": "main", "verdict": "approved",
                                       "comment": "ship it & <b>fast</b>"}]

            page.reload()  # kept in localStorage
            assert page.locator("#review-count").inner_text() == "2 approved · 3 rejected"
            assert page.locator('#variant-espresso-en .verdict[data-take="2"] .comment').input_value() == "warm, keep it"
            page.evaluate("localStorage.clear()")
            page.reload()
            assert page.locator("#review-count").inner_text() == "0 approved · 2 rejected"
            page.set_input_files("#load-review", str(exported))  # loaded back from the exported file
            page.wait_for_function("document.getElementById('review-count').textContent === '2 approved · 3 rejected'")
            assert page.locator('#variant-latte-en .verdict[data-kind="cut"] .comment').input_value() == "ship it & <b>fast</b>"

            page.select_option("#filter-product", "latte")  # filters live in the URL
            assert page.url.endswith("#product=latte")
            page.reload()
            assert page.locator("#filter-product").input_value() == "latte"
            assert [c.get_attribute("data-id") for c in page.locator("article.card:visible").all()] == ["latte-en"]
            page.goto(index.as_uri())
            assert page.locator("article.card:visible").count() == 2

            page.check("#variant-espresso-en .compare-pick")  # two variants side by side
            page.check("#variant-latte-en .compare-pick")
            figures = page.locator("#compare figure")
            assert figures.count() == 2 and figures.nth(0).locator("video").count() == 1
            left, right = figures.nth(0).bounding_box(), figures.nth(1).bounding_box()
            assert left and right and left["x"] < right["x"] and abs(left["y"] - right["y"]) < 1

            shown = page.locator("#variant-espresso-en figure.take")  # takes side by side
            assert shown.count() == 2
            first, second = shown.nth(0).bounding_box(), shown.nth(1).bounding_box()
            assert first and second and first["x"] < second["x"] and abs(first["y"] - second["y"]) < 1
            page.wait_for_function("document.querySelector('#variant-espresso-en track').readyState === 2", timeout=15000)
            cues = page.evaluate("Array.from(document.querySelector('#variant-espresso-en video').textTracks[0].cues).map(c => c.text)")
            assert cues == ["Hello"]  # WebVTT loaded from a file:// page
            page.wait_for_function(
                "Array.from(document.querySelectorAll('figure.take video')).every(v => v.readyState >= 1)", timeout=15000)
            assert errors == []
        finally:
            browser.close()


def test_full_round_on_the_preview_with_the_example_campaign(tmp_path, monkeypatch):
    """run (two variants) → reject a shot in the browser → export → review apply → the new page."""
    playwright_api = browser_or_skip()
    for name in ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY", "KLINGAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "coffee-campaign"
    shutil.copytree(REPO / "projects" / "coffee-campaign", folder, ignore=shutil.ignore_patterns(".storyboard", "out"))
    runner = CliRunner()
    chosen = ["-v", "classic-en-16x9", "-v", "classic-de-16x9"]
    first = runner.invoke(app, ["campaign", "run", str(folder), "--provider", "preview", *chosen])
    assert first.exit_code == 0, first.output
    index = folder / "out" / "preview" / "index.html"
    with Journal.open(folder) as journal:
        rendered_before = len(journal.records("preview"))

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(index.as_uri())
            assert page.locator("article.card").count() == 12  # a partial run keeps every variant on the page
            card = page.locator("#variant-classic-en-16x9")
            card.locator('.verdict[data-shot="hero"] .reject').click()
            card.locator('.verdict[data-shot="hero"] .comment').fill("too dark, warmer light")
            card.locator('.verdict[data-shot="reveal"] .approve').click()
            with page.expect_download() as download_info:
                page.click("#export-review")
            exported = tmp_path / "review.json"
            download_info.value.save_as(exported)
        finally:
            browser.close()

    applied = runner.invoke(app, ["review", "apply", str(exported), str(folder), "--provider", "preview"])
    assert applied.exit_code == 0, applied.output
    assert "re-take classic-en-16x9/r02-hero take 2" in applied.output
    with Journal.open(folder) as journal:
        assert len(journal.records("preview")) == rendered_before + 1  # exactly the rejected shot's new take
        assert [(t.take, t.reason) for t in journal.takes()] == [(2, "re-take: rejected in review: too dark, warmer light")]

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(index.as_uri())
            assert page.locator("article.card").count() == 12
            hero = page.locator('#variant-classic-en-16x9 li.shot[data-shot="hero"] figure.take')
            assert hero.count() == 2
            assert hero.nth(1).get_attribute("class") == "take current" and "rejected" in hero.nth(0).inner_text()
            page.wait_for_function(
                "Array.from(document.querySelectorAll('#variant-classic-en-16x9 figure.take video')).every(v => v.readyState >= 1)",
                timeout=15000)
            assert page.evaluate("document.querySelector('#variant-classic-en-16x9 video').poster").endswith(".poster.jpg")
            page.locator('#variant-classic-en-16x9 li.shot[data-shot="hero"]').screenshot(path=str(tmp_path / "takes.png"))
            assert errors == []
        finally:
            browser.close()
    otio = json.loads((folder / "out" / "preview" / "classic-en-16x9" / "landscape.otio").read_text(encoding="utf-8"))
    assert "too dark, warmer light" in json.dumps(otio)
