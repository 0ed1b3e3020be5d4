"""Lip sync from text and advanced lip sync (``plan.lip_sync``; kling-api-2.md §5.1, §5.2).

Real parts throughout: the videos and audio are real files made with ffmpeg and probed with PyAV;
bodies are compared whole; every request renders on the strict fake Kling (only the network edge
is faked: identify-face, advanced-lip-sync and text lip sync are emulated as the reference says)
and its charges, the face step's included, are compared with the plan's price and the journal;
the previews are probed, their sound decoded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.media import probe
from storyboard.plan import AUDIO_SCHEME, CLIP_SCHEME, FaceStep, planner
from storyboard.render import engine
from storyboard.render.journal import Journal
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from storyboard.render.providers.preview import PreviewProvider, preview_size
from tests.fakes.kling import FakeKling, Fault
from tests.media_inputs import make_audio, make_video

URL = "https://cdn.example.test/clips/"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lip-sync-media")
    made = {
        "talk_4s.mp4": lambda p: make_video(p, 4, 1280, 720, sound=True),
        "silent_4s.mp4": lambda p: make_video(p, 4, 1280, 720, sound=False),
        "speech.wav": lambda p: make_audio(p, 3),
        "blip.wav": lambda p: make_audio(p, 1),
    }
    for name, make in made.items():
        make(folder / name)
    return {name: folder / name for name in made}


HEADER = """\
version: 1
name: Lip sync
defaults: {model: kling-v3, mode: std}
shots:
"""


@pytest.fixture
def project(make_project, media):
    def make(shots: str) -> Path:
        folder = make_project(HEADER + shots)
        for name, path in media.items():
            target = folder / ("audio" if name.endswith(".wav") else "clips") / name
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(path, target)
        return folder

    return make


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def problems(folder: Path, severity: str = "error") -> list[str]:
    return [f"{p.location.line}|{p.location.path}|{p.message}" for p in planner.check(load(folder))
            if p.severity == severity]


TEXT_OF_SHOT = """\
  - id: wide
    duration: 5
    prompt: a presenter speaks to the camera
  - id: wide-voiced
    duration: 5
    lip_sync:
      shot: wide
      text: Welcome aboard, crew.
      voice_id: oversea_male1
"""
ADVANCED_OF_FILE = """\
  - id: voiced
    duration: 4
    lip_sync:
      video: clips/talk_4s.mp4
      url: https://cdn.example.test/clips/talk_4s.mp4
      audio: audio/speech.wav
      method: advanced
      audio_start: 0.5
      insert_at: 1
      volume: 1.5
      original_volume: 0.25
"""
ADVANCED_OF_SHOT = """\
  - id: hall
    duration: 5
    prompt: an astronaut speaks in a hangar
  - id: hall-voiced
    duration: 5
    lip_sync:
      shot: hall
      audio: audio/speech.wav
      method: advanced
