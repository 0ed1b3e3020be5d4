"""The shot kinds of ``plan.kinds``: motion control, omni video reference and edit, avatar, lip sync.

Real parts throughout: the input videos and audio are real files made with ffmpeg and probed with
PyAV; bodies are checked field for field against the reference (kling-api-2.md §1, §2, §4, §5);
every request is rendered on the strict fake Kling (only the network edge is faked) and its
charge compared with the plan's price; the free preview of each kind is probed.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest

from storyboard.errors import Rejected, StoryboardInvalid
from storyboard.load.loader import load
from storyboard.media import probe
from storyboard.plan import AUDIO_SCHEME, CLIP_SCHEME, IMAGE_SCHEME, VIDEO_SCHEME, planner
from storyboard.render import engine
from storyboard.render.journal import Journal
from storyboard.render.providers.kling import KlingCredentials, KlingProvider
from storyboard.render.providers.preview import PreviewProvider, preview_size
from tests.fakes.kling import FakeKling
from tests.media_inputs import make_audio, make_video

URL = "https://cdn.example.test/clips/"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Real input files, made once for the module."""
    folder = tmp_path_factory.mktemp("kinds-media")
    made = {
        "motion_4s.mp4": lambda p: make_video(p, 4, 640, 360),
        "silent_4s.mp4": lambda p: make_video(p, 4, 640, 360, sound=False),
        "motion_12s.mp4": lambda p: make_video(p, 12, 640, 360, sound=False),
        "tiny_4s.mp4": lambda p: make_video(p, 4, 320, 180, sound=False),
        "ref_4s.mp4": lambda p: make_video(p, 4, 1280, 720),
        "ref15fps_4s.mp4": lambda p: make_video(p, 4, 1280, 720, fps=15, sound=False),
        "speech.wav": lambda p: make_audio(p, 3),
        "blip.wav": lambda p: make_audio(p, 1),
    }
    for name, make in made.items():
        make(folder / name)
    return {name: folder / name for name in made}


HEADER = """\
version: 1
name: Kinds
defaults: {model: kling-v3, mode: std}
references:
  hero: {image: refs/hero.png, description: a dancer in a red coat}
"""


@pytest.fixture
def project(make_project, media):
    """``project(shots_yaml)`` -> a project folder holding the media under clips/ and audio/."""

    def make(shots: str, header: str = HEADER) -> Path:
        folder = make_project(header + "shots:\n" + shots, images={"refs/hero.png": (720, 1280)})
        for name, path in media.items():
            target = folder / ("audio" if name.endswith(".wav") else "clips") / name
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(path, target)
        return folder

    return make


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def errors_of(folder: Path) -> list[str]:
    return [f"{p.location.line}|{p.location.path}|{p.message}" for p in planner.check(load(folder))
            if p.severity == "error"]


MOTION = """\
  - id: dance
    duration: 4
    prompt: she dances on a rooftop
    motion_control:
      video: clips/motion_4s.mp4
      url: https://cdn.example.test/clips/motion_4s.mp4
      character: hero
      orientation: image
      keep_sound: false
"""
FEATURE = """\
  - id: next
    duration: 5
    model: kling-v3-omni
    prompt: "Based on <<<video_1>>>, generate the next shot"
    video_reference:
      video: clips/ref_4s.mp4
      url: https://cdn.example.test/clips/ref_4s.mp4
"""
EDIT = """\
  - id: edit
    duration: 4
    model: kling-v3-omni
    mode: pro
    prompt: "Make it snow in <<<video_1>>>"
    video_reference:
      video: clips/ref_4s.mp4
      url: https://cdn.example.test/clips/ref_4s.mp4
      use: edit
      keep_sound: true
"""
AVATAR = """\
  - id: talk
    duration: 3
    mode: pro
    prompt: calm, small nods
    avatar:
      image: hero
      audio: audio/speech.wav
"""
LIP_SYNC_OF_SHOT = """\
  - id: wide
    duration: 5
    prompt: a dancer speaks to the camera
  - id: wide-voiced
    duration: 5
    lip_sync:
      shot: wide
      audio: audio/speech.wav
"""
LIP_SYNC_OF_FILE = """\
  - id: voiced
    duration: 4
    lip_sync:
      video: clips/ref_4s.mp4
      url: https://cdn.example.test/clips/ref_4s.mp4
      audio: audio/speech.wav
"""


# ---- exact bodies and prices -------------------------------------------------------------------


