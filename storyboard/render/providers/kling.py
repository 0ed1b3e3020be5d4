"""The Kling client: the only code that talks to Kling's legacy ``/v1`` HTTP API.

Why it is shaped like this (kling-api.md §1, §2, §9, §10; ARCHITECTURE.md "Never pay twice"):

* Errors are decided on the envelope's business ``code``, never on the HTTP status: the fatal
  1100/1101/1102/1304 share HTTP 429 with the retryable 1302/1303.
* Every failure is raised as one kind of ``storyboard.errors`` (``NeverArrived``, ``Ambiguous``,
  ``Rejected``, ``ExternalIdInUse``, ``RateLimited``, ``AccountError``, ``TaskFailed``,
  ``DownloadFailed``): the engine decides from the kind alone what the failure means for money.
* A create (the call that costs money) is never retried blindly. It is re-sent only when it
  provably never arrived (connect error) or Kling refused it for rate/concurrency (1302/1303).
  After an ambiguous outcome (read timeout after sending, dropped connection, 5000/5002) the task
  is first looked up by its ``external_task_id``; only a lookup proving it absent allows a re-send.
* A create refused because its ``external_task_id`` is already used (1201 "... is already used by
  task N"), or answered with a task that existed before it was sent, is *adopted*: that task was
  paid for by an earlier render (a deleted or copied journal), so it is returned marked
  ``adopted`` and followed like our own, and nothing is sent under a new id.
* Looking a task up by ``external_task_id`` has three conventions in the wild on the legacy API
  (kling-api-2.md §8): the path slot (documented), a ``?external_task_id=`` list filter, and
  ``/{id}?external_task_id=true``. They are tried in that order, and the first that finds a task
  is remembered for the client, whose misses are then trusted.
* Reads (queries, lookups, downloads) are idempotent, so they retry with exponential back-off and
  jitter. The retry loops are small and explicit rather than ``tenacity``: the create policy
  branches on *what* failed (never arrived / refused / ambiguous → look up first), which is
  clearer as code than as a retry predicate, and it needs no new dependency.
* Secrets (access key, secret key, API key, JWTs) never leave this module: the credentials hide
  them from ``repr`` and every message built from Kling or httpx text is scrubbed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import jwt
from dotenv import dotenv_values

from storyboard.errors import (
    AccountError,
    Ambiguous,
    DownloadFailed,
    ExternalIdInUse,
    InternalError,
    NeverArrived,
    ProviderError,
    RateLimited,
    Rejected,
    TaskFailed,
)
from storyboard.plan import ELEMENT_SCHEME, FRAME_SCHEME, IMAGE_SCHEME, VOICE_SCHEME, ElementRegistration, VoiceRegistration
from storyboard.render.providers.base import Job, TaskState, TaskStatus

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
ELEMENTS_PATH = "/v1/general/advanced-custom-elements"
VOICES_PATH = "/v1/general/custom-voices"

TOKEN_LIFETIME = 1800
"""Seconds a JWT is valid (the official sample's 30 minutes)."""
TOKEN_REFRESH_MARGIN = 300
"""Regenerate the JWT this many seconds before it expires, so no request carries a dying token."""

AUTH_CODES = frozenset({1000, 1001, 1002, 1003, 1004})
ACCOUNT_CODES = frozenset({1100, 1101, 1102, 1103, 1304}) | AUTH_CODES
"""Codes that stop every further create of the run: retrying or sending more cannot succeed."""
RATE_CODES = frozenset({1302, 1303})
"""Kling refused the call for rate or concurrency (nothing created, nothing charged): send again later."""
MAINTENANCE_CODES = frozenset({5001})
"""Kling is down for maintenance: nothing charged; a create is still looked up before a re-send."""
AMBIGUOUS_CODES = frozenset({5000, 5002})
"""The server failed mid-way: a create may or may not exist. Look it up before re-sending."""
ABSENT_CODES = frozenset({1201, 1203})
"""What an unknown task id is answered with (404/1203 or 400/1201: undocumented, §14)."""

EXTERNAL_ID_IN_USE = re.compile(
    r"external[_ ]task[_ ]id.*?(already (been )?used|already exists?|duplicate|must be unique|not unique)",
    re.IGNORECASE | re.DOTALL)
"""A 1201 that refuses a create because its external id names an existing task (kling-api.md §14)."""
EXISTING_TASK_ID = re.compile(r"(?:by|as|to)\s+task(?:[ _]?id)?\s*[:#=]?\s*['\"]?([0-9]{6,})",
                              re.IGNORECASE)
"""The existing task's id inside that message ("... is already used by task 866123..."), when given."""

EXISTING_TASK_MARGIN = 600.0
"""A create answered with a task created this many seconds before it was sent answers with an older
task (Kling's "return the existing task" behaviour), not a new one; generous for clock skew."""

LookupConvention = Literal["path", "list_filter", "flag"]
LOOKUP_CONVENTIONS: tuple[LookupConvention, ...] = ("path", "list_filter", "flag")
"""How the legacy API may find a task by external id (kling-api-2.md §8), in the order tried:
``GET {family}/{id}`` (documented), ``GET {family}?external_task_id={id}`` (a list filter, paged),
``GET {family}/{id}?external_task_id=true``."""
LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_PAGES = 50
"""The list filter is paged (a server that ignores the filter lists every task, newest first):
at most this many pages of this size are read, the account's 5000 newest tasks."""

JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")
BEARER_PATTERN = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)

