"""The two voice routes beside elements (kling-api-2.md §3.3, §7.3).

* ``voice_list`` forced through ``extra`` on kling-v3 (legacy): the client guidance is to send it
  unchanged and surface the server's answer; the strict fake answers it as the documented service
  would (1201 about ``voice_list``), the user sees that message as Kling wrote it, nothing is paid.
* kling-2.6 voices on the new API: ``voices:`` on a kling-v2-6 pro image-to-video shot with
  ``api: new`` become ``voice`` parts (at most 2, audio on), the prompt names each as ``@voice_N``
  (``voice(n)`` in templates) and the price is 2.6's voice-control rate, 1.2 u/s, as on legacy.

Bodies are compared whole; renders go through the real engine and client against the strict,
stateful fakes of both wire forms; charges are compared with the plan's prices.
"""

from __future__ import annotations

import json

import pytest
from test_engine import render as render_legacy
from test_kling_standard_client import assert_paid_once, creates_sent
from test_kling_standard_client import render as render_standard

from storyboard.load.loader import load
from storyboard.plan import planner
from tests.fakes.kling import FakeKling

IMAGES = {"refs/anchor.png": (1280, 720)}


def problems(folder, severity: str = "error") -> list[tuple[int, str | None, str]]:
    return [(p.location.line, p.location.path, p.message) for p in planner.check(load(folder))
            if p.severity == severity]


# ---- voice_list forced on kling-v3 ------------------------------------------------------------------

FORCED = """
    name: f
    defaults: {{model: kling-v3, mode: pro, sound: {sound}}}
    shots:
      - id: a
        duration: 5
        start_frame: refs/anchor.png
        prompt: "<<<voice_1>>> says: \\"Good evening.\\""
        extra: {{voice_list: [{{voice_id: "vc-777"}}]}}
    """


def test_a_forced_voice_list_is_sent_unchanged_and_marked_unverified(make_project):
    folder = make_project(FORCED.format(sound="true"), images=IMAGES)
    assert problems(folder) == []
    (request,) = planner.plan(load(folder)).requests
    assert request.body == {
        "model_name": "kling-v3", "mode": "pro", "prompt": '<<<voice_1>>> says: "Good evening."', "duration": "5",
        "image": request.body["image"], "sound": "on", "voice_list": [{"voice_id": "vc-777"}],
    }
    assert request.units == 6, "priced as 3.0 native audio without voice control: 1.2 u/s pro"
    assert any("voice_list forced through extra on kling-v3" in note and "unverified" in note
               and "priced as native audio without voice control" in note for note in request.notes)


def test_a_forced_voice_list_without_sound_is_advised(make_project):
    folder = make_project(FORCED.format(sound="false"), images=IMAGES)
    assert problems(folder, "advisory") == [(3, "defaults.sound", "shot a forces voice_list but sound is off: Kling "
                                             "speaks a voice only with native audio (set sound: true)")]


def test_the_voices_refusal_on_kling_v3_names_the_forced_route(make_project):
    folder = make_project("""
        name: f
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: refs/anchor.png, voices: ["v1"]}
        """, images=IMAGES)
    ((line, path, message),) = problems(folder)
    assert (line, path) == (4, "shots[0].voices")
    assert "force the field with extra: {voice_list: [{voice_id: <voice id>}]}" in message


def test_kling_answers_the_forced_voice_list_and_the_user_sees_its_words_and_pays_nothing(make_project):
    fake = FakeKling()
    folder = make_project(FORCED.format(sound="true"), images=IMAGES)
    plan = planner.plan(load(folder))
    result = render_legacy(plan, folder, fake)
    ((request_id, reason),) = result.failed
    assert request_id == "r01-a"
    assert "voice_list: voice control is only supported on kling-v2-6 pro 5/10 s, not kling-v3 pro" in reason
    assert fake.access_key not in reason and fake.secret_key not in reason
    assert fake.charged_units == 0 and sum(fake.creates.values()) == 0 and fake.create_attempts == 1


# ---- kling-2.6 voices on the new API ----------------------------------------------------------------

NEW_VOICES = """
    name: n
    defaults: {{model: kling-v2-6, mode: pro, sound: true, api: {api}}}
    shots:
      - id: a
        duration: 5
        start_frame: refs/anchor.png
        voices: [vc-1, vc-2]
        prompt: "{prompt}"
    """
TEMPLATE_PROMPT = '{{ voice(1) }} greets {{ voice(2) }}, who answers: \\"Hello.\\"'


def test_voices_on_the_new_api_are_voice_parts_named_in_the_prompt(make_project):
    folder = make_project(NEW_VOICES.format(api="new", prompt=TEMPLATE_PROMPT), images=IMAGES)
    (request,) = planner.plan(load(folder)).requests
    assert request.endpoint == "/image-to-video/kling-2.6"
    assert request.body == {
        "contents": [
            {"type": "prompt", "text": '@voice_1 greets @voice_2, who answers: "Hello."'},
            {"type": "first_frame", "url": request.body["contents"][1]["url"]},
            {"type": "voice", "voice_id": "vc-1", "id": "voice_1"},
            {"type": "voice", "voice_id": "vc-2", "id": "voice_2"},
        ],
        "settings": {"resolution": "1080p", "duration": 5, "audio": "native"},
    }
    assert request.units == 6, "2.6 native audio with voice control: 1.2 u/s, as on legacy"


