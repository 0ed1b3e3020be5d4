"""The planner: Kling rules as located problems, grouping, exact bodies, prices and content keys."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from storyboard.errors import StoryboardInvalid
from storyboard.load.loader import load
from storyboard.plan import FRAME_SCHEME, IMAGE_SCHEME, planner
from tests.reference import KLING_FIXTURES

FIXTURES = json.loads(KLING_FIXTURES.read_text())["endpoints"]


def plan_of(make_project, yaml_text: str, images: dict | None = None, files: dict | None = None):
    return planner.plan(load(make_project(yaml_text, images=images, files=files)))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- bodies against the Kling fixtures --------------------------------------------------------


def fixture_body(family: str, name: str, project: Path, urls: dict[str, str], **extra) -> dict:
    """A fixture request body as the planner must build it: URLs -> image placeholders of our files."""
    body = copy.deepcopy(FIXTURES[family]["requests"][name])
    for field in ("external_task_id", "callback_url"):
        body.pop(field, None)

    def swap(value):
        if isinstance(value, str) and value in urls:
            return IMAGE_SCHEME + digest(project / urls[value])
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return {**swap(body), **extra}


FIXTURE_CASES = [
    pytest.param(
        "text2video", "v3_std_minimal",
        """
        name: f
        shots:
          - {id: a, duration: 5, prompt: "A calm woman looks at the camera and slowly smiles, natural motion, clean lighting."}
        """,
        {}, {"sound": "off"}, id="t2v-v3-minimal",
    ),
    pytest.param(
        "text2video", "v1_camera_preset",
        """
        name: f
        defaults: {model: kling-v1}
        shots:
          - {id: a, duration: 5, prompt: A forest path in autumn, camera_control: {type: forward_up}}
        """,
        {}, {"aspect_ratio": "16:9"}, id="t2v-v1-camera",
    ),
    pytest.param(
        "text2video", "v2_6_pro_with_sound",
        """
        name: f
        defaults: {model: kling-v2-6, mode: pro, sound: true, aspect_ratio: "1:1", negative_prompt: ""}
        shots:
          - {id: a, duration: 5, prompt: "A cute rabbit in glasses reads a newspaper at a cafe table, cappuccino steaming"}
        """,
        {}, {}, id="t2v-v2-6-sound",
    ),
    pytest.param(
        "text2video", "v3_multishot_customize_15s",
        """
        name: f
        defaults: {mode: pro, sound: true, aspect_ratio: "9:16", watermark: true}
        shots:
          - {id: s1, duration: 2, prompt: "Two friends talk under a streetlight at night, warm glow."}
          - {id: s2, duration: 3, prompt: "A runner sprints through a forest, leaves flying, low angle."}
          - {id: s3, duration: 3, prompt: "A woman hugs a cat and smiles in soft sunlight."}
          - {id: s4, duration: 3, prompt: "A door creaks open onto a dark hallway."}
          - {id: s5, duration: 3, prompt: "A man slips on a banana peel, exaggerated shock."}
          - {id: s6, duration: 1, prompt: "Sunset over mountains, a small figure walks away."}
        """,
        {}, {}, id="t2v-v3-multishot-15s",
    ),
    pytest.param(
        "text2video", "v3_4k",
        """
        name: f
        defaults: {mode: 4k}
        shots:
          - {id: a, duration: 6, prompt: Aerial shot over a glacier at sunrise}
        """,
        {}, {}, id="t2v-v3-4k",
    ),
    pytest.param(
        "image2video", "v2_6_url_start_end_frame",
        """
        name: f
        defaults: {model: kling-v2-6, mode: pro, negative_prompt: ""}
        shots:
          - {id: a, duration: 5, prompt: "Camera zooms out, the girl smiles", start_frame: frames/start.png, end_frame: frames/end.png}
        """,
        {"https://example.com/frames/start.png": "frames/start.png", "https://example.com/frames/end.png": "frames/end.png"},
        {}, id="i2v-v2-6-start-end",
    ),
    pytest.param(
        "image2video", "v1_motion_brush",
        """
        name: f
        defaults: {model: kling-v1, mode: pro, cfg_scale: 0.5}
        shots:
          - id: a
            duration: 5
            prompt: The astronaut stands up and walks away
            start_frame: astronaut.png
            motion_brush:
              static_mask: masks/static_mask.png
              dynamic_masks:
                - {mask: masks/dynamic_mask_1.png, trajectory: [[279, 219], [417, 65]]}
        """,
        {
            "https://example.com/astronaut.jpg": "astronaut.png",
            "https://example.com/masks/static_mask.png": "masks/static_mask.png",
            "https://example.com/masks/dynamic_mask_1.png": "masks/dynamic_mask_1.png",
        },
        {}, id="i2v-v1-motion-brush",
    ),
    pytest.param(
        "image2video", "v2_6_voice_control",
        """
        name: f
        defaults: {model: kling-v2-6, mode: pro, sound: true}
        shots:
          - id: a
            duration: 5
            start_frame: presenter.png
            voices: ["850087542757535834"]
            prompt: '<<<voice_1>>> The woman in the picture says: "Welcome, everyone"'
        """,
        {"https://example.com/presenter.jpg": "presenter.png"}, {}, id="i2v-v2-6-voice",
    ),
    pytest.param(
        "image2video", "v3_elements",
        """
        name: f
        defaults: {mode: pro, sound: true}
        references:
          mira: {image: refs/mira.png, element: 829836802793406551}
          rho: {image: refs/rho.png, element: 829836802793406552}
        shots:
          - id: a
            duration: 8
            start_frame: street.png
            references: [mira, rho]
            prompt: "{{ ref('mira') }} walks down the street and waves to {{ ref('rho') }}"
        """,
        {"https://example.com/street.png": "street.png"}, {}, id="i2v-v3-elements",
    ),
    pytest.param(
        "image2video", "v3_multishot_from_image",
        """
        name: f
        defaults: {mode: pro, sound: true}
        shots:
          - {id: a, duration: 2, start_frame: cafe.png, prompt: "Close-up: coffee steams on the table."}
          - {id: b, duration: 3, prompt: The couple looks up and their eyes meet.}
        """,
        {"https://example.com/cafe.png": "cafe.png"}, {}, id="i2v-v3-multishot-image",
    ),
    pytest.param(
        "multi_image2video", "v1_6_two_subjects",
        """
        name: f
        defaults: {model: kling-v1-6, mode: pro, negative_prompt: ""}
        references: {dog: dog.png, jacket: dog_jacket.png}
        shots:
          - {id: a, duration: 5, references: [dog, jacket], prompt: A white Bichon Frise wearing a red floral cotton jacket licks its paw}
        """,
        {"https://example.com/dog.png": "dog.png", "https://example.com/dog_jacket.png": "dog_jacket.png"},
        {}, id="multi-image-v1-6",
    ),
    pytest.param(
        "omni_video", "o1_image_reference",
        """
        name: f
        defaults: {model: kling-video-o1, mode: pro}
        references: {person: person.png}
        shots:
          - {id: a, duration: 5, references: [person], prompt: "Make the person in {{ ref('person') }} wave to the camera"}
        """,
        {"https://example.com/person.png": "person.png"}, {}, id="omni-o1-reference",
    ),
    pytest.param(
        "omni_video", "v3_omni_first_end_frame",
        """
        name: f
        defaults: {model: kling-v3-omni, sound: true}
        shots:
          - {id: a, duration: 6, start_frame: start.png, end_frame: end.png, prompt: The dancer spins and lands facing the window}
        """,
        {"https://example.com/end.png": "end.png", "START": "start.png"}, {}, id="omni-v3-frames",
    ),
    pytest.param(
        "omni_video", "v3_omni_elements_multishot",
        """
        name: f
        defaults: {model: kling-v3-omni, mode: pro, sound: true}
        references:
          mira: {image: refs/mira.png, element: 829836802793406551}
          rho: {image: refs/rho.png, element: 829836802793406552}
          look: {image: style_ref.png, role: style}
        shots:
          - {id: a, duration: 4, references: [mira], prompt: "{{ ref('mira') }} enters a neon-lit alley in the rain."}
          - id: b
            duration: 6
            references: [mira, rho, look]
            prompt: "{{ ref('mira') }} meets {{ ref('rho') }} under a shop sign, style of {{ ref('look') }}."
        """,
        {"https://example.com/style_ref.png": "style_ref.png"}, {}, id="omni-v3-elements-multishot",
    ),
    pytest.param(
        "omni_video", "v3_omni_text_only_4k",
        """
        name: f
        defaults: {model: kling-v3-omni, mode: 4k, aspect_ratio: "9:16"}
        shots:
          - {id: a, duration: 8, prompt: A paper boat drifts down a rain gutter}
        """,
        {}, {}, id="omni-v3-text-4k",
    ),
]  # fmt: skip


IMAGE_FILES = [
    "frames/start.png", "frames/end.png", "astronaut.png", "masks/static_mask.png", "masks/dynamic_mask_1.png",
    "presenter.png", "refs/mira.png", "refs/rho.png", "street.png", "cafe.png", "dog.png", "dog_jacket.png",
    "person.png", "start.png", "end.png", "style_ref.png",
]  # fmt: skip
IMAGES = {name: (640 + n, 360) for n, name in enumerate(IMAGE_FILES)}
"""Distinct sizes give distinct bytes, so every file has its own digest."""


@pytest.mark.parametrize(("family", "name", "yaml_text", "urls", "extra"), FIXTURE_CASES)
def test_bodies_match_the_kling_fixtures(make_project, family, name, yaml_text, urls, extra) -> None:
    project = make_project(yaml_text, images=IMAGES)
    plan = planner.plan(load(project))
    (request,) = plan.requests
    expected = fixture_body(family, name, project, urls, **extra)
    if name == "v3_omni_first_end_frame":  # the fixture's first frame is inline base64: ours is a file
        expected["image_list"][0]["image_url"] = IMAGE_SCHEME + digest(project / "start.png")
    assert request.body == expected
    assert request.endpoint == FIXTURES[family]["create_path"]
    assert "external_task_id" not in request.body and "callback_url" not in request.body


def test_multi_shot_bodies_carry_index_duration_strings_summing_to_the_total(make_project) -> None:
    plan = plan_of(
        make_project,
        """
        name: f
        shots:
          - {id: a, duration: 2.2, prompt: one}
          - {id: b, duration: 4, prompt: two}
        """,
    )
    (request,) = plan.requests
    assert request.body["multi_prompt"] == [
        {"index": 1, "prompt": "one", "duration": "3"},
        {"index": 2, "prompt": "two", "duration": "4"},
    ]
    assert request.body["duration"] == "7" and request.body["prompt"] == "" and request.duration == 7
    assert [(s.offset, s.rendered, s.keep) for s in request.shots] == [(0, 3, 2.2), (3, 4, 4)]


def test_elements_to_register_become_placeholders_with_a_registration(make_project) -> None:
    project = make_project(
        """
        name: f
        defaults: {model: kling-v3-omni}
        references:
          mira:
            image: refs/mira.png
            description: Young woman, short silver hair
            element: {name: Mira, extra_images: [refs/mira_side.png], tags: [o_102]}
        shots:
          - {id: a, duration: 5, references: [mira], prompt: "{{ ref('mira') }} waves"}
        """,
        images={"refs/mira.png": (640, 640), "refs/mira_side.png": (641, 640)},
    )
    (request,) = planner.plan(load(project)).requests
    frontal, side = digest(project / "refs/mira.png"), digest(project / "refs/mira_side.png")
    assert request.body["element_list"] == [{"element_id": "element://sha256/" + frontal}]
    assert request.body["prompt"] == "<<<element_1>>> waves"
    (registration,) = request.elements
    assert registration.placeholder == "element://sha256/" + frontal
    assert (registration.reference, registration.name, registration.description) == (
        "mira",
        "Mira",
        "Young woman, short silver hair",
    )
    assert registration.frontal_image == IMAGE_SCHEME + frontal
    assert registration.refer_images == [IMAGE_SCHEME + side]
    assert registration.tags == ["o_102"]
    assert request.images == {frontal: "refs/mira.png", side: "refs/mira_side.png"}


# --- check: every Kling rule as a located problem ---------------------------------------------

CHECK_CASES = [
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6}
        shots:
          - id: a
            duration: 12
            prompt: x
        """,
        6,
        "shots[0].duration",
        "shot a is 12 s but kling-v2-6 renders at most 10 s: split it into shorter shots, or use a model that renders it "
        "(kling-v3, kling-v3-turbo, kling-v3-omni)",
        id="duration-over-model-max",
    ),
    pytest.param(
        """
        name: f
        defaults:
          model: kling-v2-6
          strategy: multi_shot
        shots:
          - {id: a, duration: 5, prompt: x}
        """,
        5,
        "defaults.strategy",
        "strategy multi_shot needs a model with multi-shot (kling-v3, kling-v3-turbo, kling-v3-omni), but shots use kling-v2-6: "
        "set strategy auto or per_shot, or change the model",
        id="multi-shot-strategy-on-v2-6",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6}
        shots:
          - {id: a, duration: 5, prompt: x}
          - {id: b, duration: 5, prompt: y}
        groups:
          - [a, b]
        """,
        8,
        "groups[0]",
        "group 1 is a multi-shot request, which kling-v2-6 does not offer: use kling-v3 or kling-v3-turbo or kling-v3-omni, or remove the group",
        id="group-on-model-without-multi-shot",
    ),
    pytest.param(
        """
        name: f
        shots:
          - {id: a, duration: 1, prompt: x}
          - {id: b, duration: 1, prompt: x}
          - {id: c, duration: 1, prompt: x}
          - {id: d, duration: 1, prompt: x}
          - {id: e, duration: 1, prompt: x}
          - {id: f, duration: 1, prompt: x}
          - {id: g, duration: 1, prompt: x}
        groups:
          - [a, b, c, d, e, f, g]
        """,
        12,
        "groups[0]",
        "group 1 has 7 shots; a multi-shot request holds at most 6: split it",
        id="group-over-6-shots",
    ),
    pytest.param(
        """
        name: f
        shots:
          - {id: a, duration: 8, prompt: x}
          - {id: b, duration: 7.5, prompt: x}
        groups:
          - shots: [a, b]
        """,
        7,
        "groups[0]",
        "group 1 renders 16 s; a multi-shot request renders at most 15 s: split it",
        id="group-over-15-s",
    ),
    pytest.param(
        """
        name: f
        shots:
          - {id: a, duration: 3, prompt: x}
          - {id: b, duration: 3, prompt: x}
          - {id: c, duration: 3, prompt: x}
        groups:
          - [a, c]
        """,
        8,
        "groups[0]",
        "group 1 (a, c) is not consecutive: list shots in storyboard order, without gaps",
        id="group-not-consecutive",
    ),
    pytest.param(
        """
        name: f
        shots:
          - {id: a, duration: 3, prompt: x}
          - {id: b, duration: 3, prompt: x, sound: true}
        groups:
          - [a, b]
        """,
        7,
        "groups[0]",
        "group 1: shot b differs from shot a in sound; one multi-shot request takes these settings once: "
        "make them equal or split the group",
        id="group-incompatible-settings",
    ),
    pytest.param(
        """
        name: f
        shots:
          - {id: a, duration: 3, prompt: "{{ 'x' * 513 }}"}
          - {id: b, duration: 3, prompt: x}
        groups:
          - [a, b]
        """,
        4,
        "shots[0].prompt",
        "shot a's prompt is 513 characters; inside a multi-shot request Kling takes at most 512: shorten it, "
        "or take the shot out of the group",
        id="multi-shot-prompt-over-512",
    ),
    pytest.param(
        """
        name: f
        shots:
          - {id: a, duration: 3, prompt: "{{ 'x' * 2501 }}"}
        """,
        4,
        "shots[0].prompt",
        "shot a's prompt is 2501 characters; Kling takes at most 2500: shorten it",
        id="prompt-over-2500",
    ),
    pytest.param(
        """
        name: f
        defaults:
          negative_prompt: "{}"
        shots:
          - {id: a, duration: 3, prompt: x}
        """.replace("{}", "n" * 2501),
        4,
        "defaults.negative_prompt",
        "negative_prompt is 2501 characters; Kling takes at most 2500: shorten it",
        id="negative-over-2500",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v1-5, mode: pro}
        shots:
          - id: a
            duration: 5
            prompt: x
            start_frame: a.png
            end_frame: b.png
            camera_control: {type: simple, config: {zoom: 5}}
        """,
        10,
        "shots[0].camera_control",
        "end_frame and camera_control cannot be used together (Kling takes one of end frame, camera_control, motion brush "
        "per request): keep one",
        id="end-frame-vs-camera",
    ),
    pytest.param(
        """
        name: f
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: a.png, voices: ["v1"]}
        """,
        4,
        "shots[0].voices",
        "kling-v3 takes no voice_list (Kling's 2026 capability map: voice control is not supported on 3.0): "
        "a 3.0 voice comes through an element: give the speaking reference element: {voice_id: <voice id>}, "
        "list it in this shot's references, set sound: true and name it in the prompt (ref() in templates); "
        "or render this shot on kling-v2-6 pro with voices; or, to try Kling anyway, force the field with "
        "extra: {voice_list: [{voice_id: <voice id>}]} (sent unchanged on the legacy API, unverified; "
        "Kling's answer is shown)",
        id="voices-on-v3",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6, mode: pro}
        shots:
          - {id: a, duration: 5, prompt: "<<<voice_1>>> hi", start_frame: a.png, voices: ["v1"]}
        """,
        5,
        "shots[0].voices",
        "voices need sound: set sound: true on this shot",
        id="voices-without-sound",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6, sound: true}
        shots:
          - {id: a, duration: 5, prompt: x}
        """,
        3,
        "defaults.sound",
        "sound is not available on kling-v2-6 std: kling-v2-6 has native audio only in pro mode: set mode pro or sound: false",
        id="sound-on-v2-6-std",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-video-o1}
        shots:
          - id: a
            duration: 5
            prompt: x
            sound: true
        """,
        8,
        "shots[0].sound",
        "sound is not available on kling-video-o1 std: kling-video-o1 has no native audio (sound is offered on kling-v3, "
        "kling-v3-omni, kling-v2-6 (pro)): set sound: false",
        id="sound-on-o1",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-5-turbo}
        shots:
          - {id: a, duration: 5, prompt: x, cfg_scale: 0.4}
        """,
        5,
        "shots[0].cfg_scale",
        "cfg_scale is not supported by kling-v2-5-turbo: remove it (it is offered on kling-v1, kling-v1-5, kling-v1-6, kling-v3)",
        id="cfg-on-v2",
    ),
    pytest.param(
        """
        name: f
        shots:
          - id: a
            duration: 5
            prompt: x
            camera_control: {type: simple, config: {zoom: 5}}
        """,
        7,
        "shots[0].camera_control",
        "camera_control (simple) is not offered on kling-v3 text-to-video std 5 s; Kling offers it only on kling-v1 "
        "text-to-video std 5 s (any type); kling-v1-5 image-to-video pro 5 s (type simple only): describe the move in "
        "camera: words instead",
        id="camera-control-on-v3",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v1}
        shots:
          - {id: a, duration: 7, prompt: x, camera_control: {type: forward_up}}
        """,
        5,
        "shots[0].camera_control",
        "camera_control (forward_up) is not offered on kling-v1 text-to-video std 10 s; Kling offers it only on kling-v1 "
        "text-to-video std 5 s (any type); kling-v1-5 image-to-video pro 5 s (type simple only): describe the move in "
        "camera: words instead",
        id="camera-control-on-v1-10s",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6, mode: 4k}
        shots:
          - {id: a, duration: 5, prompt: x}
        """,
        3,
        "defaults.mode",
        "kling-v2-6 has no mode 4k (offered on kling-v3, kling-v3-omni): use std or pro",
        id="4k-on-v2-6",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v1-5}
        shots:
          - {id: a, duration: 5, prompt: x}
        """,
        3,
        "defaults.model",
        "kling-v1-5 does not offer text-to-video (it is image-to-video only): give shot a a start_frame, or use another model",
        id="v1-5-text-to-video",
    ),
    pytest.param(
        """
        name: f
        references:
          e1: {image: a.png, element: 1}
          e2: {image: a.png, element: 2}
          e3: {image: a.png, element: 3}
          e4: {image: a.png, element: 4}
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: b.png, references: [e1, e2, e3, e4]}
        """,
        9,
        "shots[0].references",
        "kling-v3 image-to-video takes at most 3 elements, these shots use 4: use fewer references",
        id="v3-i2v-over-3-elements",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v3-omni}
        references: {r1: a.png, r2: a.png, r3: a.png, r4: a.png, r5: a.png, r6: a.png, r7: a.png}
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: b.png, references: [r1, r2, r3, r4, r5, r6, r7]}
        """,
        6,
        "shots[0].references",
        "kling-v3-omni takes at most 7 images and elements together, these shots use 8: use fewer references",
        id="omni-over-7-inputs",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v3-omni}
        references: {e1: {image: a.png, element: 1}, e2: {image: a.png, element: 2}, e3: {image: a.png, element: 3}, e4: {image: a.png, element: 4}}
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: b.png, references: [e1, e2, e3, e4]}
        """,
        6,
        "shots[0].references",
        "kling-v3-omni takes at most 3 elements with a first frame, these shots use 4: use fewer references",
        id="omni-elements-with-first-frame",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-video-o1}
        references: {e1: {image: a.png, element: 1}}
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: a.png, end_frame: b.png, references: [e1]}
        """,
        6,
        "shots[0].references",
        "kling-video-o1 takes no elements with a first and an end frame: use fewer references",
        id="o1-elements-with-both-frames",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6, mode: pro}
        shots:
          - {id: a, duration: 5, prompt: x, end_frame: b.png}
        """,
        5,
        "shots[0].end_frame",
        "an end frame needs a start frame: give this shot a start_frame too (Kling no longer takes end-frame-only requests)",
        id="end-frame-without-start",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6}
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: a.png, end_frame: b.png}
        """,
        5,
        "shots[0].end_frame",
        "kling-v2-6 takes an end frame in pro mode only: change the shot or remove the end frame",
        id="end-frame-needs-pro",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v3-omni}
        references:
          mira: {image: a.png, element: true}
        shots:
          - {id: a, duration: 5, prompt: x, references: [mira]}
        """,
        5,
        "references.mira.element",
        "reference mira becomes a Kling element, which needs 1-3 more views of the subject: add element.extra_images, "
        "or give an existing element_id",
        id="element-without-extra-views",
    ),
    pytest.param(
        """
        name: f
        defaults: {model: kling-v2-6}
        shots:
          - {id: a, duration: 5, motion_brush: {static_mask: m.png}, start_frame: a.png, prompt: x}
        """,
        5,
        "shots[0].motion_brush",
        "motion_brush is not offered on kling-v2-6 std 5 s; Kling offers it only on kling-v1 image-to-video pro/std 5 s; "
        "kling-v1-5 image-to-video pro 5 s",
        id="motion-brush-on-v2-6",
    ),
]


@pytest.mark.parametrize(("yaml_text", "line", "path", "message"), CHECK_CASES)
def test_check_pins_each_rule_with_its_line(make_project, yaml_text, line, path, message) -> None:
    images = {"a.png": (640, 360), "b.png": (641, 360), "m.png": (640, 360)}
    loaded = load(make_project(yaml_text, images=images))
    problems = [p for p in planner.check(loaded) if p.severity == "error"]
    assert [(p.location.line, p.location.path, p.message) for p in problems] == [(line, path, message)]
    with pytest.raises(StoryboardInvalid) as raised:
        planner.plan(loaded)
    assert message in str(raised.value)


def test_references_a_model_cannot_send_are_advisories(make_project) -> None:
    project = make_project(
        """
        name: f
        defaults: {model: kling-v2-6}
        references: {hero: {image: a.png, description: a pilot}}
        shots:
          - {id: a, duration: 5, prompt: "{{ ref('hero') }} waves", references: [hero]}
        """,
        images={"a.png": (640, 360)},
    )
    loaded = load(project)
    (problem,) = planner.check(loaded)
    assert problem.severity == "advisory" and (problem.location.line, problem.location.path) == (
        6,
        "shots[0].references",
    )
    assert problem.message == (
        "kling-v2-6 text-to-video cannot take reference images: reference hero is used as text only (its description); "
        "use kling-v3-omni to send the image"
    )
    plan = planner.plan(loaded)  # advisories do not block
    assert plan.requests[0].body["prompt"] == "a pilot waves"
    assert any("reference hero is used as text only" in note for note in plan.notes)


# --- grouping ----------------------------------------------------------------------------------


def shots_yaml(durations: list[float], **fields) -> str:
    extra = "".join(f", {k}: {v}" for k, v in fields.items())
    return "\n".join(f"  - {{id: s{n}, duration: {d}, prompt: shot {n}{extra}}}" for n, d in enumerate(durations, 1))


def test_auto_packs_consecutive_shots_with_a_note(make_project) -> None:
    plan = plan_of(make_project, "name: f\nshots:\n" + shots_yaml([4, 3, 5]))
    (request,) = plan.requests
    assert request.id == "r01-s1" and [s.shot_id for s in request.shots] == ["s1", "s2", "s3"]
    assert request.body["multi_shot"] is True and request.duration == 12
    assert "packed shots s1, s2, s3 into one multi-shot request: 12 s on kling-v3" in request.notes


def test_auto_respects_the_six_shot_limit(make_project) -> None:
    plan = plan_of(make_project, "name: f\nshots:\n" + shots_yaml([2] * 7))
    assert [[s.shot_id for s in r.shots] for r in plan.requests] == [["s1", "s2", "s3", "s4", "s5", "s6"], ["s7"]]
    assert plan.requests[1].duration == 3  # a lone 2 s shot renders kling-v3's shortest clip
    assert "new request: a multi-shot request holds at most 6 shots" in plan.requests[1].notes
    assert "shot s7 renders 3 s on kling-v3 (allowed: 3-15 s); the cut keeps 2 s" in plan.requests[1].notes


def test_auto_respects_the_15_second_limit(make_project) -> None:
    plan = plan_of(make_project, "name: f\nshots:\n" + shots_yaml([5, 5, 4.5, 1]))
    assert [r.duration for r in plan.requests] == [15, 3]
    assert [[s.shot_id for s in r.shots] for r in plan.requests] == [["s1", "s2", "s3"], ["s4"]]
    assert "new request: a multi-shot request renders at most 15 s" in plan.requests[1].notes


def test_a_group_under_3_seconds_lengthens_its_last_shot(make_project) -> None:
    plan = plan_of(make_project, "name: f\nshots:\n" + shots_yaml([1, 0.5]))
    (request,) = plan.requests
    assert request.duration == 3
    assert [m["duration"] for m in request.body["multi_prompt"]] == ["1", "2"]
    assert [(s.rendered, s.keep) for s in request.shots] == [(1, 1), (2, 0.5)]
    assert (
        "the request is under Kling's 3 s multi-shot minimum: shot s2 renders 2 s; the cut keeps 0.5 s" in request.notes
    )


def test_per_shot_never_groups(make_project) -> None:
    plan = plan_of(make_project, "name: f\ndefaults: {strategy: per_shot}\nshots:\n" + shots_yaml([3, 3, 3]))
    assert [r.id for r in plan.requests] == ["r01-s1", "r02-s2", "r03-s3"]
    assert not any("multi_shot" in r.body for r in plan.requests)


def test_explicit_groups_are_honoured_exactly_and_the_rest_follows_the_strategy(make_project) -> None:
    text = "name: f\nshots:\n" + shots_yaml([3, 3, 3, 3, 3]) + "\ngroups:\n  - [s2, s3]\n"
    plan = plan_of(make_project, text)
    assert [[s.shot_id for s in r.shots] for r in plan.requests] == [["s1"], ["s2", "s3"], ["s4", "s5"]]
    assert "explicit group 1: shots s2, s3 in one multi-shot request: 6 s on kling-v3" in plan.requests[1].notes


def test_differing_settings_split_auto_groups_with_the_reason(make_project) -> None:
    text = "name: f\nshots:\n" + shots_yaml([3, 3]) + "\n  - {id: s3, duration: 3, prompt: p, mode: pro}\n"
    plan = plan_of(make_project, text)
    assert [[s.shot_id for s in r.shots] for r in plan.requests] == [["s1", "s2"], ["s3"]]
    assert "new request: shot s3 differs from shot s1 in mode" in plan.requests[1].notes


def test_auto_takes_a_shot_with_a_long_prompt_out_of_the_group(make_project) -> None:
    text = "name: f\nshots:\n" + shots_yaml([3]) + "\n  - {id: long, duration: 3, prompt: \"{{ 'y' * 600 }}\"}\n"
    text += shots_yaml([3]).replace("s1", "s3") + "\n"
    plan = plan_of(make_project, text)
    assert [[s.shot_id for s in r.shots] for r in plan.requests] == [["s1"], ["long"], ["s3"]]
    assert plan.requests[1].body["prompt"] == "y" * 600
    assert "over 512 characters" in " ".join(plan.requests[1].notes)


def test_chaining_previous_starts_a_new_request_on_the_upstream_clip(make_project) -> None:
    project = make_project(
        """
        name: f
        shots:
          - {id: a, duration: 4, prompt: one}
          - {id: b, duration: 2, prompt: two}
          - {id: c, duration: 5, prompt: three, start_frame: previous}
          - {id: d, duration: 3, prompt: four}
        """
    )
    first, second = planner.plan(load(project)).requests
    assert [s.shot_id for s in first.shots] == ["a", "b"] and [s.shot_id for s in second.shots] == ["c", "d"]
    assert second.family == "image2video" and second.endpoint == "/v1/videos/image2video"
    assert second.body["image"] == FRAME_SCHEME + first.key
    assert second.depends_on == [first.key]
    assert second.shots[0].start_image == FRAME_SCHEME + first.key
    assert "new request: start_frame previous needs the clip of r01-a" in second.notes
    assert "aspect_ratio" not in second.body and second.aspect_ratio == first.aspect_ratio


def test_image_to_video_size_follows_the_start_image_snapped(make_project) -> None:
    project = make_project(
        """
        name: f
        defaults: {model: kling-v2-6, mode: pro, aspect_ratio: "16:9"}
        shots:
          - {id: a, duration: 5, prompt: x, start_frame: tall.png}
        """,
        images={"tall.png": (360, 640)},
    )
    (request,) = planner.plan(load(project)).requests
    assert (request.aspect_ratio, request.width, request.height, request.fps) == ("9:16", 1080, 1920, 24)


def test_single_shots_render_the_next_allowed_duration(make_project) -> None:
    plan = plan_of(make_project, "name: f\ndefaults: {model: kling-v2-6}\nshots:\n" + shots_yaml([3, 7.5]))
    assert [r.body["duration"] for r in plan.requests] == ["5", "10"]
    assert [r.shots[0].keep for r in plan.requests] == [3, 7.5]
    assert "shot s1 renders 5 s on kling-v2-6 (allowed: 5, 10); the cut keeps 3 s" in plan.requests[0].notes


# --- prices --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("defaults", "shot", "units", "usd"),
    [
        ("{mode: std}", "{id: a, duration: 5, prompt: x}", 3.0, 0.42),
        ("{mode: pro, sound: true}", "{id: a, duration: 10, prompt: x}", 12.0, 1.68),
        (
            "{model: kling-v2-6, mode: pro, sound: true}",
            "{id: a, duration: 5, prompt: '<<<voice_1>>> hello', start_frame: a.png, voices: [v1]}",
            6.0,
            0.84,
        ),
    ],
)
def test_prices_of_the_worked_examples(make_project, defaults: str, shot: str, units: float, usd: float) -> None:
    plan = plan_of(make_project, f"name: f\ndefaults: {defaults}\nshots:\n  - {shot}\n", images={"a.png": (640, 360)})
    (request,) = plan.requests
    assert (request.units, request.usd, plan.units, plan.usd) == (units, usd, units, usd)


def test_older_models_are_priced_as_estimates(make_project) -> None:
    plan = plan_of(make_project, "name: f\ndefaults: {model: kling-v1-6}\nshots:\n" + shots_yaml([5]))
    (request,) = plan.requests
    assert (request.units, request.usd) == (2.0, 0.28)
    assert any(note.startswith("price is an estimate") for note in request.notes)


# --- content keys and JSON --------------------------------------------------------------------

KEYED = """
name: f
defaults: {model: kling-v2-6, strategy: per_shot}
shots:
  - {id: a, duration: 5, prompt: first, start_frame: frames/one.png}
  - {id: b, duration: 5, prompt: second}
  - {id: c, duration: 5, prompt: third}
