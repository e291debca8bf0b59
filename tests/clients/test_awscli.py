"""The aws CLI (v1, from the venv): the high-level `aws s3` commands and the
multipart calls of `aws s3api`, configured from the environment with
path-style addressing (Server.aws_env)."""

from __future__ import annotations

import json
import os
import random

from conftest import file_md5, tree_bytes

MiB = 1 << 20


def make_folder(root, seed):
    """A small folder tree of distinct files, one of them empty."""
    rng = random.Random(seed)
    files = {
        "config.json": b'{"hidden": 64}',
        "weights/layer0.bin": rng.randbytes(300_000),
        "weights/layer1.bin": rng.randbytes(70_000),
        "tokenizer/vocab.txt": b"a\nb\nc\n" * 1000,
        "empty.txt": b"",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def test_mb_cp_ls_rm_rb(server, tmp_path):
    server.aws("s3", "mb", "s3://cli-bucket")
    assert "cli-bucket" in server.aws("s3", "ls").stdout

    # Over 8 MiB: the CLI sends it as a multipart upload (8 MiB parts).
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(13 * MiB + 5))
    server.aws("s3", "cp", str(big), "s3://cli-bucket/dir/big.bin")
    small = tmp_path / "small.txt"
    small.write_bytes(b"small file\n")
    server.aws("s3", "cp", str(small), "s3://cli-bucket/small.txt")

    head = json.loads(server.aws("s3api", "head-object", "--bucket", "cli-bucket", "--key", "dir/big.bin").stdout)
    assert head["ContentLength"] == 13 * MiB + 5
    assert head["ETag"].endswith('-2"'), head["ETag"]

    listing = server.aws("s3", "ls", "--recursive", "s3://cli-bucket").stdout
    assert "dir/big.bin" in listing and "small.txt" in listing
    top = server.aws("s3", "ls", "s3://cli-bucket/").stdout
    assert "PRE dir/" in top

    back = tmp_path / "back.bin"
    server.aws("s3", "cp", "s3://cli-bucket/dir/big.bin", str(back))
    assert file_md5(back) == file_md5(big)
    # A copy inside the server (UploadPartCopy for an object over 8 MiB).
    server.aws("s3", "cp", "s3://cli-bucket/dir/big.bin", "s3://cli-bucket/dir/big-copy.bin")
    server.aws("s3", "cp", "s3://cli-bucket/dir/big-copy.bin", str(back))
    assert file_md5(back) == file_md5(big)
    server.aws("s3", "cp", "s3://cli-bucket/small.txt", str(tmp_path / "small-back.txt"))
    assert (tmp_path / "small-back.txt").read_bytes() == b"small file\n"

    # rb of a non-empty bucket fails and keeps the objects.
    r = server.aws("s3", "rb", "s3://cli-bucket", check=False)
    assert r.returncode != 0
    assert "BucketNotEmpty" in r.stderr, r.stderr
    server.aws("s3", "rm", "s3://cli-bucket/small.txt")
    assert "small.txt" not in server.aws("s3", "ls", "--recursive", "s3://cli-bucket").stdout
    server.aws("s3", "rm", "--recursive", "s3://cli-bucket/")
    assert server.aws("s3", "ls", "--recursive", "s3://cli-bucket", check=False).stdout.strip() == ""
    server.aws("s3", "rb", "s3://cli-bucket")
    assert "cli-bucket" not in server.aws("s3", "ls").stdout


def test_sync_both_ways(server, tmp_path):
    src = tmp_path / "src"
    files = make_folder(src, seed=7)
    server.aws("s3", "mb", "s3://sync-bucket")
    server.aws("s3", "sync", str(src), "s3://sync-bucket/run1")
    listed = server.aws("s3", "ls", "--recursive", "s3://sync-bucket/run1/").stdout
    for rel in files:
        assert f"run1/{rel}" in listed

    out = tmp_path / "out"
    server.aws("s3", "sync", "s3://sync-bucket/run1", str(out))
    assert tree_bytes(out) == files

    # A second sync up with one file changed and one new sends only those;
    # after a sync down the copy matches again.
    (src / "weights/layer1.bin").write_bytes(b"changed" * 999)
    (src / "new.txt").write_bytes(b"new file")
    r = server.aws("s3", "sync", str(src), "s3://sync-bucket/run1")
    uploaded = [line for line in r.stdout.splitlines() if line.startswith("upload:")]
    assert len(uploaded) == 2, r.stdout
    server.aws("s3", "sync", "s3://sync-bucket/run1", str(out))
    assert tree_bytes(out) == tree_bytes(src)

    server.aws("s3", "rm", "--recursive", "s3://sync-bucket")
    server.aws("s3", "rb", "s3://sync-bucket")


def test_s3api_multipart_and_copy(server, tmp_path):
    server.aws("s3api", "create-bucket", "--bucket", "api-bucket")
    parts = [os.urandom(5 * MiB), os.urandom(1 * MiB + 3)]
    up = json.loads(server.aws("s3api", "create-multipart-upload", "--bucket", "api-bucket",
                               "--key", "mp.bin").stdout)
    uid = up["UploadId"]
    done = []
    for n, data in enumerate(parts, 1):
        f = tmp_path / f"part{n}"
        f.write_bytes(data)
        r = json.loads(server.aws("s3api", "upload-part", "--bucket", "api-bucket", "--key", "mp.bin",
                                  "--upload-id", uid, "--part-number", n, "--body", f).stdout)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = json.loads(server.aws("s3api", "list-parts", "--bucket", "api-bucket", "--key", "mp.bin",
                                   "--upload-id", uid).stdout)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    server.aws("s3api", "complete-multipart-upload", "--bucket", "api-bucket", "--key", "mp.bin",
               "--upload-id", uid, "--multipart-upload", json.dumps({"Parts": done}))

    server.aws("s3api", "copy-object", "--bucket", "api-bucket", "--key", "copy.bin",
               "--copy-source", "api-bucket/mp.bin")
    for key in ("mp.bin", "copy.bin"):
        out = tmp_path / f"get-{key}"
        server.aws("s3api", "get-object", "--bucket", "api-bucket", "--key", key, out)
        assert out.read_bytes() == b"".join(parts), key

    # An aborted upload is gone from list-multipart-uploads.
    uid2 = json.loads(server.aws("s3api", "create-multipart-upload", "--bucket", "api-bucket",
                                 "--key", "gone.bin").stdout)["UploadId"]
    server.aws("s3api", "abort-multipart-upload", "--bucket", "api-bucket", "--key", "gone.bin",
               "--upload-id", uid2)
    ups = server.aws("s3api", "list-multipart-uploads", "--bucket", "api-bucket").stdout
    assert uid2 not in ups
