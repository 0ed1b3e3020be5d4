"""A damaged journal is moved aside with a clear message, and ``journal repair`` rebuilds it (issue 16).

Real parts: the CLI (typer runner), a real SQLite journal damaged on disk (truncated, zeroed or
overwritten at seeded random points), real MP4 clips probed with PyAV, and the strict fake Kling
account served over loopback HTTP. After a render of three shots one clip is deleted from the
cache (so its task lives only on the account), then the journal is damaged: every command names
the file, moves it aside (never deletes it) and names the fix; ``journal repair`` finds the two
clips in the cache and adopts the third task from the account; the next render creates nothing,
charges nothing, and all three clips are back.
"""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from storyboard.errors import JournalDamaged
from storyboard.media import probe
from storyboard.render.journal import Journal
from tests.conftest import use_kling
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve

_register_commands()

STORYBOARD = """\
version: 1
name: Three shots
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
  - id: two
    duration: 3
    subject: a gull
    action: flies over the sea
  - id: three
    duration: 3
    subject: a fishing boat
    action: comes into the harbour
"""


DAMAGES = [("zeroed", 0)] + [("truncated", seed) for seed in range(3)] + [("overwritten", seed) for seed in range(4)]
"""Each case: how the file is damaged, and the seed of the random point (and bytes) chosen."""


@pytest.fixture
def kling_account(no_keys):
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        use_kling(no_keys, fake, base_url)
        yield fake


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def clips(project: Path) -> list[Path]:
    found = sorted((project / ".storyboard" / "clips" / "kling").glob("*.mp4"))
    for clip in found:
        assert probe(clip).frames == 3 * 24
    return found


def damage(journal: Path, how: str, seed: int) -> None:
    """Truncate, zero or overwrite the journal at a seeded random point."""
    rng = random.Random(seed)
    size = journal.stat().st_size
    if how == "zeroed":
        journal.write_bytes(b"")
    elif how == "truncated":
        with journal.open("r+b") as handle:
            handle.truncate(rng.randrange(1, size))
    else:
        offset = rng.randrange(0, size - 64) if seed else 0  # seed 0: over the header itself
        with journal.open("r+b") as handle:
            handle.seek(offset)
            handle.write(rng.randbytes(rng.randrange(16, 4096)))


@pytest.mark.parametrize(("how", "seed"), DAMAGES, ids=[f"{how}-{seed}" for how, seed in DAMAGES])
def test_a_damaged_journal_is_moved_aside_and_repaired_with_nothing_paid(kling_account, make_project, how, seed):
    fake = kling_account
    project = make_project(STORYBOARD)
    result = invoke("render", str(project), "--yes")
    assert result.exit_code == 0, result.output
    assert sum(fake.creates.values()) == 3 and len(clips(project)) == 3
    charged = fake.charged_units
    journal = project / ".storyboard" / "journal.sqlite"
    clips(project)[0].unlink()  # this one now lives only on the account
    damage(journal, how, seed)

    status = invoke("status", str(project))
    detected = status.exit_code == 1
    if how in ("zeroed", "truncated") or (how == "overwritten" and seed == 0):
        assert detected, status.output
    if detected:
        assert isinstance(status.exception, SystemExit), status.exception  # a message, not a traceback
        assert "Traceback" not in status.output
        assert f"the journal {journal}" in status.output and "moved aside" in status.output
        assert f"storyboard journal repair {project}" in status.output
        aside = list(journal.parent.glob("journal.sqlite.damaged-*"))
        assert len(aside) == 1 and not journal.exists()

    repaired = invoke("journal", "repair", str(project))
    assert repaired.exit_code == 0, repaired.output
    assert "nothing was paid: 0 creates sent" in repaired.output
    if detected:
        assert "2 clip(s) found in the cache" in repaired.output, repaired.output
        assert "adopted: the next render downloads it without paying again" in repaired.output
        assert "3 request(s) recovered" in repaired.output
    assert sum(fake.creates.values()) == 3, "repair sent no create"

    again = invoke("render", str(project), "--yes")
    assert again.exit_code == 0, again.output
    assert sum(fake.creates.values()) == 3, dict(fake.creates)
    assert fake.charged_units == charged
    assert len(clips(project)) == 3
    assert invoke("status", str(project)).exit_code == 0


