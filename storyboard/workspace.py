"""The project folder: the one owner of every path storyboard reads or writes in it.

Why one owner: the journal, the clip cache, the frame cache, the render lock, the assembler's
scratch space and the cuts in ``out/`` were each spelled where they were first needed, so a rule
such as "a preview cut never takes a paid cut's file name" had no single place to live. Every
stage asks a ``Workspace`` for its paths; no other module spells ``.storyboard``.

Layout (relative to the project folder)::

    .storyboard/journal.sqlite          the journal (claims, tasks, charges), unless STORYBOARD_JOURNAL names a shared one
    .storyboard/render.lock             one render per project at a time
    .storyboard/clips/<provider>/<key>.mp4   verified clips, content-addressed per provider
    .storyboard/clips/<provider>/<key>.watermarked.mp4   Kling's watermarked copy, when asked for
    .storyboard/frames/<key>.png        last frames for chaining
    .storyboard/preview-work/           the preview provider's cache
    .storyboard/assemble-work/          the assembler's scratch files
    .storyboard/outputs.json            what each written output was made from (incremental runs)
    out/<cut>.mp4 …                     cuts made from paid clips
    out/preview/<cut>.mp4 …             cuts made from free preview clips (never a paid cut's name)

A workspace is a value: it does no I/O until a method that says so is called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

STATE_DIR = ".storyboard"
OUT_DIR = "out"


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class Workspace:
    """The paths of one project (or campaign) folder."""

    root: Path

    @classmethod
    def at(cls, root: Path | str) -> Workspace:
        return cls(Path(root))

    # ---------------------------------------------------------------- state (.storyboard/)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def journal_file(self) -> Path:
        return self.state_dir / "journal.sqlite"

    @property
    def render_lock(self) -> Path:
        return self.state_dir / "render.lock"

    @property
    def preview_work_dir(self) -> Path:
        return self.state_dir / "preview-work"

    @property
    def assemble_work_dir(self) -> Path:
        return self.state_dir / "assemble-work"

    @property
    def outputs_record(self) -> Path:
        return self.state_dir / "outputs.json"

    def clips_dir(self, provider: str) -> Path:
        return self.state_dir / "clips" / provider

    def clip(self, provider: str, key: str) -> Path:
        """Clips are content-addressed per provider: a preview clip never satisfies a Kling request."""
        return self.clips_dir(provider) / f"{key}.mp4"

    def watermarked_clip(self, provider: str, key: str) -> Path:
        """The watermarked copy Kling made of a clip when asked (a side file, never assembled)."""
        return self.clips_dir(provider) / f"{key}.watermarked.mp4"

    def frame(self, key: str) -> Path:
        return self.state_dir / "frames" / f"{key}.png"

    def rendered_clips(self, provider: str, requests: Iterable[_Keyed]) -> dict[str, Path]:
        """Request key → clip, for those of ``requests`` this provider has rendered (reads the disk).

        A clip is renamed into place only after it was verified, so existing means usable.
        """
        clips: dict[str, Path] = {}
        for request in requests:
            path = self.clip(provider, request.key)
            if path.is_file():
                clips[request.key] = path
        return clips

    def has_rendered_anything(self) -> bool:
        """Whether any clip (of any provider) or any output record is on disk (reads the disk).

        Why: a journal that is empty or missing while clips exist has lost its record; the journal's
        integrity check tells that apart from a project that never rendered.
        """
        clips = self.state_dir / "clips"
        if self.outputs_record.is_file():
            return True
        return clips.is_dir() and any(clips.glob("*/*.mp4"))

    # ---------------------------------------------------------------- outputs (out/)

    @property
    def out_dir(self) -> Path:
        return self.root / OUT_DIR

    def cuts_dir(self, free: bool) -> Path:
        """Where cuts go: paid clips' cuts in ``out/``, free previews' in ``out/preview/``."""
        return self.out_dir / "preview" if free else self.out_dir

    # ---------------------------------------------------------------- files the project names

    def outside(self, named: str) -> Path | None:
        """The real path of a file the storyboard names, when it lies outside the project folder.

        Why real paths: a board received from someone else may name ``/home/me/secret.png``,
        ``../../elsewhere.jpg`` or a symlink inside the project that points out of it; each is
        uploaded to Kling like a project file, so each is judged after every symlink is resolved.
        None when the file is inside the project (or cannot be resolved: other checks report it).
        """
        try:
            real = Path(os.path.realpath(self.root / named))
            root = Path(os.path.realpath(self.root))
        except (OSError, ValueError):
            return None
        return None if real == root or real.is_relative_to(root) else real