"""


def keys(project: Path) -> list[str]:
    return [r.key for r in planner.plan(load(project)).requests]


def test_renaming_an_image_changes_no_key(make_project) -> None:
    project = make_project(KEYED, images={"frames/one.png": (640, 360)})
    before = keys(project)
    (project / "frames/one.png").rename(project / "frames/renamed.png")
    (project / "storyboard.yaml").write_text(KEYED.replace("frames/one.png", "frames/renamed.png"))
    assert keys(project) == before
    request = planner.plan(load(project)).requests[0]
    assert list(request.images.values()) == ["frames/renamed.png"]


def test_editing_one_prompt_changes_exactly_one_key(make_project) -> None:
    project = make_project(KEYED, images={"frames/one.png": (640, 360)})
    before = keys(project)
    (project / "storyboard.yaml").write_text(KEYED.replace("prompt: second", "prompt: second again"))
    after = keys(project)
    assert [b == a for b, a in zip(before, after)] == [True, False, True]


def test_editing_image_pixels_changes_its_key(make_project) -> None:
    project = make_project(KEYED, images={"frames/one.png": (640, 360)})
    before = keys(project)
    from PIL import Image

    Image.new("RGB", (640, 360), (200, 10, 10)).save(project / "frames/one.png")
    assert [b == a for b, a in zip(before, keys(project))] == [False, True, True]


def test_reordering_yaml_keys_changes_no_key(make_project) -> None:
    reordered = """
