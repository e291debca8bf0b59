"""Store and read back a directory from Python, and the same with the Rust
command line, on the same data; prints the times.

    python python/examples/bench.py [DIR] [--cli target/release/modelvault]

DIR defaults to $MODELVAULT_CORPUS or ~/.cache/modelvault-corpus. Each side
gets a fresh store in a temporary folder: "put" stores DIR as one model
version, "get" writes every file back (each fsynced, as `modelvault get`
does: `Model.get_local_copy` on the Python side) and the copies are checked
byte for byte (outside the timings). The Python side also reads every file
through its file object (`Model.open`), timed apart.
"""

import argparse
import filecmp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import modelvault


def tree_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def same_tree(a, b):
    for r, _, fs in os.walk(a):
        for f in fs:
            p = os.path.join(r, f)
            q = os.path.join(b, os.path.relpath(p, a))
            if not filecmp.cmp(p, q, shallow=False):
                raise SystemExit(f"restored file differs: {q}")


def python_side(src, work):
    store = modelvault.open(os.path.join(work, "py-store"))
    t0 = time.perf_counter()
    model = store.record_model("bench", src)
    t_put = time.perf_counter() - t0
    out = os.path.join(work, "py-out")
    t0 = time.perf_counter()
    model.get_local_copy(out)
    t_get = time.perf_counter() - t0
    same_tree(src, out)
    # The same files read through Python file objects (what torch.load or
    # numpy.load do), each written out and fsynced.
    out = os.path.join(work, "py-out-files")
    t0 = time.perf_counter()
    for f in model.files():
        target = os.path.join(out, *f["path"].split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with model.open(f["path"], buffering=0) as r, open(target, "wb") as w:
            while True:
                b = r.read(8 << 20)
                if not b:
                    break
                w.write(b)
            w.flush()
            os.fsync(w.fileno())
    t_files = time.perf_counter() - t0
    stored = store.stats()["stored_bytes"]
    same_tree(src, out)
    return t_put, t_get, t_files, stored


def cli_side(src, work, cli):
    repo = os.path.join(work, "cli-store")
    t0 = time.perf_counter()
    subprocess.run([cli, "--repo", repo, "put", "--name", "bench", src], check=True,
                   stdout=subprocess.DEVNULL)
    t_put = time.perf_counter() - t0
    out = os.path.join(work, "cli-out")
    t0 = time.perf_counter()
    subprocess.run([cli, "--repo", repo, "get", "--out", out, "bench"], check=True,
                   stdout=subprocess.DEVNULL)
    t_get = time.perf_counter() - t0
    same_tree(src, out)
    return t_put, t_get


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("MODELVAULT_CORPUS", os.path.expanduser("~/.cache/modelvault-corpus"))
    ap.add_argument("dir", nargs="?", default=default)
    ap.add_argument("--cli", default=os.path.join(os.path.dirname(__file__), "..", "..", "target",
                                                   "release", "modelvault"))
    a = ap.parse_args()
    if not os.path.isdir(a.dir):
        raise SystemExit(f"no such directory: {a.dir}")
    size = tree_bytes(a.dir)
    work = tempfile.mkdtemp(prefix="mv-bench-")
    try:
        py_put, py_get, py_files, stored = python_side(a.dir, work)
        cli_put, cli_get = cli_side(a.dir, work, a.cli)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = size / 1e6
    print(f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print(f"data: {a.dir}, {mb:.0f} MB, stored {stored / 1e6:.0f} MB")
    print(f"{'':8}{'put s':>8}{'MB/s':>8}{'get s':>8}{'MB/s':>8}")
    for name, p, g in (("python", py_put, py_get), ("cli", cli_put, cli_get)):
        print(f"{name:8}{p:8.2f}{mb / p:8.0f}{g:8.2f}{mb / g:8.0f}")
    print(f"python file objects: get {py_files:.2f} s, {mb / py_files:.0f} MB/s")


if __name__ == "__main__":
    sys.exit(main())
