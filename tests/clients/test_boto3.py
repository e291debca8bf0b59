"""The S3 API through boto3: buckets, objects, ranges, conditions, listing,
multipart uploads, checksums, presigned URLs, authentication and odd keys.
Every test checks the bytes that come back."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import botocore
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import IS_MOTO

MiB = 1 << 20


def error_of(excinfo) -> tuple[str, int]:
    """The S3 error code and HTTP status of a ClientError."""
    r = excinfo.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def quoted_md5(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def get_bytes(s3, bucket, key, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def keys_of(s3, bucket, prefix="") -> list[str]:
    """Every key in a bucket (all pages)."""
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


# -- buckets -----------------------------------------------------------------


def test_bucket_create_list_head_delete(s3, bucket):
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names
    s3.head_bucket(Bucket=bucket)

    # A bucket with an object in it cannot be deleted, and stays as it was.
    s3.put_object(Bucket=bucket, Key="k", Body=b"still here")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert error_of(e) == ("BucketNotEmpty", 409)
    assert get_bytes(s3, bucket, "k") == b"still here"

    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=bucket)
    assert error_of(e)[1] == 404
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_existing_bucket_keeps_it(s3, bucket):
    """Creating a bucket one already owns: BucketAlreadyOwnedByYou (us-east-1
    on AWS answers 200 instead); either way its objects stay."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"kept")
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"), e.response
    assert get_bytes(s3, bucket, "k") == b"kept"


# -- objects -----------------------------------------------------------------


def test_put_get_keeps_bytes_metadata_and_content_type(s3, bucket):
    data = os.urandom(100_000)
    put = s3.put_object(
        Bucket=bucket,
        Key="weights/model.safetensors",
        Body=data,
        ContentType="application/x-safetensors",
        Metadata={"framework": "torch", "step": "42"},
    )
    # Single-part ETag: the MD5 of the bytes.
    assert put["ETag"] == quoted_md5(data)
    got = s3.get_object(Bucket=bucket, Key="weights/model.safetensors")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got["ContentType"] == "application/x-safetensors"
    assert got["Metadata"] == {"framework": "torch", "step": "42"}
    assert got["ETag"] == quoted_md5(data)


def test_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ETag"] == quoted_md5(b"")


def test_overwrite_replaces_bytes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert get_bytes(s3, bucket, "k") == b"second"


def test_put_if_none_match_lets_exactly_one_of_racing_puts_win(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert error_of(e) == ("PreconditionFailed", 412)
    assert get_bytes(s3, bucket, "once") == b"first"

    # Eight puts of a free key at once, with bodies large enough that they
    # are all past the server's early check before any of them commits: the
    # commit decides, so exactly one wins and the object is its body.
    bodies = [bytes([i]) * (4 * MiB) for i in range(8)]

    def put(body):
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=body, IfNoneMatch="*")
            return body
        except ClientError as e:
            got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
            assert got == ("PreconditionFailed", 412), e
            return None

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(put, bodies))
    winners = [b for b in results if b is not None]
    assert len(winners) == 1, f"{len(winners)} conditional puts of one key succeeded"
    assert get_bytes(s3, bucket, "race") == winners[0]


def test_range_get(s3, bucket):
    data = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="r", Body=data)

    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == "bytes 10-19/1000"
    assert got["Body"].read() == data[10:20]

    # Suffix range: the last 100 bytes.
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=-100")
    assert got["Body"].read() == data[-100:]
    assert got["ContentRange"] == "bytes 900-999/1000"

    # Open-ended: from 900 to the end.
    assert get_bytes(s3, bucket, "r", Range="bytes=900-") == data[900:]
    # An end past the object's end is cut at the end.
    assert get_bytes(s3, bucket, "r", Range="bytes=990-5000") == data[990:]

    # A start past the end cannot be satisfied.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=1000-1010")
    assert error_of(e) == ("InvalidRange", 416)


