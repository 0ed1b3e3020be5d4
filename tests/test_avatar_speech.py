"""Avatars spoken from text: Kling's TTS first (``POST /v1/audio/tts``), then the avatar with its ``audio_id``.

Real parts: the portrait is a real PNG, the plan is the planner's, the render runs the engine
against the strict fake Kling (only the network edge is faked) with the real journal, and the
preview's clip and its stand-in speech are real files probed with PyAV. What is asserted is money
and identity: the plan prices the slow reading plus the TTS call before anything is spent, the
fake charges the TTS call and the avatar at the speech's real length, the journal records both,
a rerun pays nothing, an audio id past its reuse window is made again without re-rendering a
finished clip, and a lost TTS answer loses at most one call (kling-api-2.md §4).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import pytest

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.media import audio_probe, probe
from storyboard.plan import IMAGE_SCHEME, SPEECH_SCHEME, planner
from storyboard.plan.speech import REUSE_SECONDS, estimate_seconds, speech_digest
from storyboard.render import engine
from storyboard.render.journal import Journal
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from storyboard.render.providers.preview import PreviewProvider, preview_size
from tests.fakes.kling import TTS_PATH, FakeKling, Fault, tts_seconds

LINE = "Welcome aboard. Today we fly to the Moon, and you are coming with us."
HEADER = """\
version: 1
name: Spoken
defaults: {model: kling-v3, mode: std}
references:
  hero: {image: refs/hero.png, description: an astronaut in a white suit}
"""
SPOKEN = f"""\
  - id: talk
    duration: 3
    prompt: calm, small nods
    avatar:
      image: hero
      text: "{LINE}"
      voice_id: uk_man2
"""
DAY = 86400.0


@pytest.fixture
def avatar_project(make_project):
    def make(shots: str = SPOKEN, header: str = HEADER) -> Path:
        return make_project(header + "shots:\n" + shots, images={"refs/hero.png": (720, 720)})

    return make


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


class Clock:
    """One clock for the fake and the client (JWTs are made and checked at the same time)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _render(fake: FakeKling, plan, folder: Path, clock: Clock | None = None, **options) -> engine.RenderResult:
    events: list[engine.RenderEvent] = []

    async def go():
        credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)
        extra = {"clock": clock} if clock is not None else {}
        provider = KlingProvider(credentials, transport=fake.transport(), sleep=_no_sleep, **extra)
        try:
            return await engine.render(plan, folder, provider, sleep=_no_sleep, events=events.append, **options)
        finally:
            await provider.aclose()

    result = asyncio.run(go())
    result.events = events  # type: ignore[attr-defined]
    return result


def _tts_bodies(fake: FakeKling) -> list[dict]:
    import json

    return [json.loads(r.content) for r in fake.requests_log if r.method == "POST" and r.url.path == TTS_PATH]


def _avatar_tasks(fake: FakeKling) -> list:
    return [t for t in fake.tasks.values() if t.family == "avatar/image2video"]


# ---- the plan: exact body, price on the estimate, limits at their line ------------------------------------


def test_the_plan_names_the_speech_by_its_inputs_and_prices_the_slow_reading_plus_tts(avatar_project):
    folder = avatar_project()
    (request,) = planner.plan(load(folder)).requests
    digest = speech_digest(LINE, "uk_man2", "en", 1.0)
    assert request.endpoint == "/v1/videos/avatar/image2video"
    assert request.body == {"image": IMAGE_SCHEME + _sha(folder / "refs/hero.png"), "audio_id": SPEECH_SCHEME + digest,
                            "prompt": "calm, small nods", "mode": "std"}
    (speech,) = request.speech
    estimate = estimate_seconds(LINE, "en", 1.0)
    assert (speech.text, speech.voice_id, speech.language, speech.speed) == (LINE, "uk_man2", "en", 1.0)
    assert (speech.low_seconds, speech.high_seconds) == (estimate.low, estimate.high)
    assert estimate.low < tts_seconds(LINE, 1.0) < estimate.high  # the fake's voice falls inside the bracket
    billed = math.ceil(estimate.high)
    assert request.duration == billed
    assert request.units == pytest.approx(0.4 * billed + 0.05)
    assert any("estimate" in note and "real bill is per started second" in note for note in request.notes)
    assert any(note.endswith("+ 0.05 units for TTS") for note in request.notes)