def test_the_voice_helper_writes_each_apis_token(make_project):
    legacy = make_project(NEW_VOICES.format(api="legacy", prompt=TEMPLATE_PROMPT), images=IMAGES)
    (request,) = planner.plan(load(legacy)).requests
    assert request.body["prompt"] == '<<<voice_1>>> greets <<<voice_2>>>, who answers: "Hello."'
    assert request.body["voice_list"] == [{"voice_id": "vc-1"}, {"voice_id": "vc-2"}] and request.units == 6


def test_new_api_voice_parts_render_on_the_strict_fake_at_the_planned_price(make_project):
    fake = FakeKling(polls_to_finish=1)
    folder = make_project(NEW_VOICES.format(api="new", prompt=TEMPLATE_PROMPT), images=IMAGES)
    plan = planner.plan(load(folder))
    assert render_standard(plan, folder, fake).ok
    (sent,) = creates_sent(fake)
    body = json.loads(sent.content)
    assert [p for p in body["contents"] if p["type"] == "voice"] == [
        {"type": "voice", "voice_id": "vc-1", "id": "voice_1"}, {"type": "voice", "voice_id": "vc-2", "id": "voice_2"}]
    assert_paid_once(plan, folder, fake)


def test_a_voice_the_prompt_never_names_is_refused_on_the_new_api(make_project):
    folder = make_project(NEW_VOICES.format(api="new", prompt="{{ voice(1) }} says hello"), images=IMAGES)
    assert problems(folder) == [(8, "shots[0].voices", "on the new API each voice is a part the prompt must name: "
                                 "the prompt never says @voice_2 (voice(2) in templates): name it, or remove that "
                                 "voice")]


@pytest.mark.parametrize(("model", "message"), [
    ("kling-v3", "the new API takes voices (voice parts) on kling-v2-6 image-to-video only, not kling-v3: remove "
                 "voices, use kling-v2-6 pro with a start_frame, or set api: legacy"),
])
def test_voices_on_another_new_api_model_are_refused(make_project, model, message):
    text = NEW_VOICES.format(api="new", prompt=TEMPLATE_PROMPT).replace("kling-v2-6", model)
    assert (8, "shots[0].voices", message) in problems(make_project(text, images=IMAGES))


def test_the_strict_new_api_fake_refuses_an_unnamed_voice_part_and_voice_parts_elsewhere():
    fake = FakeKling()
    import base64
    import io

    import httpx
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), (9, 9, 9)).save(buffer, format="PNG")
    frame = base64.b64encode(buffer.getvalue()).decode()
    client = httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                          headers={"authorization": f"Bearer {fake.api_keys[0]}"})

    def create(path: str, contents: list[dict], settings: dict) -> dict:
        return client.post(path, json={"contents": contents, "settings": settings}).json()

    unnamed = create("/image-to-video/kling-2.6", [
        {"type": "prompt", "text": "@voice_1 speaks"}, {"type": "first_frame", "url": frame},
        {"type": "voice", "voice_id": "a", "id": "voice_1"}, {"type": "voice", "voice_id": "b", "id": "voice_2"}],
        {"resolution": "1080p", "duration": 5, "audio": "native"})
    assert unnamed["code"] == 1201 and "the prompt must name voice 'voice_2' as @voice_2" in unnamed["message"]
    elsewhere = create("/image-to-video/kling-3.0", [
        {"type": "prompt", "text": "@voice_1 speaks"}, {"type": "first_frame", "url": frame},
        {"type": "voice", "voice_id": "a", "id": "voice_1"}], {"resolution": "1080p", "duration": 5, "audio": "native"})
    assert elsewhere["code"] == 1201 and "part type 'voice' is not allowed on /image-to-video/kling-3.0" in \
        elsewhere["message"]
    assert fake.charged_units == 0


def test_the_cli_prints_klings_answer_to_a_forced_voice_list(make_project, no_keys):
    from typer.testing import CliRunner

    from storyboard.cli import _register_commands, app
    from tests.conftest import use_kling
    from tests.fakes.server import serve

    _register_commands()
    fake = FakeKling(polls_to_finish=1)
    folder = make_project(FORCED.format(sound="true"), images=IMAGES)
    with serve(fake) as base_url:
        use_kling(no_keys, fake, base_url)
        result = CliRunner().invoke(app, ["render", str(folder), "--yes"])
    assert result.exit_code == 1
    assert "voice_list: voice control is only supported on kling-v2-6 pro 5/10 s, not kling-v3 pro" in result.output
    assert fake.access_key not in result.output and fake.secret_key not in result.output
    assert fake.charged_units == 0
