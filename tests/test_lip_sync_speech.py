"""Advanced lip sync speaking text through Kling's TTS (``plan.lip_sync``; kling-api-2.md §4, §5.1).

TTS makes the speech first, identify-face then finds the faces, and the advanced lip sync sends
``face_choose[0].audio_id`` with a crop of all the speech (its end filled in after TTS). Real
videos (ffmpeg), real plans and journals; the network edge is the strict fake Kling over loopback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from storyboard.load.loader import load
from storyboard.media import probe
from storyboard.plan import SPEECH_SCHEME, planner
from storyboard.plan.lip_sync import SPEECH_END_SCHEME, face_placeholder, face_session_placeholder
from storyboard.plan.speech import speech_placeholder
from storyboard.render import engine
from storyboard.render.journal import Journal
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from storyboard.render.providers.preview import PreviewProvider
from tests.fakes.kling import FakeKling, tts_seconds
from tests.media_inputs import make_video
from tests.test_lip_sync import _loudness

URL = "https://cdn.example.test/clips/talk_8s.mp4"
LINE = "Welcome aboard, crew. The hangar is ready."
HEADER = """\
version: 1
name: Lip sync from text
defaults: {model: kling-v3, mode: std}
shots:
"""
SPOKEN = f"""\
  - id: voiced
    duration: 8
    lip_sync:
      video: clips/talk_8s.mp4
      url: {URL}
      method: advanced
      text: {LINE}
      voice_id: uk_man2
      insert_at: 1
      volume: 1.5
