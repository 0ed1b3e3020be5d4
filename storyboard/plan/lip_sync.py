"""Lip sync, both of Kling's methods and both kinds of speech (kling-api-2.md §5.1, §5.2).

Why a module of its own: lip sync is one shot field with four request shapes, each with its own
limits, and they share the source (a rendered shot's clip or a video file) and the billing rule:

* **classic** ``POST /v1/videos/lip-sync`` ``{"input": {...}}`` (§5.2): the whole clip re-voiced by
  an audio file (``mode: audio2video``) or by a text spoken in one of Kling's voices
  (``mode: text2video``, ``text``/``voice_id``/``voice_language``/``voice_speed``). Not in the
  2026-09 pages but verified by a paid live run; the default.
* **advanced** (§5.1, documented 2026-09): first ``POST /v1/videos/identify-face`` (synchronous,
  0.05 units) gives a session and the faces Kling found with their time windows, then
  ``POST /v1/videos/advanced-lip-sync`` drives one chosen face with a crop of an audio file
  inserted at a point of the clip. Which faces exist is known only at render time, so the plan
  carries the face step (``Request.face``) and placeholders (``face://``) the engine fills in; what
  can be checked before (the crop, the insert point against the video, the volumes) is checked at
  its line here.

  Advanced from text: Kling's TTS speaks it first (``plan.speech``, 0.05 units, as a text avatar),
  ``face_choose[0].audio_id`` names that speech and the crop is all of it (its end filled in after TTS).

Price (both methods): 0.5 units per started 5 s of the video (the clip keeps the source's length);
advanced adds the face step's 0.05 and is assumed to cost what classic costs (the reference
gives it no price of its own: unverified).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from storyboard.plan import AUDIO_SCHEME, CLIP_SCHEME, FACE_SCHEME, SPEECH_SCHEME, FaceStep, SpeechRequest
from storyboard.plan import capabilities as caps
from storyboard.plan.capabilities import ADVANCED_LIP_SYNC, LIP_SYNC
from storyboard.plan.kinds import (
    LIP_SYNC_AUDIO,
    LIP_SYNC_VIDEO,
    KindBuild,
    KindRequest,
    _check_kept,
    _video_field,
    audio_seconds,
    check_speech_length,
    round_half_up,
    video_facts,
)
from storyboard.plan.rules import Findings, seconds_text
from storyboard.plan.speech import TTS_UNITS, estimate_seconds, speech_placeholder

if TYPE_CHECKING:
    from storyboard.load.spec import LipSync
    from storyboard.plan.shots import ResolvedShot

TEXT_ADVISED_CHARS = 120
"""A reseller says classic text lip sync takes at most 120 characters [R acedata]; Kling's live
probes did not confirm it, so validate advises above it instead of refusing a text Kling may take."""
SPEED_MAX = 2.0
"""``voice_speed`` above 2.0 is refused live ("voiceSpeed", §5.2)."""
SPEED_TTS_MIN = 0.8
"""Kling's TTS takes 0.8-2.0 (§4); lip sync documents only the upper bound, so below 0.8 is advised."""
MIN_CROP_SECONDS = 2.0
"""Advanced: the cropped audio lasts at least 2 s (§5.1)."""
FACE_OVERLAP_SECONDS = 2.0
"""Advanced: the inserted audio overlaps the chosen face's time window by at least 2 s (§5.1)."""
ADVANCED_FIELDS = ("face", "audio_start", "audio_end", "insert_at", "volume", "original_volume")
"""Fields only the advanced method sends."""
TEXT_FIELDS = ("voice_id", "language", "speed")
"""Fields that go with ``text`` (classic ``text2video``)."""
SPEECH_SECONDS = (2.0, 60.0)
"""Advanced from text: the TTS audio ``face_choose[].audio_id`` names lasts 2-60 s (§5.1)."""
SPEECH_END_SCHEME = "speech-end://"
"""``speech-end://<speech digest>/<room ms>``: the crop's end (``sound_end_time``) of speech TTS makes
first, i.e. its real length in ms, known only after TTS; the engine fills it (``engine._speech_crop``)
after checking it against 2-60 s and the room the video leaves after ``insert_at`` (the ms after the
slash, so the check needs nothing the plan does not carry)."""
FACE_SESSION = FACE_SCHEME + "session/"
"""``face://session/<source>``: the identify-face session of that source (the body names its source
this way, so two lip syncs of different clips never share a content key)."""

