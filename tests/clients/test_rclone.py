"""rclone (from apt) with a remote configured from the environment:
copy a folder up and back, check (rclone compares sizes and MD5 ETags),
lsf and delete."""

from __future__ import annotations

import os
import random
import subprocess

import pytest

from conftest import IS_MOTO, tree_bytes

MiB = 1 << 20


def rclone_env(server) -> dict:
    """A remote named `mv` of type s3 pointing at the server."""
    env = dict(os.environ)
    # rclone refuses a custom CA bundle with its transport; the server is
    # plain http anyway.
    env.pop("AWS_CA_BUNDLE", None)
    env.update(
        RCLONE_CONFIG=os.devnull,
        RCLONE_CONFIG_MV_TYPE="s3",
        RCLONE_CONFIG_MV_PROVIDER="Other",
        RCLONE_CONFIG_MV_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_MV_ACCESS_KEY_ID=server.access_key,
        RCLONE_CONFIG_MV_SECRET_ACCESS_KEY=server.secret_key,
        RCLONE_CONFIG_MV_REGION="us-east-1",
        RCLONE_CONFIG_MV_FORCE_PATH_STYLE="true",
        # Files over 8 MiB go multipart in 5 MiB parts, 4 at a time (not
        # under moto: after a multipart upload rclone sends a HEAD with
        # ?versionId=null, which moto refuses).
        RCLONE_CONFIG_MV_UPLOAD_CUTOFF="200M" if IS_MOTO else "8M",
        RCLONE_CONFIG_MV_CHUNK_SIZE="5M",
        RCLONE_CONFIG_MV_UPLOAD_CONCURRENCY="4",
    )
    return env


def rclone(rclone_bin, server, *args, check=True):
    cmd = [rclone_bin, "--retries", "1", "--low-level-retries", "1", *map(str, args)]
    r = subprocess.run(cmd, env=rclone_env(server), capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def test_rclone_copy_check_lsf_delete(server, rclone_bin, tmp_path):
    rng = random.Random(11)
    src = tmp_path / "src"
    files = {
        "model.safetensors": rng.randbytes(9 * MiB + 123),  # multipart
        "shard/part-0.bin": rng.randbytes(2 * MiB),
        "shard/part-1.bin": rng.randbytes(777),
        "README.md": b"# a model\n",
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)

    rclone(rclone_bin, server, "mkdir", "mv:rclone-bucket")
    rclone(rclone_bin, server, "copy", src, "mv:rclone-bucket/run")

    listed = rclone(rclone_bin, server, "lsf", "-R", "--files-only", "mv:rclone-bucket/run").stdout.split()
    assert sorted(listed) == sorted(files)

    # check compares sizes and hashes (MD5: the ETag of single-part objects,
    # and the X-Amz-Meta-Md5chksum rclone stores with multipart ones).
    r = rclone(rclone_bin, server, "check", src, "mv:rclone-bucket/run")
    assert "0 differences found" in r.stderr, r.stderr
    md5s = rclone(rclone_bin, server, "md5sum", "mv:rclone-bucket/run").stdout
    assert "shard/part-1.bin" in md5s

    back = tmp_path / "back"
    rclone(rclone_bin, server, "copy", "mv:rclone-bucket/run", back)
    assert tree_bytes(back) == files

    # A changed local file is found by check.
    (src / "shard/part-1.bin").write_bytes(b"y" * 777)
    r = rclone(rclone_bin, server, "check", src, "mv:rclone-bucket/run", check=False)
    assert r.returncode != 0
    assert "1 differences found" in r.stderr, r.stderr

    rclone(rclone_bin, server, "delete", "mv:rclone-bucket/run/shard")
    listed = rclone(rclone_bin, server, "lsf", "-R", "--files-only", "mv:rclone-bucket").stdout.split()
    assert sorted(listed) == ["run/README.md", "run/model.safetensors"]
    rclone(rclone_bin, server, "purge", "mv:rclone-bucket")
    assert "rclone-bucket" not in rclone(rclone_bin, server, "lsd", "mv:").stdout