def test_the_estimate_follows_language_and_speed():
    english, chinese = estimate_seconds("one two three four five six", "en", 1.0), estimate_seconds("一二三四五六", "zh", 1.0)
    assert (english.low, english.high) == (round(6 / 3.5, 2), 6 / 2.0 + 0.5)
    assert (chinese.low, chinese.high) == (6 / 6.0, 6 / 3.0 + 0.5)
    fast = estimate_seconds("one two three four five six", "en", 2.0)
    assert fast.high == 6 / 4.0 + 0.5 and fast.low < english.low
    assert estimate_seconds("Call 5550123 now.", "en", 1.0).high == (2 + 7) / 2.0 + 0.5  # digits read one by one


def test_pro_mode_and_chinese_change_the_rate_and_the_estimate(avatar_project):
    line = "欢迎登上飞船。今天我们飞向月球，你也一起来。"
    shots = (SPOKEN.replace(LINE, line).replace("voice_id: uk_man2", "voice_id: zhinen_xuesheng\n      language: zh")
             .replace("    prompt:", "    mode: pro\n    prompt:"))
    (request,) = planner.plan(load(avatar_project(shots))).requests
    high = estimate_seconds(line, "zh", 1.0).high
    assert request.units == pytest.approx(0.8 * math.ceil(high) + 0.05)
    assert request.speech[0].language == "zh"


def _problems(folder: Path) -> list[str]:
    try:
        loaded = load(folder)
    except StoryboardInvalid as invalid:
        return [f"{p.severity}|{p.location.line}|{p.location.path}|{p.message}" for p in invalid.problems]
    return [f"{p.severity}|{p.location.line}|{p.location.path}|{p.message}" for p in planner.check(loaded)]


@pytest.mark.parametrize(
    ("change", "line", "path", "words"),
    [
        (lambda s: s.replace(LINE, "x " * 501), 12, "shots[0].avatar.text", "at most 1000"),
        (lambda s: s.replace(f'"{LINE}"', '"   "'), 12, "shots[0].avatar.text", "text is blank"),
        (lambda s: s + "      speed: 2.1\n", 14, "shots[0].avatar.speed", "must be at most 2"),
        (lambda s: s + "      speed: 0.7\n", 14, "shots[0].avatar.speed", "must be at least 0.8"),
        (lambda s: s + "      speed: 1.25\n", 14, "shots[0].avatar.speed", "more than one decimal"),
        (lambda s: s + "      language: fr\n", 14, "shots[0].avatar.language", "must be one of: en, zh"),
        (lambda s: s + "      audio: audio/line.wav\n", 11, "shots[0].avatar", "exactly one of audio"),
        (lambda s: s.replace("      voice_id: uk_man2\n", ""), 11, "shots[0].avatar", "needs voice_id"),
        (lambda s: s.replace(LINE, "Hi."), 12, "shots[0].avatar.text", "write a longer line"),
        (lambda s: s.replace("duration: 3", "duration: 12"), 8, "shots[0].duration", "shorten the shot's duration"),
    ],
)
def test_each_limit_is_refused_at_its_line(avatar_project, change, line, path, words):
    found = _problems(avatar_project(change(SPOKEN)))
    assert any(p.startswith(f"error|{line}|{path}|") and words in p for p in found), found


def test_a_duration_the_speech_may_not_fill_is_advised_and_one_it_fills_is_not(avatar_project):
    advised = _problems(avatar_project(SPOKEN.replace("duration: 3", "duration: 6")))
    assert any(p.startswith("advisory|8|shots[0].duration|") and "holds the clip's last frame" in p for p in advised)
    assert not [p for p in _problems(avatar_project()) if "duration" in p]


def test_a_custom_voice_of_the_storyboard_is_refused_for_tts(avatar_project):
    header = HEADER + "voices:\n  narrator: {url: https://cdn.example.test/narrator.mp3}\n"
    found = _problems(avatar_project(SPOKEN.replace("voice_id: uk_man2", "voice_id: narrator"), header))
    assert any(p.startswith("error|15|shots[0].avatar.voice_id|") and "preset voices only" in p for p in found), found


