"""The read-only registry bucket (`models`): model versions stored with the
CLI appear as MODEL/VERSION/PATH, MODEL/latest/PATH and MODEL/ALIAS/PATH;
writes to it are refused. And dedup across the two ways in: bytes uploaded
through S3 (and copied) and the same bytes stored as a model version are
kept once (`modelvault stats --json`, read while the server is stopped)."""

from __future__ import annotations

import json
import os
import random

import pytest
from botocore.exceptions import ClientError

from conftest import tree_bytes

pytestmark = pytest.mark.modelvault_only

MiB = 1 << 20


def write_tree(root, files):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def stats(server) -> dict:
    return json.loads(server.cli("stats", "--json").stdout)


def test_registry_bucket_serves_model_versions(server_factory, tmp_path):
    srv = server_factory()  # creates the repository
    srv.stop()

    rng = random.Random(3)
    v1 = {"model.safetensors": rng.randbytes(2 * MiB), "config.json": b'{"v": 1}',
          "tokenizer/vocab.txt": b"a\nb\n"}
    v2 = dict(v1, **{"config.json": b'{"v": 2}', "extra/head.bin": rng.randbytes(300_000)})
    write_tree(tmp_path / "v1", v1)
    write_tree(tmp_path / "v2", v2)
    assert srv.cli("put", "--name", "resnet", tmp_path / "v1").stdout.strip().endswith("resnet@1")
    assert srv.cli("put", "--name", "resnet", tmp_path / "v2").stdout.strip().endswith("resnet@2")
    srv.cli("model", "alias", "resnet", "prod", "1")
    versions_before = srv.cli("versions", "--json", "resnet").stdout

    srv.start()
    for where, expected in [("resnet/latest", v2), ("resnet/1/", v1), ("resnet/2", v2), ("resnet/prod", v1)]:
        out = tmp_path / ("out-" + where.strip("/").replace("/", "-"))
        srv.aws("s3", "sync", f"s3://models/{where}", out)
        assert tree_bytes(out) == expected, where

    s3 = srv.client()
    top = s3.list_objects_v2(Bucket="models", Delimiter="/")
    assert [p["Prefix"] for p in top.get("CommonPrefixes", [])] == ["resnet/"]
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix="resnet/1/")["Contents"]]
    assert sorted(listed) == sorted(f"resnet/1/{p}" for p in v1)
    got = s3.get_object(Bucket="models", Key="resnet/latest/model.safetensors", Range="bytes=100-199")
    assert got["Body"].read() == v2["model.safetensors"][100:200]
    head = s3.head_object(Bucket="models", Key="resnet/2/config.json")
    assert head["ContentLength"] == len(v2["config.json"])

    # Writes to the registry bucket are refused and change nothing.
    refusals = [
        lambda: s3.put_object(Bucket="models", Key="resnet/3/x.bin", Body=b"x"),
        lambda: s3.put_object(Bucket="models", Key="resnet/latest/config.json", Body=b"overwritten"),
        lambda: s3.delete_object(Bucket="models", Key="resnet/1/config.json"),
        lambda: s3.delete_objects(Bucket="models", Delete={"Objects": [{"Key": "resnet/2/config.json"}]}),
        lambda: s3.create_multipart_upload(Bucket="models", Key="resnet/3/big.bin"),
        lambda: s3.copy_object(Bucket="models", Key="resnet/1/copy", CopySource={"Bucket": "models",
                                                                            "Key": "resnet/1/config.json"}),
        lambda: s3.delete_bucket(Bucket="models"),
    ]
    for i, call in enumerate(refusals):
        try:
            out = call()
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            assert 400 <= status < 500, (i, e.response)
        else:
            # DeleteObjects answers 200 with per-key errors.
            errors = out.get("Errors", []) if isinstance(out, dict) else []
            assert errors, f"write #{i} to the registry bucket was accepted: {out}"
    assert s3.get_object(Bucket="models", Key="resnet/latest/config.json")["Body"].read() == b'{"v": 2}'
    assert s3.get_object(Bucket="models", Key="resnet/1/config.json")["Body"].read() == b'{"v": 1}'
    out = tmp_path / "after"
    srv.aws("s3", "sync", "s3://models/resnet/2", out)
    assert tree_bytes(out) == v2

    srv.stop()
    assert srv.cli("versions", "--json", "resnet").stdout == versions_before


def test_registry_bucket_name_option(server_factory, tmp_path):
    srv = server_factory("--registry-bucket", "registry")
    srv.stop()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"weights" * 1000)
    srv.cli("put", "--name", "tiny", tmp_path / "m")
    srv.start()
    s3 = srv.client()
    assert s3.get_object(Bucket="registry", Key="tiny/latest/w.bin")["Body"].read() == b"weights" * 1000
    # `models` is then an ordinary bucket name.
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="k", Body=b"plain")
    assert s3.get_object(Bucket="models", Key="k")["Body"].read() == b"plain"


def test_same_bytes_through_s3_copy_and_cli_are_stored_once(server_factory, tmp_path):
    data = os.urandom(4 * MiB)
    f = tmp_path / "weights.bin"
    f.write_bytes(data)

    srv = server_factory()
    s3 = srv.client()
    s3.create_bucket(Bucket="dedup")
    s3.put_object(Bucket="dedup", Key="weights.bin", Body=data)
    srv.stop()
    after_put = stats(srv)
    assert after_put["unique_bytes"] >= len(data)

    # A copy through S3 stores no new chunk.
    srv.start()
    s3 = srv.client()
    s3.copy_object(Bucket="dedup", Key="copy.bin", CopySource={"Bucket": "dedup", "Key": "weights.bin"})
    assert s3.get_object(Bucket="dedup", Key="copy.bin")["Body"].read() == data
    srv.stop()
    after_copy = stats(srv)
    assert after_copy["unique_bytes"] == after_put["unique_bytes"], (after_put, after_copy)
    assert after_copy["chunks"] == after_put["chunks"], (after_put, after_copy)

    # The same file stored as a model version: no new chunk either.
    srv.cli("put", "--name", "dedup-model", f)
    after_cli = stats(srv)
    assert after_cli["unique_bytes"] == after_put["unique_bytes"], (after_put, after_cli)
    assert after_cli["chunks"] == after_put["chunks"], (after_put, after_cli)
    assert after_cli["versions"] == after_put["versions"] + 1

    # And it reads back through the registry bucket.
    srv.start()
    got = srv.client().get_object(Bucket="models", Key="dedup-model/1/weights.bin")["Body"].read()
    assert got == data
