"""The preview provider: a free, offline animatic of any planned request.

Why it exists: Kling bills every generated second, so a storyboard should be seen moving, cut and
timed before a cent is spent. The preview renders each planned request into a real MP4 with the
same size, frame rate, duration, shot boundaries and audio track the Kling clip will have, so the
engine, the journal and the assembler run exactly as they will with Kling:

* image-to-video shots animate their start frame with the shot's camera direction (see
  ``storyboard.render.providers.camera``), cross-dissolving into the end frame when there is one;
* text-to-video shots become a card (shot id, duration, wrapped prompt) inside the title-safe
  area, over the blurred reference image when the request has one;
* text (cards, shot badges) is drawn in the shipped Noto Sans (``storyboard.fonts``: é, ü, ß, €,
  — draw as letters), wrapped and sized to fit, and laid out inside what every output that
  centre-crops the clip keeps (``safe_area``): a 16:9 clip cut into a 9:16 output keeps its
  middle 32 %, and its card's text stays whole there;
* multi-shot requests hold their shots back to back, each starting on the exact frame
  ``round(offset * fps)`` and carrying its shot id, with a keyframe there so a cut is clean.

How it renders (chosen by measurement, see ``benchmarks/preview.py``): Pillow draws each frame
from a pre-scaled canvas with a float crop box (``Image.resize(box=...)``, a separable resampler:
sub-pixel, so no ``zoompan``-style integer jitter), directly as BT.709 YCbCr 4:2:0 planes (half
the bytes of RGB and no conversion in ffmpeg), chroma by nearest sampling (see ``_sample``); two
worker threads draw frames ahead (Pillow
releases the GIL), and the bundled ffmpeg encodes the raw frames with x264 ``ultrafast``.
The output frame rate is the request's ``fps`` (24 for every current Kling model), exactly
``duration * fps`` frames. 4k requests preview at ``four_k_preview_height`` (1080 by default).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import (
    Image,
    ImageDraw,
    ImageFilter,
    ImageFont,
    ImageOps,
    UnidentifiedImageError,
)

from storyboard.errors import DownloadFailed, Rejected, TaskFailed
from storyboard.fonts import load_font
from storyboard.media import MediaError, ffmpeg_exe, probe
from storyboard.plan import (
    ELEMENT_SCHEME,
    FRAME_SCHEME,
    IMAGE_SCHEME,
    SPEECH_SCHEME,
    VOICE_SCHEME,
    ElementRegistration,
    Request,
    ShotSlice,
    SpeechRequest,
    VoiceRegistration,
)
from storyboard.render.providers.base import Job, RegisteredElement, SpeechResult, TaskState
from storyboard.render.providers.camera import CameraMove, Viewpoint, read_camera
from storyboard.render.providers.preview_elements import element_looks
from storyboard.workspace import Workspace

RENDERER_VERSION = "p2"
"""Part of every cached file name: bump it when the look changes so old previews are redrawn."""

FULL_HD_HEIGHT = 1080
TITLE_SAFE = 0.90
"""Text stays inside the central 90 % of what every output keeps (the classic title-safe area)."""
MIN_FONT_PX = 9
"""No text is drawn smaller: below this a card cuts its prompt with "…" instead."""
CARD_MOVE = CameraMove(zoom_start=1.0, zoom_end=1.05, reasons=("card: slow push",))
DISSOLVE_START, DISSOLVE_END = 0.2, 0.8
"""An end frame dissolves in over the middle 60 % of its shot: the shot starts on the exact
start frame and ends on the exact end frame, as Kling's first/last-frame mode promises."""
X264_PRESET = "ultrafast"
X264_CRF = 23
"""CRF 28 measured 15 % less x264 CPU but drifts a static shot by 2.4 grey levels between its
first and last frame (CRF 23: under 2): not worth it."""
DRAW_THREADS = 2
FRAMES_AHEAD = 6
"""Frames drawn ahead of the encoder; bounds memory (6 x 6 MB at 1080p)."""


# --------------------------------------------------------------------------------------------
# Sizes and timing


def preview_size(request: Request, four_k_preview_height: int = FULL_HD_HEIGHT) -> tuple[int, int]:
    """The width and height a preview of ``request`` has.

    The request's own size, except 4k (anything taller than 1080p), which previews at
    ``four_k_preview_height`` with the same aspect ratio: a 2160p animatic would cost four times
    the time and show nothing more. Both sides are even, as yuv420p needs.
    """
    width: float = request.width
    height: float = request.height
    if request.mode == "4k" or height > FULL_HD_HEIGHT:
        width = width * four_k_preview_height / height
        height = four_k_preview_height
    return _even(width), _even(height)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def shot_frame_ranges(request: Request) -> list[tuple[ShotSlice | None, int, int]]:
    """Each shot with its [first, end) frame numbers in the clip.

    A shot starts on frame ``round(offset * fps)``, the boundary the assembler cuts at; the last
    one ends at ``duration * fps``. A request without slices is one unnamed shot.
    """
    total = request.duration * request.fps
    if not request.shots:
        return [(None, 0, total)]
    starts = [0] + [min(total, max(0, round(piece.offset * request.fps))) for piece in request.shots[1:]]
    ends = starts[1:] + [total]
    return [(piece, start, max(start, end)) for piece, start, end in zip(request.shots, starts, ends)]