def test_conditional_get(s3, bucket):
    data = b"conditional " * 100
    etag = s3.put_object(Bucket=bucket, Key="c", Body=data)["ETag"]
    head = s3.head_object(Bucket=bucket, Key="c")
    modified = head["LastModified"]

    # If-None-Match with the current ETag: not modified.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert error_of(e)[1] == 304
    # ... with another ETag: the object.
    assert get_bytes(s3, bucket, "c", IfNoneMatch='"0123456789abcdef0123456789abcdef"') == data

    # If-Match with another ETag: precondition failed.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(e) == ("PreconditionFailed", 412)
    assert get_bytes(s3, bucket, "c", IfMatch=etag) == data

    # If-Modified-Since: after the last change -> 304, before it -> the object.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=modified + timedelta(hours=1))
    assert error_of(e)[1] == 304
    assert get_bytes(s3, bucket, "c", IfModifiedSince=modified - timedelta(days=1)) == data

    # If-Unmodified-Since before the last change: precondition failed.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=modified - timedelta(days=1))
    assert error_of(e) == ("PreconditionFailed", 412)


def test_head_and_delete(s3, bucket):
    data = os.urandom(4321)
    s3.put_object(Bucket=bucket, Key="h", Body=data, Metadata={"a": "b"})
    head = s3.head_object(Bucket=bucket, Key="h")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == quoted_md5(data)
    assert head["Metadata"] == {"a": "b"}
    assert isinstance(head["LastModified"], datetime)
    assert abs(head["LastModified"] - datetime.now(timezone.utc)) < timedelta(hours=1)

    s3.delete_object(Bucket=bucket, Key="h")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="h")
    assert error_of(e)[1] == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="h")
    assert error_of(e) == ("NoSuchKey", 404)
    # Deleting a key that is not there succeeds, as on S3.
    assert s3.delete_object(Bucket=bucket, Key="h")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects(s3, bucket):
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"d/{i}", Body=str(i).encode())
    doomed = [f"d/{i}" for i in range(0, 10, 2)] + ["d/missing"]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in doomed]})
    assert not out.get("Errors"), out.get("Errors")
    # S3 reports a key that was not there as deleted too.
    assert sorted(d["Key"] for d in out["Deleted"]) == sorted(doomed)
    assert keys_of(s3, bucket) == [f"d/{i}" for i in range(1, 10, 2)]
    for i in range(1, 10, 2):
        assert get_bytes(s3, bucket, f"d/{i}") == str(i).encode()


def test_copy_object(s3, bucket, server):
    data = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="application/octet-stream",
                  Metadata={"origin": "upload"})
    out = s3.copy_object(Bucket=bucket, Key="dst/copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert out["CopyObjectResult"]["ETag"] == quoted_md5(data)
    got = s3.get_object(Bucket=bucket, Key="dst/copy")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"origin": "upload"}  # MetadataDirective COPY (the default)

    # Into another bucket, replacing the metadata.
    other = bucket[:50] + "-2"
    s3.create_bucket(Bucket=other)
    s3.copy_object(Bucket=other, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"origin": "copy"})
    got = s3.get_object(Bucket=other, Key="c")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"origin": "copy"}
    # The source is unchanged.
    assert get_bytes(s3, bucket, "src") == data

    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "no-such-key"})
    assert error_of(e) == ("NoSuchKey", 404)


def test_managed_copy_uses_upload_part_copy(s3, bucket):
    """boto3's managed copy of an object over the multipart threshold copies
    it server-side in ranges (UploadPartCopy with CopySourceRange)."""
    from boto3.s3.transfer import TransferConfig

    data = os.urandom(12 * MiB + 7)
    s3.put_object(Bucket=bucket, Key="big-src", Body=data)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=3)
    s3.copy({"Bucket": bucket, "Key": "big-src"}, bucket, "big-dst", Config=cfg)
    got = s3.get_object(Bucket=bucket, Key="big-dst")
    assert got["ETag"].endswith('-3"'), got["ETag"]
    assert got["Body"].read() == data


def test_standard_headers_are_kept(s3, bucket):
    """Content-Disposition, Content-Encoding, Cache-Control and
    Content-Language are stored with the object and returned, as S3 does."""
    s3.put_object(Bucket=bucket, Key="hdr", Body=b"headers", ContentDisposition='attachment; filename="w.bin"',
                  ContentEncoding="identity", CacheControl="max-age=60", ContentLanguage="en")
    got = s3.get_object(Bucket=bucket, Key="hdr")
    assert got["Body"].read() == b"headers"
    assert got.get("ContentDisposition") == 'attachment; filename="w.bin"'
    assert got.get("ContentEncoding") == "identity"
    assert got.get("CacheControl") == "max-age=60"
    assert got.get("ContentLanguage") == "en"


