"""Free previews of the shot kinds that start from the user's own files (``plan.kinds``).

Why not the animatic of ``preview``: a motion-control, avatar, lip-sync or omni-video request is
*about* its input file, and its length comes from that file (the motion, the speech, the clip).
A plausible stand-in therefore uses the file itself:

* motion control: the character image full frame, with the reference video inset in a corner for
  the request's seconds (its timing), keeping the video's sound when the request keeps it;
* avatar: the portrait for the audio's length, with that audio; an avatar from text speaks a
  stand-in the preview "synthesizes" for free (``synthesize_speech``: a syllable-rate tone as
  long as the plan's estimate of the speech);
* lip sync: the source clip (a file, or the rendered clip of the shot it re-voices) with the new audio;
  from text, a deterministic speech-like sound as long as the text takes to say (an estimate:
  the slow reading of ``plan.speech.estimate_seconds``); advanced, the clip's own sound (at
  ``original_audio_volume``) mixed with the audio's crop inserted at ``sound_insert_time`` (at
  ``sound_volume``), as Kling places it; from text, the crop is all of the TTS stand-in;
* omni with a video: the video itself (an edit keeps its length; a reference is looped to the
  requested duration), with its sound when the request keeps it.

Each preview is one ffmpeg call (the binary ``media.ffmpeg_exe`` provides) writing exactly
``duration x fps`` frames at the preview size, with an audio track exactly when the request has
sound, so the engine's and the assembler's checks hold as for any clip.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from storyboard.errors import Rejected, TaskFailed
from storyboard.media import ffmpeg_exe
from storyboard.plan import AUDIO_SCHEME, CLIP_SCHEME, IMAGE_SCHEME, SPEECH_SCHEME, VIDEO_SCHEME, Request, SpeechRequest
from storyboard.plan.speech import estimate_seconds
from storyboard.render.providers.base import Job

Renderer = Callable[..., None]


def renderer_for(request: Request) -> Renderer | None:
    """The preview renderer of a request of these kinds (None: the ordinary animatic)."""
    if request.family in ("motion-control", "avatar/image2video", "lip-sync", "advanced-lip-sync"):
        return render_kind_preview
    if request.family == "omni-video" and request.body.get("video_list"):
        return render_kind_preview
    return None


def _input(job: Job, scheme: str) -> Path:
    """The local file of the request's one input of ``scheme`` (the engine resolved every placeholder).

    The image is the body's own (``image_url`` / ``image``): a request with an element also lists
    the element's extra views among its images.
    """
    request = job.request
    if scheme == IMAGE_SCHEME:
        placeholder = request.body.get("image_url") or request.body.get("image")
        if isinstance(placeholder, str) and placeholder in job.images:
            return Path(job.images[placeholder])
    else:
        for placeholder, path in job.images.items():
            if placeholder.startswith(scheme):
                return Path(path)
    raise Rejected(message=f"preview of {request.id}: its {scheme.split(':')[0]} input is missing; nothing was spent",
                   hint="run validate: the file the storyboard names must exist in the project")


def _fit(width: int, height: int, label: str, fps: int) -> str:
    """Scale into the frame keeping the aspect ratio, pad the rest, at the request's frame rate."""
    return (f"{label}fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1")


