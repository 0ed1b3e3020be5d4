"""Video-character elements (``references.<id>.video``, Kling's ``reference_type: video_refer``).

Real parts throughout: the clips are real MP4s made with ffmpeg and probed with PyAV; the
registration bodies are compared whole with what kling-api-2.md §3.1 documents; the elements are
registered through the real engine and Kling client against the strict, stateful fake (only the
network edge is faked), whose charges are compared with the plan's; the preview clip is decoded.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from test_engine import render
from typer.testing import CliRunner

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.media import ffmpeg_exe, probe
from storyboard.plan import VIDEO_SCHEME, planner
from storyboard.render import engine
from storyboard.render.journal import Journal
from storyboard.render.providers.kling_element_views import bound_voice, cloned_voice
from storyboard.render.providers.preview import PreviewProvider
from tests.fakes.kling import FakeKling

URL = "https://cdn.example.test/people/host_5s.mp4"
IMAGES = {"refs/hero.png": (1024, 1024), "refs/hero-side.png": (1024, 768)}


def _clip(path: Path, seconds: float, width: int, height: int, colour: str = "red") -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c={colour}:size={width}x{height}:rate=24", "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Real clips, made once: the good ones and one breaking each of Kling's limits."""
    folder = tmp_path_factory.mktemp("element-clips")
    made = {
        "host.mp4": (5, 1920, 1080, "red"),
        "tall.mp4": (4, 1080, 1920, "blue"),
        "long.mp4": (9, 1920, 1080, "red"),
        "short.mp4": (2, 1920, 1080, "red"),
        "hd720.mp4": (4, 1280, 720, "red"),
        "square.mp4": (4, 1080, 1080, "red"),
    }
    for name, (seconds, width, height, colour) in made.items():
        _clip(folder / name, seconds, width, height, colour)
    return {name: folder / name for name in made}


@pytest.fixture
def project(make_project, clips):
    """``project(yaml)`` -> a project folder with the clips under media/ and two images under refs/."""

    def make(text: str) -> Path:
        folder = make_project(text, images=IMAGES)
        (folder / "media").mkdir()
        for name, path in clips.items():
            shutil.copyfile(path, folder / "media" / name)
        return folder

    return make


BOARD = """\
name: v
defaults: {{model: {model}, mode: std, strategy: per_shot, sound: {sound}}}
references:
  host:
    video: media/{clip}
{url}    description: the host, mid-thirties, navy blazer
    element: {{name: Host, tags: [o_102]{element}}}
  hero:
    image: refs/hero.png
    description: a hero
    element: {{extra_images: [refs/hero-side.png]}}
shots:
  - id: a
    duration: 5
    references: [host]
    prompt: "{{{{ ref('host') }}}} says: \\"Welcome back.\\""
{more}"""


def board(model: str = "kling-v3-omni", clip: str = "host.mp4", url: str | None = URL, element: str = "",
          more: str = "", sound: str = "true") -> str:
    return BOARD.format(model=model, clip=clip, url=f"    url: {url}\n" if url else "", element=element, more=more,
                        sound=sound)


def problems(folder: Path, severity: str = "error") -> list[tuple[int, str | None, str]]:
    return [(p.location.line, p.location.path, p.message) for p in planner.check(load(folder))
            if p.severity == severity]


def spec_errors(folder: Path) -> list[tuple[int, str]]:
    with pytest.raises(StoryboardInvalid) as raised:
        load(folder)
    return [(p.location.line, p.message) for p in raised.value.problems]


# ---- the plan and the registration body ------------------------------------------------------------


def test_a_video_reference_is_a_video_refer_element_in_the_plan(project):
    folder = project(board())
    (request,) = planner.plan(load(folder)).requests
    (registration,) = request.elements
    assert (registration.reference_type, registration.video_url, registration.video_file) == \
        ("video_refer", URL, "media/host.mp4")
    assert registration.frontal_image is None and registration.refer_images == []
    assert request.body == {
        "model_name": "kling-v3-omni", "mode": "std", "prompt": '<<<element_1>>> says: "Welcome back."',
        "duration": "5", "aspect_ratio": "16:9", "element_list": [{"element_id": registration.placeholder}],
        "sound": "on",
    }
    assert request.units == 4, "priced as 3.0 Omni with audio: 0.8 u/s std"
    assert any("clones it and binds it to the element" in note for note in request.notes)
    shown = planner.plan_to_json(planner.plan(load(folder)))["requests"][0]["elements"][0]
    assert shown["placeholder"].startswith("<element media/host.mp4 sha256:") and "frontal_image" not in shown


