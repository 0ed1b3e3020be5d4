"""The shared journal on a real PostgreSQL: claims across processes, the account's daily cap, quiet
claims taken over, migrations appended later, ``journal migrate``, ``journal budget`` and
``status --account``, and two renders of one project in two checkouts sharing the work.

The two-checkout tests at the bottom run the real CLI in subprocesses against one fake Kling served
over loopback and one journal: every request is created once, every clip lands in both checkouts,
and a render killed with SIGKILL is taken over by the other (the figures are printed with ``-s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from storyboard.media import probe
from storyboard.render import engine
from storyboard.render import journal as journal_module
from storyboard.render.journal import (
    CLAIM_TIMEOUT_VARIABLE,
    JOURNAL_URL_VARIABLE,
    MIGRATIONS,
    AccountBudgetExceeded,
    AlreadyClaimed,
    Journal,
)
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve
from tests.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)
from tests.test_engine import make_plan, no_sleep, provider_for, t2v

_register_commands()

REPO = Path(__file__).resolve().parent.parent
KEY = "ab" * 32


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout first on its path, the test's settings."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


# ---- claims and the cap across processes ------------------------------------------------------

CLAIMER = textwrap.dedent("""
    import json, random, sys
    from storyboard.render.journal import Journal, AlreadyClaimed, AccountBudgetExceeded
    url, who, keys, units = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
    random.shuffle(keys)
    won, over = [], 0
    with Journal.at_url(url, project="race") as journal:
        for key in keys:
            try:
                journal.claim("kling", key, "r-" + key[:4], "sb-" + key[:40], units, None)
                won.append(key)
            except AlreadyClaimed:
                pass
            except AccountBudgetExceeded:
                over += 1
    print(json.dumps({"won": won, "over": over}))
