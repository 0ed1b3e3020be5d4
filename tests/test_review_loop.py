"""The review loop: takes, verdicts in the journal, ``review apply`` and comments in the OTIO.

Against the fake Kling served over HTTP (strict, stateful; as the render tests use it): a
rejected shot is re-taken with exactly one new create, a shot chained from it (``start_frame:
previous``) with one more, approved shots with none; a later run pays nothing again. The
regenerated page shows both takes and the cut's OTIO carries the comment as a marker.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from storyboard import pipeline
from storyboard.cli import _register_commands, app
from storyboard.plan.takes import take_key, with_takes
from storyboard.render.journal import MIGRATIONS, Journal
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve

_register_commands()

STORYBOARD = """\
version: 1
name: Loop
defaults:
  model: kling-v3
  mode: std
  aspect_ratio: "16:9"
  strategy: per_shot
shots:
  - id: one
    duration: 3
    subject: a lighthouse
    action: waves crash
    caption: The coast
  - id: two
    duration: 3
    subject: the lighthouse at dusk
    action: the lamp turns on
    start_frame: previous
  - id: three
    duration: 3
    subject: a gull
    action: flies over the sea
"""




def verdict_boxes(page: Path) -> list[dict[str, str]]:
    """The page's shot verdict controls, as the page's script reads them."""
    html = page.read_text(encoding="utf-8")
    found = re.findall(
        r'<div class="verdict" data-kind="shot" data-spot="([^"]*)" data-shot="([^"]*)" data-key="([^"]*)"\s+'
        r'data-base-key="([^"]*)" data-take="(\d+)"', html)
    return [dict(spot=s, shot=shot, key=k, base_key=b, take=int(t)) for s, shot, k, b, t in found]


def review_file(path: Path, boxes: list[dict], verdicts: dict[str, tuple[str, str]]) -> Path:
    shots = [dict(box, verdict=verdicts[box["shot"]][0], comment=verdicts[box["shot"]][1])
             for box in boxes if box["shot"] in verdicts]
    path.write_text(json.dumps({"format": "storyboard-review/1", "shots": shots, "cuts": []}), encoding="utf-8")
    return path


def otio_markers(otio_file: Path) -> list[dict]:
    found: list[dict] = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("OTIO_SCHEMA", "")).startswith("Marker"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(otio_file.read_text(encoding="utf-8")))
    return found


def test_take_one_keeps_its_key_and_a_retake_renames_the_chained_request(make_project):
    project = make_project(STORYBOARD)
    loaded, plan, _ = pipeline.check(project)
    one, two, three = plan.requests
    same, renamed = with_takes(plan)
    assert same is plan and renamed == {}  # no takes: exactly the plan as before takes existed
    assert take_key(one.key, 1) == one.key and take_key(one.key, 2) != one.key
    retaken, renamed = with_takes(plan, chosen={one.key: 2}, reasons={one.key: "re-take: rejected"})
    new_one, new_two, new_three = retaken.requests
    assert new_one.key == take_key(one.key, 2) and new_one.take == 2 and new_one.base_key == one.key
    assert new_one.body == one.body and new_one.external_task_id != one.external_task_id
    assert new_two.key != two.key and new_two.depends_on == [new_one.key]
    assert f"frame://last/{new_one.key}" in json.dumps(new_two.body)
    assert any("chained from r01-one" in note for note in new_two.notes)
    assert new_three == three and set(renamed) == {one.key, two.key}
    fixed, _ = with_takes(plan, fixed={"three": 3})
    assert fixed.requests[2].key == take_key(three.key, 3) and fixed.requests[0] == one


def test_journal_migration_and_take_choice(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    assert journal.schema_version == len(MIGRATIONS) >= 5  # later steps append (TTS, lip sync, element voices)
    assert journal.take_choices() == {}
    journal.record_verdict("b", 1, "one", "rejected", "too dark")
    journal.add_take("b", 2, "k2", "r01-one", "re-take")
    assert journal.take_choices() == {"b": 2}  # newest
    journal.record_verdict("b", 2, "one", "rejected", "still too dark")
    journal.add_take("b", 3, "k3", "r01-one", "re-take")
    journal.record_verdict("b", 1, "one", "approved", "fine after all")
    assert journal.take_choices() == {"b": 1}  # newest approved beats newest
    journal.close()


def test_review_apply_against_fake_kling_retakes_only_the_rejected(make_project, no_keys, monkeypatch, tmp_path):
    project = make_project(STORYBOARD)
    fake = FakeKling(polls_to_finish=1)
    runner = CliRunner()
    with serve(fake) as base_url:
        monkeypatch.setenv("KLINGAI_ACCESS_KEY", fake.access_key)
        monkeypatch.setenv("KLINGAI_SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("KLINGAI_BASE_URL", base_url)
        first = runner.invoke(app, ["run", str(project), "--yes"])
        assert first.exit_code == 0, first.output
        assert sum(fake.creates.values()) == 3
        page = project / "out" / "index.html"
        assert page.is_file()
        boxes = verdict_boxes(page)
        assert [b["shot"] for b in boxes] == ["one", "two", "three"]
        before = dict(fake.creates)
        review = review_file(tmp_path / "review.json", boxes,
                             {"one": ("rejected", "too dark </script> & cold"), "three": ("approved", "")})

        declined = runner.invoke(app, ["review", "apply", str(review), str(project)])
        assert declined.exit_code == 1 and sum(fake.creates.values()) == 3  # no terminal, no --yes: nothing sent
        with Journal.open(project) as journal:
            assert journal.takes() == []  # a declined re-take adds no take

        applied = runner.invoke(app, ["review", "apply", str(review), str(project), "--yes"])
        assert applied.exit_code == 0, applied.output
        new = {tid: n for tid, n in fake.creates.items() if tid not in before}
        assert len(new) == 2 and all(n == 1 for n in new.values())  # one re-take + the shot chained from it
        assert all(fake.creates[tid] == 1 for tid in before)  # take 1 of every shot: never paid again
        assert "re-take r01-one take 2" in applied.output and "chained from r01-one" in applied.output

        again = runner.invoke(app, ["run", str(project), "--yes"])
        assert again.exit_code == 0, again.output
        assert sum(fake.creates.values()) == 5  # the chosen take is kept: nothing paid twice

    work, _ = pipeline.load_project(project)
    one, two, three = work.requests
    assert one.take == 2 and two.take == 1 and two.depends_on == [one.key] and three.key == boxes[2]["key"]
    takes = {(b["shot"], b["take"]) for b in verdict_boxes(page)}
    assert takes == {("one", 1), ("one", 2), ("two", 1), ("three", 1)}
    html = page.read_text(encoding="utf-8")
    assert html.count('class="take current"') == 3 and "too dark &lt;/script&gt; &amp; cold" in html
    markers = otio_markers(project / "out" / "main.otio")
    said = {(m["metadata"]["storyboard"]["review"]["shot_id"], m["metadata"]["storyboard"]["review"]["verdict"],
             m["metadata"]["storyboard"]["review"]["comment"]) for m in markers}
    assert said == {("one", "rejected", "too dark </script> & cold"), ("three", "approved", "")}
    assert (project / "out" / "main.vtt").read_text(encoding="utf-8").startswith("WEBVTT")


def test_review_file_errors_are_clear(make_project, tmp_path):
    project = make_project(STORYBOARD)
    bad = tmp_path / "review.json"
    bad.write_text('{"format": "storyboard-review/1", "shots": [{"shot": "one", "key": "x", "verdict": "maybe"}]}')
    result = CliRunner().invoke(app, ["review", "apply", str(bad), str(project), "--provider", "preview"])
    assert result.exit_code == 1 and "shots[0].verdict" in result.output and "Traceback" not in result.output
    bad.write_text("[]")
    result = CliRunner().invoke(app, ["review", "apply", str(bad), str(project)])
    assert result.exit_code == 1 and "not a storyboard review file" in result.output


def test_a_storyboard_take_is_planned_as_a_paid_retake(make_project):
    project = make_project(STORYBOARD.replace("    caption: The coast\n", "    caption: The coast\n    take: 2\n"))
    result = CliRunner().invoke(app, ["plan", str(project)])
    assert result.exit_code == 0, result.output
    assert "r01-one (take 2)" in result.output and "take 2 (the storyboard's take)" in result.output
    assert "chained from r01-one" in result.output  # shot two starts from take 2's last frame
    assert not (project / ".storyboard").exists()  # planning reads no journal into being
    document = json.loads(CliRunner().invoke(app, ["plan", str(project), "--json"]).output)
    assert [r.get("take", 1) for r in document["requests"]] == [2, 1, 1]