def test_motion_control_body_is_exact_and_billed_per_rounded_output_second(project):
    folder = project(MOTION)
    (request,) = planner.plan(load(folder)).requests
    assert request.endpoint == "/v1/videos/motion-control" and request.family == "motion-control"
    assert request.body == {
        "model_name": "kling-v3",
        "mode": "std",
        "prompt": "she dances on a rooftop",
        "image_url": IMAGE_SCHEME + sha(folder / "refs/hero.png"),
        "video_url": "https://cdn.example.test/clips/motion_4s.mp4",
        "character_orientation": "image",
        "keep_original_sound": "no",
    }
    assert "duration" not in request.body and "aspect_ratio" not in request.body and "sound" not in request.body
    assert request.duration == 4 and request.units == pytest.approx(3.6) and request.usd == pytest.approx(0.5)
    assert request.aspect_ratio == "9:16" and request.sound is False
    assert any("output seconds rounded" in note for note in request.notes)


def test_motion_control_on_v2_6_pro_and_with_an_element_on_v3(project):
    v26 = project(MOTION.replace("    prompt: she dances", "    model: kling-v2-6\n    mode: pro\n    prompt: she dances"))
    (request,) = planner.plan(load(v26)).requests
    assert request.body["model_name"] == "kling-v2-6" and request.body["mode"] == "pro"
    assert request.units == pytest.approx(3.2)  # 0.8 units/s x 4 s
    header = HEADER.replace("description: a dancer in a red coat}", "description: a dancer, element: 829836802793406551}")
    with_element = project(MOTION.replace("orientation: image", "orientation: video"), header=header)
    (request,) = planner.plan(load(with_element)).requests
    assert request.body["element_list"] == [{"element_id": 829836802793406551}]
    assert request.body["character_orientation"] == "video"


def test_omni_reference_video_body_and_video_input_price(project):
    folder = project(FEATURE)
    (request,) = planner.plan(load(folder)).requests
    assert request.body == {
        "model_name": "kling-v3-omni",
        "mode": "std",
        "prompt": "Based on <<<video_1>>>, generate the next shot",
        "duration": "5",
        "video_list": [{"video_url": "https://cdn.example.test/clips/ref_4s.mp4", "refer_type": "feature",
                        "keep_original_sound": "no"}],
        "aspect_ratio": "16:9",
        "sound": "off",
    }
    assert request.units == pytest.approx(4.5)  # 0.9 units/s with video input x 5 s
    assert request.media == {VIDEO_SCHEME + sha(folder / "clips/ref_4s.mp4"): "clips/ref_4s.mp4"}


def test_omni_video_edit_renders_and_bills_the_clip_length_without_duration_or_ratio(project):
    (request,) = planner.plan(load(project(EDIT))).requests
    assert request.body == {
        "model_name": "kling-v3-omni",
        "mode": "pro",
        "prompt": "Make it snow in <<<video_1>>>",
        "video_list": [{"video_url": "https://cdn.example.test/clips/ref_4s.mp4", "refer_type": "base",
                        "keep_original_sound": "yes"}],
        "sound": "off",
    }
    assert request.duration == 4 and request.units == pytest.approx(4.8) and request.sound is True


def test_avatar_body_sends_the_audio_as_a_placeholder_and_bills_per_second_of_audio(project):
    folder = project(AVATAR)
    (request,) = planner.plan(load(folder)).requests
    assert request.endpoint == "/v1/videos/avatar/image2video"
    assert request.body == {
        "image": IMAGE_SCHEME + sha(folder / "refs/hero.png"),
        "sound_file": AUDIO_SCHEME + sha(folder / "audio/speech.wav"),
        "prompt": "calm, small nods",
        "mode": "pro",
    }
    assert request.duration == 3 and request.units == pytest.approx(2.4) and request.sound is True


def test_lip_sync_of_a_rendered_shot_waits_for_its_clip_and_bills_per_started_5_s(project):
    folder = project(LIP_SYNC_OF_SHOT)
    wide, voiced = planner.plan(load(folder)).requests
    assert voiced.endpoint == "/v1/videos/lip-sync" and voiced.depends_on == [wide.key]
    assert voiced.body == {"input": {"mode": "audio2video", "video_url": CLIP_SCHEME + wide.key,
                                     "audio_type": "file", "audio_file": AUDIO_SCHEME + sha(folder / "audio/speech.wav")}}
    assert voiced.duration == 5 and voiced.units == pytest.approx(0.5)
    assert (voiced.width, voiced.height) == (wide.width, wide.height)