""")


def run_claimers(url: str, keys_per_process: list[list[str]], units: float) -> list[dict]:
    processes = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, f"p{i}", json.dumps(keys), str(units)],
                                  env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i, keys in enumerate(keys_per_process)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_four_processes_racing_for_the_same_requests_claim_each_exactly_once(postgres_url):
    keys = [f"{i:04d}" + "c" * 60 for i in range(40)]
    results = run_claimers(postgres_url, [list(keys) for _ in range(4)], 0.0)
    won = [key for result in results for key in result["won"]]
    assert sorted(won) == sorted(keys)  # each key won once, by exactly one process
    with Journal.at_url(postgres_url) as journal:
        records = journal.records("kling")
        assert len(records) == 40 and all(r.state == "claimed" and r.owner for r in records)
        assert len({r.owner for r in records}) >= 1


def test_the_daily_cap_is_never_exceeded_by_processes_claiming_at_once(postgres_url):
    with Journal.at_url(postgres_url) as journal:
        journal.set_daily_budget(10.0)
    keys = [[f"{p}{i:03d}" + "d" * 60 for i in range(10)] for p in range(4)]
    results = run_claimers(postgres_url, keys, 1.5)
    claimed = sum(len(r["won"]) for r in results)
    assert claimed == 6 and sum(r["over"] for r in results) == 34  # 6 x 1.5 = 9 <= 10 < 7 x 1.5
    with Journal.at_url(postgres_url) as journal:
        assert journal.spent_today() == pytest.approx(9.0) and journal.spent_today() <= journal.daily_budget()
        assert len(journal.records()) == 6  # a refused claim leaves no row behind


def test_a_claim_refused_by_the_cap_claims_nothing_and_says_how_to_raise_it(postgres_url):
    with Journal.at_url(postgres_url, project="promo") as journal:
        journal.set_daily_budget(2.0)
        journal.claim("kling", KEY, "r01", "sb-a", 1.5, None)
        with pytest.raises(AccountBudgetExceeded, match=r"daily cap is 2 units and 1.5 .* needs 1.5 more.*journal budget"):
            journal.claim("kling", "cd" * 32, "r02", "sb-b", 1.5, None)
        assert journal.get("kling", "cd" * 32) is None
        journal.mark_submitted("kling", KEY, "1")
        journal.mark_failed("kling", KEY, "moderation", money_spent=False)  # refunded: the reservation goes
        assert journal.spent_today() == 0
        journal.claim("kling", "cd" * 32, "r02", "sb-b", 1.5, None)


# ---- heartbeats and take-overs ------------------------------------------------------------------


def test_only_a_quiet_claim_is_taken_over_and_by_one_render(postgres_url):
    alive, crashed = Journal.at_url(postgres_url), Journal.at_url(postgres_url)
    first, second = Journal.at_url(postgres_url), Journal.at_url(postgres_url)
    alive.claim("kling", KEY, "r01", "sb-a", 1.5, None)
    crashed.claim("kling", "cd" * 32, "r02", "sb-b", 1.5, None)
    crashed.mark_submitted("kling", "cd" * 32, "8661")
    time.sleep(1.3)
    assert alive.heartbeat() == 1  # alive says so; crashed never does again
    assert first.take_over("kling", KEY, 1.0) is None  # a fresh heartbeat is never taken over
    taken = first.take_over("kling", "cd" * 32, 1.0)
    assert taken is not None and taken.owner == first.owner and taken.task_id == "8661" and taken.state == "submitted"
    assert second.take_over("kling", "cd" * 32, 1.0) is None  # the new owner's take-over is its heartbeat
    assert first.quiet_for(taken) < 1.0
    for journal in (alive, crashed, first, second):
        journal.close()


def test_a_render_that_exits_lets_its_claims_go_at_once(postgres_url):
    leaving, next_one = Journal.at_url(postgres_url), Journal.at_url(postgres_url)
    leaving.claim("kling", KEY, "r01", "sb-a", 1.5, None)
    assert next_one.take_over("kling", KEY, 60.0) is None
    assert leaving.release() == 1
    assert next_one.take_over("kling", KEY, 60.0).owner == next_one.owner
    leaving.close(), next_one.close()


def test_a_migration_appended_later_just_works_on_postgresql(postgres_url, monkeypatch):
    with Journal.at_url(postgres_url) as journal:
        journal.claim("kling", KEY, "r01", "sb-a", 1.5, None)
        journal.record_element("kling", "e" * 64, 829836802793406551)  # past 2^31: BIGINT on PostgreSQL
    appended = [*MIGRATIONS, """
        ALTER TABLE requests ADD COLUMN voice_id TEXT;
        CREATE TABLE voices (provider TEXT NOT NULL, digest TEXT NOT NULL, voice_id INTEGER NOT NULL,
                             created_at REAL NOT NULL, PRIMARY KEY (provider, digest))
    """]
    monkeypatch.setattr(journal_module, "MIGRATIONS", appended)
    with Journal.at_url(postgres_url) as journal, Journal.at_url(postgres_url) as again:
        assert journal.schema_version == again.schema_version == len(appended)
        journal._sql("INSERT INTO voices VALUES ('kling', 'v', 829836802793406552, ?)", (time.time(),))
        assert journal.get("kling", KEY).state == "claimed"  # a column the record does not know is left out
        assert journal.element_id("kling", "e" * 64) == 829836802793406551
        assert "voice_id" in journal.columns("requests")


# ---- work shared by two renders (in one process, fast) -------------------------------------------


def render_both(plan, projects, fake, **options):
    async def one(project):
        provider = provider_for(fake)
        try:
            return await engine.render(plan, project, provider, sleep=no_sleep, **options)
        finally:
            await provider.aclose()

    async def go():
        return await asyncio.gather(*(one(project) for project in projects))

    return asyncio.run(go())


def test_two_renders_on_one_journal_create_each_request_once_and_both_get_every_clip(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv(JOURNAL_URL_VARIABLE, postgres_url)
    plan = make_plan([t2v(i) for i in range(6)])
    fake = FakeKling(polls_to_finish=3)
    checkouts = [tmp_path / "alice" / "promo", tmp_path / "bob" / "promo"]
    results = render_both(plan, checkouts, fake)
    assert all(result.ok for result in results), results
    assert sum(fake.creates.values()) == 6 and set(fake.creates.values()) == {1}
    assert sum(len(r.done) for r in results) == 12  # each checkout has every clip
    for checkout in checkouts:
        for request in plan.requests:
            assert probe(engine.clip_path(checkout, "kling", request.key)).frames == 3 * 24
    with Journal.open(checkouts[0]) as journal:
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units)
        (spending,) = journal.spending()
        assert spending.project == "promo" and spending.charged == pytest.approx(fake.charged_units)


def test_two_renders_never_pass_the_account_cap_together(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv(JOURNAL_URL_VARIABLE, postgres_url)
    plan = make_plan([t2v(i) for i in range(6)])
    cap = plan.requests[0].units * 4
    with Journal.open(tmp_path / "a") as journal:
        journal.set_daily_budget(cap)
    fake = FakeKling(polls_to_finish=2)
    results = render_both(plan, [tmp_path / "a" / "promo", tmp_path / "b" / "promo"], fake)
    assert sum(fake.creates.values()) == 4 and fake.charged_units <= cap + 1e-9
    skipped = [reason for result in results for _, reason in result.skipped]
    assert skipped and all("daily cap" in reason for reason in skipped)


# ---- the CLI: migrate, budget, status --account -------------------------------------------------


def test_journal_migrate_copies_every_row_once_and_the_copy_renders_nothing_again(tmp_path, postgres_url, monkeypatch):
    monkeypatch.delenv(JOURNAL_URL_VARIABLE, raising=False)
    project = tmp_path / "promo"
    plan = make_plan([t2v(i) for i in range(3)])
    fake = FakeKling(polls_to_finish=1)
    from tests.test_engine import render

    assert render(plan, project, fake).ok
    assert render(make_plan([t2v(9)]), project, fake, max_cost_units=0.1).skipped  # a run with nothing paid
    with Journal.open(project) as local:
        before = {table: local.count(table) for table in ("requests", "runs")}
        local_records = {r.key: r for r in local.records()}
    first = CliRunner().invoke(app, ["journal", "migrate", str(project), "--to", postgres_url])
    assert first.exit_code == 0, first.output
    assert f"requests: {before['requests']} read, {before['requests']} added" in first.output
    assert f"runs: {before['runs']} read, {before['runs']} added" in first.output
    again = CliRunner().invoke(app, ["journal", "migrate", str(project), "--to", postgres_url])
    assert again.exit_code == 0 and f"requests: {before['requests']} read, 0 added" in again.output
    assert "runs: 2 read, 0 added" in again.output and "charges: 3 read, 0 added" in again.output
    with Journal.at_url(postgres_url) as shared:
        copied = {r.key: r for r in shared.records()}
        assert {k: (r.state, r.task_id, r.units, r.video_url) for k, r in copied.items()} == \
               {k: (r.state, r.task_id, r.units, r.video_url) for k, r in local_records.items()}
        assert shared.count("runs") == before["runs"]
        assert shared.units_charged("kling") == pytest.approx(fake.charged_units)
    # a teammate's fresh checkout on the shared journal downloads every clip, creating nothing
    monkeypatch.setenv(JOURNAL_URL_VARIABLE, postgres_url)
    creates = sum(fake.creates.values())
    teammate = render(plan, tmp_path / "teammate" / "promo", fake)
    assert teammate.ok and len(teammate.done) == 3 and sum(fake.creates.values()) == creates


def test_journal_migrate_refuses_what_is_not_a_postgresql_url_or_a_journal(tmp_path):
    wrong = CliRunner().invoke(app, ["journal", "migrate", str(tmp_path), "--to", "mysql://x@y/z"])
    assert wrong.exit_code == 1 and "not a PostgreSQL URL" in wrong.output
    empty = CliRunner().invoke(app, ["journal", "migrate", str(tmp_path), "--to", "postgresql://x@127.0.0.1:1/z"])
    assert empty.exit_code == 1 and "no local journal" in empty.output and "Traceback" not in empty.output


def test_budget_and_status_account_show_the_account_by_project_and_person(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv(JOURNAL_URL_VARIABLE, postgres_url)
    project = tmp_path / "promo"
    project.mkdir()
    (project / "storyboard.yaml").write_text("version: 1\nname: Promo\nshots: []\n", encoding="utf-8")
    set_cap = CliRunner().invoke(app, ["journal", "budget", str(project), "--daily", "200u"])
    assert set_cap.exit_code == 0 and "daily cap 200 units ($28.00)" in set_cap.output, set_cap.output
    for user, who_project, units in (("alice", "promo", 3.0), ("bob", "promo", 1.5), ("bob", "teaser", 6.0)):
        monkeypatch.setenv("STORYBOARD_USER", user)
        with Journal.at_url(postgres_url, project=who_project) as journal:
            key = f"{user}{who_project}".ljust(64, "0")
            journal.claim("kling", key, "r01", "sb-" + key[:40], units, None)
            journal.mark_submitted("kling", key, "1")
            journal.mark_succeeded("kling", key, "https://cdn/x.mp4", units)
    status = CliRunner().invoke(app, ["status", str(project), "--account"], terminal_width=200)
    assert status.exit_code == 0, status.output
    rows = [line for line in status.output.splitlines() if "teaser" in line or "promo" in line]
    assert any("teaser" in r and "bob" in r and "6" in r for r in rows)
    assert any("promo" in r and "alice" in r and "3" in r for r in rows)
    assert "10.5" in status.output and "daily cap 200 units" in status.output and "189.5 left" in status.output
    bad = CliRunner().invoke(app, ["journal", "budget", str(project), "--daily", "lots"])
    assert bad.exit_code == 1 and "--daily 'lots' is not a cost" in bad.output


def test_a_wrong_journal_url_is_a_clear_error_without_the_password(tmp_path, monkeypatch):
    monkeypatch.setenv(JOURNAL_URL_VARIABLE, "postgresql://team:s3cret@127.0.0.1:1/journal")
    project = tmp_path / "promo"
    project.mkdir()
    (project / "storyboard.yaml").write_text("version: 1\nname: Promo\nshots: []\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["journal", "budget", str(project)])
    assert result.exit_code == 1 and "cannot open the shared journal at postgresql://team:***@127.0.0.1:1/journal" in result.output
    assert "s3cret" not in result.output


def test_the_journal_setting_is_read_from_the_project_env_file(tmp_path, postgres_url, monkeypatch):
    monkeypatch.delenv(JOURNAL_URL_VARIABLE, raising=False)
    (tmp_path / ".env").write_text(f"{JOURNAL_URL_VARIABLE}={postgres_url}\n", encoding="utf-8")
    with Journal.open(tmp_path) as journal:
        assert journal.shared
    assert not (tmp_path / ".storyboard").exists()
