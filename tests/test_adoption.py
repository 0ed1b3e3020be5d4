"""Adopt, never re-pay (issue 9): through the CLI, against the fake Kling account on loopback.

The journal is one folder's memory; the Kling account is the record of what was paid. These runs
delete ``.storyboard/`` or copy the project elsewhere, then render again with the same account:
every request's task is found (by the quick lookup before a create, or by the create that Kling
refuses with 1201 naming the task, or answers with the existing task) and downloaded, with no new
task created and nothing charged, and the output says "adopted (already paid)".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from storyboard.errors import (
    AccountError,
    Ambiguous,
    DownloadFailed,
    ExternalIdInUse,
    NeverArrived,
    ProviderError,
    RateLimited,
    Rejected,
    TaskFailed,
)
from storyboard.media import probe
from tests.conftest import use_kling
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve

_register_commands()

STORYBOARD = """\
version: 1
name: Two shots
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
"""

ACCOUNTS = {
    "found-by-lookup": {},
    "create-refused-1201": {"lookup_conventions": {"flag"}},
    "create-returns-existing": {"lookup_conventions": {"flag"}, "duplicate_external_id": "return_existing"},
}
"""``found-by-lookup``: the path slot answers external ids, so the look-up before the first create
finds each task. The other two switch the path slot off, so the create is sent: Kling refuses it
with 1201 "... is already used by task N", or answers with the existing task."""



@pytest.fixture
def kling_account(request, no_keys):
    """A fake Kling account served on loopback, with the CLI's environment pointed at it."""
    fake = FakeKling(polls_to_finish=1, **ACCOUNTS[request.param])
    with serve(fake) as base_url:
        use_kling(no_keys, fake, base_url)
        yield fake


def render(project: Path) -> str:
    result = CliRunner().invoke(app, ["render", str(project), "--yes"])
    assert result.exit_code == 0, result.output
    return result.output


def kling_clips(project: Path) -> list[Path]:
    clips = sorted((project / ".storyboard" / "clips" / "kling").glob("*.mp4"))
    for clip in clips:
        assert probe(clip).frames == 3 * 24
    return clips


@pytest.mark.parametrize("kling_account", sorted(ACCOUNTS), indirect=True)
def test_deleted_journal_then_copies_of_the_project_render_with_zero_creates(kling_account, make_project, tmp_path):
    fake = kling_account
    project = make_project(STORYBOARD)
    render(project)
    assert sum(fake.creates.values()) == 2 and len(kling_clips(project)) == 2
    charged = fake.charged_units

    shutil.rmtree(project / ".storyboard")
    output = render(project)
    assert sum(fake.creates.values()) == 2, dict(fake.creates)
    assert len(kling_clips(project)) == 2
    assert output.count("adopted (already paid)") == 2, output
    assert fake.charged_units == charged

    # A teammate's checkout: the project's sources only, no .storyboard/ and no out/.
    checkout = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(project, checkout, ignore=shutil.ignore_patterns(".storyboard", "out"))
    output = render(checkout)
    assert sum(fake.creates.values()) == 2 and len(kling_clips(checkout)) == 2
    assert "adopted (already paid)" in output

    # A copy of the whole folder, journal and clips included: plain reuse.
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(project, copy)
    output = render(copy)
    assert sum(fake.creates.values()) == 2 and len(kling_clips(copy)) == 2
    assert "adopted" not in output and "2 reused" in output
    assert fake.charged_units == charged
    assert not any(external_id.endswith("-2") for external_id in fake.creates), "no second attempt was ever sent"


def test_every_provider_error_kind_is_a_provider_error():
    """The CLI's ``except ProviderError`` keeps catching each kind the engine branches on."""
    kinds = (NeverArrived, Ambiguous, Rejected, ExternalIdInUse, RateLimited, AccountError, TaskFailed, DownloadFailed)
    for kind in kinds:
        error = kind("something happened", code=1201, hint="do this")
        assert isinstance(error, ProviderError) and str(error) == "something happened (Kling code 1201)\n  do this"
    assert Ambiguous("x").money_spent is None and NeverArrived("x").retryable and DownloadFailed("x").money_spent
    assert Rejected("x").money_spent is False and not AccountError("x").retryable
    assert issubclass(ExternalIdInUse, Rejected)
