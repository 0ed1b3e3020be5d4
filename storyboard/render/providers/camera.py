"""Camera direction, read from Kling's structured ``camera_control`` and from plain words.

Why its own module: a shot's camera is written two ways, as Kling's ``camera_control`` object
(kling-api.md 4.7) and as words in the shot's ``camera`` text or prompt ("slow push-in",
"orbit left", "crane up"). The preview provider must animate either into the same thing, a
``CameraMove``; keeping the reading separate from the drawing lets each be tested on its own
and lets other stages (a plan table, a lint) describe a shot's camera without rendering it.

Conventions of a ``CameraMove`` (all relative to the output frame, screen axes):

* ``zoom``: 1.0 shows the whole covered frame; 1.25 shows 80 % of it (content looks 25 % bigger).
* ``shift_x`` / ``shift_y``: how far the *view centre* travels over the shot, in output frame
  widths / heights. Positive x = the camera looks further right (content slides left);
  positive y = the camera looks further up (content slides down).
* ``roll``: degrees the camera turns over the shot, positive = counter-clockwise camera roll
  (the picture appears to turn clockwise).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

SLOW_WORDS = ("slow", "slowly", "gentle", "gently", "subtle", "subtly", "soft", "lazy", "gradual")
FAST_WORDS = ("fast", "quick", "quickly", "rapid", "rapidly", "whip", "swift", "sudden", "snap")

PUSH_ZOOM = 1.25
"""A plain push-in ends 25 % closer; 'slow' scales every amount by 0.6, 'fast' by 1.6."""
TRAVEL = 0.16
"""A plain pan/truck/tilt/crane moves the view by 16 % of the frame."""
ROLL_DEGREES = 8.0
ORBIT_TRAVEL = 0.14
ORBIT_ZOOM = 1.08
BREATHING = 0.015
"""A static shot still breathes: in and back out by 1.5 %, so a preview never looks frozen."""
HANDHELD = 0.006
"""Handheld wobble amplitude in frame sizes (translation only: it stays on the fast path)."""


@dataclass(frozen=True)
class Viewpoint:
    """Where the camera looks at one instant: zoom, view-centre offset (frames), roll (degrees)."""

    zoom: float
    x: float
    y: float
    roll: float


@dataclass(frozen=True)
class CameraMove:
    """A shot's camera motion, start to end, eased in and out."""

    zoom_start: float = 1.0
    zoom_end: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    arc: float = 0.0
    """Vertical bow of an orbit's path (frames at mid-shot)."""
    roll: float = 0.0
    breathing: float = 0.0
    handheld: float = 0.0
    reasons: tuple[str, ...] = field(default=())
    """What was recognised, e.g. ('camera text: push-in',), for notes and tests."""

    @property
    def is_static(self) -> bool:
        return (
            self.zoom_start == self.zoom_end
            and not self.shift_x
            and not self.shift_y
            and not self.roll
            and not self.arc
        )

    def at(self, t: float) -> Viewpoint:
        """The viewpoint at ``t`` in [0, 1] of the shot.

        Eased with a raised cosine so moves start and stop without a jolt; zoom is interpolated
        geometrically so a push-in looks like constant speed to the eye.
        """
        t = min(1.0, max(0.0, t))
        eased = 0.5 - 0.5 * math.cos(math.pi * t)
        zoom = self.zoom_start * (self.zoom_end / self.zoom_start) ** eased
        zoom *= 1.0 + self.breathing * (0.5 - 0.5 * math.cos(2 * math.pi * t))
        x = self.shift_x * (eased - 0.5)
        y = self.shift_y * (eased - 0.5) + self.arc * math.sin(math.pi * eased)
        if self.handheld:
            # Incommensurate slow sines: a deterministic, organic drift (same clip every run).
            x += self.handheld * (math.sin(2 * math.pi * 0.53 * t * 5) + 0.5 * math.sin(2 * math.pi * 1.31 * t * 5))
            y += self.handheld * (math.sin(2 * math.pi * 0.41 * t * 5 + 1.0) + 0.5 * math.sin(2 * math.pi * 1.07 * t * 5))
        return Viewpoint(zoom=zoom, x=x, y=y, roll=self.roll * (eased - 0.5))


STATIC = CameraMove(breathing=BREATHING, reasons=("default: static",))


def _speed(text: str, start: int, end: int) -> float:
    """'slow' / 'fast' near a camera phrase (the 20 characters before it) scale its amount."""
    window = text[max(0, start - 20) : end + 12]
    words = set(re.findall(r"[a-z]+", window))
    if words & set(FAST_WORDS):
        return 1.6
    if words & set(SLOW_WORDS):
        return 0.6
    return 1.0


_LEFT = r"(?:left|leftward|leftwards|to the left)"
_RIGHT = r"(?:right|rightward|rightwards|to the right)"
_UP = r"(?:up|upward|upwards|rises|rising)"
_DOWN = r"(?:down|downward|downwards|lowers|descending)"

