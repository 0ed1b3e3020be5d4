"""The new-standard API on the planning side: which API a request goes to, its exact body, its
price, and the new API's own rules refused at the YAML line that sets them (kling-api-2.md §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyboard.load.loader import load
from storyboard.plan import IMAGE_SCHEME, planner

EXAMPLE = Path(__file__).resolve().parents[1] / "projects" / "turbo-drafts"


def _plan(make_project, yaml_text: str, images: dict | None = None):
    return planner.plan(load(make_project(yaml_text, images=images)))


def _errors(make_project, yaml_text: str, images: dict | None = None):
    problems = planner.check(load(make_project(yaml_text, images=images)))
    return [(p.location.line, p.location.path, p.message) for p in problems if p.severity == "error"]


def test_turbo_goes_to_the_new_api_at_turbo_rates_with_the_exact_body(make_project) -> None:
    plan = _plan(make_project, """
        name: t
        defaults: {model: kling-v3-turbo, mode: pro, aspect_ratio: "9:16"}
        shots:
          - {id: a, duration: 8, prompt: A paper boat drifts down a rain gutter}
        """)
    (request,) = plan.requests
    assert (request.api, request.endpoint, request.sound) == ("new", "/text-to-video/kling-3.0-turbo", True)
    assert request.body == {
        "prompt": "A paper boat drifts down a rain gutter",
        "settings": {"resolution": "1080p", "aspect_ratio": "9:16", "duration": 8},
    }
    assert request.units == 8.0  # 1.0 u/s at 1080p, audio included
    assert any("exists only on Kling's new-standard API" in n for n in request.notes)


def test_turbo_std_multi_shot_uses_the_inline_syntax_and_720p_rate(make_project) -> None:
    plan = _plan(make_project, """
        name: t
        defaults: {model: kling-v3-turbo, negative_prompt: blur}
        shots:
          - {id: a, duration: 3, prompt: close-up of the hero}
          - {id: b, duration: 4, prompt: wide street view}
        """)
    (request,) = plan.requests
    assert request.body["prompt"] == "shot 1, 3, close-up of the hero; shot 2, 4, wide street view; Avoid: blur."
    assert request.body["settings"] == {"resolution": "720p", "aspect_ratio": "16:9", "duration": 7}
    assert "negative_prompt" not in request.body and "multi_shot" not in request.body["settings"]
    assert request.units == pytest.approx(5.6)  # 0.8 u/s x 7 s


def test_v3_on_the_new_api_sends_multi_shot_false_for_one_shot_and_its_frames_as_parts(make_project) -> None:
    plan = _plan(make_project, """
        name: t
        defaults: {model: kling-v3, api: new, mode: pro, sound: true}
        shots:
          - {id: a, duration: 5, prompt: the cup turns, start_frame: a.png, end_frame: b.png}
        """, images={"a.png": (1280, 720), "b.png": (1280, 720)})
    (request,) = plan.requests
    assert request.endpoint == "/image-to-video/kling-3.0"
    assert [part["type"] for part in request.body["contents"]] == ["prompt", "first_frame", "last_frame"]
    assert request.body["contents"][1]["url"].startswith(IMAGE_SCHEME)
    assert request.body["settings"] == {"resolution": "1080p", "duration": 5, "audio": "native", "multi_shot": False}
    assert request.units == 6.0  # the same price on both APIs: 1.2 u/s pro with audio


def test_the_default_api_is_legacy_and_bodies_and_keys_do_not_change(make_project) -> None:
    text = """
        name: t
        shots:
          - {id: a, duration: 5, prompt: x}
        """
    (request,) = _plan(make_project, text).requests
    assert (request.api, request.endpoint) == ("legacy", "/v1/videos/text2video")
    (new,) = _plan(make_project, text.replace("name: t", "name: t\n        defaults: {api: new}")).requests
    assert new.api == "new" and new.key != request.key and new.external_task_id != request.external_task_id


@pytest.mark.parametrize(
    ("yaml_text", "line", "path", "needle"),
    [
        ("defaults: {model: kling-v3-turbo, api: legacy}\nshots:\n  - {id: a, duration: 5, prompt: x}",
         2, "defaults.api", "exists only on Kling's new-standard API"),
        ("defaults: {model: kling-v3-turbo, sound: false}\nshots:\n  - {id: a, duration: 5, prompt: x}",
         2, "defaults.sound", "always renders native audio"),
        ("defaults: {model: kling-v3-turbo, mode: 4k}\nshots:\n  - {id: a, duration: 5, prompt: x}",
         2, "defaults.mode", "on the new API renders 720p, 1080p only"),
        ("defaults: {model: kling-v3-turbo}\nshots:\n  - {id: a, duration: 5, prompt: x, start_frame: a.png,"
         " end_frame: a.png}", 4, "shots[0].end_frame", "first frame only"),
        ("defaults: {model: kling-v1-6, api: new}\nshots:\n  - {id: a, duration: 5, prompt: x}",
         2, "defaults.api", "is not on Kling's new-standard API"),
        ("defaults: {model: kling-v3, api: new, cfg_scale: 0.5}\nshots:\n  - {id: a, duration: 5, prompt: x}",
         2, "defaults.cfg_scale", "the new API has no cfg_scale"),
        ("defaults: {model: kling-v3, api: new}\nshots:\n  - {id: a, duration: 5, prompt: x, voices: [v1]}",
         4, "shots[0].voices", "the new API takes voices (voice parts) on kling-v2-6 image-to-video only"),
        ("defaults: {model: kling-v3-turbo}\nshots:\n  - {id: a, duration: 3, prompt: x; y}\n"
         "  - {id: b, duration: 3, prompt: z}", 4, "shots[0].prompt", "contains ';'"),
    ],
    ids=["turbo-legacy", "turbo-silent", "turbo-4k", "turbo-end-frame", "v1-6-new", "cfg-new", "voices-new",
         "inline-semicolon"],
)
def test_new_api_rules_are_refused_at_their_line(make_project, yaml_text, line, path, needle) -> None:
    errors = _errors(make_project, "name: t\n" + yaml_text + "\n", images={"a.png": (1280, 720)})
    assert any(e[0] == line and e[1] == path and needle in e[2] for e in errors), errors


def test_the_example_plans_turbo_drafts_and_a_v3_final_on_the_new_api() -> None:
    plan = planner.plan(load(EXAMPLE))
    assert [(r.api, r.endpoint, r.units) for r in plan.requests] == [
        ("new", "/text-to-video/kling-3.0-turbo", 5.6),
        ("new", "/image-to-video/kling-3.0", 6.0),
    ]
