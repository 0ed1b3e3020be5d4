"""The preview provider as a user runs it: `storyboard render --provider preview` (a process) on a
720p storyboard, in seconds of video per second of wall time (goal: >= 8x realtime).

Why a process: benchmarks/preview.py times ``render_preview`` in-process; the user also pays for
start-up, planning, the journal and verifying each clip. The storyboard mixes what the preview
draws: pushes, pans, an orbit, a roll, a static shot, an end-frame dissolve and text cards, over
the real photos in projects/cat-boards/refs; 10 requests, 55 s of video. Baseline, same run: the
bundled ffmpeg encoding as many 720p frames of ``testsrc2`` with x264 ultrafast (the encoder alone).

``--baseline-tree DIR`` also times the same command with another checkout's package (e.g. an
unchanged copy of main: ``git archive main | tar -x -C /tmp/base``), its runs interleaved with this
tree's, so a before/after on a loaded machine compares like with like.

    .venv/bin/python benchmarks/preview_cli.py [--quick] [--runs 3] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import harness
from harness import FPS, Report, storyboard_argv

SHOTS = [  # id, seconds, start frame, end frame, camera
    ("launch", 5, "rocket", None, "slow push-in"),
    ("cat", 5, "chelsea", None, "pan left"),
    ("cup", 5, "coffee", None, "orbit right"),
    ("suit", 5, "astronaut", None, "static"),
    ("morph", 5, "astronaut", "chelsea", "dolly in"),
    ("pour", 10, "coffee", "rocket", "crane up"),
    ("title", 5, None, None, None),
    ("roll", 5, "chelsea", None, "slow clockwise roll"),
    ("harbour", 5, None, None, None),
    ("tilt", 5, "rocket", None, "tilt down"),
]


def write_project(folder: Path, height: int) -> Path:
    refs = folder / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    lines = []
    for photo in harness.PHOTOS:
        shutil.copy(photo, refs / photo.name)
        lines.append(f"  {photo.stem}: refs/{photo.name}")
    shots = []
    for shot_id, seconds, start, end, camera in SHOTS:
        text = f"  - id: {shot_id}\n    duration: {seconds}\n    prompt: \"{shot_id}: a cinematic shot, soft light\""
        if start:
            text += f"\n    start_frame: {start}"
        if end:
            text += f"\n    end_frame: {end}"
        if camera:
            text += f"\n    camera: {camera}"
        shots.append(text)
    mode = "std" if height <= 720 else "pro"
    return harness.write_text(folder / "storyboard.yaml",
                              f"version: 1\nname: Preview bench\n"
                              f"defaults: {{model: kling-v3, mode: {mode}, aspect_ratio: \"16:9\", strategy: per_shot, "
                              "sound: false}\nreferences:\n" + "\n".join(lines) + "\nshots:\n" + "\n".join(shots)
                              + "\n").parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.common_arguments(parser)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--baseline-tree", type=Path, help="another checkout to time the same command with")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    report = Report(f"preview provider through the CLI ({args.height}p)")
    print(harness.machine_line())
    with harness.bench_folder("preview") as tmp:
        project = write_project(Path(tmp) / "preview", args.height)
        plan_file = Path(tmp) / "plan.json"
        harness.run_process(storyboard_argv("plan", str(project), "--json", "-o", str(plan_file)))
        requests = json.loads(plan_file.read_text(encoding="utf-8"))["requests"]
        seconds = sum(r["duration"] for r in requests)
        frames = sum(r["duration"] * r["fps"] for r in requests)
        width = args.height * 16 // 9

        from storyboard.workspace import Workspace

        argv = storyboard_argv("render", str(project), "--provider", "preview")

        def fresh() -> None:
            shutil.rmtree(Workspace.at(project).state_dir, ignore_errors=True)

        trees = [("this tree", harness.bench_env())]
        if args.baseline_tree:
            trees.append((f"baseline {args.baseline_tree}", harness.bench_env(PYTHONPATH=str(args.baseline_tree.resolve()))))
        results: dict[str, list[harness.Measured]] = {name: [] for name, _ in trees}
        for _ in range(runs):  # interleaved: load changes hit both trees alike
            for name, env in trees:
                fresh()
                results[name].append(harness.run_process(argv, env=env))
        measured = harness.median_of(len(results["this tree"]), iter(results["this tree"]).__next__)
        encode = [harness.ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{args.height}:rate={FPS}",
                  "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p",
                  str(Path(tmp) / "baseline.mp4")]
        baseline = harness.median_of(runs, lambda: harness.run_process(encode))
        report.add(f"encode only: ffmpeg testsrc2 {frames} frames, ultrafast", harness.shell_text(encode), baseline,
                   figure=f"{seconds / baseline.wall:.1f}x realtime")
        realtime = seconds / measured.wall
        report.add(f"storyboard render --provider preview, {len(requests)} requests, {seconds:g} s", harness.shell_text(argv),
                   measured, figure=f"{realtime:.2f}x realtime ({measured.cpu / seconds:.3f} CPU-s per video-s; "
                                    f"{measured.wall / baseline.wall:.2f}x encode-only)",
                   goal=">= 8x realtime", met=realtime >= 8)
        if args.baseline_tree:
            before = harness.median_of(runs, iter(results[trees[1][0]]).__next__)
            report.add(f"same, baseline tree {args.baseline_tree.name}", harness.shell_text(argv), before,
                       figure=f"{seconds / before.wall:.2f}x realtime ({before.cpu / seconds:.3f} CPU-s per video-s); "
                              f"this tree {before.wall / measured.wall:.2f}x faster wall, "
                              f"{before.cpu / measured.cpu:.2f}x less CPU")
    report.finish(args.json)


if __name__ == "__main__":
    main()
