"""A dead Kling host stops the whole run after a few tries, says so once naming the host (issue 16).

Real parts: the real Kling client over real sockets (a loopback port nothing listens on; a socket
that accepts and never answers), the CLI through typer's runner, the strict fake Kling for the
runs that must resume, and the real journal. Also: ``--deadline`` for unattended runs, and a
half-set key pair names the key that is missing.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from pathlib import Path

import httpx
import pytest
from test_engine import assert_paid_once_and_intact, make_plan, no_sleep, provider_for, t2v
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from storyboard.errors import HostUnreachable
from storyboard.render import engine
from storyboard.render.health import HostHealth
from storyboard.render.journal import Journal
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve

_register_commands()


STORYBOARD = "version: 1\nname: Harbour\ndefaults:\n  model: kling-v3\n  mode: std\n  aspect_ratio: \"16:9\"\n" \
             "  strategy: per_shot\nshots:\n" + "".join(
                 f"  - id: s{n}\n    duration: 3\n    subject: harbour scene {n}\n    action: boats drift\n" for n in range(4))


def refused_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_a_refusing_host_stops_the_render_at_once_and_says_so_once(no_keys, make_project):
    port = refused_port()
    no_keys.setenv("KLINGAI_ACCESS_KEY", "ak-test-key")
    no_keys.setenv("KLINGAI_SECRET_KEY", "sk-test-secret-of-thirty-two-bytes")
    no_keys.setenv("KLINGAI_BASE_URL", f"http://127.0.0.1:{port}")
    project = make_project(STORYBOARD)
    result = CliRunner().invoke(app, ["render", str(project), "--yes"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    host = f"127.0.0.1:{port}"
    assert result.output.count(f"the Kling host {host} refused") == 1, result.output
    assert "check the network and KLINGAI_BASE_URL" in result.output
    assert "sk-test-secret-of-thirty-two-bytes" not in result.output
    with Journal.open(project) as journal:  # nothing was claimed: no create was ever attempted
        assert journal.records() == []


def test_a_black_hole_host_trips_the_health_signal_in_seconds(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    port = server.getsockname()[1]
    plan = make_plan([t2v(i) for i in range(6)])

    async def go() -> None:
        credentials = KlingCredentials(access_key="ak", secret_key="sk" * 20, base_url=f"http://127.0.0.1:{port}")
        provider = KlingProvider(credentials, sleep=no_sleep)
        try:
            await engine.render(plan, tmp_path, provider, sleep=no_sleep,
                                host_health=HostHealth(first_answer_timeout=0.3))
        finally:
            await provider.aclose()

    try:
        with pytest.raises(HostUnreachable) as caught:
            asyncio.run(go())
    finally:
        server.close()
    assert caught.value.host == f"127.0.0.1:{port}"
    assert re.search(r"did not answer \d+ times in a row", str(caught.value))
    # two rounds at most (concurrent failures are one round: a busy host must not be called down)
    assert len(held) <= 2 * len(plan.requests), "two tries per request at most, then the run stopped"


def test_a_host_dying_after_a_create_leaves_it_to_be_looked_up_and_nothing_is_paid_twice(tmp_path):
    fake = FakeKling(polls_to_finish=1)
    dead = {"now": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if dead["now"]:
            raise httpx.ConnectError("connection refused", request=request)
        response = fake.handle(request)
        if request.method == "POST" and "/videos/" in request.url.path:
            dead["now"] = True  # the create arrived and was recorded; its answer and the host are lost
            raise httpx.ReadTimeout("read timed out", request=request)
        return response

    plan = make_plan([t2v(i) for i in range(4)])

    async def go(transport: httpx.AsyncBaseTransport) -> engine.RenderResult:
        provider = provider_for(fake, transport)
        try:
            return await engine.render(plan, tmp_path, provider, sleep=no_sleep, concurrency=1)
        finally:
            await provider.aclose()

    with pytest.raises(HostUnreachable):
        asyncio.run(go(httpx.MockTransport(handler)))
    assert sum(fake.creates.values()) == 1
    with Journal.open(tmp_path) as journal:
        states = sorted(r.state for r in journal.records("kling"))
    assert states and set(states) == {"claimed"}, states  # claimed, not failed: looked up before any resend

    result = asyncio.run(go(fake.transport()))  # the host is back
    assert result.ok, (result.failed, result.skipped)
    assert_paid_once_and_intact(plan, tmp_path, fake)


def test_the_deadline_stops_an_unattended_run_and_the_next_run_resumes_without_paying_again(no_keys, make_project):
    fake = FakeKling(polls_to_finish=10_000)
    project = make_project(STORYBOARD)
    with serve(fake) as base_url:
        no_keys.setenv("KLINGAI_ACCESS_KEY", fake.access_key)
        no_keys.setenv("KLINGAI_SECRET_KEY", fake.secret_key)
        no_keys.setenv("KLINGAI_BASE_URL", base_url)
        stopped = CliRunner().invoke(app, ["render", str(project), "--yes", "--deadline", "2s"])
        assert stopped.exit_code == 1, stopped.output
        assert isinstance(stopped.exception, SystemExit) and "Traceback" not in stopped.output
        assert "the run's deadline (2 s) passed" in stopped.output
        created = sum(fake.creates.values())
        assert created >= 1
        fake.polls_to_finish = 1  # Kling finishes them now (the tasks in flight and those still to create)
        for task in fake.tasks.values():
            task.polls_to_finish = 1
        again = CliRunner().invoke(app, ["render", str(project), "--yes"])
        assert again.exit_code == 0, again.output
    assert sum(fake.creates.values()) == 4
    assert all(count == 1 for count in fake.creates.values()), dict(fake.creates)
    assert len(list((project / ".storyboard" / "clips" / "kling").glob("*.mp4"))) == 4


@pytest.mark.parametrize("text", ["soon", "-5m", "0", "3 days"])
def test_a_deadline_that_is_not_a_duration_is_refused_before_anything(no_keys, make_project, text):
    project = make_project(STORYBOARD)
    result = CliRunner().invoke(app, ["render", str(project), "--provider", "preview", "--deadline", text])
    assert result.exit_code == 1 and "is not a duration" in result.output and "90s, 20m, 2h" in result.output


@pytest.mark.parametrize(("present", "missing"), [("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY"),
                                                  ("KLINGAI_SECRET_KEY", "KLINGAI_ACCESS_KEY")])
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_half_a_key_pair_names_the_missing_key(no_keys, make_project, present, missing, where):
    project = make_project(STORYBOARD)
    if where == "environment":
        no_keys.setenv(present, "half-of-a-pair-value")
    else:
        Path(project / ".env").write_text(f"{present}=half-of-a-pair-value\n")
    for command in (["render", str(project), "--yes"], ["render", str(project), "--yes", "--provider", "kling"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, result.output
        assert f"{present} is set but {missing} is missing" in result.output, result.output
        assert "half-of-a-pair-value" not in result.output
    assert not (project / ".storyboard" / "clips" / "preview").exists(), "no silent fall-back to the preview"
