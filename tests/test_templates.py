"""Prompt templates: the built-ins, the sandbox, StrictUndefined, project overrides, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import storyboard
from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.plan import planner

IMG = {"refs/hero.png": (640, 360), "refs/style.png": (400, 400), "refs/street.png": (640, 360)}


def errors(project: Path) -> list:
    return [p for p in planner.check(load(project)) if p.severity == "error"]


def test_builtin_templates_dir_is_the_repo_templates_in_an_editable_install() -> None:
    directory = planner.builtin_templates_dir()
    assert (directory / "motion.j2").is_file() and (directory / "multishot.j2").is_file()
    assert directory == Path(storyboard.__file__).resolve().parent.parent / "templates"
    assert planner.builtin_template_names() == ["motion", "multishot"]


def test_motion_template_puts_motion_first_then_camera_then_mood(make_project) -> None:
    project = make_project(
        """
        name: demo
        defaults: {model: kling-v2-6}
        shots:
          - id: a
            duration: 5
            mood: calm, blue light
            camera: slow push-in
            action: floats slowly toward the hatch
            subject: the astronaut
            prompt: "Stars drift behind {{ vars.who }}."
            vars: {who: her}
        """
    )
    prompt = planner.render_prompts(load(project))["a"]
    assert (
        prompt
        == "The astronaut floats slowly toward the hatch. Stars drift behind her. Camera: slow push-in. Calm, blue light."
    )


def test_a_bare_prompt_passes_through_unchanged(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: "A lighthouse on a cliff at dusk, waves crashing"}
        """
    )
    assert planner.render_prompts(load(project)) == {"a": "A lighthouse on a cliff at dusk, waves crashing"}


def test_context_has_project_defaults_references_and_overlaid_vars(make_project) -> None:
    project = make_project(
        """
        name: Coffee Launch
        defaults: {model: kling-v2-6, mode: pro}
        references:
          hero: {image: refs/hero.png, description: a barista in a green apron}
        vars: {brand: Acme, tone: warm}
        shots:
          - id: a
            duration: 5
            vars: {tone: bright}
            prompt: "{{ project }} / {{ project.name }} / {{ defaults.mode }} / {{ vars.brand }} {{ vars.tone }} / {{ references.hero.description }} / {{ ref('hero') }}"
        """,
        images=IMG,
    )
    prompt = planner.render_prompts(load(project))["a"]
    expected = (
        "Coffee Launch / Coffee Launch / pro / Acme bright / a barista in a green apron / a barista in a green apron"
    )
    assert prompt == expected


def test_ref_on_omni_is_the_image_or_element_token_and_motion_mentions_the_roles(make_project) -> None:
    project = make_project(
        """
        name: demo
        defaults: {model: kling-v3-omni, strategy: per_shot}
        references:
          hero: {image: refs/hero.png, element: 829836802793406551}
          style: {image: refs/style.png, role: style}
          street: {image: refs/street.png, role: environment}
        shots:
          - id: a
            duration: 5
            prompt: "{{ ref('hero') }} walks slowly."
            references: [hero, style, street]
          - id: b
            duration: 5
            prompt: "{{ ref('street') }} at night, {{ ref('hero') }} waits"
            references: [street, hero]
        """,
        images=IMG,
    )
    prompts = planner.render_prompts(load(project))
    assert prompts["a"] == "<<<element_1>>> walks slowly. Style: <<<image_1>>>. Setting: <<<image_2>>>."
    assert prompts["b"] == "<<<image_1>>> at night, <<<element_1>>> waits"


def test_ref_on_v3_image_to_video_names_elements_and_describes_the_rest(make_project) -> None:
    project = make_project(
        """
        name: demo
        defaults: {strategy: per_shot}
        references:
          hero: {image: refs/hero.png, element: 829836802793406551, description: a tall courier}
          style: {image: refs/style.png, role: style, description: watercolour look}
        shots:
          - id: a
            duration: 8
            start_frame: refs/street.png
            prompt: "{{ ref('hero') }} rides past, {{ ref('style') }}"
            references: [hero, style]
          - id: b
            duration: 5
            prompt: "{{ ref('hero') }} again"
            references: [hero]
        """,
        images=IMG,
    )
    prompts = planner.render_prompts(load(project))
    assert prompts["a"] == "<<<element_1>>> rides past, watercolour look"
    assert prompts["b"] == "a tall courier again"  # shot b is text-to-video: elements are not sent


def test_ref_of_a_reference_not_sent_with_an_omni_request_is_an_error(make_project) -> None:
    project = make_project(
        """
        name: demo
        defaults: {model: kling-v3-omni}
        references:
          hero: refs/hero.png
        shots:
          - {id: a, duration: 5, prompt: "{{ ref('hero') }} waves"}
        """,
        images=IMG,
    )
    (problem,) = errors(project)
    assert problem.location.line == 7 and problem.location.path == "shots[0].prompt"
    assert "hero is not sent with this request: add it to shots[0].references" in problem.message


