"""The journal on PostgreSQL: one journal shared by every checkout and machine of a team.

Why PostgreSQL and not a shared SQLite file: SQLite's locks do not hold over network file
systems, and a team's renders run on several machines. The journal's rule (claim before pay,
exactly one claimant wins) is carried by the database: the unique key on (provider, key), updates
that only match the state the claimant saw, a row lock (``FOR UPDATE``) on the account's budget
while a claim is checked against it, and ``FOR UPDATE SKIP LOCKED`` when a crashed machine's claims
are taken over, so two takers never wait on each other.

The schema is the journal's own ``MIGRATIONS`` list, translated only where the dialects differ:
``INTEGER`` is widened to ``BIGINT`` (Kling element ids pass 2³¹), ``REAL`` to ``DOUBLE PRECISION``
(a 4-byte float cannot hold a Unix time to the second) and ``INTEGER PRIMARY KEY AUTOINCREMENT``
becomes ``BIGSERIAL PRIMARY KEY``. The version lives in ``storyboard_schema``; migrations run in one
transaction under an advisory lock, so two machines opening a new journal at once migrate it once.
Statements use ``?`` parameters (the journal's portable spelling), turned into psycopg's ``%s``.

psycopg is imported here only, and this module only when a ``postgresql://`` URL is used.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from storyboard.errors import UserError

MIGRATION_LOCK = 0x5B0A_4D15
"""``pg_advisory_xact_lock`` key that serialises migrations of one database."""

_TRANSLATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.IGNORECASE), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.IGNORECASE), "BIGINT"),
    (re.compile(r"\bREAL\b", re.IGNORECASE), "DOUBLE PRECISION"),
)


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages and the journal's ``location``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def translate_ddl(statement: str) -> str:
    """A migration statement as PostgreSQL spells it (the few type names that differ)."""
    for pattern, replacement in _TRANSLATIONS:
        statement = pattern.sub(replacement, statement)
    return statement


def _placeholders(sql: str) -> str:
    """``?`` → ``%s`` (the journal's SQL holds no literal ``?`` or ``%`` outside parameters)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore:
    """A psycopg 3 connection in autocommit mode; ``transaction()`` groups statements."""

    shared = True

    def __init__(self, url: str) -> None:
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError:
            raise UserError("a postgresql:// journal needs psycopg",
                            hint="pip install 'kling-storyboard[postgres]' (or 'psycopg[binary]')") from None
        self.location = redact(url)
        try:
            self._db = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=15)
        except psycopg.Error as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"cannot open the shared journal at {self.location}: {message.replace(url, self.location)}",
                            hint="check STORYBOARD_JOURNAL (host, port, database, user) and that the server runs") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(_placeholders(sql), tuple(params))

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else next(iter(row.values()))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.transaction():
            yield

    def schema_version(self) -> int:
        exists = self.scalar("SELECT to_regclass('storyboard_schema') IS NOT NULL")
        if not exists:
            return 0
        return int(self.scalar("SELECT COALESCE(MAX(version), 0) FROM storyboard_schema"))

    def migrate(self, steps: Sequence[str]) -> None:
        if self.schema_version() >= len(steps):
            return
        with self.transaction():
            self.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            self.execute("CREATE TABLE IF NOT EXISTS storyboard_schema (version BIGINT NOT NULL, migrated_at"
                         " TIMESTAMPTZ NOT NULL DEFAULT now())")
            version = self.schema_version()
            for number, step in enumerate(steps[version:], start=version + 1):
                for statement in filter(str.strip, step.split(";")):
                    self._db.execute(translate_ddl(statement))
                self.execute("INSERT INTO storyboard_schema (version) VALUES (?)", (number,))

    def now(self) -> float:
        """The server's clock: heartbeats and timeouts compare one clock, whatever the machines' clocks say."""
        return float(self.scalar("SELECT EXTRACT(EPOCH FROM clock_timestamp())"))

    def for_update(self, skip_locked: bool = False) -> str:
        return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"

    def close(self) -> None:
        self._db.close()
