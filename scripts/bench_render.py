#!/usr/bin/env python3
"""Render-to-file benchmark: Lucid rendering a finite clip into a recording vs FFmpeg's own
transcode of the same clip, in the same run: wall time, CPU time, frames in the output, and
the ratios; then Lucid's cost per stage.

The named alternative is `ffmpeg -i clip -c:v libx264 -preset veryfast` (the issue's
yardstick). A second FFmpeg row encodes with the settings Lucid's recorder uses
(`-preset veryfast -tune zerolatency -crf 18`), so the encoder's share is the same on both
sides.

Clips are made here by the ffmpeg CLI (testsrc2 with frame markers, 30 fps). Lucid runs
headless (`--no-preview --record`), offline (every frame) unless --realtime is given, with
no effects and with a light chain (color, tint). With --window (needs `xvfb-run`), Lucid
also plays the 720p clip in a window under Xvfb with color + tint, and the run's presented
and skipped frames are printed.

Per-stage figures come from Lucid's `--stats-json` (`video_pass_ms`, `effect_passes_ms`,
`yuv_pass_ms`: GPU timestamps, here lavapipe's, averaged over recent frames).

Usage: scripts/bench_render.py [--lucid PATH] [--seconds N] [--sizes 1280x720,1920x1080] [--window]
"""
import argparse, json, os, resource, shutil, subprocess, tempfile, time


def make_clip(d, w, h, seconds):
    path = os.path.join(d, f"clip-{w}x{h}.mp4")
    strip = max(h // 15, 4)
    fc = (f"[1]format=gray,geq=lum='255*mod(floor(N/pow(2\\,X))\\,2)',scale={w}:{strip}:flags=neighbor[m];"
          f"[0][m]overlay=0:0:shortest=1,format=yuv420p")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=30:duration={seconds}",
                    "-f", "lavfi", "-i", "nullsrc=size=16x1:rate=30", "-filter_complex", fc,
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", path], check=True)
    return path


def timed(cmd):
    """Wall and CPU (user + system of the child) seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip() or 0)


def last_stats(path):
    with open(path) as f:
        lines = [l for l in f if l.strip()]
    return json.loads(lines[-1]) if lines else {}


def stages(stats):
    """'video 6.8 + color 8.1 + tint 7.2 + yuv 3.1 ms' from a stats line."""
    parts = []
    if stats.get("video_pass_ms") is not None:
        parts.append(f"video {stats['video_pass_ms']:.1f}")
    for name, ms in sorted((stats.get("effect_passes_ms") or {}).items()):
        parts.append(f"{name.split('_', 1)[-1]} {ms:.1f}")
    if stats.get("yuv_pass_ms") is not None:
        label = "yuv" if stats.get("video_pass_ms") is not None else "plane copy"
        parts.append(f"{label} {stats['yuv_pass_ms']:.1f}")
    return " + ".join(parts) + " ms" if parts else "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lucid-target")), "debug", "lucid"))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--window", action="store_true", help="also play 720p with color+tint in a window (xvfb-run)")
    a = ap.parse_args()
    chain = ["--effect", "color:saturation=1.3", "--effect", "tint:mix=0.3"]
    print(f"lucid: {a.lucid}; {a.seconds:.0f} s clips at 30 fps")
    print(f"{'size':>9} {'renderer':<30} {'wall s':>7} {'CPU s':>7} {'frames':>7} {'x real time':>11} {'CPU / ffmpeg':>12}  GPU per frame")
    with tempfile.TemporaryDirectory() as d:
        for size in a.sizes.split(","):
            w, h = map(int, size.split("x"))
            clip = make_clip(d, w, h, a.seconds)
            expected = frames(clip)
            rows = []
            for name, enc in [("ffmpeg -preset veryfast", ["-preset", "veryfast"]),
                              ("ffmpeg, Lucid's x264 settings", ["-preset", "veryfast", "-tune", "zerolatency", "-crf", "18"])]:
                out = os.path.join(d, "ffmpeg.mkv")
                rows.append((name, *timed(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", clip,
                                           "-c:v", "libx264", *enc, out]), frames(out), "-"))
            for name, extra in [("lucid", []), ("lucid color+tint", chain), ("lucid --realtime", ["--realtime"])]:
                out = os.path.join(d, "lucid.mkv")
                stats = os.path.join(d, "stats.jsonl")
                for p in (out, stats):
                    if os.path.exists(p):
                        os.remove(p)
                wall, cpu = timed([a.lucid, "--no-preview", "--url", clip, "--record", out, "--stats-json", stats] + extra)
                rows.append((name, wall, cpu, frames(out), stages(last_stats(stats))))
            base_cpu = rows[0][2]
            for name, wall, cpu, n, gpu in rows:
                print(f"{size:>9} {name:<30} {wall:>7.1f} {cpu:>7.1f} {n:>4}/{expected:<3} {a.seconds / wall:>9.2f}x {cpu / base_cpu:>11.2f}x  {gpu}")
        if a.window:
            if not shutil.which("xvfb-run"):
                print("window: skipped (no xvfb-run)")
                return
            clip = make_clip(d, 1280, 720, a.seconds)
            stats = os.path.join(d, "window.jsonl")
            wall, cpu = timed(["xvfb-run", "-a", "-s", "-screen 0 1280x720x24", a.lucid, "--url", clip,
                               "--stats-json", stats] + chain)
            s = last_stats(stats)
            print(f"window 1280x720 color+tint (Xvfb): {wall:.1f} s wall, {cpu:.1f} s CPU, "
                  f"presented {s.get('presented')}, skipped {s.get('skipped')}, fps {s.get('fps', 0):.1f}, "
                  f"GPU {stages(s)}, overlay {s.get('ui_ms')} ms")


if __name__ == "__main__":
    main()
