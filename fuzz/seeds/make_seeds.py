#!/usr/bin/env python3
"""Writes the small seed inputs under fuzz/seeds/<target>/ (committed; run.sh
passes them to libFuzzer next to the working corpus). Needs the `zstd` CLI
for the codec seeds. Re-run after a format change: python3 fuzz/seeds/make_seeds.py
"""
import json, os, shutil, struct, subprocess, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def zstd_frame(raw):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, stdout=subprocess.PIPE, check=True).stdout


def floats(n, seed=7):
    x, out = seed | 1, bytearray()
    for _ in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out += struct.pack("<f", (x / 0xFFFFFFFF - 0.5) * 0.02)
    return bytes(out)


def bit_image(plane):
    """Bit planes of a byte plane (planes mode 2): bit k of byte 8i+j -> bit j of byte i of bit plane k."""
    g = len(plane) // 8
    out = bytearray(len(plane))
    for i in range(g):
        for k in range(8):
            out[k * g + i] = sum(((plane[8 * i + j] >> k) & 1) << j for j in range(8))
    out[8 * g:] = plane[8 * g:]
    return bytes(out)


def sparse_pairs(n):
    """2-byte elements, low byte mostly 0 and sometimes 1 or 2, high byte 0."""
    return bytes((1 + (i // 2) % 2) if i % 2 == 0 and (i * 2654435761) % 8 == 0 else 0 for i in range(n))


def planes(raw, width, zstd_planes, bit_planes=()):
    n = len(raw)
    ps = [bytes(raw[p::width]) for p in range(width)]
    d, body = b"", b""
    for p, plane in enumerate(ps):
        if p in bit_planes:
            z = zstd_frame(bit_image(plane))
            d += bytes([2]) + struct.pack("<I", len(z))
            body += z
        elif p in zstd_planes:
            z = zstd_frame(plane)
            d += bytes([1]) + struct.pack("<I", len(z))
            body += z
        else:
            d += bytes([0]) + struct.pack("<I", len(plane))
            body += plane
    return d + body


def main():
    for t in os.listdir(HERE):
        if os.path.isdir(os.path.join(HERE, t)):
            shutil.rmtree(os.path.join(HERE, t))

    # pack_header: magic, version 1, pack id, store id.
    put("pack_header", "valid", b"\x89MVP\r\n\x1a\n" + struct.pack("<II", 1, 7) + bytes(range(16)))
    put("pack_header", "v2", b"\x89MVP\r\n\x1a\n" + struct.pack("<II", 2, 7) + bytes(16))

    # record_header: CHNK, codec, reserved, raw, stored, id, crc32 of 0..48.
    for name, codec, raw, stored in [("planes4", b"\x02\x04", 65536, 40000), ("zstd", b"\x01\x00", 100, 20),
                                      ("raw", b"\x00\x00", 7, 7)]:
        h = b"CHNK" + codec + b"\0\0" + struct.pack("<II", raw, stored) + bytes(range(32))
        put("record_header", name, h + struct.pack("<I", zlib.crc32(h)) + b"payload")

    # records: version byte 1, then the fixed layouts / postcard.
    put("records", "chunk_loc", b"\x01" + struct.pack("<IQII", 3, 1 << 33, 9, 100) + b"\x02\x04")
    put("records", "pack", b"\x01" + struct.pack("<Q", 77))
    put("records", "blob", b"\x01" + struct.pack("<QQQ", 10, 1, 4))
    put("records", "segment", b"\x01" + struct.pack("<I", 2) + (bytes(range(32)) + struct.pack("<I", 100)) * 2)
    put("records", "postcard_stats", b"\x01\x05\x04\x03\x02\x01")
    put("records", "postcard_files", b"\x01\x01\x03a/b" + bytes(32) + b"\x00\x05")
    # Hostile lengths: a 4 GiB stored length, an offset whose record end overflows.
    put("records", "chunk_loc_stored_4g", b"\x01" + struct.pack("<IQII", 3, 4096, 0xFFFFFFFF, 100) + b"\x01\x00")
    put("records", "chunk_loc_offset_overflow", b"\x01" + struct.pack("<IQII", 3, (1 << 64) - 60, 9, 100) + b"\x01\x00")
    # Typed values (postcard: List = variant 4, length 1): nested 64 levels
    # (the most accepted) and 2,000 levels around Int(7).
    put("records", "value_depth_64", b"\x01" + b"\x04\x01" * 63 + b"\x00\x0e")
    put("records", "value_depth_2000", b"\x01" + b"\x04\x01" * 1999 + b"\x00\x0e")

    # keys: segment (16), pack (4).
    put("keys", "segment", struct.pack(">QQ", 3, 1 << 40))
    put("keys", "pack", struct.pack(">I", 9))

    # codec_decode: [selector, b1, raw_len u32 LE, stored...].
    f = floats(1024)
    put("codec_decode", "raw", bytes([4, 0]) + struct.pack("<I", 0) + f[:64])
    put("codec_decode", "zstd", bytes([1, 0]) + struct.pack("<I", 4096) + zstd_frame(bytes(4096)))
    put("codec_decode", "zstd_text", bytes([1, 0]) + struct.pack("<I", 450) + zstd_frame(b"the quick brown fox. " * 21 + b"ok!"))
    put("codec_decode", "planes4", bytes([2 | 1, 4]) + struct.pack("<I", len(f)) + planes(f, 4, {2, 3}))
    put("codec_decode", "planes2", bytes([2, 2]) + struct.pack("<I", 1001) + planes(f[:1001], 2, {1}))
    put("codec_decode", "planes2_raw", bytes([2, 2]) + struct.pack("<I", 9) + planes(f[:9], 2, set()))
    sp = sparse_pairs(2054)
    put("codec_decode", "planes2_bits", bytes([2, 2]) + struct.pack("<I", len(sp)) + planes(sp, 2, {1}, {0}))
    bomb = zstd_frame(bytes(1 << 20))
    put("codec_decode", "bomb", bytes([1, 0]) + struct.pack("<I", 1024) + bomb)

    # delta_decode: [raw_len / 16 u16, split, base | stored]; stored is a
    # delta record with transform 4 (difference of u32 elements, split by
    # magnitude: symbols in a zstd frame, then the tail bits).
    base = floats(32, seed=3)
    raw = floats(32, seed=3)
    raw = b"".join(struct.pack("<f", struct.unpack("<f", raw[i:i + 4])[0] * (1 + 1e-3 * ((i * 37) % 7 - 3)))
                   for i in range(0, len(raw), 4))
    syms, acc, nbits, tail = bytearray(), 0, 0, bytearray()
    for i in range(0, 128, 4):
        d = (struct.unpack("<I", raw[i:i + 4])[0] - struct.unpack("<I", base[i:i + 4])[0]) & 0xFFFFFFFF
        z = ((d << 1) ^ (0xFFFFFFFF if d >> 31 else 0)) & 0xFFFFFFFF
        if z < 4:
            syms.append(z)
            continue
        n = z.bit_length()
        syms.append(4 + 4 * (n - 3) + ((z >> (n - 3)) & 3))
        acc |= (z & ((1 << (n - 3)) - 1)) << nbits
        nbits += n - 3
        while nbits >= 8:
            tail.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        tail.append(acc)
    frame = zstd_frame(bytes(syms))
    stored = bytes([4, 1, 0]) + bytes(32) + struct.pack("<I", len(frame)) + frame + bytes(tail)
    body = base + stored
    for sel in range(256):
        total = 3 + len(body)
        if max(sel * total // 256, 3) - 3 == len(base):
            put("delta_decode", "split32", struct.pack("<H", 128 // 16) + bytes([sel]) + body)
            break
    else:
        raise SystemExit("no split byte puts the base at 128 bytes")

    # codec_roundtrip: [level, min_saving, raw...].
    put("codec_roundtrip", "floats", bytes([5, 25]) + f[:2048])
    put("codec_roundtrip", "zeros", bytes([5, 25]) + bytes(1024))
    put("codec_roundtrip", "sparse_pairs", bytes([1, 0]) + sparse_pairs(4096))
    put("codec_roundtrip", "text", bytes([3, 0]) + b"the quick brown fox jumps over the lazy dog. " * 20)
    put("codec_roundtrip", "fp16", bytes([4, 12]) + b"".join(struct.pack("<e", (i % 97) / 97.0) for i in range(700)))

    # query_parse: the grammar's examples and its corners.
    for i, q in enumerate([
        "metadata.accuracy > 0.9 AND framework = pytorch",
        "(project = \"vision\" OR project = 'nlp') AND NOT status = archived",
        "tag IN (prod, staging) && HAS metadata.f1",
        "name ~ resnet- AND created >= \"2024-01-01\" AND metadata.lr < 1e-3",
        "a = 1 OR (b != -2.5e10 AND NOT (c <= 3 || d == 'x\\'y'))",
        "x = true AND y = FALSE AND z.w-v_1 IN (1, 2.0, \"q\\\\\", v1.2.3)",
        "!(a = 9223372036854775807) OR b = -9223372036854775808",
        "n = 2024-01-01 AND m = 1.2.3 AND k = 1e308",
    ]):
        put("query_parse", f"q{i}", q)

    # index_key: encoded keys (bool, int, float, str with NUL, list).
    sign = 1 << 63
    def num(f_bits_key, t, kind):
        return b"\x02" + struct.pack(">QQ", f_bits_key, t ^ sign) + bytes([kind])
    def order_bits(x):
        b = struct.unpack("<Q", struct.pack("<d", x))[0]
        return (~b) & 0xFFFFFFFFFFFFFFFF if b & sign else b ^ sign
    put("index_key", "bool", b"\x01\x01")
    put("index_key", "int", num(order_bits(3.0), 3, 0))
    put("index_key", "float", num(order_bits(-2.5), (-2) & 0xFFFFFFFFFFFFFFFF, 1))
    put("index_key", "str", b"\x03a\x00\xffb\x00\x01")
    put("index_key", "list", b"\x04\x01\x00" + b"\x03xy\x00\x01" + b"\x04\x00" + b"\x00")

    # detect: magic numbers and layouts, each behind a known name.
    # detect: [name index into NAMES, len mode, folder length, folder, head].
    st_header = json.dumps({"__metadata__": {"format": "pt"},
                            "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    st = struct.pack("<Q", len(st_header)) + st_header + bytes(16)
    gg = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    gg += struct.pack("<Q", 17) + b"general.alignment" + struct.pack("<II", 4, 32)
    gg += struct.pack("<Q", 1) + b"t" + struct.pack("<I", 2) + struct.pack("<QQ", 4, 2) + struct.pack("<IQ", 0, 0)
    gg += bytes((-len(gg)) % 32) + bytes(32)
    heads = {
        "safetensors": st, "gguf": gg, "zip": b"PK\x03\x04\x14\x00" + b"archive/data.pkl" + bytes(40),
        "hdf5": b"\x89HDF\r\n\x1a\n" + bytes(64), "pickle": b"\x80\x02}q\x00." , "torch_legacy":
        b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", "tflite": b"\x1c\x00\x00\x00TFL3" + bytes(40),
        "cbm": b"CBM1\x10\0\0\0rest", "mge": b"MGBS\0\0\0\0\x10\0\0\0", "json": b'{"format": "layers-model", "modelTopology": {}, "weightsManifest": []}',
        "gzip": b"\x1f\x8b\x08\x00\x00\x00" + bytes(20), "onnx": b"\x08\x07\x12\x07pytorch" + bytes(20),
    }
    names = {"safetensors": 0, "gguf": 35, "zip": 3, "hdf5": 27, "pickle": 7, "torch_legacy": 2,
             "tflite": 36, "cbm": 32, "mge": 31, "json": 33, "gzip": 13, "onnx": 30}
    for name, h in heads.items():
        put("detect", name, bytes([names[name], 0, 0]) + h)
    put("detect", "tf_data", bytes([23, 1 | 8, 3]) + b"exp" + bytes(64))

    # tensors_probe: [mode, prefix...]; mode 1 = whole file, 0 = streaming.
    put("tensors_probe", "safetensors", b"\x01" + st)
    put("tensors_probe", "safetensors_stream", b"\x00" + st[:40])
    put("tensors_probe", "gguf", b"\x01" + gg)
    put("tensors_probe", "gguf_stream", b"\x00" + gg[:30])
    hdr2 = json.dumps({"a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
                       "b": {"dtype": "I8", "shape": [], "data_offsets": [8, 9]},
                       "c": {"dtype": "U16", "shape": [0], "data_offsets": [9, 9]},
                       "d": {"dtype": "X9", "shape": [3, 7], "data_offsets": [9, 20]}}).encode()
    put("tensors_probe", "safetensors_mixed", b"\x01" + struct.pack("<Q", len(hdr2)) + hdr2 + bytes(20))

    # chunker: [min, avg, max, piece] then data.
    put("chunker", "floats", bytes([0, 0, 0, 17]) + f[:4000])
    put("chunker", "zeros", bytes([255, 255, 255, 1]) + bytes(3000))


main()
