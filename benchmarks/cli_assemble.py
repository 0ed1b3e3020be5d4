"""`storyboard assemble` as a user runs it (a process, start to exit, every side file it writes by
default), against the baselines of ../shared/assembly-baseline.md measured in the same run.

Why processes: the in-process figures of benchmarks/assemble.py leave out start-up, imports,
probing and the side files (SRT, OTIO, EDL, contact sheet), which is where issue 13 found most of
the time. The clips are rendered through the real Kling client (``storyboard render``) against
the strict fake Kling served on loopback, whose CDN hands out these clips, so the assembler reads
exactly what a Kling render leaves behind.

Clips: six 5 s 1080p24 H.264 (7-15 Mb/s), a pan over a real photo with grain; clips 1, 3, 5 carry
AAC audio. Cases and goals (issue 13):

* hard cuts: ``storyboard assemble`` <= 1.5x ffmpeg concat copy + audio rendered once (c2);
* no clip with audio: <= 1.2x plain concat copy (c) + 0.3 s;
* 0.5 s crossfades: >= 5x faster than moviepy 2.x (CrossFadeIn + padding, defaults) and within
  1.5x of smart render (e: copy the GOPs between transitions, render only the transitions; on
  copies of the clips with a 1 s GOP, as the baseline describes). Ours runs on the default-GOP
  clips (one keyframe per clip, as x264 makes them) and on the 1 s GOP copies.

    .venv/bin/python benchmarks/cli_assemble.py                 # full (moviepy alone takes ~5 min)
    .venv/bin/python benchmarks/cli_assemble.py --quick         # 720p, three clips, one run
    .venv/bin/python benchmarks/cli_assemble.py --no-moviepy --no-crossfades
    .venv/bin/python benchmarks/cli_assemble.py --profile       # + cProfile of the hard-cut command
"""

from __future__ import annotations

import argparse
import pstats
import re
import shutil
import sys
from pathlib import Path

import harness
from harness import CLIP_SECONDS, FPS, XFADE, Report, storyboard_argv


def storyboard_yaml(count: int, height: int, *, sound: list[bool], transition: str = "cut") -> str:
    mode = "pro" if height >= 1080 else "std"
    shots = "\n".join(
        f"  - id: s{n + 1}\n    duration: {CLIP_SECONDS}\n    prompt: \"bench shot {n + 1}: a slow pan over a photograph\"\n"
        f"    sound: {'true' if sound[n] else 'false'}"
        for n in range(count))
    return (f"version: 1\nname: Assembly bench\n"
            f"defaults: {{model: kling-v3, mode: {mode}, aspect_ratio: \"16:9\", strategy: per_shot, sound: false}}\n"
            f"shots:\n{shots}\n"
            f"cut: {{transition: {transition}}}\n"
            f"outputs:\n  - {{name: landscape, aspect_ratio: \"16:9\", height: {height}, fps: {FPS}}}\n")


def render_project(folder: Path, clips: list[Path], *, transition: str, report: Report) -> Path:
    """Write a project whose shot n is clip n, render it through the Kling client against the
    fake on loopback (``storyboard render --provider kling --yes``), and return it."""
    sound = [harness.has_audio(c) for c in clips]
    harness.write_text(folder / "storyboard.yaml", storyboard_yaml(len(clips), _height(clips[0]), sound=sound,
                                                                   transition=transition))

    def clip_for(prompt: str) -> Path | None:
        found = re.search(r"bench shot (\d+):", prompt)
        return clips[int(found.group(1)) - 1] if found else None

    with harness.fake_kling(clip_for) as (fake, env):
        argv = storyboard_argv("render", str(folder), "--provider", "kling", "--yes", "--concurrency", "6")
        measured = harness.run_process(argv, env=env)
        creates = sum(fake.creates.values())
    if creates != len(clips):
        raise SystemExit(f"{creates} creates for {len(clips)} shots")
    report.add(f"setup: render {folder.name} (fake Kling, loopback)", harness.shell_text(argv), measured,
               notes=f"{creates} creates")
    return folder


def _height(clip: Path) -> int:
    import av

    with av.open(str(clip)) as container:
        return container.streams.video[0].height


def assemble(project: Path, runs: int) -> tuple[harness.Measured, str]:
    argv = storyboard_argv("assemble", str(project), "--provider", "kling")
    measured = harness.median_of(runs, lambda: harness.run_process(argv), lambda: harness.clear_outputs(project))
    made = sorted(p.name for p in (project / "out").rglob("*") if p.is_file())
    if not any(name.endswith(".mp4") for name in made):
        raise SystemExit(f"assemble wrote no video in {project}: {made}")
    return measured, harness.shell_text(argv) + f"   # writes {', '.join(made)}"


def baseline(commands: list[list[str]], runs: int) -> harness.Measured:
    return harness.median_of(runs, lambda: harness.run_commands(commands))


