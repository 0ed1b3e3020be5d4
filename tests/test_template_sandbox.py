"""The template sandbox: templates read only the project's templates/, and every render is bounded.

Each case is a hostile project as someone could send it (an archive keeps symlinks): the test
asserts the file's content never reaches a prompt, that the problem is located where the user
can fix it, and that the bounded cases stop fast.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.plan import planner
from storyboard.plan.pricing import content_key
from storyboard.plan.sandbox import OUTPUT_LIMIT, STEP_LIMIT, VALUE_LIMIT

SECRET = "KLINGAI_SECRET_KEY=never-in-a-prompt"

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def problems_of(project: Path) -> list:
    return [p for p in planner.check(load(project)) if p.severity == "error"]


def assert_secret_not_read(project: Path) -> None:
    """Neither a prompt nor a message ever holds the private file's text."""
    try:
        prompts = planner.render_prompts(load(project))
    except StoryboardInvalid as invalid:
        texts = [p.message for p in invalid.problems]
    else:
        texts = list(prompts.values())
    texts += [p.message for p in planner.check(load(project))]
    assert texts and all("never-in-a-prompt" not in text for text in texts)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the project holding a file that must stay private."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.j2").write_text(SECRET, encoding="utf-8")
    return folder


def test_a_template_that_is_a_symlink_to_a_file_outside_is_refused_at_the_template_key(make_project, outside) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - id: a
            duration: 5
            prompt: hi
            template: evil
        """
    )
    (project / "templates").mkdir()
    (project / "templates" / "evil.j2").symlink_to(outside / "secret.j2")
    (problem,) = problems_of(project)
    assert (problem.location.line, problem.location.path) == (7, "shots[0].template")
    assert "template 'evil.j2' refused: it is a link to" in problem.message
    assert "outside" in problem.message and "copy the file in instead of linking it" in problem.message
    assert_secret_not_read(project)


def test_an_include_through_a_symlinked_folder_is_refused_at_the_include_line(make_project, outside) -> None:
    project = make_project(
        """
        name: demo
        defaults: {template: house}
        shots:
          - {id: a, duration: 5, prompt: hi}
        """,
        files={"templates/house.j2": "{{ shot.prompt }}\n{% include 'common/secret.j2' %}\n"},
    )
    (project / "templates" / "common").symlink_to(outside, target_is_directory=True)
    (problem,) = problems_of(project)
    assert problem.location.file.endswith("templates/house.j2") and problem.location.line == 2
    assert "template 'common/secret.j2' refused: it is a link to" in problem.message
    assert_secret_not_read(project)


@pytest.mark.parametrize(
    ("include", "why"),
    [
        ("../.env", "'..' would leave the templates/ folder"),
        ("/etc/passwd", "not absolute paths"),
        (".env", "hidden files (such as .env) are never read"),
    ],
)
def test_includes_that_leave_templates_or_name_hidden_files_are_refused(make_project, include, why) -> None:
    project = make_project(
        f"""
        name: demo
        shots:
          - {{id: a, duration: 5, prompt: "before {{% include '{include}' %}} after"}}
        """,
        files={".env": SECRET + "\n", "templates/.env": SECRET + "\n"},
    )
    (problem,) = problems_of(project)
    assert (problem.location.line, problem.location.path) == (4, "shots[0].prompt")
    assert f"template {include!r} refused" in problem.message and why in problem.message
    assert_secret_not_read(project)


def test_etc_passwd_through_a_symlink_never_reaches_a_prompt(make_project) -> None:
    if not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: "{% include 'users.txt' %}"}
        """
    )
    (project / "templates").mkdir()
    (project / "templates" / "users.txt").symlink_to("/etc/passwd")
    (problem,) = problems_of(project)
    assert "template 'users.txt' refused: it is a link to /etc/passwd" in problem.message
    assert "root:" not in problem.message


