"""The Kling client: the only code that talks to Kling's legacy ``/v1`` HTTP API.

Why it is shaped like this (kling-api.md §1, §2, §9, §10; ARCHITECTURE.md "Never pay twice"):

* Errors are decided on the envelope's business ``code``, never on the HTTP status: the fatal
  1100/1101/1102/1304 share HTTP 429 with the retryable 1302/1303.
* A create (the call that costs money) is never retried blindly. It is re-sent only when it
  provably never arrived (connect error) or Kling refused it for rate/concurrency (1302/1303).
  After an ambiguous outcome (read timeout after sending, dropped connection, 5000/5002) the task
  is first looked up by its ``external_task_id``; only a lookup proving it absent allows a re-send.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from dotenv import dotenv_values

from storyboard.errors import InternalError, ProviderError
from storyboard.plan import ELEMENT_SCHEME, FRAME_SCHEME, IMAGE_SCHEME, ElementRegistration
from storyboard.render.providers.base import Job, TaskState

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
ELEMENTS_PATH = "/v1/general/advanced-custom-elements"

TOKEN_LIFETIME = 1800
"""Seconds a JWT is valid (the official sample's 30 minutes)."""
TOKEN_REFRESH_MARGIN = 300
"""Regenerate the JWT this many seconds before it expires, so no request carries a dying token."""

AUTH_CODES = frozenset({1000, 1001, 1002, 1003, 1004})
ACCOUNT_FATAL_CODES = frozenset({1100, 1101, 1102, 1304}) | AUTH_CODES
"""Codes that stop every further create of the run: retrying or sending more cannot succeed."""
REFUSED_RETRYABLE_CODES = frozenset({1302, 1303})
"""Kling refused the call (nothing was created, nothing charged): safe to send again after a pause."""
SERVER_AMBIGUOUS_CODES = frozenset({5000, 5002})
"""The server failed mid-way: a create may or may not exist. Look it up before re-sending."""
SERVER_RETRYABLE_CODES = frozenset({5000, 5001, 5002})
ABSENT_CODES = frozenset({1201, 1203})
"""What an unknown task id is answered with (404/1203 or 400/1201: undocumented, §14)."""

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
    what, todo = _code_message(code, auth.scrub(message or ""))
    money: bool | None = None if code in SERVER_AMBIGUOUS_CODES and during == "create" else False
    return ProviderError(
        message=what,
        status=status,
        code=code,
        request_id=request_id,
        money_spent=money,
        retryable=code in REFUSED_RETRYABLE_CODES or code in SERVER_RETRYABLE_CODES,
        hint=todo,
        details={"fatal_account": code in ACCOUNT_FATAL_CODES, "during": during},
    )


class _NeverArrived(Exception):
    """The request provably never reached Kling (connect failed): safe to send again."""


class _Ambiguous(Exception):
    """The request may have reached Kling (sent, then the answer was lost)."""


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


def task_state(data: dict[str, Any]) -> TaskState:
    """A ``TaskState`` from a task object (create or query ``data``, §9.1/§9.2)."""
    result = data.get("task_result") or {}
    videos = result.get("videos") or []
    url = videos[0].get("url") if videos else None
    units = data.get("final_unit_deduction")
    try:
        units_charged = float(units) if units not in (None, "") else None
    except (TypeError, ValueError):
        units_charged = None
    status = data.get("task_status") or "submitted"
    if status not in ("submitted", "processing", "succeed", "failed"):
        status = "processing"
    return TaskState(task_id=str(data.get("task_id", "")), status=status, video_url=url,
                     units_charged=units_charged, message=data.get("task_status_msg") or "")


def _external_id_of(data: dict[str, Any]) -> str | None:
    return (data.get("task_info") or {}).get("external_task_id")


# --------------------------------------------------------------------------------------------
# The provider


MAX_ELEMENT_ATTEMPTS = 20
"""Registrations of one element tried before giving up (each failed one keeps its external id)."""


class KlingProvider:
    """``providers.base.Provider`` over Kling's legacy HTTP API."""

    name = "kling"

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
    ) -> None:
        self._credentials = credentials
        self._auth = KlingAuth(credentials, clock)
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

        Raises ``_NeverArrived`` on a connect failure, ``_Ambiguous`` when the request may have
        arrived but no usable answer came back, ``ProviderError`` for a Kling error code.
        """
        regenerated = False
        while True:
            headers = {"Content-Type": "application/json", **self._auth.header(force_new=regenerated)}
            try:
                response = await self._client.request(method, path, json=body, params=params, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise _NeverArrived(self.scrub(f"{type(exc).__name__}: {exc}")) from None
            except httpx.TransportError as exc:  # read/write timeout, dropped connection, protocol error
                raise _Ambiguous(self.scrub(f"{type(exc).__name__}: {exc}")) from None
            try:
                envelope = response.json()
                if not isinstance(envelope, dict) or "code" not in envelope:
                    raise ValueError("no envelope")
            except (ValueError, json.JSONDecodeError):
                if response.status_code >= 500 or response.status_code == 429:
                    raise _Ambiguous(f"HTTP {response.status_code} without a Kling answer") from None
                if response.status_code == 404:
                    envelope = {"code": 1203, "message": "not found"}
                else:
                    raise ProviderError(
                        message=f"Kling answered HTTP {response.status_code} with no readable body during {during}.",
                        status=response.status_code, money_spent=None if during == "create" else False,
                        hint="run again later; if it persists, check KLINGAI_BASE_URL", details={"during": during},
                    ) from None
            code = int(envelope.get("code", -1))
            if code == 0:
                return envelope
            if code in AUTH_CODES and not regenerated and self._auth.can_regenerate and code != 1001:
                regenerated = True
                continue
            raise _kling_error(code, str(envelope.get("message", "")), response.status_code,
                               envelope.get("request_id"), self._auth, during=during)

    async def _read(self, path: str, *, params: dict | None = None, during: str) -> dict[str, Any]:
        """An idempotent GET with back-off on transport errors and 1302/1303/5000-5002."""
        last: Exception | None = None
        for attempt in range(self.max_read_attempts):
            try:
                return await self._exchange("GET", path, params=params, during=during)
            except (_NeverArrived, _Ambiguous) as exc:
                last = exc
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                last = exc
            if attempt + 1 < self.max_read_attempts:
                await self._backoff(attempt)
        if isinstance(last, ProviderError):
            raise last
        raise ProviderError(
            message=f"could not reach Kling during {during} after {self.max_read_attempts} attempts ({last}); nothing new was charged.",
            money_spent=False, retryable=True, hint="check the network, then run again (finished work is kept)",
            details={"during": during},
        )

    # ---- tasks --------------------------------------------------------------------------------

    async def create(self, job: Job) -> TaskState:
        """Submit the request (the paid call) under the never-pay-twice policy."""
        return await self._create(job.request.endpoint, resolve_body(job), job.external_task_id, job.request.id)

    async def _create(self, endpoint: str, body: dict[str, Any], external_task_id: str, label: str) -> TaskState:
        refusals = ambiguous = 0
        while True:
            try:
                envelope = await self._exchange("POST", endpoint, body=body, during="create")
                return task_state(envelope.get("data") or {})
            except _NeverArrived:
                refusals += 1
                if refusals > self.max_create_refusals:
                    raise ProviderError(
                        message=f"could not reach Kling to submit {label}; nothing was charged.",
                        money_spent=False, retryable=True, hint="check the network and KLINGAI_BASE_URL, then run again",
                        details={"during": "create"},
                    ) from None
                await self._backoff(refusals - 1)
                continue
            except ProviderError as exc:
                if exc.code in REFUSED_RETRYABLE_CODES:
                    refusals += 1
                    if refusals > self.max_create_refusals:
                        raise
                    await self._backoff(refusals - 1)
                    continue
                if exc.code not in SERVER_RETRYABLE_CODES:
                    raise  # 5001 too is looked up first: cheap, and safe whatever the server did
                reason = str(exc)
            except _Ambiguous as exc:
                reason = str(exc)
            # The create may have arrived: never send it again before proving it did not.
            ambiguous += 1
            try:
                found = await self._lookup(endpoint, external_task_id)
            except ProviderError as exc:
                raise ProviderError(
                    message=(f"the submission of {label} got no clear answer ({reason}) and the follow-up lookup "
                             f"failed too; it is unknown whether Kling charged for it."),
                    money_spent=None, retryable=True,
                    hint="run again later: the task is looked up by its external_task_id before anything is re-sent",
                    details={"during": "create", "ambiguous": True},
                ) from exc
            if found is not None:
                return found
            if ambiguous > self.max_create_ambiguous:
                raise ProviderError(
                    message=f"Kling kept failing to accept {label} ({reason}); lookups show no task, so nothing was charged.",
                    money_spent=False, retryable=True, hint="run again later", details={"during": "create"},
                )
            await self._backoff(ambiguous - 1)

    async def query(self, job: Job, task_id: str) -> TaskState:
        envelope = await self._read(f"{job.request.endpoint}/{task_id}", during="query")
        return task_state(envelope.get("data") or {})

    async def lookup(self, job: Job) -> TaskState | None:
        return await self._lookup(job.request.endpoint, job.external_task_id)

    async def _lookup(self, endpoint: str, external_task_id: str) -> TaskState | None:
        """Find a task by external_task_id: the path slot first (official), then ``?external_task_id=``."""
        try:
            envelope = await self._read(f"{endpoint}/{external_task_id}", during="lookup")
            data = envelope.get("data")
            if isinstance(data, dict) and data.get("task_id"):
                return task_state(data)
        except ProviderError as exc:
            if exc.code not in ABSENT_CODES:
                raise
        try:
            envelope = await self._read(endpoint, params={"external_task_id": external_task_id}, during="lookup")
        except ProviderError as exc:
            if exc.code in ABSENT_CODES:
                return None
            raise
        data = envelope.get("data")
        items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        for item in items:
            if isinstance(item, dict) and item.get("task_id") and _external_id_of(item) == external_task_id:
                return task_state(item)
        return None

    async def download(self, job: Job, state: TaskState, dest: Path) -> None:
        """Stream the result video to ``dest``; retried on transport errors and short bodies."""
        if not state.video_url:
            raise ProviderError(message=f"Kling reported {job.request.id} finished but gave no video URL.",
                                money_spent=True, hint="run again to fetch the task again")
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
        raise ProviderError(
            message=f"could not download the video of {label} ({last}); it is paid for and kept on Kling for 30 days.",
            money_spent=True, retryable=True, hint="run again: the finished task is downloaded without a new charge",
            details={"during": "download"},
        )

    # ---- elements -----------------------------------------------------------------------------

    async def register_element(self, registration: ElementRegistration, images: dict[str, Path]) -> int:
        """Create an image element (§7.1), poll until it succeeds, return its element_id."""

        def b64(placeholder: str) -> str:
            path = images.get(placeholder) or images.get(placeholder.removeprefix(IMAGE_SCHEME))
            if path is None:
                raise InternalError(f"element {registration.reference}: no file for {placeholder}")
            return base64.b64encode(Path(path).read_bytes()).decode("ascii")

        digest = registration.frontal_image.removeprefix(IMAGE_SCHEME)
        # Kling keeps external ids unique per account, failed tasks included: after a failed
        # registration the next attempt needs the next id (sb-el-<digest>, then -2, -3, ...).
        attempt = 1
        while True:
            external_id = f"sb-el-{digest[:40]}" + (f"-{attempt}" if attempt > 1 else "")
            found = await self._lookup(ELEMENTS_PATH, external_id)  # registered by an earlier, lost run?
            if found is None or found.status != "failed" or attempt >= MAX_ELEMENT_ATTEMPTS:
                break
            attempt += 1
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
        state_task = found.task_id if found and found.status != "failed" else (await self._create(ELEMENTS_PATH, body, external_id, f"element {registration.reference}")).task_id
        for _ in range(self.element_poll_limit):
            envelope = await self._read(f"{ELEMENTS_PATH}/{state_task}", during="element")
            data = envelope.get("data") or {}
            status = data.get("task_status")
            if status == "succeed":
                elements = (data.get("task_result") or {}).get("elements") or []
                if elements and elements[0].get("element_id") is not None:
                    return int(elements[0]["element_id"])
            if status == "failed":
                raise ProviderError(
                    message=f"Kling could not create the element for {registration.reference}: "
                            f"{self.scrub(data.get('task_status_msg') or 'no reason given')}.",
                    money_spent=False, hint="use other reference images for this element, then run again",
                    details={"during": "element"},
                )
            await self._sleep(self.element_poll_interval)
        raise ProviderError(message=f"the element for {registration.reference} was not ready in time.",
                            money_spent=None, retryable=True, hint="run again later", details={"during": "element"})
