#!/usr/bin/env python3
"""Writes the seed inputs of `api_sequence` under fuzz/store/seeds/api_sequence/
(committed; run.sh passes them to libFuzzer next to the working corpus).

Each seed is an operation sequence encoded the way `arbitrary` 1.x decodes the
types in fuzz_targets/api_sequence.rs: integers little-endian, bool = byte & 1,
Vec<T> = (1, T)* 0, enum = u32 tag t picking variant (t * count) >> 32, fields
in declaration order. Keep the variant lists below in the Rust order.

    python3 fuzz/store/seeds/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

OPS = ["Put", "AddStaged", "AddExisting", "Read", "Release", "DeleteVersion", "DeleteModel",
       "Prune", "Finalize", "Gc", "Suspend", "Resume", "Abandon", "Reopen", "PutDelta",
       "PutReverse", "ReverseDelta"]
PARTS = ["Noise", "Floats", "Repeat", "Copy", "Raw", "Safetensors", "Nudge"]
ENDS = ["Finish", "Stage", "Drop", "Suspend"]

# Indices into PATHS in the target.
MODEL_ST, A, A_B, CONFIG, VOCAB, DOTDOT = 0, 1, 2, 3, 4, 5


def tag(names, name):
    k, n = names.index(name), len(names)
    t = -(-(k << 32) // n)  # ceil
    assert (t * n) >> 32 == k and t < 1 << 32
    return struct.pack("<I", t)


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def b(v): return u8(1 if v else 0)
def vec(items): return b"".join(b"\x01" + i for i in items) + b"\x00"


# Content parts (Content { parts: Vec<Part> }).
def noise(seed, skip, nbytes): return tag(PARTS, "Noise") + u8(seed) + u16(skip) + u16(nbytes // 4)
def floats(seed, spread, count): return tag(PARTS, "Floats") + u8(seed) + u8(spread) + u16(count)
def repeat(pattern, times): return tag(PARTS, "Repeat") + vec([u8(x) for x in pattern]) + u16(times)
def copy(frm, start, n): return tag(PARTS, "Copy") + u8(frm) + u32(start) + u32(n)
def raw(data): return tag(PARTS, "Raw") + vec([u8(x) for x in data])
def st(seed, dtype, a, b_): return tag(PARTS, "Safetensors") + u8(seed) + u8(dtype) + u16(a) + u16(b_)
def nudge(frm, seed, every=0): return tag(PARTS, "Nudge") + u8(frm) + u8(seed) + u8(every)
def content(*parts): return vec(list(parts))


# Operations.
def put(c, split=0, put_blob=False): return tag(OPS, "Put") + c + u16(split) + b(put_blob)
def add_staged(model, files): return tag(OPS, "AddStaged") + u8(model) + vec([u8(p) + c for p, c in files])
def add_existing(model, files):
    return tag(OPS, "AddExisting") + u8(model) + vec([u8(p) + u8(blob) + b(wrong) for p, blob, wrong in files])
def read(blob, full=True, buf=0, seeks=()):
    return tag(OPS, "Read") + u8(blob) + b(full) + u16(buf) + vec([u8(w) + u32(o) + u32(n) for w, o, n in seeks])
def release(blob): return tag(OPS, "Release") + u8(blob)
def delete_version(model, v, force=False, dry=False):
    return tag(OPS, "DeleteVersion") + u8(model) + u8(v) + b(force) + b(dry)
def delete_model(model, force=False, dry=False): return tag(OPS, "DeleteModel") + u8(model) + b(force) + b(dry)
def prune(model, keep, dry=False): return tag(OPS, "Prune") + u8(model) + u8(keep) + b(dry)
def finalize(model): return tag(OPS, "Finalize") + u8(model)
def gc(compact_below=128, expire=False): return tag(OPS, "Gc") + u8(compact_below) + b(expire)
def suspend(c, prefix, split=0): return tag(OPS, "Suspend") + c + u32(prefix) + u16(split)
def resume(session, end, twice=False): return tag(OPS, "Resume") + u8(session) + b(twice) + end
def abandon(c, prefix): return tag(OPS, "Abandon") + c + u32(prefix)
def reopen(): return tag(OPS, "Reopen")
def put_delta(base, c, release_base=False, split=0):
    return tag(OPS, "PutDelta") + u8(base) + c + b(release_base) + u16(split)
def put_reverse(older, c, release_older=False, split=0):
    return tag(OPS, "PutReverse") + u8(older) + c + b(release_older) + u16(split)
def reverse_delta(older, newer): return tag(OPS, "ReverseDelta") + u8(older) + u8(newer)

def finish(): return tag(ENDS, "Finish")
def stage(model, path): return tag(ENDS, "Stage") + u8(model) + u8(path)
def drop(extra): return tag(ENDS, "Drop") + u32(extra)
def suspend_again(extra): return tag(ENDS, "Suspend") + u32(extra)


KIB = 1024
SEEDS = {
    # Distinct ~200 KiB blobs fill 1 MiB packs; shifted copies dedup; releases
    # leave sealed packs mostly dead; gc compacts them; reads before and after.
    "dedup_release_compact": [
        put(content(noise(0, 0, 200 * KIB))),
        put(content(noise(1, 0, 200 * KIB)), split=4093),
        put(content(noise(2, 0, 200 * KIB)), put_blob=True),
        put(content(noise(3, 0, 200 * KIB))),
        put(content(noise(0, 4000, 200 * KIB))),
        put(content(raw(b"shift"), copy(0, 1000, 150 * KIB), noise(1, 100, 60 * KIB))),
        put(content(floats(1, 2, 50000))),
        put(content(noise(0, 0, 200 * KIB))),
        release(0), release(0), release(1), release(2),
        read(3, seeks=[(0, 70000, 5000), (1, 1, 10), (2, 123457, 200000)]),
        gc(255),
        read(5, full=False, buf=999, seeks=[(0, 3 * KIB, 140 * KIB), (2, 0, 100)]),
        release(3), release(4),
        gc(200),
        reopen(),
        read(5), read(6), read(0), release(0),
        gc(255),
    ],
    # Versions from staged and held blobs, shared content, deletes, prune, gc.
    "versions_delete_prune": [
        add_staged(0, [(MODEL_ST, content(st(1, 0, 3000, 2000))),
                       (CONFIG, content(raw(b'{"hidden_size": 8}'))),
                       (VOCAB, content(noise(2, 0, 80 * KIB)))]),
        put(content(floats(3, 1, 40000))),
        add_existing(0, [(MODEL_ST, 3, False), (CONFIG, 1, False)]),
        add_staged(0, [(MODEL_ST, content(st(1, 0, 3000, 2000))), (A, content(noise(2, 0, 80 * KIB)))]),
        add_staged(1, [(A_B, content(floats(3, 1, 40000))), (A, content(repeat(b"abc", 1000)))]),
        delete_version(0, 1, dry=True),
        delete_version(0, 1),
        release(3),
        prune(0, 1, dry=True),
        prune(0, 1),
        read(0, seeks=[(1, 100, 100)]),
        gc(255),
        finalize(1),
        delete_model(1),
        delete_model(1, force=True),
        gc(255),
        reopen(),
        read(0), read(2),
        delete_model(0),
        gc(255),
    ],
    # Upload sessions: suspend, reopen, resume and finish / stage / drop /
    # suspend again, expiry, resuming what is gone.
    "suspend_resume": [
        suspend(content(noise(1, 0, 250 * KIB)), 200 * KIB),
        suspend(content(floats(2, 5, 60000)), 150 * KIB, split=777),
        suspend(content(raw(b"tiny")), 2),
        reopen(),
        resume(0, finish(), twice=True),
        resume(0, suspend_again(30 * KIB)),
        resume(0, stage(0, MODEL_ST)),
        suspend(content(noise(3, 10, 240 * KIB)), 239 * KIB),
        resume(0, drop(5000)),
        suspend(content(noise(0, 0, 220 * KIB)), 180 * KIB),
        gc(128, expire=True),
        resume(0, finish()),
        reopen(),
        suspend(content(noise(0, 0, 220 * KIB)), 100 * KIB),
        resume(1, finish()),
        read(0), read(1),
    ],
    # Errors the model predicts: unheld releases, missing versions, finalized
    # models, bad and conflicting paths, unknown blobs.
    "errors": [
        release(0),
        put(content(raw(b"x" * 100))),
        release(0), release(0),
        read(0),
        put(content()),
        add_existing(0, [(A, 1, False), (A_B, 1, False)]),
        add_existing(0, [(DOTDOT, 1, False)]),
        add_existing(0, [(A, 1, True)]),
        add_existing(0, [(A, 7, False)]),
        add_staged(0, [(A, content(raw(b"1"))), (A, content(raw(b"2")))]),
        add_existing(0, [(A, 1, False), (VOCAB, 1, False)]),
        delete_version(0, 5),
        finalize(0), finalize(0),
        add_existing(0, [(A, 1, False)]),
        delete_version(0, 1),
        prune(0, 0),
        delete_version(0, 1, force=True),
        release(1), release(1),
    ],
    # Delta chains: a safetensors file (two 16 KiB fp32 tensors, the
    # smallest that are chunks of their own) and raw floats, next versions with
    # delta_base (a base released before the upload writes, bases released
    # while their deltas live, a chain past max_delta_depth, a released and
    # an unknown base refused), collections, a version, a reopen.
    # Blob indices: A=0 (safetensors) B=1 (raw) C=2 D=3 E=4 F=5 G=6 H=7.
    "delta_chains": [
        put(content(st(1, 0, 4095, 4095))),
        put(content(floats(2, 3, 60000))),
        put_delta(0, content(nudge(0, 1))),
        put_delta(1, content(nudge(1, 2, 3))),
        put_delta(2, content(nudge(2, 3)), release_base=True),
        put_delta(3, content(nudge(3, 4, 1)), split=5000),
        release(0), release(1),
        gc(255),
        read(4), read(5, seeks=[(0, 100000, 5000)]),
        put_delta(4, content(nudge(4, 5))),
        put_delta(6, content(nudge(6, 6))),
        put_delta(1, content(nudge(1, 7))),
        add_existing(0, [(MODEL_ST, 7, False)]),
        release(7), release(6), release(4),
        gc(255),
        reopen(),
        read(7), read(5),
        delete_model(0),
        gc(255),
        read(3), release(3), release(5),
        gc(128),
        put_delta(8, content(nudge(0, 8))),
    ],
    # Reverse deltas: next versions cut like the older one (safetensors and
    # raw floats) and the older one rebased onto them, a chain of them, one
    # on top of a forward chain (up to the depth limit), one backwards, with
    # released, referenced-only, unknown, identical and empty blobs; then
    # releases of the newer versions, a collection, a reopen.
    # Blob indices: 0 (safetensors) 1 (raw) 2..9 next versions, 10 empty.
    "reverse_deltas": [
        put(content(st(1, 0, 4095, 4095))),
        put(content(floats(2, 3, 60000))),
        # (Nudges of one chain with the same seed % 4 and `every` cancel out.)
        put_reverse(0, content(nudge(0, 1))),
        put_reverse(2, content(nudge(2, 2)), split=5000),
        put_reverse(1, content(nudge(1, 3, 3))),
        put_reverse(4, content(nudge(4, 0, 1)), release_older=True),
        put_delta(3, content(nudge(3, 3))),
        put_delta(6, content(nudge(6, 0))),
        reverse_delta(3, 7),
        put_reverse(3, content(nudge(3, 1, 1))),
        put_reverse(8, content(nudge(8, 2, 2))),
        reverse_delta(9, 8),
        reverse_delta(5, 1),
        read(0), read(1), read(2, seeks=[(0, 20000, 9000)]),
        release(3), release(8),
        gc(255),
        read(0), read(6), read(7), read(9),
        add_existing(0, [(MODEL_ST, 2, False)]),
        release(2),
        reverse_delta(2, 9),
        reopen(),
        reverse_delta(0, 10),
        reverse_delta(4, 1),
        put_reverse(4, content(nudge(0, 9))),
        reverse_delta(9, 9),
        put(content()),
        reverse_delta(10, 9),
        release(9),
        gc(128),
        read(0), read(2), read(5),
        delete_model(0),
        gc(255),
        read(0), read(6),
    ],
    # A run of 18 versions, each cut like the one before, which is then
    # rebased onto it: every max_delta_depth + 1 versions stays whole (the
    # chains are not observable through the API, but one past the readers'
    # bound of 16 records would fail the reads), then the oldest ones are
    # released and collected with compaction.
    "reverse_chain": [put(content(st(3, 0, 4095, 2000)))]
    + [put_reverse(k, content(nudge(k, k % 4, k // 4))) for k in range(18)]
    + [read(0), read(9), release(0), release(1), release(2), gc(255), read(3), reopen(), read(5)],
    # A bit of everything, interleaved.
    "mixed": [
        put(content(noise(0, 0, 120 * KIB), floats(0, 0, 10000))),
        abandon(content(noise(0, 0, 250 * KIB)), 200 * KIB),
        add_staged(1, [(MODEL_ST, content(copy(0, 0, 100 * KIB)))]),
        suspend(content(copy(0, 5, 200 * KIB), noise(1, 0, 50 * KIB)), 160 * KIB),
        gc(0),
        read(1, full=False, seeks=[(1, 50000, 60000), (2, 3, 4), (0, 999999, 1)]),
        release(0),
        gc(255),
        resume(0, stage(1, CONFIG)),
        read(0, buf=1, seeks=[(0, 1000, 300)]),
        delete_version(1, 1),
        gc(255),
        reopen(),
        read(0), read(1), read(2),
    ],
}

if __name__ == "__main__":
    out = os.path.join(HERE, "api_sequence")
    os.makedirs(out, exist_ok=True)
    for name, ops in SEEDS.items():
        assert len(ops) <= 64, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"".join(ops))
    print(f"wrote {len(SEEDS)} seeds to {out}")