"""


# ---- exact bodies and prices -------------------------------------------------------------------------


def test_text_lip_sync_of_a_rendered_shot_is_text2video_with_its_voice(project):
    wide, voiced = planner.plan(load(project(TEXT_OF_SHOT))).requests
    assert voiced.endpoint == "/v1/videos/lip-sync" and voiced.depends_on == [wide.key] and voiced.face is None
    assert voiced.body == {"input": {"mode": "text2video", "video_url": CLIP_SCHEME + wide.key,
                                     "text": "Welcome aboard, crew.", "voice_id": "oversea_male1",
                                     "voice_language": "en", "voice_speed": 1.0}}
    assert voiced.units == pytest.approx(0.5) and voiced.duration == 5


def test_advanced_lip_sync_of_a_file_is_exact_and_priced_with_its_face_step(project):
    folder = project(ADVANCED_OF_FILE)
    (request,) = planner.plan(load(folder)).requests
    source = URL + "talk_4s.mp4"
    assert request.endpoint == "/v1/videos/advanced-lip-sync" and request.family == "advanced-lip-sync"
    assert request.body == {
        "session_id": "face://session/" + source,
        "face_choose": [{"face_id": "face://1", "sound_file": AUDIO_SCHEME + sha(folder / "audio/speech.wav"),
                         "sound_start_time": 500, "sound_end_time": 3000, "sound_insert_time": 1000,
                         "sound_volume": 1.5, "original_audio_volume": 0.25}],
    }
    assert request.face == FaceStep(source=source, face=1, insert_ms=1000, crop_ms=2500, units=0.05)
    assert request.units == pytest.approx(0.55)  # 0.05 face recognition + one started 5 s block
    assert any("face recognition" in note and "assumed" in note for note in request.notes)


def test_advanced_lip_sync_of_a_rendered_shot_names_its_clip_and_two_sources_never_share_a_key(project):
    hall, voiced = planner.plan(load(project(ADVANCED_OF_SHOT))).requests
    assert voiced.depends_on == [hall.key]
    assert voiced.body["session_id"] == "face://session/" + CLIP_SCHEME + hall.key
    assert voiced.face is not None and voiced.face.source == CLIP_SCHEME + hall.key
    assert voiced.body["face_choose"][0]["sound_start_time"] == 0
    assert voiced.body["face_choose"][0]["sound_end_time"] == 3000
    assert "sound_volume" not in voiced.body["face_choose"][0]  # Kling's default unless set
    other = planner.plan(load(project(ADVANCED_OF_SHOT.replace("in a hangar", "on a ship")))).requests[1]
    assert other.key != voiced.key


def test_the_default_method_is_classic(project):
    (request,) = planner.plan(load(project(ADVANCED_OF_FILE.replace("      method: advanced\n", "").replace(
        "      audio_start: 0.5\n      insert_at: 1\n      volume: 1.5\n      original_volume: 0.25\n", "")))).requests
    assert request.family == "lip-sync" and request.body["input"]["mode"] == "audio2video"


# ---- each limit and exclusion at its line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("shots", "line", "path", "words"),
    [
        (TEXT_OF_SHOT.replace("      voice_id: oversea_male1\n", ""), 12, "shots[1].lip_sync.text", "needs voice_id"),
        (TEXT_OF_SHOT + "      speed: 2.5\n", 14, "shots[1].lip_sync.speed", "up to 2"),
        (TEXT_OF_SHOT + "      audio: audio/speech.wav\n", 12, "shots[1].lip_sync.text", "not both"),
        (TEXT_OF_SHOT.replace("      text: Welcome aboard, crew.\n      voice_id: oversea_male1\n", "      method: classic\n"),
         11, "shots[1].lip_sync", "needs its speech"),
        (TEXT_OF_SHOT + "      method: advanced\n      audio_end: 3\n", 15, "shots[1].lip_sync.audio_end",
         "crops an audio file"),
        (TEXT_OF_SHOT + "      insert_at: 1\n", 14, "shots[1].lip_sync.insert_at", "set method: advanced"),
        (ADVANCED_OF_FILE + "      voice_id: uk_man2\n", 16, "shots[0].lip_sync.voice_id", "goes with text"),
        (ADVANCED_OF_FILE.replace("audio_start: 0.5", "audio_start: 1.5"), 12, "shots[0].lip_sync.audio_start",
         "at least 2 s"),
        (ADVANCED_OF_FILE + "      audio_end: 3.5\n", 16, "shots[0].lip_sync.audio_end", "past the end"),
        (ADVANCED_OF_FILE.replace("insert_at: 1", "insert_at: 2"), 13, "shots[0].lip_sync.insert_at",
         "past the end of the video"),
        (ADVANCED_OF_FILE.replace("audio/speech", "audio/blip"), 10, "shots[0].lip_sync.audio", "from 2 s to 60 s"),
        (ADVANCED_OF_FILE.replace("clips/talk_4s.mp4\n", "clips/talk_4s.avi\n"), 8, "shots[0].lip_sync.video",
         "mp4/mov"),
    ],
)
def test_each_limit_is_refused_at_its_line(project, shots, line, path, words):
    found = problems(project(shots))
    assert any(e.startswith(f"{line}|{path}|") and words in e for e in found), found


def test_unverified_limits_are_advised_not_refused(project):
    long_text = "Welcome aboard. " * 9
    folder = project(TEXT_OF_SHOT.replace("Welcome aboard, crew.", long_text.strip()) + "      speed: 0.7\n")
    assert problems(folder) == []
    advised = problems(folder, "advisory")
    assert any("|shots[1].lip_sync.text|" in a and "at most 120 (unverified)" in a for a in advised), advised
    assert any("|shots[1].lip_sync.speed|" in a and "TTS range" in a for a in advised), advised


def test_volumes_out_of_range_are_refused_by_the_loader_at_their_line(project):
    with pytest.raises(StoryboardInvalid) as caught:
        load(project(ADVANCED_OF_FILE.replace("volume: 1.5", "volume: 3")))
    assert any(p.location.line == 14 and "volume" in p.location.path for p in caught.value.problems), \
        [str(p) for p in caught.value.problems]


# ---- rendering on the fake Kling ---------------------------------------------------------------------


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def _render(fake: FakeKling, folder: Path, events: list | None = None) -> tuple[engine.RenderResult, object]:
    plan = planner.plan(load(folder))

    async def go():
        credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)
        provider = KlingProvider(credentials, transport=fake.transport(), sleep=_no_sleep)
        try:
            return await engine.render(plan, folder, provider, sleep=_no_sleep,
                                       events=events.append if events is not None else None)
        finally:
            await provider.aclose()

    return asyncio.run(go()), plan


def test_every_form_renders_charged_exactly_its_price_and_a_second_run_pays_nothing(project):
    folder = project(TEXT_OF_SHOT + ADVANCED_OF_FILE + ADVANCED_OF_SHOT)
    fake = FakeKling(polls_to_finish=1)
    fake.reference_videos[URL + "talk_4s.mp4"] = 4.0
    result, plan = _render(fake, folder)
    assert not result.failed and not result.skipped, (result.failed, result.skipped)
    assert fake.identify_calls == 2  # one per advanced source, 0.05 units each
    by_external = {t.external_task_id: t for t in fake.tasks.values()}
    for request in plan.requests:
        task = by_external[request.external_task_id]
        assert task.family == request.family
        face = request.face.units if request.face else 0.0
        assert task.units + face == pytest.approx(request.units), request.id
        assert probe(engine.clip_path(folder, "kling", request.key)).frames > 0
    assert fake.charged_units == pytest.approx(plan.units)
    with Journal.open(folder) as journal:
        assert journal.units_charged("kling") == pytest.approx(plan.units)
    hall = by_external[plan.request_for_shot("hall")[0].external_task_id]
    voiced = by_external[plan.request_for_shot("hall-voiced")[0].external_task_id]
    session = fake.face_sessions[voiced.body["session_id"]]
    assert voiced.body["face_choose"][0]["face_id"] == session["faces"][0]["face_id"]
    assert not voiced.body["face_choose"][0]["sound_file"].startswith(AUDIO_SCHEME)
    text = by_external[plan.request_for_shot("wide-voiced")[0].external_task_id]
    assert text.body["input"]["video_url"] == by_external[plan.request_for_shot("wide")[0].external_task_id].video_url
    assert hall.video_id and fake.requests_containing(hall.video_id)  # identify-face was given the clip's video_id

    charged, creates = fake.charged_units, sum(fake.creates.values())
    again, _ = _render(fake, folder)
    assert sorted(again.reused) == sorted(r.id for r in plan.requests) and not again.failed
    assert fake.identify_calls == 2 and sum(fake.creates.values()) == creates and fake.charged_units == charged


def _advanced_file_project(project, **replace: str) -> Path:
    shots = ADVANCED_OF_FILE
    for old, new in replace.items():
        shots = shots.replace(old, new)
    return project(shots)


@pytest.mark.parametrize(
    ("faces", "face", "words"),
    [
        ([(0.0, 4.0)], "2", "Kling found 1 face(s)"),
        ([], "1", "no face"),
        ([(0.0, 1.5)], "1", "overlap by 2 s"),
    ],
)
def test_a_face_kling_does_not_find_fails_before_the_paid_create_saying_what_was_paid(project, faces, face, words):
    folder = project(ADVANCED_OF_FILE + f"      face: {face}\n")
    fake = FakeKling(polls_to_finish=1)
    fake.faces[URL + "talk_4s.mp4"] = faces
    result, _plan = _render(fake, folder)
    ((_, reason),) = result.failed
    assert words in reason and "0.05 units" in reason and "not sent" in reason, reason
    assert fake.create_attempts == 0 and fake.charged_units == pytest.approx(0.05)
    ((request, decision, units),) = engine.preview_plan(_plan, folder, "kling")
    assert decision == "create" and units == pytest.approx(request.units - 0.05)  # the quote: face step paid
    again, _ = _render(fake, folder)  # the answer is journaled: face recognition is not paid again
    assert again.failed and fake.identify_calls == 1 and fake.charged_units == pytest.approx(0.05)
    with Journal.open(folder) as journal:
        assert journal.units_charged("kling") == pytest.approx(0.05)
        assert journal.spent_today() == pytest.approx(0.05)  # the account's ledger sees face recognition too


def test_an_expired_face_session_is_identified_again_and_says_so(project):
    folder = project(ADVANCED_OF_FILE + "      face: 2\n")
    fake = FakeKling(polls_to_finish=1)
    fake.faces[URL + "talk_4s.mp4"] = [(0.0, 4.0)]
    first, _ = _render(fake, folder)
    assert first.failed and fake.identify_calls == 1
    (folder / "storyboard.yaml").write_text((folder / "storyboard.yaml").read_text().replace("face: 2", "face: 1"))
    fake.expire_face_sessions()
    events: list = []
    result, plan = _render(fake, folder, events)
    assert not result.failed, result.failed
    assert fake.identify_calls == 2 and any("session had expired" in e.message for e in events)
    assert fake.charged_units == pytest.approx(0.05 + 0.05 + 0.5)
    with Journal.open(folder) as journal:
        assert journal.units_charged("kling") == pytest.approx(fake.charged_units)


def test_a_lost_advanced_create_is_found_by_its_external_id_and_not_paid_twice(project):
    folder = project(ADVANCED_OF_FILE)
    fake = FakeKling(polls_to_finish=1)
    fake.inject(Fault("drop_after_create"))  # the task is made, the answer never arrives
    result, plan = _render(fake, folder)
    assert not result.failed, result.failed
    (request,) = plan.requests
    assert fake.creates[request.external_task_id] == 1 and fake.identify_calls == 1
    assert fake.charged_units == pytest.approx(plan.units)


def test_the_fake_refuses_what_the_reference_forbids(media):
    import httpx

    fake = FakeKling()
    speech = base64.b64encode(media["speech.wav"].read_bytes()).decode()

    def post(path: str, body: dict) -> dict:
        with httpx.Client(transport=fake.transport(), base_url=fake.base_url, headers=fake.auth_headers()) as session:
            return session.post(path, json=body).json()

    lip = "/v1/videos/lip-sync"
    text = {"mode": "text2video", "video_url": URL + "talk_4s.mp4", "text": "hello", "voice_id": "uk_man2",
            "voice_language": "en", "voice_speed": 1.0}
    assert "Voice id not found" in post(lip, {"input": {**text, "voice_id": "nobody"}})["message"]
    assert post(lip, {"input": {**text, "audio_type": "file", "audio_file": speech}})["code"] == 1201
    assert "voiceSpeed" in post(lip, {"input": {**text, "voice_speed": 2.5}})["message"]
    assert post(lip, {"input": {**text, "voice_language": "fr"}})["code"] == 1201
    assert fake.creates == {} and fake.charged_units == 0

    fake.faces[URL + "talk_4s.mp4"] = [(1.0, 4.0)]
    found = post("/v1/videos/identify-face", {"video_url": URL + "talk_4s.mp4"})["data"]
    assert found["final_unit_deduction"] == "0.05" and fake.charged_units == pytest.approx(0.05)
    assert [(f["start_time"], f["end_time"]) for f in found["face_data"]] == [(1000, 4000)]
    assert post("/v1/videos/identify-face", {"video_url": URL + "a_4s.mp4", "video_id": "1"})["code"] == 1201
    advanced = "/v1/videos/advanced-lip-sync"
    face = {"face_id": found["face_data"][0]["face_id"], "sound_file": speech, "sound_start_time": 0,
            "sound_end_time": 3000, "sound_insert_time": 1000}
    good = {"session_id": found["session_id"], "face_choose": [face]}
    for wrong in ({**good, "session_id": "fs-not-issued"},
                  {**good, "face_choose": [{**face, "face_id": "7"}]},
                  {**good, "face_choose": [{**face, "sound_start_time": 1500}]},
                  {**good, "face_choose": [{**face, "sound_end_time": 3500}]},
                  {**good, "face_choose": [{**face, "sound_insert_time": 2000}]},
                  {**good, "face_choose": [face, face]},
                  {**good, "face_choose": [{**face, "sound_volume": 2.5}]},
                  {**good, "face_choose": [{**face, "original_audio_volume": -1}]}):
        assert post(advanced, wrong)["code"] == 1201, wrong
    fake.faces[URL + "late_4s.mp4"] = [(3.0, 4.0)]
    late = post("/v1/videos/identify-face", {"video_url": URL + "late_4s.mp4"})["data"]
    refused = post(advanced, {"session_id": late["session_id"], "face_choose": [{**face, "face_id": "0"}]})
    assert "overlap" in refused["message"]
    assert fake.creates == {}
    created = post(advanced, {**good, "external_task_id": "adv-1"})
    assert created["code"] == 0 and fake.tasks[created["data"]["task_id"]].units == pytest.approx(0.5)


# ---- previews ------------------------------------------------------------------------------------------


def _loudness(path: Path, start: float, end: float) -> float:
    """RMS of the clip's sound between ``start`` and ``end`` seconds (decoded with PyAV)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = []
        for frame in container.decode(stream):
            samples = frame.to_ndarray().astype(np.float64)
            t0 = float(frame.pts * frame.time_base)
            times = t0 + np.arange(samples.shape[-1]) / frame.sample_rate
            chosen = samples[..., (times >= start) & (times < end)]
            if chosen.size:
                chunks.append(chosen.ravel())
    values = np.concatenate(chunks) if chunks else np.zeros(1)
    return float(np.sqrt(np.mean(values**2)))


