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

Shared journals (a team, several machines, one Kling account): ``STORYBOARD_JOURNAL`` (environment,
else the project's ``.env``) set to a ``postgresql://`` URL puts the same schema, built by the same
``MIGRATIONS``, on PostgreSQL (``journal_postgres``). Every statement here is written once, in SQL
both accept (``?`` parameters, ``ON CONFLICT``, ``RETURNING``); a store translates only what it
must. On a shared journal the claim rule holds across machines through the database itself (the
unique key, conditional updates in transactions, ``FOR UPDATE [SKIP LOCKED]``), and each
in-flight row carries its ``owner`` and a ``heartbeat_at`` so a crashed machine's claims are taken
over (``take_over``) once they go quiet. A ledger (``charges``: one row per paid attempt, reserved
at the claim and settled with what Kling charged) carries the account's spending by day, project
and person, and an optional daily cap (``account_budget``) is checked in the claim's transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from storyboard.render import journal_check
from storyboard.workspace import Workspace

RequestState = Literal["claimed", "submitted", "succeeded", "downloaded", "failed", "unknown"]
IN_FLIGHT: tuple[RequestState, ...] = ("claimed", "unknown", "submitted", "succeeded")
"""States a render is still working on: a row in one of them has an owner and a heartbeat."""

JOURNAL_URL_VARIABLE = "STORYBOARD_JOURNAL"
"""Where the journal lives: unset (or ``sqlite``) = ``.storyboard/journal.sqlite``; ``postgresql://…`` = shared."""
CLAIM_TIMEOUT_VARIABLE = "STORYBOARD_CLAIM_TIMEOUT"
DEFAULT_CLAIM_TIMEOUT = 60.0
"""Seconds without a heartbeat after which another render takes a claim over (a crashed machine)."""
USER_VARIABLE = "STORYBOARD_USER"
PROJECT_VARIABLE = "STORYBOARD_PROJECT"

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
    # 3: shared journals: who holds an in-flight row and when it last said so, who and which project
    # claimed it; the account's ledger of paid attempts; the account's daily cap
    """
    ALTER TABLE requests ADD COLUMN owner TEXT;
    ALTER TABLE requests ADD COLUMN heartbeat_at REAL;
    ALTER TABLE requests ADD COLUMN project TEXT;
    ALTER TABLE requests ADD COLUMN user_name TEXT;
    ALTER TABLE runs ADD COLUMN project TEXT;
    ALTER TABLE runs ADD COLUMN user_name TEXT;
    ALTER TABLE runs ADD COLUMN host TEXT;
    CREATE INDEX requests_by_owner ON requests (owner);
    CREATE TABLE charges (
        provider TEXT NOT NULL,
        key TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        day TEXT NOT NULL,
        project TEXT,
        user_name TEXT,
        units REAL NOT NULL,
        settled INTEGER NOT NULL DEFAULT 0,
        at REAL NOT NULL,
        PRIMARY KEY (provider, key, attempt)
    );
    CREATE INDEX charges_by_day ON charges (day);
    CREATE TABLE account_budget (
        scope TEXT NOT NULL PRIMARY KEY,
        limit_units REAL NOT NULL,
        set_by TEXT,
        set_at REAL NOT NULL
    );
    """,
    # 4: takes (a request rendered again on purpose: each take is its own requests row under its
    # own key, see plan.takes) and the review's verdicts on them
    """
    CREATE TABLE takes (
        base_key TEXT NOT NULL,
        take INTEGER NOT NULL,
        key TEXT NOT NULL,
        request_id TEXT NOT NULL,
        reason TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (base_key, take)
    );
    CREATE TABLE verdicts (
        base_key TEXT NOT NULL,
        take INTEGER NOT NULL,
        shot TEXT NOT NULL,
        verdict TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL,
        PRIMARY KEY (base_key, take, shot)
    );
    """,
    # 5: custom voices registered on the account (kling-api.md §7.4), once per provider + digest of
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
    # 6: speech made by Kling's TTS (kling-api-2.md §4), once per provider + digest of text, voice,
    # language and speed (plan.speech): the audio id an avatar takes (valid 30 days from created_at),
    # its length and URL; made again (a new row value, ``syntheses`` + 1) once the id is too old.
    # Each TTS call is a ledger row in ``charges`` under the key 'speech:<digest>'.
    """
    CREATE TABLE speech (
        provider TEXT NOT NULL,
        digest TEXT NOT NULL,
        audio_id TEXT NOT NULL,
        duration REAL NOT NULL,
        url TEXT,
        created_at REAL NOT NULL,
        syntheses INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (provider, digest)
    );
    """,
    # 7: Kling's id of each result video (an advanced lip
    # sync of a rendered clip names it to identify-face), and the paid identify-face answers per
    # source (session id, faces as JSON, units paid), so a second run does not pay face recognition
    """
    ALTER TABLE requests ADD COLUMN video_id TEXT;
    CREATE TABLE face_sessions (
        provider TEXT NOT NULL,
        source TEXT NOT NULL,
        session_id TEXT NOT NULL,
        faces TEXT NOT NULL,
        units REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        PRIMARY KEY (provider, source)
    );
    """,
    # 8: the voice Kling cloned from a video-character element's clip (kling-api-2.md §3.1), kept
    # with the element (same provider + digest) so it is shown, and never registered again
    """
    CREATE TABLE element_voices (
        provider TEXT NOT NULL,
        digest TEXT NOT NULL,
        element_id INTEGER NOT NULL,
        reference TEXT,
        voice_id TEXT NOT NULL,
        voice_name TEXT,
        trial_url TEXT,
        owned_by TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (provider, digest)
    );
    """,
]
"""Ordered schema steps, each a few statements separated by ``;``, in SQL both SQLite and PostgreSQL
accept (``journal_postgres`` widens ``INTEGER``/``REAL`` and spells ``AUTOINCREMENT`` its way).
Append, never edit: a journal records the step it reached."""