# --------------------------------------------------------------------------------------------
# Images


def _resolve_image(job: Job, placeholder: str) -> Path:
    """The local file behind a placeholder: ``Job.images`` first, then the request's own images."""
    if placeholder in job.images:
        path = Path(job.images[placeholder])
    elif placeholder.startswith(IMAGE_SCHEME) and placeholder[len(IMAGE_SCHEME) :] in job.request.images:
        path = job.project_dir / job.request.images[placeholder[len(IMAGE_SCHEME) :]]
    else:
        what = "the last frame of an earlier clip" if placeholder.startswith(FRAME_SCHEME) else "an image"
        raise Rejected(
            f"preview of {job.request.id}: no local file for {placeholder} ({what})",
            money_spent=False,
            hint="Render the requests it depends on first, or run `storyboard plan` again.",
        )
    if not path.is_file():
        raise Rejected(
            f"preview of {job.request.id}: image {path} for {placeholder} does not exist",
            money_spent=False,
            hint="Restore the file or fix the storyboard, then plan and render again.",
        )
    return path


def _open_image(path: Path, request_id: str) -> Image.Image:
    try:
        with Image.open(path) as raw:
            image = ImageOps.exif_transpose(raw)
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                flat = Image.new("RGB", image.size, (0, 0, 0))
                flat.paste(image, mask=image.getchannel("A"))
                return flat
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise Rejected(
            f"preview of {request_id}: cannot read image {path} ({exc})",
            money_spent=False,
            hint="Replace it with a valid PNG or JPEG.",
        ) from exc


def _body_images(body: dict) -> tuple[str | None, str | None, list[str]]:
    """Start frame, end frame and pure reference images named in a request body."""
    start = body.get("image") if isinstance(body.get("image"), str) else None
    end = body.get("image_tail") if isinstance(body.get("image_tail"), str) else None
    references: list[str] = []
    for item in body.get("image_list") or []:
        if not isinstance(item, dict):
            continue
        url = item.get("image_url") or item.get("image")
        if not isinstance(url, str):
            continue
        kind = item.get("type")
        if kind == "first_frame":
            start = url
        elif kind == "end_frame":
            end = url
        else:
            references.append(url)
    return start, end, references


# --------------------------------------------------------------------------------------------
# Text


@lru_cache(maxsize=32)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """The shipped Noto Sans (``storyboard.fonts``): the accents, dashes and euro signs of ad copy
    draw as letters, not boxes, laid out by raqm when this Pillow has it."""
    return load_font(None, max(MIN_FONT_PX, size), bold=bold)


@dataclass(frozen=True)
class Box:
    """A rectangle of the frame in pixels, ``right`` and ``bottom`` exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def inset(self, keep: float) -> Box:
        """The central ``keep`` share of this box (``TITLE_SAFE``: 90 %), rounded inwards."""
        dx = math.ceil(self.width * (1 - keep) / 2)
        dy = math.ceil(self.height * (1 - keep) / 2)
        return Box(self.left + dx, self.top + dy, self.right - dx, self.bottom - dy)


def safe_area(width: int, height: int, crop_ratios: Sequence[float] = ()) -> Box:
    """The part of a ``width`` x ``height`` clip that every centre crop to ``crop_ratios`` keeps.

    Why: an image-to-video clip follows its start frame, so a 16:9 preview in a 9:16 cut is
    centre-cropped to its middle 32 %; text laid out for the whole clip would be cut into pieces.
    The intersection of centred boxes is the narrowest width by the lowest height, centred;
    rounded inwards so no text pixel lands on a column the crop drops.
    """
    keep_w, keep_h = float(width), float(height)
    for ratio in crop_ratios:
        if ratio <= 0:
            continue
        if width / height > ratio:
            keep_w = min(keep_w, height * ratio)
        else:
            keep_h = min(keep_h, width / ratio)
    left = math.ceil((width - keep_w) / 2)
    top = math.ceil((height - keep_h) / 2)
    return Box(left, top, width - left, height - top)


def _text_block_width(fonts_and_lines: Iterable[tuple[ImageFont.FreeTypeFont, list[str]]]) -> float:
    return max((font.getlength(line) for font, lines in fonts_and_lines for line in lines), default=0.0)


def _wrap(text: str, font, max_width: float) -> list[str]:
    """Greedy word wrap by measured width; words wider than a line are split."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while font.getlength(word) > max_width and len(word) > 1:
                cut = len(word)
                while cut > 1 and font.getlength(word[:cut]) > max_width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return [line for line in lines if line.strip()] or [""]


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return round((ascent + descent) * 1.15)


