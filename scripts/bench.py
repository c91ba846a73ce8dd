#!/usr/bin/env python3
"""Latency and start-up benchmark: Lucid vs FFmpeg's own HLS reader, and Lucid over WebRTC
vs Lucid over HLS vs an independent WebRTC client (aiortc, decode only), in the same run.

A live origin (real ffmpeg, -re, two renditions, frame numbers as marker blocks) is served
over HTTP on 127.0.0.1. Each player writes YUV4MPEG2 to a pipe that this script reads:
  - lucid  --no-preview --pipe y4m           (Lucid's HLS client, paced presentation)
  - ffmpeg -re -i <master> -f yuv4mpegpipe -  (FFmpeg's HLS demuxer, paced by -re; what
                                              ffplay/mpv/OpenCV build on)
  - ffmpeg -i <master> -f yuv4mpegpipe -      (unpaced, as the seed's playback.py used it)
For each it reports the time from process start to the first frame out, the latency behind
capture (the origin makes frame n at its start + n / 30 s), behind the frame's publication
and behind the newest published frame, frames delivered, and CPU use; then the ratio Lucid /
FFmpeg.

The WebRTC part (--webrtc-size, default 640x360) serves the same kind of marked picture from
aiortc as a WHEP server (tests/peers/whep_peer.py, which says when frame 0 was made) and
runs Lucid over WebRTC, scripts/whep_client.py (aiortc decoding only) and Lucid over HLS of
an origin like the one above, and reports capture-to-pipe latency for each.

Usage: scripts/bench.py [--lucid PATH] [--seconds N] [--sizes 640x360,1280x720] [--runs N]
                       [--baseline OLD_LUCID]
With --runs N, Lucid is started N times in each HLS comparison, each time at another point
of a segment, since where its first playlist load falls decides how late it sees every
later one; --baseline runs another build beside it at the same points.
Loops are bounded: every player runs for --seconds and is then stopped.
"""
import argparse, http.server, os, shutil, socketserver, statistics, subprocess, sys, tempfile, threading, time

FPS = 30
BITS = 16


def start_origin(d, w, h, seg):
    strip = max(h // 15, 4)
    g = str(FPS * seg)
    fc = (f"[1]format=gray,geq=lum='255*mod(floor(N/pow(2\\,X))\\,2)',scale={w}:{strip}:flags=neighbor[m];"
          f"[0][m]overlay=0:0:shortest=1,format=yuv420p,split=2[a][b];[a]copy[hi];[b]scale={w//2}:{h//2}[lo]")
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
           "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={FPS}",
           "-f", "lavfi", "-i", f"nullsrc=size={BITS}x1:rate={FPS}", "-filter_complex", fc,
           "-map", "[lo]", "-map", "[hi]", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
           "-g", g, "-keyint_min", g, "-sc_threshold", "0", "-b:v:0", "400k", "-b:v:1", "2000k",
           "-f", "hls", "-hls_time", str(seg), "-hls_list_size", "6",
           "-hls_flags", "delete_segments+independent_segments+temp_file", "-master_pl_name", "master.m3u8",
           "-var_stream_map", "v:0,name:low v:1,name:high", "-hls_segment_filename", os.path.join(d, "%v_%05d.ts"),
           os.path.join(d, "%v.m3u8")]
    t0 = time.time()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    p.capture_t0 = t0
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(os.path.join(d, "master.m3u8")) and newest_frame(d, seg) is not None:
            return p
        time.sleep(0.05)
    p.kill()
    raise SystemExit("origin did not start")


def newest_frame(d, seg):
    try:
        text = open(os.path.join(d, "high.m3u8")).read()
    except OSError:
        return None
    first = None
    count = 0
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            first = int(line.split(":")[1])
        elif line.endswith(".ts"):
            count += 1
    if first is None or count == 0:
        return None
    return (first + count) * FPS * seg - 1


class PublishTimes:
    """Polls the high rendition's playlist and records when each segment first appeared."""

    def __init__(self, d, seconds):
        self.seen = {}
        self.stop = False
        self.t = threading.Thread(target=self.run, args=(d, seconds), daemon=True)
        self.t.start()

    def run(self, d, seconds):
        end = time.time() + seconds
        while not self.stop and time.time() < end:
            try:
                text = open(os.path.join(d, "high.m3u8")).read()
            except OSError:
                text = ""
            first = None
            i = 0
            for line in text.splitlines():
                if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                    first = int(line.split(":")[1])
                elif line.endswith(".ts") and first is not None:
                    self.seen.setdefault(first + i, time.time())
                    i += 1
            time.sleep(0.02)


