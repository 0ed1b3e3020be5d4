"""Benchmark: our assembler against plain moviepy 2.2.1 and raw ffmpeg, measured in one run.

Why: the assembler's speed goals are ratios against baselines (see
../shared/assembly-baseline.md), and machines differ, so every baseline is measured here, on
the same clips, in the same run. Each case runs in its own Python process, so its peak memory
(the whole process tree, ffmpeg children included, sampled with psutil every 50 ms) is its own.

    .venv/bin/python benchmarks/assemble.py            # 1080p, six 5 s clips (takes a few minutes)
    .venv/bin/python benchmarks/assemble.py --quick    # 720p, three clips
    .venv/bin/python benchmarks/assemble.py --no-moviepy --runs 3
    .venv/bin/python benchmarks/assemble.py --runs 3 --before /tmp/old-checkout   # + the old assembler
    .venv/bin/python benchmarks/assemble.py --cases c2_hybrid_copy_audio,ours_cuts --runs 5

Clips: 24 fps, 5 s, H.264 High yuv420p crf 18 (preset veryfast to keep generation short), x264
default GOP (keyint 250: one keyframe per clip), a slow pan over a photo from ../shared/media
with temporal grain; odd clips carry an AAC 48 kHz stereo tone, even clips have no audio.
The grain sets the bitrate, very steeply (x264 at crf 18: ``noise=alls=3`` gives ~5 Mb/s at 1080p,
4 gives ~14, 5 ~28, 6 ~45): the default, 4, puts the clips at the top of the 7-15 Mb/s that
Kling delivers (assembly-baseline.md); ``--grain 6`` makes the 3-4x heavier clips this script
used to make, where decoding alone costs ~25 ms a 1080p frame. The clips' bitrate is printed.
Cuts: all clips with hard cuts, and all clips with 0.5 s crossfades.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"  # ../shared beside the checkout
PHOTOS = ["astronaut.png", "coffee.png", "rocket.jpg", "chelsea.png"]
FPS = 24
SECONDS = 5
XFADE = 0.5


# ------------------------------------------------------------------------------------- clips


def make_clips(folder: Path, count: int, width: int, height: int, grain: int = 4) -> list[Path]:
    from storyboard.media import ffmpeg_exe

    clips = []
    for n in range(count):
        path = folder / f"clip{n + 1}.mp4"
        photo = MEDIA / PHOTOS[n % len(PHOTOS)]
        big_w, big_h = int(width * 1.25), int(height * 1.25)
        move = (f"scale={big_w}:{big_h}:force_original_aspect_ratio=increase:out_range=tv,crop={width}:{height}:"
                f"x='(in_w-out_w)*t/{SECONDS}':y='(in_h-out_h)*(0.5+0.4*sin(t))',noise=alls={grain}:allf=t,format=yuv420p")
        args = [ffmpeg_exe(), "-v", "error", "-y", "-loop", "1", "-framerate", str(FPS), "-t", str(SECONDS), "-i", str(photo)]
        has_audio = n % 2 == 0
        if has_audio:
            args += ["-f", "lavfi", "-t", str(SECONDS), "-i", f"sine=frequency={220 * (n + 1)}:sample_rate=48000"]
        args += ["-vf", move, "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-r", str(FPS)]
        if has_audio:
            args += ["-c:a", "aac", "-ac", "2", "-ar", "48000"]
        args.append(str(path))
        subprocess.run(args, check=True)
        clips.append(path)
    return clips


# ------------------------------------------------------------------------------------- cases


def _timeline(clips: list[Path], width: int, height: int, transition: str, audio):
    from storyboard.assemble.timeline import OutputFormat, ShotSegment, lay_out
    from storyboard.load.spec import Transition

    join = Transition(type=transition, duration=XFADE if transition != "cut" else 0)
    items = [ShotSegment(shot_id=f"s{n + 1}", request=None, clip=clip, source_in_frame=0, source_fps=FPS,
                         frames=SECONDS * FPS, transition=join, caption=None, prompt="") for n, clip in enumerate(clips)]
    output = OutputFormat(name="bench", aspect_ratio="16:9", width=width, height=height, fps=FPS, reframe="crop")
    return lay_out("bench", output, items, audio=audio)  # record starts, overlaps, framing: as storyboards get them


def run_case(case: str, clips: list[Path], width: int, height: int, out: Path) -> dict:
    """Runs inside the child process; returns extra facts about the case.

    ``before_<case>`` runs ``<case>`` with the storyboard package of ``--before`` (the child puts
    that folder first on sys.path), so old and new assemblers are measured in the same run."""
    case = case.removeprefix("before_")
    from storyboard.load.spec import Audio
    from storyboard.media import ffmpeg_exe

    ff = ffmpeg_exe()
    work = out.parent / f"work-{case}"
    if case.startswith("ours_"):
        from storyboard.assemble.video import assemble_timeline

        transition = "crossfade" if case == "ours_xfade" else "cut"
        audio = {
            "ours_cuts": Audio(),  # defaults: keep clip audio, loudnorm to -14 LUFS
            "ours_cuts_no_loudnorm": Audio(loudness_lufs=None),
            "ours_cuts_video_only": Audio(clip_audio="drop", loudness_lufs=None),
            "ours_xfade": Audio(),
        }[case]
        report = assemble_timeline(_timeline(clips, width, height, transition, audio), out, work_dir=work)
        return {"path": report.path_taken, "copied_frames": report.copied_frames}
    listing = out.parent / "list.txt"
    listing.write_text("".join(f"file '{c}'\n" for c in clips))
    if case == "c_concat_copy":
        subprocess.run([ff, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                        "-movflags", "+faststart", str(out)], check=True)
    elif case == "c2_hybrid_copy_audio":
        from storyboard.media import probe

        args = [ff, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
        chains, labels = [], []
        for n, clip in enumerate(clips):
            facts = probe(clip, count_frames=False)
            if facts.has_audio:
                args += ["-i", str(clip)]
                source = f"[{sum(1 for a in args if a == '-i') - 1}:a]"
                chains.append(f"{source}aresample=48000,apad,atrim=0:{facts.duration}[a{n}]")
            else:
                chains.append(f"anullsrc=r=48000:cl=stereo,atrim=0:{facts.duration}[a{n}]")
            labels.append(f"[a{n}]")
        chains.append(f"{''.join(labels)}concat=n={len(clips)}:v=0:a=1[a]")
        subprocess.run([*args, "-filter_complex", ";".join(chains), "-map", "0:v", "-map", "[a]", "-c:v", "copy",
                        "-c:a", "aac", "-movflags", "+faststart", str(out)], check=True)
    elif case == "d_xfade_veryfast":
        from storyboard.media import probe

        args = [ff, "-v", "error", "-y"]
        chains = []
        for n, clip in enumerate(clips):
            args += ["-i", str(clip)]
            if probe(clip, count_frames=False).has_audio:
                chains.append(f"[{n}:a]aresample=48000,aformat=channel_layouts=stereo,apad,atrim=0:{SECONDS}[a{n}]")
            else:
                chains.append(f"anullsrc=r=48000:cl=stereo,atrim=0:{SECONDS}[a{n}]")
        video, audio_label = "[0:v]", "[a0]"
        for n in range(1, len(clips)):
            offset = n * (SECONDS - XFADE)
            chains.append(f"{video}[{n}:v]xfade=transition=fade:duration={XFADE}:offset={offset}[v{n}]")
            chains.append(f"{audio_label}[a{n}]acrossfade=d={XFADE}[ax{n}]")
            video, audio_label = f"[v{n}]", f"[ax{n}]"
        subprocess.run([*args, "-filter_complex", ";".join(chains), "-map", video, "-map", audio_label,
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-c:a", "aac",
                        str(out)], check=True)
    elif case.startswith("mp_"):
        import os

        from moviepy import VideoFileClip, afx, concatenate_videoclips, vfx

        os.chdir(out.parent)  # moviepy writes its temporary audio file to the cwd
        opened = [VideoFileClip(str(c)) for c in clips]
        if case == "mp_chain":
            final = concatenate_videoclips(opened, method="chain")
        else:
            faded = [opened[0]]
            for clip in opened[1:]:
                clip = clip.with_effects([vfx.CrossFadeIn(XFADE)])
                if clip.audio is not None:
                    clip = clip.with_audio(clip.audio.with_effects([afx.AudioFadeIn(XFADE)]))
                faded.append(clip)
            final = concatenate_videoclips(faded, method="compose", padding=-XFADE)
        final.write_videofile(str(out), logger=None)
        for clip in opened:
            clip.close()
    else:
        raise SystemExit(f"unknown case {case}")
    return {}


# ------------------------------------------------------------------------------ measurement


def measure(case: str, clips: list[Path], width: int, height: int, folder: Path, before: Path | None) -> dict:
    """Run one case in a child process, sampling the peak RSS of its whole process tree."""
    import psutil

    out = folder / f"{case}.mp4"
    out.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--child", case, "--size", f"{width}x{height}", "--out", str(out),
               *map(str, clips)]
    if case.startswith("before_"):
        command[4:4] = ["--root", str(before)]
    began = time.perf_counter()
    child = psutil.Popen(command, stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                tree = [child, *child.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = child.communicate()
    wall = time.perf_counter() - began
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"case {case} failed")
    from storyboard.media import probe

    facts = probe(out)
    extra = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    return {"case": case, "wall": wall, "peak_mb": peak / 2**20, "frames": facts.frames, "seconds": facts.duration,
            "audio": facts.has_audio, "mb": out.stat().st_size / 1e6, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="720p, three clips")
    parser.add_argument("--runs", type=int, default=1, help="runs per case (median reported)")
    parser.add_argument("--no-moviepy", action="store_true", help="skip the slow moviepy cases")
    parser.add_argument("--grain", type=int, default=4, help="temporal grain of the clips (sets their bitrate)")
    parser.add_argument("--cases", help="comma-separated cases to run (default: all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="cut the clips this many times over (6 clips x 10 = a 60-shot cut) to show that "
                             "memory stays flat with the number of clips; moviepy cases are skipped (13 GB at 60)")
    parser.add_argument("--before", type=Path,
                        help="a checkout of an older storyboard: its assembler runs as before_ours_* cases")
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("clips", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.root:
            sys.path.insert(0, args.root)
        width, height = map(int, args.size.split("x"))
        extra = run_case(args.child, [Path(c) for c in args.clips], width, height, Path(args.out))
        print(json.dumps(extra))
        return

    width, height, count = (1280, 720, 3) if args.quick else (1920, 1080, 6)
    cases = ["c_concat_copy", "ours_cuts_video_only", "c2_hybrid_copy_audio", "ours_cuts_no_loudnorm", "ours_cuts",
             "d_xfade_veryfast", "ours_xfade"]
    if not args.no_moviepy and args.repeat == 1:
        cases += ["mp_chain", "mp_xfade"]
    if args.before:
        cases += [f"before_{c}" for c in cases if c.startswith("ours_")]
    if args.cases:
        cases = [c for c in args.cases.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="bench-assemble-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        made = make_clips(folder, count, width, height, args.grain)
        rates = ", ".join(f"{c.stat().st_size * 8 / SECONDS / 1e6:.1f}" for c in made)
        print(f"{count} clips {width}x{height} {FPS} fps {SECONDS} s, grain {args.grain}, made in "
              f"{time.perf_counter() - began:.1f} s; Mb/s: {rates}")
        clips = made * args.repeat
        if args.repeat > 1:
            print(f"cutting them {args.repeat} times over: {len(clips)} shots")
        results = {}
        for case in cases:
            runs = [measure(case, clips, width, height, folder, args.before) for _ in range(args.runs)]
            walls = [r["wall"] for r in runs]
            best = dict(runs[0])
            best["wall"] = statistics.median(walls)
            best["peak_mb"] = max(r["peak_mb"] for r in runs)
            results[case] = best
            print(f"  {case:28s} {best['wall']:7.2f} s  (runs: {', '.join(f'{w:.2f}' for w in walls)})", flush=True)

    print()
    print("| case | out s | frames | audio | wall s (median) | RTF | peak tree RSS MB | file MB | path |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, r in results.items():
        print(f"| {case} | {r['seconds']:.2f} | {r['frames']} | {'yes' if r['audio'] else 'no'} | {r['wall']:.2f} | "
              f"{r['seconds'] / r['wall']:.1f} | {r['peak_mb']:.0f} | {r['mb']:.1f} | {r.get('path', '')} |")
    print()

    def ratio(a: str, b: str, goal: str) -> None:
        if a in results and b in results:
            print(f"{a} / {b} = {results[a]['wall'] / results[b]['wall']:.2f}x wall time   (goal: {goal})")

    ratio("ours_cuts_video_only", "c_concat_copy", "<= 1.5")
    ratio("ours_cuts_no_loudnorm", "c2_hybrid_copy_audio", "<= 1.5")
    ratio("ours_cuts", "c2_hybrid_copy_audio", "<= 1.5; ours also runs loudnorm")
    ratio("mp_xfade", "ours_xfade", ">= 5")
    ratio("d_xfade_veryfast", "ours_xfade", "> 1")
    ratio("mp_chain", "ours_cuts", "")
    for case in [c for c in results if c.startswith("before_")]:
        new = case.removeprefix("before_")
        ratio(case, new, "old / new")
    if "before_ours_cuts" in results:
        ratio("before_ours_cuts", "c2_hybrid_copy_audio", "old assembler, <= 1.5")
    if "before_ours_xfade" in results:
        ratio("mp_xfade", "before_ours_xfade", "old assembler, >= 5")


if __name__ == "__main__":
    main()
