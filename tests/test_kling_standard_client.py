"""The new-standard Kling wire (kling-api-2.md §7) against the strict, stateful fake of that API.

Plans are made by the real planner from real storyboards (so the bodies checked are the bodies the
tool ships), rendered by the real engine through ``KlingProvider`` with an API key only, and
answered by ``tests.fakes.kling_standard`` on the same fake account as the legacy API. Money is
checked on both sides: creates per external id on the fake, units in the journal against the plan
and against what the fake charged (``billing[]``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from storyboard.errors import AccountError
from storyboard.load.loader import load
from storyboard.media import probe
from storyboard.plan import Plan, planner
from storyboard.render import engine
from storyboard.render.journal import Journal
from storyboard.render.providers.base import Job
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from storyboard.workspace import Workspace
from tests.fakes.kling import FakeKling, Fault
from tests.fakes.server import serve

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "projects" / "turbo-drafts"


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def api_key_provider(fake: FakeKling, **options) -> KlingProvider:
    credentials = KlingCredentials(api_key=fake.api_keys[0], base_url=fake.base_url)
    return KlingProvider(credentials, transport=fake.transport(), sleep=no_sleep, **options)


def make_plan(make_project, yaml_text: str, images: dict | None = None) -> tuple[Plan, Path]:
    project = make_project(yaml_text, images=images)
    return planner.plan(load(project)), project


def render(plan: Plan, project: Path, fake: FakeKling, provider: KlingProvider | None = None) -> engine.RenderResult:
    async def go():
        chosen = provider or api_key_provider(fake)
        try:
            return await engine.render(plan, project, chosen, sleep=no_sleep, poll_initial=0.0)
        finally:
            await chosen.aclose()

    return asyncio.run(go())


def creates_sent(fake: FakeKling) -> list[httpx.Request]:
    return [r for r in fake.requests_log if r.method == "POST" and fake.standard.is_create_path(r.url.path)]


def assert_paid_once(plan: Plan, project: Path, fake: FakeKling) -> None:
    """Every request created exactly once, downloaded, and the journal's units = the plan's = the fake's."""
    with Journal.open(project) as journal:
        records = {r.key: r for r in journal.records("kling")}
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units) == pytest.approx(plan.units)
    for request in plan.requests:
        record = records[request.key]
        assert record.state == "downloaded", (request.id, record)
        assert fake.creates[request.external_task_id] == 1, dict(fake.creates)
        assert record.units == pytest.approx(request.units)
        assert probe(Workspace.at(project).clip("kling", request.key)).duration == pytest.approx(request.duration, abs=0.05)
    assert sum(fake.creates.values()) == len(plan.requests)


TURBO_T2V = """
    name: t
    defaults: {model: kling-v3-turbo, mode: pro, aspect_ratio: "9:16"}
    shots:
      - {id: a, duration: 3, prompt: A paper boat drifts down a rain gutter}
    """

TURBO_MULTI = """
    name: t
    defaults: {model: kling-v3-turbo, negative_prompt: blur}
    shots:
      - {id: a, duration: 3, prompt: close-up of the hero}
      - {id: b, duration: 4, prompt: wide street view}
    """

TURBO_I2V = """
    name: t
    defaults: {model: kling-v3-turbo}
    shots:
      - {id: a, duration: 4, prompt: the cup steams, start_frame: a.png}
    """

V3_I2V_FRAMES = """
    name: t
    defaults: {model: kling-v3, api: new, mode: pro, sound: true}
    shots:
      - {id: a, duration: 5, prompt: the cup turns, start_frame: a.png, end_frame: b.png}
    """

V26_T2V = """
    name: t
    defaults: {model: kling-v2-6, api: new}
    shots:
      - {id: a, duration: 5, prompt: a lighthouse at dusk}
    """

IMAGES = {"a.png": (1280, 720), "b.png": (1280, 720)}


def b64(project: Path, name: str) -> str:
    return base64.b64encode((project / name).read_bytes()).decode("ascii")