def test_the_elements_identity_is_its_clip_its_url_and_its_voice(project, tmp_path):
    def placeholder(folder: Path) -> str:
        return planner.plan(load(folder)).requests[0].elements[0].placeholder

    base = placeholder(project(board()))
    assert placeholder(project(board())) == base, "the same clip at the same url is the same element"
    assert placeholder(project(board(url="https://cdn.example.test/people/other_5s.mp4"))) != base
    assert placeholder(project(board(element=', voice_id: "vc-1"'))) != base
    other = project(board())
    _clip(other / "media" / "host.mp4", 5, 1920, 1080, "green")
    assert placeholder(other) != base, "another clip under the same name is another element"


def test_registration_bodies_are_exact_and_prices_equal_the_fakes_charges(project):
    fake = FakeKling()
    folder = project(board(element=', voice_id: "vc-9"'))
    plan = planner.plan(load(folder))
    result = render(plan, folder, fake)
    assert result.ok, result.failed
    (task,) = [t for t in fake.tasks.values() if t.element]
    registration = plan.requests[0].elements[0]
    external = "sb-el-" + registration.placeholder.removeprefix("element://sha256/")[:40]
    assert task.body == {
        "element_name": "Host",
        "element_description": "the host, mid-thirties, navy blazer",
        "reference_type": "video_refer",
        "element_video_list": {"refer_videos": [{"video_url": URL}]},
        "external_task_id": external,
        "tag_list": [{"tag_id": "o_102"}],
        "element_voice_id": "vc-9",
    }
    video = fake.task_by_external_id(plan.requests[0].external_task_id)
    assert video.body["element_list"] == [{"element_id": task.element_id}]
    assert fake.charged_units == pytest.approx(plan.units) and plan.units == 4, "element creation is not charged"
    with Journal.open(folder) as journal:
        assert journal.element_voices() == [], "a voice it was given is not a cloned one"


# ---- Kling's limits, each at its line ---------------------------------------------------------------


@pytest.mark.parametrize(("clip", "message"), [
    ("long.mp4", "media/long.mp4 lasts 9.00 s: Kling takes a video-character element's clip from 3 s to 8 s; trim it"),
    ("short.mp4", "media/short.mp4 lasts 2.00 s: Kling takes a video-character element's clip from 3 s to 8 s; "
                  "trim it"),
    ("hd720.mp4", "media/hd720.mp4 is 1280x720 px: Kling needs a video-character element's clip's sides at least "
                  "1080 px; use a larger video"),
    ("square.mp4", "media/square.mp4 is 1080x1080: Kling makes a video-character element from a 1080p clip at 16:9 "
                   "or 9:16 only (1920x1080 or 1080x1920): export it at one of those sizes"),
    ("missing.mp4", "file not found: media/missing.mp4 (a video-character element's clip): check the path, relative "
                    "to the project folder"),
    ("host.avi", "media/host.avi is a .avi file: Kling takes a video-character element's clip as mp4/mov; "
                 "convert it"),
])
def test_each_limit_of_the_clip_is_refused_at_its_video_line(project, clip, message):
    assert problems(project(board(clip=clip))) == [(5, "references.host.video", message)]


def test_a_clip_over_200_mb_is_refused_before_it_is_probed(project):
    folder = project(board(clip="big.mp4"))
    with open(folder / "media" / "big.mp4", "wb") as file:
        file.truncate(200_000_001)  # sparse: no disk is used
    assert problems(folder) == [(5, "references.host.video", "media/big.mp4 is 200.0 MB: Kling takes a "
                                 "video-character element's clip up to 200 MB; export it smaller")]


def test_a_portrait_clip_is_accepted(project):
    assert problems(project(board(clip="tall.mp4"))) == []


