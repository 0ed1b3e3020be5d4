"""Disk and permission faults are user errors: path, what happened, what to do, exit 1 (issue 16).

Through the CLI (typer's runner, in-process so the write at the edge can be faulted): ``out`` and
``.storyboard`` existing as files, a folder that cannot be written, a full disk while assembling
and while downloading a paid clip, and a missing ffmpeg. Each ends in one message and exit 1, no
traceback, no partial file where a finished one is expected, and a rerun recovers without paying.

The machine runs tests as root, where ``chmod`` does not stop a write, so "read-only" and "full"
are simulated by raising the real ``OSError`` (EROFS, ENOSPC) from the write itself; "a file where
a folder belongs" and the missing ffmpeg are real.
"""

from __future__ import annotations

import errno
import importlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storyboard.cli import _register_commands, app
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve

_register_commands()


STORYBOARD = """\
version: 1
name: Disk faults
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


@pytest.fixture
def project(make_project, no_keys):
    return make_project(STORYBOARD)


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # a message, not a traceback
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def finished_cuts(project: Path) -> list[Path]:
    out = project / "out"
    return sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else []


def test_out_existing_as_a_file_is_named_with_the_fix(project):
    (project / "out").write_text("not a folder")
    result = invoke("run", str(project), "--provider", "preview")
    assert_user_error(result, f"{project / 'out'} is a file where storyboard needs a folder", "move or rename")
    assert (project / "out").read_text() == "not a folder"  # left as it was


def test_a_state_folder_existing_as_a_file_is_named_with_the_fix(project):
    (project / ".storyboard").write_text("oops")
    result = invoke("render", str(project), "--provider", "preview")
    assert_user_error(result, f"{project / '.storyboard'} is a file where storyboard needs a folder")


def test_an_unwritable_out_folder_is_named_and_nothing_half_written_is_left(project, monkeypatch):
    assert invoke("render", str(project), "--provider", "preview").exit_code == 0
    import tempfile

    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to((project / "out").resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(importlib.import_module("storyboard.assemble.video").tempfile, "mkstemp", read_only)
    result = invoke("assemble", str(project), "--provider", "preview")
    assert_user_error(result, "cannot write", "Read-only file system", "make that folder writable")
    assert not [p for p in finished_cuts(project) if p.suffix == ".mp4"]


def test_a_full_disk_while_assembling_leaves_no_partial_cut_and_a_rerun_finishes(project, monkeypatch):
    assert invoke("render", str(project), "--provider", "preview").exit_code == 0
    video = importlib.import_module("storyboard.assemble.video")

    real_join = video.join_video

    def disk_full(sources, dest, *args, **kwargs):
        Path(dest).write_bytes(b"\x00" * 4096)  # half a cut, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))

    monkeypatch.setattr(video, "join_video", disk_full)
    result = invoke("assemble", str(project), "--provider", "preview")
    assert_user_error(result, "is full", "No space left on device", "free some space")
    leftovers = [p.name for p in finished_cuts(project) if p.suffix == ".mp4"]
    assert leftovers == [], leftovers  # neither a partial cut nor its temporary file

    monkeypatch.setattr(video, "join_video", real_join)
    assert invoke("assemble", str(project), "--provider", "preview").exit_code == 0
    assert [p for p in finished_cuts(project) if p.suffix == ".mp4"]


class _FullDiskFile:
    """A file whose writes fail with ENOSPC after the first chunk (the disk fills mid-download)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle = open(path, "wb")  # noqa: SIM115 - closed in __exit__
        self.written = 0

    def write(self, chunk: bytes) -> int:
        self.written += self.handle.write(chunk[: len(chunk) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def test_a_full_disk_while_downloading_a_paid_clip_then_the_rerun_fetches_it_without_paying(project, monkeypatch):
    fake = FakeKling(polls_to_finish=1)
    with serve(fake) as base_url:
        monkeypatch.setenv("KLINGAI_ACCESS_KEY", fake.access_key)
        monkeypatch.setenv("KLINGAI_SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("KLINGAI_BASE_URL", base_url)
        monkeypatch.setattr(importlib.import_module("storyboard.render.providers.kling_http"), "open",
                            lambda path, mode="r", *a, **k: _FullDiskFile(os.fspath(path)), raising=False)
        result = invoke("render", str(project), "--yes")
        assert_user_error(result, "is full", "No space left on device", "free some space")
        clips = project / ".storyboard" / "clips" / "kling"
        assert not list(clips.glob("*.mp4")) and not list(clips.glob(".*.part")), list(clips.iterdir())
        created = sum(fake.creates.values())
        assert created >= 1

        monkeypatch.undo()  # the disk has room again (and the keys are gone from this process' env)
        monkeypatch.setenv("KLINGAI_ACCESS_KEY", fake.access_key)
        monkeypatch.setenv("KLINGAI_SECRET_KEY", fake.secret_key)
        monkeypatch.setenv("KLINGAI_BASE_URL", base_url)
        again = invoke("render", str(project), "--yes")
        assert again.exit_code == 0, again.output
    assert sum(fake.creates.values()) == 2 and all(n == 1 for n in fake.creates.values()), dict(fake.creates)
    assert len(list(clips.glob("*.mp4"))) == 2


def test_a_missing_ffmpeg_is_named_with_the_fix(monkeypatch, tmp_path):
    """Where ffmpeg is needed (audio beds, loudness, last frames for chaining) a missing binary is a
    user error naming where it was looked for (the CLI shows every ``UserError`` as a message, exit 1)."""
    from storyboard.errors import UserError
    from storyboard.media import ffmpeg_exe

    missing = tmp_path / "no-such-ffmpeg"
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(missing))
    ffmpeg_exe.cache_clear()  # the path is looked up once per process
    with pytest.raises(UserError) as caught:
        ffmpeg_exe()
    assert f"ffmpeg was not found at {missing}" in caught.value.message and "IMAGEIO_FFMPEG_EXE" in caught.value.hint
    not_executable = tmp_path / "ffmpeg"
    not_executable.write_text("#!/bin/sh\n")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(not_executable))
    with pytest.raises(UserError):
        ffmpeg_exe()
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")
    ffmpeg_exe.cache_clear()
    assert Path(ffmpeg_exe()).is_file()