# ---- exact bodies per request kind -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["turbo-t2v", "turbo-multi-shot", "turbo-i2v", "v3-i2v-frames", "v2-6-t2v"])
def test_exact_body_per_request_kind_is_sent_with_the_api_key_and_accepted(make_project, kind):
    yaml_text, endpoint, expected = {
        "turbo-t2v": (TURBO_T2V, "/text-to-video/kling-3.0-turbo", lambda p: {
            "prompt": "A paper boat drifts down a rain gutter",
            "settings": {"resolution": "1080p", "aspect_ratio": "9:16", "duration": 3}}),
        "turbo-multi-shot": (TURBO_MULTI, "/text-to-video/kling-3.0-turbo", lambda p: {
            "prompt": "shot 1, 3, close-up of the hero; shot 2, 4, wide street view; Avoid: blur.",
            "settings": {"resolution": "720p", "aspect_ratio": "16:9", "duration": 7}}),
        "turbo-i2v": (TURBO_I2V, "/image-to-video/kling-3.0-turbo", lambda p: {
            "contents": [{"type": "prompt", "text": "the cup steams"}, {"type": "first_frame", "url": b64(p, "a.png")}],
            "settings": {"resolution": "720p", "duration": 4}}),
        "v3-i2v-frames": (V3_I2V_FRAMES, "/image-to-video/kling-3.0", lambda p: {
            "contents": [{"type": "prompt", "text": "the cup turns"}, {"type": "first_frame", "url": b64(p, "a.png")},
                         {"type": "last_frame", "url": b64(p, "b.png")}],
            "settings": {"resolution": "1080p", "duration": 5, "audio": "native", "multi_shot": False}}),
        "v2-6-t2v": (V26_T2V, "/text-to-video/kling-2.6", lambda p: {
            "prompt": "a lighthouse at dusk",
            "settings": {"resolution": "720p", "aspect_ratio": "16:9", "duration": 5, "audio": "off"}}),
    }[kind]
    fake = FakeKling(polls_to_finish=2)
    plan, project = make_plan(make_project, yaml_text, IMAGES)
    (request,) = plan.requests
    assert (request.api, request.endpoint) == ("new", endpoint)
    result = render(plan, project, fake)
    assert result.done == [request.id], result
    (sent,) = creates_sent(fake)
    assert sent.url.path == endpoint
    assert json.loads(sent.content) == {**expected(project), "options": {"external_task_id": request.external_task_id}}
    assert sent.headers["authorization"] == f"Bearer {fake.api_keys[0]}"
    polls = [r for r in fake.requests_log if r.url.path == "/tasks"]
    assert polls and all(set(r.url.params) <= {"task_ids", "external_task_ids"} for r in polls)
    assert not [r for r in fake.requests_log if r.url.path.startswith("/v1/")], "nothing went to the legacy API"
    assert_paid_once(plan, project, fake)


def test_a_mixed_storyboard_sends_each_request_to_its_own_api_under_one_journal(make_project):
    plan, project = make_plan(make_project, """
        name: t
        defaults: {model: kling-v3, mode: std}
        shots:
          - {id: old, duration: 3, prompt: a lighthouse at dusk}
          - {id: new, duration: 3, prompt: a gull over the sea, model: kling-v3-turbo}
        """)
    assert sorted(r.api for r in plan.requests) == ["legacy", "new"]
    fake = FakeKling(polls_to_finish=1)
    render(plan, project, fake)
    legacy = [r for r in fake.requests_log if r.method == "POST" and r.url.path == "/v1/videos/text2video"]
    assert len(legacy) == 1 and len(creates_sent(fake)) == 1
    assert "external_task_id" in json.loads(legacy[0].content)
    assert_paid_once(plan, project, fake)


