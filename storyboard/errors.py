"""The error tree of storyboard.

Why a tree: the command line decides what to show and which exit code to use from the kind of
error alone, and the render engine decides what a failed call means for the money from the kind
alone (never from a provider's name, a ``details`` key or ``money_spent is None``)::

    StoryboardError
    ├── UserError                  the user can fix it; shown without a traceback, with a hint
    │   ├── StoryboardInvalid      every Problem of one pass, each at file:line:col
    │   └── BudgetExceeded         --max-cost cannot cover the next paid request
    ├── ProviderError              a provider (Kling) refused or failed a call
    │   ├── NeverArrived           provably not received (connect error, DNS, refused): safe to resend
    │   ├── Ambiguous              outcome unknown (read timeout after sending, 5000/5002 on a create):
    │   │                          look the task up by its external id before anything is sent again
    │   ├── Rejected               the API refused the body or parameters: nothing was spent
    │   │   └── ExternalIdInUse    a create refused because its external_task_id names an existing
    │   │                          task; that task is the one to adopt, never a reason to pay again
    │   ├── RateLimited            1302/1303, HTTP 429, 5001 maintenance: retry later, nothing spent
    │   ├── AccountError           auth, balance, permissions: stop every new create of the run
    │   ├── TaskFailed             accepted, then failed; ``units_charged`` says what it cost
    │   └── DownloadFailed         the result exists and is paid for, fetching it failed
    └── InternalError              a bug in storyboard: keep the traceback

``ProviderError`` keeps its fields for callers that show them (message, status, Kling ``code``,
``request_id``, ``money_spent``, ``retryable``, ``hint``, ``details``); each subclass sets the
defaults its kind implies. ``except ProviderError`` still catches every one of them.

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
    """A provider refused or failed a call; raise one of the subclasses where the kind is known.

    ``money_spent`` is the honest answer to "did this cost me?": ``False`` when the request never
    reached Kling or Kling refused it, ``True`` when a task ran, ``None`` when unknown; it is for
    display. ``retryable`` says whether the same call may be sent again after a back-off.
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


@dataclass
class NeverArrived(ProviderError):
    """The call provably never reached the provider (connect error, DNS, refused): safe to resend."""

    retryable: bool = True


@dataclass
class Ambiguous(ProviderError):
    """The call may have arrived and the answer was lost (read timeout, dropped line, 5000/5002).

    For a create it is unknown whether a task exists (and will be charged): look it up by its
    ``external_task_id`` before anything is sent again.
    """

    money_spent: bool | None = None
    retryable: bool = True


@dataclass
class Rejected(ProviderError):
    """The API refused the call's body or parameters (1200-1203, 1300, 1301): nothing was spent."""


@dataclass
class ExternalIdInUse(Rejected):
    """A create refused because its ``external_task_id`` is already used on the account.

    Why its own kind: the task it names was paid for by an earlier render (a deleted or copied
    journal), so it is adopted (followed and downloaded) instead of paid again under a new id.
    ``task_id`` is the existing task when the provider said which one.
    """

    task_id: str | None = None
    external_task_id: str = ""


@dataclass
class RateLimited(ProviderError):
    """The provider asked to come back later (1302/1303, HTTP 429, 5001): nothing was spent."""

    retryable: bool = True


@dataclass
class AccountError(ProviderError):
    """Credentials, balance or permissions (1000-1004, 1100-1103, 1304): no create of the run can succeed."""


@dataclass
class TaskFailed(ProviderError):
    """The provider accepted the task, then failed it; ``units_charged`` is what that cost (0 if free)."""

    task_id: str | None = None
    units_charged: float = 0.0


@dataclass
class DownloadFailed(ProviderError):
    """The task succeeded (and is paid for) but its result could not be fetched intact."""

    money_spent: bool | None = True
    retryable: bool = True


class InternalError(StoryboardError):
    """A bug in storyboard itself: keep and show the traceback."""


class JournalDamaged(UserError):
    """The journal could not be read (truncated, zeroed, overwritten); it was moved aside, not deleted.

    Why a user error and not a crash: every clip is still in the cache and every task still on the
    account, so ``storyboard journal repair`` rebuilds the record without paying for anything.
    ``moved_to`` is where the damaged file now lies (None when it could not be moved).
    """

    def __init__(self, message: str, hint: str = "", moved_to: str | None = None) -> None:
        super().__init__(message, hint)
        self.moved_to = moved_to


class HostUnreachable(UserError):
    """The provider's host refused or never answered, repeatedly: the run stopped sending to it.

    Why one error for the run (not one per request): with the host down every request would wait
    out its own connect and read timeouts one after another (minutes each); the engine stops new
    requests after a few such failures and says so once, naming ``host``.
    """

    def __init__(self, message: str, hint: str = "", host: str = "") -> None:
        super().__init__(message, hint)
        self.host = host


class DeadlineReached(UserError):
    """The run's ``--deadline`` passed: nothing new was sent after it; what was in flight is kept."""


def user_error_from_os(error: OSError) -> UserError:
    """An ``OSError`` from the disk as a user error: which path, what happened, what to do.

    Why at the command line's edge: a read-only ``out/``, ``out`` existing as a file, a full disk
    while downloading or assembling, a ``.storyboard`` that is not a folder each surfaced as a
    traceback, while nothing was lost (downloads and cuts are written under temporary names and
    renamed only when complete, so no partial file is left where a finished one is expected).
    """
    import errno
    from pathlib import Path

    path = error.filename if error.filename is not None else error.filename2
    where = str(path) if path is not None else "a file of the project"
    what = error.strerror or str(error) or type(error).__name__
    kept = "finished clips and cuts are kept, and no partial file is left as a finished one"
    code = error.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return UserError(f"the disk holding {where} is full ({what})",
                         hint=f"free some space (or move the project to a disk with room), then run again: {kept}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserError(f"cannot write {where}: {what}",
                         hint="make that folder writable (or work on a copy of the project in a folder you can write "
                              f"to), then run again: {kept}")
    if code in (errno.EEXIST, errno.ENOTDIR) and path is not None:
        blocker = next((p for p in (Path(path), *Path(path).parents) if p.exists() and not p.is_dir()), Path(path))
        return UserError(f"{blocker} is a file where storyboard needs a folder ({what})",
                         hint=f"move or rename {blocker} (storyboard keeps its state in .storyboard/ and writes cuts "
                              "into out/), then run again")
    if code == errno.ENAMETOOLONG:
        return UserError(f"a file name is too long for this file system: {where}",
                         hint="shorten the storyboard's name or the ids that name the output, then run again")
    if code == errno.ENOENT:
        return UserError(f"{where} does not exist ({what})",
                         hint="check that the path is there (it may have been moved or deleted during the run)")
    return UserError(f"{what}: {where}", hint=f"fix the file or folder named, then run again: {kept}")