Verdict = Literal["approved", "rejected"]


@dataclass(frozen=True)
class SpeechRecord:
    """Speech Kling's TTS made: the audio id to send (valid 30 days from ``created_at``), its length and URL."""

    provider: str
    digest: str
    audio_id: str
    duration: float
    url: str | None
    created_at: float
    syntheses: int


SPEECH_CHARGE_PREFIX = "speech:"
"""Ledger key of a TTS call (``charges.key``): 'speech:<digest>', one attempt per call."""


@dataclass(frozen=True)
class ElementVoice:
    """The voice Kling cloned from a video element's clip and bound to it (``element_voice_info``)."""

    voice_id: str
    voice_name: str | None = None
    trial_url: str | None = None
    """Where Kling lets one listen to the cloned voice."""
    owned_by: str | None = None

    def shown(self, reference: str) -> str:
        """What the user is told of it (the run's event line, ``storyboard status``)."""
        name = f"{self.voice_name} " if self.voice_name else ""
        listen = f", listen: {self.trial_url}" if self.trial_url else ""
        return (f"element {reference}: Kling cloned the voice in its clip, {name}(voice_id {self.voice_id}{listen}); "
                "it is bound to the element and journaled, never registered again")


def _element_voice(row: dict[str, Any]) -> ElementVoice:
    return ElementVoice(str(row["voice_id"]), row.get("voice_name"), row.get("trial_url"), row.get("owned_by"))


@dataclass(frozen=True)
class TakeRecord:
    """A take beyond the first, asked for on purpose (take 1 of every request is implicit)."""

    base_key: str
    take: int
    key: str
    request_id: str
    reason: str | None
    created_at: float


@dataclass(frozen=True)
class VerdictRecord:
    """The review's word on one shot of one take."""

    base_key: str
    take: int
    shot: str
    verdict: Verdict
    comment: str
    updated_at: float


class AlreadyClaimed(Exception):
    """Another render (this or another process) holds the request's row."""


class AccountBudgetExceeded(Exception):
    """The account's daily cap (``account_budget``) cannot cover this claim; nothing was claimed."""


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
    owner: str | None = None
    """The render (``user@host/pid/token``) working on the row while it is in flight."""
    heartbeat_at: float | None = None
    """When the owner last said it is alive (0: it let go on exit)."""
    project: str | None = None
    user_name: str | None = None
    video_id: str | None = None
    """Kling's id of the result video (journal step 7)."""


@dataclass(frozen=True)
class FaceSessionRecord:
    """A paid identify-face answer (journal step 7): the session and faces of one source video."""

    provider: str
    source: str
    session_id: str
    faces: list[dict[str, Any]]
    """``[{"face_id", "start_ms", "end_ms"}]`` by start time."""
    units: float
    """Units paid for face recognition of this source, every call added (an expired session is paid again)."""
    created_at: float


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
    project: str | None = None
    user_name: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Spending:
    """Units the account's ledger holds for one project and person: settled (charged) and reserved
    (claimed, not yet charged or refunded)."""

    project: str
    user_name: str
    charged: float
    reserved: float
    attempts: int