# ---- the strict fake refuses what the reference does not document -------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/text-to-video/kling-3.0-turbo", {"prompt": "x", "negative_prompt": "y"}, "negative_prompt"),
        ("/text-to-video/kling-3.0-turbo", {"prompt": "x", "settings": {"multi_shot": False}}, "settings.multi_shot"),
        ("/text-to-video/kling-3.0-turbo", {"prompt": "x", "settings": {"audio": "native"}}, "settings.audio"),
        ("/text-to-video/kling-3.0", {"prompt": "x", "settings": {"mode": "pro"}}, "settings.mode"),
        ("/text-to-video/kling-3.0", {"prompt": "x", "settings": {"duration": 20}}, "settings.duration"),
        ("/text-to-video/kling-3.0", {"prompt": "x", "settings": {"duration": "5"}}, "settings.duration"),
        ("/text-to-video/kling-2.6", {"prompt": "x", "settings": {"duration": 7}}, "settings.duration"),
        ("/text-to-video/kling-3.0", {"prompt": "x", "settings": {"resolution": "720P"}}, "settings.resolution"),
        ("/text-to-video/kling-3.0", {"prompt": "x", "external_task_id": "top-level"}, "external_task_id"),
        ("/image-to-video/kling-3.0-turbo", {"contents": [{"type": "prompt", "text": "x"},
                                                           {"type": "end_frame", "url": "https://e.x/a.png"}]},
         "contents[1].type"),
        ("/image-to-video/kling-3.0", {"contents": [{"type": "prompt", "text": "x"},
                                                    {"type": "first_frame", "url": "https://e.x/a.png"}],
                                       "settings": {"aspect_ratio": "16:9"}}, "settings.aspect_ratio"),
        ("/omni-video/kling-3.0-omni", {"contents": [{"type": "prompt", "text": "x"}]}, "settings.aspect_ratio"),
        ("/omni-video/kling-v3-omni", {"contents": [{"type": "prompt", "text": "x"}]}, "model"),
        ("/text-to-video/kling-3.0", {"prompt": "shot 1, 2, a; shot 2, 2, b;", "settings": {"duration": 5}}, "prompt"),
    ],
    ids=["negative-prompt", "turbo-multi-shot", "turbo-audio", "mode", "duration-20", "duration-string",
         "duration-2-6", "upper-case", "top-level-external-id", "end-frame", "i2v-aspect", "omni-no-aspect",
         "legacy-alias", "inline-sum"],
)
def test_the_fake_refuses_every_undocumented_field_or_value(path, body, field):
    fake = FakeKling()
    headers = {"Authorization": f"Bearer {fake.api_keys[0]}", "Content-Type": "application/json"}
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client:
        answer = client.post(path, json=body, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (400, 1201), answer.json()
    assert answer.json()["message"].startswith(field), answer.json()
    assert sum(fake.creates.values()) == 0


def test_the_fake_accepts_motion_control_and_omni_video_parts():
    fake = FakeKling()
    headers = {"Authorization": f"Bearer {fake.api_keys[0]}", "Content-Type": "application/json"}
    bodies = {
        "/motion-control/kling-3.0": {"contents": [{"type": "prompt", "text": "she walks"},
                                                   {"type": "image", "url": "https://e.x/woman.png"},
                                                   {"type": "video", "url": "https://e.x/walk_8s.mp4"}],
                                      "settings": {"character_orientation": "image", "resolution": "1080p",
                                                   "audio": "off"}},
        "/omni-video/kling-3.0-omni": {"contents": [{"type": "prompt", "text": "Turn the parrot in @video_1 blue"},
                                                    {"type": "base_video", "url": "https://e.x/parrot_5s.mp4",
                                                     "id": "video_1"}],
                                       "settings": {"resolution": "1080p", "audio": "original", "multi_shot": False}},
    }
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client:
        for path, body in bodies.items():
            answer = client.post(path, json=body, headers=headers)
            assert answer.status_code == 200, answer.json()
        jwt_answer = client.post("/motion-control/kling-3.0", json=bodies["/motion-control/kling-3.0"],
                                 headers={**headers, "Authorization": f"Bearer {fake.token()}"})
    assert (jwt_answer.status_code, jwt_answer.json()["code"]) == (401, 1002)
    assert [t.units for t in fake.tasks.values()] == [pytest.approx(9.6), pytest.approx(6.0)]  # 8 s x 1.2, 5 s x 1.2


# ---- credentials -------------------------------------------------------------------------------


def test_only_an_access_key_pair_is_refused_before_anything_is_sent(make_project):
    fake = FakeKling(polls_to_finish=1)
    plan, project = make_plan(make_project, TURBO_T2V)
    provider = KlingProvider(KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key,
                                              base_url=fake.base_url), transport=fake.transport(), sleep=no_sleep)
    job = Job(request=plan.requests[0], project_dir=project)

    async def go():
        try:
            await provider.create(job)
        finally:
            await provider.aclose()

    with pytest.raises(AccountError) as caught:
        asyncio.run(go())
    assert "accepts only an API key" in str(caught.value) and "KLINGAI_API_KEY" in caught.value.hint
    assert fake.secret_key not in str(caught.value) and fake.create_attempts == 0 and not fake.requests_log
    result = render(plan, project, fake, provider=KlingProvider(
        KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url),
        transport=fake.transport(), sleep=no_sleep))
    assert [failed[0] for failed in result.failed] == [plan.requests[0].id] and fake.create_attempts == 0


