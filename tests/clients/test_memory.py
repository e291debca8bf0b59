"""Memory and I/O bounds with a 2 GiB object through the aws CLI: the
server's peak RSS stays under 256 MiB for the upload and the download, and a
1 MiB ranged GET in the middle reads far less than the object from disk."""

from __future__ import annotations

import hashlib
import os

import pytest

pytestmark = [pytest.mark.modelvault_only, pytest.mark.slow]

MiB = 1 << 20
SIZE = 2048 * MiB
RSS_BOUND = 256 * MiB
RCHAR_BOUND = 64 * MiB


def write_big_file(path, size) -> str:
    """Streams `size` bytes to path (1 MiB at a time, never all in memory):
    random blocks, every fourth one repeating the block before it, so the
    data is mostly incompressible with some repetition. Returns its SHA-256."""
    h = hashlib.sha256()
    prev = b""
    with open(path, "wb") as f:
        for i in range(size // MiB):
            block = prev if i % 4 == 3 else os.urandom(MiB)
            f.write(block)
            h.update(block)
            prev = block
    return h.hexdigest()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def test_2gib_through_aws_cli_in_bounded_memory(server_factory, tmp_path):
    srv = server_factory()
    src = tmp_path / "big.bin"
    want = write_big_file(src, SIZE)
    try:
        srv.aws("s3", "mb", "s3://mem")
        srv.aws("s3", "cp", src, "s3://mem/big.bin", timeout=1200)
        head = srv.client().head_object(Bucket="mem", Key="big.bin")
        assert head["ContentLength"] == SIZE

        back = tmp_path / "back.bin"
        srv.aws("s3", "cp", "s3://mem/big.bin", back, timeout=1200)
        assert file_sha256(back) == want
        back.unlink()

        peak = srv.vm_hwm_bytes()
        print(f"server peak RSS after a 2 GiB upload and download: {peak / MiB:.0f} MiB")
        assert peak <= RSS_BOUND, f"server peak RSS {peak / MiB:.0f} MiB over {RSS_BOUND / MiB:.0f} MiB"

        # A 1 MiB range in the middle reads a small part of the object.
        start = SIZE // 2 + 12345
        before = srv.rchar()
        got = srv.client().get_object(Bucket="mem", Key="big.bin",
                                      Range=f"bytes={start}-{start + MiB - 1}")["Body"].read()
        read = srv.rchar() - before
        with open(src, "rb") as f:
            f.seek(start)
            assert got == f.read(MiB)
        print(f"a 1 MiB ranged GET read {read / MiB:.1f} MiB")
        assert read < RCHAR_BOUND, f"a 1 MiB ranged GET read {read / MiB:.0f} MiB"
    finally:
        src.unlink(missing_ok=True)