def test_bucket_location(s3, bucket):
    """Clients ask a bucket's region before using it (the aws CLI, s3fs)."""
    loc = s3.get_bucket_location(Bucket=bucket)
    assert loc.get("LocationConstraint") in (None, "", "us-east-1")


# -- listing -----------------------------------------------------------------


def test_list_objects_v2_prefix_delimiter_pagination(s3, bucket):
    keys = [f"dir1/a{i:02}" for i in range(10)] + [f"dir2/sub/b{i:02}" for i in range(10)] + [
        f"top{i:02}" for i in range(10)
    ]
    for k in reversed(keys):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())

    out = s3.list_objects_v2(Bucket=bucket, Prefix="dir1/")
    assert [o["Key"] for o in out["Contents"]] == keys[:10]
    assert out["KeyCount"] == 10
    assert all(o["Size"] == len(o["Key"]) for o in out["Contents"])
    assert all(o["ETag"] == quoted_md5(o["Key"].encode()) for o in out["Contents"])

    out = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["dir1/", "dir2/"]
    assert [o["Key"] for o in out["Contents"]] == keys[20:]

    out = s3.list_objects_v2(Bucket=bucket, Prefix="dir2/", Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["dir2/sub/"]
    assert "Contents" not in out

    # MaxKeys 7 with continuation tokens: every key once, in order.
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        out = s3.list_objects_v2(Bucket=bucket, MaxKeys=7, **kw)
        pages += 1
        page_keys = [o["Key"] for o in out.get("Contents", [])]
        assert len(page_keys) <= 7
        seen += page_keys
        if not out["IsTruncated"]:
            break
        token = out["NextContinuationToken"]
        assert pages < 20, "pagination does not end"
    assert seen == sorted(keys)
    assert pages == 5

    # StartAfter skips to after a key.
    out = s3.list_objects_v2(Bucket=bucket, StartAfter="dir2/sub/b05")
    assert [o["Key"] for o in out["Contents"]] == sorted(keys)[16:]

    # The paginator (what most programs use) agrees.
    assert keys_of(s3, bucket) == sorted(keys)


def test_list_objects_v1(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"v1/{i}", Body=b"x")
    out = s3.list_objects(Bucket=bucket, Prefix="v1/", MaxKeys=3)
    assert [o["Key"] for o in out["Contents"]] == ["v1/0", "v1/1", "v1/2"]
    assert out["IsTruncated"]
    out = s3.list_objects(Bucket=bucket, Prefix="v1/", Marker="v1/2")
    assert [o["Key"] for o in out["Contents"]] == ["v1/3", "v1/4"]


# -- multipart ---------------------------------------------------------------


def make_parts(n_full: int, last: int, seed: int) -> list[bytes]:
    """n_full parts of 5 MiB and a shorter last one, distinct bytes."""
    rng = random.Random(seed)
    return [rng.randbytes(5 * MiB) for _ in range(n_full)] + [rng.randbytes(last)]


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def test_multipart_parallel_out_of_order(s3, bucket):
    parts = make_parts(4, 123_457, seed=1)
    key = "big/model.bin"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-model",
                                    Metadata={"kind": "multipart"})
    uid = up["UploadId"]

    def send(i):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i + 1, Body=parts[i])
        assert r["ETag"] == quoted_md5(parts[i])
        return i + 1, r["ETag"]

    # Last part first, the others from 4 threads at once.
    order = [4, 2, 0, 3, 1]
    with ThreadPoolExecutor(4) as pool:
        etags = dict(pool.map(send, order))

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3, 4, 5]
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    assert [p["ETag"] for p in listed["Parts"]] == [etags[n] for n in range(1, 6)]

    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, uid)]

    # Not visible before completion.
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert error_of(e)[1] == 404

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in range(1, 6)]},
    )
    assert done["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentLength"] == sum(map(len, parts))
    assert got["ETag"] == multipart_etag(parts)
    assert got["ContentType"] == "application/x-model"
    assert got["Metadata"] == {"kind": "multipart"}
    assert got["Body"].read() == b"".join(parts)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # A range across a part boundary.
    start = 5 * MiB - 10
    whole = b"".join(parts)
    assert get_bytes(s3, bucket, key, Range=f"bytes={start}-{start + 19}") == whole[start:start + 20]


