"""The journal: a SQLite record of every paid request, so nothing is ever paid twice.

Why SQLite (stdlib, WAL): the journal must survive a crash at any instant and be shared safely by
two processes rendering the same project. Each request's row is *claimed* (a UNIQUE primary key on
(provider, request key)) before the paid create is sent, so a second claim, even from another
process, fails. The row then walks through

    claimed → submitted(task_id) → succeeded(video_url, units) → downloaded(clip)
                      ↘ failed(message, money_spent)      ↘ unknown (ambiguous create)

and a rerun knows for each request whether to reuse the clip, poll the task, look it up by its
``external_task_id`` (claimed/unknown: the create may or may not have arrived) or create it anew
with the next attempt's id (Kling wants ``external_task_id`` unique per account).

A row may also start at ``submitted`` with ``adopted`` set: the task was found on the account
under the request's external id (a render whose journal was deleted or left behind in another
copy of the project paid for it), so it is followed and downloaded, never paid again. The
duration Kling reports for the result is kept with the row, to check the clip against it on
every later run.

The schema is versioned with ``PRAGMA user_version`` and an ordered list of migration steps: a
journal written by an older storyboard is upgraded in place, never discarded (it is the only
record of what was paid).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from storyboard.workspace import Workspace

RequestState = Literal["claimed", "submitted", "succeeded", "downloaded", "failed", "unknown"]

MIGRATIONS: list[str] = [
    # 1: requests, elements, runs
    """
    CREATE TABLE requests (
        provider TEXT NOT NULL,
        key TEXT NOT NULL,
        request_id TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        external_task_id TEXT NOT NULL,
        task_id TEXT,
        video_url TEXT,
        planned_units REAL NOT NULL DEFAULT 0,
        units REAL,
        prior_units REAL NOT NULL DEFAULT 0,
        clip_path TEXT,
        error TEXT,
        money_spent INTEGER,
        run_id INTEGER,
        claimed_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (provider, key)
    );
    CREATE TABLE elements (
        provider TEXT NOT NULL,
        digest TEXT NOT NULL,
        element_id INTEGER NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (provider, digest)
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        provider TEXT NOT NULL,
        storyboard TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        units_spent REAL NOT NULL DEFAULT 0,
        outcome TEXT
    );
    """,
    # 2: adopted tasks (found on the account, paid by an earlier render) and the duration Kling
    # reports for a result (a clip is checked against it)
    """
    ALTER TABLE requests ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN reported_duration REAL;
    """,
    # 3: custom voices registered on the account (kling-api.md §7.4), once per provider + digest of
    # the voice's source and name, like elements; Kling's voice ids are strings
    """
    CREATE TABLE voices (
        provider TEXT NOT NULL,
        digest TEXT NOT NULL,
        voice_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (provider, digest)
    );
    """,
]


class AlreadyClaimed(Exception):
    """Another render (this or another process) holds the request's row."""


@dataclass(frozen=True)
class RequestRecord:
    provider: str
    key: str
    request_id: str
    state: RequestState
    attempt: int
    external_task_id: str
    task_id: str | None
    video_url: str | None
    planned_units: float
    units: float | None
    prior_units: float
    """Units charged for earlier, failed attempts of this request."""
    clip_path: str | None
    error: str | None
    money_spent: bool | None
    run_id: int | None
    claimed_at: float
    updated_at: float
    adopted: bool = False
    """The task was found on the account (an earlier render paid for it), not created by this journal."""
    reported_duration: float | None = None
    """Seconds of the result video as Kling reported them."""


@dataclass(frozen=True)
class RunRecord:
    id: int
    provider: str
    storyboard: str
    pid: int
    started_at: float
    finished_at: float | None
    units_spent: float
    outcome: str | None


def journal_path(project_dir: Path) -> Path:
    return Workspace.at(project_dir).journal_file


def task_facts(project_dir: Path, provider: str) -> tuple[dict[str, str], dict[str, float]]:
    """Kling task ids and units charged, by request key, for the cut's metadata (OTIO).

    Empty when nothing was rendered yet. Charged units include earlier failed attempts of the
    same request; only requests with a reported charge are included, so a timeline can tell a
    charged figure from a planned one.
    """
    if not journal_path(project_dir).is_file():
        return {}, {}
    with Journal.open(project_dir) as journal:
        records = journal.records(provider)
    task_ids = {r.key: r.task_id for r in records if r.task_id}
    charged = {r.key: (r.units or 0.0) + r.prior_units for r in records if r.units is not None or r.prior_units}
    return task_ids, charged


def external_task_id_for(base: str, attempt: int) -> str:
    """``sb-<key40>`` for the first attempt, ``sb-<key40>-2``, ``-3``… after failures."""
    return base if attempt <= 1 else f"{base}-{attempt}"