def test_sandbox_refuses_python_internals(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - id: a
            duration: 5
            prompt: "{{ ''.__class__.__mro__ }}"
        """
    )
    (problem,) = errors(project)
    assert problem.location.line == 6
    assert "refused by the sandbox" in problem.message and "__class__" in problem.message
    with pytest.raises(StoryboardInvalid):
        planner.render_prompts(load(project))


def test_undefined_variable_in_a_project_template_is_located_at_its_line(make_project) -> None:
    project = make_project(
        """
        name: demo
        defaults: {template: house}
        shots:
          - {id: a, duration: 5, prompt: hello}
        """,
        files={"templates/house.j2": "{{ shot.prompt }}\n\n{{ vars.missing_brand }}\n"},
    )
    (problem,) = errors(project)
    assert problem.location.file.endswith("templates/house.j2")
    assert problem.location.line == 3
    assert "'dict object' has no attribute 'missing_brand'" in problem.message
    assert "template 'house' failed for shot a" in problem.message


def test_syntax_error_in_a_template_is_located_at_its_line(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: hello, template: broken}
        """,
        files={"templates/broken.j2": "line one\n{% if shot.prompt %}\n{{ shot.prompt }}\n"},
    )
    (problem,) = errors(project)
    assert problem.location.file.endswith("templates/broken.j2") and problem.location.line == 3
    assert problem.message.startswith("template syntax error:")


def test_syntax_error_in_an_inline_prompt_is_located_at_the_prompt(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - id: a
            duration: 5
            prompt: "a {{ broken"
        """
    )
    (problem,) = errors(project)
    assert (problem.location.line, problem.location.path) == (6, "shots[0].prompt")
    assert problem.message.startswith("template syntax error in the prompt (line 1 of it)")


def test_unknown_template_name_is_located_at_the_template_key(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - id: a
            duration: 5
            prompt: hi
            template: cinematic
        """
    )
    (problem,) = errors(project)
    assert (problem.location.line, problem.location.path) == (7, "shots[0].template")
    assert problem.message == (
        "template 'cinematic' not found: create templates/cinematic.j2 in the project, or use a built-in (motion, multishot)"
    )


def test_project_templates_override_the_builtins(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, subject: a cat, action: jumps}
        """,
        files={"templates/motion.j2": "OVERRIDE {{ shot.subject | upper }}"},
    )
    assert planner.render_prompts(load(project)) == {"a": "OVERRIDE A CAT"}


def test_multi_shot_requests_use_the_terse_multishot_template(make_project) -> None:
    project = make_project(
        """
        name: demo
        defaults: {model: kling-v3-omni}
        references:
          style: {image: refs/style.png, role: style}
        shots:
          - {id: a, duration: 3, subject: a kite, action: rises, camera: tilt up, references: [style]}
          - {id: b, duration: 3, subject: the string, action: snaps}
        """,
        images=IMG,
    )
    prompts = planner.render_prompts(load(project))
    assert prompts == {"a": "A kite rises. In the style of <<<image_1>>>. Tilt up.", "b": "The string snaps."}


def test_unknown_reference_in_ref_is_a_located_error(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: "{{ ref('villain') }}"}
        """
    )
    (problem,) = errors(project)
    assert problem.location.line == 4
    assert "ref('villain'): no reference named 'villain' (references: none)" in problem.message


def test_lookups_filled_in_without_jinja_render_exactly_as_jinja_does(make_project) -> None:
    """The planner fills ``{{ vars.x }}`` in directly (speed); anything else still goes through Jinja."""
    from storyboard.plan import prompts

    context = {"vars": {"brand": "Café Noir", "n": 3, "ratio": 0.5, "flag": True, "items": "x"},
               "shot": {"id": "a"}}
    env = prompts.template_environment(make_project("name: demo\nshots:\n  - {id: a, duration: 5, prompt: x}\n"))
    for source in ["{{ vars.brand }} take {{vars.n}} at {{ vars.ratio }} — {{ shot.id }}",
                   "{{ vars.flag }} {{ vars.brand | upper }}", "{{ vars.items }}", "{% if vars.n %}{{ vars.n }}{% endif %}"]:
        jinja = prompts.render_bounded(prompts._inline_template(env, source), context)
        assert prompts._render_inline_text(env, source, context) == (jinja.strip() or None), source
    assert prompts._filled_in("{{ vars.brand }} take {{vars.n}}", context) == "Café Noir take 3"
    assert prompts._filled_in("{{ vars.flag }}", context) is None  # a bool: Jinja decides
    assert prompts._filled_in("{{ vars.items }}", context) is None  # also a dict method
    assert prompts._filled_in("{{ vars.brand | upper }}", context) is None
    assert prompts._filled_in("{{ vars.missing }}", context) is None
