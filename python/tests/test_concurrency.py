"""Another thread watches progress while an experiment runs, and another
process follows it through a read-only open of the same store."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

import modelvault


def test_thread_watches_progress(store, tmp_path):
    exp = store.init_experiment("p", "watched")
    seen = []
    done = threading.Event()

    def watch():
        # Its own Experiment object for the same id, as a monitor would have.
        mine = store.get_experiment(exp.id)
        while not done.is_set():
            p = mine.get_progress()
            if not seen or seen[-1] != p:
                seen.append(p)
            if mine.status == "completed":
                break
        seen.append(mine.get_progress())

    t = threading.Thread(target=watch)
    t.start()
    rng = np.random.default_rng(0)
    for step in range(1, 11):
        # Real work between updates: a write that releases the GIL.
        store.put_blob(rng.standard_normal(50000).astype(np.float32).tobytes())
        exp.set_progress(step * 10 - 5)
    exp.mark_completed()
    t.join(timeout=60)
    done.set()
    assert not t.is_alive()
    # Progress only moves forward and ends at 100 (completed).
    assert seen == sorted(seen)
    assert seen[-1] == 100
    assert set(seen) <= {0, 100} | {s * 10 - 5 for s in range(1, 11)}


CHILD = textwrap.dedent(
    """
    import json, sys, time
    import modelvault
    s = modelvault.open(sys.argv[1], read_only=True)
    exp = s.get_experiment(sys.argv[2])
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s.catch_up()
        p = exp.get_progress()
        if not seen or seen[-1] != p:
            seen.append(p)
        if exp.status == "completed":
            break
        time.sleep(0.01)
    try:
        exp.set_progress(1)
        refused = None
    except modelvault.ReadOnly as e:
        refused = str(e)
    m = s.get_model("written")
    with m.open("w.bin") as f:
        data = f.read()
    print(json.dumps({"seen": seen, "status": exp.status, "refused": refused,
                      "size": len(data), "params": exp.get_parameters()}))
    """
)


def test_other_process_reads_read_only(store, tmp_path):
    exp = store.init_experiment("p", "followed")
    exp.connect({"lr": 0.5})
    payload = os.urandom(200000)
    (tmp_path / "w.bin").write_bytes(payload)
    store.record_model("written", tmp_path / "w.bin", experiment=exp)
    exp.set_progress(10)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store.path, exp.id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for p in (20, 40, 60, 80):
            time.sleep(0.3)
            exp.set_progress(p)
        time.sleep(0.3)
        exp.mark_completed()
        out, err = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    r = json.loads(out)
    assert r["status"] == "completed"
    assert r["seen"][-1] == 100 and r["seen"] == sorted(r["seen"])
    assert set(r["seen"]) <= {10, 20, 40, 60, 80, 100}
    assert r["refused"] is not None and "read-only" in r["refused"]
    assert r["size"] == len(payload)
    assert r["params"] == {"General": {"lr": 0.5}}
    # The reader's refusal changed nothing.
    assert exp.get_progress() == 100


def test_threads_read_and_write_at_once(store, tmp_path):
    import random

    data = os.urandom(2 << 20)
    (tmp_path / "w.bin").write_bytes(data)
    m = store.record_model("shared", tmp_path / "w.bin")
    errors = []
    written = {}

    def reader(seed):
        try:
            rnd = random.Random(seed)
            with m.open("w.bin", buffering=0) as f:
                for _ in range(50):
                    off = rnd.randrange(len(data))
                    n = rnd.randrange(1, 100000)
                    f.seek(off)
                    assert f.read(n) == data[off:off + n]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def writer(seed):
        try:
            payload = random.Random(seed).randbytes(300000)
            with store.blob_writer() as w:
                for i in range(0, len(payload), 10000):
                    w.write(payload[i:i + 10000])
            written[w.blob_id] = payload
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(written) == 3
    for blob, payload in written.items():
        with store.open_blob(blob) as f:
            assert f.read() == payload
