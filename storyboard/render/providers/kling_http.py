"""HTTP plumbing shared by both Kling wire forms (legacy ``/v1`` and new-standard).

Why a module of its own: the legacy client (``kling.py``) and the new-standard client
(``kling_standard.py``) speak different bodies and answers, but the same envelope, business codes,
auth header, back-off, download and scrubbing (kling-api-2.md §7.8: "same envelope and business-code
table as legacy"). Writing those twice would let the two APIs drift apart on exactly the rules that
protect money and secrets, so they live here once:

* ``KlingCredentials`` / ``KlingAuth``: where Kling is and the ``Authorization`` header (an AK/SK
  JWT or the API key; the new-standard API takes the API key only, §7.1).
* ``_kling_error``: the typed error of a business code, decided on the code, never on the HTTP status.
* ``KlingHttp``: one exchange (``_exchange``), idempotent reads with back-off (``_read``), a
  streamed, length-checked download (``_download``), and the never-pay-twice create policy
  (``_create_with_policy``) that both wires run their creates through.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from dotenv import dotenv_values

from storyboard.errors import (
    AccountError,
    Ambiguous,
    DownloadFailed,
    ExternalIdInUse,
    NeverArrived,
    ProviderError,
    RateLimited,
    Rejected,
    UserError,
)
from storyboard.render.health import HostHealth
from storyboard.render.providers.base import TaskState

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"

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

    @classmethod
    def missing_half(cls, project_dir: Path | None = None, environ: dict[str, str] | None = None) -> str | None:
        """The name of the key missing from a half-set pair (only the access or only the secret key), else None.

        Why: with one of the two set, ``from_env`` finds no credentials, and "no credentials" sends
        the user looking in the wrong place; the message must name the key that is missing.
        """
        values: dict[str, str] = {}
        if project_dir is not None and (Path(project_dir) / ".env").is_file():
            values.update({k: v for k, v in dotenv_values(Path(project_dir) / ".env").items() if v})
        values.update({k: v for k, v in (os.environ if environ is None else environ).items() if v})
        access, secret, api_key = (values.get(k, "").strip() for k in ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY"))
        if api_key or bool(access) == bool(secret):
            return None
        return "KLINGAI_SECRET_KEY" if access else "KLINGAI_ACCESS_KEY"

    @classmethod
    def half_set_error(cls, project_dir: Path | None = None) -> UserError | None:
        """The error naming the missing key of a half-set pair, or None when the pair is whole or absent."""
        missing = cls.missing_half(project_dir)
        if missing is None:
            return None
        present = "KLINGAI_ACCESS_KEY" if missing == "KLINGAI_SECRET_KEY" else "KLINGAI_SECRET_KEY"
        return UserError(f"{present} is set but {missing} is missing: Kling needs both keys of the pair; "
                         "nothing was sent",
                         hint=f"set {missing} in the environment or in the project's .env file "
                              "(or use KLINGAI_API_KEY alone), or use --provider preview")


def _body_bytes(body: dict | None) -> int:
    """About how many bytes a JSON body uploads (its base64 images dominate), for the upload allowance."""
    if not body:
        return 0
    return sum(len(value) for value in _strings(body))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


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


def _decimal(value: Any) -> float | None:
    """Kling's decimal strings (``"1.8"``, ``"5.041"``) as floats; None when absent or not a number."""
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _created_at_seconds(value: Any) -> float | None:
    """A millisecond timestamp (legacy ``created_at``, new ``create_time``) in seconds; None when absent."""
    return value / 1000.0 if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def answered_with_older_task(state: TaskState, created_ms: Any, sent_at: float) -> TaskState:
    """The task a create answered with, marked adopted when it existed before the create was sent.

    Kling may answer a reused external id with the existing task instead of a refusal
    (kling-api-2.md §8). A new task is always ``submitted`` in a create's answer (§9.1, §7.4), so
    any other status, or a creation time well before the request was sent, is an older task.
    """
    created_at = _created_at_seconds(created_ms)
    older = created_at is not None and created_at < sent_at - EXISTING_TASK_MARGIN
    return replace(state, adopted=True) if state.status != "submitted" or older else state


# --------------------------------------------------------------------------------------------
# The shared HTTP client