# ---- lookup and adoption by external id --------------------------------------------------------


def test_lookup_by_external_id_finds_the_task_and_an_unknown_id_is_an_empty_answer(make_project):
    fake = FakeKling(polls_to_finish=3)
    plan, project = make_plan(make_project, TURBO_T2V)
    job = Job(request=plan.requests[0], project_dir=project)
    provider = api_key_provider(fake)

    async def go():
        try:
            missing = await provider.lookup(job)
            created = await provider.create(job)
            found = await provider.lookup(job, thorough=False)
            return missing, created, found
        finally:
            await provider.aclose()

    missing, created, found = asyncio.run(go())
    assert missing is None
    assert found is not None and found.task_id == created.task_id and not found.adopted
    lookups = [r for r in fake.requests_log if "external_task_ids" in r.url.params]
    assert len(lookups) == 2 and lookups[0].url.params["external_task_ids"] == job.external_task_id
    assert fake.polls[created.task_id] == 0, "a lookup never advances a task"


@pytest.mark.parametrize("duplicate", ["reject", "return_existing"])
def test_a_deleted_journal_adopts_every_task_on_the_new_api_with_zero_creates(make_project, duplicate):
    fake = FakeKling(polls_to_finish=1, duplicate_external_id=duplicate)
    plan, project = make_plan(make_project, TURBO_MULTI + "  - {id: c, duration: 5, prompt: a third, model: kling-v3,"
                                                          " api: new, sound: false}\n")
    render(plan, project, fake)
    charged = fake.charged_units
    shutil.rmtree(project / ".storyboard")
    result = render(plan, project, fake)
    assert sorted(result.adopted) == sorted(r.id for r in plan.requests), result
    assert fake.charged_units == charged and sum(fake.creates.values()) == len(plan.requests)


def test_an_external_id_used_on_the_legacy_api_is_adopted_by_a_new_api_create(make_project):
    """External ids are unique across both APIs of an account: a new-API create under an id a legacy task
    holds is refused, and that task (paid) is adopted, found through ``GET /tasks?task_ids=``."""
    fake = FakeKling(polls_to_finish=1)
    plan, project = make_plan(make_project, TURBO_T2V)
    request = plan.requests[0]
    headers = fake.auth_headers()
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client:
        legacy = client.post("/v1/videos/text2video", headers=headers, json={
            "model_name": "kling-v3", "prompt": "earlier", "duration": "3", "external_task_id": request.external_task_id})
    assert legacy.status_code == 200
    provider = api_key_provider(fake)
    job = Job(request=request, project_dir=project)

    async def go():
        try:
            return await provider.create(job)
        finally:
            await provider.aclose()

    state = asyncio.run(go())
    assert state.adopted and state.task_id == legacy.json()["data"]["task_id"]
    assert fake.creates[request.external_task_id] == 1 and fake.create_attempts == 2


# ---- faults survived with no duplicate create --------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [Fault("concurrency_1303", on="create", times=2), Fault("internal_5000", on="create", recorded=True),
     Fault("internal_5000", on="create"), Fault("drop_after_create"), Fault("drop_after_create", error="read_timeout"),
     Fault("drop_before_create"), Fault("truncated_download", full_length=True), Fault("timeout_5002", on="query")],
    ids=["1303", "5000-after-accept", "5000-lost", "dropped", "read-timeout", "refused", "truncated-mid-body",
         "5002-query"],
)
def test_faults_are_survived_without_a_duplicate_create(make_project, fault):
    fake = FakeKling(polls_to_finish=2)
    fake.inject(fault)
    plan, project = make_plan(make_project, V3_I2V_FRAMES, IMAGES)
    result = render(plan, project, fake)
    assert result.failed == [], result
    assert fake.faults_hit[fault.kind] == fault.times
    assert_paid_once(plan, project, fake)


def test_a_task_failed_on_the_new_api_is_journaled_unpaid_from_billing(make_project):
    fake = FakeKling(polls_to_finish=1)
    fake.script("paper boat", fail="risk control")
    plan, project = make_plan(make_project, TURBO_T2V)
    result = render(plan, project, fake)
    assert [failed[0] for failed in result.failed] == [plan.requests[0].id] and fake.charged_units == 0
    with Journal.open(project) as journal:
        (record,) = journal.records("kling")
        assert record.state == "failed" and not record.units and "risk control" in (record.error or "")


