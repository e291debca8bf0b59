"""SIGKILL in the middle of 16 concurrent uploaders, then a restart on the
same repository: every upload that was acknowledged reads back
byte-identical, nothing partial is listed, and multipart uploads left
unfinished are listed and can be aborted."""

from __future__ import annotations

import hashlib
import random
import threading
import time

import pytest
from botocore.exceptions import ClientError

pytestmark = [pytest.mark.modelvault_only, pytest.mark.slow]

MiB = 1 << 20
THREADS = 16
BUCKET = "crash"


def payload(seed: int, size: int) -> bytes:
    """The bytes of one upload, regenerated from its seed when checking."""
    return random.Random(seed).randbytes(size)


class Ledger:
    """What the uploaders attempted and what the server acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted: dict[str, tuple[int, int]] = {}  # key -> (seed, size)
        self.acked: set[str] = set()
        self.open_uploads: dict[str, str] = {}  # upload id -> key, created and not completed
        self.completed_multipart = 0

    def attempt(self, key, seed, size):
        with self.lock:
            self.attempted[key] = (seed, size)

    def ack(self, key):
        with self.lock:
            self.acked.add(key)


def uploader(server, tid: int, ledger: Ledger, stop: threading.Event):
    """Uploads distinct objects until stopped or the server goes away: small
    ones, ~20 MiB single PUTs, multipart uploads (every third one left
    unfinished on purpose)."""
    s3 = server.client()
    rng = random.Random(tid)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            seed = tid * 1_000_000 + i
            kind = rng.random()
            key = f"t{tid:02}/obj{i:04}"
            if kind < 0.55:
                size = rng.randint(0, 300_000)
                ledger.attempt(key, seed, size)
                s3.put_object(Bucket=BUCKET, Key=key, Body=payload(seed, size))
                ledger.ack(key)
            elif kind < 0.8:
                size = 20 * MiB + rng.randint(0, 1000)
                ledger.attempt(key, seed, size)
                s3.put_object(Bucket=BUCKET, Key=key, Body=payload(seed, size))
                ledger.ack(key)
            else:
                key += ".mp"
                size = 10 * MiB + rng.randint(1, 100_000)
                data = payload(seed, size)
                ledger.attempt(key, seed, size)
                uid = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
                with ledger.lock:
                    ledger.open_uploads[uid] = key
                parts = [data[:5 * MiB], data[5 * MiB:10 * MiB], data[10 * MiB:]]
                etags = [s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n + 1,
                                        Body=p)["ETag"] for n, p in enumerate(parts)]
                if i % 3 == 0:
                    continue  # left unfinished on purpose
                s3.complete_multipart_upload(
                    Bucket=BUCKET, Key=key, UploadId=uid,
                    MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": t} for n, t in enumerate(etags)]},
                )
                with ledger.lock:
                    del ledger.open_uploads[uid]
                    ledger.completed_multipart += 1
                ledger.ack(key)
    except Exception:  # the server was killed under this request: stop
        if not stop.is_set():
            raise


def test_sigkill_during_uploads_loses_nothing_acknowledged(server_factory):
    srv = server_factory()
    srv.client().create_bucket(Bucket=BUCKET)

    ledger, stop = Ledger(), threading.Event()
    errors = []

    def run(tid):
        try:
            uploader(srv, tid, ledger, stop)
        except Exception as e:  # an error before the kill is a server failure
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(THREADS)]
    for t in threads:
        t.start()
    # Let a good number of uploads finish (bounded wait), then kill.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not errors:
        with ledger.lock:
            if len(ledger.acked) >= 48 and ledger.completed_multipart >= 2 and ledger.open_uploads:
                break
        time.sleep(0.2)
    assert not errors, f"uploads failed before the kill: {errors[:3]}"
    stop.set()
    srv.kill()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "an uploader hangs after the server was killed"
    assert ledger.acked, "nothing was acknowledged before the kill"
    print(f"killed after {len(ledger.acked)} acknowledged uploads "
          f"({ledger.completed_multipart} multipart), {len(ledger.open_uploads)} unfinished multipart, "
          f"{len(ledger.attempted) - len(ledger.acked)} unanswered")

    srv.start()
    s3 = srv.client()

    # Every acknowledged object is there, byte-identical.
    for key in sorted(ledger.acked):
        seed, size = ledger.attempted[key]
        got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert len(got) == size and got == payload(seed, size), f"{key}: acknowledged but lost or changed"

    # Nothing else is listed but uploads that were in flight, and those are
    # whole (the server may have committed one before its answer was sent).
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        listed += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    for key, size in listed:
        assert key in ledger.attempted, f"{key} listed but never uploaded"
        if key not in ledger.acked:
            seed, want = ledger.attempted[key]
            assert size == want, f"{key}: a partial object of {size} bytes (want {want})"
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            assert hashlib.md5(got).digest() == hashlib.md5(payload(seed, want)).digest(), key
    assert {k for k, _ in listed} >= ledger.acked

    # Unfinished multipart uploads: listed (unless their completion got
    # through just before the kill) and abortable.
    uploads = []
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=BUCKET):
        uploads += [(u["UploadId"], u["Key"]) for u in page.get("Uploads", [])]
    listed_keys = {k for k, _ in listed}
    for uid, key in ledger.open_uploads.items():
        assert (uid, key) in uploads or key in listed_keys, f"unfinished upload {uid} of {key} vanished"
    assert any((uid, key) in uploads for uid, key in ledger.open_uploads.items())
    print(f"after restart: {len(listed)} objects, {len(uploads)} multipart uploads listed")
    for uid, key in uploads:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid)
        with pytest.raises(ClientError) as e:
            s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid)
        assert e.value.response["Error"]["Code"] == "NoSuchUpload"
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    # Aborting changed no finished object.
    again = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        again += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    assert again == listed