# (pattern, effect, trusted in prompts); effects add up, so "slow push-in and pan left" does both.
# Cinematography terms are read anywhere; everyday verbs ("moves left", "spins", "rising sun",
# "a pan of eggs") only in the shot's ``camera`` text, where they can only mean the camera.
_PHRASES: list[tuple[str, str, bool]] = [
    ((r"\b(?:push(?:es|ing)?[- ]?in|dolly(?:ing)?[- ]?in|zoom(?:s|ing)?[- ]?in|punch(?:es)?[- ]?in|"
     r"push(?:es|ing)? forward|dolly(?:ing)? forward|creep(?:s|ing)? in)\b"), "in", True),
    (r"\b(?:mov(?:e|es|ing) (?:in|closer|forward)|track(?:s|ing)? in|close[- ]in)\b", "in", False),
    (r"\b(?:pull(?:s|ing)?[- ]?(?:out|back)|dolly(?:ing)?[- ]?(?:out|back)|zoom(?:s|ing)?[- ]?out)\b", "out", True),
    (r"\b(?:pull(?:s|ing)? away|track(?:s|ing)? (?:out|back)|back(?:s|ing)? away|reveal(?:s|ing)?)\b", "out", False),
    (rf"\b(?:orbit(?:s|ing)?|arc(?:s|ing)?|circl(?:e|es|ing)(?: around)?)(?: (?:around|round) [a-z ]{{0,20}}?)?\s*{_LEFT}", "orbit-left", True),
    (rf"\b(?:orbit(?:s|ing)?|arc(?:s|ing)?|circl(?:e|es|ing)(?: around)?)(?: (?:around|round) [a-z ]{{0,20}}?)?\s*{_RIGHT}", "orbit-right", True),
    (r"\b(?:orbit(?:s|ing)?|arc shot)\b", "orbit", True),
    (r"\b(?:circl(?:e|es|ing) around|360)\b", "orbit", False),
    (rf"\b(?:pan(?:s|ning)?|truck(?:s|ing)?|crab(?:s|bing)?|dolly(?:ing)?)\s*{_LEFT}", "left", True),
    (rf"\b(?:track(?:s|ing)?|slid(?:e|es|ing)|strafe(?:s)?|mov(?:e|es|ing)|drift(?:s|ing)?|sweep(?:s|ing)?)\s*{_LEFT}", "left", False),
    (rf"\b(?:pan(?:s|ning)?|truck(?:s|ing)?|crab(?:s|bing)?|dolly(?:ing)?)\s*{_RIGHT}", "right", True),
    (rf"\b(?:track(?:s|ing)?|slid(?:e|es|ing)|strafe(?:s)?|mov(?:e|es|ing)|drift(?:s|ing)?|sweep(?:s|ing)?)\s*{_RIGHT}", "right", False),
    (rf"\b(?:tilt(?:s|ing)?|crane(?:s|ing)?|pedestal(?:s|ing)?|boom(?:s|ing)?|jib(?:s|bing)?)\s*{_UP}", "up", True),
    (rf"\b(?:rais(?:e|es|ing)|lift(?:s|ing)?|mov(?:e|es|ing))\s*{_UP}|\brising\b|\bascend(?:s|ing)?\b", "up", False),
    (rf"\b(?:tilt(?:s|ing)?|crane(?:s|ing)?|pedestal(?:s|ing)?|boom(?:s|ing)?|jib(?:s|bing)?)\s*{_DOWN}", "down", True),
    (rf"\b(?:lower(?:s|ing)?|mov(?:e|es|ing))\s*{_DOWN}|\bdescend(?:s|ing)?\b", "down", False),
    (r"\b(?:counter[- ]?clockwise|anti[- ]?clockwise) (?:roll|rotation|spin)|\broll(?:s|ing)? (?:counter|anti)[- ]?clockwise\b", "roll-ccw", False),
    (r"\b(?:camera roll(?:s|ing)?|barrel roll|dutch (?:angle|tilt))\b", "roll", True),
    (r"\b(?:roll(?:s|ing)?|rotat(?:e|es|ing)|spin(?:s|ning)?)\b", "roll", False),
    (r"\b(?:hand[- ]?held|shaky cam(?:era)?)\b", "handheld", True),
    (r"\b(?:shaky|shaking|documentary style)\b", "handheld", False),
    ((r"\b(?:static (?:shot|camera|frame|wide|close-up)|locked[- ]?off|tripod shot|still camera|fixed camera|"
     r"no camera movement|stationary camera)\b"), "static", True),
    (r"\b(?:static|still|fixed|locked)\b", "static", False),
]