# ---- watermarked copies ------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["legacy", "new"])
def test_a_watermarked_copy_is_downloaded_beside_the_clip_when_asked(make_project, api):
    fake = FakeKling(polls_to_finish=1)
    plan, project = make_plan(make_project, f"""
        name: t
        defaults: {{model: kling-v3, api: {api}, watermark: true}}
        shots:
          - {{id: a, duration: 3, prompt: a lighthouse at dusk}}
        """)
    (request,) = plan.requests
    provider = KlingProvider(KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key,
                                              api_key=fake.api_keys[0], base_url=fake.base_url),
                             transport=fake.transport(), sleep=no_sleep)
    render(plan, project, fake, provider=provider)
    workspace = Workspace.at(project)
    copy = workspace.watermarked_clip("kling", request.key)
    assert probe(copy).duration == pytest.approx(3, abs=0.05)
    assert workspace.rendered_clips("kling", plan.requests) == {request.key: workspace.clip("kling", request.key)}
    (task,) = fake.tasks.values()
    assert fake.downloads[task.task_id] == 2 and task.watermark


def test_no_watermarked_copy_is_fetched_unless_asked(make_project):
    fake = FakeKling(polls_to_finish=1)
    plan, project = make_plan(make_project, TURBO_T2V)
    render(plan, project, fake)
    assert not list((project / ".storyboard" / "clips" / "kling").glob("*.watermarked.mp4"))
    (task,) = fake.tasks.values()
    assert fake.downloads[task.task_id] == 1


# ---- the example, end to end through the real CLI ----------------------------------------------


def test_the_turbo_example_runs_end_to_end_through_the_new_api_with_an_api_key_only(tmp_path):
    project = tmp_path / "turbo-drafts"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".storyboard", "out"))
    fake = FakeKling(polls_to_finish=2)
    storyboard = str(Path(sys.executable).with_name("storyboard"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLINGAI_")}
    with serve(fake) as base_url:
        env.update({"KLINGAI_API_KEY": fake.api_keys[0], "KLINGAI_BASE_URL": base_url,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))})
        run = subprocess.run([storyboard, "run", str(project), "--yes"], env=env, capture_output=True, text=True,
                             timeout=300)
        again = subprocess.run([storyboard, "run", str(project), "--yes"], env=env, capture_output=True, text=True,
                               timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    plan = planner.plan(load(project))
    assert {r.api for r in plan.requests} == {"new"}
    assert not [r for r in fake.requests_log if r.url.path.startswith("/v1/")]
    assert sum(fake.creates.values()) == len(plan.requests), "the second run paid nothing"
    assert_paid_once(plan, project, fake)
    cuts = sorted((project / "out").glob("*.mp4"))
    assert cuts, run.stdout
    assert probe(cuts[0]).duration == pytest.approx(sum(r.duration for r in plan.requests), abs=0.2)
    for text in (run.stdout, run.stderr, again.stdout):
        assert fake.api_keys[0] not in text
    files = [p.read_bytes().decode("latin-1") for p in (project / ".storyboard").rglob("*") if p.is_file()]
    assert not any(fake.api_keys[0] in blob for blob in files)


# ---- elements: registered once on the account, sent as string ids -----------------------------


def test_an_element_registered_for_a_new_api_request_is_sent_as_a_string_id_part(make_project):
    fake = FakeKling(polls_to_finish=1, require_known_elements=True)
    plan, project = make_plan(make_project, """
        name: t
        defaults: {model: kling-v3-omni, api: new}
        references:
          mira:
            image: refs/mira.png
            description: Young woman, short silver hair
            element: {name: Mira, extra_images: [refs/mira_side.png]}
        shots:
          - {id: a, duration: 5, references: [mira], prompt: "{{ ref('mira') }} waves"}
        """, {"refs/mira.png": (640, 640), "refs/mira_side.png": (641, 640)})
    (request,) = plan.requests
    assert request.api == "new" and request.endpoint == "/omni-video/kling-3.0-omni"
    render(plan, project, fake)
    (element_task,) = [t for t in fake.tasks.values() if t.element]
    (sent,) = creates_sent(fake)
    body = json.loads(sent.content)
    (part,) = [p for p in body["contents"] if p["type"] == "element"]
    assert part == {"type": "element", "element_id": str(element_task.element_id), "id": "element_1"}
    assert body["contents"][0] == {"type": "prompt", "text": "@element_1 waves"}
    assert_paid_once(plan, project, fake)