class Journal:
    """One project's journal. Cheap calls, each its own transaction (autocommit + explicit BEGIN)."""

    def __init__(self, path: Path, clock=time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    @classmethod
    def open(cls, project_dir: Path) -> Journal:
        return cls(journal_path(project_dir))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, step.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # ---- requests -------------------------------------------------------------------------

    def get(self, provider: str, key: str) -> RequestRecord | None:
        row = self._db.execute("SELECT * FROM requests WHERE provider=? AND key=?", (provider, key)).fetchone()
        return _record(row) if row else None

    def records(self, provider: str | None = None) -> list[RequestRecord]:
        if provider:
            rows = self._db.execute("SELECT * FROM requests WHERE provider=? ORDER BY claimed_at", (provider,))
        else:
            rows = self._db.execute("SELECT * FROM requests ORDER BY claimed_at")
        return [_record(r) for r in rows]

    def claim(self, provider: str, key: str, request_id: str, base_external_id: str, planned_units: float,
              run_id: int | None) -> RequestRecord:
        """Claim the request before its paid create; a failed row is re-claimed with the next attempt.

        Atomic across processes: the INSERT hits the UNIQUE key, and the re-claim UPDATE only
        matches a row still in ``failed`` (or a reused-clip note whose clip has vanished) at the
        attempt the claimant saw, so exactly one claimant wins.
        """
        now = self._clock()
        try:
            self._db.execute(
                "INSERT INTO requests (provider, key, request_id, state, attempt, external_task_id, planned_units,"
                " run_id, claimed_at, updated_at) VALUES (?, ?, ?, 'claimed', 1, ?, ?, ?, ?, ?)",
                (provider, key, request_id, external_task_id_for(base_external_id, 1), planned_units, run_id, now, now),
            )
        except sqlite3.IntegrityError:
            existing = self.get(provider, key)
            attempt = (existing.attempt if existing else 1) + 1
            cursor = self._db.execute(
                "UPDATE requests SET state='claimed', attempt=?, external_task_id=?, task_id=NULL, video_url=NULL,"
                " prior_units=prior_units+COALESCE(units, 0), units=NULL, clip_path=NULL, error=NULL, money_spent=NULL,"
                " adopted=0, reported_duration=NULL, run_id=?, planned_units=?, request_id=?,"
                " claimed_at=?, updated_at=? WHERE provider=? AND key=? AND attempt=?"
                " AND (state='failed' OR (state='downloaded' AND task_id IS NULL))",
                (attempt, external_task_id_for(base_external_id, attempt), run_id, planned_units, request_id, now, now,
                 provider, key, attempt - 1),
            )
            if cursor.rowcount != 1:
                raise AlreadyClaimed(f"{provider}/{key} is already claimed") from None
        record = self.get(provider, key)
        assert record is not None
        return record

    def _update(self, provider: str, key: str, expected: tuple[str, ...], **fields: object) -> None:
        fields["updated_at"] = self._clock()
        assignments = ", ".join(f"{name}=?" for name in fields)
        marks = ", ".join("?" for _ in expected)
        cursor = self._db.execute(
            f"UPDATE requests SET {assignments} WHERE provider=? AND key=? AND state IN ({marks})",
            (*fields.values(), provider, key, *expected),
        )
        if cursor.rowcount != 1:
            current = self.get(provider, key)
            raise AlreadyClaimed(f"{provider}/{key}: expected state {expected}, found {current.state if current else None}")

    def mark_submitted(self, provider: str, key: str, task_id: str, *, adopted: bool = False) -> None:
        """The task exists; ``adopted`` when it was found on the account rather than created by this row."""
        self._update(provider, key, ("claimed", "unknown", "submitted"), state="submitted", task_id=task_id,
                     money_spent=1, error=None, adopted=int(adopted))

    def adopt(self, provider: str, key: str, request_id: str, external_task_id: str, attempt: int, task_id: str,
              planned_units: float, run_id: int | None) -> RequestRecord:
        """A row for a task found on the account under ``external_task_id`` while the journal had none.

        It starts at ``submitted`` (the task is followed like our own) with ``adopted`` set, at the
        attempt whose id it carries, so a later retry moves on to the next id. It may replace only a
        failed row (an earlier attempt found failed; its charge moves to ``prior_units``) or the note
        of a reused clip that has vanished (no task id); raises ``AlreadyClaimed`` when another row
        is there.
        """
        now = self._clock()
        cursor = self._db.execute(
            "INSERT INTO requests (provider, key, request_id, state, attempt, external_task_id, task_id,"
            " planned_units, units, clip_path, error, money_spent, adopted, run_id, claimed_at, updated_at)"
            " VALUES (?, ?, ?, 'submitted', ?, ?, ?, ?, NULL, NULL, NULL, 1, 1, ?, ?, ?)"
            " ON CONFLICT (provider, key) DO UPDATE SET request_id=excluded.request_id, state='submitted',"
            " attempt=excluded.attempt, external_task_id=excluded.external_task_id, task_id=excluded.task_id,"
            " planned_units=excluded.planned_units, prior_units=requests.prior_units+COALESCE(requests.units, 0),"
            " units=NULL, clip_path=NULL, error=NULL, money_spent=1, adopted=1, reported_duration=NULL,"
            " run_id=excluded.run_id, claimed_at=excluded.claimed_at, updated_at=excluded.updated_at"
            " WHERE requests.state='failed' OR (requests.state='downloaded' AND requests.task_id IS NULL)",
            (provider, key, request_id, attempt, external_task_id, task_id, planned_units, run_id, now, now),
        )
        if cursor.rowcount != 1:
            raise AlreadyClaimed(f"{provider}/{key} is already in the journal")
        record = self.get(provider, key)
        assert record is not None
        return record

    def mark_unknown(self, provider: str, key: str, message: str) -> None:
        self._update(provider, key, ("claimed", "unknown"), state="unknown", error=message, money_spent=None)

    def mark_succeeded(self, provider: str, key: str, video_url: str | None, units: float | None,
                       duration: float | None = None) -> None:
        """The task succeeded: its URL, the units charged and the video's duration as reported."""
        self._update(provider, key, ("submitted", "succeeded"), state="succeeded", video_url=video_url, units=units,
                     money_spent=1, reported_duration=duration)

    def mark_downloaded(self, provider: str, key: str, clip_path: str) -> None:
        self._update(provider, key, ("succeeded", "downloaded"), state="downloaded", clip_path=clip_path, error=None)

    def mark_failed(self, provider: str, key: str, message: str, money_spent: bool | None, units: float | None = None) -> None:
        spent = None if money_spent is None else int(money_spent)
        self._update(provider, key, ("claimed", "unknown", "submitted", "succeeded"), state="failed", error=message,
                     money_spent=spent, units=units)

    def record_reused_clip(self, provider: str, key: str, request_id: str, base_external_id: str, clip_path: str) -> None:
        """A verified clip exists but no row (journal deleted): note it so ``status`` shows it. Costs 0."""
        now = self._clock()
        self._db.execute(
            "INSERT OR IGNORE INTO requests (provider, key, request_id, state, attempt, external_task_id, units,"
            " clip_path, claimed_at, updated_at) VALUES (?, ?, ?, 'downloaded', 1, ?, 0, ?, ?, ?)",
            (provider, key, request_id, base_external_id, clip_path, now, now),
        )

    def units_charged(self, provider: str | None = None) -> float:
        """Units Kling reported charged for tasks in this journal (all runs)."""
        query = "SELECT COALESCE(SUM(COALESCE(units, 0) + prior_units), 0) FROM requests WHERE 1"
        args: tuple = ()
        if provider:
            query += " AND provider=?"
            args = (provider,)
        return float(self._db.execute(query, args).fetchone()[0])

    # ---- elements -------------------------------------------------------------------------

    def element_id(self, provider: str, digest: str) -> int | None:
        row = self._db.execute("SELECT element_id FROM elements WHERE provider=? AND digest=?", (provider, digest)).fetchone()
        return int(row[0]) if row else None

    def record_element(self, provider: str, digest: str, element_id: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO elements (provider, digest, element_id, created_at) VALUES (?, ?, ?, ?)",
                         (provider, digest, int(element_id), self._clock()))

    def voice_id(self, provider: str, digest: str) -> str | None:
        row = self._db.execute("SELECT voice_id FROM voices WHERE provider=? AND digest=?", (provider, digest)).fetchone()
        return str(row[0]) if row else None

    def record_voice(self, provider: str, digest: str, voice_id: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO voices (provider, digest, voice_id, created_at) VALUES (?, ?, ?, ?)",
                         (provider, digest, str(voice_id), self._clock()))

    # ---- runs -----------------------------------------------------------------------------

    def start_run(self, provider: str, storyboard: str) -> int:
        cursor = self._db.execute("INSERT INTO runs (provider, storyboard, pid, started_at) VALUES (?, ?, ?, ?)",
                                  (provider, storyboard, os.getpid(), self._clock()))
        assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
        return cursor.lastrowid

    def add_run_units(self, run_id: int, units: float) -> None:
        self._db.execute("UPDATE runs SET units_spent = units_spent + ? WHERE id=?", (units, run_id))

    def finish_run(self, run_id: int, outcome: str) -> None:
        self._db.execute("UPDATE runs SET finished_at=?, outcome=? WHERE id=?", (self._clock(), outcome, run_id))

    def runs(self) -> list[RunRecord]:
        return [RunRecord(**dict(row)) for row in self._db.execute("SELECT * FROM runs ORDER BY id")]


def _record(row: sqlite3.Row) -> RequestRecord:
    data = dict(row)
    data["money_spent"] = None if data["money_spent"] is None else bool(data["money_spent"])
    data["adopted"] = bool(data.get("adopted"))
    return RequestRecord(**data)