def face_session_placeholder(source: str) -> str:
    return FACE_SESSION + source


def face_placeholder(index: int) -> str:
    return f"{FACE_SCHEME}{index}"


def speech_end_placeholder(speech: str, room_ms: int) -> str:
    return f"{SPEECH_END_SCHEME}{speech.removeprefix(SPEECH_SCHEME)}/{room_ms}"


def parse_speech_end(placeholder: str) -> tuple[str, int]:
    """The speech placeholder and the room (ms) a ``speech-end://`` placeholder names."""
    digest, _, room = placeholder.removeprefix(SPEECH_END_SCHEME).partition("/")
    return SPEECH_SCHEME + digest, int(room)


# --- checks that need no file -------------------------------------------------------------------------


def check_lip_sync_shot(findings: Findings, shot: ResolvedShot) -> None:
    """The source shot, the speech (exactly one of audio / text) and each method's own fields."""
    spec = shot.spec.lip_sync
    assert spec is not None
    where = ("shots", shot.index, "lip_sync")
    source = spec.shot
    if source is not None:
        ids = [s.id for s in findings.board.shots]
        index = ids.index(source) if source in ids else None
        if index is None:
            findings.error(findings.at(*where, "shot"),
                           f"lip_sync names shot {source!r}, which does not exist: use the id of an earlier shot")
        elif index >= shot.index:
            findings.error(findings.at(*where, "shot"),
                           f"lip_sync names shot {source}, which comes at or after shot {shot.id}: "
                           "a lip sync re-voices the clip of an earlier shot")
        elif findings.board.shots[index].lip_sync is not None:
            findings.error(findings.at(*where, "shot"),
                           f"shot {source} is itself a lip sync: lip-sync its source once, with one speech")
    given = spec.model_fields_set
    if spec.audio is None and spec.text is None:
        findings.error(findings.at(*where),
                       "lip_sync needs its speech: audio (a file) or text with voice_id (Kling speaks it)")
    elif spec.audio is not None and spec.text is not None:
        findings.error(findings.at(*where, "text"),
                       "lip_sync takes one speech: audio or text, not both; remove one")
    if spec.text is not None:
        _check_text(findings, spec, where)
    else:
        for name in TEXT_FIELDS:
            if name in given:
                findings.error(findings.at(*where, name),
                               f"lip_sync {name} goes with text (Kling speaks the text in that voice): remove it, "
                               "or give text instead of audio")
    if spec.method == "classic":
        for name in ADVANCED_FIELDS:
            if name in given:
                findings.error(findings.at(*where, name),
                               f"lip_sync {name} is a field of the advanced method: set method: advanced, or "
                               "remove it (classic lip-syncs the whole clip)")
    elif spec.text is not None:
        for name in ("audio_start", "audio_end"):
            if name in given:
                findings.error(findings.at(*where, name),
                               f"lip_sync {name} crops an audio file; spoken from text, the whole speech TTS makes "
                               "is inserted (a crop would cut the words): remove it, and shorten the text instead")


def _check_text(findings: Findings, spec: LipSync, where: tuple[Any, ...]) -> None:
    text = spec.text or ""
    if not text.strip():
        findings.error(findings.at(*where, "text"), "lip_sync text is empty: write what the voice says")
    elif len(text) > TEXT_ADVISED_CHARS and spec.method == "classic":  # advanced speaks it through TTS (§4)
        findings.advise(findings.at(*where, "text"),
                        f"lip_sync text has {len(text)} characters; a reseller says Kling takes at most "
                        f"{TEXT_ADVISED_CHARS} (unverified): if Kling refuses it, shorten it or record it as audio")
    if not spec.voice_id:
        findings.error(findings.at(*where, "text"),
                       "lip_sync text needs voice_id: the Kling lip-sync voice that speaks it")
    if spec.speed > SPEED_MAX:
        findings.error(findings.at(*where, "speed"),
                       f"lip_sync speed {spec.speed:g} is too fast: Kling takes voice_speed up to {SPEED_MAX:g}")
    elif spec.speed <= 0:
        findings.error(findings.at(*where, "speed"), f"lip_sync speed {spec.speed:g} must be above 0 (1 is normal)")
    elif spec.speed < SPEED_TTS_MIN:
        findings.advise(findings.at(*where, "speed"),
                        f"lip_sync speed {spec.speed:g} is below Kling's TTS range ({SPEED_TTS_MIN:g}-{SPEED_MAX:g}); "
                        "lip sync documents only the upper bound, so Kling may refuse it")