def test_lip_sync_of_a_video_file(project):
    (request,) = planner.plan(load(project(LIP_SYNC_OF_FILE))).requests
    assert request.body["input"]["video_url"] == "https://cdn.example.test/clips/ref_4s.mp4"
    assert request.units == pytest.approx(0.5) and (request.width, request.height) == (1280, 720)


# ---- limits and exclusions, each at its line ------------------------------------------------------


@pytest.mark.parametrize(
    ("shots", "line", "path", "words"),
    [
        (MOTION.replace("motion_4s", "motion_12s"), 11, "shots[0].motion_control.video", "from 3 s to 10 s"),
        (MOTION.replace("motion_4s", "tiny_4s"), 11, "shots[0].motion_control.video", "at least 340 px"),
        (MOTION.replace("clips/motion_4s.mp4\n", "clips/missing.mp4\n"), 11, "shots[0].motion_control.video",
         "file not found"),
        (MOTION.replace("    prompt: she", "    end_frame: hero\n    prompt: she"), 9, "shots[0].end_frame",
         "takes no end_frame"),
        (MOTION.replace("    prompt: she", "    sound: true\n    prompt: she"), 9, "shots[0].sound",
         "no native sound"),
        (MOTION.replace("    prompt: she", "    mode: 4k\n    prompt: she"), 9, "shots[0].mode", "std or pro"),
        (MOTION.replace("    prompt: she", "    model: kling-v3-omni\n    prompt: she"), 9, "shots[0].model",
         "kling-v3 or kling-v2-6"),
        (MOTION.replace("duration: 4", "duration: 6"), 8, "shots[0].duration", "lasts about 4.00 s"),
        (FEATURE.replace("    prompt:", "    sound: true\n    prompt:"), 10, "shots[0].sound",
         "excludes native sound"),
        (FEATURE.replace("ref_4s.mp4\n      url", "ref15fps_4s.mp4\n      url"), 12, "shots[0].video_reference.video",
         "24-60 fps"),
        (FEATURE.replace("ref_4s.mp4\n      url", "motion_4s.mp4\n      url"), 12, "shots[0].video_reference.video",
         "at least 720 px"),
        (EDIT.replace("    prompt:", "    start_frame: hero\n    prompt:"), 16, "shots[0].video_reference.use",
         "remove start_frame"),
        (FEATURE.replace("model: kling-v3-omni", "model: kling-v3"), 12, "shots[0].video_reference",
         "needs an omni model"),
        (AVATAR.replace("speech.wav", "blip.wav"), 13, "shots[0].avatar.audio", "from 2 s to 300 s"),
        (AVATAR.replace("speech.wav", "speech.ogg"), 13, "shots[0].avatar.audio", "mp3/wav/m4a/aac"),
        (AVATAR.replace("duration: 3", "duration: 4"), 8, "shots[0].duration", "lasts about 3.00 s"),
        (LIP_SYNC_OF_SHOT.replace("shot: wide", "shot: later"), 13, "shots[1].lip_sync.shot", "does not exist"),
        (LIP_SYNC_OF_FILE.replace("audio/speech", "audio/blip"), 12, "shots[0].lip_sync.audio", "from 2 s to 60 s"),
        (LIP_SYNC_OF_FILE + "    prompt: speak\n", 13, "shots[0].prompt", "takes no prompt"),
        (MOTION + "    avatar: {image: hero, audio: audio/speech.wav}\n", 16, "shots[0].avatar", "another kind"),
    ],
)
def test_each_limit_and_exclusion_is_refused_at_its_line(project, shots, line, path, words):
    found = errors_of(project(shots))
    assert any(e.startswith(f"{line}|{path}|") and words in e for e in found), found


def test_lip_sync_needs_exactly_one_source_refused_by_the_loader(project):
    with pytest.raises(StoryboardInvalid) as caught:
        load(project(LIP_SYNC_OF_FILE.replace("      audio:", "      shot: x\n      audio:")))
    assert "exactly one of shot" in str(caught.value)


def test_a_kind_shot_is_never_packed_and_an_explicit_group_with_one_is_refused(project):
    two = "  - {id: a, duration: 3, prompt: a city}\n" + MOTION + "  - {id: b, duration: 3, prompt: a street}\n"
    plan = planner.plan(load(project(two)))
    assert [len(r.shots) for r in plan.requests] == [1, 1, 1]
    grouped = project(two + "groups:\n  - [dance, b]\n")
    assert any("a request of its own" in e for e in errors_of(grouped))


