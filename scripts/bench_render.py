#!/usr/bin/env python3
"""Render-to-file benchmark: Lucid rendering a finite clip into a recording vs FFmpeg's own
transcode of the same clip (`ffmpeg -i clip -c:v libx264 -preset veryfast`), in the same
run: wall time, CPU time, frames in the output, and the ratios.

Clips are made here by the ffmpeg CLI (testsrc2 with frame markers, 30 fps). Lucid runs
headless (`--no-preview --record`), offline (every frame) unless --realtime is given, with
no effects and with a light chain (color, tint).

Usage: scripts/bench_render.py [--lucid PATH] [--seconds N] [--sizes 1280x720,1920x1080]
"""
import argparse, os, resource, subprocess, tempfile, time


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lucid-target")), "debug", "lucid"))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    a = ap.parse_args()
    print(f"lucid: {a.lucid}; {a.seconds:.0f} s clips at 30 fps")
    print(f"{'size':>9} {'renderer':<26} {'wall s':>7} {'CPU s':>7} {'frames':>6} {'x real time':>11} {'CPU / ffmpeg':>12}")
    with tempfile.TemporaryDirectory() as d:
        for size in a.sizes.split(","):
            w, h = map(int, size.split("x"))
            clip = make_clip(d, w, h, a.seconds)
            expected = frames(clip)
            rows = []
            out = os.path.join(d, "ffmpeg.mkv")
            rows.append(("ffmpeg -preset veryfast", *timed(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", clip,
                                                            "-c:v", "libx264", "-preset", "veryfast", out]), frames(out)))
            for name, extra in [("lucid", []), ("lucid color+tint", ["--effect", "color:saturation=1.3", "--effect", "tint:mix=0.3"]),
                                ("lucid --realtime", ["--realtime"])]:
                out = os.path.join(d, "lucid.mkv")
                if os.path.exists(out):
                    os.remove(out)
                rows.append((name, *timed([a.lucid, "--no-preview", "--url", clip, "--record", out] + extra), frames(out)))
            base_cpu = rows[0][2]
            for name, wall, cpu, n in rows:
                print(f"{size:>9} {name:<26} {wall:>7.1f} {cpu:>7.1f} {n:>4}/{expected:<3} {a.seconds / wall:>9.2f}x {cpu / base_cpu:>11.2f}x")


if __name__ == "__main__":
    main()
