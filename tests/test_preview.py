"""The preview provider renders real, correctly timed clips whose camera moves the right way.

Clips are checked by probing the files and by comparing decoded frames numerically (PyAV +
numpy), never by eye. Sizes are small (320x180) except for one real 720p check.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from storyboard.errors import ProviderError
from storyboard.media import probe
from storyboard.plan import ElementRegistration, Request, ShotSlice
from storyboard.render.providers.base import Job
from storyboard.render.providers.camera import read_camera
from storyboard.render.providers.preview import (
    TITLE_SAFE,
    Box,
    PreviewProvider,
    _font,
    preview_size,
    render_preview,
    safe_area,
    shot_frame_ranges,
)

W, H = 320, 180


# ------------------------------------------------------------------------------------------------
# builders


def textured_image(path: Path, seed: int, size=(480, 270), tint=(1.0, 1.0, 1.0)) -> Path:
    """A smooth random texture: unique everywhere, so shifts and scales can be measured."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(size[1] // 12, size[0] // 12, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(image).astype(np.float32) * np.array(tint, dtype=np.float32)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def placeholder_for(path: Path) -> str:
    return "image://sha256/" + hashlib.sha256(path.read_bytes()).hexdigest()


def make_request(
    shots: list[ShotSlice],
    *,
    duration: int = 2,
    width: int = W,
    height: int = H,
    sound: bool = False,
    body: dict | None = None,
    family: str = "image2video",
    mode: str = "std",
    key_seed: str = "",
) -> Request:
    key = hashlib.sha256(f"{key_seed}{shots}{duration}{width}{body}".encode()).hexdigest()
    return Request(
        id=f"r01-{shots[0].shot_id}",
        key=key,
        external_task_id=f"sb-{key[:20]}",
        family=family,
        endpoint=f"/v1/videos/{family}",
        model="kling-v3",
        mode=mode,
        duration=duration,
        sound=sound,
        aspect_ratio="16:9",
        width=width,
        height=height,
        fps=24,
        body=body or {"prompt": shots[0].prompt},
        shots=shots,
        units=1.0,
        usd=0.14,
    )


def one_shot(shot_id="s1", *, duration=2, camera=None, prompt="a scene", start=None, end=None) -> ShotSlice:
    return ShotSlice(
        shot_id=shot_id,
        offset=0,
        rendered=duration,
        keep=duration,
        prompt=prompt,
        camera=camera,
        start_image=start,
        end_image=end,
    )