def _words_move(text: str, source: str) -> CameraMove | None:
    """The move the words of ``text`` describe, or None when they name no camera move."""
    text = text.lower()
    zoom_end = 1.0
    zoom_start = 1.0
    shift_x = shift_y = arc = roll = handheld = 0.0
    reasons: list[str] = []
    taken: list[tuple[int, int]] = []
    for pattern, effect, trusted_in_prompt in _PHRASES:
        if source == "prompt" and not trusted_in_prompt:
            continue
        for match in re.finditer(pattern, text):
            start, end = match.span()
            if any(start < b and a < end for a, b in taken):
                continue  # "orbit left" already read as an orbit, not also as a bare "orbit"
            taken.append((start, end))
            k = _speed(text, start, end)
            reasons.append(f"{source}: {match.group(0).strip()}")
            if effect == "in":
                zoom_end *= 1 + (PUSH_ZOOM - 1) * k
            elif effect == "out":
                zoom_start *= 1 + (PUSH_ZOOM - 1) * k
            elif effect in ("orbit", "orbit-right", "orbit-left"):
                # Orbiting right: the camera circles to the subject's side, the background
                # sweeps past the other way; a slight bow and push sell the parallax.
                sign = -1.0 if effect == "orbit-left" else 1.0
                shift_x += sign * ORBIT_TRAVEL * k
                arc += 0.02 * k
                zoom_end *= 1 + (ORBIT_ZOOM - 1) * k
            elif effect == "left":
                shift_x -= TRAVEL * k
            elif effect == "right":
                shift_x += TRAVEL * k
            elif effect == "up":
                shift_y += TRAVEL * k
            elif effect == "down":
                shift_y -= TRAVEL * k
            elif effect == "roll-ccw":
                roll += ROLL_DEGREES * k
            elif effect == "roll":
                near = text[max(0, start - 20) : end + 20]
                clockwise = re.search(r"(?<![-a-z])clockwise\b", near) is not None
                roll += (-1.0 if clockwise else 1.0) * ROLL_DEGREES * k
            elif effect == "handheld":
                handheld = HANDHELD * k
    if not reasons:
        return None
    move = CameraMove(
        zoom_start=zoom_start,
        zoom_end=zoom_end,
        shift_x=shift_x,
        shift_y=shift_y,
        arc=arc,
        roll=roll,
        handheld=handheld,
        reasons=tuple(reasons),
    )
    if move.is_static:
        breathing = 0.0 if handheld else BREATHING
        return CameraMove(breathing=breathing, handheld=handheld, reasons=tuple(reasons))
    # "static" beside a move word ("static, then a slow push-in") keeps the move.
    return move


def _control_move(control: dict[str, Any]) -> CameraMove | None:
    """Kling's ``camera_control`` (kling-api.md 4.7) as a move.

    ``simple`` config values are in [-10, 10]; 10 is read as twice a plain worded move.
    horizontal: x translation (- left / + right); vertical: y translation (- down / + up);
    pan and tilt follow the 2026 wording (pan turns about the vertical axis, so it looks left or
    right; tilt turns about the horizontal axis, so it looks up or down); roll: - counter-clockwise;
    zoom: - narrower field of view (closer), + wider (further).
    """
    kind = control.get("type") or "simple"
    reason = (f"camera_control: {kind}",)
    if kind == "down_back":
        return CameraMove(zoom_start=PUSH_ZOOM, shift_y=-TRAVEL, reasons=reason)
    if kind == "forward_up":
        return CameraMove(zoom_end=PUSH_ZOOM, shift_y=TRAVEL, reasons=reason)
    if kind == "right_turn_forward":
        return CameraMove(zoom_end=PUSH_ZOOM, shift_x=TRAVEL, reasons=reason)
    if kind == "left_turn_forward":
        return CameraMove(zoom_end=PUSH_ZOOM, shift_x=-TRAVEL, reasons=reason)
    config = control.get("config") or {}
    amount = {axis: float(config.get(axis) or 0.0) / 5.0 for axis in ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")}
    if not any(amount.values()):
        return None
    zoom = amount["zoom"]
    zoom_start = zoom_end = 1.0
    if zoom < 0:
        zoom_end = 1 + (PUSH_ZOOM - 1) * -zoom
    elif zoom > 0:
        zoom_start = 1 + (PUSH_ZOOM - 1) * zoom
    return CameraMove(
        zoom_start=zoom_start,
        zoom_end=zoom_end,
        shift_x=TRAVEL * (amount["horizontal"] + amount["pan"]),
        shift_y=TRAVEL * (amount["vertical"] + amount["tilt"]),
        roll=-ROLL_DEGREES * amount["roll"],
        reasons=reason,
    )


def read_camera(
    camera: str | None = None,
    prompt: str | None = None,
    camera_control: dict[str, Any] | None = None,
) -> CameraMove:
    """The move of one shot, from the most explicit source that names one.

    Order: Kling's structured ``camera_control`` (exact numbers), then the shot's ``camera``
    text (written for the camera), then the prompt (camera words mixed with everything else),
    then a static, gently breathing frame.
    """
    if camera_control:
        move = _control_move(camera_control)
        if move is not None:
            return move
    for text, source in ((camera, "camera text"), (prompt, "prompt")):
        if text:
            move = _words_move(text, source)
            if move is not None:
                return move
    return STATIC
