#!/usr/bin/env python3
"""ISF benchmark: the GPU time of an ISF filter next to the same operation written as a
Lucid WGSL effect, in the same run, with the ratio (ISF / WGSL).

Each pair does the same work: an inversion, Lucid's tint (its own WGSL against an ISF
port of it), a mirror, and a 25-tap box blur (the translated code's cost on real work:
sampling through ISF's IMG_NORM_PIXEL against WGSL's input_color). Lucid runs headless
on its built-in test pattern with one effect and writes --stats-json; the figure is the
mean of the per-second `effect_passes_ms` samples (Bevy render diagnostics: GPU
timestamps when the device has them - lavapipe does - else CPU time).

Usage: scripts/bench_isf.py [--lucid PATH] [--seconds N] [--sizes 1280x720,1920x1080]
Every run is bounded by --seconds.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

WGSL = {
    "wgsl_invert": """/*{ "params": [] }*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let c = input_color(uv);
    return vec4(1.0 - c.rgb, c.a);
}
""",
    "wgsl_blur": """/*{ "params": [ { "name": "step", "type": "float", "min": 0.0, "max": 8.0, "default": 2.0 } ] }*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let px = params.step / lucid.resolution;
    var sum = vec4(0.0);
    for (var y = -2; y <= 2; y++) {
        for (var x = -2; x <= 2; x++) {
            sum += input_color(uv + vec2(f32(x), f32(y)) * px);
        }
    }
    return sum / 25.0;
}
""",
}

ISF = {
    "ISF Invert": """/*{ "ISFVSN": "2", "INPUTS": [ { "NAME": "inputImage", "TYPE": "image" } ] }*/
void main() {
    vec4 c = IMG_THIS_PIXEL(inputImage);
    gl_FragColor = vec4(1.0 - c.rgb, c.a);
}
""",
    "ISF Tint": """/*{ "ISFVSN": "2", "INPUTS": [
    { "NAME": "inputImage", "TYPE": "image" },
    { "NAME": "color", "TYPE": "color", "DEFAULT": [1.0, 0.6, 0.2, 1.0] },
    { "NAME": "amount", "TYPE": "float", "DEFAULT": 0.5 } ] }*/
void main() {
    vec4 c = IMG_THIS_PIXEL(inputImage);
    float luma = dot(c.rgb, vec3(0.2126, 0.7152, 0.0722));
    gl_FragColor = vec4(mix(c.rgb, luma * color.rgb, amount), c.a);
}
""",
    "ISF Mirror": """/*{ "ISFVSN": "2", "INPUTS": [ { "NAME": "inputImage", "TYPE": "image" } ] }*/
void main() {
    vec2 m = isf_FragNormCoord;
    if (m.y < 0.5) m.y = 1.0 - m.y;
    gl_FragColor = IMG_NORM_PIXEL(inputImage, m);
}
""",
    "ISF Blur": """/*{ "ISFVSN": "2", "INPUTS": [
    { "NAME": "inputImage", "TYPE": "image" },
    { "NAME": "step", "TYPE": "float", "MIN": 0.0, "MAX": 8.0, "DEFAULT": 2.0 } ] }*/
void main() {
    vec2 px = step / RENDERSIZE;
    vec4 sum = vec4(0.0);
    for (int y = -2; y <= 2; y++) {
        for (int x = -2; x <= 2; x++) {
            sum += IMG_NORM_PIXEL(inputImage, isf_FragNormCoord + vec2(float(x), float(y)) * px);
        }
    }
    gl_FragColor = sum / 25.0;
}
""",
}

PAIRS = [
    ("inversion", "wgsl_invert", "ISF Invert"),
    ("tint", "tint", "ISF Tint"),
    ("mirror", "mirror:horizontal=false,vertical=true", "ISF Mirror"),
    ("25-tap blur", "wgsl_blur", "ISF Blur"),
]


def pass_ms(lucid, folder, size, effect, seconds):
    w, h = size
    with tempfile.TemporaryDirectory() as d:
        stats = os.path.join(d, "stats.jsonl")
        cmd = [lucid, "--no-preview", "--width", str(w), "--height", str(h), "--duration", str(seconds),
               "--effects-dir", folder, "--effect", effect, "--stats-json", stats]
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=dict(os.environ, XDG_CONFIG_HOME=d), timeout=seconds + 60)
        if p.returncode != 0:
            sys.exit(f"lucid {effect} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
        rows = [json.loads(l) for l in open(stats)]
    rows = [r for r in rows if r["state"] == "playing"][2:] or rows
    values = [next(iter(r["effect_passes_ms"].values()), None) for r in rows]
    values = [v for v in values if v is not None]
    gpu = bool(rows and rows[-1].get("effects_gpu"))
    return (statistics.mean(values) if values else None), gpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "lucid"))
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--sizes", default="1280x720,1920x1080")
    a = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        for name, text in WGSL.items():
            open(os.path.join(folder, f"{name}.wgsl"), "w").write(text)
        for name, text in ISF.items():
            open(os.path.join(folder, f"{name}.fs"), "w").write(text)
        for size in sizes:
            print(f"\n== {size[0]}x{size[1]}: effect pass time per frame ==")
            print(f"{'operation':<14} {'Lucid WGSL':>14} {'ISF (GLSL->WGSL)':>18} {'ratio ISF/WGSL':>15}")
            for label, wgsl, isf in PAIRS:
                w_ms, gpu = pass_ms(a.lucid, folder, size, wgsl, a.seconds)
                i_ms, _ = pass_ms(a.lucid, folder, size, isf, a.seconds)
                clock = "GPU" if gpu else "CPU"
                ratio = f"{i_ms / w_ms:.2f}" if w_ms and i_ms else "-"
                fmt = lambda v: "-" if v is None else f"{v:.3f} ms {clock}"
                print(f"{label:<14} {fmt(w_ms):>14} {fmt(i_ms):>18} {ratio:>15}")


if __name__ == "__main__":
    main()