def frames_of(path: Path) -> list[np.ndarray]:
    """Every decoded frame as float32 grey."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray").astype(np.float32) for frame in container.decode(video=0)]


def keyframe_numbers(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [i for i, frame in enumerate(container.decode(video=0)) if frame.key_frame]


def render(tmp_path: Path, request: Request, images: dict[str, Path], name="clip.mp4", **kwargs) -> Path:
    dest = tmp_path / name
    render_preview(Job(request=request, project_dir=tmp_path, images=images), dest, **kwargs)
    return dest


def image_shot_clip(tmp_path: Path, camera: str | None, *, body_extra: dict | None = None, prompt="a scene"):
    picture = textured_image(tmp_path / "start.png", seed=1)
    start = placeholder_for(picture)
    shot = one_shot(camera=camera, prompt=prompt, start=start)
    body = {"image": start, "prompt": prompt, **(body_extra or {})}
    return render(tmp_path, make_request([shot], body=body), {start: picture})


# ------------------------------------------------------------------------------------------------
# motion measurements


def best_shift(a: np.ndarray, b: np.ndarray, axis: int, reach: int) -> int:
    """The shift d (pixels along ``axis``) for which b[x + d] best matches a[x] in the middle."""
    length = a.shape[axis]
    lo, hi = reach, length - reach
    errors = {}
    for d in range(-reach + 1, reach):
        if axis == 1:
            errors[d] = float(np.mean(np.abs(a[:, lo:hi][20:-20] - b[:, lo + d : hi + d][20:-20])))
        else:
            errors[d] = float(np.mean(np.abs(a[lo:hi][:, 20:-20] - b[lo + d : hi + d][:, 20:-20])))
    return min(errors, key=errors.get)


def best_zoom(a: np.ndarray, b: np.ndarray) -> float:
    """The scale s for which b looks like a magnified s times about the centre."""
    height, width = a.shape
    inner = (slice(height // 5, height - height // 5), slice(width // 5, width - width // 5))
    errors = {}
    for s in np.arange(0.70, 1.50, 0.01):
        if s >= 1:
            source, target, k = a, b, s
        else:
            source, target, k = b, a, 1 / s
        crop_w, crop_h = width / k, height / k
        box = ((width - crop_w) / 2, (height - crop_h) / 2, (width + crop_w) / 2, (height + crop_h) / 2)
        zoomed = np.asarray(
            Image.fromarray(source).resize((width, height), Image.Resampling.BILINEAR, box=box), dtype=np.float32
        )
        errors[round(float(s), 2)] = float(np.mean(np.abs(zoomed[inner] - target[inner])))
    return min(errors, key=errors.get)


# ------------------------------------------------------------------------------------------------
# the file


def test_clip_has_exact_frames_size_fps_codec_and_a_silent_aac_track(tmp_path):
    picture = textured_image(tmp_path / "a.png", seed=3)
    start = placeholder_for(picture)
    request = make_request([one_shot(duration=3, start=start)], duration=3, sound=True, body={"image": start})
    clip = render(tmp_path, request, {start: picture})
    info = probe(clip)
    assert (info.width, info.height) == (W, H)
    assert info.frames == 3 * 24 and info.fps == 24 and info.duration == pytest.approx(3.0)
    assert (info.video_codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.has_audio and info.audio_codec == "aac"
    assert (info.sample_rate, info.channels) == (48000, 2)
    assert info.audio_duration == pytest.approx(3.0, abs=0.05)
    with av.open(str(clip)) as container:
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert np.max(np.abs(samples)) < 1e-4  # silent


def test_clip_without_sound_has_no_audio_stream(tmp_path):
    clip = image_shot_clip(tmp_path, camera="static")
    info = probe(clip)
    assert not info.has_audio
    assert info.frames == 48


def test_a_real_720p_clip(tmp_path):
    picture = textured_image(tmp_path / "a.png", seed=4, size=(400, 300))  # small: scaled up first
    start = placeholder_for(picture)
    request = make_request(
        [one_shot(duration=2, camera="slow push-in", start=start)], width=1280, height=720, body={"image": start}
    )
    clip = render(tmp_path, request, {start: picture})
    info = probe(clip)
    assert (info.width, info.height, info.frames) == (1280, 720, 48)
    first = frames_of(clip)[0]
    # no black border anywhere on the edges: the crop stays inside the enlarged picture
    edges = np.concatenate([first[0], first[-1], first[:, 0], first[:, -1]])
    assert edges.min() > 10


def test_4k_requests_preview_at_the_preview_height(tmp_path):
    shot = one_shot(duration=1)
    request = make_request([shot], duration=1, width=3840, height=2160, mode="4k", family="text2video")
    assert preview_size(request) == (1920, 1080)
    assert preview_size(request, 720) == (1280, 720)
    clip = render(tmp_path, request, {}, four_k_preview_height=180)
    info = probe(clip)
    assert (info.width, info.height, info.frames) == (320, 180, 24)


# ------------------------------------------------------------------------------------------------
# camera moves, measured on decoded frames


def test_push_in_grows_the_centre(tmp_path):
    frames = frames_of(image_shot_clip(tmp_path, camera="slow push-in"))
    assert best_zoom(frames[0], frames[-1]) >= 1.08


def test_pull_out_shrinks_the_centre(tmp_path):
    frames = frames_of(image_shot_clip(tmp_path, camera="pull out"))
    assert best_zoom(frames[0], frames[-1]) <= 0.9


def test_pan_left_slides_the_content_right(tmp_path):
    frames = frames_of(image_shot_clip(tmp_path, camera="pan left"))
    shift = best_shift(frames[0], frames[-1], axis=1, reach=60)
    assert shift >= 15  # content moved right by ~0.16 of the frame width


def test_truck_right_slides_the_content_left(tmp_path):
    frames = frames_of(image_shot_clip(tmp_path, camera="truck right"))
    assert best_shift(frames[0], frames[-1], axis=1, reach=60) <= -15


def test_crane_up_slides_the_content_down(tmp_path):
    frames = frames_of(image_shot_clip(tmp_path, camera="crane up"))
    assert best_shift(frames[0], frames[-1], axis=0, reach=40) >= 8


def test_structured_camera_control_wins_over_words(tmp_path):
    control = {"type": "simple", "config": {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": 0, "roll": 0, "zoom": -8}}
    frames = frames_of(image_shot_clip(tmp_path, camera="pull out", body_extra={"camera_control": control}))
    assert best_zoom(frames[0], frames[-1]) >= 1.15  # zoom < 0 = narrower field of view = closer


def test_static_stays_near_static(tmp_path):
    frames = frames_of(image_shot_clip(tmp_path, camera="static"))
    middle = frames[len(frames) // 2]
    assert best_zoom(frames[0], middle) <= 1.03
    assert float(np.mean(np.abs(frames[0] - frames[-1]))) < 2.0
    steps = [float(np.mean(np.abs(a - b))) for a, b in itertools.pairwise(frames)]
    assert max(steps) < 3.0


def test_moves_are_smooth_without_integer_steps(tmp_path):
    """Sub-pixel motion: consecutive frames change by similar, small amounts (no stalls, no jumps)."""
    frames = frames_of(image_shot_clip(tmp_path, camera="slow push-in"))
    steps = np.array([float(np.mean(np.abs(a - b))) for a, b in itertools.pairwise(frames)])
    middle = steps[len(steps) // 4 : 3 * len(steps) // 4]  # eased: the middle moves at full speed
    assert middle.min() > 0.2  # every middle frame moves
    assert middle.max() < 2.5 * middle.min()  # and none jumps


def test_end_frame_dissolves_from_start_to_end(tmp_path):
    red = textured_image(tmp_path / "red.png", seed=5, tint=(1.0, 0.15, 0.15))
    blue = textured_image(tmp_path / "blue.png", seed=6, tint=(0.15, 0.15, 1.0))
    start, end = placeholder_for(red), placeholder_for(blue)
    request = make_request(
        [one_shot(camera="slow push-in", start=start)], body={"image": start, "image_tail": end, "prompt": "x"}
    )
    clip = render(tmp_path, request, {start: red, end: blue})
    with av.open(str(clip)) as container:
        rgb = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video=0)]
    redness = [float(f[..., 0].mean() - f[..., 2].mean()) for f in rgb]
    assert redness[0] > 40 and redness[-1] < -40
    middle = redness[len(redness) // 2]
    assert redness[-1] < middle < redness[0]


# ------------------------------------------------------------------------------------------------
# multi-shot and cards


def test_multi_shot_boundaries_fall_on_the_planned_frames(tmp_path):
    one = textured_image(tmp_path / "one.png", seed=7)
    two = textured_image(tmp_path / "two.png", seed=8, tint=(0.3, 0.8, 1.0))
    p1, p2 = placeholder_for(one), placeholder_for(two)
    shots = [
        ShotSlice(shot_id="intro", offset=0, rendered=1.3, keep=1.2, prompt="A title card for the story"),
        ShotSlice(shot_id="pour", offset=1.3, rendered=0.9, keep=0.9, prompt="pour", camera="pan left", start_image=p1),
        ShotSlice(shot_id="sip", offset=2.2, rendered=0.8, keep=0.8, prompt="sip", camera="push in", start_image=p2),
    ]
    request = make_request(shots, duration=3, family="text2video", body={"multi_shot": True, "prompt": ""})
    ranges = [(piece.shot_id, start, end) for piece, start, end in shot_frame_ranges(request)]
    assert ranges == [("intro", 0, 31), ("pour", 31, 53), ("sip", 53, 72)]
    clip = render(tmp_path, request, {p1: one, p2: two})
    assert probe(clip).frames == 72
    frames = frames_of(clip)
    changes = [float(np.mean(np.abs(a - b))) for a, b in itertools.pairwise(frames)]
    cuts = sorted(np.argsort(changes)[-2:] + 1)
    assert cuts == [31, 53]
    assert {31, 53} <= set(keyframe_numbers(clip))  # a clean cut for the assembler


def test_text_card_shows_text_over_a_neutral_background(tmp_path):
    shot = one_shot("hero-title", prompt="A lighthouse on a cliff at dusk, waves crashing " * 4)
    clip = render(tmp_path, make_request([shot], family="text2video"), {})
    frame = frames_of(clip)[12]
    assert frame.std() > 15  # not a flat frame
    bright = frame > 150  # white text on a dark card (anti-aliased, small at 180p)
    assert bright.sum() > 300
    rows, cols = np.nonzero(bright)
    # text stays inside the 90 % title-safe area
    assert cols.min() >= 0.05 * W - 1 and cols.max() <= 0.95 * W + 1
    assert rows.min() >= 0.05 * H - 1 and rows.max() <= 0.95 * H + 1


def test_text_card_without_the_text_is_different(tmp_path):
    """The prompt itself is drawn: two cards differing only by prompt differ where the text is."""
    a = frames_of(render(tmp_path, make_request([one_shot(prompt="short")], family="text2video"), {}, "a.mp4"))[0]
    long_prompt = "a much longer prompt that wraps onto several lines of the card " * 3
    b = frames_of(render(tmp_path, make_request([one_shot(prompt=long_prompt)], family="text2video"), {}, "b.mp4"))[0]
    assert float(np.mean(np.abs(a - b))) > 2.0


def test_text_card_uses_the_reference_image_blurred(tmp_path):
    green = textured_image(tmp_path / "green.png", seed=9, tint=(0.1, 1.0, 0.1))
    ref = placeholder_for(green)
    body = {"prompt": "a forest", "image_list": [{"image_url": ref}]}
    clip = render(tmp_path, make_request([one_shot(prompt="a forest")], family="omni-video", body=body), {ref: green})
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    corner = frame[: H // 8, : W // 8]  # outside the text panel
    assert corner[..., 1].mean() > corner[..., 0].mean() + 15


# ------------------------------------------------------------------------------------------------
# the provider protocol


def test_provider_renders_once_caches_and_downloads(tmp_path):
    picture = textured_image(tmp_path / "a.png", seed=10)
    start = placeholder_for(picture)
    request = make_request([one_shot(start=start)], body={"image": start})
    job = Job(request=request, project_dir=tmp_path, images={start: picture})
    provider = PreviewProvider(tmp_path)

    async def scenario():
        assert await provider.lookup(job) is None
        state = await provider.create(job)
        assert state.status == "succeed" and state.units_charged == 0.0
        assert state.task_id == request.key[:16]
        cached = Path(state.video_url.removeprefix("file://"))
        assert cached.is_file() and (tmp_path / ".storyboard" / "preview-work") in cached.parents
        stamp = cached.stat().st_mtime_ns
        again = await provider.create(job)  # already there: not drawn again
        assert again == state and cached.stat().st_mtime_ns == stamp
        assert await provider.lookup(job) == state
        assert await provider.query(job, state.task_id) == state
        dest = tmp_path / "clips" / "r01.mp4"
        await provider.download(job, state, dest)
        assert probe(dest).frames == 48 and cached.is_file()
        await provider.aclose()

    asyncio.run(scenario())


def test_provider_register_element_is_stable_and_int64(tmp_path):
    provider = PreviewProvider(tmp_path)
    registration = ElementRegistration(
        placeholder="element://sha256/" + "ab" * 32,
        reference="hero",
        name="hero",
        description="the hero",
        frontal_image="image://sha256/" + "ab" * 32,
        refer_images=["image://sha256/" + "cd" * 32],
    )
    first = asyncio.run(provider.register_element(registration, {})).element_id
    assert first == asyncio.run(provider.register_element(registration, {})).element_id
    assert 0 < first < 2**63


def test_missing_image_is_a_clear_provider_error(tmp_path):
    start = "frame://last/" + "9" * 64
    request = make_request([one_shot(start=start)], body={"image": start})
    with pytest.raises(ProviderError) as caught:
        render(tmp_path, request, {})
    assert start in str(caught.value) and caught.value.money_spent is False
    assert not (tmp_path / "clip.mp4").exists()


def test_unreadable_image_is_a_clear_provider_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    start = "image://sha256/" + "1" * 64
    request = make_request([one_shot(start=start)], body={"image": start})
    with pytest.raises(ProviderError, match="cannot read image"):
        render(tmp_path, request, {start: bad})


# ------------------------------------------------------------------------------------------------
# cards laid out for the output's ratio, in a font that has the copy's letters

COPY = "Morgen früh probieren — Straße, España, 5 € – naïve Café"
INK = 180
"""Luma above which a pixel is text: the cards draw white on a dark panel over a dark picture."""


def test_safe_area_is_what_every_centre_crop_keeps():
    assert safe_area(1280, 720) == Box(0, 0, 1280, 720)
    vertical = safe_area(1280, 720, (9 / 16,))
    assert (vertical.width, vertical.height) == (404, 720) and vertical.left == 1280 - vertical.right  # centred
    assert safe_area(1280, 720, (9 / 16, 1.0, 16 / 9)) == vertical  # the narrowest crop decides
    square = safe_area(720, 1280, (1.0,))
    assert (square.left, square.width, square.height) == (0, 720, 720) and square.top == 280
    assert Box(0, 0, 100, 50).inset(TITLE_SAFE) == Box(5, 3, 95, 47)


def ink_columns(frame: np.ndarray) -> np.ndarray:
    return np.nonzero((frame > INK).any(axis=0))[0]


def landscape_card_request(tmp_path: Path) -> tuple[Request, dict[str, Path]]:
    """A 16:9 two-shot image-to-video clip whose second shot is a card (it continues the scene)."""
    dark = textured_image(tmp_path / "dark.png", seed=11, size=(1280, 720), tint=(0.3, 0.3, 0.3))
    start = placeholder_for(dark)
    shots = [
        ShotSlice(shot_id="pour-the-coffee-slowly", offset=0, rendered=1, keep=1, prompt="pour", camera="static",
                  start_image=start),
        ShotSlice(shot_id="morgen", offset=1, rendered=1, keep=1, prompt=COPY + " " + COPY),
    ]
    body = {"image": start, "prompt": "", "multi_shot": True}
    return make_request(shots, width=640, height=360, body=body), {start: dark}


def test_a_card_in_a_landscape_clip_cut_to_9_16_keeps_its_text_inside_the_crop(tmp_path):
    request, images = landscape_card_request(tmp_path)
    crop_w = 360 * 9 / 16
    left, right = (640 - crop_w) / 2, (640 + crop_w) / 2
    laid_out = frames_of(render(tmp_path, request, images, "vertical.mp4", crop_ratios=(9 / 16,)))
    whole = frames_of(render(tmp_path, request, images, "whole.mp4"))
    for number in (6, 36):  # the shot badge, then the card
        columns = ink_columns(laid_out[number])
        assert columns.size > 0, number
        assert left <= columns.min() and columns.max() < right, (number, columns.min(), columns.max())
    # laid out for the whole frame, the same card reaches past the crop: the check above can fail
    columns = ink_columns(whole[36])
    assert columns.min() < left and columns.max() >= right


def test_a_vertical_project_with_a_landscape_start_frame_shows_its_card_whole_in_the_cut(make_project):
    """End to end: plan, preview render and cut; the cut's text equals the clip's, so none is cropped."""
    from storyboard import pipeline

    project = make_project(
        f"""
        version: 1
        name: vertical
        defaults: {{aspect_ratio: "9:16", strategy: multi_shot, sound: false}}
        shots:
          - {{id: pour, duration: 3, prompt: pour the coffee, start_frame: refs/wide.png, camera: static}}
          - {{id: morgen, duration: 3, prompt: "{COPY}"}}
        """,
        images={"refs/wide.png": (640, 360)},
    )
    work, _ = pipeline.load_project(project)
    outcome = pipeline.run_sync(pipeline.run_async(work, provider="preview", review=False))
    (cut,) = outcome.outcomes[""].cuts
    clip = next(iter(outcome.render.result.clips.values()))
    clip_frames, cut_frames = frames_of(clip), frames_of(cut.video)
    facts = probe(clip)
    assert facts.width > facts.height and cut.width < cut.height  # a landscape clip in a vertical cut
    scale = cut.height / facts.height
    left = (facts.width - facts.height * cut.width / cut.height) / 2
    for number in (30, 110):  # the badge of shot pour, the card of shot morgen
        clip_ink = clip_frames[number] > INK
        columns = np.nonzero(clip_ink.any(axis=0))[0]
        assert columns.size and left <= columns.min() and columns.max() < facts.width - left, number
        cut_ink = int((cut_frames[number] > INK).sum())
        assert cut_ink == pytest.approx(clip_ink.sum() * scale**2, rel=0.25), number  # nothing of it lost
        edge = max(1, round(0.02 * cut.width))
        assert not (cut_frames[number][:, :edge] > INK).any() and not (cut_frames[number][:, -edge:] > INK).any()


def test_cards_draw_german_and_accented_copy_with_real_glyphs():
    """The preview's font maps every character of the copy (its cmap), so none is drawn as a box."""
    from storyboard.fonts import missing_characters

    for bold in (False, True):
        font = _font(24, bold)
        assert missing_characters(COPY, Path(font.path)) == "", font.path
    # and the glyphs are letters: each accented letter draws differently from the missing-glyph box
    font = _font(32)
    tofu = np.asarray(font.getmask("\uffff"))
    for letter in "üßñé€—–":
        drawn = np.asarray(font.getmask(letter))
        assert drawn.shape != tofu.shape or not np.array_equal(drawn, tofu), letter