def test_an_empty_journal_in_a_project_that_never_rendered_is_simply_new(tmp_path):
    journal = tmp_path / ".storyboard" / "journal.sqlite"
    journal.parent.mkdir()
    journal.write_bytes(b"")
    with Journal(journal) as opened:
        assert opened.records() == [] and opened.schema_version >= 2


def test_an_empty_journal_beside_clips_is_damaged_not_new(tmp_path):
    state = tmp_path / ".storyboard"
    (state / "clips" / "kling").mkdir(parents=True)
    (state / "clips" / "kling" / "abc.mp4").write_bytes(b"clip")
    (state / "journal.sqlite").write_bytes(b"")
    with pytest.raises(JournalDamaged) as caught:
        Journal.open(tmp_path)
    assert "0 bytes" in caught.value.message and caught.value.moved_to
    assert Path(caught.value.moved_to).is_file() and not (state / "journal.sqlite").exists()


def test_a_journal_with_a_foreign_header_is_moved_aside_with_its_wal(tmp_path):
    state = tmp_path / ".storyboard"
    state.mkdir()
    with Journal.open(tmp_path) as journal:
        journal.start_run("kling", "storyboard.yaml")
    path = state / "journal.sqlite"
    path.write_bytes(b"PK\x03\x04" + os.urandom(400))  # a zip where the journal was
    (state / "journal.sqlite-wal").write_bytes(b"wal bytes")
    with pytest.raises(JournalDamaged) as caught:
        Journal.open(tmp_path)
    moved = Path(caught.value.moved_to or "")
    assert moved.read_bytes().startswith(b"PK") and Path(f"{moved}-wal").read_bytes() == b"wal bytes"
    assert "is not an SQLite database" in str(caught.value) and "journal repair" in str(caught.value)
    with Journal.open(tmp_path) as fresh:  # the next open starts anew (the damaged one is kept aside)
        assert fresh.runs() == []


def test_a_healthy_journal_passes_the_check_untouched(tmp_path):
    with Journal.open(tmp_path) as journal:
        journal.start_run("kling", "storyboard.yaml")
    with Journal.open(tmp_path) as journal:
        assert len(journal.runs()) == 1
    assert not list((tmp_path / ".storyboard").glob("*.damaged-*"))
    assert sqlite3.connect(tmp_path / ".storyboard" / "journal.sqlite").execute("PRAGMA quick_check").fetchone() == ("ok",)


def test_no_seeded_damage_gives_anything_but_a_moved_aside_journal_or_a_readable_one(tmp_path):
    """100 truncations and 100 overwrites at seeded random points: each open either raises
    ``JournalDamaged`` (file moved aside) or reads every row; never another exception. Bytes
    overwritten inside a record pass ``quick_check`` and used to fail later with a
    ``UnicodeDecodeError``; the full read at open catches them."""
    outcomes = {"damaged": 0, "readable": 0}
    for how in ("truncated", "overwritten"):
        for seed in range(1, 101):
            project = tmp_path / f"{how}-{seed}"
            (project / ".storyboard" / "clips" / "kling").mkdir(parents=True)
            (project / ".storyboard" / "clips" / "kling" / "k0.mp4").write_bytes(b"clip")
            with Journal.open(project) as journal:
                run = journal.start_run("kling", "storyboard.yaml")
                for i in range(3):
                    journal.claim("kling", f"k{i}", f"r{i}", f"sb-k{i}", 1.8, run)
                    journal.mark_submitted("kling", f"k{i}", f"task-{i}")
            damage(project / ".storyboard" / "journal.sqlite", how, seed)
            try:
                with Journal.open(project) as journal:
                    journal.records()
                    journal.runs()
                    journal.units_charged()
                outcomes["readable"] += 1
            except JournalDamaged as error:
                assert error.moved_to and Path(error.moved_to).is_file()
                outcomes["damaged"] += 1
    assert outcomes["damaged"] >= 100, outcomes  # every truncation at least