def test_multipart_reuploaded_part_and_subset(s3, bucket):
    """A part uploaded twice keeps the last bytes; completing with a subset
    of the parts stores only those."""
    parts = make_parts(2, 1000, seed=2)
    key = "subset"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=os.urandom(5 * MiB))
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=parts[0])["ETag"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=parts[1])
    e3 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=3, Body=parts[2])["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e3}]},
    )
    assert get_bytes(s3, bucket, key) == parts[0] + parts[2]


def test_multipart_bad_completions_are_refused(s3, bucket):
    parts = make_parts(2, 1000, seed=3)
    key = "bad-complete"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i + 1, Body=p)["ETag"]
             for i, p in enumerate(parts)]
    # A wrong ETag for a part.
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etags[0]},
                                       {"PartNumber": 2, "ETag": '"00000000000000000000000000000000"'}]},
        )
    assert error_of(e)[0] == "InvalidPart"
    # Parts out of order (moto does not check this).
    if not IS_MOTO:
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etags[1]},
                                           {"PartNumber": 1, "ETag": etags[0]},
                                           {"PartNumber": 3, "ETag": etags[2]}]},
            )
        assert error_of(e)[0] == "InvalidPartOrder"
    # Nothing was stored; the upload is still there and completes.
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=key)
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(etags)]},
    )
    assert get_bytes(s3, bucket, key) == b"".join(parts)


def test_multipart_small_part_is_refused(s3, bucket):
    """A part other than the last below 5 MiB: EntityTooSmall at completion."""
    key = "too-small"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=b"x" * 1000)["ETag"]
             for n in (1, 2)]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": t} for n, t in zip((1, 2), etags)]},
        )
    assert error_of(e)[0] == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)


def test_multipart_abort(s3, bucket):
    key = "aborted"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=os.urandom(MiB))
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert error_of(e) == ("NoSuchUpload", 404)
    if not IS_MOTO:  # moto answers 500 here
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=b"late")
        assert error_of(e) == ("NoSuchUpload", 404)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert keys_of(s3, bucket) == []


def test_upload_file_goes_multipart(s3, bucket, tmp_path):
    """boto3's managed transfer (what most programs call): a 12 MiB file in
    5 MiB parts, uploaded and downloaded with threads."""
    from boto3.s3.transfer import TransferConfig

    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(12 * MiB))
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    s3.upload_file(str(src), bucket, "managed.bin", Config=cfg)
    assert s3.head_object(Bucket=bucket, Key="managed.bin")["ETag"].endswith('-3"')
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "managed.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == src.read_bytes()


# -- checksums ---------------------------------------------------------------


def test_default_crc32_checksum_upload(server, bucket):
    """boto3's default: a CRC32 computed on upload (in a header over http,
    in an aws-chunked trailer when streaming); the server must check and
    keep it, and return it on GET with ChecksumMode, which botocore then
    verifies against the bytes."""
    s3 = server.client(request_checksum_calculation="when_supported")
    data = os.urandom(2 * MiB + 17)
    put = s3.put_object(Bucket=bucket, Key="crc", Body=data)
    crc = put.get("ChecksumCRC32")
    assert crc, f"no CRC32 in the PutObject answer: {put}"
    got = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got.get("ChecksumCRC32") == crc


