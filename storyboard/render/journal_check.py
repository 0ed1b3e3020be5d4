"""Is the journal file a journal? The integrity check made each time the journal is opened.

Why on every open: a truncated or overwritten ``journal.sqlite`` used to surface as
``DatabaseError: database disk image is malformed`` (or ``file is not a database``) with a
traceback from whichever command touched it first, and a file zeroed to 0 bytes read as a new,
empty journal, so the record of what was paid vanished without a word. Three checks, cheap for a
journal's size (kilobytes):

- the header: a non-empty file must start with SQLite's 16-byte magic and hold at least its
  100-byte header;
- an empty (0-byte) file is new only when the project never rendered anything; with clips in the
  cache or outputs recorded it is a lost record and is treated as damaged;
- ``PRAGMA quick_check`` on the opened database (pages, cells, records), then one read of every
  row (bytes overwritten inside a record can pass the check and fail to decode as text).

A damaged journal is moved aside, never deleted (``journal.sqlite.damaged-<UTC timestamp>``, with
its ``-wal``/``-shm`` companions), and ``JournalDamaged`` names where it went and the fix:
``storyboard journal repair`` rebuilds the record from the clip cache and the account, paying for
nothing. Until then a render starts a new journal and still adopts every paid task it finds.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from storyboard.errors import JournalDamaged
from storyboard.workspace import Workspace

SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER_BYTES = 100
COMPANIONS = ("-wal", "-shm")
"""SQLite's side files of a WAL database: moved with the main file so nothing of it is lost."""


def check_file(path: Path) -> None:
    """Before connecting: raise ``JournalDamaged`` (after moving the file aside) when it is not a journal."""
    try:
        with path.open("rb") as handle:
            header = handle.read(SQLITE_HEADER_BYTES)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise JournalDamaged(f"the journal {path} is a folder, not a file",
                             hint="move that folder away, then run `storyboard journal repair` on the project") from None
    if not header:
        if _project_rendered(path):
            damaged(path, "is empty (0 bytes) although clips or cuts of this project exist: the record of what "
                          "was rendered and paid was lost")
        return
    if len(header) < SQLITE_HEADER_BYTES or not header.startswith(SQLITE_MAGIC):
        damaged(path, "is not an SQLite database (its header is missing or overwritten)")


def check_database(db: sqlite3.Connection, path: Path) -> None:
    """After connecting: ``PRAGMA quick_check`` must answer ``ok``; otherwise the file is moved aside."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
        findings = [str(row[0]) for row in rows]
        if findings == ["ok"]:
            _read_every_row(db)
    except (sqlite3.DatabaseError, UnicodeDecodeError, ValueError) as error:
        db.close()
        damaged(path, f"cannot be read ({type(error).__name__}: {error})")
    if findings != ["ok"]:
        db.close()
        damaged(path, f"fails SQLite's integrity check ({findings[0]}{' …' if len(findings) > 1 else ''})")


def _read_every_row(db: sqlite3.Connection) -> None:
    """Read every row once: bytes overwritten inside a record pass ``quick_check`` but may no longer
    decode as text (a ``UnicodeDecodeError`` at the first read that reaches them). A journal is a few
    hundred rows, so this costs milliseconds."""
    tables = [str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        quoted = table.replace('"', '""')
        for _row in db.execute(f'SELECT * FROM "{quoted}"'):
            pass


def damaged(path: Path, what: str) -> None:
    """Move the journal aside and raise ``JournalDamaged`` naming the file, where it went, and the fix."""
    project = _project_of(path)
    repair = f"storyboard journal repair {project}" if project else "storyboard journal repair <project folder>"
    try:
        moved = move_aside(path)
    except OSError as error:
        raise JournalDamaged(
            f"the journal {path} {what}; it could not be moved aside ({error.strerror or error})",
            hint=f"move it away yourself (keep it: it is the record of what was paid), then run `{repair}`: "
                 "it rebuilds the journal from the clips and the tasks on the account and pays for nothing",
        ) from None
    raise JournalDamaged(
        f"the journal {path} {what}; it was moved aside to {moved.name} (kept, not deleted)",
        hint=f"run `{repair}`: it rebuilds the journal from the clips in the cache and the tasks on the account, "
             "and pays for nothing",
        moved_to=str(moved),
    )


def move_aside(path: Path) -> Path:
    """Rename the journal (and its WAL companions) to ``<name>.damaged-<UTC timestamp>[-n]``; return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    os.replace(path, target)
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + suffix))
    return target


def _project_of(path: Path) -> Path | None:
    """The project folder whose workspace journal ``path`` is (None for a journal elsewhere)."""
    root = path.parent.parent
    return root if Workspace.at(root).journal_file == path else None


def _project_rendered(path: Path) -> bool:
    project = _project_of(path)
    return project is not None and Workspace.at(project).has_rendered_anything()
