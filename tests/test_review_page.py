"""The campaign review page, opened from the file system in a real headless Chromium.

Skipped (with the reason) when Debian's chromium or the Playwright package is missing; the CI
script installs both. Cut videos are tiny real MP4s made with the bundled ffmpeg, each a different
length, so a player showing the wrong file is caught by its duration.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from storyboard.assemble.review import ReviewCut, ReviewPage, ReviewShot, ReviewVariant, render_review_page, write_review_page
from storyboard.media import ffmpeg_exe, probe

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def make_cut(path: Path, seconds: float, size: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=24:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
        check=True,
    )
    return path


def build_page(out: Path) -> tuple[ReviewPage, dict[str, float]]:
    specs = [("espresso-en-16x9", "espresso", "en", "16:9", 1.0, "160x90"),
             ("espresso-de-9x16", "espresso", "de", "9:16", 1.5, "90x160"),
             ("latte-en-16x9", "latte", "en", "16:9", 2.0, "160x90")]
    variants, durations = [], {}
    for vid, product, language, ratio, seconds, size in specs:
        video = make_cut(out / vid / "main.mp4", seconds, size)
        facts = probe(video)
        durations[vid] = facts.duration
        variants.append(ReviewVariant(
            id=vid, label=f"{product} · {language} · {ratio}",
            assignment={"product": product, "language": language, "aspect_ratio": ratio},
            status="assembled", usd_estimated=0.42, usd_alone=0.67, usd_charged=0.42,
            cuts=(ReviewCut("main", f"{vid}/main.mp4", facts.duration, ratio, facts.width, facts.height),),
            shots=(ReviewShot("open", "steam rises <b>slowly</b>", "Good morning", "r01-open", "reuses espresso-en-16x9's video"),),
        ))
    variants.append(ReviewVariant(
        id="latte-de-9x16", label="latte · de · 9:16",
        assignment={"product": "latte", "language": "de", "aspect_ratio": "9:16"},
        status="failed", reason="r02-close failed: Failure to pass the risk control system",
    ))
    page = ReviewPage(
        title="Test campaign </script><script>alert(1)</script>",
        variables={"product": [("espresso", "Espresso"), ("latte", "Latte")], "language": [("en", "English"), ("de", "Deutsch")],
                   "aspect_ratio": [("16:9", "16:9"), ("9:16", "9:16")]},
        variants=tuple(variants), usd_before=2.68, usd_after=1.26, provider="kling",
    )
    return page, durations


def test_the_page_is_static_escaped_and_relative(tmp_path):
    page, _ = build_page(tmp_path / "out")
    html = render_review_page(page)
    assert "<script>alert(1)</script>" not in html and "<b>slowly</b>" not in html
    assert "http://" not in html and "https://" not in html  # no CDN, nothing fetched
    assert 'src="espresso-en-16x9/main.mp4"' in html
    assert html.count('<article class="card"') == 4


def test_review_page_in_headless_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    out = tmp_path / "out"
    page_data, durations = build_page(out)
    index = write_review_page(page_data, out)
    assert index == out / "index.html"

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(index.as_uri())
            page.wait_for_load_state("load")

            assert page.locator("article.card").count() == 4
            assert page.locator("article.card:visible").count() == 4

            page.select_option("#filter-product", "latte")
            assert page.locator("article.card:visible").count() == 2
            page.select_option("#filter-language", "de")
            visible = page.locator("article.card:visible")
            assert visible.count() == 1 and visible.first.get_attribute("data-id") == "latte-de-9x16"
            assert "risk control" in visible.first.inner_text()
            page.select_option("#filter-product", "")
            page.select_option("#filter-language", "")
            page.select_option("#filter-aspect_ratio", "9:16")
            assert sorted(c.get_attribute("data-id") for c in page.locator("article.card:visible").all()) == [
                "espresso-de-9x16", "latte-de-9x16"]
            assert page.locator("#shown").inner_text() == "2 of 4 shown"
            page.select_option("#filter-aspect_ratio", "")
            page.select_option("#filter-status", "failed")
            assert page.locator("article.card:visible").count() == 1

            page.wait_for_function(
                "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 1)", timeout=15000)
            seen = page.evaluate(
                "Array.from(document.querySelectorAll('article.card')).filter(c => c.querySelector('video'))"
                ".map(c => [c.dataset.id, c.querySelector('video').duration])")
            assert {vid for vid, _ in seen} == set(durations)
            for vid, duration in seen:
                assert duration == pytest.approx(durations[vid], abs=1 / 24), vid
            assert errors == []
        finally:
            browser.close()




HOSTILE = [
    "<!--", "<!--<script>", "</script>", "</SCRIPT >", "<script>alert(1)</script>", "]]>",
    "<img src=x onerror=alert(1)>", "\u2028\u2029", "{{ 7*7 }}", "${alert(1)}", "' \" ` \\", "&amp; &lt;",
    "\\u003c/script\\u003e", "\u202eevil", "<svg/onload=alert(1)>", "javascript:alert(1)",
]


def test_hostile_text_stays_text_in_headless_chromium(tmp_path):
    """Prompts, captions and labels come from users: none may end the page's script or run code."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    out = tmp_path / "out"
    nasty = " ".join(HOSTILE)
    video = make_cut(out / "v" / "main.mp4", 1.0, "160x90")
    facts = probe(video)
    variants = tuple(
        ReviewVariant(
            id=f"v{index}", label=f"{text} label", assignment={"product": f"p{index}"}, status="assembled",
            usd_estimated=0.1, usd_alone=0.1, usd_charged=0.1,
            cuts=(ReviewCut("main", "v/main.mp4", facts.duration, "16:9", facts.width, facts.height),),
            shots=(ReviewShot("open", f"prompt {text}", f"caption {text}", "r01-open", ""),),
        )
        for index, text in enumerate([nasty, *HOSTILE])
    )
    page_data = ReviewPage(
        title=f"Title {nasty}", variables={"product": [(f"p{i}", f"P {t}") for i, t in enumerate([nasty, *HOSTILE])]},
        variants=variants, usd_before=1.0, usd_after=1.0, provider="preview",
    )
    index = write_review_page(page_data, out)
    html = index.read_text(encoding="utf-8")
    script_block = html.split('id="review-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in script_block and ">" not in script_block and "&" not in script_block

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            dialogs: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(index.as_uri())
            page.wait_for_load_state("load")
            cards = page.locator("article.card")
            assert cards.count() == len(variants)
            page.select_option("#filter-product", "p3")  # the page's own script still filters
            visible = page.locator("article.card:visible")
            assert visible.count() == 1 and visible.first.get_attribute("data-id") == "v3"
            page.select_option("#filter-product", "")
            assert page.locator("article.card:visible").count() == len(variants)
            body = page.locator("body").inner_text()
            for text in ("<!--<script>", "</script>", "<img src=x onerror=alert(1)>", "{{ 7*7 }}"):
                assert text in body, text
            assert page.locator("img[src=x]").count() == 0 and page.locator("svg").count() == 0
            assert dialogs == [] and errors == []
        finally:
            browser.close()