def test_a_clip_without_url_is_advised_and_refused_by_kling_before_anything_is_sent(project):
    folder = project(board(url=None))
    assert problems(folder) == []
    assert problems(folder, "advisory") == [(
        5, "references.host.video",
        "media/host.mp4 has no url: Kling fetches element videos by URL only, so only the preview provider can "
        "render the shots that use host; add url: to register the element on Kling",
    )]
    plan = planner.plan(load(folder))
    assert plan.requests[0].elements[0].video_url.startswith(VIDEO_SCHEME)
    fake = FakeKling()
    result = render(plan, folder, fake)
    ((request_id, reason),) = result.failed
    assert request_id == "r01-a" and "can only fetch by URL" in reason and "nothing was sent" in reason
    assert not fake.requests_log, "no lookup, no create"


# ---- the YAML shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("reference", "message"), [
    ("{image: refs/hero.png, video: media/host.mp4}",
     "a reference takes exactly one of image (a picture) or video (a video-character element's clip)"),
    ("{image: refs/hero.png, url: 'https://x.test/a.mp4'}",
     "url goes with video (Kling fetches element videos by URL); an image is uploaded from its file: remove url"),
    ("{video: media/host.mp4, role: style}",
     "a video reference is a character (a video-character element), not a style: remove role, or use an image"),
    ("{video: media/host.mp4, element: false}",
     "a video reference is always a Kling element (video_refer): remove element: false, or give an image instead "
     "of the video"),
    ("{video: media/host.mp4, element: {extra_images: [refs/hero-side.png]}}",
     "a video-character element is made from its clip alone: remove element.extra_images (extra views belong to "
     "image elements)"),
])
def test_a_wrong_reference_shape_is_refused_at_its_line(project, reference, message):
    folder = project(f"name: v\nreferences:\n  host: {reference}\nshots:\n  - {{id: a, duration: 5, prompt: x}}\n")
    ((line, text),) = spec_errors(folder)
    assert line == 3 and message in text


def test_a_video_reference_needs_no_element_key(project):
    folder = project("name: v\ndefaults: {model: kling-v3-omni}\nreferences:\n  host: {video: media/host.mp4, "
                     f"url: '{URL}'}}\nshots:\n  - {{id: a, duration: 5, references: [host], prompt: x}}\n")
    (registration,) = planner.plan(load(folder)).requests[0].elements
    assert registration.reference_type == "video_refer" and registration.name == "host"


# ---- where a video element may be used --------------------------------------------------------------

USES = {
    "start_frame": ("    start_frame: host\n", "shots[1].start_frame", "a start frame"),
    "end_frame": ("    start_frame: refs/hero.png\n    end_frame: host\n", "shots[1].end_frame", "an end frame"),
    "avatar": ("    avatar: {image: host, audio: media/x.wav}\n", "shots[1].avatar.image", "an avatar's face"),
    "motion": ("    motion_control: {video: media/host.mp4, url: 'https://x.test/m.mp4', character: host, "
               "orientation: image}\n", "shots[1].motion_control.character",
               "a motion-control character (its image is the start)"),
}


@pytest.mark.parametrize("use", sorted(USES))
def test_a_video_reference_used_as_a_picture_is_refused_at_that_line(project, use):
    extra, path, what = USES[use]
    folder = project(board(more=f"  - id: b\n    duration: 5\n    prompt: y\n{extra}"))
    with pytest.raises(StoryboardInvalid) as raised:
        load(folder)
    found = [(p.location.path, p.message) for p in raised.value.problems if "is a video (a video-character" in p.message]
    assert found == [(path, f"reference host is a video (a video-character element): Kling takes a picture as "
                            f"{what}, not a video: name an image reference or an image path, and list host in "
                            "references instead")]


def test_kling_video_o1_takes_no_video_element(project):
    folder = project(board(model="kling-video-o1", sound="false"))
    assert problems(folder) == [(16, "shots[0].references", "kling-video-o1 takes multi-image elements only, and "
                                 "reference host is a video (a video-character element): use kling-v3-omni, or give "
                                 "the element images")]


def test_kling_v3_takes_it_on_image_to_video_with_a_note_that_only_the_capability_map_says_so(project):
    text_only = project(board(model="kling-v3"))
    assert problems(text_only) == [(16, "shots[0].references", "reference host is a video-character element, which "
                                    "Kling takes on kling-v3-omni and kling-v3 image-to-video only (this request is "
                                    "kling-v3 text2video): use kling-v3-omni, or give the shot a start_frame")]
    folder = project(board(model="kling-v3").replace("    references: [host]\n",
                                                     "    references: [host]\n    start_frame: refs/hero.png\n"))
    (request,) = planner.plan(load(folder)).requests
    assert request.family == "image2video" and request.elements[0].reference_type == "video_refer"
    assert any("capability map lists them there" in note and "unverified" in note for note in request.notes)
    fake = FakeKling()
    assert render(planner.plan(load(folder)), folder, fake).ok
    assert fake.charged_units == pytest.approx(request.units)