Sleep = Callable[[float], Awaitable[None]]


# --------------------------------------------------------------------------------------------
# Credentials and auth


@dataclass(frozen=True)
class KlingCredentials:
    """Where to reach Kling and how to prove who we are. The secrets never appear in ``repr``."""

    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        if not self.api_key and not (self.access_key and self.secret_key):
            raise ValueError("Kling credentials need KLINGAI_ACCESS_KEY + KLINGAI_SECRET_KEY, or KLINGAI_API_KEY")

    @property
    def kind(self) -> str:
        return "access key + secret key (JWT)" if self.access_key and self.secret_key else "API key"

    def __repr__(self) -> str:
        return f"KlingCredentials(kind={self.kind!r}, base_url={self.base_url!r})"

    def secrets(self) -> list[str]:
        """Every secret string, for scrubbing text that leaves the client."""
        return [s for s in (self.access_key, self.secret_key, self.api_key) if s]

    @classmethod
    def from_env(cls, project_dir: Path | None = None, environ: dict[str, str] | None = None) -> KlingCredentials | None:
        """Credentials from the environment, else from ``<project_dir>/.env``; None when none are set.

        The ``.env`` file is read with ``dotenv_values`` so it never pollutes ``os.environ`` (other
        projects rendered by the same process must not inherit these keys). Real environment
        variables win over the file, the usual dotenv convention.
        """
        values: dict[str, str] = {}
        if project_dir is not None:
            env_file = Path(project_dir) / ".env"
            if env_file.is_file():
                values.update({k: v for k, v in dotenv_values(env_file).items() if v})
        source = os.environ if environ is None else environ
        values.update({k: v for k, v in source.items() if k.startswith("KLINGAI_") and v})
        access, secret, api_key = (values.get(k, "").strip() for k in ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY"))
        base_url = values.get("KLINGAI_BASE_URL", "").strip().rstrip("/") or DEFAULT_BASE_URL
        if access and secret:
            return cls(access_key=access, secret_key=secret, api_key=api_key or None, base_url=base_url)
        if api_key:
            return cls(api_key=api_key, base_url=base_url)
        return None


class KlingAuth:
    """Makes the ``Authorization`` header: a cached HS256 JWT (§1.1) or the static API key (§1.2)."""

    def __init__(self, credentials: KlingCredentials, clock: Callable[[], float] = time.time) -> None:
        self._credentials = credentials
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    @property
    def can_regenerate(self) -> bool:
        return bool(self._credentials.access_key and self._credentials.secret_key)

    def token(self, force_new: bool = False) -> str:
        creds = self._credentials
        if not self.can_regenerate:
            return creds.api_key or ""
        now = self._clock()
        if force_new or self._token is None or now >= self._expires_at - TOKEN_REFRESH_MARGIN:
            issued = int(now)
            claims = {"iss": creds.access_key, "exp": issued + TOKEN_LIFETIME, "nbf": issued - 5}
            self._token = jwt.encode(claims, creds.secret_key, algorithm="HS256", headers={"typ": "JWT"})
            self._expires_at = issued + TOKEN_LIFETIME
        return self._token

    def header(self, force_new: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(force_new)}"}

    def scrub(self, text: str) -> str:
        """``text`` with every secret, token and bearer value replaced by ``***``."""
        for secret in self._credentials.secrets() + ([self._token] if self._token else []):
            text = text.replace(secret, "***")
        text = JWT_PATTERN.sub("***", text)
        return BEARER_PATTERN.sub(r"\1***", text)


# --------------------------------------------------------------------------------------------
# Errors in plain words


def _code_message(code: int, kling_message: str) -> tuple[str, str]:
    """(what happened, what to do) for a Kling business code. Kling's own text is appended."""
    said = f" Kling said: {kling_message!r}." if kling_message else ""
    if code in AUTH_CODES:
        what = {
            1001: "Kling received no credentials",
            1003: "Kling says the token is not valid yet (this computer's clock is probably ahead)",
            1004: "Kling says the token has expired (this computer's clock is probably behind)",
        }.get(code, "Kling rejected the credentials")
        return (f"{what}; nothing was charged.{said}",
                "check KLINGAI_ACCESS_KEY and KLINGAI_SECRET_KEY (or KLINGAI_API_KEY) and the system clock, then run again")
    table = {
        1100: ("your Kling account is flagged as abnormal; nothing was charged.", "check the account in the Kling console or contact Kling support, then run again"),
        1101: ("your Kling account is in arrears; nothing was charged.", "top up the account in the Kling console, then run again"),
        1102: ("your Kling resource pack is used up (or expired); nothing was charged for this request.", "buy units, then run again"),
        1103: ("your Kling account has no permission for this API or model; nothing was charged.", "enable the model for your account, or choose another model"),
        1200: ("Kling rejected the request as invalid; nothing was charged.", "this is probably a storyboard bug: report it with the plan"),
        1201: ("Kling rejected a parameter of the request; nothing was charged.", "change the storyboard field named in Kling's message, then run again"),
        1202: ("Kling rejected the request method; nothing was charged.", "this is a storyboard bug: report it"),
        1203: ("Kling says the requested resource does not exist (e.g. the model); nothing was charged.", "check the model name, then run again"),
        1300: ("Kling's platform policy refused the request; nothing was charged.", "change the prompt or images, then run again"),
        1301: ("Kling's content-safety check refused the prompt or an image; nothing was charged.", "change the prompt or images of this request, then run again"),
        1302: ("Kling is rate-limiting requests; nothing was charged.", "wait a minute and run again"),
        1303: ("your Kling resource pack's parallel task limit is reached; nothing was charged.", "wait for running tasks to finish or lower --concurrency, then run again"),
        1304: ("Kling's IP whitelist refused this computer's address; nothing was charged.", "add this IP to the whitelist in the Kling console, then run again"),
        5000: ("Kling had an internal error; it is unknown whether the task was created.", "run again: the task is looked up before anything is re-sent"),
        5001: ("Kling is temporarily unavailable (maintenance); nothing was charged.", "wait and run again"),
        5002: ("Kling timed out internally; it is unknown whether the task was created.", "run again: the task is looked up before anything is re-sent"),
    }
    what, todo = table.get(code, (f"Kling answered with error code {code}.", "run again later; if it persists, report it"))
    return what + said, todo


def _kling_error(code: int, message: str, status: int, request_id: str | None, auth: KlingAuth, *, during: str) -> ProviderError:
    """The typed error for a Kling business ``code`` (decided on the code, never on the HTTP status)."""
    said = auth.scrub(message or "")
    what, todo = _code_message(code, said)
    common: dict[str, Any] = {"message": what, "status": status, "code": code, "request_id": request_id,
                              "hint": todo, "details": {"during": during}}
    if code in ACCOUNT_CODES:
        return AccountError(**common)
    if code in RATE_CODES or code in MAINTENANCE_CODES:
        return RateLimited(**common)
    if code in AMBIGUOUS_CODES or code >= 5000:
        # A read that failed on the server spent nothing; only a create's outcome is unknown.
        return Ambiguous(**common, money_spent=None if during == "create" else False)
    if during == "create" and code == 1201 and EXTERNAL_ID_IN_USE.search(said):
        found = EXISTING_TASK_ID.search(said)
        common["message"] = (f"Kling says this request's external_task_id is already used"
                             f"{f' by task {found.group(1)}' if found else ''}: an earlier render already paid for it."
                             f" Kling said: {said!r}.")
        common["hint"] = ("nothing was sent again; run again to look the task up and download it, or find it "
                          "in the Kling console")
        return ExternalIdInUse(**common, task_id=found.group(1) if found else None)
    return Rejected(**common)


# --------------------------------------------------------------------------------------------
# Bodies


def resolve_body(job: Job) -> dict[str, Any]:
    """The plan's body with placeholders made concrete, plus this attempt's ``external_task_id``.

    ``image://`` and ``frame://`` become the raw base64 of the file (no ``data:`` prefix, §2);
    ``element://`` becomes the int ``element_id``. Nothing else changes: the body sent is the body
    that was priced and shown.
    """
    cache: dict[str, Any] = {}

    def concrete(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: concrete(v) for k, v in value.items()}
        if isinstance(value, list):
            return [concrete(v) for v in value]
        if isinstance(value, str):
            if value.startswith((IMAGE_SCHEME, FRAME_SCHEME)):
                if value not in cache:
                    path = job.images.get(value)
                    if path is None:
                        raise InternalError(f"request {job.request.id}: no file for placeholder {value}")
                    cache[value] = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                return cache[value]
            if value.startswith(ELEMENT_SCHEME):
                if value not in job.elements:
                    raise InternalError(f"request {job.request.id}: element {value} is not registered")
                return int(job.elements[value])
        return value

    body = concrete(job.request.body)
    body["external_task_id"] = job.external_task_id
    return body


TASK_STATUSES: dict[str, TaskStatus] = {"submitted": "submitted", "processing": "processing",
                                        "succeed": "succeed", "failed": "failed"}
"""Kling's task statuses (note ``succeed``); anything else is read as still processing."""


def task_state(data: dict[str, Any]) -> TaskState:
    """A ``TaskState`` from a task object (create or query ``data``, §9.1/§9.2).

    The video's ``duration`` is a decimal string of seconds (legacy ``"5.1"``, new API ``"5.041"``,
    kling-api-2.md §9): kept as Kling reports it, so a download is checked against it.
    """
    result = data.get("task_result") or {}
    videos = result.get("videos") or []
    video = videos[0] if videos and isinstance(videos[0], dict) else {}
    status = TASK_STATUSES.get(str(data.get("task_status") or "submitted"), "processing")
    return TaskState(task_id=str(data.get("task_id", "")), status=status, video_url=video.get("url"),
                     units_charged=_decimal(data.get("final_unit_deduction")),
                     message=data.get("task_status_msg") or "", duration=_decimal(video.get("duration")))


def _decimal(value: Any) -> float | None:
    """Kling's decimal strings (``"1.8"``, ``"5.041"``) as floats; None when absent or not a number."""
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _created_at_seconds(data: dict[str, Any]) -> float | None:
    created = data.get("created_at")
    return created / 1000.0 if isinstance(created, (int, float)) and created > 0 else None


def _external_id_of(data: dict[str, Any]) -> str | None:
    return (data.get("task_info") or {}).get("external_task_id")


# --------------------------------------------------------------------------------------------
# The provider


MAX_ELEMENT_ATTEMPTS = 20
"""Registrations of one element tried before giving up (each failed one keeps its external id)."""


class KlingProvider:
    """``providers.base.Provider`` over Kling's legacy HTTP API."""

    name = "kling"
    free = False

    def __init__(
        self,
        credentials: KlingCredentials,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        max_read_attempts: int = 6,
        max_create_refusals: int = 10,
        max_create_ambiguous: int = 3,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        element_poll_interval: float = 3.0,
        element_poll_limit: int = 200,
        lookup_page_size: int = LOOKUP_PAGE_SIZE,
        lookup_max_pages: int = LOOKUP_MAX_PAGES,
    ) -> None:
        self._credentials = credentials
        self._auth = KlingAuth(credentials, clock)
        self._clock = clock
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            base_url=credentials.base_url,
            transport=transport,
            timeout=httpx.Timeout(60.0, connect=15.0),
            follow_redirects=True,
        )
        self._base_host = urlsplit(credentials.base_url).netloc
        self._sleep = sleep
        self._jitter = jitter
        self.max_read_attempts = max_read_attempts
        self.max_create_refusals = max_create_refusals
        self.max_create_ambiguous = max_create_ambiguous
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.element_poll_interval = element_poll_interval
        self.element_poll_limit = element_poll_limit
        self.lookup_page_size = lookup_page_size
        self.lookup_max_pages = lookup_max_pages
        self.lookup_convention: LookupConvention | None = None
        """The external-id lookup convention that found a task on this account (None until one has)."""

    @classmethod
    def for_project(cls, project_dir: Path, **options: Any) -> KlingProvider:
        """The client for a project: credentials from the environment, else the project's ``.env``."""
        credentials = KlingCredentials.from_env(project_dir)
        if credentials is None:
            from storyboard.errors import UserError

            raise UserError(
                "no Kling credentials are configured",
                hint="set KLINGAI_ACCESS_KEY and KLINGAI_SECRET_KEY (or KLINGAI_API_KEY) in the environment "
                "or in the project's .env file, or use --provider preview",
            )
        return cls(credentials, **options)

    def __repr__(self) -> str:
        return f"KlingProvider(base_url={self._credentials.base_url!r}, auth={self._credentials.kind!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def scrub(self, text: str) -> str:
        return self._auth.scrub(text)

    # ---- one HTTP exchange ------------------------------------------------------------------

    async def _backoff(self, attempt: int, base: float | None = None) -> None:
        """Exponential back-off with jitter: base·2^attempt, capped, times a factor in [0.5, 1)."""
        delay = min(self.backoff_cap, (base or self.backoff_base) * (2 ** attempt))
        await self._sleep(delay * (0.5 + self._jitter() / 2))

    async def _exchange(self, method: str, path: str, *, body: dict | None = None,
                        params: dict | None = None, during: str) -> dict[str, Any]:
        """Send once (plus one token regeneration on an auth error); return the envelope.

        Raises ``NeverArrived`` on a connect failure, ``Ambiguous`` when the request may have
        arrived but no usable answer came back, and the typed error of a Kling error code.
        """
        regenerated = False
        details = {"during": during}
        while True:
            headers = {"Content-Type": "application/json", **self._auth.header(force_new=regenerated)}
            try:
                response = await self._client.request(method, path, json=body, params=params, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise NeverArrived(self.scrub(f"{type(exc).__name__}: {exc}"), details=details) from None
            except httpx.TransportError as exc:  # read/write timeout, dropped connection, protocol error
                raise Ambiguous(self.scrub(f"{type(exc).__name__}: {exc}"), details=details,
                                money_spent=None if during == "create" else False) from None
            try:
                envelope = response.json()
                if not isinstance(envelope, dict) or "code" not in envelope:
                    raise ValueError("no envelope")
            except (ValueError, json.JSONDecodeError):
                status = response.status_code
                if status == 429:
                    raise RateLimited(f"Kling answered HTTP 429 during {during}; nothing was charged.", status=status,
                                      hint="wait a minute and run again", details=details) from None
                if status == 404:
                    envelope = {"code": 1203, "message": "not found"}
                elif status >= 500 or during == "create":
                    raise Ambiguous(f"Kling answered HTTP {status} with no readable body during {during}.",
                                    status=status, money_spent=None if during == "create" else False,
                                    hint="run again later; if it persists, check KLINGAI_BASE_URL",
                                    details=details) from None
                else:
                    raise Rejected(f"Kling answered HTTP {status} with no readable body during {during}.",
                                   status=status, hint="run again later; if it persists, check KLINGAI_BASE_URL",
                                   details=details) from None
            code = int(envelope.get("code", -1))
            if code == 0:
                return envelope
            if code in AUTH_CODES and not regenerated and self._auth.can_regenerate and code != 1001:
                regenerated = True
                continue
            raise _kling_error(code, str(envelope.get("message", "")), response.status_code,
                               envelope.get("request_id"), self._auth, during=during)

    async def _read(self, path: str, *, params: dict | None = None, during: str) -> dict[str, Any]:
        """An idempotent GET with back-off on transport errors, 1302/1303, 5000-5002 and HTTP 429."""
        last: ProviderError | None = None
        for attempt in range(self.max_read_attempts):
            try:
                return await self._exchange("GET", path, params=params, during=during)
            except (NeverArrived, Ambiguous, RateLimited) as exc:
                last = exc
            if attempt + 1 < self.max_read_attempts:
                await self._backoff(attempt)
        if last is not None and last.code is not None:
            raise last
        kind = NeverArrived if isinstance(last, NeverArrived) else Ambiguous
        raise kind(
            message=f"could not reach Kling during {during} after {self.max_read_attempts} attempts ({last}); "
                    "nothing new was charged.",
            money_spent=False, hint="check the network, then run again (finished work is kept)",
            details={"during": during},
        )

    # ---- tasks --------------------------------------------------------------------------------

    async def create(self, job: Job) -> TaskState:
        """Submit the request (the paid call) under the never-pay-twice policy."""
        if job.request.api != "legacy":
            # A new-standard body sent here would carry a top-level external_task_id, which that
            # API ignores: a lost create could then be neither found nor adopted. Refuse it.
            raise Rejected(
                message=f"{job.request.id} is planned for Kling's new-standard API, which this client does not speak; "
                "nothing was sent.",
                hint="set api: legacy on its shots (kling-v3-turbo has no legacy form), or use --provider preview",
                details={"during": "create"},
            )
        return await self._create(job.request.endpoint, resolve_body(job), job.external_task_id, job.request.id)

    async def _create(self, endpoint: str, body: dict[str, Any], external_task_id: str, label: str) -> TaskState:
        """POST a create; re-send only what provably did not arrive; adopt a task that already existed."""
        refusals = ambiguous = 0
        first_sent = self._clock()
        while True:
            try:
                envelope = await self._exchange("POST", endpoint, body=body, during="create")
                return self._created(envelope.get("data") or {}, first_sent)
            except NeverArrived:
                refusals += 1
                if refusals > self.max_create_refusals:
                    raise NeverArrived(
                        message=f"could not reach Kling to submit {label}; nothing was charged.",
                        hint="check the network and KLINGAI_BASE_URL, then run again", details={"during": "create"},
                    ) from None
                await self._backoff(refusals - 1)
                continue
            except ExternalIdInUse as exc:
                return await self._adopt(endpoint, external_task_id, exc)
            except RateLimited as exc:
                if exc.code not in MAINTENANCE_CODES:
                    refusals += 1
                    if refusals > self.max_create_refusals:
                        raise
                    await self._backoff(refusals - 1)
                    continue
                reason = str(exc)  # 5001 too is looked up first: cheap, and safe whatever the server did
            except Ambiguous as exc:
                reason = str(exc)
            # The create may have arrived: never send it again before proving it did not.
            ambiguous += 1
            try:
                found = await self._lookup(endpoint, external_task_id, thorough=True)
            except ProviderError as exc:
                raise Ambiguous(
                    message=(f"the submission of {label} got no clear answer ({reason}) and the follow-up lookup "
                             f"failed too; it is unknown whether Kling charged for it."),
                    hint="run again later: the task is looked up by its external_task_id before anything is re-sent",
                    details={"during": "create"},
                ) from exc
            if found is not None:
                return found
            if ambiguous > self.max_create_ambiguous:
                raise Ambiguous(
                    message=f"Kling kept failing to accept {label} ({reason}); lookups show no task, so nothing was charged.",
                    money_spent=False, hint="run again later", details={"during": "create"},
                )
            await self._backoff(ambiguous - 1)

    def _created(self, data: dict[str, Any], sent_at: float) -> TaskState:
        """The task a create answered with, marked adopted when it existed before the create was sent.

        Kling may answer a reused external id with the existing task instead of a refusal
        (kling-api-2.md §8). A new task is always ``submitted`` in a create's answer (§9.1), so any
        other status, or a creation time well before the request was sent, is an older task.
        """
        state = task_state(data)
        created_at = _created_at_seconds(data)
        older = created_at is not None and created_at < sent_at - EXISTING_TASK_MARGIN
        return replace(state, adopted=True) if state.status != "submitted" or older else state

    async def _adopt(self, endpoint: str, external_task_id: str, refusal: ExternalIdInUse) -> TaskState:
        """The existing task a refused create named (by the id in Kling's message, else by external id)."""
        state: TaskState | None = None
        if refusal.task_id:
            state = await self._task_at(f"{endpoint}/{refusal.task_id}", None, external_task_id)
        if state is None:
            state = await self._lookup(endpoint, external_task_id, thorough=True)
        if state is None:
            raise replace(refusal, external_task_id=external_task_id,
                          message=refusal.message + " It could not be looked up, so nothing was adopted or re-sent.")
        return replace(state, adopted=True)

    async def query(self, job: Job, task_id: str) -> TaskState:
        envelope = await self._read(f"{job.request.endpoint}/{task_id}", during="query")
        return task_state(envelope.get("data") or {})

    async def lookup(self, job: Job, *, thorough: bool = True) -> TaskState | None:
        return await self._lookup(job.request.endpoint, job.external_task_id, thorough=thorough)

    async def _lookup(self, endpoint: str, external_task_id: str, *, thorough: bool) -> TaskState | None:
        """Find a task by external id with the convention this account answers (kling-api-2.md §8).

        Once a convention has found a task it is the only one used (a miss there is a real miss).
        Until then a thorough lookup tries each in turn; a quick one (``thorough=False``, the check
        before a first create) makes one call with the documented path slot, since a miss costs
        nothing there: a create under a used id is refused or answered with that task, and adopted.
        """
        if self.lookup_convention is not None:
            return await self._lookup_with(self.lookup_convention, endpoint, external_task_id)
        for convention in LOOKUP_CONVENTIONS if thorough else LOOKUP_CONVENTIONS[:1]:
            found = await self._lookup_with(convention, endpoint, external_task_id)
            if found is not None:
                self.lookup_convention = convention
                return found
        return None

    async def _lookup_with(self, convention: LookupConvention, endpoint: str, external_task_id: str) -> TaskState | None:
        if convention == "path":
            return await self._task_at(f"{endpoint}/{external_task_id}", None, external_task_id)
        if convention == "flag":
            return await self._task_at(f"{endpoint}/{external_task_id}", {"external_task_id": "true"}, external_task_id)
        for page in range(1, self.lookup_max_pages + 1):
            params = {"external_task_id": external_task_id, "pageNum": page, "pageSize": self.lookup_page_size}
            try:
                envelope = await self._read(endpoint, params=params, during="lookup")
            except Rejected:
                return None  # this server does not take the filter
            data = envelope.get("data")
            items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
            for item in items:
                if isinstance(item, dict) and item.get("task_id") and _external_id_of(item) == external_task_id:
                    return task_state(item)
            if len(items) < self.lookup_page_size:
                return None
        return None

    async def _task_at(self, path: str, params: dict | None, external_task_id: str) -> TaskState | None:
        """The task a single-task GET answers, if it is the one with ``external_task_id``; None when absent."""
        try:
            envelope = await self._read(path, params=params, during="lookup")
        except Rejected:
            return None  # 1201/1203: no such task (or this form is not understood here)
        data = envelope.get("data")
        if not isinstance(data, dict) or not data.get("task_id"):
            return None
        if _external_id_of(data) not in (None, external_task_id):
            return None
        return task_state(data)

    async def download(self, job: Job, state: TaskState, dest: Path) -> None:
        """Stream the result video to ``dest``; retried on transport errors and short bodies."""
        if not state.video_url:
            raise DownloadFailed(message=f"Kling reported {job.request.id} finished but gave no video URL.",
                                 hint="run again to fetch the task again")
        await self._download(state.video_url, Path(dest), job.request.id)

    async def _download(self, url: str, dest: Path, label: str) -> None:
        same_host = urlsplit(url).netloc in ("", self._base_host)
        headers = self._auth.header() if same_host else {}  # never hand our token to a CDN
        last = ""
        for attempt in range(self.max_read_attempts):
            try:
                async with self._client.stream("GET", url, headers=headers, timeout=httpx.Timeout(300.0, connect=15.0)) as response:
                    if response.status_code != 200:
                        last = f"HTTP {response.status_code}"
                        if response.status_code < 500 and response.status_code not in (408, 429):
                            break
                    else:
                        expected = response.headers.get("content-length")
                        written = 0
                        with open(dest, "wb") as out:
                            async for chunk in response.aiter_bytes(1 << 16):
                                out.write(chunk)
                                written += len(chunk)
                        if expected is not None and int(expected) != written:
                            last = f"truncated: {written} of {expected} bytes"
                        else:
                            return
            except httpx.TransportError as exc:
                last = self.scrub(f"{type(exc).__name__}: {exc}")
            if attempt + 1 < self.max_read_attempts:
                await self._backoff(attempt)
        dest.unlink(missing_ok=True)
        raise DownloadFailed(
            message=f"could not download the video of {label} ({last}); it is paid for and kept on Kling for 30 days.",
            hint="run again: the finished task is downloaded without a new charge", details={"during": "download"},
        )

    # ---- elements -----------------------------------------------------------------------------

    async def register_element(self, registration: ElementRegistration, images: dict[str, Path]) -> int:
        """Create an image element (§7.1), poll until it succeeds, return its element_id."""

        def b64(placeholder: str) -> str:
            path = images.get(placeholder) or images.get(placeholder.removeprefix(IMAGE_SCHEME))
            if path is None:
                raise InternalError(f"element {registration.reference}: no file for {placeholder}")
            return base64.b64encode(Path(path).read_bytes()).decode("ascii")

        def body_for(external_id: str) -> dict[str, Any]:
            body: dict[str, Any] = {
                "element_name": registration.name,
                "element_description": registration.description,
                "reference_type": "image_refer",
                "element_image_list": {
                    "frontal_image": b64(registration.frontal_image),
                    "refer_images": [{"image_url": b64(p)} for p in registration.refer_images],
                },
                "external_task_id": external_id,
            }
            if registration.tags:
                body["tag_list"] = [{"tag_id": tag} for tag in registration.tags]
            if registration.voice_id is not None:
                body["element_voice_id"] = registration.voice_id
            return body

        # the element's identity (its frontal image, and its bound voice if any: bodies.element_digest)
        digest = registration.placeholder.removeprefix(ELEMENT_SCHEME)
        label = f"element {registration.reference}"
        # Kling keeps external ids unique per account, failed tasks included: after a failed
        # registration the next attempt needs the next id (sb-el-<digest>, then -2, -3, ...).
        # Each id is looked up first: an earlier, lost run may have registered it already.
        attempt = 1
        while True:
            external_id = f"sb-el-{digest[:40]}" + (f"-{attempt}" if attempt > 1 else "")
            found = await self._lookup(ELEMENTS_PATH, external_id, thorough=True)
            if found is None:
                found = await self._create(ELEMENTS_PATH, body_for(external_id), external_id, label)
            if found.status != "failed" or attempt >= MAX_ELEMENT_ATTEMPTS:
                break
            attempt += 1
        state_task = found.task_id
        for _ in range(self.element_poll_limit):
            envelope = await self._read(f"{ELEMENTS_PATH}/{state_task}", during="element")
            data = envelope.get("data") or {}
            status = data.get("task_status")
            if status == "succeed":
                elements = (data.get("task_result") or {}).get("elements") or []
                if elements and elements[0].get("element_id") is not None:
                    return int(elements[0]["element_id"])
            if status == "failed":
                raise TaskFailed(
                    message=f"Kling could not create the element for {registration.reference}: "
                            f"{self.scrub(data.get('task_status_msg') or 'no reason given')}.",
                    task_id=state_task, hint="use other reference images for this element, then run again",
                    details={"during": "element"},
                )
            await self._sleep(self.element_poll_interval)
        raise ProviderError(message=f"the element for {registration.reference} was not ready in time.",
                            money_spent=None, retryable=True, hint="run again later", details={"during": "element"})

    # ---- custom voices (kling-api.md §7.4, kling-api-2.md §3.2) ---------------------------------

    async def register_voice(self, registration: VoiceRegistration) -> str:
        """Clone a custom voice from its recording's URL once, poll until it succeeds, return its voice_id.

        Why looked up first: the external id (``sb-vo-<digest>``) is the voice's identity on the
        account, so a lost create, another project or a deleted journal finds the voice it paid
        0.05 units for instead of cloning it again.
        """
        digest = registration.placeholder.removeprefix(VOICE_SCHEME)
        external_id = f"sb-vo-{digest[:40]}"
        label = f"voice {registration.voice}"
        found = await self._lookup(VOICES_PATH, external_id, thorough=True)
        if found is None:
            body = {"voice_name": registration.name, "voice_url": registration.url, "external_task_id": external_id}
            found = await self._create(VOICES_PATH, body, external_id, label)
        for _ in range(self.element_poll_limit):
            data = (await self._read(f"{VOICES_PATH}/{found.task_id}", during="voice")).get("data") or {}
            status = data.get("task_status")
            if status == "succeed":
                voices = (data.get("task_result") or {}).get("voices") or []
                if voices and voices[0].get("voice_id") is not None:
                    return str(voices[0]["voice_id"])
            if status == "failed":
                raise TaskFailed(
                    message=f"Kling could not clone the voice {registration.voice}: "
                            f"{self.scrub(data.get('task_status_msg') or 'no reason given')}.",
                    task_id=found.task_id, details={"during": "voice"},
                    hint="give the voice a clean 5-30 s recording of one speaker, under a new name, then run again",
                )
            await self._sleep(self.element_poll_interval)
        raise ProviderError(message=f"the voice {registration.voice} was not ready in time.",
                            money_spent=None, retryable=True, hint="run again later", details={"during": "voice"})