# ------------------------------------------------------------------------------------------------
# reading camera direction (no rendering)


@pytest.mark.parametrize(
    "words, check",
    [
        ("slow push-in", lambda m: 1.0 < m.zoom_end < 1.25 and m.zoom_start == 1.0),
        ("dolly in", lambda m: m.zoom_end == pytest.approx(1.25)),
        ("fast zoom out", lambda m: m.zoom_start > 1.25 and m.zoom_end == 1.0),
        ("pan left", lambda m: m.shift_x < 0 and m.shift_y == 0),
        ("truck right", lambda m: m.shift_x > 0),
        ("crane up", lambda m: m.shift_y > 0),
        ("pedestal down", lambda m: m.shift_y < 0),
        ("orbit left around the cup", lambda m: m.shift_x < 0 and m.zoom_end > 1.0 and m.arc > 0),
        ("orbit", lambda m: m.shift_x > 0 and m.zoom_end > 1.0),
        ("slow clockwise roll", lambda m: m.roll < 0),
        ("camera rolls", lambda m: m.roll > 0),
        ("static", lambda m: m.is_static and m.breathing > 0),
        ("handheld", lambda m: m.is_static and m.handheld > 0),
        ("slow push-in and pan right", lambda m: m.zoom_end > 1.0 and m.shift_x > 0),
        (None, lambda m: m.is_static and m.reasons == ("default: static",)),
    ],
)
def test_camera_words(words, check):
    move = read_camera(words)
    assert check(move), move


