"""Tests of the fake Kling itself: if the fake drifts from the protocol, every engine test lies.

The fixture file's tokens, valid bodies and ``invalid_requests_for_emulator`` cases are the test
vectors; the rest checks the lifecycle, charging, faults, counters and both seams (in-process
transport and loopback HTTP server).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import av
import httpx
import jwt
import pytest
from PIL import Image

from storyboard.media import MediaError, probe
from tests.fakes.kling import DEFAULT_API_KEY, FakeKling, Fault, make_token, price_units
from tests.fakes.server import serve
from tests.fakes.videos import result_video_path, shot_colour_rgb
from tests.reference import KLING_FIXTURES, MEDIA

FIXTURES = json.loads(KLING_FIXTURES.read_text())
NOW = FIXTURES["auth"]["fixed_now_seconds"]

CREATE_PATHS = {
    "text2video": "/v1/videos/text2video", "image2video": "/v1/videos/image2video",
    "multi_image2video": "/v1/videos/multi-image2video", "omni_video": "/v1/videos/omni-video",
    "motion_control": "/v1/videos/motion-control", "elements": "/v1/general/advanced-custom-elements",
}
VALID_BODIES = [
    pytest.param(family, body, id=f"{family}-{name}")
    for family, endpoint in FIXTURES["endpoints"].items()
    for name, body in endpoint["requests"].items()
    if name != "delete"
]
T2V = {"model_name": "kling-v3", "prompt": "a red fox in snow", "duration": "5", "mode": "std"}


class Clock:
    """A settable clock so token expiry is tested without sleeping."""

    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeKling:
    return FakeKling(clock=Clock(), seed=7)


@pytest.fixture
def client(fake: FakeKling) -> httpx.Client:
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as session:
        yield session


def create(client: httpx.Client, body: dict, path: str = "/v1/videos/text2video") -> httpx.Response:
    return client.post(path, json=body)


def poll_until_done(client: httpx.Client, family: str, task_id: str, limit: int = 10) -> dict:
    for _ in range(limit):
        data = client.get(f"/v1/videos/{family}/{task_id}").json()["data"]
        if data["task_status"] in ("succeed", "failed"):
            return data
    raise AssertionError(f"task {task_id} did not finish in {limit} polls")


def b64_image(width: int, height: int, image_format: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(buffer, format=image_format)
    return base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------------------------------- auth

def test_fixture_valid_token_is_accepted_at_fixed_now(fake: FakeKling) -> None:
    token = FIXTURES["auth"]["valid_token_at_fixed_now"]["token"]
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as session:
        response = session.get("/v1/videos/text2video", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["code"] == 0


@pytest.mark.parametrize("name", ["bad_signature_token", "expired_token", "not_yet_valid_token"])
def test_fixture_tokens_give_expected_codes(fake: FakeKling, name: str) -> None:
    case = FIXTURES["auth"][name]
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as session:
        response = session.get("/v1/videos/text2video", headers={"Authorization": f"Bearer {case['token']}"})
    assert (response.status_code, response.json()["code"]) == (case["expect"]["http_status"], case["expect"]["code"])


def test_missing_or_empty_header_is_1001(fake: FakeKling) -> None:
    expect = FIXTURES["auth"]["missing_header_expect"]
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as session:
        for headers in ({}, {"Authorization": ""}):
            response = session.get("/v1/videos/text2video", headers=headers)
            assert (response.status_code, response.json()["code"]) == (expect["http_status"], expect["code"])


@pytest.mark.parametrize("header", [
    "Token kling_api_key_test", "bearer kling_api_key_test", "Bearer  kling_api_key_test", "Bearer",
    "Bearer not-a-known-key", "Bearer a.b.c",
])
def test_bad_scheme_or_unknown_key_is_1002(fake: FakeKling, header: str) -> None:
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as session:
        response = session.get("/v1/videos/text2video", headers={"Authorization": header})
    assert (response.status_code, response.json()["code"]) == (401, 1002)


@pytest.mark.parametrize("token_maker", [
    lambda: make_token("ak_unknown", "sk_test_b91e4d07c6a24f35a8d2e0f1c3b5a7d9", now=NOW),
    lambda: make_token("ak_test_7f3c2a9e51d04b6c", "wrong-secret-wrong-secret-wrong-secret", now=NOW),
    lambda: jwt.encode({"iss": "ak_test_7f3c2a9e51d04b6c", "exp": NOW + 60, "nbf": NOW - 5},
                       "sk_test_b91e4d07c6a24f35a8d2e0f1c3b5a7d9", algorithm="HS512"),
    lambda: jwt.encode({"iss": "ak_test_7f3c2a9e51d04b6c", "nbf": NOW - 5},
                       "sk_test_b91e4d07c6a24f35a8d2e0f1c3b5a7d9", algorithm="HS256"),
], ids=["unknown-issuer", "wrong-secret", "hs512", "no-exp"])
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_jwt_problems_are_1002(fake: FakeKling, token_maker) -> None:
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as session:
        response = session.get("/v1/videos/text2video", headers={"Authorization": f"Bearer {token_maker()}"})
    assert (response.status_code, response.json()["code"]) == (401, 1002)


def test_token_expiry_follows_the_injected_clock() -> None:
    clock = Clock()
    fake = FakeKling(clock=clock)
    token = fake.token(ttl=1800)
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {token}"}) as session:
        assert session.get("/v1/videos/text2video").json()["code"] == 0
        clock.now += 1800
        assert session.get("/v1/videos/text2video").json()["code"] == 1004
        clock.now = NOW - 60
        assert session.get("/v1/videos/text2video").json()["code"] == 1003


# ---------------------------------------------------------------------------- envelope, routing

def test_envelope_shape_on_success_and_error(client: httpx.Client) -> None:
    ok = create(client, T2V).json()
    assert ok["code"] == 0 and ok["message"] == "SUCCEED"
    uuid.UUID(ok["request_id"])
    error = create(client, {**T2V, "mode": "standard"}).json()
    assert set(error) == {"code", "message", "request_id"}
    uuid.UUID(error["request_id"])


def test_unknown_field_is_rejected_naming_it(client: httpx.Client) -> None:
    response = create(client, {**T2V, "voice_list": [{"voice_id": "1"}]})
    assert (response.status_code, response.json()["code"]) == (400, 1201)
    assert "voice_list" in response.json()["message"]


def test_aspect_ratio_on_image2video_is_an_unknown_field(client: httpx.Client) -> None:
    body = {"model_name": "kling-v3", "image": "https://example.com/a.png", "aspect_ratio": "16:9"}
    response = create(client, body, "/v1/videos/image2video")
    assert response.json()["code"] == 1201 and "aspect_ratio" in response.json()["message"]


def test_malformed_json_and_missing_content_type_are_1200(client: httpx.Client) -> None:
    bad_json = client.post("/v1/videos/text2video", content=b"{nope", headers={"Content-Type": "application/json"})
    assert (bad_json.status_code, bad_json.json()["code"]) == (400, 1200)
    no_type = client.post("/v1/videos/text2video", content=json.dumps(T2V).encode())
    assert (no_type.status_code, no_type.json()["code"]) == (400, 1200)
    array = client.post("/v1/videos/text2video", json=[T2V])
    assert array.json()["code"] == 1200


def test_wrong_method_is_1202_and_unknown_path_1203(client: httpx.Client) -> None:
    wrong = client.put("/v1/videos/text2video", json=T2V)
    assert (wrong.status_code, wrong.json()["code"]) == (404, 1202)
    unknown = client.get("/v1/videos/effects/1")
    assert (unknown.status_code, unknown.json()["code"]) == (404, 1203)


def test_unknown_host_is_a_connect_error(fake: FakeKling) -> None:
    with httpx.Client(transport=fake.transport()) as session, pytest.raises(httpx.ConnectError):
        session.get("https://api.klingai.com/v1/videos/text2video")


# ------------------------------------------------------------------------- fixture vectors

@pytest.mark.parametrize("family,body", VALID_BODIES)
def test_every_fixture_request_is_accepted(client: httpx.Client, family: str, body: dict) -> None:
    response = create(client, body, CREATE_PATHS[family])
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert re.fullmatch(r"[0-9]{18}", data["task_id"])
    assert data["task_status"] == "submitted"
    assert data["created_at"] == data["updated_at"] and data["created_at"] == NOW * 1000
    if family != "multi_image2video":
        expected = {"external_task_id": body["external_task_id"]} if "external_task_id" in body else {}
        assert data["task_info"] == expected
    else:
        assert "task_info" not in data  # the documented mi2v create shape omits it


@pytest.mark.parametrize("case", FIXTURES["invalid_requests_for_emulator"], ids=lambda c: c["name"])
def test_every_invalid_fixture_gets_its_status_and_code(fake: FakeKling, client: httpx.Client, case: dict) -> None:
    response = client.request(case["method"], case["path"], json=case["body"])
    body = response.json()
    assert (response.status_code, body["code"]) == (case["expect"]["http_status"], case["expect"]["code"]), body
    assert body["message"]
    if body["code"] == 1201:
        assert re.match(r"[a-z_\[\]0-9.]+: ", body["message"]), "1201 messages name the offending field"
    assert not fake.tasks and not fake.creates


# ------------------------------------------------------------------------- more validation

@pytest.mark.parametrize("patch,field", [
    ({"duration": "5.0"}, "duration"),
    ({"duration": "16"}, "duration"),
    ({"mode": "PRO"}, "mode"),
    ({"aspect_ratio": "4:3"}, "aspect_ratio"),
    ({"sound": True}, "sound"),
    ({"negative_prompt": "n" * 2501}, "negative_prompt"),
    ({"external_task_id": ""}, "external_task_id"),
    ({"watermark_info": {"enabled": "yes"}}, "watermark_info"),
    ({"callback_url": "hooks.example.com"}, "callback_url"),
    ({"multi_shot": "yes"}, "multi_shot"),
    ({"prompt": ""}, "prompt"),
    ({"cfg_scale": True}, "cfg_scale"),
])
def test_t2v_field_rules(client: httpx.Client, patch: dict, field: str) -> None:
    response = create(client, {**T2V, **patch})
    assert (response.status_code, response.json()["code"]) == (400, 1201)
    assert response.json()["message"].startswith(field)


@pytest.mark.parametrize("body,field", [
    ({"model_name": "kling-v2-6", "prompt": "x", "duration": "5", "mode": "std", "sound": "on"}, "sound"),
    ({"model_name": "kling-v2-5-turbo", "prompt": "x", "duration": "5", "cfg_scale": 0.5}, "cfg_scale"),
    ({"model_name": "kling-v2-master", "prompt": "x", "duration": "5", "mode": "std"}, "mode"),
    ({"model_name": "kling-v2-6", "prompt": "x", "duration": "5", "mode": "4k"}, "mode"),
    ({"model_name": "kling-v3", "prompt": "x", "duration": "5", "camera_control": {"type": "down_back"}},
     "camera_control"),
    ({"model_name": "kling-v1", "prompt": "x", "duration": "5", "camera_control": {"type": "simple"}},
     "camera_control.config"),
    ({"model_name": "kling-v1", "prompt": "x", "duration": "5",
      "camera_control": {"type": "down_back", "config": {"zoom": 1}}}, "camera_control.config"),
    ({"model_name": "kling-v3", "prompt": "x", "duration": "5", "multi_shot": True, "shot_type": "customize",
      "multi_prompt": [{"index": 1, "prompt": "a", "duration": 5}]}, "multi_prompt[0].duration"),
    ({"model_name": "kling-v3", "prompt": "x", "duration": "5", "multi_shot": True, "shot_type": "customize",
      "multi_prompt": [{"index": 1, "prompt": "a", "duration": "0"}, {"index": 2, "prompt": "b", "duration": "5"}]},
     "multi_prompt[0].duration"),
    ({"model_name": "kling-v3", "prompt": "x", "duration": "5", "multi_shot": True, "shot_type": "customize",
      "multi_prompt": [{"index": 1, "prompt": "a", "duration": "2"}, {"index": 1, "prompt": "b", "duration": "3"}]},
     "multi_prompt[1].index"),
    ({"model_name": "kling-v3", "prompt": "", "duration": "5", "multi_shot": True, "shot_type": "intelligence"},
     "prompt"),
    ({"model_name": "kling-v3", "prompt": "x", "duration": 5.0}, "duration"),
])
def test_model_capability_rules(client: httpx.Client, body: dict, field: str) -> None:
    response = create(client, body)
    assert (response.status_code, response.json()["code"]) == (400, 1201), response.json()
    assert response.json()["message"].startswith(field)


def test_null_optional_fields_are_treated_as_absent(client: httpx.Client) -> None:
    assert create(client, {**T2V, "negative_prompt": None, "camera_control": None}).status_code == 200


def test_multi_shot_accepts_string_true(client: httpx.Client) -> None:
    body = {"model_name": "kling-v3", "prompt": "", "duration": "4", "multi_shot": "true", "shot_type": "customize",
            "multi_prompt": [{"index": 1, "prompt": "a", "duration": "1"}, {"index": 2, "prompt": "b", "duration": "3"}]}
    assert create(client, body).status_code == 200


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"])
def test_real_photos_as_raw_base64_are_accepted(client: httpx.Client, name: str) -> None:
    image = base64.b64encode((MEDIA / name).read_bytes()).decode()
    response = create(client, {"model_name": "kling-v3", "image": image, "duration": "5"}, "/v1/videos/image2video")
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("image,problem", [
    (b64_image(299, 400), "at least 300"),
    (b64_image(800, 300), "aspect ratio"),
    (b64_image(400, 400, "GIF"), "JPG or PNG"),
    (base64.b64encode(b"not an image at all").decode(), "readable image"),
    ("image://hero", "neither an http(s) URL nor valid base64"),
    ("iVBORw0KGgo\nAAAA", "neither an http(s) URL nor valid base64"),
])
def test_bad_images_are_rejected(client: httpx.Client, image: str, problem: str) -> None:
    response = create(client, {"model_name": "kling-v3", "image": image, "duration": "5"}, "/v1/videos/image2video")
    assert response.json()["code"] == 1201 and problem in response.json()["message"]


def test_unreachable_url_gives_the_live_1201_message(fake: FakeKling, client: httpx.Client) -> None:
    fake.unreachable_urls.add("https://example.com/gone.png")
    response = create(client, {"model_name": "kling-v3", "image": "https://example.com/gone.png", "duration": "5"},
                      "/v1/videos/image2video")
    assert (response.status_code, response.json()["code"]) == (400, 1201)
    assert response.json()["message"] == "Something went wrong when we tried to get the contents of the file."


def test_placeholder_references_must_name_existing_items(client: httpx.Client) -> None:
    body = {"model_name": "kling-v3-omni", "prompt": "<<<image_2>>> waves", "aspect_ratio": "16:9",
            "image_list": [{"image_url": "https://example.com/a.png"}], "duration": "5"}
    response = create(client, body, "/v1/videos/omni-video")
    assert response.json()["code"] == 1201 and "<<<image_2>>>" in response.json()["message"]


def test_mask_size_mismatch_is_accepted_then_fails(client: httpx.Client) -> None:
    body = {"model_name": "kling-v1", "mode": "pro", "duration": "5", "image": b64_image(400, 400),
            "static_mask": b64_image(400, 600)}
    response = create(client, body, "/v1/videos/image2video")
    assert response.status_code == 200
    data = poll_until_done(client, "image2video", response.json()["data"]["task_id"])
    assert data["task_status"] == "failed" and "mask" in data["task_status_msg"]


# ------------------------------------------------------------------------ lifecycle, charging

def test_lifecycle_with_default_two_polls_and_charge_once(fake: FakeKling, client: httpx.Client) -> None:
    task_id = create(client, {**T2V, "external_task_id": "shot-1"}).json()["data"]["task_id"]
    first = client.get(f"/v1/videos/text2video/{task_id}").json()["data"]
    assert first["task_status"] == "processing" and "task_result" not in first
    assert fake.charged_units == 0
    second = client.get(f"/v1/videos/text2video/{task_id}").json()["data"]
    assert second["task_status"] == "succeed" and second["task_status_msg"] == ""
    video = second["task_result"]["videos"][0]
    assert video["url"] == f"https://cdn.fake-kling.test/videos/{task_id}.mp4"
    assert video["duration"] == "5.0" and re.fullmatch(r"[0-9]+", video["id"])
    assert "watermark_url" not in video
    assert second["final_unit_deduction"] == "3"  # v3 std 5 s silent = 3 units ($0.42)
    assert second["task_info"] == {"external_task_id": "shot-1"}
    assert second["updated_at"] >= second["created_at"]
    for _ in range(3):
        client.get(f"/v1/videos/text2video/{task_id}")
    assert fake.charged_units == 3.0
    assert fake.polls[task_id] == 5
    assert fake.creates == {"shot-1": 1} and fake.create_attempts == 1
    assert fake.tasks[task_id].status == "succeed" and fake.tasks[task_id].units == 3.0


def test_script_by_prompt_substring_fails_without_charge(fake: FakeKling, client: httpx.Client) -> None:
    fake.script("forbidden", polls=1, fail="Failure to pass the risk control system")
    task_id = create(client, {**T2V, "prompt": "a forbidden dance"}).json()["data"]["task_id"]
    data = client.get(f"/v1/videos/text2video/{task_id}").json()["data"]
    assert data["task_status"] == "failed"
    assert data["task_status_msg"] == "Failure to pass the risk control system"
    assert "task_result" not in data and "final_unit_deduction" not in data
    assert fake.charged_units == 0
    assert client.get(f"https://cdn.fake-kling.test/videos/{task_id}.mp4").status_code == 404


def test_script_by_external_id_sets_poll_count_and_times(fake: FakeKling, client: httpx.Client) -> None:
    fake.script("slow-one", polls=4)
    fake.script("flaky", fail="boom", times=1)
    task_id = create(client, {**T2V, "external_task_id": "slow-one"}).json()["data"]["task_id"]
    statuses = [client.get(f"/v1/videos/text2video/{task_id}").json()["data"]["task_status"] for _ in range(4)]
    assert statuses == ["submitted", "processing", "processing", "succeed"]
    failing = create(client, {**T2V, "prompt": "a flaky shot", "external_task_id": "f1"}).json()["data"]["task_id"]
    retried = create(client, {**T2V, "prompt": "a flaky shot", "external_task_id": "f2"}).json()["data"]["task_id"]
    assert poll_until_done(client, "text2video", failing)["task_status"] == "failed"
    assert poll_until_done(client, "text2video", retried)["task_status"] == "succeed"


def test_script_applies_to_an_already_running_task(fake: FakeKling, client: httpx.Client) -> None:
    task_id = create(client, {**T2V, "external_task_id": "late"}).json()["data"]["task_id"]
    fake.script("late", polls=1, fail="scripted late")
    assert client.get(f"/v1/videos/text2video/{task_id}").json()["data"]["task_status"] == "failed"


@pytest.mark.parametrize("family,name,units", [
    ("image2video", "v3_raw_base64_start_frame", "6.3"),       # v3 std 7 s audio: 0.9/s
    ("motion_control", "v2_6_image_orientation", "6.4"),       # v2.6 mc pro 8 s: 0.8/s
    ("motion_control", "v3_with_element", "18"),               # v3 mc std 20 s: 0.9/s
    ("omni_video", "v3_omni_elements_multishot", "10"),        # v3-omni pro 10 s audio: 1.0/s
    ("omni_video", "v3_omni_video_edit_base", "7.2"),          # base edit of a 6 s clip, pro: 1.2/s
    ("omni_video", "v3_omni_text_only_4k", "24"),              # 4k 8 s: 3.0/s
    ("text2video", "v2_6_pro_with_sound", "5"),                # v2.6 pro audio 5 s: 1.0/s
    ("text2video", "v3_multishot_customize_15s", "18"),        # v3 pro 15 s audio: 1.2/s
    ("image2video", "v2_6_voice_control", "6"),                # v2.6 pro voice 5 s: 1.2/s
    ("text2video", "v3_4k", "18"),                             # v3 4k 6 s silent: 3.0/s
])
def test_final_unit_deduction_follows_the_price_table(fake: FakeKling, client: httpx.Client, family: str,
                                                      name: str, units: str) -> None:
    body = FIXTURES["endpoints"][family]["requests"][name]
    task_id = create(client, body, CREATE_PATHS[family]).json()["data"]["task_id"]
    data = poll_until_done(client, CREATE_PATHS[family].rsplit("/", 1)[1], task_id)
    assert data["final_unit_deduction"] == units
    assert fake.charged_units == pytest.approx(float(units))


def test_price_table_worked_examples() -> None:
    assert price_units("kling-v3", "std", 5) == 3
    assert price_units("kling-v3", "pro", 10, "audio") == 12
    assert price_units("kling-v2-6", "pro", 5, "audio_voice") == 6
    assert price_units("kling-v2-5-turbo", "pro", 5) == 2.5


def test_watermark_result_has_watermark_url(client: httpx.Client) -> None:
    body = FIXTURES["endpoints"]["text2video"]["requests"]["v3_multishot_customize_15s"]
    task_id = create(client, body).json()["data"]["task_id"]
    data = poll_until_done(client, "text2video", task_id)
    assert data["watermark_info"] == {"enabled": True}
    video = data["task_result"]["videos"][0]
    assert video["duration"] == "15.0" and video["watermark_url"].endswith(f"{task_id}_watermark.mp4")
    assert client.get(video["watermark_url"]).status_code == 200


# -------------------------------------------------------------------------------- queries

def test_three_query_styles_and_family_check(fake: FakeKling, client: httpx.Client) -> None:
    task_id = create(client, {**T2V, "external_task_id": "ext-9"}).json()["data"]["task_id"]
    by_id = client.get(f"/v1/videos/text2video/{task_id}").json()["data"]
    by_path = client.get("/v1/videos/text2video/ext-9").json()["data"]
    by_flag = client.get("/v1/videos/text2video/ext-9", params={"external_task_id": "true"}).json()["data"]
    (by_param,) = client.get("/v1/videos/text2video", params={"external_task_id": "ext-9"}).json()["data"]
    assert by_id["task_id"] == by_path["task_id"] == by_flag["task_id"] == by_param["task_id"] == task_id
    assert fake.polls[task_id] == 3, "the list filter is a list: it does not advance the task"
    for url in (f"/v1/videos/image2video/{task_id}", "/v1/videos/omni-video/ext-9", "/v1/videos/text2video/nope",
                "/v1/videos/text2video/nope?external_task_id=true"):
        response = client.get(url)
        assert (response.status_code, response.json()["code"]) == (404, 1203), url
    missing = client.get("/v1/videos/text2video", params={"external_task_id": "nope"}).json()
    assert (missing["code"], missing["data"]) == (0, [])


@pytest.mark.parametrize("only", ["path", "list_filter", "flag"])
def test_each_lookup_convention_can_be_the_only_one(only: str) -> None:
    fake = FakeKling(lookup_conventions={only})
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as session:
        task_id = create(session, {**T2V, "external_task_id": "ext-1"}).json()["data"]["task_id"]
        path = session.get("/v1/videos/text2video/ext-1").json()
        listed = session.get("/v1/videos/text2video", params={"external_task_id": "ext-1"}).json()
        flag = session.get("/v1/videos/text2video/ext-1", params={"external_task_id": "true"}).json()
        assert session.get(f"/v1/videos/text2video/{task_id}").json()["code"] == 0, "task ids always work"
    answers = {"path": path, "list_filter": listed, "flag": flag}
    for convention, answer in answers.items():
        if convention == only:
            found = answer["data"][0] if isinstance(answer["data"], list) else answer["data"]
            assert answer["code"] == 0 and found["task_id"] == task_id
        else:
            assert answer["code"] == (1203 if convention == "path" else 1201), (convention, answer)


def test_an_ignored_list_filter_serves_the_whole_list() -> None:
    fake = FakeKling(lookup_conventions={"path"}, list_filter_unsupported="ignore")
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as session:
        for number in range(3):
            create(session, {**T2V, "external_task_id": f"e{number}"})
        page = session.get("/v1/videos/text2video", params={"external_task_id": "e0", "pageNum": 1, "pageSize": 2})
    assert len(page.json()["data"]) == 2, "the filter is not applied, paging still is"
    with pytest.raises(ValueError, match="lookup_conventions"):
        FakeKling(lookup_conventions={"query"})


def test_list_newest_first_with_paging(client: httpx.Client, fake: FakeKling) -> None:
    assert client.get("/v1/videos/text2video").json()["data"] == []
    ids = []
    for number in range(3):
        fake.clock.now += 1
        ids.append(create(client, {**T2V, "external_task_id": f"l{number}"}).json()["data"]["task_id"])
    listed = client.get("/v1/videos/text2video", params={"pageNum": 1, "pageSize": 2}).json()["data"]
    assert [t["task_id"] for t in listed] == [ids[2], ids[1]]
    second = client.get("/v1/videos/text2video", params={"pageNum": 2, "pageSize": 2}).json()["data"]
    assert [t["task_id"] for t in second] == [ids[0]]
    assert client.get("/v1/videos/image2video").json()["data"] == []
    assert not fake.polls, "listing does not advance tasks or count as polls"
    for params in ({"pageSize": 501}, {"pageNum": 0}, {"pageNum": "x"}, {"page": 1}):
        assert client.get("/v1/videos/text2video", params=params).json()["code"] == 1201


def test_duplicate_external_id_rejected_by_default(fake: FakeKling, client: httpx.Client) -> None:
    assert create(client, {**T2V, "external_task_id": "dup"}).status_code == 200
    again = create(client, {**T2V, "external_task_id": "dup"}, "/v1/videos/text2video")
    assert (again.status_code, again.json()["code"]) == (400, 1201)
    assert "external_task_id" in again.json()["message"]
    assert fake.creates == {"dup": 1} and fake.create_attempts == 2 and len(fake.tasks) == 1


def test_duplicate_external_id_can_return_existing() -> None:
    fake = FakeKling(duplicate_external_id="return_existing", polls_to_finish=1)
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as session:
        first = create(session, {**T2V, "external_task_id": "dup"}).json()["data"]["task_id"]
        session.get(f"/v1/videos/text2video/{first}")
        second = create(session, {**T2V, "external_task_id": "dup"}).json()["data"]
    assert first == second["task_id"] and fake.creates == {"dup": 1} and fake.create_attempts == 2
    assert second["task_status"] == "succeed" and second["task_result"]["videos"], "the task as it is now"


def test_duplicate_message_names_the_existing_task(fake: FakeKling, client: httpx.Client) -> None:
    task_id = create(client, {**T2V, "external_task_id": "sb-0123abc"}).json()["data"]["task_id"]
    again = create(client, {**T2V, "prompt": "another prompt", "external_task_id": "sb-0123abc"}).json()
    assert again["message"] == f"external_task_id: 'sb-0123abc' is already used by task {task_id}; it must be unique"


@pytest.mark.parametrize("video, reported, expected_frames, text", [
    (5.041, None, 121, "5.041"), (5.1, None, 122, "5.1"), (4.2, 5.1, 101, "5.1")])
def test_scripted_result_length_and_reported_duration(fake: FakeKling, client: httpx.Client, tmp_path: Path,
                                                      video: float, reported: float | None, expected_frames: int,
                                                      text: str) -> None:
    fake.script("odd-length", video_seconds=video, reported_seconds=reported)
    task_id = create(client, {**T2V, "external_task_id": "odd-length"}).json()["data"]["task_id"]
    data = poll_until_done(client, "text2video", task_id)
    result = data["task_result"]["videos"][0]
    assert result["duration"] == text
    path = tmp_path / "odd.mp4"
    path.write_bytes(client.get(result["url"]).content)
    assert probe(path).frames == expected_frames


def test_creates_without_external_id_count_under_empty_key(fake: FakeKling, client: httpx.Client) -> None:
    create(client, T2V)
    create(client, T2V)
    assert fake.creates == {"": 2}


# -------------------------------------------------------------------------------- downloads

def download(client: httpx.Client, fake: FakeKling, body: dict, tmp_path: Path,
             path: str = "/v1/videos/text2video") -> tuple[str, Path]:
    task_id = create(client, body, path).json()["data"]["task_id"]
    data = poll_until_done(client, path.rsplit("/", 1)[1], task_id)
    response = client.get(data["task_result"]["videos"][0]["url"])
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    target = tmp_path / f"{task_id}.mp4"
    target.write_bytes(response.content)
    return task_id, target


def test_result_is_a_real_mp4_of_the_requested_length(fake: FakeKling, client: httpx.Client, tmp_path: Path) -> None:
    task_id, path = download(client, fake, {**T2V, "duration": "3", "aspect_ratio": "9:16"}, tmp_path)
    info = probe(path)
    assert (info.frames, info.fps, info.width, info.height) == (72, 24, 90, 160)
    assert (info.video_codec, info.pix_fmt, info.has_audio) == ("h264", "yuv420p", False)
    assert fake.downloads[task_id] == 1


def test_multishot_result_changes_colour_at_each_shot(fake: FakeKling, client: httpx.Client, tmp_path: Path) -> None:
    body = {"model_name": "kling-v3", "prompt": "", "duration": "4", "mode": "pro", "sound": "on",
            "multi_shot": True, "shot_type": "customize",
            "multi_prompt": [{"index": 1, "prompt": "a", "duration": "1"}, {"index": 2, "prompt": "b", "duration": "3"}]}
    _, path = download(client, fake, body, tmp_path)
    info = probe(path)
    assert info.frames == 96 and info.has_audio and info.audio_codec == "aac"
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    for index, expected in ((0, shot_colour_rgb(0)), (23, shot_colour_rgb(0)), (24, shot_colour_rgb(1)),
                            (95, shot_colour_rgb(1))):
        mean = frames[index].reshape(-1, 3).mean(axis=0)
        assert all(abs(m - e) < 20 for m, e in zip(mean, expected)), (index, mean, expected)


def test_download_before_success_is_404_and_ranges_work(fake: FakeKling, client: httpx.Client) -> None:
    task_id = create(client, T2V).json()["data"]["task_id"]
    assert client.get(f"https://cdn.fake-kling.test/videos/{task_id}.mp4").status_code == 404
    poll_until_done(client, "text2video", task_id)
    whole = client.get(f"https://cdn.fake-kling.test/videos/{task_id}.mp4").content
    tail = client.get(f"https://cdn.fake-kling.test/videos/{task_id}.mp4", headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == whole[100:]
    assert fake.downloads[task_id] == 2


def test_video_cache_returns_identical_files() -> None:
    first = result_video_path((2.0,), sound=False)
    assert result_video_path((2,), sound=False) == first
    assert probe(first).frames == 48


# ---------------------------------------------------------------------------------- faults

@pytest.mark.parametrize("kind,status,code", [
    ("rate_limit_1302", 429, 1302), ("concurrency_1303", 429, 1303), ("resource_pack_1102", 429, 1102),
    ("internal_5000", 500, 5000), ("unavailable_5001", 503, 5001), ("timeout_5002", 504, 5002),
])
def test_error_faults_hit_times_then_clear(fake: FakeKling, client: httpx.Client, kind: str, status: int,
                                          code: int) -> None:
    fake.inject(Fault(kind, times=2, on="create"))
    for _ in range(2):
        response = create(client, {**T2V, "external_task_id": "r1"})
        assert (response.status_code, response.json()["code"]) == (status, code)
        assert "data" not in response.json()
    assert client.get("/v1/videos/text2video").status_code == 200, "a create fault leaves queries alone"
    assert create(client, {**T2V, "external_task_id": "r1"}).status_code == 200
    assert fake.create_attempts == 3 and fake.creates == {"r1": 1} and fake.faults_hit[kind] == 2


def test_5000_on_create_can_record_the_task(fake: FakeKling, client: httpx.Client) -> None:
    fake.inject(Fault("internal_5000", on="create", recorded=True))
    response = create(client, {**T2V, "external_task_id": "ghost"})
    assert response.status_code == 500
    found = client.get("/v1/videos/text2video/ghost").json()["data"]
    assert found["task_info"] == {"external_task_id": "ghost"}
    assert fake.creates == {"ghost": 1}


def test_recorded_fault_waits_for_a_valid_create(fake: FakeKling, client: httpx.Client) -> None:
    fake.inject(Fault("timeout_5002", on="create", recorded=True))
    assert create(client, {**T2V, "mode": "standard"}).json()["code"] == 1201
    assert create(client, T2V).status_code == 504
    assert len(fake.tasks) == 1


def test_drop_after_create_records_the_task(fake: FakeKling, client: httpx.Client) -> None:
    fake.inject(Fault("drop_after_create"))
    with pytest.raises(httpx.RemoteProtocolError):
        create(client, {**T2V, "external_task_id": "dropped"})
    fake.inject(Fault("drop_after_create", error="read_timeout"))
    with pytest.raises(httpx.ReadTimeout):
        create(client, {**T2V, "external_task_id": "dropped-2"})
    assert fake.creates == {"dropped": 1, "dropped-2": 1}
    assert client.get("/v1/videos/text2video?external_task_id=dropped").json()["code"] == 0


def test_drop_before_create_records_nothing(fake: FakeKling, client: httpx.Client) -> None:
    fake.inject(Fault("drop_before_create", times=2))
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            create(client, {**T2V, "external_task_id": "never"})
    assert not fake.tasks and fake.create_attempts == 0 and fake.dropped_connects == 2
    assert not fake.requests_log


def test_fault_after_lets_requests_pass_first(fake: FakeKling, client: httpx.Client) -> None:
    fake.inject(Fault("rate_limit_1302", on="query", after=1))
    task_id = create(client, T2V).json()["data"]["task_id"]
    assert client.get(f"/v1/videos/text2video/{task_id}").status_code == 200
    assert client.get(f"/v1/videos/text2video/{task_id}").json()["code"] == 1302
    assert client.get(f"/v1/videos/text2video/{task_id}").json()["data"]["task_status"] == "succeed"
    assert fake.polls[task_id] == 2, "the faulted query never reached the task"


def test_truncated_and_slow_downloads(fake: FakeKling, client: httpx.Client, tmp_path: Path) -> None:
    task_id = create(client, T2V).json()["data"]["task_id"]
    url = poll_until_done(client, "text2video", task_id)["task_result"]["videos"][0]["url"]
    whole = client.get(url).content
    fake.inject(Fault("truncated_download"))
    half = client.get(url).content
    assert len(half) == len(whole) // 2
    (tmp_path / "half.mp4").write_bytes(half)
    try:  # a faststart MP4 cut in half still opens; its packet count gives the truncation away
        assert probe(tmp_path / "half.mp4").frames < 120
    except MediaError:
        pass
    fake.inject(Fault("slow_download", seconds=5))
    assert client.get(url).content == whole  # transport mode only marks it
    assert fake.slow_downloads[task_id] == 1


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault("explode")
    with pytest.raises(ValueError):
        Fault("drop_after_create", on="query")
    with pytest.raises(ValueError):
        Fault("truncated_download", on="create")
    assert Fault("drop_before_create").on == "create" and Fault("rate_limit_1302").on == "any"


def test_units_balance_gives_1102(fake: FakeKling, client: httpx.Client) -> None:
    fake.units_balance = 5.0
    first = create(client, T2V).json()["data"]["task_id"]  # 3 units, pending
    response = create(client, T2V)
    assert (response.status_code, response.json()["code"]) == (429, 1102)
    poll_until_done(client, "text2video", first)
    assert create(client, {**T2V, "duration": "3"}).status_code == 200  # 3 + 1.8 <= 5


def test_concurrency_limit_gives_1303_until_a_slot_frees(fake: FakeKling, client: httpx.Client) -> None:
    fake.concurrency_limit = 1
    first = create(client, T2V).json()["data"]["task_id"]
    response = create(client, T2V)
    assert (response.status_code, response.json()) == (429, {**response.json(), "code": 1303})
    assert response.json()["message"] == "parallel task over resource pack limit"
    poll_until_done(client, "text2video", first)
    assert create(client, T2V).status_code == 200


# --------------------------------------------------------------------------------- elements

def test_element_lifecycle_list_and_delete_on_both_paths(fake: FakeKling, client: httpx.Client) -> None:
    body = {**FIXTURES["endpoints"]["elements"]["requests"]["create_image_refer"], "external_task_id": "el-1"}
    created = client.post("/v1/general/advanced-custom-elements", json=body).json()["data"]
    assert "element_id" not in json.dumps(created)
    data = client.get("/v1/general/advanced-custom-elements/el-1").json()["data"]
    assert data["task_status"] == "succeed" and data["final_unit_deduction"] == "0"
    element = data["task_result"]["elements"][0]
    assert isinstance(element["element_id"], int) and element["element_id"] > 2**53
    assert element["status"] == "succeed" and element["element_name"] == "Mira"
    listed = client.get("/v1/general/advanced-custom-elements").json()["data"]
    assert [t["task_id"] for t in listed] == [created["task_id"]]
    presets = client.get("/v1/general/advanced-presets-elements").json()["data"]
    assert presets[0]["task_result"]["elements"][0]["owned_by"] == "kling"
    assert fake.element_creates == {"el-1": 1} and not fake.creates

    second = client.post("/v1/general/advanced-custom-elements", json={**body, "external_task_id": "el-2"})
    second_id = poll_until_done_element(client, second.json()["data"]["task_id"])
    for path, element_id in (("/v1/general/delete-elements", element["element_id"]),
                             ("/v1/general/delete-advanced-elements", second_id)):
        deleted = client.post(path, json={"element_id": str(element_id)}).json()
        assert deleted["code"] == 0 and deleted["data"]["task_status"] == "succeed"
    again = client.post("/v1/general/delete-elements", json={"element_id": str(element["element_id"])})
    assert (again.status_code, again.json()["code"]) == (404, 1203)
    assert client.post("/v1/general/delete-elements", json={"element_id": element["element_id"]}).json()["code"] == 1201
    use = {"model_name": "kling-v3", "image": "https://example.com/a.png", "duration": "5",
           "element_list": [{"element_id": element["element_id"]}]}
    assert create(client, use, "/v1/videos/image2video").json()["code"] == 1201


def poll_until_done_element(client: httpx.Client, task_id: str) -> int:
    data = client.get(f"/v1/general/advanced-custom-elements/{task_id}").json()["data"]
    assert data["task_status"] == "succeed"
    return data["task_result"]["elements"][0]["element_id"]


def test_require_known_elements() -> None:
    fake = FakeKling(require_known_elements=True)
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}) as session:
        body = FIXTURES["endpoints"]["image2video"]["requests"]["v3_elements"]
        response = create(session, body, "/v1/videos/image2video")
    assert response.json()["code"] == 1201 and "element_list[0].element_id" in response.json()["message"]


# ----------------------------------------------------------------------- seams and secrets

def test_async_client_through_the_same_transport(fake: FakeKling) -> None:
    async def run() -> tuple[str, int]:
        async with httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url,
                                     headers=fake.auth_headers()) as session:
            created = await session.post("/v1/videos/text2video", json=T2V)
            task_id = created.json()["data"]["task_id"]
            for _ in range(2):
                data = (await session.get(f"/v1/videos/text2video/{task_id}")).json()["data"]
            video = await session.get(data["task_result"]["videos"][0]["url"])
            return data["task_status"], len(video.content)

    status, size = asyncio.run(run())
    assert status == "succeed" and size > 1000


def test_secrets_never_travel_and_token_only_in_authorization(fake: FakeKling) -> None:
    token = fake.token()
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url,
                      headers={"Authorization": f"Bearer {token}"}) as session:
        create(session, T2V)
        create(session, {**T2V, "prompt": "sk_test_b91e4d07c6a24f35a8d2e0f1c3b5a7d9"})
    assert fake.requests_containing(token) == []
    assert len(fake.requests_containing(token, include_authorization=True)) == 2
    assert fake.requests_containing(fake.secret_key) == ["POST https://api-singapore.klingai.com/v1/videos/text2video"]


def test_server_serves_api_and_cdn_over_loopback(fake: FakeKling) -> None:
    fake.clock = time.time
    with serve(fake) as base_url:
        assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+", base_url)
        with httpx.Client(base_url=base_url, headers=fake.auth_headers(), timeout=10) as session:
            task_id = create(session, {**T2V, "external_task_id": "srv"}).json()["data"]["task_id"]
            data = poll_until_done(session, "text2video", task_id)
            url = data["task_result"]["videos"][0]["url"]
            assert url == f"{base_url}/cdn/videos/{task_id}.mp4"
            with httpx.Client(timeout=10) as cdn:
                assert cdn.get(url).content == fake.tasks[task_id].video_bytes
            assert session.get("/v1/videos/text2video/srv", headers={"Authorization": "Bearer x"}).status_code == 401
            fake.inject(Fault("drop_after_create"))
            with pytest.raises(httpx.RemoteProtocolError):
                create(session, {**T2V, "external_task_id": "srv-drop"})
            assert session.get("/v1/videos/text2video/srv-drop").json()["code"] == 0
    assert fake.cdn_base_url == "https://cdn.fake-kling.test"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/v1/videos/text2video", timeout=2)


def test_server_module_runs_from_the_command_line(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.server", "--port", "0"],
                               cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        base_url = re.search(r"http://127\.0\.0\.1:[0-9]+", line).group(0)
        response = httpx.get(f"{base_url}/v1/videos/text2video", headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
                             timeout=5)
        assert response.json()["code"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bare_model_field_is_ignored_like_the_docs_say(client: httpx.Client) -> None:
    """``model`` is accepted but the default kling-v1 applies, so a v3-only duration is refused."""
    response = create(client, {"model": "kling-v3", "prompt": "x", "duration": "7"})
    assert response.json()["code"] == 1201 and "kling-v1" in response.json()["message"]


def test_parallel_async_creates_respect_the_concurrency_limit(fake: FakeKling) -> None:
    fake.concurrency_limit = 3

    async def run() -> list[int]:
        async with httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url,
                                     headers=fake.auth_headers()) as session:
            responses = await asyncio.gather(*(
                session.post("/v1/videos/text2video", json={**T2V, "external_task_id": f"p{n}"}) for n in range(8)))
            return [r.json()["code"] for r in responses]

    codes = asyncio.run(run())
    assert sorted(codes) == [0, 0, 0] + [1303] * 5
    assert sum(fake.creates.values()) == 3 and fake.create_attempts == 8


def test_truncated_download_announcing_full_length(fake: FakeKling, client: httpx.Client) -> None:
    task_id = create(client, T2V).json()["data"]["task_id"]
    url = poll_until_done(client, "text2video", task_id)["task_result"]["videos"][0]["url"]
    whole = client.get(url).content
    fake.inject(Fault("truncated_download", full_length=True))
    response = client.get(url)
    assert int(response.headers["content-length"]) == len(whole)
    assert len(response.content) == len(whole) // 2


def test_server_hangs_up_mid_body_on_full_length_truncation(fake: FakeKling) -> None:
    fake.clock = time.time
    with serve(fake) as base_url:
        with httpx.Client(base_url=base_url, headers=fake.auth_headers(), timeout=10) as session:
            task_id = create(session, T2V).json()["data"]["task_id"]
            url = poll_until_done(session, "text2video", task_id)["task_result"]["videos"][0]["url"]
        fake.inject(Fault("truncated_download", full_length=True))
        fake.inject(Fault("slow_download", seconds=0.2))
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url, timeout=10)
        assert httpx.get(url, timeout=10).content == fake.tasks[task_id].video_bytes  # slow, then whole
    assert fake.slow_downloads[task_id] == 1 and fake.faults_hit["truncated_download"] == 1
