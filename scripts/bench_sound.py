#!/usr/bin/env python3
"""Sound sync benchmark: the A/V offset of Lucid's recording of a live HLS stream against
FFmpeg's own remux of the same stream, in the same run.

A live origin (real ffmpeg, -re, 2 s segments, 30 fps, frame numbers as marker blocks, AAC
sound with a 4 ms click every 1.5 s, that is on frames 0, 45, 90, ...) is served over HTTP
on 127.0.0.1. One after the other, for --seconds each:
  - lucid  --url <master> --no-preview --record lucid.mkv   (Lucid's HLS client, decode,
           resample, latency steering, re-encode; sound placed by stream time)
  - ffmpeg -i <high.m3u8> -map 0 -c copy remux.mkv          (FFmpeg's HLS demuxer, remux:
           no decode, the stream's own timestamps; the yardstick for "in sync")
In each file, every click is found in the sound and the frame carrying its marker in the
picture; the offset is the click's time minus that frame's time. Reported: clicks found,
median, worst and the drift (last minus first offset), and the ratio of the worst offsets.

Usage: scripts/bench_sound.py [--lucid PATH] [--seconds 600]
Loops are bounded: each player runs for --seconds and is stopped.
"""
import argparse, os, shutil, signal, statistics, struct, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import serve  # noqa: E402  (the same HTTP origin server)

FPS = 30
BITS = 16
CLICK_EVERY = 1.5


def start_origin(d, w, h, seg):
    strip = max(h // 15, 4)
    g = str(FPS * seg)
    fc = (f"[1]format=gray,geq=lum='255*mod(floor(N/pow(2\\,X))\\,2)',scale={w}:{strip}:flags=neighbor[m];"
          f"[0][m]overlay=0:0:shortest=1,format=yuv420p")
    clicks = (f"aevalsrc=exprs='if(lt(mod(t\\,{CLICK_EVERY})\\,0.004)\\,0.8*sin(2*PI*2000*t)\\,0)'"
              ":s=44100")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
           "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={FPS}",
           "-f", "lavfi", "-i", f"nullsrc=size={BITS}x1:rate={FPS}",
           "-re", "-f", "lavfi", "-i", clicks, "-filter_complex", fc, "-map", "2:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", g, "-keyint_min", g,
           "-sc_threshold", "0", "-b:v", "2000k", "-c:a", "aac", "-b:a", "128k",
           "-f", "hls", "-hls_time", str(seg), "-hls_list_size", "6",
           "-hls_flags", "delete_segments+independent_segments+temp_file", "-master_pl_name", "master.m3u8",
           "-var_stream_map", "v:0,a:0,name:high", "-hls_segment_filename", os.path.join(d, "%v_%05d.ts"),
           os.path.join(d, "%v.m3u8")]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(os.path.join(d, "master.m3u8")) and os.path.exists(os.path.join(d, "high.m3u8")):
            return p
        time.sleep(0.05)
    p.kill()
    raise SystemExit("origin did not start")


def run_for(cmd, seconds, stop_signal):
    """Runs a player for `seconds`, then stops it (it finalizes its file)."""
    start = time.time()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while p.poll() is None and time.time() < start + seconds:
        time.sleep(0.2)
    if p.poll() is None:
        p.send_signal(stop_signal)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    return time.time() - start


def probe_start(path, stream):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
                          "stream=start_time", "-of", "csv=p=0", path], capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[0].split(",")[0])


def frames(path):
    """(time, marker) of every frame, in order."""
    times = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "frame=pts_time", "-of", "csv=p=0", path], capture_output=True, text=True).stdout
    # One line a frame; ffprobe may add empty fields after the value.
    times = [float(t.split(",")[0]) for t in times.split() if t.split(",")[0] not in ("", "N/A")]
    info = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "stream=width,height", "-of", "csv=p=0", path], capture_output=True, text=True).stdout
    w, h = map(int, info.strip().split(",")[:2])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-vsync", "passthrough",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True).stdout
    size = w * h
    row = int(max(h / 15, 4) / 2)
    markers = []
    for i in range(len(raw) // size):
        f = raw[i * size:(i + 1) * size]
        markers.append(sum(((f[row * w + int((b + 0.5) * w / BITS)] > 128) << b) for b in range(BITS)))
    return list(zip(times, markers))


def clicks(path):
    """Times of click onsets (a sample over 0.3 after 100 ms without one)."""
    start = probe_start(path, "a:0")
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-af", "aresample=async=1",
                          "-f", "f32le", "-ac", "1", "-ar", "48000", "-"], capture_output=True).stdout
    n = len(raw) // 4
    samples = struct.unpack(f"{n}f", raw[:n * 4])
    found, last = [], -1e9
    for i, s in enumerate(samples):
        if abs(s) > 0.3:
            t = start + i / 48000
            if t - last > 0.1:
                found.append(t)
            last = t
    return found


def offsets(path):
    fr = frames(path)
    by_marker = {m: t for t, m in fr}
    out = []
    for t in clicks(path):
        near = min(fr, key=lambda f: abs(f[0] - t))
        k = round(near[1] / (CLICK_EVERY * FPS))
        marker = int(k * CLICK_EVERY * FPS)
        if marker in by_marker:
            out.append((marker, t - by_marker[marker]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lucid-target")), "debug", "lucid"))
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--size", default="640x360")
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    d = tempfile.mkdtemp(prefix="lucid-bench-sound-")
    origin = start_origin(d, w, h, 2)
    srv = serve(d)
    # A player stopped mid-download leaves a broken pipe: not worth a traceback.
    srv.handle_error = lambda *a: None
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    time.sleep(4)
    files = {"lucid": os.path.join(d, "lucid.mkv"), "ffmpeg remux": os.path.join(d, "remux.mkv")}
    try:
        run_for([a.lucid, "--url", f"{base}/master.m3u8", "--no-preview", "--record", files["lucid"]],
                a.seconds, signal.SIGINT)
        run_for(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", f"{base}/high.m3u8", "-map", "0",
                 "-c", "copy", "-y", files["ffmpeg remux"]], a.seconds, signal.SIGINT)
    finally:
        origin.kill()
        srv.shutdown()
    print(f"lucid: {a.lucid}; {a.seconds:.0f} s per player; live HLS, 2 s segments, {a.size}, {FPS} fps, "
          f"a click every {CLICK_EVERY} s")
    print("offset = the click's time minus the time of the frame carrying its marker (positive: sound late)")
    print(f"{'player':<14} {'clicks':>6} {'median ms':>9} {'worst ms':>8} {'drift ms':>8}")
    worst = {}
    for name, path in files.items():
        found = offsets(path) if os.path.exists(path) else []
        if not found:
            print(f"{name:<14} no clicks found")
            continue
        offs = [o for _, o in found]
        worst[name] = max(abs(o) for o in offs)
        print(f"{name:<14} {len(found):>6} {statistics.median(offs) * 1000:>9.1f} {worst[name] * 1000:>8.1f} "
              f"{(offs[-1] - offs[0]) * 1000:>8.1f}")
    if len(worst) == 2:
        print(f"ratio lucid / ffmpeg remux, worst offset: {worst['lucid'] / max(worst['ffmpeg remux'], 1e-4):.2f}; "
              f"goal lucid worst <= 40 ms: {'met' if worst['lucid'] <= 0.040 else 'NOT met'}")
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