shots:
  - {prompt: first, start_frame: frames/one.png, duration: 5, id: a}
  - {duration: 5, id: b, prompt: second}
  - {prompt: third, id: c, duration: 5}
defaults: {strategy: per_shot, model: kling-v2-6}
name: f
"""
    one = make_project(KEYED, images={"frames/one.png": (640, 360)})
    two = make_project(reordered, images={"frames/one.png": (640, 360)})
    assert keys(one) == keys(two)


def test_key_and_external_task_id_are_derived_from_the_canonical_body(make_project) -> None:
    (request,) = plan_of(make_project, "name: f\nshots:\n" + shots_yaml([5])).requests
    canonical = json.dumps(
        {"endpoint": request.endpoint, "body": request.body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert request.key == hashlib.sha256(canonical.encode()).hexdigest()
    assert request.external_task_id == "sb-" + request.key[:40]


def test_plan_to_json_is_stable_and_names_images_by_path_and_hash(make_project) -> None:
    project = make_project(KEYED, images={"frames/one.png": (640, 360)})
    first = json.dumps(planner.plan_to_json(planner.plan(load(project))), sort_keys=True)
    second = json.dumps(planner.plan_to_json(planner.plan(load(project))), sort_keys=True)
    assert first == second
    assert str(project) not in first and str(project.parent) not in first
    data = json.loads(first)
    assert data["storyboard"] == "storyboard.yaml"
    hex_digest = digest(project / "frames/one.png")
    assert data["requests"][0]["body"]["image"] == f"<image frames/one.png sha256:{hex_digest}>"
    assert data["requests"][0]["shots"][0]["start_image"] == f"<image frames/one.png sha256:{hex_digest}>"


def test_multi_shot_with_first_and_last_frames_on_v3(make_project) -> None:
    project = make_project(
        """
        name: f
        defaults: {strategy: multi_shot}
        shots:
          - {id: a, duration: 3, prompt: one, start_frame: a.png}
          - {id: b, duration: 3, prompt: two}
          - {id: c, duration: 3, prompt: three, end_frame: b.png}
        """,
        images={"a.png": (640, 360), "b.png": (641, 360)},
    )
    (request,) = planner.plan(load(project)).requests
    assert request.family == "image2video" and request.body["multi_shot"] is True
    assert request.body["image"] == IMAGE_SCHEME + digest(project / "a.png")
    assert request.body["image_tail"] == IMAGE_SCHEME + digest(project / "b.png")
    assert (
        request.shots[0].start_image == request.body["image"]
        and request.shots[2].end_image == request.body["image_tail"]
    )
    assert request.shots[1].start_image is None and request.shots[1].end_image is None


def test_auto_starts_a_new_request_at_a_shot_with_its_own_start_frame(make_project) -> None:
    project = make_project(
        """
        name: f
        shots:
          - {id: a, duration: 3, prompt: one}
          - {id: b, duration: 3, prompt: two, start_frame: a.png}
        """,
        images={"a.png": (640, 360)},
    )
    first, second = planner.plan(load(project)).requests
    assert (first.family, second.family) == ("text2video", "image2video")
    assert "new request: shot b has its own start frame (only a multi-shot request's first shot can)" in second.notes


def test_auto_splits_omni_groups_that_would_exceed_the_input_limit(make_project) -> None:
    refs = {f"r{n}": f"img{n}.png" for n in range(1, 9)}
    project = make_project(
        "name: f\ndefaults: {model: kling-v3-omni}\nreferences: "
        + json.dumps(refs)
        + "\nshots:\n  - {id: a, duration: 3, prompt: one, references: [r1, r2, r3]}\n"
        + "  - {id: b, duration: 3, prompt: two, references: [r4, r5, r6, r1]}\n"
        + "  - {id: c, duration: 3, prompt: three, references: [r7, r8]}\n",
        images={f"img{n}.png": (640 + n, 360) for n in range(1, 9)},
    )
    first, second = planner.plan(load(project)).requests
    assert [[s.shot_id for s in r.shots] for r in (first, second)] == [["a", "b"], ["c"]]
    assert [item["image_url"] for item in first.body["image_list"]] == [
        IMAGE_SCHEME + digest(project / f"img{n}.png") for n in range(1, 7)
    ]
    assert "new request: kling-v3-omni takes at most 7 images and elements together, these shots use 8" in second.notes


def test_render_prompts_returns_every_shot_and_plan_refuses_errors(make_project) -> None:
    project = make_project(
        """
        name: f
        defaults: {model: kling-v2-6}
        shots:
          - {id: a, duration: 12, prompt: "hello {{ vars.who }}", vars: {who: you}}
        """
    )
    loaded = load(project)
    assert planner.render_prompts(loaded) == {"a": "hello you"}  # a Kling rule error does not stop prompts
    with pytest.raises(StoryboardInvalid):
        planner.plan(loaded)


def test_an_explicit_group_of_one_keeps_its_shot_alone(make_project) -> None:
    text = "name: f\nshots:\n" + shots_yaml([3, 3, 3]) + "\ngroups:\n  - [s2]\n"
    plan = plan_of(make_project, text)
    assert [[s.shot_id for s in r.shots] for r in plan.requests] == [["s1"], ["s2"], ["s3"]]