def serve(d):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=d, **k)

        def log_message(self, *a):
            pass

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def wait_for_phase(published, seg, fraction):
    """Sleeps until `fraction` of a segment after the newest segment's publication."""
    deadline = time.time() + 3 * seg
    while time.time() < deadline:
        if published.seen:
            newest = published.seen[max(published.seen)]
            wake = newest + seg * fraction
            while wake < time.time():
                wake += seg
            time.sleep(wake - time.time())
            return
        time.sleep(0.05)


def cpu_seconds(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def summary(name, first_at, frames, times, cap, extra):
    skipped = sum(max(0, b - a - 1) for a, b in zip(frames, frames[1:]))
    intervals = sorted(b - a for a, b in zip(times, times[1:]))
    p99 = intervals[int(len(intervals) * 0.99) - 1] if len(intervals) > 10 else float("nan")
    cap = sorted(cap)
    return {
        "name": name, "first": first_at, "frames": len(frames), "skipped": skipped,
        "p99_interval_ms": p99 * 1000,
        "cap_med": statistics.median(cap) if cap else float("nan"),
        "cap_p95": cap[int(len(cap) * 0.95) - 1] if len(cap) > 20 else float("nan"),
        **extra,
    }


def run_player(name, cmd, d, seg, seconds, published, capture_t0=None):
    start = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    out = p.stdout
    header = out.readline()
    if not header.startswith(b"YUV4MPEG2"):
        p.kill()
        return {"name": name, "error": "no y4m output"}
    fields = {t[0]: t[1:] for t in header.decode().split()[1:]}
    w, h = int(fields["W"]), int(fields["H"])
    size = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    strip = max(h / 15, 4)
    row = int(strip / 2)
    first_at = None
    lat = []
    pub = []
    cap = []
    frames = []
    times = []
    cpu_last = None
    end = None
    while True:
        line = out.readline()
        if not line.startswith(b"FRAME"):
            break
        data = out.read(size)
        if len(data) < size:
            break
        now = time.time()
        if first_at is None:
            first_at = now - start
            end = now + seconds
        n = sum(((data[row * w + int((b + 0.5) * w / BITS)] > 128) << b) for b in range(BITS))
        newest = newest_frame(d, seg) if d else None
        frames.append(n)
        times.append(now)
        steady = now > start + first_at + 2 * seg
        t0 = capture_t0() if capture_t0 else None
        if steady and t0 is not None:
            cap.append(now - (t0 + n / FPS))
        if newest is not None and steady:
            lat.append((newest - n) / FPS)
            seen = published.seen.get(n // (FPS * seg))
            if seen is not None:
                pub.append(now - seen)
        if now >= end:
            cpu_last = cpu_seconds(p.pid)
            break
    wall = time.time() - start
    p.kill()
    p.wait()
    return summary(name, first_at, frames, times, cap, {
        "lat_med": statistics.median(lat) if lat else float("nan"),
        "lat_p95": sorted(lat)[int(len(lat) * 0.95) - 1] if len(lat) > 20 else float("nan"),
        "pub_med": statistics.median(pub) if pub else float("nan"),
        "pub_p95": sorted(pub)[int(len(pub) * 0.95) - 1] if len(pub) > 20 else float("nan"),
        "cpu": (cpu_last / wall * 100) if cpu_last is not None else float("nan"),
    })


def peer_python():
    venv = os.environ.get("LUCID_TEST_VENV", os.path.expanduser("~/.cache/lucid-test-venv"))
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", "aiortc==1.16.0", "aiohttp==3.14.5"], check=True)
    return py


class Peer:
    """The aiortc WHEP server; remembers when its current session made frame 0."""

    def __init__(self, py, w, h):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with socketserver.TCPServer(("127.0.0.1", 0), None) as probe:
            self.port = probe.server_address[1]
        self.p = subprocess.Popen([py, os.path.join(root, "tests/peers/whep_peer.py"), "--port", str(self.port),
                                   "--size", f"{w}x{h}"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.t0 = None
        self.ready = threading.Event()
        threading.Thread(target=self.read, daemon=True).start()
        if not self.ready.wait(60):
            raise SystemExit("the WHEP peer did not start")

    def read(self):
        import json
        for line in self.p.stdout:
            e = json.loads(line)
            if e["event"] == "listening":
                self.ready.set()
            elif e["event"] == "answered":
                self.t0 = None
            elif e["event"] == "capture_start":
                self.t0 = e["t"]

    def url(self):
        return f"http://127.0.0.1:{self.port}/whep"


def run_line_client(name, cmd, seconds, capture_t0):
    """A client that prints `<frame number> <time>` per decoded frame."""
    start = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    frames, times, cap = [], [], []
    first_at = None
    cpu_last = None
    for line in p.stdout:
        n, t = line.split()
        n, t = int(n), float(t)
        if first_at is None:
            first_at = t - start
        frames.append(n)
        times.append(t)
        if t > start + first_at + 2 and capture_t0() is not None:
            cap.append(t - (capture_t0() + n / FPS))
        cpu_last = cpu_seconds(p.pid) or cpu_last
    wall = time.time() - start
    p.wait()
    if first_at is None:
        return {"name": name, "error": "no frames"}
    return summary(name, first_at, frames, times, cap,
                   {"cpu": (cpu_last / wall * 100) if cpu_last else float("nan")})


def webrtc_section(a):
    w, h = map(int, a.webrtc_size.split("x"))
    py = peer_python()
    root = os.path.dirname(os.path.abspath(__file__))
    peer = Peer(py, w, h)
    # One player at a time, and the HLS origin only for its own run: its two x264 encodes
    # would otherwise take the cores the WebRTC players are measured on.
    try:
        results = [
            run_player("lucid webrtc", [a.lucid, "--url", peer.url(), "--no-preview", "--pipe", "y4m"],
                       None, a.segment, a.seconds, None, lambda: peer.t0),
            run_line_client("aiortc client", [py, os.path.join(root, "whep_client.py"), "--url", peer.url(),
                                              "--seconds", str(a.seconds)], a.seconds, lambda: peer.t0),
        ]
    finally:
        peer.p.kill()
    d = tempfile.mkdtemp(prefix="lucid-bench-")
    origin = start_origin(d, w, h, a.segment)
    srv = serve(d)
    hls = f"http://127.0.0.1:{srv.server_address[1]}/master.m3u8"
    published = PublishTimes(d, 10 * a.seconds + 60)
    try:
        results.append(run_player("lucid hls", [a.lucid, "--url", hls, "--no-preview", "--pipe", "y4m"],
                                  d, a.segment, a.seconds, published, lambda: origin.capture_t0))
    finally:
        published.stop = True
        origin.kill()
        srv.shutdown()
        shutil.rmtree(d, ignore_errors=True)
    print()
    print(f"WebRTC vs HLS, {a.webrtc_size}, {FPS} fps: latency behind capture, to the pipe (Lucid) "
          "or out of the decoder (aiortc)")
    print(f"{'player':<14} {'first s':>7} {'capture med ms':>14} {'p95 ms':>7} {'frames':>6} {'skipped':>7} "
          f"{'p99 gap ms':>10} {'CPU %':>6}")
    for r in results:
        if "error" in r:
            print(f"{r['name']:<14} {r['error']}")
            continue
        print(f"{r['name']:<14} {r['first']:>7.2f} {r['cap_med'] * 1000:>14.0f} {r['cap_p95'] * 1000:>7.0f} "
              f"{r['frames']:>6} {r['skipped']:>7} {r['p99_interval_ms']:>10.1f} {r['cpu']:>6.1f}")
    l, c, hl = results
    if all("error" not in r for r in results):
        print(f"ratio lucid webrtc / aiortc client: latency {l['cap_med'] / c['cap_med']:.2f}; "
              f"lucid webrtc / lucid hls: latency {l['cap_med'] / hl['cap_med']:.2f}; "
              f"goals: webrtc median <= 150 ms {'met' if l['cap_med'] <= 0.15 else 'NOT met'}, "
              f"p99 gap <= {2000 / FPS:.0f} ms {'met' if l['p99_interval_ms'] <= 2000 / FPS else 'NOT met'}; "
              f"hls median <= {1.25 * a.segment + 0.3:.2f} s {'met' if hl['cap_med'] <= 1.25 * a.segment + 0.3 else 'NOT met'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lucid-target")), "debug", "lucid"))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--segment", type=int, default=2)
    ap.add_argument("--sizes", default="640x360,1280x720", help="HLS comparison sizes; empty: none")
    ap.add_argument("--webrtc-size", default="640x360", help="WebRTC comparison size; empty: none")
    ap.add_argument("--runs", type=int, default=1,
                    help="HLS: start Lucid this many times, at phases spread over a segment")
    ap.add_argument("--baseline", help="HLS: another Lucid binary (an older build) run beside it, same phases")
    a = ap.parse_args()
    print(f"lucid: {a.lucid}; {a.seconds:.0f} s per player; {a.segment} s segments; {FPS} fps")
    print("latency: 'publish' = time since the frame's segment appeared in the playlist; "
          "'newest' = newest listed frame minus the frame delivered")
    print(f"{'size':>9} {'player':<14} {'first s':>7} {'capture med':>11} {'publish med':>11} {'p95':>5} "
          f"{'newest med':>10} {'frames':>6} {'skipped':>7} {'p99 gap ms':>10} {'CPU %':>6}")
    for size in filter(None, a.sizes.split(",")):
        w, h = map(int, size.split("x"))
        d = tempfile.mkdtemp(prefix="lucid-bench-")
        origin = start_origin(d, w, h, a.segment)
        srv = serve(d)
        url = f"http://127.0.0.1:{srv.server_address[1]}/master.m3u8"
        published = PublishTimes(d, (2 * a.runs + 3) * (a.seconds + 10) + 60)
        ff = ["ffmpeg", "-hide_banner", "-loglevel", "error"]
        y4m = ["-f", "yuv4mpegpipe", "-pix_fmt", "yuv420p", "-"]
        lucids = [("lucid", a.lucid)] + ([("baseline", a.baseline)] if a.baseline else [])
        runs = {name: [] for name, _ in lucids}
        try:
            # Where Lucid's first playlist load falls within a segment decides how late it
            # sees every later one (RFC 8216's reload timing keeps that phase), so each run
            # starts at another point of the segment: i/N of a segment after a publication.
            for i in range(a.runs):
                for name, binary in lucids:
                    wait_for_phase(published, a.segment, i / a.runs)
                    label = name if a.runs == 1 else f"{name} #{i + 1}"
                    runs[name].append(run_player(label, [binary, "--url", url, "--no-preview", "--pipe", "y4m"],
                                                 d, a.segment, a.seconds, published, lambda: origin.capture_t0))
            results = [r for name, _ in lucids for r in runs[name]] + [
                run_player("ffmpeg -re", ff + ["-re", "-i", url] + y4m, d, a.segment, a.seconds, published,
                           lambda: origin.capture_t0),
                run_player("ffmpeg", ff + ["-i", url] + y4m, d, a.segment, a.seconds, published,
                           lambda: origin.capture_t0),
            ]
        finally:
            published.stop = True
            origin.kill()
            srv.shutdown()
            shutil.rmtree(d, ignore_errors=True)
        for r in results:
            if "error" in r:
                print(f"{size:>9} {r['name']:<14} {r['error']}")
                continue
            print(f"{size:>9} {r['name']:<14} {r['first']:>7.2f} {r['cap_med']:>11.2f} {r['pub_med']:>11.2f} {r['pub_p95']:>5.2f} "
                  f"{r['lat_med']:>10.2f} {r['frames']:>6} {r['skipped']:>7} {r['p99_interval_ms']:>10.1f} "
                  f"{r['cpu']:>6.1f}")
        goal = 1.25 * a.segment + 0.3
        for name, _ in lucids:
            ok = [r for r in runs[name] if "error" not in r]
            if a.runs > 1 and ok:
                caps = sorted(r["cap_med"] for r in ok)
                print(f"{size:>9} {name}: capture median over {len(ok)} runs: best {caps[0]:.2f} s, "
                      f"median {statistics.median(caps):.2f} s, worst {caps[-1]:.2f} s; "
                      f"goal <= {goal:.2f} s met in {sum(c <= goal for c in caps)} of {len(ok)}")
        f = results[-2]
        ok = [r for r in runs["lucid"] if "error" not in r]
        if ok and "error" not in f:
            l = sorted(ok, key=lambda r: r["cap_med"])[len(ok) // 2]
            print(f"{size:>9} ratio lucid / ffmpeg -re (median run): first frame {l['first'] / f['first']:.2f}, "
                  f"latency (capture) {l['cap_med'] / f['cap_med']:.2f}, (publish) {l['pub_med'] / f['pub_med']:.2f}, "
                  f"CPU {l['cpu'] / f['cpu']:.2f}; goal median behind capture <= {goal:.2f} s: "
                  f"{'met' if l['cap_med'] <= goal else 'NOT met'}")
        sys.stdout.flush()
    if a.webrtc_size:
        webrtc_section(a)


if __name__ == "__main__":
    main()
