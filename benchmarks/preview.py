"""How fast the preview provider draws a storyboard, in seconds of video per second of wall time.

Run on demand (not a test): ``.venv/bin/python benchmarks/preview.py [--compare] [--heights 720 1080]``.

The plan mimics a large example: 10 requests, 75 s of video, with pushes, pans, an orbit, a roll
(the slower rotating path), static shots, end-frame dissolves, text cards (plain and over a
blurred reference) and two multi-shot requests mixing cards and image shots. The images are the
real photos in projects/cat-boards/refs.

Baseline, measured in the same run and at the same size: the bundled ffmpeg encoding the same
number of frames from its own synthetic source (``testsrc2``) with the same x264 settings, i.e.
the encoder alone. ``x encode-only`` says how much drawing the frames costs on top of that.
Goal: >= 4x realtime at 720p on a 2-core machine.

``--compare`` also times the alternatives that were tried: one drawing thread instead of two,
x264 ``superfast`` instead of ``ultrafast``, and ffmpeg's own ``zoompan`` (on a 4x enlarged
image, the usual workaround for its integer jitter) for one 5 s push-in.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import harness

from storyboard.media import ffmpeg_exe, probe
from storyboard.plan import Request, ShotSlice
from storyboard.render.providers import preview
from storyboard.render.providers.base import Job

PHOTOS = {photo.name: photo for photo in harness.PHOTOS}


def placeholder(path: Path) -> str:
    return "image://sha256/" + hashlib.sha256(path.read_bytes()).hexdigest()


def request(index: int, shots: list[ShotSlice], *, height: int, body: dict, sound=False, family="image2video") -> Request:
    duration = round(sum(s.rendered for s in shots))
    width = height * 16 // 9
    key = hashlib.sha256(f"bench-{index}-{height}-{shots}".encode()).hexdigest()
    return Request(
        id=f"r{index:02d}-{shots[0].shot_id}", key=key, external_task_id=key[:24], family=family,
        endpoint=f"/v1/videos/{family}", model="kling-v3", mode="std" if height <= 720 else "pro",
        duration=duration, sound=sound, aspect_ratio="16:9", width=width, height=height, fps=24,
        body=body, shots=shots, units=duration * 1.0, usd=duration * 0.14,
    )


def shot(shot_id, rendered, *, offset=0.0, camera=None, start=None, end=None, prompt=None) -> ShotSlice:
    return ShotSlice(
        shot_id=shot_id, offset=offset, rendered=rendered, keep=rendered, camera=camera,
        start_image=start, end_image=end,
        prompt=prompt or f"{shot_id}: a cinematic shot, soft light, shallow depth of field, {camera or 'still'}",
    )


def build_plan(height: int) -> tuple[list[Request], dict[str, Path]]:
    p = {name: placeholder(path) for name, path in PHOTOS.items()}
    images = {p[name]: PHOTOS[name] for name in PHOTOS}
    a, c, k, r = p["astronaut.png"], p["chelsea.png"], p["coffee.png"], p["rocket.jpg"]
    long_prompt = "A lighthouse on a cliff at dusk, waves crashing on the rocks, gulls circling, " * 3
    requests = [
        request(1, [shot("launch", 5, camera="slow push-in", start=r)], height=height, body={"image": r}, sound=True),
        request(2, [shot("cat", 5, camera="pan left", start=c)], height=height, body={"image": c}),
        request(3, [shot("cup", 5, camera="orbit right", start=k)], height=height, body={"image": k}),
        request(4, [shot("suit", 5, camera="static", start=a)], height=height, body={"image": a}),
        request(5, [shot("morph", 5, camera="dolly in", start=a, end=c)], height=height, body={"image": a, "image_tail": c}),
        request(6, [shot("pour", 10, camera="crane up", start=k, end=r)], height=height, body={"image": k, "image_tail": r}),
        request(7, [shot("title", 5, prompt=long_prompt)], height=height, body={"prompt": long_prompt}, family="text2video"),
        request(8, [shot("mood", 5, prompt="a moody harbour")], height=height,
                body={"prompt": "a moody harbour", "image_list": [{"image_url": c}]}, family="omni-video"),
        request(9, [
            shot("m1", 3, prompt="Two friends talk under a streetlight"),
            shot("m2", 3, offset=3, camera="truck right", start=r),
            shot("m3", 4, offset=6, camera="pull out", start=k),
        ], height=height, body={"multi_shot": True, "prompt": ""}, sound=True, family="text2video"),
        request(10, [
            shot("n1", 2, camera="handheld", start=a),
            shot("n2", 3, offset=2, camera="slow clockwise roll", start=c),
            shot("n3", 3, offset=5, prompt="An ending card with the brand"),
            shot("n4", 3, offset=8, camera="tilt down", start=r),
            shot("n5", 4, offset=11, camera="push in", start=k),
        ], height=height, body={"multi_shot": True, "prompt": ""}, family="text2video"),
    ]
    return requests, images


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its finished children (ffmpeg)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


CPU_USED: dict[str, float] = {}


def render_plan(height: int, work: Path) -> tuple[float, float, int]:
    """Seconds of video, wall seconds, frames, for the whole plan at ``height``."""
    requests, images = build_plan(height)
    seconds = 0.0
    frames = 0
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    for req in requests:
        dest = work / f"{req.id}-{height}.mp4"
        preview.render_preview(Job(request=req, project_dir=work, images=images), dest)
        seconds += req.duration
        frames += req.duration * req.fps
    wall = time.perf_counter() - start
    CPU_USED["last"] = cpu_seconds() - cpu_start
    for req in requests:  # verified outside the timing
        info = probe(work / f"{req.id}-{height}.mp4")
        assert info.frames == req.duration * req.fps and info.height == height, info
    return seconds, wall, frames


def encode_only(height: int, frames: int, work: Path, preset: str = "ultrafast") -> float:
    width = height * 16 // 9
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={width}x{height}:rate=24", "-frames:v", str(frames), "-c:v", "libx264",
         "-preset", preset, "-crf", str(preview.X264_CRF), "-pix_fmt", "yuv420p", str(work / "baseline.mp4")],
        check=True,
    )
    CPU_USED["last"] = cpu_seconds() - cpu_start
    return time.perf_counter() - start


def zoompan_push_in(height: int, work: Path) -> float:
    """ffmpeg's zoompan on a 4x enlarged picture (the usual anti-jitter workaround), 5 s."""
    width = height * 16 // 9
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-loop", "1", "-framerate", "24",
         "-i", str(PHOTOS["rocket.jpg"]), "-vf",
         (f"scale={width * 4}:{height * 4}:force_original_aspect_ratio=increase,crop={width * 4}:{height * 4},"
         f"zoompan=z='1+0.25*on/120':d=1:x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':s={width}x{height}:fps=24,format=yuv420p"),
         "-frames:v", "120", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", str(work / "zoompan.mp4")],
        check=True,
    )
    CPU_USED["last"] = cpu_seconds() - cpu_start
    return time.perf_counter() - start