def test_a_text_that_may_be_under_two_seconds_is_advised(avatar_project):
    found = _problems(avatar_project(SPOKEN.replace(LINE, "Hello there, friends.").replace("duration: 3", "duration: 1")))
    assert any(p.startswith("advisory|12|shots[0].avatar.text|") and "may take under 2 s" in p for p in found), found


# ---- rendering on the strict fake: exact bodies, real charges, journal, reruns ---------------------------


def test_tts_then_avatar_bodies_are_exact_and_the_real_charge_is_journaled(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    (request,) = plan.requests
    fake = FakeKling(polls_to_finish=1)
    result = _render(fake, plan, folder)
    assert result.done == [request.id] and not result.failed
    assert _tts_bodies(fake) == [{"text": LINE, "voice_id": "uk_man2", "voice_language": "en", "voice_speed": 1.0}]
    (audio_id,) = fake.audios
    (task,) = _avatar_tasks(fake)
    assert task.body == {"image": task.body["image"], "audio_id": audio_id, "prompt": "calm, small nods", "mode": "std",
                         "external_task_id": request.external_task_id}
    assert not task.body["image"].startswith(IMAGE_SCHEME) and "sound_file" not in task.body
    real = tts_seconds(LINE, 1.0)
    real_units = 0.4 * math.ceil(real)
    assert task.units == pytest.approx(real_units)
    assert fake.charged_units == pytest.approx(0.05 + real_units)
    assert fake.charged_units < request.units  # the plan priced the slow reading: the bill is at most that
    assert result.units_spent == pytest.approx(fake.charged_units)
    with Journal.open(folder) as journal:
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units)
        assert journal.get("kling", request.key).units == pytest.approx(real_units)
        speech = journal.speech("kling", speech_digest(LINE, "uk_man2", "en", 1.0))
        assert speech is not None and (speech.audio_id, speech.duration, speech.syntheses) == (audio_id, real, 1)
        assert speech.url and speech.url.endswith(f"{audio_id}.mp3")
        (spending,) = journal.spending()
        assert spending.charged == pytest.approx(fake.charged_units) and spending.reserved == 0
    assert probe(engine.clip_path(folder, "kling", request.key)).duration == pytest.approx(real, abs=0.1)


