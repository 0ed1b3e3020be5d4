"""The Kling model table and price table against kling-api.md §3 and §11."""

from __future__ import annotations

import json

import pytest

from storyboard.load.spec import ModelName
from storyboard.plan import UNIT_PRICE_USD
from storyboard.plan import capabilities as caps
from tests.reference import KLING_FIXTURES

FIXTURES = KLING_FIXTURES


def test_every_spec_model_is_in_the_table() -> None:
    assert set(ModelName.__args__) == set(caps.MODELS)


@pytest.mark.parametrize(
    ("model", "mode", "sound", "seconds", "units", "usd"),
    [
        ("kling-v3", "std", False, 5, 3.0, 0.42),  # kling-api.md §11 worked example
        ("kling-v3", "pro", True, 10, 12.0, 1.68),  # worked example
        ("kling-v3", "4k", True, 6, 18.0, 2.52),
        ("kling-v3-omni", "pro", True, 5, 5.0, 0.70),
        ("kling-video-o1", "std", False, 7, 4.2, 0.59),
        ("kling-v2-5-turbo", "std", False, 10, 3.0, 0.42),  # changelog 2025-11-11: 10 s std = 3 units
        ("kling-v2-5-turbo", "pro", False, 5, 2.5, 0.35),  # changelog 2025-10-20
    ],
)
def test_official_prices(model: str, mode: str, sound: bool, seconds: int, units: float, usd: float) -> None:
    got, estimated = caps.units_for(model, mode, sound, seconds)
    assert got == units  # exact: computed in decimal
    assert round(got * UNIT_PRICE_USD, 2) == usd
    assert estimated is False


def test_voice_price_worked_example() -> None:
    assert caps.units_for("kling-v2-6", "pro", True, 5, voice=True) == (6.0, False)
    assert caps.units_for("kling-v2-6", "pro", True, 10, voice=True) == (12.0, False)
    assert caps.units_per_second("kling-v2-6", "pro", True) == (1.0, False)


def test_video_input_rates() -> None:
    assert caps.units_per_second("kling-v3-omni", "pro", False, video_input=True) == (1.2, False)
    assert caps.units_per_second("kling-video-o1", "std", False, video_input=True) == (0.9, False)


def test_prices_match_the_kling_fixture_table() -> None:
    table = json.loads(FIXTURES.read_text())["pricing_units_per_second_2026_09_20"]
    features = {"silent": (False, False), "audio": (True, False), "no_video_silent": (False, False),
                "no_video_audio": (True, False), "no_video": (False, False), "audio_voice": (True, True)}  # fmt: skip
    checked = 0
    for model, rows in table.items():
        if model == "unit_usd":
            assert value_equal(rows, UNIT_PRICE_USD)
            continue
        for feature, modes in rows.items():
            if feature not in features:
                continue  # motion control / video input: not planned by storyboard
            sound, voice = features[feature]
            for mode, rate in modes.items():
                assert caps.units_per_second(model, mode, sound, voice=voice) == (rate, False), (model, feature, mode)
                checked += 1
    assert checked >= 20


def value_equal(a: float, b: float) -> bool:
    return abs(a - b) < 1e-12


@pytest.mark.parametrize(
    ("model", "mode", "per_second"),
    [("kling-v1-6", "std", 0.4), ("kling-v1-6", "pro", 0.7), ("kling-v2-master", "std", 2.0), ("kling-v1", "std", 0.4)],
)
def test_older_models_are_estimates(model: str, mode: str, per_second: float) -> None:
    assert caps.units_per_second(model, mode, False) == (per_second, True)
    assert model in caps.ESTIMATE_SOURCES


@pytest.mark.parametrize(
    ("model", "mode", "sound"),
    [
        ("kling-v2-6", "std", True),
        ("kling-v2-5-turbo", "pro", True),
        ("kling-video-o1", "4k", False),
        ("kling-v1", "std", True),
    ],
)
def test_combinations_kling_does_not_offer_have_no_price(model: str, mode: str, sound: bool) -> None:
    with pytest.raises(ValueError):
        caps.units_per_second(model, mode, sound)


@pytest.mark.parametrize(
    ("model", "mode", "ratio", "size"),
    [
        ("kling-v3", "std", "16:9", (1280, 720)),
        ("kling-v3", "pro", "9:16", (1080, 1920)),
        ("kling-v3", "4k", "1:1", (2160, 2160)),
        ("kling-v1", "pro", "16:9", (1280, 720)),  # kling-v1 pro is 720p
        ("kling-v2-master", "pro", "16:9", (1280, 720)),  # no mode: always 720p
        ("kling-v2-1-master", "std", "16:9", (1920, 1080)),  # no mode: always 1080p
    ],
)
def test_output_size(model: str, mode: str, ratio: str, size: tuple[int, int]) -> None:
    assert caps.output_size(model, mode, ratio) == size


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (512, 512, "1:1"),
        (640, 427, "16:9"),
        (451, 300, "16:9"),
        (600, 400, "16:9"),
        (300, 500, "9:16"),
        (560, 500, "1:1"),
    ],
)
def test_snap_aspect_ratio(width: int, height: int, ratio: str) -> None:
    assert caps.snap_aspect_ratio(width, height) == ratio


def test_model_facts_from_the_capability_map() -> None:
    models = caps.MODELS
    assert set(caps.MULTI_SHOT_MODELS) == {"kling-v3", "kling-v3-turbo", "kling-v3-omni"}
    assert [m for m, i in models.items() if "4k" in i.modes] == ["kling-v3", "kling-v3-omni"]
    assert models["kling-v3"].durations == tuple(range(3, 16))
    assert models["kling-video-o1"].durations == tuple(range(3, 11))
    assert models["kling-video-o1"].durations_for(pure_text=True) == (5, 10)
    assert models["kling-v2-6"].durations == (5, 10)
    assert caps.TEXT2VIDEO not in models["kling-v1-5"].families
    assert caps.TEXT2VIDEO not in models["kling-v2-1"].families
    assert not any(models[m].cfg_scale for m in models if m.startswith("kling-v2"))
    assert models["kling-v2-6"].offers_sound("pro") and not models["kling-v2-6"].offers_sound("std")
    assert not models["kling-video-o1"].sound_modes
    assert models["kling-v3"].max_elements == 3
    assert not models["kling-v2-master"].sends_mode and not models["kling-v2-1-master"].sends_mode
    assert models["kling-v1-6"].fps_for(caps.IMAGE2VIDEO) == 30 and models["kling-v1-6"].fps_for(caps.TEXT2VIDEO) == 24
    assert models["kling-v1"].camera_rule(caps.TEXT2VIDEO, "std", 5, "forward_up")
    assert not models["kling-v1"].camera_rule(caps.TEXT2VIDEO, "std", 10, "simple")
    assert models["kling-v1-5"].camera_rule(caps.IMAGE2VIDEO, "pro", 5, "simple")
    assert not models["kling-v1-5"].camera_rule(caps.IMAGE2VIDEO, "pro", 5, "down_back")


def test_next_allowed_duration() -> None:
    assert caps.next_allowed_duration(3, (5, 10)) == 5
    assert caps.next_allowed_duration(6, (5, 10)) == 10
    assert caps.next_allowed_duration(11, (5, 10)) is None
    assert caps.next_allowed_duration(1, tuple(range(3, 16))) == 3
    assert caps.describe_durations(tuple(range(3, 16))) == "3-15 s"
    assert caps.describe_durations((5, 10)) == "5, 10"
