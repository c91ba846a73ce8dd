#!/usr/bin/env python3
"""Compositor benchmark: Lucid rendering a 720p clip with 0, 1, 2 and 4 layers over it into a
recording, against FFmpeg's own filter graph doing the same composite (`overlay` for each
layer with `blend=screen` at half opacity) and the same encode, in the same run: wall time,
CPU time and the ratio; and Lucid's GPU time per layer pass, from `--stats-json`
(`layers[].pass_ms`: GPU timestamps, lavapipe's on a machine without a GPU).

Each layer is the same clip played again (its own source and decode thread, as any layer
has), blended with `screen` at opacity 0.5. Lucid renders offline (every frame).

Usage: scripts/bench_layers.py [--lucid PATH] [--seconds N] [--layers 0,1,2,4]
                               [--layer-effect NAME]

--layer-effect gives every layer its own effect (Lucid's `--layer-effect N:NAME`; FFmpeg's
side stays the plain blend), to see what a layer's own chain costs.
"""
import argparse, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_render import last_stats, timed  # noqa: E402  (one timing rule for both)


def make_clip(d, w, h, seconds):
    path = os.path.join(d, f"clip-{w}x{h}.mp4")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=30:duration={seconds}",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
                    path], check=True)
    return path


def ffmpeg_composite(clip, n, out):
    """The same composite in FFmpeg: n copies blended with screen at 0.5, x264 as Lucid's."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    for _ in range(n + 1):
        cmd += ["-i", clip]
    if n == 0:
        graph = "[0:v]null[out]"
    else:
        parts, prev = [], "[0:v]"
        for i in range(1, n + 1):
            parts.append(f"{prev}[{i}:v]blend=all_mode=screen:all_opacity=0.5[b{i}]")
            prev = f"[b{i}]"
        graph = ";".join(parts) + f";{prev}null[out]"
    cmd += ["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast",
            "-tune", "zerolatency", "-crf", "18", out]
    return cmd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=None)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--layers", default="0,1,2,4")
    ap.add_argument("--layer-effect", default=None)
    args = ap.parse_args()
    lucid = args.lucid or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "lucid")
    counts = [int(c) for c in args.layers.split(",")]
    d = tempfile.mkdtemp(prefix="lucid-bench-layers-")
    try:
        clip = make_clip(d, 1280, 720, args.seconds)
        print(f"720p, {args.seconds:.0f} s at 30 fps; layers blended with screen at 0.5; "
              f"x264 veryfast on both sides"
              + (f"; each Lucid layer with its own {args.layer_effect}" if args.layer_effect
                 else ""))
        print("| layers | FFmpeg wall | FFmpeg CPU | Lucid wall | Lucid CPU | CPU ratio | "
              "Lucid GPU per layer pass |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for n in counts:
            fw, fc = timed(ffmpeg_composite(clip, n, os.path.join(d, f"ff-{n}.mkv")))
            stats = os.path.join(d, f"stats-{n}.jsonl")
            cmd = [lucid, "--no-preview", "--url", clip, "--record",
                   os.path.join(d, f"lucid-{n}.mkv"), "--stats-json", stats]
            for i in range(n):
                cmd += ["--layer", f"{clip}:blend=screen,opacity=0.5"]
                if args.layer_effect:
                    cmd += ["--layer-effect", f"{i + 1}:{args.layer_effect}"]
            lw, lc = timed(cmd)
            s = last_stats(stats)
            per_layer = [l.get("pass_ms") for l in s.get("layers", [])]
            per_layer = ", ".join(f"{p:.1f} ms" for p in per_layer if p is not None) or "-"
            print(f"| {n} | {fw:.1f} s | {fc:.1f} s | {lw:.1f} s | {lc:.1f} s | "
                  f"{lc / fc:.2f}x | {per_layer} |")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