def test_aws_chunked_trailing_checksum_upload(server, bucket, monkeypatch):
    """The body boto3 >= 1.36 sends for uploads over https: aws-chunked,
    unsigned payload, the CRC32 in a trailer after the last chunk. botocore
    only picks it for https URLs, so the test makes its scheme check see
    https; the request itself still goes to the http endpoint."""
    import botocore.httpchecksum as hc
    from urllib.parse import urlparse

    monkeypatch.setattr(hc, "urlparse", lambda url: urlparse(url.replace("http://", "https://", 1)))
    s3 = server.client(request_checksum_calculation="when_supported")
    sent = {}

    def capture(request, **_):
        sent.update(request.headers)

    s3.meta.events.register("before-send.s3.PutObject", capture)
    text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    data = os.urandom(3 * MiB + 5)
    put = s3.put_object(Bucket=bucket, Key="chunked", Body=data)
    # The request really was aws-chunked with a trailing checksum.
    assert text(sent.get("Content-Encoding")) == "aws-chunked", sent
    assert text(sent.get("X-Amz-Trailer")) == "x-amz-checksum-crc32", sent
    assert put.get("ChecksumCRC32"), put
    got = s3.get_object(Bucket=bucket, Key="chunked", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got.get("ChecksumCRC32") == put["ChecksumCRC32"]
    assert got["ETag"] == quoted_md5(data)


@pytest.mark.parametrize("algo", ["SHA256", "CRC64NVME", "CRC32C", "SHA1"])
def test_explicit_checksum_algorithms(server, bucket, algo):
    s3 = server.client()
    data = os.urandom(MiB + 3)
    try:
        put = s3.put_object(Bucket=bucket, Key=f"sum-{algo}", Body=data, ChecksumAlgorithm=algo)
    except botocore.exceptions.MissingDependencyException as e:
        pytest.fail(f"client lacks support for {algo} (install boto3[crt]): {e}")
    field = "Checksum" + algo
    assert put.get(field), f"no {field} in the answer: {put}"
    if algo == "SHA256":
        assert put[field] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    got = s3.get_object(Bucket=bucket, Key=f"sum-{algo}", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got.get(field) == put[field]


def test_multipart_with_sha256_checksums(server, bucket):
    s3 = server.client()
    parts = make_parts(1, 2000, seed=4)
    key = "mp-sha256"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
    done_parts = []
    for n, p in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=p,
                           ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(p).digest()).decode()
        done_parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                 MultipartUpload={"Parts": done_parts})
    assert get_bytes(s3, bucket, key) == b"".join(parts)


@pytest.mark.modelvault_only  # moto does not check this
def test_wrong_checksum_is_refused(server, bucket):
    s3 = server.client()
    data = os.urandom(10_000)
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="badsum", Body=data, ChecksumSHA256=wrong)
    code, status = error_of(e)
    assert status == 400 and code in ("BadDigest", "XAmzContentChecksumMismatch", "InvalidRequest"), (code, status)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="badsum")
    assert error_of(e)[1] == 404


@pytest.mark.modelvault_only  # moto does not check this
def test_wrong_content_md5_is_refused(s3, bucket):
    data = os.urandom(10_000)
    wrong = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="badmd5", Body=data, ContentMD5=wrong)
    assert error_of(e) == ("BadDigest", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="badmd5")
    assert error_of(e)[1] == 404
    # The right one is accepted.
    right = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="badmd5", Body=data, ContentMD5=right)
    assert get_bytes(s3, bucket, "badmd5") == data


# -- presigned URLs and authentication --------------------------------------


@pytest.mark.parametrize("version", ["default", "s3v4"])
def test_presigned_put_and_get(server, bucket, version):
    """Presigned URLs used without an SDK. botocore's default for S3 is the
    legacy query signature (SigV2), which covers the Content-Type header, so
    that PUT is sent without one (http.client); SigV4 URLs sign only the
    host, and urllib's PUT with a Content-Type goes through."""
    s3 = server.client() if version == "default" else server.client(signature_version="s3v4")
    data = os.urandom(50_000)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=600)
    if version == "default":
        u = urllib.parse.urlsplit(put_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("PUT", f"{u.path}?{u.query}", body=data)
        r = conn.getresponse()
        assert r.status == 200, r.read()
        conn.close()
    else:
        req = urllib.request.Request(put_url, data=data, method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=600)
    with urllib.request.urlopen(get_url, timeout=60) as r:
        assert r.read() == data
    assert get_bytes(s3, bucket, "pre") == data


def http_error(url, method="GET", data=None) -> tuple[int, str]:
    """Sends a raw request expected to fail; returns the status and body."""
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


@pytest.mark.modelvault_only
@pytest.mark.parametrize("version", ["default", "s3v4"])
def test_expired_presigned_url_is_refused(server, bucket, version):
    s3 = server.client() if version == "default" else server.client(signature_version="s3v4")
    s3.put_object(Bucket=bucket, Key="exp", Body=b"secret")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "exp"}, ExpiresIn=1)
    time.sleep(3)
    status, body = http_error(url)
    assert status == 403, body
    assert "secret" not in body