def test_previews_speak_the_text_and_insert_the_cropped_audio_at_its_point(project):
    silent = ADVANCED_OF_FILE.replace("talk_4s", "silent_4s")
    folder = project(TEXT_OF_SHOT + silent)
    plan = planner.plan(load(folder))

    async def go():
        return await engine.render(plan, folder, PreviewProvider(folder), sleep=_no_sleep)

    result = asyncio.run(go())
    assert not result.failed and not result.skipped, (result.failed, result.skipped)
    for request in plan.requests:
        clip = engine.clip_path(folder, "preview", request.key)
        facts = probe(clip)
        assert facts.frames == request.duration * request.fps, request.id
        assert facts.has_audio == request.sound and (facts.width, facts.height) == preview_size(request)
    spoken = engine.clip_path(folder, "preview", plan.request_for_shot("wide-voiced")[0].key)
    assert _loudness(spoken, 0.1, 1.0) > 0.05  # "Welcome aboard, crew." takes about 1.4 s to say
    assert _loudness(spoken, 2.5, 4.5) < 0.005
    inserted = engine.clip_path(folder, "preview", plan.request_for_shot("voiced")[0].key)
    assert _loudness(inserted, 0.0, 0.9) < 0.005  # the clip is silent until insert_at (1 s)
    assert _loudness(inserted, 1.2, 3.3) > 0.05  # then the 2.5 s crop plays