def _shot_badge(label: str, area: Box) -> tuple[Image.Image, tuple[int, int]]:
    """A small shot-id tag in the top-left corner of the title-safe ``area``, so every shot says
    which it is; narrowed (smaller font, then cut with "…") to fit inside ``area``."""
    base = min(area.width, area.height)
    font = _font(round(base * 0.06))
    pad = max(2, round(base * 0.015))
    room = max(1, area.width - 2 * pad)
    while font.size > MIN_FONT_PX and font.getlength(label) > room:
        font = _font(font.size - 1)
    if font.getlength(label) > room:
        while len(label) > 1 and font.getlength(label + "…") > room:
            label = label[:-1]
        label += "…"
    text_width = math.ceil(font.getlength(label))
    ascent, descent = font.getmetrics()
    badge = Image.new("RGBA", (min(area.width, text_width + 2 * pad), ascent + descent + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(badge)
    draw.rounded_rectangle((0, 0, badge.width - 1, badge.height - 1), radius=pad, fill=(0, 0, 0, 150))
    draw.text((pad, pad), label, font=font, fill=(255, 255, 255, 235))
    return badge, (area.left, area.top)


def _fit_prompt(prompt: str, room_w: float, room_h: float, largest: int, smallest: int) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The prompt wrapped at the largest size from ``largest`` down to ``smallest`` at which it
    fits ``room_h``; at the smallest size, the lines that fit, the last ending in "…"."""
    size = largest
    while True:
        font = _font(size)
        lines = _wrap(prompt, font, room_w)
        fits = len(lines) * _line_height(font) <= room_h
        if fits or size <= smallest:
            break
        size = max(smallest, size - max(1, size // 10))
    room = max(1, int(room_h // _line_height(font)))
    if len(lines) > room:
        lines = lines[:room]
        last = lines[-1]
        while last and font.getlength(last + " …") > room_w:
            last = last[:-1]
        lines[-1] = last.rstrip() + " …"
    return font, lines


def _card_overlay(title: str, subtitle: str, prompt: str, area: Box) -> tuple[Image.Image, tuple[int, int]]:
    """The text block of a card, wrapped and sized to fit the title-safe ``area`` (which already
    excludes what any output crops away), centred in it."""
    base = min(area.width, area.height)
    pad = max(2, round(base * 0.04))
    inner_w = max(1, area.width - 2 * pad)
    title_font = _font(round(base * 0.09), bold=True)
    while title_font.size > MIN_FONT_PX and len(_wrap(title, title_font, inner_w)) > 2:
        title_font = _font(title_font.size - 1, bold=True)
    small_font = _font(round(base * 0.045))
    title_lines = _wrap(title, title_font, inner_w)[:2]
    subtitle_lines = _wrap(subtitle, small_font, inner_w)[:3]
    gap = round(base * 0.03)
    used = len(title_lines) * _line_height(title_font) + len(subtitle_lines) * _line_height(small_font) + gap + 2 * pad
    prompt_font, prompt_lines = _fit_prompt(
        prompt or "(no prompt)", inner_w, area.height - used, round(base * 0.055), round(base * 0.032)
    )
    widest = _text_block_width([(title_font, title_lines), (small_font, subtitle_lines), (prompt_font, prompt_lines)])
    block_w = min(area.width, math.ceil(2 * pad + widest))
    block_h = min(area.height, used + len(prompt_lines) * _line_height(prompt_font))
    overlay = Image.new("RGBA", (block_w, block_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rounded_rectangle((0, 0, block_w - 1, block_h - 1), radius=pad // 2, fill=(10, 12, 16, 165))
    y = pad
    for line in title_lines:
        draw.text((pad, y), line, font=title_font, fill=(255, 255, 255, 255))
        y += _line_height(title_font)
    for line in subtitle_lines:
        draw.text((pad, y), line, font=small_font, fill=(255, 214, 120, 255))
        y += _line_height(small_font)
    y += gap
    for line in prompt_lines:
        draw.text((pad, y), line, font=prompt_font, fill=(232, 236, 242, 255))
        y += _line_height(prompt_font)
    return overlay, (area.left + (area.width - block_w) // 2, area.top + (area.height - block_h) // 2)


@lru_cache(maxsize=8)
def _neutral_background(width: int, height: int) -> Image.Image:
    """A dark slate gradient with a soft vignette: calm, clearly not a real shot."""
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    vignette = 1.0 - 0.35 * np.clip(xs**2 + ((ys - 0.5) * 2) ** 2, 0, 2) / 2
    top = np.array([52, 62, 76], dtype=np.float32)
    bottom = np.array([18, 21, 27], dtype=np.float32)
    colour = top + (bottom - top) * ys[..., None]
    pixels = np.clip(colour * vignette[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


# --------------------------------------------------------------------------------------------
# Shots as frame sources


@dataclass(frozen=True)
class _Planes:
    """A picture as the encoder takes it: BT.709 limited-range Y at full size, Cb and Cr at half.

    Why planes and not RGB: every per-frame operation (crop-resize, dissolve, overlay) then
    touches 1.5 bytes per pixel instead of Pillow's 4, and ffmpeg needs no colour conversion;
    measured about twice as fast as drawing RGB frames.
    """

    y: Image.Image
    cb: Image.Image
    cr: Image.Image

    def tobytes(self) -> tuple[bytes, bytes, bytes]:
        """The three planes' bytes, written to the encoder one after the other (no joined copy)."""
        return self.y.tobytes(), self.cb.tobytes(), self.cr.tobytes()


_KB = 224.0 / 255.0 / 1.8556
_KR = 224.0 / 255.0 / 1.5748
_LUMA = (0.2126, 0.7152, 0.0722)
_BT709_LIMITED = (
    _LUMA[0] * 219 / 255, _LUMA[1] * 219 / 255, _LUMA[2] * 219 / 255, 16.0,
    -_LUMA[0] * _KB, -_LUMA[1] * _KB, (1 - _LUMA[2]) * _KB, 128.0,
    (1 - _LUMA[0]) * _KR, -_LUMA[1] * _KR, -_LUMA[2] * _KR, 128.0,
)
"""RGB -> BT.709 limited-range Y, Cb, Cr as one affine colour matrix (Pillow applies it in C)."""


def _to_planes(image: Image.Image) -> _Planes:
    """RGB -> BT.709 limited-range YCbCr 4:2:0 (chroma averaged over 2x2 blocks)."""
    image = image.convert("RGB")
    if image.width % 2 or image.height % 2:
        image = image.crop((0, 0, max(2, image.width - image.width % 2), max(2, image.height - image.height % 2)))
    y, cb, cr = image.convert("RGB", matrix=_BT709_LIMITED).split()
    return _Planes(y, cb.reduce(2), cr.reduce(2))


@dataclass(frozen=True)
class _Overlay:
    """A static RGBA element (badge, text panel) pre-split into planes and alpha masks."""

    planes: _Planes
    alpha: Image.Image
    alpha_half: Image.Image
    position: tuple[int, int]

    @classmethod
    def of(cls, image: Image.Image, position: tuple[int, int]) -> _Overlay:
        x, y = position[0] - position[0] % 2, position[1] - position[1] % 2  # chroma-aligned
        if image.width % 2 or image.height % 2:
            padded = Image.new("RGBA", (image.width + image.width % 2, image.height + image.height % 2), (0, 0, 0, 0))
            padded.paste(image, (0, 0))
            image = padded
        alpha = image.getchannel("A")
        half = alpha.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)
        return cls(_to_planes(image.convert("RGB")), alpha, half, (x, y))

    def paste_on(self, frame: _Planes) -> None:
        x, y = self.position
        frame.y.paste(self.planes.y, (x, y), self.alpha)
        frame.cb.paste(self.planes.cb, (x // 2, y // 2), self.alpha_half)
        frame.cr.paste(self.planes.cr, (x // 2, y // 2), self.alpha_half)


def _sample(
    plane: Image.Image, size: tuple[int, int], centre: tuple[float, float], k: float, roll: float, *, sharp: bool = True
) -> Image.Image:
    """``size`` pixels of ``plane`` around ``centre``, ``k`` plane pixels per output pixel, turned.

    ``sharp`` (luma): without roll a float crop box given to Pillow's separable resampler
    (anti-aliased, sub-pixel), with roll an affine map (bilinear). Not ``sharp`` (chroma): an
    affine map with nearest sampling, a tenth of the cost: chroma is already at half resolution
    (4:2:0) and the eye resolves colour far more coarsely than brightness, so its steps of one
    chroma pixel do not show, while sub-pixel luma carries the smooth motion. Measured: chroma
    was a third of the preview's drawing time.
    """
    width, height = size
    centre_x, centre_y = centre
    if sharp and not roll:
        half_w = min(width * k / 2, plane.width / 2)
        half_h = min(height * k / 2, plane.height / 2)
        # Float rounding may put an edge a hair outside the canvas: slide the box back in.
        centre_x = min(max(centre_x, half_w), plane.width - half_w)
        centre_y = min(max(centre_y, half_h), plane.height - half_h)
        box = (centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h)
        return plane.resize(size, Image.Resampling.BILINEAR, box=box)
    angle = math.radians(roll)
    a, b = k * math.cos(angle), -k * math.sin(angle)
    d, e = k * math.sin(angle), k * math.cos(angle)
    c = centre_x - a * width / 2 - b * height / 2
    f = centre_y - d * width / 2 - e * height / 2
    resample = Image.Resampling.BILINEAR if sharp else Image.Resampling.NEAREST
    return plane.transform(size, Image.Transform.AFFINE, (a, b, c, d, e, f), resample)


class _CameraCanvas:
    """An image pre-scaled once so that every frame of a move is a sub-pixel crop of it.

    The move is fitted first: its zoom is raised by one constant factor until every viewpoint of
    the shot (offsets, roll included) stays inside the image, so no frame shows a border. The
    canvas is then scaled to the shot's *smallest* zoom: a pan or a static shot samples it 1:1
    (sharp, and the cheapest resampling), a push-in enlarges it by at most its zoom range.
    Scaling to the largest zoom instead (every frame a reduction) measured 24 % slower for a
    softness that a preview does not need to avoid.
    """

    def __init__(
        self, image: Image.Image, move: CameraMove, width: int, height: int, frames: int, *, sharp: bool = True
    ) -> None:
        self.width, self.height = width, height
        cover = max(width / image.width, height / image.height)
        base_w, base_h = image.width * cover, image.height * cover  # output pixels at zoom 1
        moves = [move.at(i / max(1, frames - 1)) for i in range(frames)]
        scale_up = 1.0
        for view in moves:
            scale_up = max(scale_up, self._zoom_needed(view, base_w, base_h) / view.zoom)
        self.views = [Viewpoint(zoom=v.zoom * scale_up, x=v.x, y=v.y, roll=v.roll) for v in moves]
        if sharp:
            prescale = min(v.zoom for v in self.views)
            size = (_even(base_w * prescale), _even(base_h * prescale))
            image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
        # else: blurred backgrounds have no detail to lose; keep them small, enlarging is cheap.
        self.size = image.size
        self.canvas = _to_planes(image)
        self.factor = image.width / base_w  # canvas pixels per output pixel at zoom 1

    def _zoom_needed(self, view: Viewpoint, base_w: float, base_h: float) -> float:
        angle = math.radians(view.roll)
        span_w = self.width * abs(math.cos(angle)) + self.height * abs(math.sin(angle))
        span_h = self.width * abs(math.sin(angle)) + self.height * abs(math.cos(angle))
        room_w = base_w - 2 * abs(view.x) * self.width
        room_h = base_h - 2 * abs(view.y) * self.height
        if room_w <= 1 or room_h <= 1:
            return 1e6  # cannot happen after _fit_move; would show as an extreme zoom, not a crash
        return max(span_w / room_w, span_h / room_h, 1.0)

    def match(self, other: Image.Image) -> _Planes:
        """``other`` cover-fitted to this canvas, so the same crop frames it the same way."""
        return _to_planes(ImageOps.fit(other, self.size, Image.Resampling.BICUBIC))

    def draw(self, index: int, canvas: _Planes | None = None) -> _Planes:
        view = self.views[index]
        source = canvas or self.canvas
        k = self.factor / view.zoom  # canvas pixels per output pixel
        centre_x = self.size[0] / 2 + view.x * self.width * self.factor
        centre_y = self.size[1] / 2 - view.y * self.height * self.factor
        full = (self.width, self.height)
        half = (self.width // 2, self.height // 2)
        return _Planes(
            _sample(source.y, full, (centre_x, centre_y), k, view.roll),
            _sample(source.cb, half, (centre_x / 2, centre_y / 2), k, view.roll, sharp=False),
            _sample(source.cr, half, (centre_x / 2, centre_y / 2), k, view.roll, sharp=False),
        )


def _fit_move(move: CameraMove, image: Image.Image, width: int, height: int) -> CameraMove:
    """Shrink a move's travel when it would leave the picture even at a strong zoom."""
    cover = max(width / image.width, height / image.height)
    spare_x = image.width * cover / width  # picture width in frame widths (>= 1)
    spare_y = image.height * cover / height
    limit_x, limit_y = 0.3 * spare_x, 0.3 * spare_y  # view centre stays in the middle 60 %
    reach_x = abs(move.shift_x) / 2 + 3 * move.handheld
    reach_y = abs(move.shift_y) / 2 + abs(move.arc) + 3 * move.handheld
    k = min(1.0, limit_x / reach_x if reach_x else 1.0, limit_y / reach_y if reach_y else 1.0)
    if k >= 1.0:
        return move
    return CameraMove(
        zoom_start=move.zoom_start,
        zoom_end=move.zoom_end,
        shift_x=move.shift_x * k,
        shift_y=move.shift_y * k,
        arc=move.arc * k,
        roll=move.roll,
        breathing=move.breathing,
        handheld=move.handheld * k,
        reasons=move.reasons,
    )


def _smooth(t: float) -> float:
    t = min(1.0, max(0.0, t))
    return t * t * (3 - 2 * t)


@dataclass
class _Shot:
    """One shot's frames: a camera canvas, an optional end canvas, and static overlays."""

    start: int
    frames: int
    camera: _CameraCanvas
    end_canvas: _Planes | None
    overlays: list[_Overlay]

    def draw(self, index: int) -> tuple[bytes, bytes, bytes]:
        frame = self.camera.draw(index)
        if self.end_canvas is not None:
            t = index / max(1, self.frames - 1)
            alpha = _smooth((t - DISSOLVE_START) / (DISSOLVE_END - DISSOLVE_START))
            if alpha >= 1.0:
                frame = self.camera.draw(index, self.end_canvas)
            elif alpha > 0.0:
                other = self.camera.draw(index, self.end_canvas)
                frame = _Planes(
                    Image.blend(frame.y, other.y, alpha),
                    Image.blend(frame.cb, other.cb, alpha),
                    Image.blend(frame.cr, other.cr, alpha),
                )
        for overlay in self.overlays:
            overlay.paste_on(frame)
        return frame.tobytes()


def _build_shots(job: Job, width: int, height: int, crop_ratios: Sequence[float] = ()) -> list[_Shot]:
    request = job.request
    text_area = safe_area(width, height, crop_ratios).inset(TITLE_SAFE)
    body_start, body_end, references = _body_images(request.body)
    ranges = shot_frame_ranges(request)
    single_control = request.body.get("camera_control") if isinstance(request.body.get("camera_control"), dict) else None
    shots: list[_Shot] = []
    for number, (piece, start, end) in enumerate(ranges):
        frames = end - start
        if frames <= 0:
            continue
        shot_id = piece.shot_id if piece else request.id
        prompt = (piece.prompt if piece else None) or str(request.body.get("prompt") or "")
        start_image = piece.start_image if piece and piece.start_image else None
        end_image = piece.end_image if piece and piece.end_image else None
        if start_image is None and number == 0:
            start_image = body_start
        if end_image is None and number == len(ranges) - 1:
            end_image = body_end
        if start_image is None and end_image is not None:
            start_image, end_image = end_image, None  # end-frame-only: animate the end frame
        if start_image is not None:
            picture = _open_image(_resolve_image(job, start_image), request.id)
            move = read_camera(piece.camera if piece else None, prompt, single_control)
            move = _fit_move(move, picture, width, height)
            camera = _CameraCanvas(picture, move, width, height, frames)
            end_canvas = None
            if end_image is not None:
                end_canvas = camera.match(_open_image(_resolve_image(job, end_image), request.id))
            badge = _Overlay.of(*_shot_badge(shot_id, text_area))
            shots.append(_Shot(start, frames, camera, end_canvas, [badge]))
            continue
        # A later shot of a multi-shot image-to-video request continues from the request's start
        # frame (Kling carries the scene on), so its card sits over that image, not a neutral one.
        backdrop = references[0] if references else body_start
        looks = element_looks(job) if not backdrop else []  # a subject given only as elements
        if backdrop or looks:
            reference = _open_image(_resolve_image(job, backdrop), request.id) if backdrop else looks[0]
            small = ImageOps.fit(reference, (max(16, width // 4), max(16, height // 4)), Image.Resampling.BILINEAR)
            small = small.filter(ImageFilter.GaussianBlur(radius=max(2, min(width, height) // 80)))
            background = Image.blend(small, Image.new("RGB", small.size, (0, 0, 0)), 0.35)
        else:
            background = _neutral_background(max(16, width // 4), max(16, height // 4))
        keep = piece.keep if piece else float(request.duration)
        rendered = piece.rendered if piece else float(request.duration)
        subtitle = f"{rendered:g} s"
        if abs(keep - rendered) > 1e-6:
            subtitle += f" (cut keeps {keep:g} s)"
        if len(ranges) > 1:
            subtitle += f" · shot {number + 1}/{len(ranges)} of {request.id}"
        if body_start and not references:
            subtitle += " · continues the scene"
        else:
            subtitle += " · over its element" if looks else " · text to video"
        camera = _CameraCanvas(background, CARD_MOVE, width, height, frames, sharp=False)
        card = _Overlay.of(*_card_overlay(shot_id, subtitle, prompt, text_area))
        shots.append(_Shot(start, frames, camera, None, [card]))
    return shots


# --------------------------------------------------------------------------------------------
# Encoding


def _frames_in_order(shots: list[_Shot]) -> Iterator[tuple[bytes, bytes, bytes]]:
    """Every frame of the clip (its Y, Cb, Cr planes), drawn a few ahead on worker threads, in order."""
    tasks: list[Callable[[], tuple[bytes, bytes, bytes]]] = [
        partial(shot.draw, i) for shot in shots for i in range(shot.frames)
    ]
    with ThreadPoolExecutor(max_workers=DRAW_THREADS, thread_name_prefix="preview-draw") as pool:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.submit(task))
            if len(pending) >= FRAMES_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _ffmpeg_command(
    request: Request, width: int, height: int, out: Path, keyframes: list[int], comment: str
) -> list[str]:
    total_frames = request.duration * request.fps
    command = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(request.fps),
        "-i", "pipe:0",
    ]
    if request.sound:
        command += ["-f", "lavfi", "-t", str(request.duration), "-i", "anullsrc=r=48000:cl=stereo"]
    command += ["-map", "0:v"]
    if request.sound:
        command += ["-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"]
    command += [
        "-frames:v", str(total_frames),
        "-c:v", "libx264", "-preset", X264_PRESET, "-crf", str(X264_CRF), "-pix_fmt", "yuv420p",
        "-color_range", "tv", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
        "-r", str(request.fps),
    ]
    if keyframes:
        # By frame number, not time: a printed time can round onto the next frame.
        command += ["-force_key_frames", "expr:" + "+".join(f"eq(n,{n})" for n in keyframes)]
    command += ["-metadata", f"comment={comment}", "-movflags", "+faststart", "-f", "mp4", str(out)]
    return command


def render_preview(
    job: Job, dest: Path, *, four_k_preview_height: int = FULL_HD_HEIGHT, crop_ratios: Sequence[float] = ()
) -> None:
    """Render ``job``'s request as an animatic MP4 at ``dest`` (written atomically).

    ``crop_ratios``: the aspect ratios (width / height) of the outputs that will centre-crop this
    clip; cards and badges are laid out inside what all of them keep (``safe_area``). Raises ``Rejected`` when an image is missing or unreadable and ``TaskFailed`` when ffmpeg fails
    (nothing is ever spent); ``dest`` is then left untouched.
    """
    request = job.request
    width, height = preview_size(request, four_k_preview_height)
    shots = _build_shots(job, width, height, crop_ratios)
    keyframes = [shot.start for shot in shots[1:]]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".mp4", dir=dest.parent)
    os.close(fd)
    temp = Path(temp_name)
    comment = f"storyboard preview {RENDERER_VERSION} of {request.id} ({request.key[:16]})"
    command = _ffmpeg_command(request, width, height, temp, keyframes, comment)
    try:
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
            assert process.stdin is not None
            broken = False
            try:
                for planes in _frames_in_order(shots):
                    for plane in planes:
                        process.stdin.write(plane)
            except BrokenPipeError:
                broken = True
            finally:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    broken = True
                code = process.wait()
            if code != 0 or broken:
                errors.seek(0)
                tail = errors.read().decode("utf-8", "replace").strip().splitlines()[-5:]
                raise TaskFailed(
                    f"preview of {request.id}: ffmpeg failed (exit {code}): {' | '.join(tail) or 'no message'}",
                    money_spent=False,
                    hint="This is a bug in the preview renderer; please report it with the plan.",
                )
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# The provider


class PreviewProvider:
    """The ``Provider`` that renders locally, synchronously, for free (``units_charged=0``).

    Clips are cached under ``<project>/.storyboard/preview-work/`` by content key, renderer
    version, size and text area, so a rerun, a ``lookup`` after a crash, or a second plan with the
    same request reuses the file instead of drawing it again.

    ``crop_ratios`` maps a request key to the ratios of the outputs that centre-crop its clip
    (``pipeline.preview_crop_ratios``); a request not in it lays its text out on the whole frame.
    """

    name = "preview"
    free = True

    def __init__(
        self,
        project_dir: Path,
        *,
        four_k_preview_height: int = FULL_HD_HEIGHT,
        crop_ratios: dict[str, Sequence[float]] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.four_k_preview_height = four_k_preview_height
        self.crop_ratios = {key: tuple(ratios) for key, ratios in (crop_ratios or {}).items()}
        self.work_dir = Workspace.at(self.project_dir).preview_work_dir
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def for_project(cls, project_dir: Path, **options: Any) -> PreviewProvider:
        """The preview of one project (its cache lives in the project folder); no keys needed."""
        return cls(project_dir, **options)

    def clip_path(self, job: Job) -> Path:
        width, height = preview_size(job.request, self.four_k_preview_height)
        area = safe_area(width, height, self.crop_ratios.get(job.request.key, ()))
        laid_out = "" if (area.width, area.height) == (width, height) else f"-text{area.width}x{area.height}"
        return self.work_dir / f"{job.request.key}-{RENDERER_VERSION}-{width}x{height}{laid_out}.mp4"

    def _state(self, job: Job, path: Path) -> TaskState:
        return TaskState(
            task_id=job.request.key[:16],
            status="succeed",
            video_url=path.resolve().as_uri(),
            units_charged=0.0,
            message="preview rendered locally",
            duration=float(job.request.duration),
        )

    def _render_once(self, job: Job) -> Path:
        path = self.clip_path(job)
        with self._locks_guard:
            lock = self._locks.setdefault(str(path), threading.Lock())
        with lock:  # two jobs with one key draw the clip once
            if not self._is_good(path):
                from storyboard.render.providers.preview_kinds import renderer_for  # motion control, avatar, ...

                special = renderer_for(job.request)
                if special is not None:
                    special(job, path, four_k_preview_height=self.four_k_preview_height)
                else:
                    render_preview(
                        job, path, four_k_preview_height=self.four_k_preview_height,
                        crop_ratios=self.crop_ratios.get(job.request.key, ()),
                    )
        return path

    @staticmethod
    def _is_good(path: Path) -> bool:
        try:
            probe(path, count_frames=False)
            return True
        except MediaError:
            return False

    async def create(self, job: Job) -> TaskState:
        path = await asyncio.to_thread(self._render_once, job)
        return self._state(job, path)

    async def query(self, job: Job, task_id: str) -> TaskState:
        path = self.clip_path(job)
        if path.is_file():
            return self._state(job, path)
        return TaskState(
            task_id=task_id,
            status="failed",
            units_charged=0.0,
            message=f"preview clip {path} is gone; render the request again",
        )

    async def lookup(self, job: Job, *, thorough: bool = True) -> TaskState | None:
        """The cached clip of this request, if drawn already (a local file check either way)."""
        path = self.clip_path(job)
        good = await asyncio.to_thread(self._is_good, path)
        return self._state(job, path) if good else None

    async def download(self, job: Job, state: TaskState, dest: Path) -> None:
        """Copy the cached clip to ``dest`` (a copy, so the cache still answers ``lookup``)."""
        source = self.clip_path(job)
        if state.video_url and state.video_url.startswith("file://"):
            source = Path(unquote(urlparse(state.video_url).path))
        if not source.is_file():
            raise DownloadFailed(
                f"preview of {job.request.id}: clip {source} is missing",
                money_spent=False,
                retryable=False,
                hint="Render the request again (previews are free).",
            )
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, source, dest)

    async def register_voice(self, registration: VoiceRegistration) -> str:
        """A stable fake voice id from the voice's digest (preview needs no account and speaks no voice)."""
        return str(int(registration.placeholder.removeprefix(VOICE_SCHEME)[:15], 16) or 1)

    async def synthesize(self, speech: SpeechRequest) -> SpeechResult:
        """Free, local "TTS": a speech-like stand-in as long as the plan's estimate (``preview_kinds``),
        cached in the preview's work folder by the speech's digest."""
        from storyboard.render.providers.preview_kinds import synthesize_speech

        digest = speech.placeholder.removeprefix(SPEECH_SCHEME)
        path = self.work_dir / f"speech-{digest}-{RENDERER_VERSION}.wav"
        seconds = await asyncio.to_thread(synthesize_speech, speech, path)
        return SpeechResult(audio_id=f"preview-{digest[:16]}", duration=seconds, url=path.resolve().as_uri(), path=path)

    async def register_element(self, registration: ElementRegistration, images: dict[str, Path]) -> RegisteredElement:
        """A stable fake element id from the frontal image's digest, or a video element's identity
        (preview needs no account, and clones no voice)."""
        placeholder = registration.frontal_image or registration.placeholder
        if placeholder.startswith(ELEMENT_SCHEME):
            digest = placeholder[len(ELEMENT_SCHEME) :]
        elif placeholder.startswith(IMAGE_SCHEME):
            digest = placeholder[len(IMAGE_SCHEME) :]
        elif placeholder in images:
            digest = hashlib.sha256(Path(images[placeholder]).read_bytes()).hexdigest()
        else:
            digest = hashlib.sha256(placeholder.encode()).hexdigest()
        return RegisteredElement(int(digest[:15], 16) or 1)

    async def aclose(self) -> None:
        return None