def test_a_second_run_synthesizes_and_creates_nothing(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    fake = FakeKling(polls_to_finish=1)
    _render(fake, plan, folder)
    charged = fake.charged_units
    again = _render(fake, plan, folder)
    assert again.reused == [plan.requests[0].id] and fake.tts_calls == 1 and len(_avatar_tasks(fake)) == 1
    assert fake.charged_units == charged and again.units_spent == 0


def test_a_failed_avatar_is_created_again_with_the_same_speech(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    fake = FakeKling(polls_to_finish=1)
    fake.script("calm, small nods", fail="Failure to pass the risk control system", times=1)
    first = _render(fake, plan, folder)
    assert first.failed and fake.tts_calls == 1
    second = _render(fake, plan, folder)
    assert second.done and fake.tts_calls == 1  # the audio id is young: reused, not paid again
    (audio_id,) = fake.audios
    assert [t.body["audio_id"] for t in _avatar_tasks(fake)] == [audio_id, audio_id]


def test_an_audio_id_past_the_reuse_window_is_made_again_and_a_finished_clip_is_not_rerendered(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    (request,) = plan.requests
    clock = Clock()
    fake = FakeKling(polls_to_finish=1, clock=clock)
    fake.script("calm, small nods", fail="Failure to pass the risk control system", times=1)
    assert _render(fake, plan, folder, clock).failed  # speech made, avatar failed (nothing charged for it)
    digest = speech_digest(LINE, "uk_man2", "en", 1.0)
    clock.now += 31 * DAY  # Kling has forgotten the audio id by now
    with Journal.open(folder) as journal:  # the journal dates the speech 29 days and a bit ago
        journal.store.execute("UPDATE speech SET created_at = created_at - ? WHERE digest=?", (REUSE_SECONDS + 60, digest))
    renewed = _render(fake, plan, folder, clock)
    assert renewed.done == [request.id] and fake.tts_calls == 2
    assert any(e.state == "speech" and "synthesizing it again" in e.message for e in renewed.events)
    old_id, new_id = list(fake.audios)
    assert [t.body["audio_id"] for t in _avatar_tasks(fake)] == [old_id, new_id]
    assert _avatar_tasks(fake)[1].external_task_id.startswith(request.external_task_id)  # same request, same key
    with Journal.open(folder) as journal:
        record = journal.speech("kling", digest)
        assert record is not None and record.audio_id == new_id and record.syntheses == 2
        journal.store.execute("UPDATE speech SET created_at = created_at - ? WHERE digest=?", (40 * DAY, digest))
    clock.now += 40 * DAY
    charged = fake.charged_units
    later = _render(fake, plan, folder, clock)  # the clip is finished: an expired id does not matter to it
    assert later.reused == [request.id] and fake.tts_calls == 2 and fake.charged_units == charged


def test_a_lost_tts_answer_loses_at_most_one_call_and_the_next_run_makes_it_again(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    fake = FakeKling(polls_to_finish=1)
    fake.inject(Fault("drop_after_create", on="create"))  # the first create is the TTS call
    lost = _render(fake, plan, folder)
    assert lost.failed and "no way to look a TTS result up" in lost.failed[0][1]
    assert fake.tts_calls == 1 and not _avatar_tasks(fake) and fake.charged_units == pytest.approx(0.05)
    with Journal.open(folder) as journal:
        (spending,) = journal.spending()
        assert spending.reserved == pytest.approx(0.05) and spending.charged == 0  # unknown: kept as reserved
        assert journal.speech("kling", speech_digest(LINE, "uk_man2", "en", 1.0)) is None
    done = _render(fake, plan, folder)
    assert done.done and fake.tts_calls == 2 and len(_avatar_tasks(fake)) == 1
    assert fake.charged_units == pytest.approx(0.1 + 0.4 * math.ceil(tts_seconds(LINE, 1.0)))


def test_the_avatar_is_reserved_at_the_real_length_and_not_sent_over_the_budget(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    real_units = 0.4 * math.ceil(tts_seconds(LINE, 1.0))
    fake = FakeKling(polls_to_finish=1)
    short = _render(fake, plan, folder, max_cost_units=0.05 + real_units - 0.2)
    assert short.skipped and "budget" in short.skipped[0][1] and fake.tts_calls == 1 and not _avatar_tasks(fake)
    enough = _render(fake, plan, folder, max_cost_units=real_units)  # the speech is paid already: it is reused
    assert enough.done and fake.tts_calls == 1 and enough.units_spent == pytest.approx(real_units)


def test_a_speech_outside_two_to_three_hundred_seconds_is_not_sent_to_the_avatar(avatar_project):
    folder = avatar_project(SPOKEN.replace(LINE, "Hello there, friends.").replace("duration: 3", "duration: 1"))
    plan = planner.plan(load(folder))
    fake = FakeKling(polls_to_finish=1)
    result = _render(fake, plan, folder)
    assert tts_seconds("Hello there, friends.", 1.0) < 2
    assert result.failed and "takes 2-300 s of speech" in result.failed[0][1] and not _avatar_tasks(fake)


# ---- the preview: free stand-in speech of the estimated length ---------------------------------------------


def test_the_preview_of_a_text_avatar_speaks_for_the_estimated_length(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    (request,) = plan.requests

    async def go():
        return await engine.render(plan, folder, PreviewProvider(folder), sleep=_no_sleep)

    result = asyncio.run(go())
    assert result.done == [request.id] and result.units_spent == 0
    facts = probe(engine.clip_path(folder, "preview", request.key))
    assert facts.has_audio and facts.frames == request.duration * request.fps
    assert (facts.width, facts.height) == preview_size(request)
    (speech_file,) = (folder / ".storyboard").rglob("speech-*.wav")
    assert audio_probe(speech_file).duration == pytest.approx(request.speech[0].high_seconds, abs=0.01)
    first = speech_file.read_bytes()
    asyncio.run(PreviewProvider(folder).synthesize(request.speech[0]))
    assert speech_file.read_bytes() == first  # deterministic: the same line sounds the same


# ---- the strict fake's TTS endpoint ----------------------------------------------------------------------------


def _post(fake: FakeKling, path: str, body: dict) -> dict:
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url, headers=fake.auth_headers()) as session:
        return session.post(path, json=body).json()


def test_the_fake_tts_refuses_what_the_reference_forbids_and_charges_each_call(tmp_path):
    import base64

    from tests.conftest import write_image

    clock = Clock()
    fake = FakeKling(clock=clock)
    good = {"text": LINE, "voice_id": "uk_man2", "voice_language": "en", "voice_speed": 1.2}
    for bad in ({**good, "voice_speed": 1.25}, {**good, "voice_speed": 2.1}, {**good, "voice_speed": "1.0"},
                {**good, "text": "x" * 1001}, {**good, "text": ""}, {**good, "voice_id": "someone"},
                {**good, "voice_language": "fr"}, {**good, "callback_url": "https://x.test"},
                {k: v for k, v in good.items() if k != "voice_id"}, {k: v for k, v in good.items() if k != "text"}):
        assert _post(fake, TTS_PATH, bad)["code"] == 1201, bad
    assert fake.tts_calls == 0 and fake.charged_units == 0
    made = _post(fake, TTS_PATH, good)["data"]
    (audio,) = made["task_result"]["audios"]
    assert made["task_status"] == "succeed" and float(audio["duration"]) == tts_seconds(LINE, 1.2)
    assert fake.charged_units == pytest.approx(0.05)
    face = base64.b64encode(write_image(tmp_path / "face.png", 400, 400).read_bytes()).decode()
    avatar = "/v1/videos/avatar/image2video"
    assert _post(fake, avatar, {"image": face, "audio_id": "123"})["code"] == 1201  # not issued by this account
    assert _post(fake, avatar, {"image": face, "audio_id": audio["id"], "sound_file": "AAAA"})["code"] == 1201
    created = _post(fake, avatar, {"image": face, "audio_id": audio["id"], "mode": "pro", "external_task_id": "a-1"})
    assert created["code"] == 0
    assert fake.tasks[created["data"]["task_id"]].units == pytest.approx(0.8 * math.ceil(tts_seconds(LINE, 1.2)))
    clock.now += 30 * DAY + 1
    expired = _post(fake, avatar, {"image": face, "audio_id": audio["id"], "external_task_id": "a-2"})
    assert expired["code"] == 1201 and "expired" in expired["message"]


def test_journal_migrate_copies_the_speech_once(avatar_project, tmp_path):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    _render(FakeKling(polls_to_finish=1), plan, folder)
    digest = speech_digest(LINE, "uk_man2", "en", 1.0)
    with Journal.open(folder) as source, Journal(tmp_path / "other" / ".storyboard" / "journal.sqlite") as target:
        assert source.copy_into(target)["speech"] == (1, 1)
        assert source.copy_into(target)["speech"] == (1, 0)
        assert target.speech("kling", digest) == source.speech("kling", digest)


def test_the_quote_counts_the_tts_call_only_while_no_young_speech_is_journaled(avatar_project):
    folder = avatar_project()
    plan = planner.plan(load(folder))
    (request,) = plan.requests
    assert engine.preview_plan(plan, folder, "kling") == [(request, "create", request.units)]
    fake = FakeKling(polls_to_finish=1)
    fake.script("calm, small nods", fail="Failure to pass the risk control system", times=1)
    assert _render(fake, plan, folder).failed  # the speech is made and journaled, the avatar is not
    (row,) = engine.preview_plan(plan, folder, "kling")
    assert row[1] == "create" and row[2] == pytest.approx(request.units - 0.05)


def test_validate_names_file_line_column_and_the_fix_without_a_traceback(avatar_project):
    from typer.testing import CliRunner

    from storyboard.cli import _register_commands, app

    _register_commands()
    folder = avatar_project(SPOKEN.replace(LINE, "Hi.") + "      speed: 1.25\n")
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "storyboard.yaml:14:14: shots[0].avatar.speed: " in result.output and "e.g. 1.2" in result.output


def test_speech_shorter_than_the_shot_is_said_at_render_time(avatar_project):
    folder = avatar_project(SPOKEN.replace("duration: 3", "duration: 7.9"))
    plan = planner.plan(load(folder))
    result = _render(FakeKling(polls_to_finish=1), plan, folder)
    real = tts_seconds(LINE, 1.0)
    assert result.done and real < 7.9
    said = [e.message for e in result.events if e.state == "speech" and "holds the clip's last frame" in e.message]
    assert said and f"{real:.2f} s" in said[0] and "set the shot's duration to" in said[0]
