"""``storyboard render`` and ``status``: plan display, confirmation rules, provider choice, summary,
and an end-to-end run of the real CLI in a subprocess against the fake Kling served over HTTP,
killed with SIGKILL mid-run and resumed without paying twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from storyboard.cli.render import parse_max_cost
from storyboard.errors import UserError
from storyboard.media import probe
from storyboard.render.journal import Journal
from tests.conftest import kling_env
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve

_register_commands()

STORYBOARD = """\
version: 1
name: Tiny
defaults:
  model: kling-v3
  mode: std
  aspect_ratio: "16:9"
shots:
  - id: one
    duration: 3
    subject: a lighthouse
    action: waves crash
  - id: two
    duration: 3
    subject: a gull
    action: flies over the sea
"""



@pytest.fixture
def project(make_project) -> Path:
    return make_project(STORYBOARD)



@pytest.mark.parametrize("text, units", [("5u", 5.0), ("5", 5.0), ("2.5 units", 2.5), ("$2.80", 20.0), ("$0.14", 1.0)])
def test_max_cost_parses_units_and_dollars(text, units):
    assert parse_max_cost(text) == pytest.approx(units)


@pytest.mark.parametrize("text", ["five", "-3u", "$", "3€"])
def test_max_cost_rejects_nonsense(text):
    with pytest.raises(UserError, match="not a cost"):
        parse_max_cost(text)


def test_preview_is_chosen_without_keys_renders_free_then_reuses(project, no_keys):
    runner = CliRunner()
    first = runner.invoke(app, ["render", str(project)])
    assert first.exit_code == 0, first.output
    assert "no Kling credentials found" in first.output and "--provider kling" in first.output
    assert "+ " in first.output or "│ +" in first.output
    assert "1 rendered, 0 reused, 0 failed" in first.output
    (clip,) = (project / ".storyboard" / "clips" / "preview").glob("*.mp4")
    assert probe(clip).frames == 6 * 24
    second = runner.invoke(app, ["render", str(project)])
    assert second.exit_code == 0 and "0 rendered, 1 reused" in second.output and "│ =" in second.output
    status = runner.invoke(app, ["status", str(project)])
    assert status.exit_code == 0 and "rendered" in status.output and "total charged: 0 units" in status.output


def test_kling_without_yes_and_without_a_terminal_refuses_to_spend(project, no_keys, monkeypatch):
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        for name, value in kling_env(fake, base_url).items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, ["render", str(project)])
    assert result.exit_code == 1
    assert "no terminal to confirm" in result.output and "--yes" in result.output and "nothing was sent" in result.output
    assert fake.create_attempts == 0 and not fake.requests_log


def test_kling_with_yes_renders_reports_cost_and_leaks_no_secret(project, no_keys, monkeypatch):
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        for name, value in kling_env(fake, base_url).items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, ["render", str(project), "--yes", "--max-cost", "$5"])
        status = CliRunner().invoke(app, ["status", str(project)])
    assert result.exit_code == 0, result.output
    assert "1 rendered" in result.output and "spent 3.6 units ($0.50)" in result.output
    assert f"total charged: {fake.charged_units:g} units" in status.output
    tokens = {r.headers["authorization"][7:] for r in fake.requests_log if "authorization" in r.headers}
    files = [p.read_bytes().decode("latin-1") for p in (project / ".storyboard").rglob("*") if p.is_file()]
    for secret in {fake.access_key, fake.secret_key, *tokens}:
        assert secret not in result.output and secret not in status.output
        assert not any(secret in blob for blob in files)


def test_budget_too_small_is_refused_up_front_and_exits_1(project, no_keys, monkeypatch):
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        for name, value in kling_env(fake, base_url).items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, ["render", str(project), "--yes", "--max-cost", "3u"])
    assert result.exit_code == 1
    assert "--max-cost 3 units cannot cover this plan" in result.output and "need 3.6 units ($0.50)" in result.output
    assert "nothing was sent" in result.output and "raise --max-cost to 3.6u" in result.output
    assert fake.create_attempts == 0


def _journal_states(project: Path) -> list[str]:
    path = project / ".storyboard" / "journal.sqlite"
    if not path.is_file():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return [row[0] for row in db.execute("SELECT state FROM requests")]
        finally:
            db.close()
    except sqlite3.Error:
        return []


def test_end_to_end_subprocess_killed_mid_run_then_resumed(project, no_keys):
    fake = FakeKling(polls_to_finish=1000)  # the task keeps running until the test lets it finish
    storyboard = str(Path(sys.executable).with_name("storyboard"))
    with serve(fake) as base_url:
        env = {**os.environ, **kling_env(fake, base_url)}
        process = subprocess.Popen([storyboard, "render", str(project), "--yes"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "submitted" not in _journal_states(project) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert "submitted" in _journal_states(project), process.communicate()[0]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert sum(fake.creates.values()) == 1

        fake.script("sb-", polls=1)  # let the running task finish on its next poll
        for task in fake.tasks.values():
            task.polls_to_finish = 1
        rerun = subprocess.run([storyboard, "render", str(project), "--yes"], env=env, capture_output=True,
                               text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "~" in rerun.stdout and "1 rendered" in rerun.stdout
    assert sum(fake.creates.values()) == 1 and all(count == 1 for count in fake.creates.values())
    with Journal.open(project) as journal:
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units) == pytest.approx(3.6)
    (clip,) = (project / ".storyboard" / "clips" / "kling").glob("*.mp4")
    assert probe(clip).frames == 6 * 24
    for secret in (fake.access_key, fake.secret_key):
        assert secret not in rerun.stdout + rerun.stderr
