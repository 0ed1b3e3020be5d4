"""The new-standard Kling wire (kling-api-2.md §7): model in the path, ``GET /tasks``, API key only.

Why a wire and not a second provider: the provider stays one ``kling`` (journal rows and clips are
keyed per provider name, and one storyboard may mix both APIs); ``KlingProvider`` hands each job
whose request says ``api: new`` to this object, which runs on the provider's own ``KlingHttp``
(same exchange, back-off, download, scrubbing and never-pay-twice create policy as the legacy
wire). What differs, and lives here:

* Auth is the API key only (§7.1): with only an AK/SK pair configured a request for this API is
  refused before anything is sent, with the fix (``KLINGAI_API_KEY``) in the message.
* The external id goes in ``options.external_task_id`` and comes back as ``external_id`` (§7.4);
  a top-level ``external_task_id`` would be silently ignored, leaving a lost create unfindable.
* Tasks are read with ``GET /tasks?task_ids=`` and found by external id with
  ``GET /tasks?external_task_ids=`` (§7.5, form 4 of §8): the answer is a list, and an unknown id is
  HTTP 200 with ``data: []``, i.e. "absent", never an error.
* Statuses are ``submitted | processing | succeeded | failed``; the video is the ``outputs[]``
  entry of type ``video`` (``url``, ``watermark_url``, ``duration`` a decimal string); the units
  charged are the ``billing[]`` amounts of ``charge_type: unit`` (a failed task reports ``"0"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from storyboard.errors import ExternalIdInUse, Rejected
from storyboard.render.providers.base import Job, TaskState, TaskStatus
from storyboard.render.providers.kling_bodies import concrete_body
from storyboard.render.providers.kling_http import _decimal, answered_with_older_task

if TYPE_CHECKING:
    from storyboard.render.providers.kling_http import KlingHttp

TASKS_PATH = "/tasks"

STANDARD_STATUSES: dict[str, TaskStatus] = {"submitted": "submitted", "processing": "processing",
                                            "succeeded": "succeed", "failed": "failed"}
"""The new API's statuses (note ``succeeded``) in the provider protocol's words; anything else is
read as still processing."""


def resolve_standard_body(job: Job) -> dict[str, Any]:
    """The plan's new-standard body made concrete, with this request's ``options.external_task_id``.

    Images become raw base64 (§7.3 takes "URL or base64"), element ids strings (§7.3 ``element``).
    """
    body = concrete_body(job, str)
    options = dict(body.get("options") or {})
    options["external_task_id"] = job.external_task_id
    body["options"] = options
    return body


def standard_task_state(data: dict[str, Any]) -> TaskState:
    """A ``TaskState`` from a new-standard task object (create ``data`` or one ``GET /tasks`` entry)."""
    outputs = data.get("outputs") or []
    video = next((o for o in outputs if isinstance(o, dict) and o.get("type") == "video"), {})
    status = STANDARD_STATUSES.get(str(data.get("status") or "submitted"), "processing")
    return TaskState(task_id=str(data.get("id", "")), status=status, video_url=video.get("url") or None,
                     units_charged=billed_units(data.get("billing")), message=str(data.get("message") or ""),
                     duration=_decimal(video.get("duration")), watermark_url=video.get("watermark_url") or None)


def billed_units(billing: Any) -> float | None:
    """Units taken from the resource pack (``charge_type: unit``), summed; None when nothing says.

    A ``cash`` charge is money, not units (its ``amount`` is a discounted price, §7.5), so it is not
    counted here: the engine then books the planned units, the same figure the plan priced.
    """
    if not isinstance(billing, list):
        return None
    amounts = [_decimal(item.get("amount")) for item in billing
               if isinstance(item, dict) and item.get("charge_type") == "unit"]
    known = [amount for amount in amounts if amount is not None]
    return sum(known) if known else None


class KlingStandardWire:
    """The new-standard wire of one ``KlingHttp`` (the provider): create, query, lookup, adopt."""

    def __init__(self, http: KlingHttp) -> None:
        self._http = http

    async def create(self, job: Job) -> TaskState:
        """POST the create under the shared never-pay-twice policy (look up before any re-send)."""
        http = self._http
        body = resolve_standard_body(job)
        endpoint = job.request.endpoint

        async def post(sent_at: float) -> TaskState:
            envelope = await http._exchange("POST", endpoint, body=body, during="create", api_key_only=True)
            data = envelope.get("data") or {}
            return answered_with_older_task(standard_task_state(data), data.get("create_time"), sent_at)

        async def find() -> TaskState | None:
            return await self._find(job.external_task_id)

        async def adopt(refusal: ExternalIdInUse) -> TaskState:
            return await self._adopt(job.external_task_id, refusal)

        return await http._create_with_policy(post, find, adopt, job.request.id)

    async def query(self, job: Job, task_id: str) -> TaskState:
        found = await self._tasks({"task_ids": task_id}, during="query", match=lambda t: str(t.get("id")) == task_id)
        if found is None:
            raise Rejected(
                message=f"Kling's new-standard API has no task {task_id} for {job.request.id}; nothing was charged "
                        "by this query.",
                hint="run again: the task is looked up by its external_task_id; if that fails too, check the "
                     "Kling console",
                details={"during": "query"},
            )
        return found

    async def lookup(self, job: Job, *, thorough: bool = True) -> TaskState | None:
        """Find the task by external id (``GET /tasks?external_task_ids=``, the one documented way).

        ``thorough`` changes nothing here: unlike the legacy API there is a single convention, and its
        miss (HTTP 200, ``data: []``) is authoritative.
        """
        return await self._find(job.external_task_id)

    async def _find(self, external_task_id: str) -> TaskState | None:
        return await self._tasks({"external_task_ids": external_task_id}, during="lookup",
                                 match=lambda t: t.get("external_id") in (None, external_task_id))

    async def _adopt(self, external_task_id: str, refusal: ExternalIdInUse) -> TaskState:
        """The existing task a refused create named (by the id in Kling's message, else by external id)."""
        state: TaskState | None = None
        if refusal.task_id:
            task_id = refusal.task_id
            state = await self._tasks({"task_ids": task_id}, during="lookup", match=lambda t: str(t.get("id")) == task_id)
        if state is None:
            state = await self._find(external_task_id)
        if state is None:
            raise replace(refusal, external_task_id=external_task_id,
                          message=refusal.message + " It could not be looked up, so nothing was adopted or re-sent.")
        return replace(state, adopted=True)

    async def _tasks(self, params: dict[str, str], *, during: str, match: Callable[[dict[str, Any]], bool]) -> TaskState | None:
        """The first task of a ``GET /tasks`` answer that ``match`` accepts; None for an empty list."""
        envelope = await self._http._read(TASKS_PATH, params=params, during=during, api_key_only=True)
        data = envelope.get("data")
        items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        for item in items:
            if isinstance(item, dict) and item.get("id") and match(item):
                return standard_task_state(item)
        return None