def test_the_projects_env_is_unreadable_even_through_a_link_inside_templates(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: "{% include 'settings.j2' %}"}
        """,
        files={".env": SECRET + "\n"},
    )
    (project / "templates").mkdir()
    (project / "templates" / "settings.j2").symlink_to(project / ".env")
    (problem,) = problems_of(project)
    assert "template 'settings.j2' refused: it is a link to" in problem.message
    assert_secret_not_read(project)


def test_a_templates_folder_linked_to_the_project_itself_reads_nothing(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: "{% include 'storyboard.yaml' %}"}
        """,
        files={".env": SECRET + "\n"},
    )
    (project / "templates").symlink_to(project, target_is_directory=True)
    (problem,) = problems_of(project)
    assert "refused: the project's templates/ folder leads to" in problem.message


def test_a_fifo_named_as_a_template_is_refused_without_blocking(make_project) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: hi, template: pipe}
        """
    )
    (project / "templates").mkdir()
    os.mkfifo(project / "templates" / "pipe.j2")
    started = time.monotonic()
    (problem,) = problems_of(project)
    assert time.monotonic() - started < 5
    assert "is not a regular file" in problem.message
    assert problem.location.path == "shots[0].template"


def test_links_that_stay_inside_templates_still_work(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, subject: a cat, action: jumps, template: alias}
        """,
        files={"templates/house.j2": "HOUSE {{ shot.subject }}", "templates/parts/end.j2": "END"},
    )
    (project / "templates" / "alias.j2").symlink_to(project / "templates" / "house.j2")
    (project / "templates" / "house.j2").write_text("HOUSE {{ shot.subject }} {% include 'parts/end.j2' %}")
    assert planner.render_prompts(load(project)) == {"a": "HOUSE a cat END"}


# --- bounds -------------------------------------------------------------------------------------------

ALIAS_BOMB = """
vars:
  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]
  l1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]
  l2: &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]
  l3: &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]
  l4: &l4 [*l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3]
  l5: &l5 [*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]
  l6: &l6 [*l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5]
  l7: &l7 [*l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6]
  l8: &l8 [*l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7]
"""

BOUNDED_CASES = [
    pytest.param(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        f"range(100000) has 100,000 steps; a template runs at most {STEP_LIMIT:,} loop iterations",
        id="nested-range",
    ),
    pytest.param(
        "{% for a in range(9000) %}{% for b in range(9000) %}{% endfor %}{% endfor %}",
        f"the template ran more than {STEP_LIMIT:,} loop iterations and calls",
        id="nested-loops-under-the-range-bound",
    ),
    pytest.param(
        "{{ 'x' * 300000000 }}",
        f"a repetition would make 300,000,000 characters or items, more than the template value limit of {VALUE_LIMIT:,}",
        id="string-product",
    ),
    pytest.param("{{ vars.l8 }}", "vars.l8 expands to 1,210,689,028 characters and items", id="alias-bomb"),
    pytest.param("{{ vars | string }}", "expands to", id="alias-bomb-through-a-filter"),
    pytest.param(
        "{% set ns = namespace(s='0123456789') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "more than the template value limit",
        id="doubling-through-a-namespace",
    ),
    pytest.param("{{ 'x'.ljust(300000000) }}", "str.ljust would make 300,000,000", id="padding-method"),
    pytest.param("{{ 'x' | center(300000000) }}", "the center filter would make 300,000,000", id="padding-filter"),
    pytest.param("{{ '%0300000000d' % 1 }}", "a %-format width would make 300,000,000", id="printf-width"),
    pytest.param(
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "loop iterations and calls",
        id="exponential-macro",
    ),
    pytest.param(
        "{% for i in range(5000) %}{{ 'abcdefghij' * 5 }}{% endfor %}",
        f"the template's output passed {OUTPUT_LIMIT:,} characters (the template output limit",
        id="output-size",
    ),
]


@pytest.mark.parametrize(("prompt", "message"), BOUNDED_CASES)
def test_unbounded_inline_templates_stop_fast_with_a_located_error(make_project, prompt, message) -> None:
    project = make_project(
        "name: demo\n" + ALIAS_BOMB + "shots:\n  - id: a\n    duration: 5\n    prompt: " + repr(prompt) + "\n"
    )
    loaded = load(project)
    started = time.process_time()
    (problem,) = [p for p in planner.check(loaded) if p.severity == "error"]
    assert time.process_time() - started < 1.0  # CPU, so a loaded machine does not fail it
    assert (problem.location.line, problem.location.path) == (16, "shots[0].prompt")
    assert message in problem.message, problem.message