class Store(Protocol):
    """A database connection the journal speaks portable SQL through (``?`` parameters)."""

    shared: bool
    """Other machines may use the same journal (claims are waited for, not assumed stale)."""
    location: str
    """Where it is, for messages (never with a password)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def schema_version(self) -> int: ...
    def migrate(self, steps: Sequence[str]) -> None: ...
    def now(self) -> float: ...
    def for_update(self, skip_locked: bool = False) -> str: ...
    def close(self) -> None: ...


def journal_path(project_dir: Path) -> Path:
    return Workspace.at(project_dir).journal_file


def journal_url(project_dir: Path | None = None) -> str | None:
    """The shared journal's URL from ``STORYBOARD_JOURNAL`` (environment, else ``<project>/.env``), or
    None for the project's own SQLite file. Read per call, like the Kling keys, so two projects in
    one process never share a setting by accident."""
    value = os.environ.get(JOURNAL_URL_VARIABLE, "").strip()
    if not value and project_dir is not None:
        env_file = Path(project_dir) / ".env"
        if env_file.is_file():
            from dotenv import dotenv_values

            value = (dotenv_values(env_file).get(JOURNAL_URL_VARIABLE) or "").strip()
    if not value or value.lower() in ("sqlite", "local"):
        return None
    return value


def journal_exists(project_dir: Path) -> bool:
    """Whether there is a journal to read (a shared one always is; a local one once a render made it)."""
    return journal_url(project_dir) is not None or journal_path(project_dir).is_file()


def claim_timeout() -> float:
    """Seconds without a heartbeat before a claim counts as abandoned (``STORYBOARD_CLAIM_TIMEOUT``)."""
    text = os.environ.get(CLAIM_TIMEOUT_VARIABLE, "").strip()
    try:
        return max(0.5, float(text)) if text else DEFAULT_CLAIM_TIMEOUT
    except ValueError:
        return DEFAULT_CLAIM_TIMEOUT


def current_user() -> str:
    """Who renders, for the account's spending: ``STORYBOARD_USER``, else the login name."""
    name = os.environ.get(USER_VARIABLE, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


def project_label(project_dir: Path) -> str:
    """The project's name in a shared journal: ``STORYBOARD_PROJECT``, else the folder's name (so two
    checkouts of one repository, ``~/a/promo`` and ``/ci/promo``, count as one project)."""
    return os.environ.get(PROJECT_VARIABLE, "").strip() or Path(project_dir).resolve().name


def task_facts(project_dir: Path, provider: str) -> tuple[dict[str, str], dict[str, float]]:
    """Kling task ids and units charged, by request key, for the cut's metadata (OTIO).

    Empty when nothing was rendered yet. Charged units include earlier failed attempts of the
    same request; only requests with a reported charge are included, so a timeline can tell a
    charged figure from a planned one.
    """
    if not journal_exists(project_dir):
        return {}, {}
    with Journal.open(project_dir) as journal:
        records = journal.records(provider)
    task_ids = {r.key: r.task_id for r in records if r.task_id}
    charged = {r.key: (r.units or 0.0) + r.prior_units for r in records if r.units is not None or r.prior_units}
    return task_ids, charged


def external_task_id_for(base: str, attempt: int) -> str:
    """``sb-<key40>`` for the first attempt, ``sb-<key40>-2``, ``-3``… after failures."""
    return base if attempt <= 1 else f"{base}-{attempt}"


# ---- the SQLite store ---------------------------------------------------------------------------


def open_sqlite(path: Path) -> sqlite3.Connection:
    """Open (creating it and its folder) the project's SQLite journal: WAL, autocommit, 30 s busy wait.

    The one place a SQLite journal is opened, so the checks on opening are here: a damaged file
    (bad header, a zeroed journal in a project that rendered, a failed ``quick_check``, rows that no
    longer decode) is moved aside and ``JournalDamaged`` names ``storyboard journal repair``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    journal_check.check_file(path)
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    journal_check.check_database(db, path)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    return db


class SqliteStore:
    """The project's own journal file. Not shared: the render lock keeps one render per project."""

    shared = False

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._clock = clock
        self._db = open_sqlite(self.path)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, tuple(params))

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._db.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE``: takes the write lock up front, so a read-then-write is never raced."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, steps: Sequence[str]) -> None:
        with self.transaction():
            version = self.schema_version()
            for number, step in enumerate(steps[version:], start=version + 1):
                for statement in filter(str.strip, step.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")

    def now(self) -> float:
        return self._clock()

    def for_update(self, skip_locked: bool = False) -> str:
        return ""  # BEGIN IMMEDIATE already serialises writers

    def close(self) -> None:
        self._db.close()


def open_store(project_dir: Path | None = None, url: str | None = None,
               clock: Callable[[], float] | None = None) -> Store:
    """The store ``url`` names (else the project's setting, else its SQLite file)."""
    url = url if url is not None else journal_url(project_dir)
    if url is None or url.startswith("sqlite:"):
        if url and url.startswith("sqlite:"):
            path = Path(url.removeprefix("sqlite:").removeprefix("//"))
        else:
            assert project_dir is not None, "a local journal needs its project folder"
            path = journal_path(project_dir)
        return SqliteStore(path, clock or time.time)
    from storyboard.render.journal_postgres import PostgresStore, is_postgres_url

    if not is_postgres_url(url):
        from storyboard.errors import UserError

        raise UserError(f"{JOURNAL_URL_VARIABLE} is not a journal URL: {url.split('://')[0]}://…",
                        hint="leave it unset for the project's own journal, or set postgresql://user@host/db")
    return PostgresStore(url)


def _utc_day(seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


class Journal:
    """One project's journal. Cheap calls, each its own transaction unless it says otherwise."""

    def __init__(self, path: Path | None = None, clock: Callable[[], float] | None = None, *,
                 store: Store | None = None, project: str | None = None) -> None:
        if store is None:
            assert path is not None, "a journal needs a file or a store"
            store = SqliteStore(Path(path), clock or time.time)
        self.store = store
        self.path = Path(path) if path is not None else None
        self._clock: Callable[[], float] = clock or store.now
        self.user = current_user()
        self.host = socket.gethostname()
        self.project = project or (Path(path).parent.parent.resolve().name if path is not None else "unknown")
        self.owner = f"{self.user}@{self.host}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        """This journal object's name on the rows it holds (one render = one owner)."""
        self.store.migrate(MIGRATIONS)

    @classmethod
    def open(cls, project_dir: Path) -> Journal:
        """The project's journal: the shared one its setting names, else ``.storyboard/journal.sqlite``."""
        url = journal_url(project_dir)
        if url is None:
            return cls(journal_path(project_dir), project=project_label(project_dir))
        return cls(store=open_store(project_dir, url), project=project_label(project_dir))

    @classmethod
    def at_url(cls, url: str, project: str | None = None) -> Journal:
        return cls(store=open_store(None, url), project=project)

    @property
    def shared(self) -> bool:
        return self.store.shared

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self.store.schema_version()

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.store.execute(sql, params)

    # ---- requests -------------------------------------------------------------------------

    def get(self, provider: str, key: str) -> RequestRecord | None:
        row = self._sql("SELECT * FROM requests WHERE provider=? AND key=?", (provider, key)).fetchone()
        return _record(row) if row else None

    def records(self, provider: str | None = None, project: str | None = None) -> list[RequestRecord]:
        query, args = "SELECT * FROM requests WHERE 1=1", []
        if provider:
            query += " AND provider=?"
            args.append(provider)
        if project:
            query += " AND project=?"
            args.append(project)
        return [_record(r) for r in self._sql(query + " ORDER BY claimed_at, key", args).fetchall()]

    def claim(self, provider: str, key: str, request_id: str, base_external_id: str, planned_units: float,
              run_id: int | None) -> RequestRecord:
        """Claim the request before its paid create; a failed row is re-claimed with the next attempt.

        Atomic across processes and machines: the INSERT hits the UNIQUE key, and the re-claim UPDATE
        only matches a row still in ``failed`` (or a reused-clip note whose clip has vanished) at the
        attempt the claimant saw, so exactly one claimant wins. In the same transaction the planned
        units are reserved in the ledger and checked against the account's daily cap (raises
        ``AccountBudgetExceeded``, claiming nothing).
        """
        with self.store.transaction():
            now = self._clock()
            inserted = self._sql(
                "INSERT INTO requests (provider, key, request_id, state, attempt, external_task_id, planned_units,"
                " run_id, claimed_at, updated_at, owner, heartbeat_at, project, user_name)"
                " VALUES (?, ?, ?, 'claimed', 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider, key) DO NOTHING",
                (provider, key, request_id, external_task_id_for(base_external_id, 1), planned_units, run_id, now, now,
                 self.owner, now, self.project, self.user),
            )
            if inserted.rowcount != 1:
                existing = self.get(provider, key)
                attempt = (existing.attempt if existing else 1) + 1
                cursor = self._sql(
                    "UPDATE requests SET state='claimed', attempt=?, external_task_id=?, task_id=NULL, video_url=NULL,"
                    " prior_units=prior_units+COALESCE(units, 0), units=NULL, clip_path=NULL, error=NULL,"
                    " money_spent=NULL, adopted=0, reported_duration=NULL, run_id=?, planned_units=?, request_id=?,"
                    " claimed_at=?, updated_at=?, owner=?, heartbeat_at=?, project=?, user_name=?"
                    " WHERE provider=? AND key=? AND attempt=?"
                    " AND (state='failed' OR (state='downloaded' AND task_id IS NULL))",
                    (attempt, external_task_id_for(base_external_id, attempt), run_id, planned_units, request_id, now,
                     now, self.owner, now, self.project, self.user, provider, key, attempt - 1),
                )
                if cursor.rowcount != 1:
                    raise AlreadyClaimed(f"{provider}/{key} is already claimed")
            record = self.get(provider, key)
            assert record is not None
            if planned_units > 0:
                self._reserve(record, planned_units, now)
        return record

    def _reserve(self, record: RequestRecord, units: float, now: float) -> None:
        """Ledger row for this attempt; refused (the transaction rolls back) when the cap cannot cover it."""
        self._reserve_charge(record.provider, record.key, record.attempt, units, now)

    def _reserve_charge(self, provider: str, key: str, attempt: int, units: float, now: float) -> None:
        day = _utc_day(now)
        limit = self.store.scalar("SELECT limit_units FROM account_budget WHERE scope='daily'" + self.store.for_update())
        if limit is not None:
            spent = float(self.store.scalar("SELECT COALESCE(SUM(units), 0) FROM charges WHERE day=?", (day,)))
            if spent + units > float(limit) + 1e-9:
                raise AccountBudgetExceeded(
                    f"the account's daily cap is {float(limit):g} units and {spent:g} are spent or reserved today "
                    f"({day} UTC); this request needs {units:g} more. Raise it with "
                    "`storyboard journal budget --daily <units>` or wait until tomorrow")
        self._sql("INSERT INTO charges (provider, key, attempt, day, project, user_name, units, settled, at)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (provider, key, attempt) DO NOTHING",
                  (provider, key, attempt, day, self.project, self.user, units, now))

    def _settle(self, provider: str, key: str, units: float | None) -> None:
        """What Kling charged replaces the reservation of the row's current attempt (0 when nothing)."""
        self._sql("UPDATE charges SET units=?, settled=1 WHERE provider=? AND key=? AND attempt="
                  "(SELECT attempt FROM requests WHERE provider=? AND key=?)",
                  (float(units or 0.0), provider, key, provider, key))

    def _update(self, provider: str, key: str, expected: tuple[str, ...], **fields: object) -> None:
        fields["updated_at"] = self._clock()
        assignments = ", ".join(f"{name}=?" for name in fields)
        marks = ", ".join("?" for _ in expected)
        cursor = self._sql(
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
        if adopted:  # paid by an earlier render: this attempt's reservation is released
            self._settle(provider, key, 0.0)

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
        cursor = self._sql(
            "INSERT INTO requests (provider, key, request_id, state, attempt, external_task_id, task_id,"
            " planned_units, units, clip_path, error, money_spent, adopted, run_id, claimed_at, updated_at,"
            " owner, heartbeat_at, project, user_name)"
            " VALUES (?, ?, ?, 'submitted', ?, ?, ?, ?, NULL, NULL, NULL, 1, 1, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (provider, key) DO UPDATE SET request_id=excluded.request_id, state='submitted',"
            " attempt=excluded.attempt, external_task_id=excluded.external_task_id, task_id=excluded.task_id,"
            " planned_units=excluded.planned_units, prior_units=requests.prior_units+COALESCE(requests.units, 0),"
            " units=NULL, clip_path=NULL, error=NULL, money_spent=1, adopted=1, reported_duration=NULL,"
            " run_id=excluded.run_id, claimed_at=excluded.claimed_at, updated_at=excluded.updated_at,"
            " owner=excluded.owner, heartbeat_at=excluded.heartbeat_at, project=excluded.project,"
            " user_name=excluded.user_name"
            " WHERE requests.state='failed' OR (requests.state='downloaded' AND requests.task_id IS NULL)",
            (provider, key, request_id, attempt, external_task_id, task_id, planned_units, run_id, now, now,
             self.owner, now, self.project, self.user),
        )
        if cursor.rowcount != 1:
            raise AlreadyClaimed(f"{provider}/{key} is already in the journal")
        record = self.get(provider, key)
        assert record is not None
        return record

    def mark_unknown(self, provider: str, key: str, message: str) -> None:
        self._update(provider, key, ("claimed", "unknown"), state="unknown", error=message, money_spent=None)

    def mark_succeeded(self, provider: str, key: str, video_url: str | None, units: float | None,
                       duration: float | None = None, video_id: str | None = None) -> None:
        """The task succeeded: its URL (and Kling's video id), the units charged and the video's duration as reported."""
        self._update(provider, key, ("submitted", "succeeded"), state="succeeded", video_url=video_url, units=units,
                     money_spent=1, reported_duration=duration, video_id=video_id)
        self._settle(provider, key, units)

    def mark_downloaded(self, provider: str, key: str, clip_path: str) -> None:
        self._update(provider, key, ("succeeded", "downloaded"), state="downloaded", clip_path=clip_path, error=None)

    def mark_failed(self, provider: str, key: str, message: str, money_spent: bool | None, units: float | None = None) -> None:
        spent = None if money_spent is None else int(money_spent)
        self._update(provider, key, ("claimed", "unknown", "submitted", "succeeded"), state="failed", error=message,
                     money_spent=spent, units=units)
        if money_spent is not None:  # None: the create may have arrived; its reservation stays
            self._settle(provider, key, units)

    def record_reused_clip(self, provider: str, key: str, request_id: str, base_external_id: str, clip_path: str) -> None:
        """A verified clip exists but no row (journal deleted): note it so ``status`` shows it. Costs 0."""
        now = self._clock()
        self._sql(
            "INSERT INTO requests (provider, key, request_id, state, attempt, external_task_id, units,"
            " clip_path, claimed_at, updated_at, project, user_name) VALUES (?, ?, ?, 'downloaded', 1, ?, 0, ?, ?, ?, ?, ?)"
            " ON CONFLICT (provider, key) DO NOTHING",
            (provider, key, request_id, base_external_id, clip_path, now, now, self.project, self.user),
        )

    def units_charged(self, provider: str | None = None) -> float:
        """Units Kling reported charged for tasks in this journal (all runs)."""
        query = "SELECT COALESCE(SUM(COALESCE(units, 0) + prior_units), 0) FROM requests WHERE 1=1"
        faces = "SELECT COALESCE(SUM(units), 0) FROM face_sessions WHERE 1=1"
        args: tuple = ()
        if provider:
            query += " AND provider=?"
            faces += " AND provider=?"
            args = (provider,)
        return float(self.store.scalar(query, args)) + float(self.store.scalar(faces, args)) + self.speech_units(provider)

    # ---- claims across machines -------------------------------------------------------------

    def heartbeat(self) -> int:
        """Say this render is alive on every in-flight row it holds; how many rows."""
        marks = ", ".join("?" for _ in IN_FLIGHT)
        cursor = self._sql(f"UPDATE requests SET heartbeat_at=? WHERE owner=? AND state IN ({marks})",
                           (self._clock(), self.owner, *IN_FLIGHT))
        return int(cursor.rowcount)

    def release(self) -> int:
        """On exit: mark this render's in-flight rows as let go (heartbeat 0), so the next render takes
        them over at once instead of after the timeout. A killed render never gets here."""
        marks = ", ".join("?" for _ in IN_FLIGHT)
        cursor = self._sql(f"UPDATE requests SET heartbeat_at=0 WHERE owner=? AND state IN ({marks})",
                           (self.owner, *IN_FLIGHT))
        return int(cursor.rowcount)

    def quiet_for(self, record: RequestRecord) -> float:
        """Seconds since the row's owner last said it was alive (by the database's clock when shared)."""
        last = record.heartbeat_at if record.heartbeat_at is not None else record.updated_at
        return self._clock() - last

    def take_over(self, provider: str, key: str, timeout: float | None) -> RequestRecord | None:
        """Make this render the owner of an in-flight row whose owner went quiet for ``timeout`` s
        (None: whatever its owner, for a journal no other render can use). None when the row is not
        in flight, its owner is alive, or another render took it first (``SKIP LOCKED``: two takers
        never block each other; one wins)."""
        now = self._clock()
        marks = ", ".join("?" for _ in IN_FLIGHT)
        condition = f"provider=? AND key=? AND state IN ({marks})"
        args: list[Any] = [provider, key, *IN_FLIGHT]
        if timeout is not None:
            condition += " AND (owner IS NULL OR owner<>?) AND COALESCE(heartbeat_at, updated_at) < ?"
            args += [self.owner, now - timeout]
        cursor = self._sql(
            f"UPDATE requests SET owner=?, heartbeat_at=? WHERE {condition} AND key IN"
            f" (SELECT key FROM requests WHERE {condition}{self.store.for_update(skip_locked=True)})",
            (self.owner, now, *args, *args),
        )
        return self.get(provider, key) if cursor.rowcount == 1 else None

    # ---- the account -------------------------------------------------------------------------

    def set_daily_budget(self, units: float | None) -> None:
        """The account's daily cap in units (None removes it); checked by every claim on this journal."""
        if units is None:
            self._sql("DELETE FROM account_budget WHERE scope='daily'")
            return
        self._sql("INSERT INTO account_budget (scope, limit_units, set_by, set_at) VALUES ('daily', ?, ?, ?)"
                  " ON CONFLICT (scope) DO UPDATE SET limit_units=excluded.limit_units, set_by=excluded.set_by,"
                  " set_at=excluded.set_at", (float(units), self.user, self._clock()))

    def daily_budget(self) -> float | None:
        value = self.store.scalar("SELECT limit_units FROM account_budget WHERE scope='daily'")
        return None if value is None else float(value)

    def spent_today(self) -> float:
        """Units charged or reserved today (UTC) by every render on this journal."""
        return float(self.store.scalar("SELECT COALESCE(SUM(units), 0) FROM charges WHERE day=?",
                                       (_utc_day(self._clock()),)))

    def spending(self, day: str | None = None) -> list[Spending]:
        """The ledger by project and person (one day, or all of it), largest first."""
        query = ("SELECT COALESCE(project, '-') AS project, COALESCE(user_name, '-') AS user_name,"
                 " SUM(CASE WHEN settled=1 THEN units ELSE 0 END) AS charged,"
                 " SUM(CASE WHEN settled=0 THEN units ELSE 0 END) AS reserved, COUNT(*) AS attempts FROM charges")
        args: tuple = ()
        if day:
            query += " WHERE day=?"
            args = (day,)
        query += " GROUP BY COALESCE(project, '-'), COALESCE(user_name, '-')"
        rows = [Spending(str(r["project"]), str(r["user_name"]), float(r["charged"] or 0), float(r["reserved"] or 0),
                         int(r["attempts"])) for r in self._sql(query, args).fetchall()]
        return sorted(rows, key=lambda s: (-(s.charged + s.reserved), s.project, s.user_name))

    # ---- takes and verdicts ----------------------------------------------------------------

    def add_take(self, base_key: str, take: int, key: str, request_id: str, reason: str | None = None) -> None:
        """Record that take ``take`` of ``base_key`` was asked for (kept if it already was)."""
        self._sql(
            "INSERT INTO takes (base_key, take, key, request_id, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (base_key, take) DO NOTHING",
            (base_key, take, key, request_id, reason, self._clock()),
        )

    def takes(self, base_key: str | None = None) -> list[TakeRecord]:
        if base_key is None:
            rows = self._sql("SELECT * FROM takes ORDER BY base_key, take").fetchall()
        else:
            rows = self._sql("SELECT * FROM takes WHERE base_key=? ORDER BY take", (base_key,)).fetchall()
        return [TakeRecord(**dict(row)) for row in rows]

    def record_verdict(self, base_key: str, take: int, shot: str, verdict: Verdict, comment: str = "") -> None:
        """The review's latest word on a shot of a take replaces the earlier one."""
        self._sql(
            "INSERT INTO verdicts (base_key, take, shot, verdict, comment, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (base_key, take, shot) DO UPDATE SET verdict=excluded.verdict, comment=excluded.comment,"
            " updated_at=excluded.updated_at",
            (base_key, take, shot, verdict, comment, self._clock()),
        )

    def verdicts(self) -> list[VerdictRecord]:
        rows = self._sql("SELECT * FROM verdicts ORDER BY base_key, take, shot").fetchall()
        return [VerdictRecord(**dict(row)) for row in rows]

    def take_choices(self) -> dict[str, int]:
        """Take-1 key -> the take a cut uses: the newest approved, else the newest (only keys with takes
        or verdicts; every other request is at take 1)."""
        newest: dict[str, int] = {}
        for record in self.takes():
            newest[record.base_key] = max(newest.get(record.base_key, 1), record.take)
        approved: dict[str, set[int]] = {}
        rejected: dict[str, set[int]] = {}
        for verdict in self.verdicts():
            (approved if verdict.verdict == "approved" else rejected).setdefault(verdict.base_key, set()).add(verdict.take)
        choices = {}
        for base in set(newest) | set(approved):
            good = approved.get(base, set()) - rejected.get(base, set())
            choices[base] = max(good) if good else newest.get(base, 1)
        return choices

    # ---- elements -------------------------------------------------------------------------

    def element_id(self, provider: str, digest: str) -> int | None:
        value = self.store.scalar("SELECT element_id FROM elements WHERE provider=? AND digest=?", (provider, digest))
        return int(value) if value is not None else None

    def record_element(self, provider: str, digest: str, element_id: int) -> None:
        self._sql("INSERT INTO elements (provider, digest, element_id, created_at) VALUES (?, ?, ?, ?)"
                  " ON CONFLICT (provider, digest) DO UPDATE SET element_id=excluded.element_id,"
                  " created_at=excluded.created_at", (provider, digest, int(element_id), self._clock()))

    def record_element_voice(self, provider: str, digest: str, element_id: int, reference: str,
                             voice: ElementVoice) -> None:
        """Journal the voice Kling cloned for a video element (one row per element, replaced if it changes);
        ``reference`` is the storyboard's name for the element, for ``status``."""
        self._sql("INSERT INTO element_voices (provider, digest, element_id, reference, voice_id, voice_name, trial_url,"
                  " owned_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider, digest) DO UPDATE"
                  " SET element_id=excluded.element_id, reference=excluded.reference, voice_id=excluded.voice_id,"
                  " voice_name=excluded.voice_name, trial_url=excluded.trial_url, owned_by=excluded.owned_by,"
                  " created_at=excluded.created_at",
                  (provider, digest, int(element_id), reference, voice.voice_id, voice.voice_name, voice.trial_url,
                   voice.owned_by, self._clock()))

    def element_voice(self, provider: str, digest: str) -> ElementVoice | None:
        """The voice cloned for the element journaled under ``digest`` (None: none heard, or not registered yet)."""
        row = self._sql("SELECT voice_id, voice_name, trial_url, owned_by FROM element_voices"
                        " WHERE provider=? AND digest=?", (provider, digest)).fetchone()
        return None if row is None else _element_voice(dict(row))

    def element_voices(self) -> list[tuple[str, str, ElementVoice]]:
        """(provider, element reference, cloned voice) of every video element whose clip Kling cloned a voice from."""
        rows = self._sql("SELECT provider, reference, voice_id, voice_name, trial_url, owned_by FROM element_voices"
                         " ORDER BY provider, reference, created_at").fetchall()
        return [(str(row["provider"]), str(row["reference"] or "?"), _element_voice(dict(row))) for row in rows]

    def voice_id(self, provider: str, digest: str) -> str | None:
        value = self.store.scalar("SELECT voice_id FROM voices WHERE provider=? AND digest=?", (provider, digest))
        return None if value is None else str(value)

    def record_voice(self, provider: str, digest: str, voice_id: str) -> None:
        self._sql("INSERT INTO voices (provider, digest, voice_id, created_at) VALUES (?, ?, ?, ?)"
                  " ON CONFLICT (provider, digest) DO UPDATE SET voice_id=excluded.voice_id,"
                  " created_at=excluded.created_at", (provider, digest, str(voice_id), self._clock()))

    # ---- speech (TTS) ----------------------------------------------------------------------

    def speech(self, provider: str, digest: str) -> SpeechRecord | None:
        row = self._sql("SELECT * FROM speech WHERE provider=? AND digest=?", (provider, digest)).fetchone()
        if row is None:
            return None
        data = dict(row)
        return SpeechRecord(str(data["provider"]), str(data["digest"]), str(data["audio_id"]), float(data["duration"]),
                            data["url"], float(data["created_at"]), int(data["syntheses"]))

    def reserve_speech(self, provider: str, digest: str, units: float) -> int:
        """Reserve one TTS call in the ledger (checked against the daily cap, ``AccountBudgetExceeded``);
        returns its attempt number, which ``settle_speech`` settles once the call's outcome is known."""
        key = SPEECH_CHARGE_PREFIX + digest
        with self.store.transaction():
            attempt = int(self.store.scalar("SELECT COALESCE(MAX(attempt), 0) + 1 FROM charges WHERE provider=? AND key=?",
                                            (provider, key)))
            self._reserve_charge(provider, key, attempt, units, self._clock())
        return attempt

    def settle_speech(self, provider: str, digest: str, attempt: int, units: float) -> None:
        """What the TTS call cost (0 when it provably made nothing)."""
        self._sql("UPDATE charges SET units=?, settled=1 WHERE provider=? AND key=? AND attempt=?",
                  (float(units), provider, SPEECH_CHARGE_PREFIX + digest, attempt))

    def record_speech(self, provider: str, digest: str, audio_id: str, duration: float, url: str | None) -> None:
        """The speech TTS made (replacing an expired one of the same inputs), dated now: its id's 30 days start."""
        self._sql("INSERT INTO speech (provider, digest, audio_id, duration, url, created_at, syntheses)"
                  " VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (provider, digest) DO UPDATE SET"
                  " audio_id=excluded.audio_id, duration=excluded.duration, url=excluded.url,"
                  " created_at=excluded.created_at, syntheses=speech.syntheses + 1",
                  (provider, digest, str(audio_id), float(duration), url, self._clock()))

    def speech_age(self, record: SpeechRecord) -> float:
        """Seconds since the speech was made (by the journal's clock): its audio id lives 30 days."""
        return self._clock() - record.created_at

    def speech_units(self, provider: str | None = None) -> float:
        """Units settled for TTS calls (a call whose answer was lost stays reserved: unknown, not counted)."""
        query = "SELECT COALESCE(SUM(units), 0) FROM charges WHERE key LIKE ? AND settled=1"
        args: tuple = (SPEECH_CHARGE_PREFIX + "%",)
        if provider:
            query += " AND provider=?"
            args = (*args, provider)
        return float(self.store.scalar(query, args))

    # ---- advanced lip sync's face step ------------------------------------------------------

    def face_session(self, provider: str, source: str) -> FaceSessionRecord | None:
        row = self._sql("SELECT * FROM face_sessions WHERE provider=? AND source=?", (provider, source)).fetchone()
        if row is None:
            return None
        data = dict(row)
        return FaceSessionRecord(data["provider"], data["source"], data["session_id"], json.loads(data["faces"]),
                                 float(data["units"]), float(data["created_at"]))

    def record_face_session(self, provider: str, source: str, session_id: str, faces: list[dict[str, Any]],
                            units: float) -> None:
        """Keep a paid identify-face answer; a newer one (the old session expired) replaces it, its units add up.

        The charge also goes into the account's ledger (``charges``, settled, under the key
        ``face:<source>``, one attempt per call), so the day's spending and cap see it.
        """
        with self.store.transaction():
            now = self._clock()
            ledger_key = f"face:{source}"
            calls = int(self.store.scalar("SELECT COUNT(*) FROM charges WHERE provider=? AND key=?",
                                          (provider, ledger_key)))
            self._sql("INSERT INTO charges (provider, key, attempt, day, project, user_name, units, settled, at)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                      (provider, ledger_key, calls + 1, _utc_day(now), self.project, self.user, float(units), now))
            self._record_face_session(provider, source, session_id, faces, units, now)

    def _record_face_session(self, provider: str, source: str, session_id: str, faces: list[dict[str, Any]],
                             units: float, now: float) -> None:
        self._sql("INSERT INTO face_sessions (provider, source, session_id, faces, units, created_at)"
                  " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (provider, source) DO UPDATE SET"
                  " session_id=excluded.session_id, faces=excluded.faces,"
                  " units=face_sessions.units + excluded.units, created_at=excluded.created_at",
                  (provider, source, session_id, json.dumps(faces, sort_keys=True), float(units), now))

    # ---- runs -----------------------------------------------------------------------------

    def start_run(self, provider: str, storyboard: str) -> int:
        value = self.store.scalar(
            "INSERT INTO runs (provider, storyboard, pid, started_at, project, user_name, host)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (provider, storyboard, os.getpid(), self._clock(), self.project, self.user, self.host))
        assert value is not None  # RETURNING always answers for an INSERT
        return int(value)

    def add_run_units(self, run_id: int, units: float) -> None:
        self._sql("UPDATE runs SET units_spent = units_spent + ? WHERE id=?", (units, run_id))

    def finish_run(self, run_id: int, outcome: str) -> None:
        self._sql("UPDATE runs SET finished_at=?, outcome=? WHERE id=?", (self._clock(), outcome, run_id))

    def runs(self, project: str | None = None) -> list[RunRecord]:
        query, args = "SELECT * FROM runs", tuple[str, ...]()
        if project:
            query, args = query + " WHERE project=?", (project,)
        return [_run_record(row) for row in self._sql(query + " ORDER BY id", args).fetchall()]

    # ---- copying ---------------------------------------------------------------------------

    def copy_into(self, target: Journal) -> dict[str, tuple[int, int]]:
        """Copy every row of this journal into ``target``, keeping rows ``target`` already has
        (idempotent: a second copy adds nothing). Per table: (rows read, rows added). Run ids are
        renumbered in ``target`` and the requests that name them follow."""
        copied: dict[str, tuple[int, int]] = {}
        with target.store.transaction():
            run_ids: dict[int, int] = {}
            runs = self._sql("SELECT * FROM runs ORDER BY id").fetchall()
            added = 0
            for row in runs:
                data = dict(row)
                existing = target.store.scalar(
                    "SELECT id FROM runs WHERE provider=? AND storyboard=? AND pid=? AND started_at=?",
                    (data["provider"], data["storyboard"], data["pid"], data["started_at"]))
                if existing is None:
                    existing = target.store.scalar(
                        "INSERT INTO runs (provider, storyboard, pid, started_at, finished_at, units_spent, outcome,"
                        " project, user_name, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (data["provider"], data["storyboard"], data["pid"], data["started_at"], data["finished_at"],
                         data["units_spent"], data["outcome"], data.get("project") or self.project,
                         data.get("user_name") or self.user, data.get("host")))
                    added += 1
                run_ids[int(data["id"])] = int(existing)
            copied["runs"] = (len(runs), added)
            copied["requests"] = self._copy_rows(target, "requests", ("provider", "key"),
                                                 lambda d: {**d, "run_id": run_ids.get(d["run_id"]) if d["run_id"] else None,
                                                            "project": d.get("project") or self.project,
                                                            "user_name": d.get("user_name") or self.user})
            copied["elements"] = self._copy_rows(target, "elements", ("provider", "digest"), lambda d: d)
            copied["speech"] = self._copy_rows(target, "speech", ("provider", "digest"), lambda d: d)
            # paid face recognition goes along (journal step 7: both journals are migrated on open)
            copied["face_sessions"] = self._copy_rows(target, "face_sessions", ("provider", "source"), lambda d: d)
            copied["element_voices"] = self._copy_rows(target, "element_voices", ("provider", "digest"), lambda d: d)
            copied["charges"] = self._copy_rows(target, "charges", ("provider", "key", "attempt"), lambda d: d)
            copied["charges"] = self._charges_for_old_rows(target, copied["charges"])
        return copied

    def _copy_rows(self, target: Journal, table: str, keys: tuple[str, ...],
                   adapt: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[int, int]:
        rows = self._sql(f"SELECT * FROM {table}").fetchall()
        target_columns = target.columns(table)
        added = 0
        for row in rows:
            data = {k: v for k, v in adapt(dict(row)).items() if k in target_columns}
            names = ", ".join(data)
            marks = ", ".join("?" for _ in data)
            cursor = target._sql(f"INSERT INTO {table} ({names}) VALUES ({marks})"
                                 f" ON CONFLICT ({', '.join(keys)}) DO NOTHING", tuple(data.values()))
            added += max(0, int(cursor.rowcount))
        return len(rows), added

    def _charges_for_old_rows(self, target: Journal, counted: tuple[int, int]) -> tuple[int, int]:
        """A journal older than the ledger has charges only on its rows: each charged row becomes one
        settled ledger entry (dated by its claim) so the account's spending includes it."""
        read, added = counted
        for record in self.records():
            charged = (record.units or 0.0) + record.prior_units
            if charged <= 0:
                continue
            cursor = target._sql(
                "INSERT INTO charges (provider, key, attempt, day, project, user_name, units, settled, at)"
                " SELECT ?, ?, ?, ?, ?, ?, ?, 1, ? WHERE NOT EXISTS"
                " (SELECT 1 FROM charges WHERE provider=? AND key=?)",
                (record.provider, record.key, record.attempt, _utc_day(record.claimed_at),
                 record.project or self.project, record.user_name or self.user, charged, record.claimed_at,
                 record.provider, record.key))
            added += max(0, int(cursor.rowcount))
        return read, added

    def columns(self, table: str) -> set[str]:
        """The table's column names (a journal migrated by a newer storyboard may have more)."""
        cursor = self._sql(f"SELECT * FROM {table} WHERE 1=0")
        return {column[0] for column in cursor.description}

    def count(self, table: str) -> int:
        return int(self.store.scalar(f"SELECT COUNT(*) FROM {table}"))


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(RequestRecord))
_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord))


def _record(row: Any) -> RequestRecord:
    """A row as a record; columns appended by later migrations that the record does not name are left out."""
    data = {k: v for k, v in dict(row).items() if k in _RECORD_FIELDS}
    data["money_spent"] = None if data["money_spent"] is None else bool(data["money_spent"])
    data["adopted"] = bool(data.get("adopted"))
    return RequestRecord(**data)


def _run_record(row: Any) -> RunRecord:
    return RunRecord(**{k: v for k, v in dict(row).items() if k in _RUN_FIELDS})
