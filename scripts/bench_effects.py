#!/usr/bin/env python3
"""Effect chain benchmark: GPU time per effect pass and for a whole chain, next to the
nearest FFmpeg filter doing the same job on the CPU, in the same run, with the ratio.

Lucid runs headless on its built-in test pattern at each size with one effect (then a
five-effect chain) and writes --stats-json; the figure is the mean of the per-second
`effect_passes_ms` / `effects_ms` samples (Bevy render diagnostics: GPU timestamps when
the device has them - lavapipe does - else CPU time). FFmpeg runs the comparable filter
over the same number of testsrc2 frames (`-f null`), timed per frame with wall-clock time
(`-threads 1 -filter_threads 1`, one core like lavapipe's rasterizer would prefer).
Effects FFmpeg has no filter for are reported alone ("-").

With --ui, Lucid also runs in a window (needs DISPLAY or Xvfb) with the overlay open and
reports the overlay's CPU time per frame (`ui_ms`).

Usage: scripts/bench_effects.py [--lucid PATH] [--seconds N] [--sizes 1280x720,1920x1080] [--ui]
Every run is bounded by --seconds.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

# Lucid effect argument -> FFmpeg filter doing comparable work (None: no counterpart).
EFFECTS = [
    ("color:brightness=0.1,contrast=1.3,saturation=0.6,hue=40", "eq=brightness=0.1:contrast=1.3:saturation=0.6,hue=h=40"),
    ("rgb_split:amount=0.01", "rgbashift=rh=12:bh=-12"),
    ("kaleidoscope", None),
    ("mirror:vertical=true", None),
    ("pixelate:size=8", "pixelize=w=8:h=8"),
    ("feedback:decay=0.9", "lagfun=decay=0.9"),
    ("edge_glow", "edgedetect"),
    ("scanlines:glitch=0.3", None),
    ("blur:radius=4", "boxblur=4"),
    ("tint", "colorchannelmixer=.3:.4:.3:0:.3:.4:.3:0:.3:.4:.3"),
]
CHAIN = ["color:saturation=1.4", "rgb_split", "feedback", "scanlines", "blur:radius=2"]
CHAIN_FF = "eq=saturation=1.4,rgbashift=rh=12:bh=-12,lagfun=decay=0.85,boxblur=2"


def lucid_run(lucid, size, effects, seconds, window=False, extra_env=None):
    w, h = size
    with tempfile.TemporaryDirectory() as d:
        stats = os.path.join(d, "stats.jsonl")
        cmd = [lucid, "--width", str(w), "--height", str(h), "--duration", str(seconds), "--stats-json", stats]
        if not window:
            cmd.append("--no-preview")
        for e in effects:
            cmd += ["--effect", e]
        env = dict(os.environ, XDG_CONFIG_HOME=d, **(extra_env or {}))
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=seconds + 60)
        if p.returncode != 0:
            sys.exit(f"lucid failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
        rows = [json.loads(l) for l in open(stats)]
    # Skip the first samples (pipeline compile, warm-up).
    rows = [r for r in rows if r["state"] == "playing"][2:] or rows
    return rows


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def ffmpeg_ms(size, vf, frames):
    w, h = size
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-threads", "1", "-filter_threads", "1",
           "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=30", "-frames:v", str(frames)]
    def run(filters):
        t = time.perf_counter()
        subprocess.run(cmd + (["-vf", filters] if filters else []) + ["-f", "null", "-"], check=True)
        return time.perf_counter() - t
    base = min(run(None) for _ in range(3))
    with_filter = min(run(vf) for _ in range(3))
    # The source generation and format conversion cost is taken out: only the filter remains.
    return max(with_filter - base, 0.0) * 1000 / frames


def fmt(v, unit=" ms"):
    return "-" if v is None else f"{v:.2f}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "lucid"))
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    ap.add_argument("--ui", action="store_true")
    a = ap.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed")
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    for size in sizes:
        label = f"{size[0]}x{size[1]}"
        print(f"\n== {label}: effect pass time per frame ==")
        print(f"{'effect':<14} {'Lucid (lavapipe/GPU)':>22} {'FFmpeg filter (CPU)':>22} {'ratio L/F':>10}  ffmpeg filter")
        for effect, vf in EFFECTS:
            rows = lucid_run(a.lucid, size, [effect], a.seconds)
            name = effect.split(":")[0]
            passes = mean([next(iter(r["effect_passes_ms"].values()), None) for r in rows])
            clock = "GPU" if rows and rows[-1].get("effects_gpu") else "CPU"
            ff = ffmpeg_ms(size, vf, 240) if vf else None
            ratio = f"{passes / ff:.2f}" if passes and ff else "-"
            print(f"{name:<14} {fmt(passes) + ' ' + clock:>22} {fmt(ff):>22} {ratio:>10}  {vf or '(none)'}")
        rows = lucid_run(a.lucid, size, CHAIN, a.seconds)
        chain = mean([r["effects_ms"] for r in rows])
        fps = mean([r["fps"] for r in rows])
        ff = ffmpeg_ms(size, CHAIN_FF, 240)
        ratio = f"{chain / ff:.2f}" if chain and ff else "-"
        print(f"{'chain of 5':<14} {fmt(chain):>22} {fmt(ff):>22} {ratio:>10}  {CHAIN_FF} (no scanlines counterpart)")
        print(f"   chain: {' -> '.join(CHAIN)}; Lucid presented {fps:.1f} fps with it")
        if a.ui:
            env = {}
            xvfb = None
            if not os.environ.get("DISPLAY"):
                xvfb = subprocess.Popen(["Xvfb", ":97", "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
                env = {"DISPLAY": ":97"}
            try:
                rows = lucid_run(a.lucid, size, CHAIN, a.seconds, window=True, extra_env=env)
            finally:
                if xvfb:
                    xvfb.terminate()
            ui = [r["ui_ms"] for r in rows if r.get("ui_ms") is not None]
            print(f"   overlay (egui) CPU per frame: mean {fmt(mean(ui))}, max sample {fmt(max(ui) if ui else None)}"
                  f" (window, chain of 5, overlay open)")


if __name__ == "__main__":
    main()
