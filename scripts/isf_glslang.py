#!/usr/bin/env python3
"""Which compiler takes more of an ISF collection: naga's GLSL front end (what Lucid uses)
or glslang (what the `shaderc` crate wraps), on the same GLSL.

Lucid loads the folder with LUCID_ISF_GLSL set, which writes the GLSL 4.50 every ISF pass
was rewritten into; glslang (`glslangValidator -V`, Debian's glslang-tools) then compiles
each of those files to SPIR-V. An effect loads when every one of its passes compiles. The
naga figure is Lucid's own verdict from `--list-effects` (compile and validate, before any
GPU), counting only files that reached a compiler (header refusals are left out of both).

Usage: scripts/isf_glslang.py ISF_FOLDER [--lucid PATH]
"""
import argparse, collections, os, re, shutil, subprocess, sys, tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--lucid", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "lucid"))
    a = ap.parse_args()
    if not shutil.which("glslangValidator"):
        sys.exit("glslangValidator is needed (apt install glslang-tools)")
    with tempfile.TemporaryDirectory() as d:
        glsl = os.path.join(d, "glsl")
        env = dict(os.environ, LUCID_ISF_GLSL=glsl, XDG_CONFIG_HOME=d, RUST_LOG="warn")
        p = subprocess.run([a.lucid, "--list-effects", "--effects-dir", a.folder],
                           capture_output=True, text=True, env=env, timeout=600)
        if p.returncode != 0:
            sys.exit(f"lucid failed: {p.stderr[-2000:]}")
        # Lucid's verdict per file (naga: compile + validate), as --list-effects prints it.
        failed = {}
        for line in p.stdout.splitlines():
            m = re.match(r"(.+?) \(.*\) - does not compile: (.*)", line)
            if m:
                failed[m.group(1)] = m.group(2)
        passes = collections.defaultdict(list)
        for f in sorted(os.listdir(glsl)):
            name, index, _ = f.rsplit(".", 2)
            passes[name].append(os.path.join(glsl, f))
        glslang_ok, naga_ok, only_glslang, only_naga = 0, 0, [], []
        for name, files in sorted(passes.items()):
            ok = all(subprocess.run(["glslangValidator", "-V", "-S", "frag", "-o", os.devnull, f],
                                    capture_output=True).returncode == 0 for f in files)
            header_error = "header:" in failed.get(name, "")
            if header_error:
                continue
            n_ok = name not in failed
            glslang_ok += ok
            naga_ok += n_ok
            if ok and not n_ok:
                only_glslang.append((name, failed[name]))
            if n_ok and not ok:
                only_naga.append(name)
        total = sum(1 for n in passes if "header:" not in failed.get(n, ""))
        print(f"{total} ISF files reached a compiler")
        print(f"naga (Lucid):  {naga_ok} compile")
        print(f"glslang:       {glslang_ok} compile")
        for name, why in only_glslang:
            print(f"  only glslang: {name}: {why}")
        for name in only_naga:
            print(f"  only naga: {name}")


if __name__ == "__main__":
    main()
