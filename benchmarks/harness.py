"""What every benchmark shares: timing the CLI as a process, the test clips, the fake Kling on
loopback, the baselines from ../shared/assembly-baseline.md, and one results table.

Why one module: the goals of issue 13 are ratios against baselines measured in the same run, so
every script must time processes the same way (wall from start to exit; CPU of the whole process
tree from ``resource.getrusage(RUSAGE_CHILDREN)``, which counts ffmpeg children the CLI waited
for; peak RSS of the tree sampled every 50 ms with psutil) and report in the same shape, which
``run_all.py`` gathers into one table.

The CLI is run as the user runs it: the ``storyboard`` console script of this interpreter's
environment, with ``PYTHONPATH`` set to this checkout so this tree's package is the one imported,
and no Kling keys in the environment unless a benchmark points them at the fake.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHOTOS = [ROOT / "projects" / "cat-boards" / "refs" / name
          for name in ("astronaut.png", "coffee.png", "rocket.jpg", "chelsea.png")]
"""Real photographs (scikit-image samples) already in the repository: clips pan over them."""

FPS = 24
CLIP_SECONDS = 5
XFADE = 0.5
KEY_VARIABLES = ("KLINGAI_ACCESS_KEY", "KLINGAI_SECRET_KEY", "KLINGAI_API_KEY", "KLINGAI_BASE_URL")


# ------------------------------------------------------------------------------ processes


@dataclass
class Measured:
    """One process run: wall seconds start to exit, CPU seconds of its tree, peak tree RSS."""

    wall: float
    cpu: float
    peak_mb: float
    stdout: str = ""
    stderr: str = ""


def storyboard_argv(*args: str) -> list[str]:
    """The ``storyboard`` command as a user types it (the console script beside this Python)."""
    script = Path(sys.executable).parent / "storyboard"
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from storyboard.cli import main; sys.argv[0] = 'storyboard'; main()",
            *args]


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a measured command: this checkout first on the path, no Kling keys, and
    Python's bytecode cache on, as an installed ``storyboard`` has it.

    Why the cache: without it (``PYTHONDONTWRITEBYTECODE=1``, set in some sandboxes and CI images)
    every run compiles the package from source again, about 0.25 s of a command's start-up that
    no user pays. ``warm_up`` compiles the checkout first, so the cache exists before timing.
    """
    env = {k: v for k, v in os.environ.items() if k not in (*KEY_VARIABLES, "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def warm_up() -> None:
    """Compile this checkout's modules into their bytecode cache (what a first run would do)."""
    import compileall

    compileall.compile_dir(str(ROOT / "storyboard"), quiet=1)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                check: bool = True, sample_rss: bool = True) -> Measured:
    """Run ``argv`` to completion, measuring wall, tree CPU and (with psutil) peak tree RSS.

    CPU comes from RUSAGE_CHILDREN before and after, so only one measured process may run at a
    time (the scripts run them in sequence)."""
    import psutil

    cpu_before = _children_cpu()
    began = time.perf_counter()
    child = psutil.Popen(list(argv), env=env if env is not None else bench_env(), cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                tree = [child, *child.children(recursive=True)]
                total = 0
                for process in tree:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
                peak = max(peak, total)
            except psutil.Error:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_rss:
        sampler.start()
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - began
    done.set()
    if sample_rss:
        sampler.join()
    cpu = _children_cpu() - cpu_before
    if check and child.returncode != 0:
        raise SystemExit(f"command failed ({child.returncode}): {' '.join(argv)}\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return Measured(wall=wall, cpu=cpu, peak_mb=peak / 2**20, stdout=stdout, stderr=stderr)


def bench_folder(name: str) -> tempfile.TemporaryDirectory:
    """A scratch folder ``/tmp/bench-<name>-*`` (shown as ``$BENCH`` in the table)."""
    return tempfile.TemporaryDirectory(prefix=f"bench-{name}-", dir="/tmp")


def median_of(runs: int, once: Callable[[], Measured], before_each: Callable[[], None] | None = None) -> Measured:
    """Median wall (and the CPU of the median-wall run; peak RSS the max) over ``runs`` runs."""
    results = []
    for _ in range(max(1, runs)):
        if before_each:
            before_each()
        results.append(once())
    results.sort(key=lambda m: m.wall)
    middle = results[len(results) // 2]
    return Measured(wall=statistics.median(m.wall for m in results), cpu=middle.cpu,
                    peak_mb=max(m.peak_mb for m in results), stdout=middle.stdout, stderr=middle.stderr)


def shell_text(argv: Sequence[str]) -> str:
    """A command as one line for the table (this checkout's paths shortened)."""
    import re

    text = " ".join(str(a) for a in argv)
    text = text.replace(ffmpeg(), "ffmpeg").replace(sys.executable, "python")
    text = text.replace(str(Path(sys.executable).parent) + "/", "").replace(str(ROOT) + "/", "")
    return re.sub(r"/tmp/bench-[^/ ]+/", "$BENCH/", text)


# -------------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the results table: a figure, the baseline it is compared with, the goal."""

    case: str
    command: str
    wall: float | None = None
    cpu: float | None = None
    peak_mb: float | None = None
    figure: str = ""
    goal: str = ""
    met: bool | None = None
    notes: str = ""


@dataclass
class Report:
    """The rows of one benchmark script; printed as a table and, with ``--json``, saved for run_all."""

    title: str
    rows: list[Row] = field(default_factory=list)

    def add(self, case: str, command: str, measured: Measured | None = None, **facts) -> Row:
        row = Row(case=case, command=command, **facts)
        load = f"load {os.getloadavg()[0]:.1f}"
        row.notes = f"{row.notes}; {load}" if row.notes else load
        if measured is not None:
            row.wall, row.cpu, row.peak_mb = measured.wall, measured.cpu, measured.peak_mb
        self.rows.append(row)
        print(f"  {case:44s} {format_row(row)}", flush=True)
        return row

    def finish(self, json_path: str | None) -> None:
        print()
        print_table(self.title, self.rows)
        if json_path:
            Path(json_path).write_text(json.dumps({"title": self.title, "rows": [asdict(r) for r in self.rows]},
                                                  indent=1), encoding="utf-8")


def format_row(row: Row) -> str:
    parts = []
    if row.wall is not None:
        parts.append(f"wall {row.wall:7.2f} s")
    if row.cpu is not None:
        parts.append(f"cpu {row.cpu:7.2f} s")
    if row.peak_mb:
        parts.append(f"peak {row.peak_mb:6.0f} MB")
    if row.figure:
        parts.append(row.figure)
    if row.goal:
        parts.append(f"goal {row.goal}: {'met' if row.met else 'NOT met'}")
    return "  ".join(parts)


def print_table(title: str, rows: Sequence[Row]) -> None:
    def number(value: float | None, digits: int = 2) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    print(f"### {title}")
    print("| case | wall s | CPU s | peak MB | figure | goal | met | command |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        print(f"| {r.case} | {number(r.wall)} | {number(r.cpu)} | {number(r.peak_mb, 0) if r.peak_mb else ''} | "
              f"{r.figure} | {r.goal} | {met} | `{r.command}` |")
    print()
    for r in rows:
        if r.notes:
            print(f"- {r.case}: {r.notes}")
    print()


def common_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run per case")
    parser.add_argument("--runs", type=int, default=None, help="runs per measured case (median reported)")
    parser.add_argument("--json", help="also write the rows to this file (run_all.py reads it)")


def machine_line() -> str:
    return f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (other work on the machine skews wall times)"


# ---------------------------------------------------------------------------------- clips


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_clips(folder: Path, count: int, width: int, height: int, grain: int = 4, *,
               audio: Callable[[int], bool] = lambda n: n % 2 == 0, keyint: int | None = None,
               seconds: int = CLIP_SECONDS) -> list[Path]:
    """``count`` clips like Kling's: a slow pan over a real photo with temporal grain, 24 fps,
    H.264 High yuv420p crf 18; clip n carries an AAC 48 kHz stereo tone of 220·(n+1) Hz when
    ``audio(n)``. The grain sets the bitrate (4 gives the 7-15 Mb/s Kling delivers at 1080p; the
    rocket photo's detail would reach 25 Mb/s, so the rate is capped at 15 Mb/s).
    ``keyint`` None = x264's default GOP (one keyframe per 5 s clip)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for n in range(count):
        path = folder / f"clip{n + 1}.mp4"
        photo = PHOTOS[n % len(PHOTOS)]
        big_w, big_h = int(width * 1.25), int(height * 1.25)
        move = (f"scale={big_w}:{big_h}:force_original_aspect_ratio=increase:out_range=tv,crop={width}:{height}:"
                f"x='(in_w-out_w)*t/{seconds}':y='(in_h-out_h)*(0.5+0.4*sin(t))',noise=alls={grain}:allf=t,"
                "format=yuv420p")
        args = [ffmpeg(), "-v", "error", "-y", "-loop", "1", "-framerate", str(FPS), "-t", str(seconds), "-i", str(photo)]
        if audio(n):
            args += ["-f", "lavfi", "-t", str(seconds), "-i", f"sine=frequency={220 * (n + 1)}:sample_rate=48000"]
        args += ["-vf", move, "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-maxrate", "15M",
                 "-bufsize", "15M", "-pix_fmt", "yuv420p", "-r", str(FPS)]
        if keyint:
            args += ["-g", str(keyint), "-keyint_min", str(keyint), "-sc_threshold", "0"]
        if audio(n):
            args += ["-c:a", "aac", "-ac", "2", "-ar", "48000"]
        args.append(str(path))
        subprocess.run(args, check=True)
        clips.append(path)
    return clips


def strip_audio(clips: Sequence[Path], folder: Path) -> list[Path]:
    """Video-only copies (stream copy, same video bytes) for the no-audio cases."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for clip in clips:
        target = folder / clip.name
        subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(clip), "-map", "0:v", "-c", "copy", str(target)],
                       check=True)
        out.append(target)
    return out


def bitrates(clips: Sequence[Path], seconds: float = CLIP_SECONDS) -> str:
    return ", ".join(f"{c.stat().st_size * 8 / seconds / 1e6:.1f}" for c in clips)


def has_audio(clip: Path) -> bool:
    """Whether ``clip`` has an audio stream (PyAV, as the package's own probe uses)."""
    import av

    with av.open(str(clip)) as container:
        return bool(container.streams.audio)


# ------------------------------------------------------------------------------ baselines
# The exact commands of ../shared/assembly-baseline.md ("Exact commands"), as argv lists.


def _concat_list(clips: Sequence[Path], folder: Path, name: str = "list.txt") -> Path:
    listing = folder / name
    listing.write_text("".join(f"file '{c}'\n" for c in clips), encoding="utf-8")
    return listing


def concat_copy(clips: Sequence[Path], out: Path) -> list[list[str]]:
    """(c) the concat demuxer with stream copy: the floor of any hard-cut assembly."""
    listing = _concat_list(clips, out.parent)
    return [[ffmpeg(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
             "-movflags", "+faststart", str(out)]]


def concat_copy_audio_once(clips: Sequence[Path], out: Path, seconds: float = CLIP_SECONDS) -> list[list[str]]:
    """(c2) video by concat copy, every clip's audio (or silence) padded to its video and encoded once."""
    listing = _concat_list(clips, out.parent)
    args = [ffmpeg(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    chains, labels, inputs = [], [], 1
    for n, clip in enumerate(clips):
        if has_audio(clip):
            args += ["-i", str(clip)]
            chains.append(f"[{inputs}:a]aresample=48000,apad,atrim=0:{seconds}[a{n}]")
            inputs += 1
        else:
            chains.append(f"anullsrc=r=48000:cl=stereo,atrim=0:{seconds}[a{n}]")
        labels.append(f"[a{n}]")
    chains.append(f"{''.join(labels)}concat=n={len(clips)}:v=0:a=1[a]")
    return [[*args, "-filter_complex", ";".join(chains), "-map", "0:v", "-map", "[a]", "-c:v", "copy",
             "-c:a", "aac", "-movflags", "+faststart", str(out)]]


def _audio_inputs_and_chains(clips: Sequence[Path], seconds: float) -> tuple[list[str], list[str]]:
    args, chains = [], []
    for n, clip in enumerate(clips):
        args += ["-i", str(clip)]
        if has_audio(clip):
            chains.append(f"[{n}:a]aresample=48000,aformat=channel_layouts=stereo,apad,atrim=0:{seconds}[a{n}]")
        else:
            chains.append(f"anullsrc=r=48000:cl=stereo,atrim=0:{seconds}[a{n}]")
    return args, chains


def smart_render(clips: Sequence[Path], out: Path, preset: str = "veryfast",
                 seconds: float = CLIP_SECONDS) -> list[list[str]]:
    """(e) smart render of 0.5 s crossfades on 1 s-GOP clips: each body between the first keyframe
    >= 0.5 s and the last keyframe <= dur-0.5 s stream-copied into MPEG-TS, each transition (tail
    GOP + head GOP) rendered with xfade and libx264, the pieces joined by the concat demuxer with
    copy, the audio rendered once with acrossfade and muxed in. Keyframes are every second (keyint
    24 at 24 fps), so bodies are cut at whole seconds by GOP-aligned frame counts."""
    work = out.parent / f"smart-{out.stem}"
    work.mkdir(parents=True, exist_ok=True)
    gop = 1.0
    head = math.ceil(XFADE / gop) * gop  # first keyframe >= 0.5 s
    tail = math.floor((seconds - XFADE) / gop) * gop  # last keyframe <= dur - 0.5 s
    commands: list[list[str]] = []
    pieces: list[Path] = []
    last = len(clips) - 1
    encode = ["-c:v", "libx264", "-preset", preset, "-crf", "23", "-pix_fmt", "yuv420p"]
    for n, clip in enumerate(clips):
        start = 0.0 if n == 0 else head
        end = seconds if n == last else tail
        body = work / f"body{n}.ts"
        commands.append([ffmpeg(), "-v", "error", "-y", "-ss", f"{start}", "-i", str(clip), "-map", "0:v", "-c", "copy",
                         "-frames:v", str(round((end - start) * FPS)), "-bsf:v", "h264_mp4toannexb", "-f", "mpegts",
                         str(body)])
        pieces.append(body)
        if n < last:
            join = work / f"join{n}.ts"
            length = seconds - tail  # the tail GOP of this clip, then the head GOP of the next
            commands.append([ffmpeg(), "-v", "error", "-y", "-ss", f"{tail}", "-i", str(clip), "-i", str(clips[n + 1]),
                             "-filter_complex",
                             f"[0:v]trim=duration={length},setpts=PTS-STARTPTS[x];"
                             f"[1:v]trim=duration={head},setpts=PTS-STARTPTS[y];"
                             f"[x][y]xfade=transition=fade:duration={XFADE}:offset={length - XFADE}[v]",
                             "-map", "[v]", *encode, "-bsf:v", "h264_mp4toannexb", "-f", "mpegts", str(join)])
            pieces.append(join)
    listing = _concat_list(pieces, work, "pieces.txt")
    audio_args, chains = _audio_inputs_and_chains(clips, seconds)
    label = "[a0]"
    for n in range(1, len(clips)):
        chains.append(f"{label}[a{n}]acrossfade=d={XFADE}[ax{n}]")
        label = f"[ax{n}]"
    audio = work / "audio.m4a"
    commands.append([ffmpeg(), "-v", "error", "-y", *audio_args, "-filter_complex", ";".join(chains),
                     "-map", label, "-c:a", "aac", str(audio)])
    commands.append([ffmpeg(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(audio),
                     "-map", "0:v", "-map", "1:a", "-c", "copy", "-movflags", "+faststart", str(out)])
    return commands


def run_commands(commands: Sequence[Sequence[str]]) -> Measured:
    """Several processes in sequence, measured as one case (wall and CPU summed, peak the max)."""
    total = Measured(wall=0.0, cpu=0.0, peak_mb=0.0)
    for argv in commands:
        one = run_process(argv)
        total.wall += one.wall
        total.cpu += one.cpu
        total.peak_mb = max(total.peak_mb, one.peak_mb)
    return total


MOVIEPY_CROSSFADE = """\
import os, sys
from moviepy import VideoFileClip, afx, concatenate_videoclips, vfx
out, xfade, clips = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
os.chdir(os.path.dirname(out))  # moviepy writes its temporary audio file to the cwd
opened = [VideoFileClip(c) for c in clips]
faded = [opened[0]]
for clip in opened[1:]:
    clip = clip.with_effects([vfx.CrossFadeIn(xfade)])
    if clip.audio is not None:
        clip = clip.with_audio(clip.audio.with_effects([afx.AudioFadeIn(xfade)]))
    faded.append(clip)
concatenate_videoclips(faded, method="compose", padding=-xfade).write_videofile(out, logger=None)
"""
"""(b) moviepy 2.x crossfades: CrossFadeIn on every incoming clip, AudioFadeIn on its audio,
compose with negative padding, every write_videofile argument at its default."""


def moviepy_crossfade(clips: Sequence[Path], out: Path) -> list[list[str]]:
    return [[sys.executable, "-c", MOVIEPY_CROSSFADE, str(out), str(XFADE), *map(str, clips)]]


# ------------------------------------------------------------------------- the fake Kling


@contextlib.contextmanager
def fake_kling(clip_for_prompt: Callable[[str], Path | None] | None = None, *,
               polls_to_finish: int = 1) -> Iterator[tuple[object, dict[str, str]]]:
    """The strict fake Kling of tests/fakes served on loopback; yields (fake, env for the CLI).

    ``clip_for_prompt`` maps a task's prompt to the MP4 the fake's CDN serves for it (real
    1080p clips for the assembly benchmarks); None keeps the fake's own tiny clips."""
    from tests.fakes import kling as fake_module
    from tests.fakes.server import serve

    original = fake_module.FakeTask.video_bytes
    if clip_for_prompt is not None:
        cache: dict[Path, bytes] = {}

        def video_bytes(task) -> bytes:
            prompt = json.dumps(task.body, ensure_ascii=False)
            clip = clip_for_prompt(prompt)
            if clip is None:
                return original.fget(task)
            if clip not in cache:
                cache[clip] = clip.read_bytes()
            return cache[clip]

        fake_module.FakeTask.video_bytes = property(video_bytes)
    fake = fake_module.FakeKling(polls_to_finish=polls_to_finish)
    try:
        with serve(fake) as base_url:
            yield fake, bench_env(KLINGAI_ACCESS_KEY=fake.access_key, KLINGAI_SECRET_KEY=fake.secret_key,
                                  KLINGAI_BASE_URL=base_url)
    finally:
        fake_module.FakeTask.video_bytes = original


def clear_outputs(project: Path) -> None:
    """Remove the cuts and the record of them, so the next assemble writes everything again
    (clips, journal and any per-clip caches stay: clips never change)."""
    from storyboard.workspace import Workspace

    space = Workspace.at(project)
    shutil.rmtree(space.out_dir, ignore_errors=True)
    space.outputs_record.unlink(missing_ok=True)
    shutil.rmtree(space.assemble_work_dir, ignore_errors=True)


def copy_example(name: str, folder: Path) -> Path:
    """A copy of ``projects/<name>`` without its generated state (benchmarks never write there)."""
    target = folder / name
    shutil.copytree(ROOT / "projects" / name, target, ignore=shutil.ignore_patterns(".storyboard", "out"))
    return target


def examples() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "projects").glob("*/storyboard.yaml"))


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def ratio_row(report: Report, case: str, command: str, measured: Measured, baseline: Measured,
              *, limit: float, plus: float = 0.0, faster: bool = False, baseline_name: str, notes: str = "") -> Row:
    """A case compared with a baseline of the same run: ``measured <= limit x baseline + plus`` or,
    with ``faster``, ``baseline / measured >= limit``. The goal is judged on wall time; the CPU
    ratio is printed beside it because it barely moves when other work shares the machine."""
    if faster:
        value = baseline.wall / measured.wall
        figure = f"{value:.2f}x faster than {baseline_name} (CPU {baseline.cpu / measured.cpu:.2f}x)"
        goal, met = f">= {limit:g}x", value >= limit
    else:
        value = measured.wall / baseline.wall
        figure = f"{value:.2f}x {baseline_name} (CPU {measured.cpu / baseline.cpu:.2f}x)"
        if plus:
            figure += f" (allowed {limit:g} x {baseline.wall:.2f} + {plus:g} = {limit * baseline.wall + plus:.2f} s)"
            goal = f"<= {limit:g}x + {plus:g} s"
        else:
            goal = f"<= {limit:g}x"
        met = measured.wall <= limit * baseline.wall + plus
    return report.add(case, command, measured, figure=figure, goal=goal, met=met, notes=notes)


# ------------------------------------------------------------------- generated projects

CAMPAIGN_BASE = """\
version: 1
name: Bench spot
defaults: {model: kling-v3, mode: std, aspect_ratio: "16:9", strategy: per_shot}
references:
  hero: refs/p0.png
vars: {blend: House}
shots:
  - id: open
    duration: 3
    start_frame: hero
    prompt: steam rises from a cup of {{ vars.blend }} coffee
  - id: close
    duration: 3
    prompt: a bag of {{ vars.blend }} beans on a wooden table
    caption: Good morning
"""


def write_campaign(folder: Path, products: int, ratios: Sequence[str], languages: dict[str, str]) -> Path:
    """A campaign of ``products`` x ``ratios`` x ``languages`` variants over a two-shot base
    (each product its own start image, each language its own caption)."""
    from PIL import Image

    (folder / "refs").mkdir(parents=True, exist_ok=True)
    for index in range(products):
        Image.new("RGB", (1024, 576), ((20 * index) % 256, 90, 160)).save(folder / "refs" / f"p{index}.png")
    write_text(folder / "storyboard.yaml", CAMPAIGN_BASE)
    product_lines = "\n".join(f"    p{i}:\n      vars: {{blend: Blend {i}}}\n      set: {{references.hero.image: refs/p{i}.png}}"
                              for i in range(products))
    language_lines = "\n".join(f"    {code}:\n      set: {{shots.close.caption: {text}}}" for code, text in languages.items())
    ratio_list = ", ".join(f'"{r}"' for r in ratios)
    write_text(folder / "campaign.yaml",
               "version: 1\nname: Bench campaign\nstoryboard: storyboard.yaml\nmatrix:\n  product:\n"
               f"{product_lines}\n  aspect_ratio: [{ratio_list}]\n  language:\n{language_lines}\n")
    return folder


def write_long_storyboard(folder: Path, shots: int, *, strategy: str = "auto", image_every: int = 3,
                          duration: int = 5) -> Path:
    """A generated storyboard of ``shots`` shots on kling-v3 std: every ``image_every``-th shot
    starts from a real photo, prompts and captions are templates over vars."""
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    shutil.copy(PHOTOS[1], folder / "refs" / "coffee.png")
    lines = [f"  - id: shot{n:04d}\n    duration: {duration}\n"
             f"    prompt: \"shot {n} of {{{{ vars.brand }}}}: the cup on a table, steam curling up, take {n}\""
             + ("\n    start_frame: cup" if image_every and n % image_every == 0 else "")
             + (f"\n    caption: \"{{{{ vars.brand }}}} {n}\"" if n % 5 == 0 else "")
             for n in range(shots)]
    return write_text(folder / "storyboard.yaml",
                      "version: 1\nname: Long board\n"
                      f"defaults: {{model: kling-v3, mode: std, aspect_ratio: \"16:9\", strategy: {strategy}, sound: false}}\n"
                      "references:\n  cup: {image: refs/coffee.png, description: a white cup of black coffee}\n"
                      "vars: {brand: Morning Roast}\n"
                      "shots:\n" + "\n".join(lines) + "\n").parent