"""


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lip-sync-speech-media")
    make_video(folder / "talk_8s.mp4", 8, 1280, 720, sound=True)
    make_video(folder / "silent_8s.mp4", 8, 1280, 720, sound=False)
    return {"talk_8s.mp4": folder / "talk_8s.mp4", "silent_8s.mp4": folder / "silent_8s.mp4"}


@pytest.fixture
def project(make_project, media):
    def make(shots: str) -> Path:
        folder = make_project(HEADER + shots)
        (folder / "clips").mkdir(exist_ok=True)
        for name, path in media.items():
            shutil.copyfile(path, folder / "clips" / name)
        return folder

    return make


def problems(folder: Path, severity: str = "error") -> list[str]:
    return [f"{p.location.line}|{p.location.path}|{p.message}" for p in planner.check(load(folder))
            if p.severity == severity]


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def _render(fake: FakeKling, folder: Path) -> tuple[engine.RenderResult, object]:
    plan = planner.plan(load(folder))

    async def go():
        credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)
        provider = KlingProvider(credentials, transport=fake.transport(), sleep=_no_sleep)
        try:
            return await engine.render(plan, folder, provider, sleep=_no_sleep)
        finally:
            await provider.aclose()

    return asyncio.run(go()), plan


def _fake(seconds: float = 8.0) -> FakeKling:
    fake = FakeKling(polls_to_finish=1)
    fake.reference_videos[URL] = seconds
    return fake


def _posts(fake: FakeKling) -> list[tuple[str, dict]]:
    return [(r.url.path, json.loads(r.content)) for r in fake.requests_log if r.method == "POST"]


def test_the_plan_speaks_the_text_first_and_prices_tts_face_and_lip_sync(project):
    (request,) = planner.plan(load(project(SPOKEN))).requests
    speech = speech_placeholder(LINE, "uk_man2", "en", 1.0)
    assert [s.placeholder for s in request.speech] == [speech]
    assert request.body == {
        "session_id": face_session_placeholder(URL),
        "face_choose": [{"face_id": face_placeholder(1), "audio_id": speech, "sound_start_time": 0,
                         "sound_end_time": f"{SPEECH_END_SCHEME}{speech.removeprefix(SPEECH_SCHEME)}/7000",
                         "sound_insert_time": 1000, "sound_volume": 1.5}],
    }
    assert request.units == pytest.approx(0.05 + 0.05 + 2 * 0.5)  # TTS + face + 2 started 5 s of the 8 s video
    assert any("0.05 units for TTS" in note for note in request.notes), request.notes


def test_tts_then_identify_face_then_the_exact_lip_sync_charged_its_price_and_paid_once(project):
    folder = project(SPOKEN)
    fake = _fake()
    result, plan = _render(fake, folder)
    assert not result.failed and not result.skipped, (result.failed, result.skipped)
    (request,) = plan.requests
    posts = _posts(fake)
    assert [path for path, _ in posts] == ["/v1/audio/tts", "/v1/videos/identify-face", "/v1/videos/advanced-lip-sync"]
    assert posts[0][1] == {"text": LINE, "voice_id": "uk_man2", "voice_language": "en", "voice_speed": 1.0}
    (audio_id,) = fake.audios
    session_id = next(iter(fake.face_sessions))
    speech_ms = int(tts_seconds(LINE, 1.0) * 1000)
    assert posts[2][1] == {
        "session_id": session_id,
        "face_choose": [{"face_id": fake.face_sessions[session_id]["faces"][0]["face_id"], "audio_id": audio_id,
                         "sound_start_time": 0, "sound_end_time": speech_ms, "sound_insert_time": 1000,
                         "sound_volume": 1.5}],
        "external_task_id": request.external_task_id,
    }
    assert fake.charged_units == pytest.approx(plan.units) == pytest.approx(1.10)
    with Journal.open(folder) as journal:
        assert journal.units_charged("kling") == pytest.approx(plan.units)
    assert probe(engine.clip_path(folder, "kling", request.key)).frames > 0

    charged = fake.charged_units
    again, _ = _render(fake, folder)
    assert again.reused == [request.id] and fake.tts_calls == 1 and fake.identify_calls == 1
    assert fake.charged_units == charged


def test_the_quote_leaves_out_journaled_speech_and_face_steps(project):
    folder = project(SPOKEN)
    fake = _fake()
    fake.faces[URL] = [(0.0, 2.0)]  # on screen 0-2 s: the speech from 1 s overlaps it by 1 s only
    first, plan = _render(fake, folder)
    ((_, reason),) = first.failed
    assert "overlap by 2 s" in reason and "0.05 units of TTS" in reason and "face recognition" in reason, reason
    assert fake.charged_units == pytest.approx(0.10) and len(_posts(fake)) == 2
    ((_, decision, units),) = engine.preview_plan(plan, folder, "kling")
    assert decision == "create" and units == pytest.approx(1.0)  # only the lip sync itself is still owed


@pytest.mark.parametrize(
    ("replace", "line", "path", "words"),
    [
        ((f"text: {LINE}", "text: Hi."), 11, "shots[0].lip_sync.text", "needs 2 s to 60 s"),
        ((f"text: {LINE}", "text: " + "word " * 300), 11, "shots[0].lip_sync.text", "at most 60 s"),
        (("insert_at: 1", "insert_at: 6.5"), 13, "shots[0].lip_sync.insert_at", "past the end of the video"),
        (("insert_at: 1", "insert_at: 1\n      audio_start: 0.5"), 14, "shots[0].lip_sync.audio_start",
         "remove it"),
        (("insert_at: 1", "insert_at: 1\n      audio_end: 2.5"), 14, "shots[0].lip_sync.audio_end", "remove it"),
    ],
)
def test_each_limit_is_refused_at_its_line(project, replace, line, path, words):
    found = problems(project(SPOKEN.replace(*replace)))
    assert any(e.startswith(f"{line}|{path}|") and words in e for e in found), found


def test_a_speech_that_may_not_fit_is_advised(project):
    folder = project(SPOKEN.replace("insert_at: 1", "insert_at: 4"))  # 4 + 2.0-4.35 s: may pass the 8 s end
    assert problems(folder) == []
    advised = problems(folder, "advisory")
    assert any("|shots[0].lip_sync.insert_at|" in a and "may end past" in a for a in advised), advised


def test_a_real_speech_past_the_video_stops_before_face_and_create_saying_what_was_paid(project):
    folder = project(SPOKEN.replace("insert_at: 1", "insert_at: 5.5"))  # the fake says it in 3.49 s: ends at 8.99 s
    fake = _fake()
    result, _plan = _render(fake, folder)
    ((_, reason),) = result.failed
    assert "past the end of the video" in reason and "0.05 units of TTS" in reason, reason
    assert [path for path, _ in _posts(fake)] == ["/v1/audio/tts"] and fake.charged_units == pytest.approx(0.05)


def test_the_fake_takes_only_an_audio_id_its_tts_issued_2_to_60_s(project):
    fake = _fake()
    folder = project(SPOKEN)
    _render(fake, folder)
    (audio_id,) = fake.audios
    session_id = next(iter(fake.face_sessions))
    face = fake.face_sessions[session_id]["faces"][0]["face_id"]
    good = {"face_id": face, "audio_id": audio_id, "sound_start_time": 0, "sound_end_time": 2000,
            "sound_insert_time": 0}
    import httpx

    with httpx.Client(transport=fake.transport(), base_url=fake.base_url, headers=fake.auth_headers()) as client:
        def post(entry: dict) -> int:
            answer = client.post("/v1/videos/advanced-lip-sync", json={"session_id": session_id, "face_choose": [entry]})
            return int(answer.json()["code"])

        assert post({**good, "audio_id": "123"}) == 1201
        assert post({**good, "sound_file": "AAAA"}) == 1201  # both audio_id and sound_file
        assert post({**good, "sound_end_time": int(fake.audios[audio_id]["duration"] * 1000) + 1}) == 1201
        fake.audios[audio_id]["duration"] = 61.0
        assert post(good) == 1201
        fake.audios[audio_id]["duration"] = 3.0
        fake.audios[audio_id]["issued_at"] -= 31 * 86400
        assert post(good) == 1201


def test_the_preview_inserts_the_tts_stand_in_at_insert_at(project):
    folder = project(SPOKEN.replace("talk_8s.mp4\n", "silent_8s.mp4\n"))
    plan = planner.plan(load(folder))
    result = asyncio.run(engine.render(plan, folder, PreviewProvider(folder), sleep=_no_sleep))
    assert not result.failed and not result.skipped, (result.failed, result.skipped)
    clip = engine.clip_path(folder, "preview", plan.requests[0].key)
    facts = probe(clip)
    assert facts.has_audio and facts.frames == plan.requests[0].duration * plan.requests[0].fps
    assert _loudness(clip, 0.0, 0.9) < 0.005  # silent until insert_at (1 s)
    assert _loudness(clip, 1.3, 3.0) > 0.02  # then the stand-in speech plays
    assert _loudness(clip, 6.0, 8.0) < 0.005  # and ends (about 4.35 s of stand-in)
