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
    Journal,
)
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve
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
        ALTER TABLE requests ADD COLUMN later_note TEXT;
        CREATE TABLE later_things (provider TEXT NOT NULL, digest TEXT NOT NULL, thing_id INTEGER NOT NULL,
                                   created_at REAL NOT NULL, PRIMARY KEY (provider, digest))
    """]
    monkeypatch.setattr(journal_module, "MIGRATIONS", appended)
    with Journal.at_url(postgres_url) as journal, Journal.at_url(postgres_url) as again:
        assert journal.schema_version == again.schema_version == len(appended)
        journal._sql("INSERT INTO later_things VALUES ('kling', 'v', 829836802793406552, ?)", (time.time(),))
        assert journal.get("kling", KEY).state == "claimed"  # a column the record does not know is left out
        assert journal.element_id("kling", "e" * 64) == 829836802793406551
        assert "later_note" in journal.columns("requests")


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


def test_a_quiet_claim_without_a_task_id_is_looked_up_by_its_external_id_before_anything_is_sent(
        tmp_path, postgres_url, monkeypatch):
    """A machine died between its create and journaling the task id: the task is on the account."""
    from storyboard.render.providers.base import Job

    monkeypatch.setenv(JOURNAL_URL_VARIABLE, postgres_url)
    monkeypatch.setenv(CLAIM_TIMEOUT_VARIABLE, "0.5")
    plan = make_plan([t2v(0)])
    request = plan.requests[0]
    fake = FakeKling(polls_to_finish=1)
    with Journal.open(tmp_path / "crashed" / "promo") as crashed:
        crashed.claim("kling", request.key, request.id, request.external_task_id, request.units, None)

    async def create_then_die():
        provider = provider_for(fake)
        try:
            await provider.create(Job(request=request, project_dir=tmp_path, images={}, elements={}))
        finally:
            await provider.aclose()

    asyncio.run(create_then_die())
    time.sleep(0.7)
    events = []
    (result,) = render_both(plan, [tmp_path / "survivor" / "promo"], fake, events=events.append)
    assert result.ok and sum(fake.creates.values()) == 1
    assert any("taken over from" in e.message and "looked up by its external id" in e.message for e in events)
    with Journal.open(tmp_path) as journal:
        record = journal.get("kling", request.key)
        assert record.state == "downloaded" and record.owner != crashed.owner


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


# ---- two checkouts, two processes, one fake Kling over loopback, one journal ----------------------

TEAM_STORYBOARD = "version: 1\nname: Team promo\ndefaults:\n  model: kling-v2-6\n  mode: std\n  aspect_ratio: \"16:9\"\nshots:\n" + "".join(
    f"  - id: s{i}\n    duration: 5\n    subject: {subject}\n    action: {action}\n"
    for i, (subject, action) in enumerate([("a lighthouse", "waves crash"), ("a gull", "flies over the sea"),
                                           ("a boat", "sails past"), ("a crab", "walks on the sand"),
                                           ("a kite", "dances in the wind"), ("a dog", "runs along the beach")]))
REQUESTS = 6
UNITS = 1.5 * REQUESTS  # kling-v2-6 std, 5 s: 1.5 units each


def checkout(root: Path, who: str) -> Path:
    """A teammate's copy of the project: same storyboard, own folder, no journal of its own."""
    folder = root / who / "promo"
    folder.mkdir(parents=True)
    (folder / "storyboard.yaml").write_text(TEAM_STORYBOARD, encoding="utf-8")
    return folder


