"""The Kling client against small httpx.MockTransport handlers (the network edge, nothing else mocked).

What is pinned: JWT claims and caching; the exact body sent per request kind; error decisions on
the body ``code`` (not the HTTP status); the create retry policy (re-send only when provably never
arrived or refused for rate/concurrency; otherwise look up first); token regeneration; secrets
never in messages or reprs; streamed downloads; element registration.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import httpx
import jwt
import pytest

from storyboard.errors import AccountError, Ambiguous, ExternalIdInUse, Rejected
from storyboard.plan import ElementRegistration, Request, ShotSlice
from storyboard.render.providers.base import Job
from storyboard.render.providers.kling import KlingCredentials, KlingProvider, resolve_body, task_state
from tests.fakes.kling import FakeKling
from tests.fakes.videos import result_video
from tests.reference import KLING_FIXTURES

AK = "ak_test_7f3c2a9e51d04b6c"
SK = "sk_test_b91e4d07c6a24f35a8d2e0f1c3b5a7d9"
NOW = 1774805076.0


def make_request(family: str = "text2video", body: dict | None = None, key: str = "a" * 64, duration: int = 1,
                 images: dict | None = None, **extra) -> Request:
    endpoint = f"/v1/videos/{family}"
    body = body if body is not None else {"model_name": "kling-v3", "prompt": "a cat", "mode": "std",
                                           "duration": str(duration), "aspect_ratio": "16:9"}
    return Request(
        id=extra.pop("id", "r01-cat"), key=key, external_task_id=f"sb-{key[:40]}", family=family, endpoint=endpoint,
        model=body.get("model_name", "kling-v3"), mode="std", duration=duration, sound=False, aspect_ratio="16:9",
        width=160, height=90, fps=24, body=body, images=images or {},
        shots=[ShotSlice(shot_id="s1", offset=0, rendered=duration, keep=duration, prompt="a cat")],
        units=round(0.6 * duration, 6), usd=round(0.084 * duration, 6), **extra,
    )


class MiniKling:
    """A tiny stateful Kling: create/query/lookup/download/elements, with scripted faults."""

    def __init__(self, polls_to_finish: int = 1) -> None:
        self.tasks: dict[str, dict] = {}
        self.by_external: dict[str, str] = {}
        self.posts: list[dict] = []
        self.gets: list[str] = []
        self.auth_headers: list[str] = []
        self.faults: list[tuple[str, object]] = []  # (on, fault) consumed in order
        self.polls_to_finish = polls_to_finish
        self.path_lookup = True
        self.counter = 0

    def fault(self, on: str, fault) -> None:
        self.faults.append((on, fault))

    def _take(self, on: str):
        for index, (where, fault) in enumerate(self.faults):
            if where == on:
                del self.faults[index]
                return fault
        return None

    @staticmethod
    def envelope(data, code: int = 0, status: int = 200, message: str = "SUCCEED") -> httpx.Response:
        return httpx.Response(status, json={"code": code, "message": message, "request_id": "req-1", "data": data})

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.auth_headers.append(request.headers.get("authorization", ""))
        path = request.url.path
        if path.startswith("/cdn/"):
            fault = self._take("download")
            video = result_video((1.0,))
            if fault == "truncated":
                return httpx.Response(200, headers={"content-length": str(len(video))}, content=video[: len(video) // 2])
            return httpx.Response(200, content=video)
        if request.method == "POST":
            body = json.loads(request.content)
            self.posts.append(body)
            fault = self._take("create")
            if isinstance(fault, httpx.ReadTimeout):  # sent and stored, then the answer never came
                self._store(path, body)
                raise fault
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, tuple):  # (status, code, arrived)
                status, code, arrived = fault
                if arrived:
                    self._store(path, body)
                return self.envelope(None, code=code, status=status, message=f"failure {code}")
            if fault == "drop_after_create":
                self._store(path, body)
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
            task = self._store(path, body)
            return self.envelope({"task_id": task["task_id"], "task_status": "submitted",
                                  "task_info": {"external_task_id": body.get("external_task_id")}})
        self.gets.append(str(request.url))
        fault = self._take("query")
        if isinstance(fault, tuple):
            status, code, _ = fault
            return self.envelope(None, code=code, status=status)
        ext = request.url.params.get("external_task_id")
        if ext is not None:
            task_id = self.by_external.get(ext)
            return self.envelope([self._view(self.tasks[task_id])] if task_id else [])
        ident = path.rsplit("/", 1)[-1]
        task_id = ident if ident in self.tasks else (self.by_external.get(ident) if self.path_lookup else None)
        if task_id is None:
            return self.envelope(None, code=1203, status=404, message="task not found")
        task = self.tasks[task_id]
        task["polls"] += 1
        return self.envelope(self._view(task))

    def _store(self, path: str, body: dict) -> dict:
        self.counter += 1
        task_id = str(867283741759111200 + self.counter)
        task = {"task_id": task_id, "path": path, "body": body, "polls": 0}
        self.tasks[task_id] = task
        if body.get("external_task_id"):
            self.by_external[body["external_task_id"]] = task_id
        return task

    def _view(self, task: dict) -> dict:
        done = task["polls"] >= self.polls_to_finish
        view = {"task_id": task["task_id"], "task_status": "succeed" if done else "processing", "task_status_msg": "",
                "task_info": {"external_task_id": task["body"].get("external_task_id")}}
        if done and task["path"].endswith("advanced-custom-elements"):
            view["task_result"] = {"elements": [{"element_id": 829836802793406551, "status": "succeed"}]}
        elif done:
            view["task_result"] = {"videos": [{"id": "v1", "url": f"https://api.test/cdn/{task['task_id']}.mp4", "duration": "1"}]}
            view["final_unit_deduction"] = "0.6"
        return view


def make_provider(kling: MiniKling, clock=lambda: NOW, **options) -> tuple[KlingProvider, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    credentials = KlingCredentials(access_key=AK, secret_key=SK, base_url="https://api.test")
    provider = KlingProvider(credentials, transport=httpx.MockTransport(kling.handler), sleep=sleep, clock=clock, **options)
    return provider, sleeps


def run(coroutine):
    return asyncio.run(coroutine)


# ---- auth -----------------------------------------------------------------------------------


def test_jwt_claims_and_regeneration_before_expiry():
    now = [NOW]
    kling = MiniKling()
    provider, _ = make_provider(kling, clock=lambda: now[0])
    job = Job(request=make_request(), project_dir=Path("."))
    run(provider.create(job))
    token = kling.auth_headers[-1].removeprefix("Bearer ")
    assert kling.auth_headers[-1].startswith("Bearer ") and " " not in token
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": AK, "exp": int(NOW) + 1800, "nbf": int(NOW) - 5}
    now[0] += 60
    run(provider.query(job, "867283741759111201"))
    assert kling.auth_headers[-1].removeprefix("Bearer ") == token  # cached
    now[0] = NOW + 1800 - 200  # inside the refresh margin
    run(provider.query(job, "867283741759111201"))
    assert kling.auth_headers[-1].removeprefix("Bearer ") != token


def test_official_fixture_token_matches():
    fixtures = json.loads(KLING_FIXTURES.read_text())
    kling = MiniKling()
    provider, _ = make_provider(kling, clock=lambda: fixtures["auth"]["fixed_now_seconds"])
    run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    expected = jwt.decode(fixtures["auth"]["valid_token_at_fixed_now"]["token"], SK, algorithms=["HS256"],
                          options={"verify_exp": False, "verify_nbf": False})
    sent = jwt.decode(kling.auth_headers[-1].removeprefix("Bearer "), SK, algorithms=["HS256"],
                      options={"verify_exp": False, "verify_nbf": False})
    assert sent == expected


def test_static_api_key_is_sent_as_bearer():
    kling = MiniKling()
    credentials = KlingCredentials(api_key="kling-api-key-123456", base_url="https://api.test")
    provider = KlingProvider(credentials, transport=httpx.MockTransport(kling.handler))
    run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    assert kling.auth_headers == ["Bearer kling-api-key-123456"]


def test_expired_token_is_regenerated_once_then_fatal():
    kling = MiniKling()
    provider, _ = make_provider(kling)
    kling.fault("create", (401, 1004, False))
    state = run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    assert state.status == "submitted" and len(kling.posts) == 2

    kling2 = MiniKling()
    provider2, _ = make_provider(kling2)
    kling2.fault("create", (401, 1002, False))
    kling2.fault("create", (401, 1002, False))
    with pytest.raises(AccountError) as caught:
        run(provider2.create(Job(request=make_request(), project_dir=Path("."))))
    assert caught.value.code == 1002 and caught.value.money_spent is False
    assert len(kling2.posts) == 2


# ---- bodies ---------------------------------------------------------------------------------


def _png(tmp_path: Path, name: str, colour: int) -> Path:
    from PIL import Image

    path = tmp_path / name
    Image.new("RGB", (320, 320), (colour, 10, 10)).save(path)
    return path


BODIES = {
    "text2video": {"model_name": "kling-v3", "prompt": "a cat on a roof", "negative_prompt": "blur", "mode": "std",
                   "duration": "1", "aspect_ratio": "16:9", "sound": "off", "multi_shot": True, "shot_type": "customize",
                   "multi_prompt": [{"index": 1, "prompt": "a cat", "duration": "1"}]},
    "image2video": {"model_name": "kling-v3", "prompt": "<<<element_1>>> waves", "image": "image://sha256/" + "1" * 64,
                    "image_tail": "frame://last/" + "f" * 64, "mode": "pro", "duration": "1",
                    "element_list": [{"element_id": "element://sha256/" + "2" * 64}]},
    "omni-video": {"model_name": "kling-v3-omni", "prompt": "<<<image_1>>> pours coffee",
                   "image_list": [{"image_url": "image://sha256/" + "1" * 64, "type": "first_frame"},
                                  {"image_url": "image://sha256/" + "2" * 64}],
                   "element_list": [{"element_id": "element://sha256/" + "2" * 64}], "mode": "pro", "duration": "1",
                   "sound": "on"},
    "multi-image2video": {"model_name": "kling-v1-6", "prompt": "two friends",
                          "image_list": [{"image": "image://sha256/" + "1" * 64}, {"image": "image://sha256/" + "2" * 64}],
                          "mode": "std", "duration": "5", "aspect_ratio": "1:1"},
    "motion-control": {"model_name": "kling-v3", "prompt": "dance", "image_url": "image://sha256/" + "1" * 64,
                       "video_url": "https://example.com/moves.mp4", "character_orientation": "video", "mode": "std"},
}


@pytest.mark.parametrize("family", sorted(BODIES))
def test_exact_body_sent_equals_the_plans_resolved_body(family, tmp_path):
    one, two, frame = _png(tmp_path, "one.png", 10), _png(tmp_path, "two.png", 200), _png(tmp_path, "frame.png", 90)
    request = make_request(family, body=BODIES[family], images={"1" * 64: "one.png", "2" * 64: "two.png"})
    job = Job(request=request, project_dir=tmp_path,
              images={"image://sha256/" + "1" * 64: one, "image://sha256/" + "2" * 64: two,
                      "frame://last/" + "f" * 64: frame},
              elements={"element://sha256/" + "2" * 64: 829836802793406551})
    kling = MiniKling()
    provider, _ = make_provider(kling)
    run(provider.create(job))
    b64 = {p: base64.b64encode(p.read_bytes()).decode() for p in (one, two, frame)}
    expected = json.loads(json.dumps(BODIES[family])
                          .replace('"image://sha256/' + "1" * 64 + '"', json.dumps(b64[one]))
                          .replace('"image://sha256/' + "2" * 64 + '"', json.dumps(b64[two]))
                          .replace('"frame://last/' + "f" * 64 + '"', json.dumps(b64[frame]))
                          .replace('"element://sha256/' + "2" * 64 + '"', "829836802793406551"))
    expected["external_task_id"] = request.external_task_id
    assert kling.posts == [expected]
    assert kling.tasks[next(iter(kling.tasks))]["path"] == f"/v1/videos/{family}"
    assert not any(str(v).startswith("data:") for v in b64.values())
    assert resolve_body(job) == expected


# ---- error codes and the create retry policy ------------------------------------------------


@pytest.mark.parametrize("code", [1100, 1101, 1102, 1304])
def test_fatal_429_codes_are_not_retried(code):
    kling = MiniKling()
    provider, sleeps = make_provider(kling)
    kling.fault("create", (429, code, False))
    with pytest.raises(AccountError) as caught:
        run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    assert len(kling.posts) == 1 and sleeps == []
    assert caught.value.code == code and caught.value.money_spent is False
    if code == 1102:
        assert "resource pack is used up" in caught.value.message and "buy units" in caught.value.hint


@pytest.mark.parametrize("code", [1302, 1303])
def test_rate_and_concurrency_refusals_are_retried_with_backoff(code):
    kling = MiniKling()
    provider, sleeps = make_provider(kling, jitter=lambda: 1.0)
    for _ in range(3):
        kling.fault("create", (429, code, False))
    state = run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    assert state.status == "submitted" and len(kling.posts) == 4 and len(kling.tasks) == 1
    assert sleeps == [1.0, 2.0, 4.0]  # exponential, starting at >= 1 s
    assert kling.gets == []  # a refusal is not ambiguous: no lookup needed


@pytest.mark.parametrize("fault", [(500, 5000, True), (504, 5002, True), "drop_after_create",
                                   httpx.ReadTimeout("read timed out")])
def test_ambiguous_create_that_arrived_is_found_not_resent(fault):
    kling = MiniKling()
    provider, _ = make_provider(kling)
    kling.fault("create", fault)
    request = make_request()
    state = run(provider.create(Job(request=request, project_dir=Path("."))))
    assert len(kling.posts) == 1 and len(kling.tasks) == 1
    assert state.task_id == kling.by_external[request.external_task_id]
    assert any(request.external_task_id in url for url in kling.gets)


def test_ambiguous_create_that_never_arrived_is_resent_after_lookup_proves_absence():
    kling = MiniKling()
    provider, _ = make_provider(kling)
    kling.fault("create", (500, 5000, False))
    state = run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    assert len(kling.posts) == 2 and len(kling.tasks) == 1 and state.status == "submitted"
    # the path-slot lookup said 1203, then the query-string form was tried too
    assert any("external_task_id=" in url for url in kling.gets)


def test_connect_error_is_resent_without_lookup():
    kling = MiniKling()
    provider, _ = make_provider(kling)
    kling.fault("create", httpx.ConnectError("connection refused"))
    run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    assert len(kling.posts) == 2 and len(kling.tasks) == 1 and kling.gets == []


def test_failed_lookup_after_ambiguous_create_reports_unknown_money():
    kling = MiniKling()
    provider, _ = make_provider(kling, max_read_attempts=2)
    kling.fault("create", (500, 5000, True))
    for _ in range(4):
        kling.fault("query", (503, 5001, False))
    with pytest.raises(Ambiguous) as caught:
        run(provider.create(Job(request=make_request(), project_dir=Path("."))))
    assert caught.value.money_spent is None and len(kling.posts) == 1


def test_lookup_falls_back_to_query_string():
    kling = MiniKling()
    kling.path_lookup = False
    provider, _ = make_provider(kling)
    request = make_request()
    job = Job(request=request, project_dir=Path("."))
    assert run(provider.lookup(job)) is None
    run(provider.create(job))
    found = run(provider.lookup(job))
    assert found is not None and found.task_id == kling.by_external[request.external_task_id]


def test_query_retries_5001_and_reads_units():
    kling = MiniKling()
    provider, sleeps = make_provider(kling)
    job = Job(request=make_request(), project_dir=Path("."))
    created = run(provider.create(job))
    kling.fault("query", (503, 5001, False))
    state = run(provider.query(job, created.task_id))
    assert state.status == "succeed" and state.units_charged == 0.6 and state.video_url.endswith(".mp4")
    assert len(sleeps) == 1


# ---- downloads and elements -----------------------------------------------------------------


def test_download_streams_and_retries_a_truncated_body(tmp_path):
    kling = MiniKling()
    provider, _ = make_provider(kling)
    job = Job(request=make_request(), project_dir=tmp_path)
    created = run(provider.create(job))
    state = run(provider.query(job, created.task_id))
    kling.fault("download", "truncated")
    dest = tmp_path / "clip.part"
    run(provider.download(job, state, dest))
    assert dest.read_bytes() == result_video((1.0,))
    # the CDN URL is on the API host here, so it got the bearer; another host would get none
    assert kling.gets.count(state.video_url) == 0 and len(kling.auth_headers) >= 4


def test_register_element_polls_until_it_has_an_id(tmp_path):
    kling = MiniKling(polls_to_finish=2)
    provider, sleeps = make_provider(kling)
    front, side = _png(tmp_path, "front.png", 30), _png(tmp_path, "side.png", 60)
    registration = ElementRegistration(placeholder="element://sha256/" + "3" * 64, reference="mira", name="Mira",
                                       description="a woman in a green raincoat", frontal_image="image://sha256/" + "3" * 64,
                                       refer_images=["image://sha256/" + "4" * 64], tags=["o_102"])
    registered = run(provider.register_element(registration, {"image://sha256/" + "3" * 64: front,
                                                               "image://sha256/" + "4" * 64: side}))
    element_id = registered.element_id
    assert element_id == 829836802793406551 and isinstance(element_id, int) and registered.cloned_voice is None
    body = kling.posts[0]
    assert body["reference_type"] == "image_refer" and body["tag_list"] == [{"tag_id": "o_102"}]
    assert body["element_image_list"]["frontal_image"] == base64.b64encode(front.read_bytes()).decode()
    assert body["element_image_list"]["refer_images"] == [{"image_url": base64.b64encode(side.read_bytes()).decode()}]
    assert len(sleeps) >= 1


# ---- secrets --------------------------------------------------------------------------------


def test_secrets_never_in_reprs_or_error_messages():
    kling = MiniKling()
    provider, _ = make_provider(kling)
    job = Job(request=make_request(), project_dir=Path("."))
    run(provider.create(job))
    token = kling.auth_headers[-1].removeprefix("Bearer ")

    def echo_secrets(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": 1201, "message": f"bad key {AK} {SK} {request.headers['authorization']}",
                                         "request_id": "x"})

    leaky = KlingProvider(KlingCredentials(access_key=AK, secret_key=SK, base_url="https://api.test"),
                          transport=httpx.MockTransport(echo_secrets), clock=lambda: NOW)
    with pytest.raises(Rejected) as caught:
        run(leaky.create(job))
    text = str(caught.value) + repr(caught.value) + repr(leaky) + repr(leaky._credentials)
    for secret in (AK, SK, token):
        assert secret not in text
    assert caught.value.code == 1201 and "nothing was charged" in caught.value.message


def test_credentials_from_env_and_dotenv_without_polluting_environ(tmp_path, monkeypatch):
    for name in ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY", "KLINGAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert KlingCredentials.from_env(tmp_path) is None
    (tmp_path / ".env").write_text(f"KLINGAI_ACCESS_KEY={AK}\nKLINGAI_SECRET_KEY={SK}\nKLINGAI_BASE_URL=http://127.0.0.1:9/\n")
    credentials = KlingCredentials.from_env(tmp_path)
    assert credentials.access_key == AK and credentials.base_url == "http://127.0.0.1:9"
    assert "KLINGAI_ACCESS_KEY" not in os.environ
    assert AK not in repr(credentials) and SK not in repr(credentials)
    monkeypatch.setenv("KLINGAI_API_KEY", "only-an-api-key")
    (tmp_path / ".env").unlink()
    assert KlingCredentials.from_env(tmp_path).kind == "API key"


# ---- lookup conventions and adoption, against the stateful fake -------------------------------


def fake_provider(fake, **options) -> KlingProvider:
    credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)

    async def no_sleep(_seconds: float) -> None:
        return None

    return KlingProvider(credentials, transport=fake.transport(), sleep=no_sleep, **options)


def fake_job(prompt: str = "a lighthouse at dusk", key: str = "b" * 64) -> Job:
    body = {"model_name": "kling-v3", "prompt": prompt, "mode": "std", "duration": "3", "aspect_ratio": "16:9"}
    return Job(request=make_request(body=body, key=key, duration=3), project_dir=Path("."))


def lookups_sent(fake) -> list[str]:
    return [f"{r.url.path}?{r.url.query.decode()}" for r in fake.requests_log if r.method == "GET"]


@pytest.mark.parametrize("only, expected", [
    ("path", "path"), ("list_filter", "list_filter"), ("flag", "flag")])
def test_lookup_tries_each_convention_in_order_and_remembers_the_one_that_worked(only, expected):
    fake = FakeKling(lookup_conventions={only})
    provider = fake_provider(fake)
    job = fake_job()
    created = run(provider.create(job))
    other = fake_job("a gull over the sea", key="c" * 64)
    run(provider.create(other))
    fake.requests_log.clear()
    found = run(provider.lookup(job))
    assert found is not None and found.task_id == created.task_id and not found.adopted
    assert provider.lookup_convention == expected
    tried = lookups_sent(fake)
    order = ["path", "list_filter", "flag"]
    assert len(tried) >= order.index(only) + 1
    # the path slot first, then the list filter, then the flag: each at most once here
    assert tried[0].endswith(f"/{job.external_task_id}?")
    if only != "path":
        assert "external_task_id=" + job.external_task_id in tried[1] and "pageNum=1" in tried[1]
    if only == "flag":
        assert tried[2].endswith(f"/{job.external_task_id}?external_task_id=true")
    fake.requests_log.clear()
    assert run(provider.lookup(other)).task_id != created.task_id
    assert len(lookups_sent(fake)) == 1, "the remembered convention is used straight away"
    fake.requests_log.clear()
    assert run(provider.lookup(fake_job("never sent", key="d" * 64))) is None
    assert len(lookups_sent(fake)) == 1, "a miss of the proven convention is trusted"


def test_list_filter_pages_through_a_server_that_ignores_it():
    fake = FakeKling(lookup_conventions={"flag"}, list_filter_unsupported="ignore")
    provider = fake_provider(fake, lookup_page_size=2)
    job = fake_job()
    created = run(provider.create(job))
    start = time.time()
    for index in range(4):  # newer tasks push ours to the third page
        fake.clock = lambda later=start + 10 * (index + 1): later
        run(provider.create(fake_job(f"later shot {index}", key=f"{index}" * 64)))
    found = run(provider.lookup(job))
    assert found is not None and found.task_id == created.task_id
    assert provider.lookup_convention == "list_filter"
    pages = [u for u in lookups_sent(fake) if "pageNum=" in u]
    assert [p.split("pageNum=")[1].split("&")[0] for p in pages] == ["1", "2", "3"]


def test_quick_lookup_makes_one_documented_call():
    fake = FakeKling(lookup_conventions={"flag"})
    provider = fake_provider(fake)
    job = fake_job()
    run(provider.create(job))
    fake.requests_log.clear()
    assert run(provider.lookup(job, thorough=False)) is None
    assert lookups_sent(fake) == [f"{job.request.endpoint}/{job.external_task_id}?"]
    assert provider.lookup_convention is None, "a miss proves nothing"


@pytest.mark.parametrize("behaviour", ["reject", "return_existing"])
@pytest.mark.parametrize("path_lookup", [True, False])
def test_a_create_under_a_used_external_id_adopts_the_existing_task(behaviour, path_lookup):
    fake = FakeKling(duplicate_external_id=behaviour, polls_to_finish=1,
                     lookup_conventions={"path", "list_filter", "flag"} if path_lookup else {"flag"})
    first = fake_provider(fake)
    job = fake_job()
    created = run(first.create(job))
    run(first.query(job, created.task_id))  # it ran and was paid for
    charged = fake.charged_units
    again = run(fake_provider(fake).create(job))  # another journal, another client: the same account
    assert again.adopted and again.task_id == created.task_id and again.status == "succeed"
    assert fake.creates == {job.external_task_id: 1} and fake.create_attempts == 2
    assert fake.charged_units == charged


def test_a_used_external_id_that_cannot_be_found_is_not_re_sent():
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(400, json={"code": 1201, "request_id": "r",
                                             "message": "external_task_id sb-bbbb is already used"})
        return httpx.Response(404, json={"code": 1203, "message": "not found", "request_id": "r"})

    posts = []
    provider = KlingProvider(KlingCredentials(access_key=AK, secret_key=SK, base_url="https://api.test"),
                             transport=httpx.MockTransport(lambda r: posts.append(r) or refuse(r)), clock=lambda: NOW)
    with pytest.raises(ExternalIdInUse) as caught:
        run(provider.create(fake_job()))
    assert sum(1 for r in posts if r.method == "POST") == 1
    assert caught.value.money_spent is False and "already paid" in str(caught.value)
    assert "nothing was sent again" in caught.value.hint


def test_reported_duration_is_read_from_the_result():
    legacy = {"task_id": "8", "task_status": "succeed", "final_unit_deduction": "1.8",
              "task_result": {"videos": [{"id": "v", "url": "https://cdn/x.mp4", "duration": "5.1"}]}}
    assert task_state(legacy).duration == 5.1 and task_state(legacy).units_charged == 1.8
    assert task_state({"task_id": "9", "task_status": "processing"}).duration is None
    odd = {**legacy, "task_result": {"videos": [{"url": "u", "duration": "five"}]}}
    assert task_state(odd).duration is None