def test_a_model_without_elements_refuses_it(project):
    assert [m for _, _, m in problems(project(board(model="kling-v2-6", sound="false")))] == [
        "reference host is a video-character element, which Kling takes on kling-v3-omni and kling-v3 "
        "image-to-video only (this request is kling-v2-6 text2video): use kling-v3-omni"]


FEATURE = """\
  - id: next
    duration: 5
    sound: false
    references: [{refs}]
    prompt: "{{{{ ref('host') }}}} walks on from <<<video_1>>>"
    video_reference: {{video: media/tall.mp4, url: "https://cdn.example.test/ref_4s.mp4"}}
"""


def test_with_a_reference_video_one_video_element_follows_the_newer_page(project):
    folder = project(board(more=FEATURE.format(refs="host")))
    assert problems(folder) == []
    assert (21, "shots[1].references", "Kling's 2026-03 page allows no video-character element with a reference "
            "video; its 2026-09 page at most one: this plan follows the newer page") in problems(folder, "advisory")
    fake = FakeKling()
    plan = planner.plan(load(folder))
    assert render(plan, folder, fake).ok, "the strict fake takes the 2026-09 rule too"
    assert fake.charged_units == pytest.approx(plan.units)


def test_with_a_reference_video_elements_are_not_mixed(project):
    folder = project(board(more=FEATURE.format(refs="host, hero")))
    assert (21, "shots[1].references", "with a reference video Kling never mixes a video-character element with "
            "multi-image elements (hero): keep one kind") in problems(folder)


# ---- the cloned voice -------------------------------------------------------------------------------


def test_a_voice_in_the_clip_is_cloned_journaled_shown_and_never_registered_again(project, no_keys):
    from storyboard.cli import _register_commands, app

    _register_commands()
    fake = FakeKling()
    fake.voiced_videos.add(URL)
    folder = project(board())
    plan = planner.plan(load(folder))
    events: list[engine.RenderEvent] = []
    first = render(plan, folder, fake, events=events.append)
    assert first.ok and len(first.cloned_voices) == 1
    (task,) = [t for t in fake.tasks.values() if t.element]
    voice = task.element["element_voice_info"]
    assert voice["voice_id"] and "element_voice_id" not in task.body
    line = (f"element host: Kling cloned the voice in its clip, Host voice (voice_id {voice['voice_id']}, listen: "
            f"{voice['trial_url']}); it is bound to the element and journaled, never registered again")
    assert [e.message for e in events if "cloned" in e.message] == [line]
    assert render(plan, folder, fake).cloned_voices == [], "a second run clones nothing and says nothing"
    with Journal.open(folder) as journal:
        ((provider, reference, journaled),) = journal.element_voices()
    assert (provider, reference, journaled.voice_id, journaled.voice_name) == ("kling", "host", voice["voice_id"],
                                                                              "Host voice")
    status = CliRunner().invoke(app, ["status", str(folder)])
    assert f"kling: {line}" in status.output
    assert sum(fake.element_creates.values()) == 1 and sum(fake.voice_creates.values()) == 0

    # a second run registers nothing; a deleted journal finds the element (and its voice) by external id
    assert render(planner.plan(load(folder)), folder, fake).ok
    shutil.rmtree(folder / ".storyboard")
    assert render(planner.plan(load(folder)), folder, fake).ok
    assert sum(fake.element_creates.values()) == 1 and sum(fake.voice_creates.values()) == 0
    assert sum(fake.creates.values()) == 1, "the video itself was adopted, not paid again"
    with Journal.open(folder) as journal:
        digest = plan.requests[0].elements[0].placeholder.removeprefix("element://sha256/")
        assert journal.element_id("kling", digest) == task.element_id
        assert [v.voice_id for _, _, v in journal.element_voices()] == [voice["voice_id"]]