def render_kind_preview(job: Job, dest: Path, *, four_k_preview_height: int = 1080) -> None:
    """Render ``job``'s request (a kind of ``plan.kinds``) as an MP4 at ``dest``, written atomically."""
    from storyboard.render.providers.preview import preview_size

    request = job.request
    width, height = preview_size(request, four_k_preview_height)
    fps, seconds = request.fps, request.duration
    frames = seconds * fps
    inputs: list[str] = []
    video_filter: str
    audio_input: int | None = None
    audio_chain: str | None = None
    """A filter chain ending in ``[pre]`` that makes the clip's sound (instead of ``audio_input``)."""

    if request.family == "motion-control":
        character, motion = _input(job, IMAGE_SCHEME), _input(job, VIDEO_SCHEME)
        inputs += ["-loop", "1", "-i", str(character), "-i", str(motion)]
        inset_w = max(2, (width // 4) // 2 * 2)
        video_filter = (f"{_fit(width, height, '[0:v]', fps)}[bg];"
                        f"[1:v]fps={fps},scale={inset_w}:-2,tpad=stop_mode=clone:stop=-1[inset];"
                        "[bg][inset]overlay=W-w-16:H-h-16")
        audio_input = 1 if request.sound else None
    elif request.family == "avatar/image2video":
        spoken = SPEECH_SCHEME if "audio_id" in request.body else AUDIO_SCHEME  # text (TTS) or a file
        portrait, speech = _input(job, IMAGE_SCHEME), _input(job, spoken)
        inputs += ["-loop", "1", "-i", str(portrait), "-i", str(speech)]
        video_filter = _fit(width, height, "[0:v]", fps)
        audio_input = 1
    elif request.family == "lip-sync":
        data = request.body["input"]
        source = _input(job, CLIP_SCHEME) if str(data["video_url"]).startswith(CLIP_SCHEME) \
            else _input(job, VIDEO_SCHEME)
        inputs += ["-i", str(source)]
        if data["mode"] == "text2video":
            said = estimate_seconds(str(data["text"]), str(data.get("voice_language", "en")),
                                    float(data.get("voice_speed", 1.0))).high  # as long as an avatar's stand-in
            inputs += ["-f", "lavfi", "-i", speech_like_source(said)]
        else:
            inputs += ["-i", str(_input(job, AUDIO_SCHEME))]
        video_filter = _fit(width, height, "[0:v]", fps) + ",tpad=stop_mode=clone:stop=-1"
        audio_input = 1
    elif request.family == "advanced-lip-sync":
        assert request.face is not None  # planned with its face step (plan.lip_sync)
        source = _input(job, CLIP_SCHEME) if request.face.source.startswith(CLIP_SCHEME) else _input(job, VIDEO_SCHEME)
        face = dict(request.body["face_choose"][0])
        from_text = "audio_id" in face  # from text: the TTS stand-in, its crop end filled by the engine
        if from_text and str(face["sound_end_time"]) in job.urls:
            face["sound_end_time"] = int(job.urls[str(face["sound_end_time"])])
        inputs += ["-i", str(source), "-i", str(_input(job, SPEECH_SCHEME if from_text else AUDIO_SCHEME))]
        video_filter = _fit(width, height, "[0:v]", fps) + ",tpad=stop_mode=clone:stop=-1"
        audio_chain = inserted_speech_chain(face, _has_audio(source))
    else:  # omni with a reference or edited video
        clip = _input(job, VIDEO_SCHEME)
        edit = request.body["video_list"][0].get("refer_type") == "base"
        inputs += ([] if edit else ["-stream_loop", "-1"]) + ["-i", str(clip)]
        video_filter = _fit(width, height, "[0:v]", fps) + ",tpad=stop_mode=clone:stop=-1"
        audio_input = 0 if request.sound else None

    graph = f"{video_filter},format=yuv420p[v]"
    maps = ["-map", "[v]"]
    if request.sound and audio_chain is not None:
        graph += f";{audio_chain};[pre]aresample=48000,apad,atrim=0:{seconds}[a]"
        maps += ["-map", "[a]", "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"]
    elif request.sound:
        if audio_input is None:
            inputs += ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"]
            audio_input = inputs.count("-i") - 1
        graph += f";[{audio_input}:a]aresample=48000,apad,atrim=0:{seconds}[a]"
        maps += ["-map", "[a]", "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2"]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".mp4", dir=dest.parent)
    os.close(fd)
    temp = Path(temp_name)
    command = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *inputs,
        "-filter_complex", graph, *maps, "-frames:v", str(frames), "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p", "-r", str(fps),
        "-metadata", f"comment=storyboard preview of {request.id} ({request.key[:16]})",
        "-movflags", "+faststart", "-f", "mp4", str(temp),
    ]
    try:
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if completed.returncode != 0:
            tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
            raise TaskFailed(
                f"preview of {request.id}: ffmpeg failed (exit {completed.returncode}): {' | '.join(tail) or 'no message'}",
                money_spent=False,
                hint="Check that the input files play (validate probes them); else report it with the plan.",
            )
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