# --- the request ------------------------------------------------------------------------------------------


def lip_sync_request(build: KindBuild) -> KindRequest:
    """The classic or advanced request of a lip-sync shot, priced per started 5 s of the video."""
    findings, shot = build.findings, build.shot
    spec = shot.spec.lip_sync
    assert spec is not None
    where = ("shots", shot.index, "lip_sync")
    advanced = spec.method == "advanced"
    video_value, length, ratio, width, height, fps = _source(build, spec, where)
    _check_kept(findings, shot, length, "its source video")
    if advanced:
        body, face = _advanced_body(build, spec, where, video_value, length)
    else:
        body, face = {"input": _classic_input(build, spec, where, video_value, length)}, None
    blocks = max(1, math.ceil(length / caps.LIP_SYNC_BLOCK_SECONDS - 1e-9))
    billed = blocks * caps.LIP_SYNC_BLOCK_SECONDS
    build.notes.append(f"lip sync ({spec.method}): the clip keeps the source's {length:.2f} s; billed per started "
                       f"{caps.LIP_SYNC_BLOCK_SECONDS} s ({blocks} x)")
    seconds = max(1, round_half_up(length))
    family, model = (ADVANCED_LIP_SYNC, caps.ADVANCED_LIP_SYNC_MODEL) if advanced else (LIP_SYNC, caps.LIP_SYNC_MODEL)
    return KindRequest(family, caps.ENDPOINTS[family], model, "std", body, seconds, billed, True,
                       ratio, width, height, fps, face=face)


def _source(build: KindBuild, spec: LipSync, where: tuple[Any, ...]) -> tuple[str, float, str, int, int, int]:
    """The source video as the body names it (clip:// or its URL), its length and picture."""
    findings = build.findings
    if spec.shot is not None:
        ids = [s.id for s in findings.board.shots]
        index = ids.index(spec.shot) if spec.shot in ids else -1
        upstream = build.request_of_shot.get(index)
        if upstream is None:
            return CLIP_SCHEME + "unknown", 5.0, "16:9", 1280, 720, 24
        length = float(upstream.duration)
        build.depends_on.append(upstream.key)
        build.notes.append(f"lip sync of {upstream.id}'s clip: waits for it, then sends "
                           + ("its Kling video_id to identify-face" if spec.method == "advanced"
                              else "the URL Kling gave for it"))
        if not 2 <= length <= 60:
            findings.error(findings.at(*where, "shot"),
                           f"shot {spec.shot}'s clip lasts {length:g} s: Kling lip-syncs 2-60 s videos")
        return CLIP_SCHEME + upstream.key, length, upstream.aspect_ratio, upstream.width, upstream.height, upstream.fps
    assert spec.video is not None
    facts = video_facts(findings, findings.at(*where, "video"), spec.video, LIP_SYNC_VIDEO)
    if facts and min(facts.width, facts.height) not in (720, 1080):
        findings.error(findings.at(*where, "video"),
                       f"{spec.video} is {facts.width}x{facts.height}: Kling lip-syncs 720p or 1080p videos; "
                       "scale it to 720 or 1080 px on the short side")
    value = _video_field(build, spec.video, spec.url, findings.at(*where, "video"))
    if not facts:
        return value, 5.0, "16:9", 1280, 720, 24
    return (value, facts.duration, caps.snap_aspect_ratio(facts.width, facts.height), facts.width, facts.height,
            round(facts.fps))


