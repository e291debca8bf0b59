#!/usr/bin/env python3
"""The S3 endpoint against s3s-fs (the s3s project's reference server over a
plain directory), side by side in one run, with one boto3 client.

For each server, alternating, ROUNDS times:
  upload    every file of every version of every corpus set, as
            SET/VERSION/PATH, through boto3's managed transfer (multipart
            above 8 MiB, its default 10 threads);
  download  every object back into a scratch dir, compared byte for byte
            with its source;
  stored    `du -sb` of the server's data directory after the upload;
  RSS       the server's peak resident set (VmHWM) at the end;
  clients   16 threads, each with its own client, uploading and reading
            back small and 9 MiB objects at once: errors are counted (must
            be 0).
Prints one line per round and the medians. Exit 1 if a byte differs or a
concurrent client saw an error.

Usage: scripts/bench-s3.py [--rounds N] [--corpus DIR]
Env:   MV (default target/release/modelvault), S3S_FS (default: s3s-fs on PATH)
"""

import argparse
import concurrent.futures as cf
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY, SECRET = "benchkey", "benchsecret-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not listen in time")


class Server:
    def __init__(self, kind, data):
        self.kind, self.data = kind, data
        port = free_port()
        if kind == "modelvault":
            mv = os.environ.get("MV", os.path.join(ROOT, "target/release/modelvault"))
            env = dict(os.environ, MODELVAULT_S3_ACCESS_KEY=KEY, MODELVAULT_S3_SECRET_KEY=SECRET)
            cmd = [mv, "--repo", data, "serve", "--listen", f"127.0.0.1:{port}"]
        else:
            os.makedirs(data)
            env = dict(os.environ)
            cmd = [os.environ.get("S3S_FS", "s3s-fs"), "--host", "127.0.0.1", "--port", str(port),
                   "--access-key", KEY, "--secret-key", SECRET, data]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, self.proc)
        self.endpoint = f"http://127.0.0.1:{port}"

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY,
                            aws_secret_access_key=SECRET, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1, "mode": "standard"}))

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def corpus_files(corpus):
    """(key, path) for every file of every version of every set, in order."""
    out = []
    for s in sorted(os.listdir(corpus)):
        sd = os.path.join(corpus, s)
        if not os.path.isdir(sd):
            continue
        for v in sorted(os.listdir(sd)):
            vd = os.path.join(sd, v)
            for dirpath, _, files in sorted(os.walk(vd)):
                for f in sorted(files):
                    p = os.path.join(dirpath, f)
                    out.append((f"{s}/{v}/{os.path.relpath(p, vd)}", p))
    return out


def du(path):
    return int(subprocess.check_output(["du", "-sb", path]).split()[0])


def same(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def concurrent_clients(server, n=16):
    """n clients at once, each with its own connection pool: put, get, compare."""
    errors = []

    def work(i):
        c = server.client()
        for j in range(4):
            size = 9 << 20 if j == 0 else 4096 * (i + 1)
            body = hashlib.sha256(f"{i}-{j}".encode()).digest() * (size // 32)
            key = f"clients/{i}/{j}"
            c.put_object(Bucket="bench", Key=key, Body=body)
            if c.get_object(Bucket="bench", Key=key)["Body"].read() != body:
                raise RuntimeError(f"{key} came back different")

    with cf.ThreadPoolExecutor(n) as ex:
        for f in [ex.submit(work, i) for i in range(n)]:
            try:
                f.result()
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))
    return errors


def one_round(kind, files, work):
    data = os.path.join(work, f"{kind}-data")
    out = os.path.join(work, f"{kind}-out")
    server = Server(kind, data)
    try:
        c = server.client()
        c.create_bucket(Bucket="bench")
        tc = TransferConfig()
        t0 = time.perf_counter()
        for key, path in files:
            c.upload_file(path, "bench", key, Config=tc)
        up = time.perf_counter() - t0
        stored = du(data)
        t0 = time.perf_counter()
        for key, _ in files:
            dest = os.path.join(out, key)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            c.download_file("bench", key, dest, Config=tc)
        down = time.perf_counter() - t0
        bad = [k for k, p in files if not same(p, os.path.join(out, k))]
        errors = concurrent_clients(server)
        rss = server.peak_rss_mib()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return {"up": up, "down": down, "stored": stored, "rss": rss, "bad": bad, "errors": errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--corpus", default=os.environ.get(
        "MODELVAULT_CORPUS", os.path.expanduser("~/.cache/modelvault-corpus")))
    a = ap.parse_args()
    files = corpus_files(a.corpus)
    if not files:
        sys.exit(f"bench-s3: no corpus in {a.corpus} (run ../shared/corpus/fetch.sh)")
    total = sum(os.path.getsize(p) for _, p in files)
    for _, p in files:  # warm the page cache for both servers alike
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass
    print(f"bench-s3: {len(files)} files, {total:,} bytes", flush=True)
    results = {"modelvault": [], "s3s-fs": []}
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-s3.") as work:
        for r in range(a.rounds):
            for kind in ("modelvault", "s3s-fs"):
                x = one_round(kind, files, work)
                results[kind].append(x)
                failed |= bool(x["bad"] or x["errors"])
                print(f"round {r + 1} {kind:10s} upload {x['up']:6.2f} s  download {x['down']:6.2f} s  "
                      f"stored {x['stored']:>13,}  peak RSS {x['rss']:6.1f} MiB  "
                      f"differing {len(x['bad'])}  client errors {len(x['errors'])}", flush=True)
                for e in x["errors"][:3]:
                    print(f"  error: {e}", flush=True)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("up", "down", "stored", "rss")}
           for k, v in results.items()}
    mv, fs = med["modelvault"], med["s3s-fs"]
    print(f"medians of {a.rounds}: modelvault upload {mv['up']:.2f} s, download {mv['down']:.2f} s, "
          f"stored {mv['stored']:,.0f}, peak RSS {mv['rss']:.0f} MiB; s3s-fs upload {fs['up']:.2f} s, "
          f"download {fs['down']:.2f} s, stored {fs['stored']:,.0f}, peak RSS {fs['rss']:.0f} MiB")
    print(f"modelvault / s3s-fs: stored {mv['stored'] / fs['stored']:.3f}, upload {mv['up'] / fs['up']:.3f}, "
          f"download {mv['down'] / fs['down']:.3f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
