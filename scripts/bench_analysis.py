#!/usr/bin/env python3
"""Sound analysis cost: CPU time per frame of Lucid's analysis (level, 4 bands, 64-bin
spectrum, onsets, tempo; 1024-sample FFT windows every 256 samples, mono) against FFmpeg's
own FFT analysis filter on the same sound, in the same run.

A clip (--seconds long, 320x180 black at 30 fps, AAC sound: a 110 Hz bass pulse, a 3 kHz
tone, and a click every half second) is made with the ffmpeg CLI. Then:
  - lucid  --no-preview --url clip.mkv --record out.mkv --stats-json s.json
           the analysis times itself: audio.analysis.cost_ms, the mean per presented frame
  - ffmpeg -benchmark -i clip.mkv -af aspectralstats=win_size=1024:overlap=0.75 -f null -
           minus the same run with -af anull (decode and resampling alike), divided by the
           clip's frames: the filter's CPU per frame. aspectralstats computes more per window
           (13 statistics, on each of the two channels) but no onsets or tempo.
Reported: both per-frame costs, their ratio, and the share of a 33 ms frame Lucid spends.

Usage: scripts/bench_analysis.py [--lucid PATH] [--seconds 60] [--runs 3]
"""
import argparse, json, os, re, subprocess, sys, tempfile

FPS = 30


def make_clip(path, seconds):
    sound = ("aevalsrc=exprs='0.4*sin(2*PI*110*t)*(0.5+0.5*sin(2*PI*2*t))"
             "+0.1*sin(2*PI*3000*t)+if(lt(mod(t\\,0.5)\\,0.004)\\,0.8*sin(2*PI*2000*t)\\,0)'"
             f":s=44100:d={seconds}")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"color=c=black:s=320x180:r={FPS}:d={seconds}",
                    "-f", "lavfi", "-i", sound, "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", "-b:a", "160k", "-shortest", path], check=True)


def lucid_cost(lucid, clip, d):
    stats = os.path.join(d, "s.json")
    out = os.path.join(d, "out.mkv")
    for p in (stats, out):
        if os.path.exists(p):
            os.remove(p)
    subprocess.run([lucid, "--no-preview", "--url", clip, "--record", out, "--stats-json", stats],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1200)
    with open(stats) as f:
        last = json.loads(f.read().splitlines()[-1])
    return last["audio"]["analysis"]["cost_ms"], last["audio"]["analysis"]["bpm"]


def ffmpeg_utime(clip, af):
    r = subprocess.run(["ffmpeg", "-hide_banner", "-benchmark", "-i", clip, "-vn", "-af", af,
                        "-f", "null", "-"], capture_output=True, text=True, timeout=1200, check=True)
    m = re.search(r"bench: utime=([0-9.]+)s stime=([0-9.]+)s", r.stderr)
    return float(m.group(1)) + float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "lucid"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        clip = os.path.join(d, "clip.mkv")
        make_clip(clip, a.seconds)
        frames = a.seconds * FPS
        lucid, ffmpeg, bpms = [], [], []
        for _ in range(a.runs):
            cost, bpm = lucid_cost(a.lucid, clip, d)
            lucid.append(cost)
            bpms.append(bpm)
            filt = ffmpeg_utime(clip, "aspectralstats=win_size=1024:overlap=0.75")
            base = ffmpeg_utime(clip, "anull")
            ffmpeg.append(max(filt - base, 0.0) * 1000.0 / frames)
        lucid.sort()
        ffmpeg.sort()
        lm, fm = lucid[len(lucid) // 2], ffmpeg[len(ffmpeg) // 2]
        print(f"{a.seconds:.0f} s of sound at {FPS} fps, {a.runs} run(s), medians:")
        print("| analysis | CPU per frame | share of a 33 ms frame |")
        print("| --- | --- | --- |")
        print(f"| Lucid (level, bands, spectrum, onsets, tempo; mono) | {lm:.3f} ms | {lm / 33.3 * 100:.1f}% |")
        print(f"| FFmpeg aspectralstats (13 statistics, 2 channels) | {fm:.3f} ms | {fm / 33.3 * 100:.1f}% |")
        print(f"ratio Lucid / FFmpeg: {lm / fm:.2f}" if fm > 0 else "ratio: FFmpeg's cost too small to measure")
        print(f"tempo Lucid heard (clicks every 0.5 s = 120 bpm): {bpms}")
        print(f"all runs: lucid {lucid} ms, ffmpeg {ffmpeg} ms")


if __name__ == "__main__":
    sys.exit(main())