def _classic_input(build: KindBuild, spec: LipSync, where: tuple[Any, ...], video: str,
                   length: float) -> dict[str, Any]:
    """§5.2 ``input``: ``audio2video`` with the file as base64, or ``text2video`` with a voice."""
    findings = build.findings
    if spec.text is not None:
        spoken = estimate_seconds(spec.text, spec.language, spec.speed)  # the avatar's estimate (plan.speech)
        if spoken.high > length + caps.KIND_OUTPUT_SLACK:
            findings.advise(findings.at(*where, "text"),
                            f"the text may take up to {spoken.high:.1f} s to say (an estimate, {spoken.low:g}-"
                            f"{spoken.high:g} s), longer than the video ({length:.2f} s): Kling may cut it; "
                            "shorten it or raise speed")
        build.notes.append(f"lip sync from text: Kling speaks it in voice {spec.voice_id} ({spec.language}, "
                           f"speed {spec.speed:g}); about {spoken.low:g}-{spoken.high:g} s (estimated)")
        return {"mode": "text2video", "video_url": video, "text": spec.text, "voice_id": spec.voice_id or "",
                "voice_language": spec.language, "voice_speed": spec.speed}
    body: dict[str, Any] = {"mode": "audio2video", "video_url": video}
    if spec.audio is None:  # neither audio nor text: reported at the lip_sync line
        return body
    heard = audio_seconds(findings, findings.at(*where, "audio"), spec.audio, LIP_SYNC_AUDIO)
    body["audio_type"] = "file"
    body["audio_file"] = build.media_placeholder(AUDIO_SCHEME, spec.audio)
    if heard is not None and heard > length + caps.KIND_OUTPUT_SLACK:
        findings.advise(findings.at(*where, "audio"),
                        f"{spec.audio} ({heard:.2f} s) is longer than the video ({length:.2f} s): Kling cuts it")
    return body


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _advanced_body(build: KindBuild, spec: LipSync, where: tuple[Any, ...], video: str,
                   length: float) -> tuple[dict[str, Any], FaceStep | None]:
    """§5.1 step 2: one ``face_choose`` entry; the session and face id are filled in at render time."""
    findings = build.findings
    face_entry: dict[str, Any] = {"face_id": face_placeholder(spec.face)}
    if spec.text is not None and spec.audio is None:
        return _spoken_advanced_body(build, spec, where, video, length, face_entry)
    if spec.audio is None:  # no speech: reported at its line
        return {"session_id": face_session_placeholder(video), "face_choose": [face_entry]}, None
    heard = audio_seconds(findings, findings.at(*where, "audio"), spec.audio, LIP_SYNC_AUDIO)
    audio_ms = int(heard * 1000) if heard is not None else None  # floored: the end never passes the audio
    start_ms = _ms(spec.audio_start)
    end_ms = _ms(spec.audio_end) if spec.audio_end is not None else audio_ms if audio_ms is not None else start_ms + 2000
    end_where = "audio_end" if spec.audio_end is not None else "audio_start" if "audio_start" in spec.model_fields_set \
        else "audio"
    if audio_ms is not None and end_ms > audio_ms + 50:  # 50 ms: the probe's rounding of the audio's length
        findings.error(findings.at(*where, "audio_end"),
                       f"audio_end {spec.audio_end:g} s is past the end of {spec.audio} ({audio_ms / 1000:.2f} s): "
                       "set it at or before the audio's end")
        end_ms = audio_ms
    crop_ms = end_ms - start_ms
    if crop_ms < MIN_CROP_SECONDS * 1000:
        findings.error(findings.at(*where, end_where),
                       f"the audio crop ({start_ms / 1000:g}-{end_ms / 1000:g} s) lasts {max(crop_ms, 0) / 1000:g} s: "
                       f"Kling needs at least {seconds_text(MIN_CROP_SECONDS)}; move audio_start or audio_end")
    insert_ms = _ms(spec.insert_at)
    if crop_ms > 0 and insert_ms + crop_ms > _ms(length) + 50:
        findings.error(findings.at(*where, "insert_at" if "insert_at" in spec.model_fields_set else "audio"),
                       f"the cropped audio ({crop_ms / 1000:g} s) inserted at {insert_ms / 1000:g} s ends at "
                       f"{(insert_ms + crop_ms) / 1000:g} s, past the end of the video ({length:.2f} s): "
                       "insert it earlier or crop it shorter")
    face_entry.update({"sound_file": build.media_placeholder(AUDIO_SCHEME, spec.audio),
                       "sound_start_time": start_ms, "sound_end_time": end_ms, "sound_insert_time": insert_ms})
    if spec.volume is not None:
        face_entry["sound_volume"] = spec.volume
    if spec.original_volume is not None:
        face_entry["original_audio_volume"] = spec.original_volume
    body: dict[str, Any] = {"session_id": face_session_placeholder(video), "face_choose": [face_entry]}
    if build.shot.watermark:
        body["watermark_info"] = {"enabled": True}
    face_units = float(caps.FACE_RECOGNITION_UNITS)
    build.notes.append(
        f"advanced lip sync: identify-face first ({caps.FACE_RECOGNITION_UNITS} units, once: its answer is journaled), "
        f"then face {spec.face} speaks {spec.audio} {start_ms / 1000:g}-{end_ms / 1000:g} s from {insert_ms / 1000:g} s "
        f"of the video; the face's time window is known only then and is checked before the paid create "
        f"(it must overlap the speech by {seconds_text(FACE_OVERLAP_SECONDS)})")
    return body, FaceStep(source=video, face=spec.face, insert_ms=insert_ms, crop_ms=max(crop_ms, 0), units=face_units)