def start_render(folder: Path, fake: FakeKling, base_url: str, url: str, who: str) -> subprocess.Popen:
    storyboard = str(Path(sys.executable).with_name("storyboard"))
    env = child_env(KLINGAI_ACCESS_KEY=fake.access_key, KLINGAI_SECRET_KEY=fake.secret_key, KLINGAI_BASE_URL=base_url,
                    **{JOURNAL_URL_VARIABLE: url, CLAIM_TIMEOUT_VARIABLE: "3", "STORYBOARD_USER": who})
    return subprocess.Popen([storyboard, "render", str(folder), "--yes"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def rows(url: str):
    with Journal.at_url(url) as journal:
        return journal.records("kling")


def wait_for(condition, what: str, timeout: float = 90.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return time.monotonic()


def clips_of(folder: Path) -> list[Path]:
    return sorted((folder / ".storyboard" / "clips" / "kling").glob("*.mp4"))


def test_two_checkouts_render_at_once_each_request_created_once_every_clip_in_both(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv(JOURNAL_URL_VARIABLE, postgres_url)
    alice, bob = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    cap = CliRunner().invoke(app, ["journal", "budget", str(alice), "--daily", f"{UNITS:g}u"])
    assert cap.exit_code == 0, cap.output  # exactly the plan: one duplicate create would not fit
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        renders = [start_render(folder, fake, base_url, postgres_url, who) for folder, who in ((alice, "alice"), (bob, "bob"))]
        outputs = [process.communicate(timeout=300)[0] for process in renders]
    assert [process.returncode for process in renders] == [0, 0], outputs
    records = rows(postgres_url)
    claimed_by = {who: sum(1 for r in records if r.user_name == who) for who in ("alice", "bob")}
    duplicates = sum(count - 1 for count in fake.creates.values())
    print(f"\ntwo checkouts: {REQUESTS} requests, {sum(fake.creates.values())} creates, {duplicates} duplicates, "
          f"claimed by alice {claimed_by['alice']} / bob {claimed_by['bob']}, charged {fake.charged_units:g} of a "
          f"{UNITS:g}-unit cap")
    assert len(records) == REQUESTS and all(r.state == "downloaded" for r in records)
    assert sum(fake.creates.values()) == REQUESTS and duplicates == 0
    assert fake.charged_units <= UNITS + 1e-9
    for folder in (alice, bob):
        clips = clips_of(folder)
        assert len(clips) == REQUESTS and all(probe(clip).frames == 5 * 24 for clip in clips)
    for output in outputs:
        assert fake.secret_key not in output and fake.access_key not in output


def test_a_render_killed_mid_run_is_taken_over_by_the_other_checkout(tmp_path, postgres_url):
    alice, bob = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    fake = FakeKling(polls_to_finish=10_000)  # tasks keep running until the test lets them finish
    with serve(fake) as base_url:
        first = start_render(alice, fake, base_url, postgres_url, "alice")
        wait_for(lambda: sum(r.state == "submitted" and r.user_name == "alice" for r in rows(postgres_url)) >= 2,
                 "alice's render to submit two tasks")
        second = start_render(bob, fake, base_url, postgres_url, "bob")
        wait_for(lambda: sum(r.state == "submitted" and r.user_name == "bob" for r in rows(postgres_url)) >= 2,
                 "bob's render to submit two tasks of its own")
        held_by_alice = {r.key for r in rows(postgres_url) if r.owner and r.owner.startswith("alice@")}
        assert held_by_alice and first.poll() is None
        first.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=30)
        fake.polls_to_finish = 1
        for task in list(fake.tasks.values()):
            task.polls_to_finish = 1
        taken_at = wait_for(lambda: all((r.owner and r.owner.startswith("bob@")) or r.state == "downloaded"
                                        for r in rows(postgres_url) if r.key in held_by_alice),
                            "bob's render to take alice's claims over")
        output = second.communicate(timeout=300)[0]
        assert second.returncode == 0, output
        creates_after_bob = sum(fake.creates.values())
        rerun = start_render(alice, fake, base_url, postgres_url, "alice")  # alice's checkout gets its clips too
        rerun_output = rerun.communicate(timeout=300)[0]
    takeover = taken_at - killed_at
    print(f"\nSIGKILL take-over: {REQUESTS} requests, {creates_after_bob} creates, "
          f"{sum(c - 1 for c in fake.creates.values())} duplicates, {len(held_by_alice)} claims taken over "
          f"{takeover:.1f} s after the kill (claim timeout 3 s)")
    assert rerun.returncode == 0, rerun_output
    assert creates_after_bob == REQUESTS == sum(fake.creates.values()) and set(fake.creates.values()) == {1}
    assert output.count("taken over from alice@") == len(held_by_alice) and "followed, not paid again" in output
    assert takeover < 30
    assert all(r.state == "downloaded" for r in rows(postgres_url))
    for folder in (alice, bob):
        assert len(clips_of(folder)) == REQUESTS