def test_a_video_without_url_plans_for_the_preview_and_is_refused_by_kling_before_sending(project):
    folder = project(MOTION.replace("      url: https://cdn.example.test/clips/motion_4s.mp4\n", ""))
    loaded = load(folder)
    advisories = [p.message for p in planner.check(loaded) if p.severity == "advisory"]
    assert any("Kling fetches input videos by URL only" in a for a in advisories)
    plan = planner.plan(loaded)
    assert plan.requests[0].body["video_url"].startswith(VIDEO_SCHEME)
    fake = FakeKling()
    result = _render_on(fake, plan, folder)
    assert fake.create_attempts == 0 and result.failed and "fetch by URL" in result.failed[0][1]


# ---- rendering: the fake Kling charges what the plan says; the preview of each kind ------------


ALL_KINDS = MOTION + FEATURE + EDIT + AVATAR + LIP_SYNC_OF_SHOT + LIP_SYNC_OF_FILE


async def _no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def _render_on(fake: FakeKling, plan, folder: Path) -> engine.RenderResult:
    async def go():
        credentials = KlingCredentials(access_key=fake.access_key, secret_key=fake.secret_key, base_url=fake.base_url)
        provider = KlingProvider(credentials, transport=fake.transport(), sleep=_no_sleep)
        try:
            return await engine.render(plan, folder, provider, sleep=_no_sleep)
        except Rejected as error:  # pragma: no cover - the engine reports refusals per request
            raise AssertionError(error) from error
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_every_kind_renders_on_the_fake_kling_and_is_charged_exactly_its_planned_price(project):
    folder = project(ALL_KINDS)
    plan = planner.plan(load(folder))
    fake = FakeKling(polls_to_finish=1)
    for name, seconds in (("motion_4s.mp4", 4.0), ("ref_4s.mp4", 4.0)):
        fake.reference_videos[URL + name] = seconds
    result = _render_on(fake, plan, folder)
    assert not result.failed and not result.skipped, (result.failed, result.skipped)
    by_external = {t.external_task_id: t for t in fake.tasks.values()}
    for request in plan.requests:
        task = by_external[request.external_task_id]
        assert task.family == request.family
        assert task.units == pytest.approx(request.units), request.id
        facts = probe(engine.clip_path(folder, "kling", request.key))
        assert facts.frames > 0
    assert fake.charged_units == pytest.approx(plan.units)
    voiced = by_external[plan.request_for_shot("wide-voiced")[0].external_task_id]
    wide = by_external[plan.request_for_shot("wide")[0].external_task_id]
    assert voiced.body["input"]["video_url"] == wide.video_url  # the URL Kling gave for the rendered clip
    avatar = by_external[plan.request_for_shot("talk")[0].external_task_id]
    assert avatar.body["sound_file"] and not avatar.body["sound_file"].startswith(AUDIO_SCHEME)
    with Journal.open(folder) as journal:
        assert journal.units_charged("kling") == pytest.approx(plan.units)


def test_the_preview_of_each_kind_has_its_inputs_timing_and_sound(project):
    folder = project(ALL_KINDS.replace("keep_sound: false", "keep_sound: true", 1))
    plan = planner.plan(load(folder))
    provider = PreviewProvider(folder)

    async def go():
        return await engine.render(plan, folder, provider, sleep=_no_sleep)

    result = asyncio.run(go())
    assert not result.failed and not result.skipped, (result.failed, result.skipped)
    for request in plan.requests:
        facts = probe(engine.clip_path(folder, "preview", request.key))
        assert facts.frames == request.duration * request.fps, request.id
        assert facts.has_audio == request.sound, request.id
        assert (facts.width, facts.height) == preview_size(request), request.id
    motion = plan.request_for_shot("dance")[0]
    assert motion.sound is True  # keep_sound on a video with sound: the clip keeps it
    assert plan.request_for_shot("talk")[0].duration == 3  # the audio's length
    assert plan.request_for_shot("edit")[0].duration == 4  # the edited clip's length


def test_keep_sound_on_a_silent_motion_video_is_advised_and_the_clip_is_silent(project):
    folder = project(MOTION.replace("motion_4s", "silent_4s").replace("keep_sound: false", "keep_sound: true"))
    loaded = load(folder)
    assert any("no sound track" in p.message for p in planner.check(loaded) if p.severity == "advisory")
    assert planner.plan(loaded).requests[0].sound is False


# ---- the new-standard wire form (kling-api-2.md §1.2, §2.2) --------------------------------------


