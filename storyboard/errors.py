"""The error tree of storyboard.

Why a tree: the command line decides what to show and which exit code to use from the kind of
error alone. Three families exist:

* ``UserError``: the user can fix it (a bad storyboard, a missing image, a budget too small).
  Shown without a traceback, always with what to do. ``StoryboardInvalid`` aggregates every
  ``Problem`` found in one pass, each located at ``file:line:col``.
* ``ProviderError``: a provider (Kling) refused or failed. Carries the HTTP status, the Kling
  business ``code``, the ``request_id`` and, crucially, whether money may have been spent.
* ``InternalError``: a bug in storyboard. Keep the traceback.

No error message may contain a secret: providers scrub their messages before raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, order=True)
class Location:
    """Where a problem is: a file, a 1-based line and column, and the dotted path inside the file."""

    file: str
    line: int = 0
    col: int = 0
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}" if self.path else where


Severity = Literal["error", "advisory"]


@dataclass(frozen=True)
class Problem:
    """One finding of the validator: an error (blocks planning) or an advisory (printed only)."""

    location: Location
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "advisory: "
        return f"{self.location}: {prefix}{self.message}"


class StoryboardError(Exception):
    """Base of every error storyboard raises on purpose."""


class UserError(StoryboardError):
    """Something the user can fix; shown without a traceback, with a hint on what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  {self.hint}" if self.hint else self.message


class StoryboardInvalid(UserError):
    """A storyboard (or campaign) failed validation; ``problems`` lists every finding, sorted."""

    def __init__(self, problems: list[Problem], partial: object | None = None) -> None:
        self.problems = sorted(problems, key=lambda p: (p.location, p.message))
        errors = [p for p in self.problems if p.severity == "error"]
        self.partial = partial
        """The loader's best-effort storyboard without the broken parts (a ``LoadedStoryboard``), so
        later checks can still report on the rest in the same run; None when nothing is left."""
        super().__init__(f"{len(errors)} problem(s) found")

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class BudgetExceeded(UserError):
    """The next paid request would exceed the hard budget (--max-cost); nothing was sent for it."""


@dataclass
class ProviderError(StoryboardError):
    """A provider refused or failed a call.

    ``money_spent`` is the honest answer to "did this cost me?": ``False`` when the request never
    reached Kling or Kling refused it, ``True`` when a task ran, ``None`` when unknown.
    ``retryable`` says whether the same call may be sent again after a back-off.
    """

    message: str
    status: int | None = None
    code: int | None = None
    request_id: str | None = None
    money_spent: bool | None = False
    retryable: bool = False
    hint: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        bits = [self.message]
        if self.code is not None:
            bits.append(f"(Kling code {self.code}" + (f", request {self.request_id})" if self.request_id else ")"))
        text = " ".join(bits)
        return f"{text}\n  {self.hint}" if self.hint else text


class InternalError(StoryboardError):
    """A bug in storyboard itself: keep and show the traceback."""
