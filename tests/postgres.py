"""A real PostgreSQL for the shared-journal tests, and a fresh schema per test.

Why real: the shared journal's guarantees (one claimant wins, the budget row lock, SKIP LOCKED
take-overs) are the database's; a stand-in would test nothing. The server is the one CI starts
(``.ci/postgres-up`` exports ``STORYBOARD_TEST_POSTGRES``); without it the fixture starts one the same
way when PostgreSQL is installed, and otherwise the tests skip and say why. Each test gets its own
schema (``search_path`` in the URL), so tests never see each other's rows and a test's processes
share one journal by sharing the URL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _start_server() -> tuple[str | None, str]:
    """(URL, why not): start a throwaway server with the CI script on a free port."""
    script = REPO / ".ci" / "postgres-up"
    if shutil.which("bash") is None or not script.is_file():
        return None, "no bash or .ci/postgres-up to start PostgreSQL with"
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "STORYBOARD_PG_PORT": str(port)})
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f".ci/postgres-up could not run: {error}"
    url = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else ""
    if not url:
        return None, f"PostgreSQL could not be started by .ci/postgres-up ({done.stderr.strip()[-200:] or 'no output'})"
    return url, ""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The server's URL: ``STORYBOARD_TEST_POSTGRES``, else one started for this session, else skip."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[test]'): the shared-journal tests need it")
    url = os.environ.get("STORYBOARD_TEST_POSTGRES", "").strip()
    started = False
    if not url:
        url, why = _start_server()
        if not url:
            pytest.skip(f"no PostgreSQL for the shared-journal tests: STORYBOARD_TEST_POSTGRES is unset and {why}")
        started = True
    try:
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.Error as error:
        pytest.skip(f"the PostgreSQL at STORYBOARD_TEST_POSTGRES does not answer: {str(error).strip()[:200]}")
    yield url
    if started:
        _stop_server(url)


def _stop_server(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as db:
            data_dir = db.execute("SHOW data_directory").fetchone()[0]
    except psycopg.Error:
        return
    pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if pg_ctl:
        runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*runner, str(pg_ctl[-1]), "-D", data_dir, "-m", "fast", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)  # the throwaway server's files go with it


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose ``search_path`` is a schema of its own (dropped after the test)."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f"DROP SCHEMA {schema} CASCADE")