def _spoken_advanced_body(build: KindBuild, spec: LipSync, where: tuple[Any, ...], video: str, length: float,
                          face_entry: dict[str, Any]) -> tuple[dict[str, Any], FaceStep]:
    """§5.1 with §4: Kling's TTS speaks the text first (``SpeechRequest``, as a text avatar's), and the
    chosen face speaks all of it: ``audio_id`` names the speech, the crop runs from 0 to its real end.

    The speech's length is known only after TTS, so the crop's end is a ``speech-end://`` placeholder
    the engine fills, and the limits are checked here on the estimate's bracket (``plan.speech``): a
    text surely outside 2-60 s of speech, or surely past the video's end from ``insert_at``, is
    refused; one that may be is advised (the render refuses it before the paid create, after TTS).
    """
    findings = build.findings
    assert spec.text is not None
    text_at = findings.at(*where, "text")
    if spec.voice_id and spec.voice_id in findings.board.voices:
        findings.error(findings.at(*where, "voice_id"),
                       f"{spec.voice_id} is one of the storyboard's custom voices: Kling's TTS speaks its preset "
                       "voices only (kling-api-2.md §4); give a preset voice id, or record the line and use audio:")
    estimate = estimate_seconds(spec.text, spec.language, spec.speed)
    low, high = SPEECH_SECONDS
    said = f"about {estimate.low:g}-{estimate.high:g} s (estimated from the text)"
    check_speech_length(findings, text_at, estimate, SPEECH_SECONDS, "advanced lip sync", "split it into two lip syncs")
    insert_ms = _ms(spec.insert_at)
    room_ms = max(0, _ms(length) - insert_ms)
    fit_at = findings.at(*where, "insert_at" if "insert_at" in spec.model_fields_set else "text")
    if estimate.low * 1000 > room_ms:
        findings.error(fit_at, f"the speech ({said}) inserted at {insert_ms / 1000:g} s ends past the end of the "
                               f"video ({length:.2f} s): insert it earlier or shorten the text")
    elif estimate.high * 1000 > room_ms:
        findings.advise(fit_at, f"the speech ({said}) inserted at {insert_ms / 1000:g} s may end past the end of the "
                                f"video ({length:.2f} s): if it does, the render stops before the lip sync is sent "
                                f"(the TTS and face calls paid); insert it earlier or shorten the text")
    voice = spec.voice_id or ""
    placeholder = speech_placeholder(spec.text, voice, spec.language, spec.speed)
    build.speech.append(SpeechRequest(placeholder=placeholder, text=spec.text, voice_id=voice, language=spec.language,
                                      speed=spec.speed, low_seconds=estimate.low, high_seconds=estimate.high,
                                      units=TTS_UNITS))
    build.extra_units += TTS_UNITS
    face_entry.update({"audio_id": placeholder, "sound_start_time": 0,
                       "sound_end_time": speech_end_placeholder(placeholder, room_ms), "sound_insert_time": insert_ms})
    if spec.volume is not None:
        face_entry["sound_volume"] = spec.volume
    if spec.original_volume is not None:
        face_entry["original_audio_volume"] = spec.original_volume
    body: dict[str, Any] = {"session_id": face_session_placeholder(video), "face_choose": [face_entry]}
    if build.shot.watermark:
        body["watermark_info"] = {"enabled": True}
    build.notes.append(
        f"advanced lip sync from text: Kling's TTS speaks it first ({voice}, {spec.language}, speed {spec.speed:g}; "
        f"{TTS_UNITS:g} units per call, journaled and reused for 29 days), {said}; then identify-face "
        f"({caps.FACE_RECOGNITION_UNITS} units, once), then face {spec.face} speaks the whole speech from "
        f"{insert_ms / 1000:g} s of the video (the crop ends at the speech's real length, filled in after TTS); "
        f"before the paid create the speech is checked against {seconds_text(low)}-{seconds_text(high)}, the video's "
        f"end and the face's time window (overlap {seconds_text(FACE_OVERLAP_SECONDS)})")
    crop_ms = round(estimate.high * 1000)  # the engine replaces it with the real length after TTS
    return body, FaceStep(source=video, face=spec.face, insert_ms=insert_ms, crop_ms=crop_ms,
                          units=float(caps.FACE_RECOGNITION_UNITS))
