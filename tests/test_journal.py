"""The journal: versioned schema, one claim per request (also across connections/processes),
attempt ids for retries, state transitions that refuse to go backwards, units and elements."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from storyboard.render.journal import MIGRATIONS, AlreadyClaimed, Journal, external_task_id_for, journal_path

KEY = "ab" * 32
BASE = "sb-" + KEY[:40]


def test_schema_is_versioned_and_wal(tmp_path):
    with Journal.open(tmp_path) as journal:
        assert journal.schema_version == len(MIGRATIONS)
    path = journal_path(tmp_path)
    assert path == tmp_path / ".storyboard" / "journal.sqlite"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with Journal.open(tmp_path) as journal:  # reopening migrates nothing and loses nothing
        journal.claim("kling", KEY, "r01", BASE, 3.0, None)
    with Journal.open(tmp_path) as journal:
        assert journal.get("kling", KEY).state == "claimed"


def test_a_second_claim_fails_even_from_another_connection(tmp_path):
    first, second = Journal.open(tmp_path), Journal.open(tmp_path)
    record = first.claim("kling", KEY, "r01", BASE, 3.0, None)
    assert (record.state, record.attempt, record.external_task_id) == ("claimed", 1, BASE)
    with pytest.raises(AlreadyClaimed):
        second.claim("kling", KEY, "r01", BASE, 3.0, None)
    assert second.claim("preview", KEY, "r01", BASE, 0.0, None).provider == "preview"  # provider is part of the key
    first.close(), second.close()


def test_claim_from_another_process_is_refused(tmp_path):
    with Journal.open(tmp_path) as journal:
        journal.claim("kling", KEY, "r01", BASE, 3.0, None)
    code = (
        "import sys; from pathlib import Path; from storyboard.render.journal import Journal, AlreadyClaimed\n"
        f"j = Journal.open(Path({str(tmp_path)!r}))\n"
        "try:\n"
        f"    j.claim('kling', {KEY!r}, 'r01', {BASE!r}, 3.0, None)\n"
        "except AlreadyClaimed:\n"
        "    sys.exit(7)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 7


def test_lifecycle_and_retry_attempt_ids(tmp_path):
    with Journal.open(tmp_path) as journal:
        journal.claim("kling", KEY, "r01", BASE, 3.0, 1)
        journal.mark_submitted("kling", KEY, "867283741759111202")
        journal.mark_failed("kling", KEY, "Kling failed the task: moderation", money_spent=False)
        record = journal.claim("kling", KEY, "r01", BASE, 3.0, 2)
        assert (record.attempt, record.external_task_id, record.task_id) == (2, BASE + "-2", None)
        journal.mark_unknown("kling", KEY, "5000 then the lookup failed")
        journal.mark_submitted("kling", KEY, "867283741759111203")
        journal.mark_succeeded("kling", KEY, "https://cdn/x.mp4", 1.8)
        journal.mark_downloaded("kling", KEY, "/clips/x.mp4")
        with pytest.raises(AlreadyClaimed):  # a downloaded request is never claimed again
            journal.claim("kling", KEY, "r01", BASE, 3.0, 3)
        with pytest.raises(AlreadyClaimed):  # and states never go backwards
            journal.mark_submitted("kling", KEY, "1")
        record = journal.get("kling", KEY)
        assert (record.state, record.units, record.clip_path, record.money_spent) == ("downloaded", 1.8, "/clips/x.mp4", True)
    assert external_task_id_for(BASE, 1) == BASE and external_task_id_for(BASE, 3) == BASE + "-3"


def test_units_of_charged_failed_attempts_are_kept(tmp_path):
    with Journal.open(tmp_path) as journal:
        journal.claim("kling", KEY, "r01", BASE, 3.0, 1)
        journal.mark_submitted("kling", KEY, "1")
        journal.mark_failed("kling", KEY, "failed after charging", money_spent=True, units=0.5)
        journal.claim("kling", KEY, "r01", BASE, 3.0, 2)
        journal.mark_submitted("kling", KEY, "2")
        journal.mark_succeeded("kling", KEY, "u", 3.0)
        assert journal.units_charged("kling") == pytest.approx(3.5)
        assert journal.units_charged("preview") == 0


def test_only_one_of_two_racing_reclaims_wins(tmp_path):
    first, second = Journal.open(tmp_path), Journal.open(tmp_path)
    first.claim("kling", KEY, "r01", BASE, 3.0, None)
    first.mark_failed("kling", KEY, "x", money_spent=False)
    stale = second.get("kling", KEY)
    assert first.claim("kling", KEY, "r01", BASE, 3.0, None).attempt == 2
    assert stale.state == "failed"
    with pytest.raises(AlreadyClaimed):
        second.claim("kling", KEY, "r01", BASE, 3.0, None)
    first.close(), second.close()


def test_elements_and_runs(tmp_path):
    with Journal.open(tmp_path) as journal:
        assert journal.element_id("kling", "d" * 64) is None
        journal.record_element("kling", "d" * 64, 829836802793406551)
        assert journal.element_id("kling", "d" * 64) == 829836802793406551
        assert journal.element_id("preview", "d" * 64) is None
        run_id = journal.start_run("kling", "storyboard.yaml")
        journal.add_run_units(run_id, 1.8)
        journal.add_run_units(run_id, 2.4)
        journal.finish_run(run_id, "ok")
        (run,) = journal.runs()
        assert (run.provider, run.outcome, run.units_spent) == ("kling", "ok", pytest.approx(4.2))


def test_a_version_1_journal_is_upgraded_in_place_keeping_its_rows(tmp_path):
    path = journal_path(tmp_path)
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO requests (provider, key, request_id, state, attempt, external_task_id, task_id, units,"
               " claimed_at, updated_at) VALUES ('kling', ?, 'r01', 'succeeded', 1, ?, '8661', 1.8, 1, 1)", (KEY, BASE))
    db.commit()
    db.close()
    with Journal.open(tmp_path) as journal:
        assert journal.schema_version == len(MIGRATIONS) >= 2
        record = journal.get("kling", KEY)
        assert (record.state, record.task_id, record.units) == ("succeeded", "8661", 1.8)
        assert record.adopted is False and record.reported_duration is None
        journal.mark_succeeded("kling", KEY, "https://cdn/x.mp4", 1.8, duration=5.041)
        assert journal.get("kling", KEY).reported_duration == 5.041


def test_adopted_rows_start_submitted_and_replace_only_failed_rows_or_vanished_clip_notes(tmp_path):
    with Journal.open(tmp_path) as journal:
        record = journal.adopt("kling", KEY, "r01", BASE, 1, "8661", 1.8, None)
        assert (record.state, record.adopted, record.money_spent, record.task_id) == ("submitted", True, True, "8661")
        with pytest.raises(AlreadyClaimed):  # a live row is never replaced
            journal.adopt("kling", KEY, "r01", BASE, 1, "8661", 1.8, None)
        journal.mark_failed("kling", KEY, "an earlier render's task had failed", money_spent=True, units=0.3)
        second = journal.adopt("kling", KEY, "r01", BASE + "-2", 2, "8662", 1.8, None)
        assert (second.attempt, second.external_task_id, second.prior_units, second.adopted) == (2, BASE + "-2", 0.3, True)
        journal.mark_succeeded("kling", KEY, "u", 1.8)
        assert journal.units_charged("kling") == pytest.approx(2.1)
        other = "cd" * 32
        journal.record_reused_clip("kling", other, "r02", BASE, "/gone.mp4")
        assert journal.adopt("kling", other, "r02", BASE, 1, "8663", 1.8, None).state == "submitted"
        journal.mark_failed("kling", other, "x", money_spent=False)
        reclaimed = journal.claim("kling", other, "r02", BASE, 1.8, None)
        assert (reclaimed.adopted, reclaimed.attempt) == (False, 2), "a re-claim is our own create again"
