"""The render engine against the stateful fake Kling (the network edge is the only thing faked).

The money invariants checked after every scenario: every request was created on Kling exactly once
(``fake.creates``), every clip is intact (probed), and the journal's units equal what the fake
charged.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest
from test_kling_client import make_request

from storyboard.media import probe
from storyboard.plan import ElementRegistration, Plan, Request
from storyboard.render import engine
from storyboard.render.journal import Journal
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from tests.fakes.kling import FakeKling, Fault

SECONDS = 3  # kling-v3's shortest duration; the fake's 3 s 160x90 video is cached on disk


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def t2v(index: int, prompt: str | None = None, **extra) -> Request:
    text = prompt or f"shot number {index}: a lighthouse at dusk"
    key = f"{index:02d}".ljust(8, "k") + __import__("hashlib").sha256(text.encode()).hexdigest()[8:]
    body = {"model_name": "kling-v3", "prompt": text, "mode": "std", "duration": str(SECONDS), "aspect_ratio": "16:9"}
    return make_request("text2video", body=body, key=key, duration=SECONDS, id=f"r{index:02d}", **extra)


def make_plan(requests: list[Request]) -> Plan:
    units = sum(r.units for r in requests)
    return Plan(project="test", storyboard="storyboard.yaml", requests=requests, units=units, usd=units * 0.14)


def provider_for(fake: FakeKling, transport: httpx.AsyncBaseTransport | None = None) -> KlingProvider:
    credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)
    return KlingProvider(credentials, transport=transport or fake.transport(), sleep=no_sleep)


def render(plan: Plan, project: Path, fake: FakeKling, transport=None, **options) -> engine.RenderResult:
    async def go():
        provider = provider_for(fake, transport)
        try:
            return await engine.render(plan, project, provider, sleep=no_sleep, **options)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def assert_paid_once_and_intact(plan: Plan, project: Path, fake: FakeKling) -> None:
    with Journal.open(project) as journal:
        records = {r.key: r for r in journal.records("kling")}
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units)
    for request in plan.requests:
        record = records[request.key]
        assert record.state == "downloaded", (request.id, record)
        assert fake.creates[record.external_task_id] == 1, (request.id, dict(fake.creates))
        facts = probe(engine.clip_path(project, "kling", request.key))
        assert facts.frames == SECONDS * 24 and (facts.width, facts.height) == (160, 90)
    assert sum(fake.creates.values()) == len(plan.requests)


# ---- the happy path, reruns, edits -----------------------------------------------------------


def test_render_then_unchanged_rerun_creates_nothing_and_one_edit_creates_one(tmp_path):
    fake = FakeKling()
    requests = [t2v(i) for i in range(4)]
    plan = make_plan(requests)
    events: list[engine.RenderEvent] = []
    result = render(plan, tmp_path, fake, events=events.append)
    assert result.ok and sorted(result.done) == ["r00", "r01", "r02", "r03"]
    assert result.units_spent == pytest.approx(4 * 1.8) == pytest.approx(fake.charged_units)
    assert_paid_once_and_intact(plan, tmp_path, fake)
    assert {e.state for e in events} >= {"queued", "submitted", "processing", "downloading", "done"}

    again = render(plan, tmp_path, fake)
    assert again.ok and sorted(again.reused) == ["r00", "r01", "r02", "r03"] and again.units_spent == 0
    assert sum(fake.creates.values()) == 4

    edited = make_plan(requests[:3] + [t2v(3, prompt="shot number 3: the lighthouse in a storm")])
    third = render(edited, tmp_path, fake)
    assert third.ok and third.done == ["r03"] and len(third.reused) == 3
    assert sum(fake.creates.values()) == 5
    assert [d for _, d, _ in engine.preview_plan(edited, tmp_path, "kling")] == ["reuse"] * 4


def test_preview_plan_marks_reuse_resume_create(tmp_path):
    fake = FakeKling()
    plan = make_plan([t2v(i) for i in range(3)])
    render(make_plan(plan.requests[:1]), tmp_path, fake)
    with Journal.open(tmp_path) as journal:
        journal.claim("kling", plan.requests[1].key, "r01", plan.requests[1].external_task_id, 1.8, None)
    rows = engine.preview_plan(plan, tmp_path, "kling")
    assert [(r.id, d, u) for r, d, u in rows] == [("r00", "reuse", 0.0), ("r01", "resume", 1.8), ("r02", "create", 1.8)]
    assert [d for _, d, _ in engine.preview_plan(plan, tmp_path, "preview")] == ["create"] * 3


# ---- crash and resume -------------------------------------------------------------------------


class Crash(Exception):
    """Stands for the process dying at this instant."""


class CrashingTransport(httpx.AsyncBaseTransport):
    """Forwards to the fake, but 'dies' just before or just after the N-th request reaches it."""

    def __init__(self, fake: FakeKling, crash_at: int, after: bool, creates_only: bool = False) -> None:
        self.inner = fake.transport()
        self.count = 0
        self.crash_at = crash_at
        self.after = after
        self.creates_only = creates_only

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.creates_only and request.method != "POST":
            return await self.inner.handle_async_request(request)
        self.count += 1
        if self.count == self.crash_at and not self.after:
            raise Crash(f"before request {self.count}")
        response = await self.inner.handle_async_request(request)
        if self.count == self.crash_at:
            raise Crash(f"after request {self.count}")
        return response


def crashing_run(plan: Plan, project: Path, fake: FakeKling, rng: random.Random) -> None:
    """One render that dies at a random point: in an event hook, mid-HTTP, or by cancellation."""
    mode = rng.choice(["event", "http-before", "http-after", "create-before", "create-after", "cancel"])
    crash_event = rng.randint(1, 60)
    transport = None
    if mode.startswith("http"):  # any request: a create, a poll, a lookup or a download
        transport = CrashingTransport(fake, rng.randint(1, 50), after=mode == "http-after")
    elif mode.startswith("create"):  # after the claim, before/after Kling recorded the task
        transport = CrashingTransport(fake, rng.randint(1, 12), after=mode == "create-after", creates_only=True)
    seen = 0

    async def go():
        provider = provider_for(fake, transport)
        current = asyncio.current_task()

        def hook(event: engine.RenderEvent) -> None:
            nonlocal seen
            seen += 1
            if seen == crash_event and mode == "event":
                raise Crash(f"in event {event.state} of {event.request_id}")
            if seen == crash_event and mode == "cancel":
                current.cancel()

        try:
            await engine.render(plan, project, provider, sleep=no_sleep, events=hook, concurrency=rng.choice([1, 2, 4]))
        finally:
            await provider.aclose()

    try:
        asyncio.run(go())
    except (Crash, asyncio.CancelledError):
        pass


@pytest.mark.parametrize("seed", range(12))
def test_random_crashes_then_resume_pay_each_request_exactly_once(tmp_path, seed):
    rng = random.Random(seed)
    fake = FakeKling(polls_to_finish=rng.choice([1, 2, 3]))
    plan = make_plan([t2v(i) for i in range(12)])
    for _ in range(rng.randint(1, 3)):
        crashing_run(plan, tmp_path, fake, rng)
    result = render(plan, tmp_path, fake, concurrency=3)
    assert result.ok, (result.failed, result.skipped)
    assert_paid_once_and_intact(plan, tmp_path, fake)
    assert not list((tmp_path / ".storyboard" / "clips" / "kling").glob(".*.part"))


# ---- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    Fault("rate_limit_1302", times=3, on="create"),
    Fault("concurrency_1303", times=4, on="create"),
    Fault("internal_5000", on="create"),
    Fault("internal_5000", on="create", recorded=True),
    Fault("timeout_5002", on="create", recorded=True),
    Fault("timeout_5002", on="create"),
    Fault("unavailable_5001", times=3, on="any"),
    Fault("drop_after_create"),
    Fault("drop_after_create", error="read_timeout", times=2),
    Fault("drop_before_create", times=2),
    Fault("internal_5000", on="query", times=2),
    Fault("truncated_download", times=2),
    Fault("slow_download"),
], ids=lambda f: f"{f.kind}-{f.on}-{'rec' if f.recorded else ''}{f.error}")
def test_each_fault_is_survived_without_paying_twice(tmp_path, fault):
    fake = FakeKling()
    fake.inject(fault)
    plan = make_plan([t2v(i) for i in range(3)])
    result = render(plan, tmp_path, fake)
    assert result.ok, (result.failed, result.skipped)
    assert fake.faults_hit[fault.kind] >= 1
    assert_paid_once_and_intact(plan, tmp_path, fake)


def test_resource_pack_exhausted_stops_new_creates_and_keeps_rendered_clips(tmp_path):
    fake = FakeKling()
    fake.units_balance = 2 * 1.8  # two 3 s clips, then 1102
    plan = make_plan([t2v(i) for i in range(5)])
    result = render(plan, tmp_path, fake, concurrency=1)
    assert len(result.done) == 2 and not result.ok
    assert result.fatal.startswith("your Kling resource pack is used up")
    assert "buy units, then run again; the 2 clips already rendered are kept" in result.fatal
    assert sum(fake.creates.values()) == 2 and fake.create_attempts == 3  # 1102 refused once, never retried
    assert len(result.failed) + len(result.skipped) == 3
    fake.units_balance = None  # the user bought units
    rerun = render(plan, tmp_path, fake)
    assert rerun.ok and len(rerun.reused) == 2 and len(rerun.done) == 3
    assert_paid_once_and_intact(plan, tmp_path, fake)


def test_failed_task_is_retried_on_rerun_with_a_new_external_id(tmp_path):
    fake = FakeKling()
    plan = make_plan([t2v(0), t2v(1)])
    fake.script(plan.requests[1].external_task_id, fail="content moderation", times=1)
    first = render(plan, tmp_path, fake)
    assert first.done == ["r00"] and first.failed[0][0] == "r01" and "content moderation" in first.failed[0][1]
    second = render(plan, tmp_path, fake)
    assert second.ok and second.done == ["r01"]
    assert fake.creates[plan.requests[1].external_task_id] == 1
    assert fake.creates[plan.requests[1].external_task_id + "-2"] == 1
    with Journal.open(tmp_path) as journal:
        assert journal.get("kling", plan.requests[1].key).attempt == 2
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units)


# ---- budget -----------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [0.5, 5.0, 10.0, 13.0])
def test_budget_is_never_exceeded_even_with_8_in_flight(tmp_path, budget):
    fake = FakeKling(polls_to_finish=3)
    plan = make_plan([t2v(i) for i in range(12)])  # 21.6 units
    result = render(plan, tmp_path, fake, concurrency=8, max_cost_units=budget)
    assert fake.charged_units <= budget + 1e-9
    assert len(result.done) == int(budget // 1.8)
    assert all("budget" in reason for _, reason in result.skipped)
    assert len(result.skipped) == 12 - len(result.done)
    rerun = render(plan, tmp_path, fake, concurrency=8)  # a rerun without a budget finishes the rest
    assert rerun.ok
    assert_paid_once_and_intact(plan, tmp_path, fake)


# ---- chaining and elements ------------------------------------------------------------------------


def chained_plan() -> Plan:
    first = t2v(0)
    second_body = {"model_name": "kling-v3", "prompt": "the lighthouse, continued", "mode": "std",
                   "duration": str(SECONDS), "image": "frame://last/" + first.key}
    second = make_request("image2video", body=second_body, key="c" * 64, duration=SECONDS, id="r01",
                          depends_on=[first.key])
    return make_plan([second, first])  # order in the plan does not matter


def test_chained_request_sends_the_upstream_last_frame(tmp_path):
    fake = FakeKling()
    plan = chained_plan()
    result = render(plan, tmp_path, fake)
    assert result.ok
    frame = tmp_path / ".storyboard" / "frames" / f"{plan.requests[1].key}.png"
    assert frame.is_file()
    import base64

    sent = fake.task_by_external_id(plan.requests[0].external_task_id).body["image"]
    assert sent == base64.b64encode(frame.read_bytes()).decode()
    assert_paid_once_and_intact(plan, tmp_path, fake)


def test_dependent_is_skipped_when_upstream_fails(tmp_path):
    fake = FakeKling()
    plan = chained_plan()
    fake.script(plan.requests[1].external_task_id, fail="policy", times=1)
    result = render(plan, tmp_path, fake)
    assert [r for r, _ in result.failed] == ["r00"]
    assert [r for r, _ in result.skipped] == ["r01"] and "r00" in result.skipped[0][1]
    assert fake.creates[plan.requests[0].external_task_id] == 0


def test_elements_are_registered_once_per_account(tmp_path):
    from PIL import Image

    fake = FakeKling()
    for name, colour in (("front.png", 40), ("side.png", 90)):
        Image.new("RGB", (320, 320), (colour, 50, 50)).save(tmp_path / name)
    registration = ElementRegistration(placeholder="element://sha256/" + "e" * 64, reference="mira", name="Mira",
                                       description="a woman in a green raincoat",
                                       frontal_image="image://sha256/" + "e" * 64,
                                       refer_images=["image://sha256/" + "d" * 64], tags=["o_102"])
    requests = []
    for index in range(3):
        body = {"model_name": "kling-v3-omni", "prompt": f"<<<element_1>>> walks, take {index}", "mode": "std",
                "duration": str(SECONDS), "aspect_ratio": "16:9",
                "element_list": [{"element_id": "element://sha256/" + "e" * 64}]}
        requests.append(make_request("omni-video", body=body, key=f"{index}" * 64, duration=SECONDS, id=f"r{index:02d}",
                                     images={"e" * 64: "front.png", "d" * 64: "side.png"}, elements=[registration]))
    plan = make_plan(requests)
    result = render(plan, tmp_path, fake, concurrency=3)
    assert result.ok, result.failed
    assert sum(fake.element_creates.values()) == 1
    element_id = next(t.element_id for t in fake.tasks.values() if t.element)
    assert all(fake.task_by_external_id(r.external_task_id).body["element_list"] == [{"element_id": element_id}]
               for r in requests)
    with Journal.open(tmp_path) as journal:
        assert journal.element_id("kling", "e" * 64) == element_id


def test_a_failed_element_registration_is_retried_on_rerun_with_a_new_external_id(tmp_path):
    from PIL import Image

    fake = FakeKling()
    for name, colour in (("front.png", 40), ("side.png", 90)):
        Image.new("RGB", (320, 320), (colour, 50, 50)).save(tmp_path / name)
    registration = ElementRegistration(placeholder="element://sha256/" + "e" * 64, reference="mira", name="Mira",
                                       description="a woman in a green raincoat",
                                       frontal_image="image://sha256/" + "e" * 64,
                                       refer_images=["image://sha256/" + "d" * 64])
    body = {"model_name": "kling-v3-omni", "prompt": "<<<element_1>>> walks", "mode": "std",
            "duration": str(SECONDS), "aspect_ratio": "16:9",
            "element_list": [{"element_id": "element://sha256/" + "e" * 64}]}
    plan = make_plan([make_request("omni-video", body=body, key="1" * 64, duration=SECONDS, id="r00",
                                   images={"e" * 64: "front.png", "d" * 64: "side.png"}, elements=[registration])])
    first_id = "sb-el-" + "e" * 40
    fake.script(first_id, fail="the face is not clear", times=1)
    first = render(plan, tmp_path, fake)
    assert [r for r, _ in first.failed] == ["r00"] and "could not create the element" in first.failed[0][1]
    assert sum(fake.creates.values()) == 0, "no video is paid for while its element is missing"
    second = render(plan, tmp_path, fake)
    assert second.ok, second.failed
    assert dict(fake.element_creates) == {first_id: 1, first_id + "-2": 1}
    assert sum(fake.creates.values()) == 1


# ---- secrets ------------------------------------------------------------------------------------


def test_no_secret_in_journal_clips_events_or_errors(tmp_path):
    fake = FakeKling()
    fake.units_balance = 1.8
    fake.inject(Fault("internal_5000", on="create"))
    plan = make_plan([t2v(i) for i in range(3)])
    events: list[engine.RenderEvent] = []
    result = render(plan, tmp_path, fake, events=events.append)
    tokens = {r.headers["authorization"].removeprefix("Bearer ") for r in fake.requests_log if "authorization" in r.headers}
    secrets = {fake.access_key, fake.secret_key, *tokens}
    assert tokens
    blobs = [str(result), *map(str, events)]
    blobs += [p.read_bytes().decode("latin-1") for p in (tmp_path / ".storyboard").rglob("*") if p.is_file()]
    for secret in secrets:
        assert not any(secret in blob for blob in blobs)
        assert not fake.requests_containing(secret)


# ---- adoption: the account remembers what the journal forgot ------------------------------------

ACCOUNTS = {
    "found-by-lookup": {},
    "create-refused-1201": {"lookup_conventions": {"flag"}},
    "create-returns-existing": {"lookup_conventions": {"flag"}, "duplicate_external_id": "return_existing"},
}
"""How the fake account meets a second render of the same requests: the quick lookup before the
create finds the task, or (the path slot not answering external ids) the create is sent and Kling
refuses it with 1201 naming the task, or answers with the existing task."""


@pytest.mark.parametrize("account", sorted(ACCOUNTS))
def test_a_deleted_journal_adopts_every_paid_task_and_creates_nothing(tmp_path, account):
    import shutil

    fake = FakeKling(**ACCOUNTS[account])
    plan = make_plan([t2v(i) for i in range(3)])
    assert render(plan, tmp_path, fake).ok
    charged, attempts = fake.charged_units, fake.create_attempts
    shutil.rmtree(tmp_path / ".storyboard")
    events: list[engine.RenderEvent] = []
    again = render(plan, tmp_path, fake, events=events.append)
    assert again.ok, again.failed
    assert sorted(again.adopted) == ["r00", "r01", "r02"] and again.done == [] and again.units_spent == 0
    assert again.units_resumed == pytest.approx(charged) and fake.charged_units == charged
    assert sum(fake.creates.values()) == 3
    assert fake.create_attempts == attempts + (0 if account == "found-by-lookup" else 3)
    adopted = [e for e in events if e.state == "adopted"]
    assert len(adopted) == 3 and all("adopted (already paid)" in e.message for e in adopted)
    with Journal.open(tmp_path) as journal:
        assert all(r.adopted for r in journal.records("kling"))
    assert_paid_once_and_intact(plan, tmp_path, fake)
    third = render(plan, tmp_path, fake)
    assert sorted(third.reused) == ["r00", "r01", "r02"] and sum(fake.creates.values()) == 3


def test_adoption_skips_a_failed_earlier_attempt_and_takes_the_retry(tmp_path):
    import shutil

    fake = FakeKling()
    plan = make_plan([t2v(0), t2v(1)])
    fake.script(plan.requests[1].external_task_id, fail="content moderation", times=1)
    render(plan, tmp_path, fake)
    assert render(plan, tmp_path, fake).ok  # r01 paid under its -2 id
    shutil.rmtree(tmp_path / ".storyboard")
    again = render(plan, tmp_path, fake)
    assert again.ok and sorted(again.adopted) == ["r00", "r01"]
    assert dict(fake.creates) == {plan.requests[0].external_task_id: 1, plan.requests[1].external_task_id: 1,
                                  plan.requests[1].external_task_id + "-2": 1}
    with Journal.open(tmp_path) as journal:
        record = journal.get("kling", plan.requests[1].key)
        assert (record.attempt, record.external_task_id, record.adopted) == (2, plan.requests[1].external_task_id + "-2", True)


def test_a_failed_task_found_on_the_account_is_retried_under_the_next_id(tmp_path):
    import shutil

    fake = FakeKling()
    plan = make_plan([t2v(0)])
    fake.script(plan.requests[0].external_task_id, fail="content moderation", times=1)
    assert not render(plan, tmp_path, fake).ok
    shutil.rmtree(tmp_path / ".storyboard")
    again = render(plan, tmp_path, fake)
    assert again.ok and again.done == ["r00"] and again.adopted == []
    assert fake.creates[plan.requests[0].external_task_id + "-2"] == 1
    assert fake.creates[plan.requests[0].external_task_id] == 1


def test_the_preview_never_looks_for_paid_tasks(tmp_path):
    from storyboard.render.providers.preview import PreviewProvider

    class Counting(PreviewProvider):
        lookups = 0

        async def lookup(self, job, *, thorough=True):
            Counting.lookups += 1
            return await super().lookup(job, thorough=thorough)

    plan = make_plan([t2v(0)])

    async def go():
        return await engine.render(plan, tmp_path, Counting(tmp_path), sleep=no_sleep)

    result = asyncio.run(go())
    assert result.ok and result.done == ["r00"] and Counting.lookups == 0
    assert engine.is_free("preview") and not engine.is_free("kling") and engine.is_free(Counting(tmp_path))


# ---- results checked against what was asked and what Kling reports ---------------------------------


def five_second_request(index: int = 0) -> Request:
    text = f"five seconds of a lighthouse, take {index}"
    body = {"model_name": "kling-v3", "prompt": text, "mode": "std", "duration": "5", "aspect_ratio": "16:9"}
    return make_request("text2video", body=body, key=f"5{index}".ljust(64, "f"), duration=5, id=f"r5{index}")


@pytest.mark.parametrize("seconds, frames", [(5.041, 121), (5.1, 122)])
def test_results_a_frame_or_two_long_as_kling_reports_them_are_accepted(tmp_path, seconds, frames):
    fake = FakeKling()
    request = five_second_request()
    fake.script(request.external_task_id, video_seconds=seconds)
    result = render(make_plan([request]), tmp_path, fake)
    assert result.ok, result.failed
    assert probe(result.clips[request.key]).frames == frames
    with Journal.open(tmp_path) as journal:
        assert journal.get("kling", request.key).reported_duration == pytest.approx(seconds)
    assert render(make_plan([request]), tmp_path, fake).reused == ["r50"], "and still accepted on a rerun"


@pytest.mark.parametrize("video, reported", [(4.2, None), (4.2, 5.0), (5.0, 4.2)])
def test_a_result_clearly_off_is_refused_saying_what_was_paid(tmp_path, video, reported):
    fake = FakeKling()
    request = five_second_request()
    fake.script(request.external_task_id, video_seconds=video, reported_seconds=reported)
    result = render(make_plan([request]), tmp_path, fake)
    assert not result.ok and not result.clips
    (reason,) = [why for _, why in result.failed]
    assert "refused" in reason and "more than 0.5 s off" in reason
    assert "paid for (3 units, $0.42)" in reason and "no new charge" in reason
    assert not engine.clip_path(tmp_path, "kling", request.key).exists()
    task_id = fake.task_by_external_id(request.external_task_id).task_id
    assert fake.downloads[task_id] == 1, "a wrong length is not fetched again and again"
    rerun = render(make_plan([request]), tmp_path, fake)
    assert not rerun.ok and sum(fake.creates.values()) == 1, "refusing a result never pays for another"


def test_check_clip_tolerances_and_broken_files(tmp_path):
    from tests.fakes.videos import result_video_path

    request = five_second_request()
    clip = result_video_path((5.1,))
    assert engine.check_clip(clip, request) is None
    assert engine.check_clip(clip, request, reported=5.1) is None
    assert "the provider reported 4.5 s" in engine.verify_clip(clip, request, reported=4.5)
    short = result_video_path((4.2,))
    problem = engine.check_clip(short, request)
    assert problem is not None and not problem.broken and "4.208 s long (101 frames at 24 fps)" in problem.text
    motion = request.model_copy(update={"family": "motion-control"})
    assert engine.check_clip(short, motion) is None, "motion control follows the reference video's length"
    assert engine.check_clip(short, motion, reported=5.0) is not None
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    assert engine.check_clip(garbage, request).broken
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    assert engine.check_clip(truncated, request).broken
    import subprocess

    from storyboard.media import ffmpeg_exe

    audio_only = tmp_path / "audio.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=5", "-c:a", "aac",
                    str(audio_only)], check=True)
    problem = engine.check_clip(audio_only, request)
    assert problem.broken and "no video stream" in problem.text


class NamelessRefusals(httpx.AsyncBaseTransport):
    """The fake, but a 1201 for a used external id does not say which task holds it."""

    def __init__(self, fake: FakeKling) -> None:
        self.inner = fake.transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and response.status_code == 400:
            body = json.loads(await response.aread())
            body["message"] = body["message"].split(" by task ")[0]
            return httpx.Response(400, json=body)
        return response


def test_a_used_external_id_whose_task_cannot_be_found_is_never_paid_again(tmp_path):
    import shutil

    fake = FakeKling()
    plan = make_plan([t2v(0)])
    assert render(plan, tmp_path, fake).ok
    shutil.rmtree(tmp_path / ".storyboard")
    fake.lookup_conventions = frozenset()  # this account answers no lookup by external id
    for _ in range(2):
        result = render(plan, tmp_path, fake, transport=NamelessRefusals(fake))
        assert not result.ok and "already used" in result.failed[0][1] and "nothing was sent again" in result.failed[0][1]
    assert dict(fake.creates) == {plan.requests[0].external_task_id: 1}, "no -2 attempt, ever"
    with Journal.open(tmp_path) as journal:
        assert journal.get("kling", plan.requests[0].key).state == "unknown"
