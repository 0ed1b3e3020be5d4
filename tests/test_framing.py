"""Aspect ratios in the plan: each request's ratio, and advisories when an output crops or fills a clip."""

from __future__ import annotations

from storyboard.load.loader import load
from storyboard.plan import planner

LANDSCAPE = {"refs/wide.png": (1280, 720), "refs/tall.png": (720, 1280), "refs/photo.png": (1024, 768)}


def advisories(project) -> list:
    return [p for p in planner.check(load(project)) if p.severity == "advisory"]


def test_a_landscape_start_frame_in_a_vertical_project_is_advised_at_its_line_with_the_share_cropped(
    make_project,
) -> None:
    project = make_project(
        """
        name: demo
        defaults: {aspect_ratio: "9:16", strategy: per_shot}
        shots:
          - {id: a, duration: 5, prompt: pour, start_frame: refs/wide.png}
          - {id: b, duration: 5, prompt: sip, start_frame: refs/tall.png}
          - {id: c, duration: 5, prompt: text only}
        """,
        images=LANDSCAPE,
    )
    (problem,) = advisories(project)
    assert (problem.location.line, problem.location.path) == (5, "shots[0].start_frame")
    assert problem.message == (
        "shot a: 16:9 start frame refs/wide.png in output main (9:16, reframe: crop): 68% of its width is cropped "
        "away; use a 9:16 start frame or reframe: blur"
    )
    plan = planner.plan(load(project))
    assert [r.aspect_ratio for r in plan.requests] == ["16:9", "9:16", "9:16"]
    assert any("68% of its width is cropped away" in note for note in plan.notes)


def test_every_output_that_reframes_a_clip_gets_its_own_advisory(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: pour, start_frame: refs/wide.png}
        outputs:
          - {name: landscape, aspect_ratio: "16:9"}
          - {name: vertical, aspect_ratio: "9:16", reframe: blur}
          - {name: square, aspect_ratio: "1:1"}
        """,
        images=LANDSCAPE,
    )
    messages = sorted(p.message for p in advisories(project))
    assert messages == [
        "shot a: 16:9 start frame refs/wide.png in output square (1:1, reframe: crop): 44% of its width is cropped "
        "away; use a 1:1 start frame or reframe: blur",
        "shot a: 16:9 start frame refs/wide.png in output vertical (9:16, reframe: blur): the clip fills 32% of the "
        "frame's height, the other 68% is a blurred fill; use a 9:16 start frame to fill it",
    ]


def test_an_off_ratio_photo_is_named_by_its_size_and_the_clip_ratio_it_snaps_to(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: pour, start_frame: refs/photo.png}
        """,
        images=LANDSCAPE,
    )
    (problem,) = advisories(project)
    assert problem.message.startswith("shot a: 1024x768 start frame refs/photo.png (a 1:1 clip) in output main")
    assert "44% of its height is cropped away" in problem.message
    (request,) = planner.plan(load(project)).requests
    assert (request.aspect_ratio, request.width, request.height) == ("1:1", 720, 720)


def test_matching_ratios_and_chained_shots_say_nothing(make_project) -> None:
    project = make_project(
        """
        name: demo
        defaults: {strategy: per_shot}
        shots:
          - {id: a, duration: 5, prompt: pour, start_frame: refs/wide.png}
          - {id: b, duration: 5, prompt: sip, start_frame: previous}
        """,
        images=LANDSCAPE,
    )
    assert advisories(project) == []
    first, second = planner.plan(load(project)).requests
    assert first.aspect_ratio == second.aspect_ratio == "16:9"