@pytest.mark.modelvault_only
def test_wrong_secret_is_refused(server, bucket):
    bad = server.client(secret_key="not-the-secret-" + "x" * 20)
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket=bucket, Key="intruder", Body=b"x")
    assert error_of(e) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as e:
        bad.list_objects_v2(Bucket=bucket)
    assert error_of(e) == ("SignatureDoesNotMatch", 403)
    # Nothing was written.
    assert keys_of(server.client(), bucket) == []


@pytest.mark.modelvault_only
def test_unknown_access_key_is_refused(server, bucket):
    import boto3

    other = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="AKNOTAKEY",
                         aws_secret_access_key=server.secret_key, region_name="us-east-1",
                         config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        other.list_objects_v2(Bucket=bucket)
    assert error_of(e)[1] == 403


@pytest.mark.modelvault_only
def test_anonymous_requests_are_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"private bytes")
    # Raw unsigned HTTP.
    status, body = http_error(f"{server.endpoint}/{bucket}/private")
    assert status == 403, body
    assert "private bytes" not in body
    status, body = http_error(f"{server.endpoint}/{bucket}/anon", method="PUT", data=b"x")
    assert status == 403, body
    # boto3 without signing.
    import boto3

    anon = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        anon.get_object(Bucket=bucket, Key="private")
    assert error_of(e)[1] == 403
    with pytest.raises(ClientError) as e:
        anon.list_buckets()
    assert error_of(e)[1] == 403
    assert keys_of(s3, bucket) == ["private"]


# -- keys and errors ---------------------------------------------------------

ODD_KEYS = [
    "../../etc/passwd",
    "a//b",
    "/leading-slash",
    "trailing/",
    "ünïcødé/ключ/鍵 🙂.bin",
    "spaces and +plus and %25percent and ?query=1&x#frag",
    "dots/./and/../here",
    "tab\tnewline\nkey",
]


def test_odd_keys_round_trip(server, s3, bucket):
    keys = ODD_KEYS
    if IS_MOTO:  # moto's HTTP layer resolves "." and ".." in paths, and fails on control characters
        keys = [k for k in keys if "/." not in k and not k.startswith(".") and k.isprintable()]
    for i, k in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=k, Body=f"{i}:{k}".encode())
    for i, k in enumerate(keys):
        assert get_bytes(s3, bucket, k) == f"{i}:{k}".encode(), k
    assert sorted(keys_of(s3, bucket)) == sorted(keys)
    # A key is a name, not a path: nothing was written outside the repository.
    if not server.repo.exists():
        return
    assert not (server.repo.parent / "etc").exists()
    for k in keys:
        s3.delete_object(Bucket=bucket, Key=k)
    assert keys_of(s3, bucket) == []


@pytest.mark.modelvault_only  # moto does not check this
def test_key_over_1024_bytes_is_refused(s3, bucket):
    key = "k" * 1025
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    code, status = error_of(e)
    assert 400 <= status < 500, (code, status)
    assert code in ("KeyTooLongError", "InvalidArgument", "InvalidRequest"), code
    assert keys_of(s3, bucket) == []
    # Exactly 1024 bytes (in a multibyte character's encoding) is fine.
    key = "é" * 512
    s3.put_object(Bucket=bucket, Key=key, Body=b"y")
    assert get_bytes(s3, bucket, key) == b"y"


def test_key_with_nul_is_handled_cleanly(s3, bucket):
    """A NUL in a key: either refused with a 4xx S3 error, or stored and read
    back exactly; never a server error, and the server keeps serving."""
    key = "nul\x00key"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"nul")
    except ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert 400 <= status < 500, e.response
        assert keys_of(s3, bucket) == []
    else:
        assert get_bytes(s3, bucket, key) == b"nul"
        assert keys_of(s3, bucket) == [key]
    s3.put_object(Bucket=bucket, Key="after", Body=b"fine")
    assert get_bytes(s3, bucket, "after") == b"fine"


def test_missing_bucket_and_key_codes(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_of(e) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-here", Key="nope")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket-here")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="no-such-bucket-here")
    assert error_of(e) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket="no-such-bucket-here", Key="k")
    assert error_of(e) == ("NoSuchBucket", 404)
    if not IS_MOTO:  # moto accepts any bucket name
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket="Bad_Name")
        assert error_of(e)[0] == "InvalidBucketName"
