"""Rebuild a project's journal from what outlives it: the clip cache and the tasks on the account.

Why it can be rebuilt: the journal is this folder's memory of what was claimed and paid, but the
two facts that matter for money live elsewhere too. A verified clip sits in the cache under its
request key (``.storyboard/clips/<provider>/<key>.mp4``, content-addressed by the plan), and every
paid task sits on the Kling account under the request's external id (``sb-<key40>``, then
``-2``, ``-3``… per attempt). So for each request of the plan, repair

- notes a clip found in the cache and verified against the request (as a render does when it
  reuses a clip without a row): nothing to fetch, nothing to pay;
- otherwise looks the request up on the account by its external ids, attempt after attempt, and
  adopts the task it finds (a ``submitted`` row marked adopted; the next render follows and
  downloads it, as its own); a task found failed is recorded as an earlier failure with its
  charge, and the next attempt's id is looked up;
- leaves alone a request the journal still has a row for (a healthy or partly readable journal).

Repair never sends a create, registers no element, downloads nothing: it only reads (GETs), so
it pays for nothing, and says so. A damaged journal is moved aside first (by the journal's own
integrity check, ``journal_check``), never deleted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from storyboard.errors import AccountError, JournalDamaged, ProviderError
from storyboard.plan import Plan, Request
from storyboard.render.engine import MAX_ATTEMPTS, _lock_project, is_free, verify_clip
from storyboard.render.journal import Journal, external_task_id_for
from storyboard.render.providers.base import Job, Provider
from storyboard.workspace import Workspace


@dataclass(frozen=True)
class AdoptedTask:
    request_id: str
    task_id: str
    status: str
    external_task_id: str


@dataclass
class RepairReport:
    """What repair found for each request of the plan, and where the damaged journal went."""

    journal: Path
    provider: str
    moved_aside: Path | None = None
    """The damaged journal's new name (None when the journal was readable or absent)."""
    clips: list[str] = field(default_factory=list)
    """Request ids whose verified clip is in the cache (recorded as reused)."""
    adopted: list[AdoptedTask] = field(default_factory=list)
    """Tasks found on the account by external id and adopted (followed and downloaded next render)."""
    earlier_failures: list[str] = field(default_factory=list)
    """Request ids with a failed task on the account (its charge recorded; the next attempt is new)."""
    kept: list[str] = field(default_factory=list)
    """Request ids the journal still had a row for (left as they were)."""
    missing: list[str] = field(default_factory=list)
    """Request ids with neither a clip nor a task: the next render creates (and pays for) them."""
    unchecked: list[tuple[str, str]] = field(default_factory=list)
    """(request id, why) for requests whose look-up failed: run repair again."""
    lookups: int = 0
    """GET requests made to the account (look-ups by external id)."""
    creates_sent: int = 0
    """Always 0: repair never sends a create (kept as a field so the report states it from a count)."""

    @property
    def recovered(self) -> int:
        return len(self.clips) + len(self.adopted)


async def repair(plan: Plan, project_dir: Path, provider: Provider) -> RepairReport:
    """Rebuild ``project_dir``'s journal for ``plan`` from the clip cache and ``provider``'s account.

    Holds the project's render lock (no render may write the journal meanwhile). Raises
    ``JournalDamaged`` only when the damaged journal could not be moved aside.
    """
    project_dir = Path(project_dir)
    workspace = Workspace.at(project_dir)
    report = RepairReport(journal=workspace.journal_file, provider=provider.name)
    lock = _lock_project(project_dir)
    try:
        try:
            journal = Journal.open(project_dir)
        except JournalDamaged as error:
            if error.moved_to is None:
                raise
            report.moved_aside = Path(error.moved_to)
            journal = Journal.open(project_dir)
        with journal:
            for request in plan.requests:
                await _repair_request(request, project_dir, workspace, provider, journal, report)
    finally:
        lock.close()
    return report


async def _repair_request(request: Request, project_dir: Path, workspace: Workspace, provider: Provider,
                          journal: Journal, report: RepairReport) -> None:
    name = provider.name
    if journal.get(name, request.key) is not None:
        report.kept.append(request.id)
        return
    clip = workspace.clip(name, request.key)
    if clip.is_file() and await asyncio.to_thread(verify_clip, clip, request) is None:
        journal.record_reused_clip(name, request.key, request.id, request.external_task_id, str(clip))
        report.clips.append(request.id)
        return
    if is_free(provider):
        report.missing.append(request.id)
        return
    for attempt in range(1, MAX_ATTEMPTS + 1):
        external_id = external_task_id_for(request.external_task_id, attempt)
        job = Job(request=request.model_copy(update={"external_task_id": external_id}), project_dir=project_dir)
        report.lookups += 1
        try:
            found = await provider.lookup(job, thorough=True)
        except AccountError:
            raise
        except ProviderError as error:
            report.unchecked.append((request.id, str(error).splitlines()[0]))
            return
        if found is None:
            if attempt == 1:
                report.missing.append(request.id)
            return
        journal.adopt(name, request.key, request.id, external_id, attempt, found.task_id, request.units, None)
        if found.status == "failed":
            units = found.units_charged or 0.0
            journal.mark_failed(name, request.key,
                                f"an earlier render's task {found.task_id} had failed: {found.message or 'no reason given'}",
                                money_spent=units > 0, units=units or None)
            report.earlier_failures.append(request.id)
            continue
        report.adopted.append(AdoptedTask(request.id, found.task_id, found.status, external_id))
        return


def describe(report: RepairReport) -> list[str]:
    """The report as lines for a person: what was recovered, what is left, and that nothing was paid."""
    lines = []
    if report.moved_aside is not None:
        lines.append(f"the damaged journal was moved aside to {report.moved_aside} (kept)")
    lines.append(f"journal {report.journal} rebuilt for {report.provider}: {report.recovered} request(s) recovered")
    if report.clips:
        lines.append(f"  {len(report.clips)} clip(s) found in the cache: {', '.join(report.clips)}")
    for task in report.adopted:
        lines.append(f"  {task.request_id}: task {task.task_id} ({task.status}) found on the account under "
                     f"{task.external_task_id}, adopted: the next render downloads it without paying again")
    if report.earlier_failures:
        lines.append(f"  {len(report.earlier_failures)} earlier failed task(s) recorded: "
                     f"{', '.join(report.earlier_failures)}")
    if report.kept:
        lines.append(f"  {len(report.kept)} request(s) already in the journal, left as they were")
    if report.missing:
        lines.append(f"  {len(report.missing)} request(s) neither in the cache nor on the account "
                     f"(the next render creates them): {', '.join(report.missing)}")
    for request_id, why in report.unchecked:
        lines.append(f"  {request_id}: the account could not be checked ({why}); run repair again")
    lines.append(f"nothing was paid: {report.creates_sent} creates sent, {report.lookups} look-up(s) made")
    return lines