def test_motion_control_on_the_new_api_is_typed_contents_and_settings(project):
    header = HEADER.replace("description: a dancer in a red coat}", "description: a dancer, element: 829836802793406551}")
    folder = project(MOTION.replace("    prompt: she", "    api: new\n    mode: pro\n    prompt: she"), header=header)
    (request,) = planner.plan(load(folder)).requests
    assert request.api == "new" and request.endpoint == "/motion-control/kling-3.0"
    assert request.body == {
        "contents": [
            {"type": "prompt", "text": "she dances on a rooftop"},
            {"type": "image", "url": IMAGE_SCHEME + sha(folder / "refs/hero.png")},
            {"type": "video", "url": "https://cdn.example.test/clips/motion_4s.mp4"},
            {"type": "element", "element_id": "829836802793406551", "id": "element_1"},
        ],
        "settings": {"character_orientation": "image", "audio": "off", "resolution": "1080p"},
    }
    assert request.units == pytest.approx(4.8)  # the same product and price as the legacy form


def test_omni_video_on_the_new_api_is_a_feature_or_base_video_part(project):
    (feature,) = planner.plan(load(project(FEATURE.replace("    prompt:", "    api: new\n    prompt:")))).requests
    assert feature.endpoint == "/omni-video/kling-3.0-omni"
    assert feature.body["contents"] == [
        {"type": "prompt", "text": "Based on @video_1, generate the next shot"},
        {"type": "feature_video", "url": "https://cdn.example.test/clips/ref_4s.mp4", "id": "video_1"},
    ]
    assert feature.body["settings"] == {"resolution": "720p", "aspect_ratio": "16:9", "duration": 5, "audio": "off",
                                        "multi_shot": False}
    (edit,) = planner.plan(load(project(EDIT.replace("    prompt:", "    api: new\n    prompt:")))).requests
    assert edit.body["contents"][-1] == {"type": "base_video", "url": "https://cdn.example.test/clips/ref_4s.mp4",
                                         "id": "video_1"}
    assert edit.body["settings"] == {"resolution": "1080p", "audio": "original", "multi_shot": False}
    assert edit.units == pytest.approx(4.8)


def test_a_reference_video_with_its_sound_is_refused_on_the_new_api_for_3_0_omni(project):
    shots = FEATURE.replace("    prompt:", "    api: new\n    prompt:") + "      keep_sound: true\n"
    assert any("audio off only" in e for e in errors_of(project(shots)))


# ---- the fake Kling is strict on the new endpoints ------------------------------------------------


def _post(fake: FakeKling, path: str, body: dict) -> dict:
    import httpx

    with httpx.Client(transport=fake.transport(), base_url=fake.base_url, headers=fake.auth_headers()) as session:
        return session.post(path, json=body).json()


def test_the_fake_refuses_avatar_and_lip_sync_bodies_the_reference_forbids(media):
    import base64

    from tests.conftest import write_image

    fake = FakeKling()
    face_path = write_image(media["speech.wav"].parent / "face.png", 400, 400)
    face = base64.b64encode(face_path.read_bytes()).decode()
    speech = base64.b64encode(media["speech.wav"].read_bytes()).decode()
    blip = base64.b64encode(media["blip.wav"].read_bytes()).decode()
    avatar = "/v1/videos/avatar/image2video"
    assert _post(fake, avatar, {"image": face, "sound_file": speech, "audio_id": "a1"})["code"] == 1201
    assert "2-300 s" in _post(fake, avatar, {"image": face, "sound_file": blip})["message"]
    assert _post(fake, avatar, {"image": face, "sound_file": speech, "duration": "5"})["code"] == 1201
    assert _post(fake, avatar, {"image": face, "sound_file": speech, "mode": "4k"})["code"] == 1201
    lip = "/v1/videos/lip-sync"
    good = {"mode": "audio2video", "video_url": URL + "talk_4s.mp4", "audio_type": "file", "audio_file": speech}
    assert _post(fake, lip, {"input": {**good, "audio_type": None}})["code"] == 1201
    assert _post(fake, lip, {"input": {k: v for k, v in good.items() if k != "video_url"}})["code"] == 1201
    assert _post(fake, lip, {"input": {**good, "video_url": URL + "talk_90s.mp4"}})["code"] == 1201
    assert _post(fake, lip, {"input": good, "mode": "pro"})["code"] == 1201
    assert fake.creates == {}
    created = _post(fake, lip, {"input": good, "external_task_id": "lip-1"})
    assert created["code"] == 0 and fake.tasks[created["data"]["task_id"]].units == pytest.approx(0.5)
    created = _post(fake, avatar, {"image": face, "sound_file": speech, "mode": "pro", "external_task_id": "av-1"})
    assert created["code"] == 0 and fake.tasks[created["data"]["task_id"]].units == pytest.approx(2.4)