def report(label: str, seconds: float, wall: float, baseline_wall: float | None = None) -> None:
    """One line: realtime factor, CPU seconds per video second (fairer on a busy machine), ratio."""
    line = f"{label:<44} {seconds:5.0f} s of video in {wall:6.2f} s wall = {seconds / wall:5.2f}x realtime"
    cpu = CPU_USED.pop("last", 0.0)
    line += f"; {cpu / seconds:5.3f} CPU-s per video-s"
    if baseline_wall:
        line += f"; {wall / baseline_wall:4.2f}x the encode-only wall time"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, nargs="+", default=[720, 1080])
    parser.add_argument("--compare", action="store_true", help="also time the alternatives that were tried")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  load average before: {os.getloadavg()[0]:.2f}")
    work = Path(tempfile.mkdtemp(prefix="preview-bench-"))
    try:
        for height in args.heights:
            seconds, wall, frames = render_plan(height, work)
            preview_cpu = CPU_USED.pop("last")
            baseline = encode_only(height, frames, work)
            report(f"{height}p encode only (ffmpeg testsrc2, baseline)", seconds, baseline)
            CPU_USED["last"] = preview_cpu
            report(f"{height}p preview (2 draw threads, ultrafast)", seconds, wall, baseline)
            if args.compare and height == min(args.heights):
                preview.DRAW_THREADS = 1
                seconds1, wall1, _ = render_plan(height, work)
                preview.DRAW_THREADS = 2
                report(f"{height}p preview, 1 draw thread", seconds1, wall1, baseline)
                preview.X264_PRESET = "superfast"
                seconds2, wall2, _ = render_plan(height, work)
                preview.X264_PRESET = "ultrafast"
                report(f"{height}p preview, x264 superfast", seconds2, wall2, baseline)
                report(f"{height}p ffmpeg zoompan push-in (4x upscale)", 5, zoompan_push_in(height, work))
        print(f"load average after: {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