def profile(project: Path, top: int = 10) -> None:
    """cProfile of the hard-cut command as a process; prints the top functions by cumulative time."""
    harness.clear_outputs(project)
    stats_file = project.parent / "assemble.prof"
    argv = [sys.executable, "-m", "cProfile", "-o", str(stats_file), *storyboard_argv("assemble", str(project),
                                                                                       "--provider", "kling")]
    measured = harness.run_process(argv)
    print(f"\nprofile: {harness.shell_text(argv)}  (wall {measured.wall:.2f} s under cProfile)")
    stats = pstats.Stats(str(stats_file))
    stats.sort_stats("cumulative")
    rows = []
    for (filename, line, function), (_calls, primitive, _tottime, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((cumulative, primitive, f"{Path(filename).name}:{line}({function})"))
    rows.sort(reverse=True)
    interesting = [r for r in rows if "storyboard" in r[2] or not r[2].startswith(("<", "~"))]
    print(f"top {top * 3} functions by cumulative time (seconds, calls):")
    for cumulative, calls, name in interesting[: top * 3]:
        print(f"  {cumulative:8.2f}  {calls:7d}  {name}")
    ours = [r for r in rows if re.search(r"^(video|sidefiles|timeline|media|engine|pipeline|assemble|review|workspace|"
                                         r"journal|loader|planner)\.py", r[2])]
    print(f"top {top} storyboard functions by cumulative time:")
    for cumulative, calls, name in ours[:top]:
        print(f"  {cumulative:8.2f}  {calls:7d}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.common_arguments(parser)
    parser.add_argument("--no-moviepy", action="store_true", help="skip moviepy's crossfade (~5 min at 1080p)")
    parser.add_argument("--no-crossfades", action="store_true", help="hard cuts only")
    parser.add_argument("--profile", action="store_true", help="also profile the hard-cut command")
    parser.add_argument("--cases", default="cuts,silent,smart,xfade,moviepy,g24",
                        help="comma-separated subset of cuts,silent,smart,xfade,moviepy,g24 (each with its baseline)")
    parser.add_argument("--grain", type=int, default=4, help="clip grain (sets the bitrate; 4 = 7-15 Mb/s at 1080p)")
    args = parser.parse_args()
    wanted = set(args.cases.split(","))
    if args.no_moviepy:
        wanted.discard("moviepy")
    if args.no_crossfades:
        wanted -= {"smart", "xfade", "moviepy", "g24"}
    width, height, count = (1280, 720, 3) if args.quick else (1920, 1080, 6)
    runs = args.runs or (1 if args.quick else 3)
    slow_runs = 1 if args.quick else max(1, runs // 2)  # crossfade cases take a minute or more each
    report = Report(f"storyboard assemble end to end ({count} x {CLIP_SECONDS} s {height}p{FPS} clips)")
    harness.warm_up()
    print(harness.machine_line())
    with harness.bench_folder("assemble") as tmp:
        folder = Path(tmp)
        clips = harness.make_clips(folder / "clips", count, width, height, args.grain)
        silent = harness.strip_audio(clips, folder / "clips-silent")
        print(f"clips {width}x{height}, Mb/s: {harness.bitrates(clips)}; audio on "
              f"{[n + 1 for n, c in enumerate(clips) if harness.has_audio(c)]}")

        if "cuts" in wanted or args.profile:
            cuts = render_project(folder / "cuts", clips, transition="cut", report=report)
        if "cuts" in wanted:
            c2 = baseline(harness.concat_copy_audio_once(clips, folder / "c2.mp4"), runs)
            report.add("c2: ffmpeg concat copy + audio rendered once", "ffmpeg -f concat -c:v copy + audio filter, "
                       "one AAC encode (assembly-baseline.md c2)", c2)
            ours, command = assemble(cuts, runs)
            harness.ratio_row(report, "storyboard assemble, hard cuts", command, ours, c2, limit=1.5, baseline_name="c2")

        if "silent" in wanted:
            quiet = render_project(folder / "silent", silent, transition="cut", report=report)
            c = baseline(harness.concat_copy(silent, folder / "c.mp4"), runs)
            report.add("c: ffmpeg concat copy (no audio)", "ffmpeg -f concat -safe 0 -i list.txt -c copy "
                       "(assembly-baseline.md c)", c)
            ours, command = assemble(quiet, runs)
            harness.ratio_row(report, "storyboard assemble, hard cuts, no audio", command, ours, c, limit=1.2,
                              plus=0.3, baseline_name="c")

        if args.profile:
            profile(cuts)

        smart = ours_xfade = moviepy = None
        if wanted & {"smart", "g24", "xfade"}:
            g24_clips = harness.make_clips(folder / "clips-g24", count, width, height, args.grain, keyint=FPS)
            smart = baseline(harness.smart_render(g24_clips, folder / "smart.mp4"), runs)
            report.add("e: smart render, veryfast, 1 s GOP clips", "ffmpeg: bodies -c copy to .ts, transitions xfade "
                       "libx264 veryfast crf 23, concat copy + acrossfade audio (assembly-baseline.md e)", smart)
        if "moviepy" in wanted:
            moviepy = baseline(harness.moviepy_crossfade(clips, folder / "moviepy.mp4"), 1)
            report.add("b: moviepy 2.x crossfades (CrossFadeIn + padding, defaults)",
                       "python -c '<moviepy CrossFadeIn(0.5), compose, padding=-0.5, write_videofile defaults>'",
                       moviepy)
        if "xfade" in wanted:
            xfade = render_project(folder / "xfade", clips, transition=f"crossfade {XFADE}", report=report)
            ours_xfade, command = assemble(xfade, slow_runs)
            if moviepy is not None:
                harness.ratio_row(report, "storyboard assemble, 0.5 s crossfades", command, ours_xfade, moviepy,
                                  limit=5, faster=True, baseline_name="moviepy")
            if smart is not None:
                harness.ratio_row(report, "storyboard assemble, crossfades (vs smart render)", command, ours_xfade,
                                  smart, limit=1.5, baseline_name="smart render")
        if "g24" in wanted and smart is not None:
            xfade_g24 = render_project(folder / "xfade-g24", g24_clips, transition=f"crossfade {XFADE}", report=report)
            ours_g24, command = assemble(xfade_g24, slow_runs)
            harness.ratio_row(report, "storyboard assemble, crossfades, 1 s GOP clips", command, ours_g24, smart,
                              limit=1.5, baseline_name="smart render")
        shutil.rmtree(folder, ignore_errors=True)
    report.finish(args.json)


if __name__ == "__main__":
    main()