def test_a_bound_passed_in_a_template_file_is_located_at_its_line(make_project) -> None:
    project = make_project(
        "name: demo\n" + ALIAS_BOMB + "defaults: {template: house}\nshots:\n  - {id: a, duration: 5, prompt: hi}\n",
        files={"templates/house.j2": "{{ shot.prompt }}\n\n{{ vars.l8 | length }}\n"},
    )
    started = time.process_time()
    (problem,) = problems_of(project)
    assert time.process_time() - started < 1.0  # CPU, so a loaded machine does not fail it
    assert problem.location.file.endswith("templates/house.j2") and problem.location.line == 3
    assert "vars.l8 expands to" in problem.message and "template value limit" in problem.message


def test_an_alias_bomb_that_is_only_present_changes_nothing(make_project) -> None:
    project = make_project(
        "name: demo\n" + ALIAS_BOMB + "shots:\n  - {id: a, duration: 5, prompt: \"{{ vars.l0 | join(' ') }}\"}\n"
    )
    assert planner.render_prompts(load(project)) == {"a": " ".join(["lol"] * 9)}


def test_ordinary_loops_and_filters_are_untouched_by_the_bounds(make_project) -> None:
    project = make_project(
        """
        name: demo
        vars: {colours: [red, green, blue]}
        shots:
          - id: a
            duration: 5
            prompt: "{% for c in vars.colours if c != 'green' %}{{ loop.index }}={{ c | upper }}{{ ', ' if not loop.last }}{% endfor %} {{ range(3) | list | length }} {{ 'ab' * 2 }} {{ '%03d' % 7 }}"
        """
    )
    assert planner.render_prompts(load(project)) == {"a": "1=RED, 2=BLUE 3 abab 007"}


# --- text Kling can read ------------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_prompt_is_a_located_error_not_a_crash(make_project) -> None:
    project = make_project(
        """
        name: demo
        shots:
          - {id: a, duration: 5, prompt: "hi \\ud800 there"}
          - {id: b, duration: 5, prompt: fine, caption: "caf\\udce9"}
        """
    )
    problems = problems_of(project)
    assert [(p.location.line, p.location.path) for p in problems] == [(4, "shots[0].prompt"), (5, "shots[1].caption")]
    assert "the prompt contains an unpaired surrogate (\\ud800)" in problems[0].message
    assert "the caption contains an unpaired surrogate (\\udce9)" in problems[1].message


def test_content_key_hashes_any_text_and_keeps_the_keys_of_valid_text() -> None:
    assert content_key("/v1/videos/text2video", {"prompt": "caf\u00e9 \U0001f600"}) == (
        __import__("hashlib")
        .sha256('{"body":{"prompt":"café 😀"},"endpoint":"/v1/videos/text2video"}'.encode())
        .hexdigest()
    )
    assert len(content_key("/v1/videos/text2video", {"prompt": "\ud800"})) == 64


def test_an_alias_bomb_in_a_shots_own_vars_stops_fast_too(make_project) -> None:
    """Shot vars reach templates as ``shot.vars`` and ``vars``: neither may expand the bomb (main hung here)."""
    bomb = "\n".join("    " + line for line in ALIAS_BOMB.strip().splitlines()[1:])
    project = make_project(
        "name: demo\nshots:\n  - id: a\n    duration: 5\n    prompt: \"{{ shot.vars.l8 }}\"\n    vars:\n" + bomb + "\n"
    )
    started = time.process_time()
    (problem,) = problems_of(project)
    assert time.process_time() - started < 1.0  # CPU, so a loaded machine does not fail it
    assert (problem.location.line, problem.location.path) == (5, "shots[0].prompt")
    assert "shots[0].vars.l8 expands to 1,210,689,028 characters and items" in problem.message
