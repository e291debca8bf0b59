"""Stored files as Python binary file objects, read by real consumers
(numpy.load, safetensors), random seeks, single tensors, and blob writers."""

import io
import os
import random

import numpy as np
import pytest
from safetensors.numpy import load as st_load

import modelvault


def test_numpy_load_through_file_object(store, tmp_path):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((300, 70)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    m = store.record_model("arr", tmp_path / "a.npy")
    with m.open("a.npy") as f:
        assert isinstance(f, io.BufferedReader)
        assert isinstance(f.raw, io.RawIOBase) and isinstance(f.raw, modelvault.BlobFile)
        assert f.readable() and f.seekable() and not f.writable()
        b = np.load(f)
    assert b.dtype == np.float32 and np.array_equal(a, b)
    # Unbuffered: the raw file object itself works for numpy too.
    with m.open("a.npy", buffering=0) as raw:
        assert np.array_equal(np.load(raw), a)


def test_safetensors_through_file_object(store, checkpoint):
    folder, files, tensors = checkpoint
    m = store.record_model("st", folder)
    with m.open("model.safetensors") as f:
        loaded = st_load(f.read())
    assert sorted(loaded) == sorted(tensors)
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v)


def test_random_seeks_match_original(store, tmp_path):
    data = os.urandom(3 << 20) + bytes(1 << 20) + os.urandom(123457)
    (tmp_path / "blob.bin").write_bytes(data)
    m = store.record_model("bin", tmp_path / "blob.bin")
    rnd = random.Random(5)
    with m.open("bin" if False else "blob.bin", buffering=0) as f:
        assert f.size == len(data)
        for _ in range(200):
            off = rnd.randrange(0, len(data) + 10)
            n = rnd.randrange(0, 70000)
            assert f.seek(off) == off and f.tell() == off
            got = f.read(n)
            assert got == data[off:off + n]
            assert f.tell() == off + len(got)
        # whence 1 and 2, readinto, and reads past the end.
        f.seek(-100, io.SEEK_END)
        assert f.tell() == len(data) - 100
        assert f.read() == data[-100:]
        assert f.read(10) == b""
        f.seek(1000)
        f.seek(500, io.SEEK_CUR)
        buf = bytearray(777)
        assert f.readinto(buf) == 777 and bytes(buf) == data[1500:2277]
        mv = memoryview(bytearray(64))
        assert f.readinto(mv) == 64 and mv.tobytes() == data[2277:2341]
        f.seek(len(data) + 5)
        assert f.readinto(bytearray(10)) == 0
        with pytest.raises(ValueError):
            f.seek(-1)
        with pytest.raises(ValueError):
            f.seek(0, 7)
    with pytest.raises(ValueError):
        f.read(1)  # closed
    with m.open("blob.bin") as bf:
        bf.seek(4 << 20)
        assert bf.read(16) == data[4 << 20:(4 << 20) + 16]
        assert bf.read() == data[(4 << 20) + 16:]


def test_read_one_tensor(store, checkpoint):
    folder, files, tensors = checkpoint
    m = store.record_model("st", folder)
    names = {t["name"]: t for t in m.tensors("model.safetensors")}
    assert set(names) == set(tensors)
    assert names["encoder.weight"]["dtype"] == "f32" and names["encoder.weight"]["shape"] == [256, 128]
    dt, shape, raw = m.read_tensor("encoder.weight", "model.safetensors")
    assert (dt, shape) == ("f32", [256, 128])
    assert raw == tensors["encoder.weight"].tobytes()
    arr = m.tensor_array("head.weight", "model.safetensors")
    assert arr.dtype == np.float16 and arr.shape == (64, 32)
    assert np.array_equal(arr, tensors["head.weight"])
    assert np.array_equal(m.tensor_array("encoder.bias", "model.safetensors"), tensors["encoder.bias"])
    with pytest.raises(modelvault.NotFound, match="no.such"):
        m.read_tensor("no.such", "model.safetensors")
    assert m.tensors("config.json") is None
    with pytest.raises(modelvault.NotFound):
        m.read_tensor("x", "config.json")


def test_blob_writer_file_object(store):
    chunks = [os.urandom(100000) for _ in range(5)]
    with store.blob_writer() as w:
        for c in chunks:
            assert w.write(c) == len(c)
        assert w.tell() == 500000
    assert w.closed and w.blob_id is not None
    with store.open_blob(w.blob_id) as f:
        assert f.read() == b"".join(chunks)
    # The same bytes again: the same id (content addressed).
    assert store.put_blob(b"".join(chunks)) == w.blob_id
    assert store.put_blob(io.BytesIO(b"abc")) == store.put_blob(b"abc")
    # A block left by an exception stores nothing.
    with pytest.raises(RuntimeError):
        with store.blob_writer() as w2:
            w2.write(b"never stored" * 1000)
            raise RuntimeError("boom")
    assert w2.blob_id is None
    with pytest.raises(ValueError):
        w2.write(b"x")
    store.release_blob(w.blob_id)


def _gguf(tensors):
    """A minimal GGUF v3 file: no metadata, F32 tensors (ggml type 0) given
    as name -> array; dims are written innermost first, as ggml does."""
    import struct

    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 0)
    infos, datas, off = b"", b"", 0
    for name, a in tensors.items():
        nb = name.encode()
        dims = list(reversed(a.shape))
        infos += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims))
        infos += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 0, off)
        raw = a.astype("<f4").tobytes()
        raw += bytes(-len(raw) % 32)
        datas += raw
        off += len(raw)
    body = head + infos
    return body + bytes(-len(body) % 32) + datas


def test_read_one_gguf_tensor(store, tmp_path):
    rng = np.random.default_rng(2)
    t = {"tok_embd.weight": rng.standard_normal((6, 5), dtype=np.float32),
         "norm.weight": rng.standard_normal(7, dtype=np.float32)}
    (tmp_path / "m.gguf").write_bytes(_gguf(t))
    m = store.record_model("gguf", tmp_path / "m.gguf")
    assert m.files()[0]["format"] == "gguf"
    listed = {x["name"]: x for x in m.tensors()}
    assert listed["tok_embd.weight"]["shape"] == [5, 6]  # as GGUF lists it, innermost first
    dt, shape, raw = m.read_tensor("tok_embd.weight")
    assert (dt, shape, raw) == ("f32", [5, 6], t["tok_embd.weight"].tobytes())
    a = m.tensor_array("tok_embd.weight")
    assert a.shape == (6, 5) and np.array_equal(a, t["tok_embd.weight"])
    assert np.array_equal(m.tensor_array("norm.weight"), t["norm.weight"])