SPEECH_SAMPLE_RATE = 24000
SYLLABLES_PER_SECOND = 4.0
"""The stand-in's rhythm: about the syllable rate of unhurried speech, so it reads as talking."""


def synthesize_speech(speech: SpeechRequest, dest: Path) -> float:
    """Write a speech-like stand-in for ``speech`` to ``dest`` (16-bit mono WAV); returns its seconds.

    It lasts the plan's slow estimate (``high_seconds``), the length the request was priced and
    laid out on, so the preview clip is as long as the plan said. Syllables are tone bursts with a
    falling pitch and a pause at every fifth, their pitches drawn from the speech's digest, so the
    same speech always sounds the same and a changed line sounds different. Written atomically.
    """
    import wave

    import numpy as np

    seconds = max(0.1, float(speech.high_seconds))
    count = round(seconds * SPEECH_SAMPLE_RATE)
    t = np.arange(count, dtype=np.float64) / SPEECH_SAMPLE_RATE
    seed = int(speech.placeholder.removeprefix(SPEECH_SCHEME)[:8] or "0", 16)
    rng = np.random.default_rng(seed)
    syllable = np.floor(t * SYLLABLES_PER_SECOND).astype(np.int64)
    pitches = 150.0 + 60.0 * rng.random(int(syllable.max(initial=0)) + 1)
    phase_in = t * SYLLABLES_PER_SECOND - syllable  # 0..1 within each syllable
    pitch = pitches[syllable] * (1.0 - 0.15 * phase_in)
    envelope = np.sin(np.pi * phase_in) ** 2
    envelope[syllable % 5 == 4] = 0.0  # a breath between words
    phase = 2 * np.pi * np.cumsum(pitch) / SPEECH_SAMPLE_RATE
    voice = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)
    samples = (0.25 * envelope * voice / 1.6 * 32767).astype("<i2")
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    with wave.open(str(temp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SPEECH_SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    os.replace(temp, dest)
    return count / SPEECH_SAMPLE_RATE


def speech_like_source(seconds: float) -> str:
    """A lavfi source of a deterministic speech-like sound: a voice-pitched tone whose pitch drifts
    and whose loudness beats at about four syllables a second, for ``seconds``."""
    expression = "0.3*sin(2*PI*(170+30*sin(2*PI*0.9*t))*t)*(0.55+0.45*sin(2*PI*3.7*t))"
    return f"aevalsrc={expression}:s=48000:d={seconds:.3f}"


def inserted_speech_chain(face: dict, source_has_audio: bool) -> str:
    """Filters (inputs 0 = the clip, 1 = the audio file) ending in ``[pre]``: the crop of the audio
    (``sound_start_time``-``sound_end_time``) delayed to ``sound_insert_time`` at ``sound_volume``,
    over the clip's own sound at ``original_audio_volume`` when it has one (Kling's defaults: 1)."""
    start, end = face["sound_start_time"] / 1000, face["sound_end_time"] / 1000
    delay = int(face["sound_insert_time"])
    speech = (f"[1:a]aresample=48000,atrim=start={start:g}:end={end:g},asetpts=PTS-STARTPTS,"
              f"volume={float(face.get('sound_volume', 1)):g},adelay={delay}:all=1")
    if not source_has_audio:
        return speech + "[pre]"
    original = f"[0:a]aresample=48000,volume={float(face.get('original_audio_volume', 1)):g}"
    return f"{speech}[speech];{original}[original];[original][speech]amix=inputs=2:duration=longest:normalize=0[pre]"


def _has_audio(path: Path) -> bool:
    from storyboard.media import MediaError, probe

    try:
        return probe(path).has_audio
    except MediaError:
        return False
