"""Voiced elements, multi-shot ``intelligence`` groups and ``extra:`` fields.

Bodies are pinned exactly (legacy and new-standard forms); every refusal names its YAML line; the
renders go through the real engine and Kling client against the strict, stateful fake, so a body
the fake accepts is one the real service documents (kling-api-2.md §3, §6, §7.3).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_engine import render

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.plan import planner
from storyboard.plan.bodies import element_digest
from storyboard.render.journal import Journal
from tests.fakes.kling import FakeKling

IMAGES = {"refs/host.png": (1024, 1024), "refs/host-side.png": (1024, 768)}

VOICED = """
    name: v
    defaults:
      model: kling-v3-omni
      strategy: per_shot
      sound: true{api}
    references:
      host:
        image: refs/host.png
        description: a news host
        element: {{voice_id: "vc-123", extra_images: [refs/host-side.png]}}
      quiet:
        image: refs/host.png
        description: the same host, silent
        element: {{extra_images: [refs/host-side.png]}}
    shots:
      - id: a
        duration: 5
        references: [host]
        prompt: "{{{{ ref('host') }}}} says: \\"We open at nine.\\""
      - id: b
        duration: 5
        references: [quiet]
        prompt: "{{{{ ref('quiet') }}}} nods"
    """


def errors(project: Path) -> list[tuple[int, str | None, str]]:
    return [(p.location.line, p.location.path, p.message) for p in planner.check(load(project)) if p.severity == "error"]


def advisories(project: Path) -> list[tuple[int, str | None, str]]:
    return [(p.location.line, p.location.path, p.message) for p in planner.check(load(project))
            if p.severity == "advisory"]


# ---- voiced elements ------------------------------------------------------------------------------


def test_a_voiced_element_is_its_own_element_and_its_voice_is_registered_with_it(make_project):
    plan = planner.plan(load(make_project(VOICED.format(api=""), images=IMAGES)))
    voiced, silent = plan.requests
    frontal = voiced.elements[0].frontal_image.removeprefix("image://sha256/")
    assert voiced.elements[0].voice_id == "vc-123" and silent.elements[0].voice_id is None
    assert voiced.elements[0].placeholder == "element://sha256/" + element_digest(frontal, "vc-123")
    assert silent.elements[0].placeholder == "element://sha256/" + frontal, "silent elements keep their journaled digest"
    assert voiced.body == {
        "model_name": "kling-v3-omni", "mode": "std", "prompt": '<<<element_1>>> says: "We open at nine."',
        "duration": "5", "aspect_ratio": "16:9", "element_list": [{"element_id": voiced.elements[0].placeholder}],
        "sound": "on",
    }
    assert any("speaks through its element in voice vc-123" in n for n in voiced.notes)
    assert voiced.units == 4  # priced as native audio: 0.8 u/s std on 3.0 Omni
    assert voiced.key != silent.key


def test_a_voiced_element_on_the_new_api_is_an_element_part(make_project):
    plan = planner.plan(load(make_project(VOICED.format(api="\n      api: new"), images=IMAGES)))
    voiced = plan.requests[0]
    assert voiced.endpoint == "/omni-video/kling-3.0-omni"
    assert voiced.body == {
        "contents": [
            {"type": "prompt", "text": '@element_1 says: "We open at nine."'},
            {"type": "element", "element_id": voiced.elements[0].placeholder, "id": "element_1"},
        ],
        "settings": {"resolution": "720p", "aspect_ratio": "16:9", "duration": 5, "audio": "native",
                     "multi_shot": False},
    }


def test_a_voice_on_an_existing_element_is_refused_at_its_line(make_project):
    project = make_project("""
        name: v
        references:
          host: {image: refs/host.png, element: {element_id: 42, voice_id: vc-1}}
        shots:
          - {id: a, duration: 5, prompt: x, references: [host]}
        """, images=IMAGES)
    with pytest.raises(StoryboardInvalid) as caught:
        load(project)
    text = str(caught.value)
    assert "storyboard.yaml:4" in text and "existing element_id keeps the voice" in text


def test_a_voiced_element_without_sound_is_advised_and_the_template_names_it(make_project):
    project = make_project("""
        name: v
        defaults: {model: kling-v3-omni}
        references:
          host: {image: refs/host.png, element: {voice_id: vc-1, extra_images: [refs/host-side.png]}}
        shots:
          - {id: a, duration: 5, prompt: "a host speaks", references: [host]}
          - {id: b, duration: 5, prompt: "a host speaks", references: [host], sound: true}
        """, images=IMAGES)
    assert errors(project) == []
    # shot b's prompt does not name the host, but the built-in template adds "Subject: <<<element_1>>>."
    assert advisories(project) == [(7, "shots[0]", "shot a uses reference host, whose element speaks in voice vc-1, "
                                    "but sound is off: set sound: true to hear it")]
    assert "<<<element_1>>>" in planner.plan(load(project)).requests[1].body["prompt"]


def test_voiced_elements_are_registered_once_per_account_with_their_voice(make_project, tmp_path):
    fake = FakeKling()
    project = make_project(VOICED.format(api=""), images=IMAGES)
    plan = planner.plan(load(project))
    result = render(plan, project, fake)
    assert result.ok, result.failed
    bodies = [t.body for t in fake.tasks.values() if t.element]
    assert sorted(b.get("element_voice_id", "") for b in bodies) == ["", "vc-123"], "voiced and silent: two elements"
    voiced_task = next(t for t in fake.tasks.values() if t.element and t.body.get("element_voice_id"))
    video = fake.task_by_external_id(plan.requests[0].external_task_id)
    assert video.body["element_list"] == [{"element_id": voiced_task.element_id}]
    with Journal.open(project) as journal:
        digest = plan.requests[0].elements[0].placeholder.removeprefix("element://sha256/")
        assert journal.element_id("kling", digest) == voiced_task.element_id
    # the same storyboard in another folder (a fresh journal) on the same account registers nothing new
    again = make_project(VOICED.format(api="").replace("nods", "nods twice"), images=IMAGES)
    assert render(planner.plan(load(again)), again, fake).ok
    assert sum(fake.element_creates.values()) == 2


# ---- multi-shot intelligence ----------------------------------------------------------------------

INTELLIGENCE = """
    name: i
    defaults: {{model: kling-v3, sound: true{api}}}
    shots:
      - {{id: street, duration: 4, prompt: "A street at dawn"}}
      - {{id: door, duration: 4, prompt: "the shop door opens"{caption}}}
    groups:
      - {{shots: [street, door], shot_type: intelligence}}
    {cut}"""


def test_an_intelligence_group_sends_one_prompt_in_both_wire_forms(make_project):
    legacy = planner.plan(load(make_project(INTELLIGENCE.format(api="", caption="", cut=""))))
    (request,) = legacy.requests
    assert request.body == {
        "model_name": "kling-v3", "mode": "std", "prompt": "A street at dawn. Cut to: the shop door opens",
        "multi_shot": True, "shot_type": "intelligence", "duration": "8", "aspect_ratio": "16:9", "sound": "on",
    }
    assert [(s.shot_id, s.offset) for s in request.shots] == [("street", 0), ("door", 4)]
    assert any("Kling splits it into shots itself; it reports no boundaries" in n for n in request.notes)
    new = planner.plan(load(make_project(INTELLIGENCE.format(api=", api: new", caption="", cut=""))))
    assert new.requests[0].body == {
        "prompt": "A street at dawn. Cut to: the shop door opens",
        "settings": {"resolution": "720p", "aspect_ratio": "16:9", "duration": 8, "audio": "native", "multi_shot": True},
    }
    assert new.requests[0].endpoint == "/text-to-video/kling-3.0"


def test_the_cut_plays_an_intelligence_group_as_one_shot(make_project):
    caption = make_project(INTELLIGENCE.format(api="", caption=", caption: Open", cut=""))
    assert [(line, path) for line, path, _ in errors(caption)] == [(6, "shots[1].caption")]
    dissolve = make_project(INTELLIGENCE.format(api="", caption="", cut="cut: {transition: dissolve 0.5}"))
    ((line, path, message),) = errors(dissolve)
    assert (line, path) == (9, "cut.transition") and "list cut.shots with transition: cut into door" in message
    apart = make_project(INTELLIGENCE.format(api="", caption="", cut="cut: {shots: [door, street]}"))
    ((line, path, message),) = errors(apart)
    assert (line, path) == (9, "cut.shots[0]") and "together and in this order" in message


def test_intelligence_on_a_model_without_multi_shot_is_refused_at_the_group(make_project):
    project = make_project(INTELLIGENCE.format(api="", caption="", cut="").replace("kling-v3, sound: true",
                                                                                        "kling-v2-6, sound: false"))
    assert [(line, path) for line, path, _ in errors(project)] == [(8, "groups[0]")]


def test_an_intelligence_request_renders_on_the_strict_fake(make_project):
    fake = FakeKling()
    project = make_project(INTELLIGENCE.format(api="", caption="", cut=""))
    plan = planner.plan(load(project))
    assert render(plan, project, fake).ok
    sent = fake.task_by_external_id(plan.requests[0].external_task_id).body
    assert sent["shot_type"] == "intelligence" and "multi_prompt" not in sent


# ---- extra ---------------------------------------------------------------------------------------

EXTRA = """
    name: e
    defaults: {{model: kling-v3{api}, extra: {defaults_extra}}}
    shots:
      - {{id: a, duration: 5, prompt: a cat, extra: {shot_extra}}}
      - {{id: b, duration: 5, prompt: a dog}}
    """


def test_extra_fields_go_into_both_bodies_change_the_key_and_are_listed_in_the_plan(make_project):
    plain = planner.plan(load(make_project(EXTRA.format(api="", defaults_extra="{}", shot_extra="{}"))))
    project = make_project(EXTRA.format(api="", defaults_extra="{flag: 1}", shot_extra="{flag: 2, hint: {x: [1]}}"))
    plan = planner.plan(load(project))
    a, b = plan.requests
    assert a.body["flag"] == 2 and a.body["hint"] == {"x": [1]} and b.body["flag"] == 1
    assert list(a.body)[-2:] == ["flag", "hint"], "extra fields come after the modelled ones"
    assert a.key != plain.requests[0].key
    assert "unmodelled fields sent as written (extra; not checked by validate, Kling judges them): flag, hint" in a.notes
    new = planner.plan(load(make_project(EXTRA.format(api=", api: new", defaults_extra="{settings: {seed: 7}}",
                                                     shot_extra="{}"))))
    assert new.requests[0].body["settings"] == {"resolution": "720p", "aspect_ratio": "16:9", "duration": 10,
                                                 "audio": "off", "multi_shot": True, "seed": 7}
    assert any(n.endswith(": settings.seed") for n in new.requests[0].notes)


def test_shots_with_different_extra_are_not_packed_into_one_request(make_project):
    project = make_project(EXTRA.format(api="", defaults_extra="{}", shot_extra="{flag: 2}"))
    plan = planner.plan(load(project))
    assert len(plan.requests) == 2
    assert any("differs from shot a in extra" in n for n in plan.requests[1].notes)


def test_an_extra_field_the_format_writes_is_refused_at_its_line(make_project):
    project = make_project(EXTRA.format(api="", defaults_extra="{}", shot_extra="{duration: '10'}"))
    ((line, path, message),) = errors(project)
    assert (line, path) == (5, "shots[0].extra.duration")
    assert "extra field duration is already written by the format" in message


def test_an_unknown_legacy_field_is_refused_by_the_strict_fake_with_a_clear_message(make_project):
    fake = FakeKling()
    project = make_project(EXTRA.format(api="", defaults_extra="{}", shot_extra="{seed_hint: 3}"))
    result = render(planner.plan(load(project)), project, fake)
    assert [r for r, _ in result.failed] == ["r01-a"]
    assert "seed_hint: unknown field for /v1/videos/text2video" in result.failed[0][1]
    assert sum(fake.creates.values()) == 1, "the other request renders; nothing is paid for the refused one"


# ---- custom voices ---------------------------------------------------------------------------------

CUSTOM = """
    name: c
    defaults: {model: kling-v3-omni, sound: true, strategy: per_shot}
    voices:
      narrator: {url: "https://example.com/voices/narrator_12s.wav", name: Narrator}
    references:
      host:
        image: refs/host.png
        element: {voice: narrator, extra_images: [refs/host-side.png]}
    shots:
      - {id: a, duration: 5, references: [host], prompt: "{{ ref('host') }} says: \\"Good morning.\\""}
      - {id: b, duration: 5, references: [host], prompt: "{{ ref('host') }} waves"}
    """


def test_a_custom_voice_is_cloned_once_per_account_then_bound_to_its_element(make_project):
    fake = FakeKling()
    project = make_project(CUSTOM, images=IMAGES)
    plan = planner.plan(load(project))
    registration = plan.requests[0].elements[0]
    assert registration.custom_voice is not None and registration.voice_id == registration.custom_voice.placeholder
    assert any("narrator (a custom voice registered once per account" in n for n in plan.requests[0].notes)
    result = render(plan, project, fake, concurrency=2)
    assert result.ok, result.failed
    (voice_task,) = [t for t in fake.tasks.values() if t.voice]
    assert voice_task.body == {"voice_name": "Narrator", "voice_url": "https://example.com/voices/narrator_12s.wav",
                               "external_task_id": voice_task.external_task_id}
    (element_task,) = [t for t in fake.tasks.values() if t.element]
    assert element_task.body["element_voice_id"] == voice_task.voice["voice_id"]
    with Journal.open(project) as journal:
        digest = registration.custom_voice.placeholder.removeprefix("voice://sha256/")
        assert journal.voice_id("kling", digest) == voice_task.voice["voice_id"]
    # another project on the same account: the voice and the element are found by external id, not made again
    other = make_project(CUSTOM.replace("waves", "waves twice"), images=IMAGES)
    assert render(planner.plan(load(other)), other, fake).ok
    assert sum(fake.voice_creates.values()) == 1 and sum(fake.element_creates.values()) == 1
    assert fake.charged_units == pytest.approx(4 + 4 + 4 + 0.05), "three clips and one voice, each paid once"


def test_an_unknown_voice_and_a_local_recording_are_refused_at_their_lines(make_project):
    unknown = make_project(CUSTOM.replace("element: {voice: narrator", "element: {voice: anchor"), images=IMAGES)
    ((line, path, message),) = errors(unknown)
    assert (line, path) == (9, "references.host.element.voice") and "not among the storyboard's voices (narrator)" in message
    local = make_project(CUSTOM.replace("https://example.com/voices/narrator_12s.wav", "audio/narrator.wav"),
                         images=IMAGES)
    with pytest.raises(StoryboardInvalid) as caught:
        load(local)
    assert "storyboard.yaml:5" in str(caught.value) and "voices.narrator.url" in str(caught.value)
    assert "is not a public URL of a recording" in str(caught.value)


def test_voice_in_a_template_names_a_listed_voice_and_refuses_another(make_project):
    template = """
        name: t
        defaults: {model: kling-v2-6, mode: pro, sound: true}
        shots:
          - {id: a, duration: 5, start_frame: refs/host.png, voices: ["850087542757535834"],
             prompt: "{{ voice(1) }} The host says: \\"Welcome.\\""}
          - {id: b, duration: 5, start_frame: refs/host.png, voices: ["850087542757535834"],
             prompt: "{{ voice(2) }} says hello"}
        """
    project = make_project(template, images=IMAGES)
    loaded = load(project)
    problems = [p for p in planner.check(loaded) if p.severity == "error"]
    assert len(problems) == 1 and "voice(2): shot b lists 1 voice(s) in voices: use 1 to 1" in problems[0].message
    assert problems[0].location.line in (7, 8)
    fixed = make_project(template.replace("voice(2)", "voice(1)"), images=IMAGES)
    body = planner.plan(load(fixed)).requests[0].body
    assert body["prompt"] == '<<<voice_1>>> The host says: "Welcome."'
    assert body["voice_list"] == [{"voice_id": "850087542757535834"}]