def test_everyday_words_in_a_prompt_are_not_camera_moves():
    assert read_camera(None, "A chef lifts a pan of eggs; a dancer spins, the sun rising").is_static
    assert read_camera(None, "Close-up of a cup, slow push-in").zoom_end > 1.0
    assert read_camera("pan left", "dolly in").shift_x < 0  # the camera text wins over the prompt


@pytest.mark.parametrize(
    "control, check",
    [
        ({"type": "simple", "config": {"zoom": 5}}, lambda m: m.zoom_start > 1.0 and m.zoom_end == 1.0),
        ({"type": "simple", "config": {"horizontal": -5}}, lambda m: m.shift_x < 0),
        ({"type": "simple", "config": {"vertical": 5}}, lambda m: m.shift_y > 0),
        ({"type": "simple", "config": {"pan": 5}}, lambda m: m.shift_x > 0),
        ({"type": "simple", "config": {"tilt": -5}}, lambda m: m.shift_y < 0),
        ({"type": "simple", "config": {"roll": -5}}, lambda m: m.roll > 0),
        ({"type": "down_back"}, lambda m: m.zoom_start > 1.0 and m.shift_y < 0),
        ({"type": "forward_up"}, lambda m: m.zoom_end > 1.0 and m.shift_y > 0),
        ({"type": "right_turn_forward"}, lambda m: m.zoom_end > 1.0 and m.shift_x > 0),
        ({"type": "left_turn_forward"}, lambda m: m.zoom_end > 1.0 and m.shift_x < 0),
    ],
)
def test_camera_control(control, check):
    move = read_camera("static", None, control)
    assert check(move), move