def test_both_shapes_of_an_element_view_name_its_voice():
    legacy = {"element_voice_info": {"voice_id": "v1", "voice_name": "Ann", "trial_url": "https://t/1.mp3",
                                     "owned_by": "42"}}
    query = {"references": [{"type": "image", "role": "frontal", "url": "https://i/1.png"},
                            {"type": "voice", "role": "refer", "url": "https://t/2.mp3", "id": "v2", "name": "Bo",
                             "owned_by": "42"}]}
    callback = {"materials": [{"type": "image", "role": "refer", "url": "https://i/2.png"},
                              {"type": "voice", "role": "refer", "url": "https://t/3.mp3", "id": "v3", "name": "Cy"}]}
    assert [(v.voice_id, v.voice_name, v.trial_url) for v in map(bound_voice, (legacy, query, callback))
            if v is not None] == [("v1", "Ann", "https://t/1.mp3"), ("v2", "Bo", "https://t/2.mp3"),
                                  ("v3", "Cy", "https://t/3.mp3")]
    assert bound_voice({"element_voice_info": {}}) is None and bound_voice({"references": []}) is None
    assert cloned_voice(legacy, "v1") is None, "the voice the registration bound is not a cloned one"


# ---- the preview ------------------------------------------------------------------------------------


def test_the_preview_draws_a_frame_of_the_elements_clip(project):
    import av

    def mean_colour(folder: Path) -> tuple[float, float, float]:
        plan = planner.plan(load(folder))

        async def go() -> engine.RenderResult:
            return await engine.render(plan, folder, PreviewProvider(folder))

        assert asyncio.run(go()).ok
        clip = engine.clip_path(folder, "preview", plan.requests[0].key)
        facts = probe(clip)
        assert facts.duration == pytest.approx(5, abs=0.1)
        with av.open(str(clip)) as container:
            frame = next(f for i, f in enumerate(container.decode(video=0)) if i == 12).to_image().convert("RGB")
        top = frame.crop((0, 0, frame.width, frame.height // 8)).resize((1, 1)).getpixel((0, 0))
        return top

    red = mean_colour(project(board(url=None)))
    blue = mean_colour(project(board(url=None, clip="tall.mp4")))
    assert red[0] > red[2] + 40, red
    assert blue[2] > blue[0] + 40, blue


def test_on_the_new_api_a_video_element_is_an_element_part_and_renders_at_its_price(project):
    from test_kling_standard_client import assert_paid_once, creates_sent
    from test_kling_standard_client import render as render_standard

    fake = FakeKling(polls_to_finish=1, require_known_elements=True)
    folder = project(board().replace("strategy: per_shot,", "strategy: per_shot, api: new,"))
    plan = planner.plan(load(folder))
    (request,) = plan.requests
    assert request.endpoint == "/omni-video/kling-3.0-omni"
    assert render_standard(plan, folder, fake).ok
    (task,) = [t for t in fake.tasks.values() if t.element]
    assert task.body["reference_type"] == "video_refer"
    import json

    (sent,) = creates_sent(fake)
    assert json.loads(sent.content)["contents"] == [
        {"type": "prompt", "text": '@element_1 says: "Welcome back."'},
        {"type": "element", "element_id": str(task.element_id), "id": "element_1"},
    ]
    assert_paid_once(plan, folder, fake)


# ---- the journal's record of cloned voices (also run on PostgreSQL: tests/test_journal_parity.py) ---


def test_a_cloned_voice_is_journaled_per_element_replaced_and_copied(tmp_path):
    from storyboard.render.journal import ElementVoice

    digest = "e" * 64
    with Journal.open(tmp_path / "a") as journal:
        assert journal.element_voice("kling", digest) is None and journal.element_voices() == []
        journal.record_element("kling", digest, 829836802793406551)
        journal.record_element_voice("kling", digest, 829836802793406551, "host",
                                     ElementVoice("855000000000000001", "Host voice", "https://t.test/1.mp3", "42"))
        journal.record_element_voice("kling", digest, 829836802793406551, "host",
                                     ElementVoice("855000000000000002", "Host voice", None, "42"))
        assert journal.element_voice("kling", digest) == ElementVoice("855000000000000002", "Host voice", None, "42")
        assert journal.element_voice("preview", digest) is None
        assert journal.element_voices() == [("kling", "host", journal.element_voice("kling", digest))]
        with Journal.open(tmp_path / "b") as target:
            copied = journal.copy_into(target)
            assert target.element_voice("kling", digest) == journal.element_voice("kling", digest)
    assert copied["element_voices"][0] == 1