class KlingHttp:
    """One Kling account over HTTP: exchanges, reads with back-off, downloads, the create policy.

    Both wire forms run on one instance (one connection pool, one token cache, one set of retry
    limits), so a storyboard mixing legacy and new-standard requests behaves the same on both.
    """

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
        self.health: HostHealth | None = None
        """The run's host-health signal, attached by the engine (None: every exchange on its own)."""
        self._sleep = sleep
        self._jitter = jitter
        self.max_read_attempts = max_read_attempts
        self.max_create_refusals = max_create_refusals
        self.max_create_ambiguous = max_create_ambiguous
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

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

    def _auth_header(self, *, api_key_only: bool, force_new: bool) -> dict[str, str]:
        """The ``Authorization`` header: the JWT or API key, or the API key alone (new-standard API)."""
        if not api_key_only:
            return self._auth.header(force_new=force_new)
        if not self._credentials.api_key:
            raise AccountError(
                message="this request goes to Kling's new-standard API, which accepts only an API key, and only "
                        "an access key + secret key pair is configured; nothing was sent.",
                hint="set KLINGAI_API_KEY (console → API keys) in the environment or the project's .env, or put "
                     "api: legacy on these shots (not possible for kling-v3-turbo)",
                details={"during": "auth"},
            )
        return {"Authorization": f"Bearer {self._credentials.api_key}"}

    async def _exchange(self, method: str, path: str, *, body: dict | None = None,
                        params: dict | None = None, during: str, api_key_only: bool = False) -> dict[str, Any]:
        """Send once (plus one token regeneration on an auth error); return the envelope.

        Raises ``NeverArrived`` on a connect failure, ``Ambiguous`` when the request may have
        arrived but no usable answer came back, and the typed error of a Kling error code.
        ``api_key_only``: authenticate with the API key (the new-standard API refuses JWTs, §7.1).
        """
        regenerated = False
        details = {"during": during}
        while True:
            headers = {"Content-Type": "application/json",
                       **self._auth_header(api_key_only=api_key_only, force_new=regenerated)}
            health = self.health  # the engine's run-wide signal (render/health.py), when one is attached
            started_at = time.monotonic()
            timeout = None
            if health is not None:
                health.before_send()
                timeout = health.answer_timeout(_body_bytes(body))
            try:
                response = await asyncio.wait_for(
                    self._client.request(method, path, json=body, params=params, headers=headers), timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if health is not None:
                    health.failed(self._base_host, "refused or did not take the connection", started_at)
                raise NeverArrived(self.scrub(f"{type(exc).__name__}: {exc} (host {self._base_host})"),
                                   details=details) from None
            except (httpx.TransportError, TimeoutError) as exc:  # read/write timeout, dropped connection, protocol error
                if health is not None and isinstance(exc, (httpx.TimeoutException, TimeoutError)):
                    health.failed(self._base_host, "did not answer", started_at)
                what = "no answer in time" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
                raise Ambiguous(self.scrub(f"{what} (host {self._base_host})"), details=details,
                                money_spent=None if during == "create" else False) from None
            if health is not None:
                health.answered()
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

    async def _read(self, path: str, *, params: dict | None = None, during: str,
                    api_key_only: bool = False) -> dict[str, Any]:
        """An idempotent GET with back-off on transport errors, 1302/1303, 5000-5002 and HTTP 429."""
        last: ProviderError | None = None
        for attempt in range(self.max_read_attempts):
            try:
                return await self._exchange("GET", path, params=params, during=during, api_key_only=api_key_only)
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

    # ---- the paid call ----------------------------------------------------------------------

    async def _create_with_policy(
        self,
        post: Callable[[float], Awaitable[TaskState]],
        find: Callable[[], Awaitable[TaskState | None]],
        adopt: Callable[[ExternalIdInUse], Awaitable[TaskState]],
        label: str,
    ) -> TaskState:
        """Run a create (``post``, given the time it was first sent) under the never-pay-twice policy.

        Re-sent only when it provably never arrived (connect error) or Kling refused it for rate or
        concurrency (1302/1303). After an ambiguous outcome (read timeout, dropped connection,
        5000/5002, 5001) the task is first looked up (``find``, by external id); only a lookup
        proving it absent allows a re-send. A refusal naming the external id as used goes to
        ``adopt``: that task was paid for earlier and is followed, never paid again.
        """
        refusals = ambiguous = 0
        first_sent = self._clock()
        while True:
            try:
                return await post(first_sent)
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
                return await adopt(exc)
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
                found = await find()
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

    # ---- downloads ----------------------------------------------------------------------------

    async def _download(self, url: str, dest: Path, label: str) -> None:
        """Stream ``url`` to ``dest``; retried on transport errors, 5xx/408/429 and short bodies."""
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
