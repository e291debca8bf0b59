"""Server options and limits: stalled requests are dropped after
--idle-timeout, objects over --max-object-size are refused with
EntityTooLarge, the server will not start without keys unless
--anonymous, and SIGTERM lets a request in flight finish."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from urllib.parse import urlparse

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import MODELVAULT_BIN

pytestmark = pytest.mark.modelvault_only

MiB = 1 << 20


def signed_put_head(server, bucket, key, length) -> bytes:
    """The request line and headers of a PUT signed with SigV4 and an
    unsigned payload (so the body can be sent, or not, separately)."""
    url = f"{server.endpoint}/{bucket}/{key}"
    req = AWSRequest(method="PUT", url=url, headers={
        "Content-Length": str(length),
        "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD",
        "Content-Type": "application/octet-stream",
    })
    # Without this botocore signs the SHA-256 of the (empty) body it holds.
    req.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(req)
    assert req.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    host = urlparse(server.endpoint).netloc
    # Connection: close, so the socket closes after the answer.
    lines = [f"PUT /{bucket}/{key} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(server) -> socket.socket:
    u = urlparse(server.endpoint)
    return socket.create_connection((u.hostname, u.port), timeout=10)


def wait_closed(sock: socket.socket, bound: float = 30.0) -> bytes:
    """Reads until the server closes the connection (whatever it sends
    first, e.g. a 408 or 400 answer); fails if it is still open after
    `bound` seconds."""
    sock.settimeout(1.0)
    deadline = time.monotonic() + bound
    got = b""
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data
    pytest.fail(f"connection still open {bound} s into a stall; the server sent {got[:300]!r}")


def test_stalled_requests_are_dropped(server_factory):
    srv = server_factory("--idle-timeout", "2")
    s3 = srv.client()
    s3.create_bucket(Bucket="idle")

    # Half a request header, then nothing.
    half = connect(srv)
    half.sendall(b"PUT /idle/half HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len")
    # A signed PUT announcing 1000 bytes that sends 10.
    short = connect(srv)
    short.sendall(signed_put_head(srv, "idle", "short", 1000) + b"0123456789")

    # Meanwhile other clients are served.
    s3.put_object(Bucket="idle", Key="other", Body=b"served while others stall")
    assert s3.get_object(Bucket="idle", Key="other")["Body"].read() == b"served while others stall"

    wait_closed(half)
    answer = wait_closed(short)
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    half.close()
    short.close()

    # The server still serves, and neither stalled object exists.
    s3.put_object(Bucket="idle", Key="after", Body=b"after the stalls")
    assert s3.get_object(Bucket="idle", Key="after")["Body"].read() == b"after the stalls"
    for key in ("half", "short"):
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="idle", Key=key)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="idle")["Contents"]]
    assert keys == ["after", "other"]


def test_max_object_size(server_factory):
    limit = 6 * MiB
    srv = server_factory("--max-object-size", str(limit))
    s3 = srv.client()
    s3.create_bucket(Bucket="limit")

    # Exactly the limit is accepted.
    data = os.urandom(limit)
    s3.put_object(Bucket="limit", Key="at-limit", Body=data)
    assert s3.get_object(Bucket="limit", Key="at-limit")["Body"].read() == data

    # One byte more is refused, and nothing is stored.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="limit", Key="over", Body=data + b"!")
    assert e.value.response["Error"]["Code"] == "EntityTooLarge"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="limit", Key="over")

    # A multipart upload growing past the limit is refused (at the part or at
    # completion), and nothing is stored.
    uid = s3.create_multipart_upload(Bucket="limit", Key="mp-over")["UploadId"]
    try:
        e1 = s3.upload_part(Bucket="limit", Key="mp-over", UploadId=uid, PartNumber=1,
                            Body=os.urandom(5 * MiB))["ETag"]
        e2 = s3.upload_part(Bucket="limit", Key="mp-over", UploadId=uid, PartNumber=2,
                            Body=os.urandom(2 * MiB))["ETag"]
        s3.complete_multipart_upload(
            Bucket="limit", Key="mp-over", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )
    except ClientError as err:
        assert err.response["Error"]["Code"] == "EntityTooLarge", err.response
    else:
        pytest.fail("a multipart upload of 7 MiB was accepted with --max-object-size 6 MiB")
    with pytest.raises(ClientError):
        s3.head_object(Bucket="limit", Key="mp-over")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="limit")["Contents"]] == ["at-limit"]


def test_no_keys_refuses_to_start_unless_anonymous(server_factory, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELVAULT_S3_")}
    r = subprocess.run([str(MODELVAULT_BIN), "--repo", str(tmp_path / "repo"), "serve", "--listen", "127.0.0.1:0"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert r.stdout == ""
    assert "MODELVAULT_S3_ACCESS_KEY" in r.stderr or "--anonymous" in r.stderr, r.stderr

    # With --anonymous, unsigned requests work.
    srv = server_factory(anonymous=True)
    import boto3
    from botocore import UNSIGNED

    anon = boto3.client("s3", endpoint_url=srv.endpoint, region_name="us-east-1",
                        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}))
    anon.create_bucket(Bucket="open")
    anon.put_object(Bucket="open", Key="k", Body=b"anonymous")
    assert anon.get_object(Bucket="open", Key="k")["Body"].read() == b"anonymous"


def test_sigterm_lets_a_request_in_flight_finish(server_factory):
    srv = server_factory()
    s3 = srv.client()
    s3.create_bucket(Bucket="graceful")
    data = os.urandom(2 * MiB)

    sock = connect(srv)
    sock.sendall(signed_put_head(srv, "graceful", "inflight", len(data)) + data[:MiB])
    time.sleep(0.5)  # the server is reading the body
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    sock.sendall(data[MiB:])
    answer = wait_closed(sock, bound=60)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]

    # It exits 0 on its own, and the object was stored.
    rc = srv.proc.wait(timeout=30)
    assert rc == 0, srv.stderr_tail()
    srv.start()
    assert srv.client().get_object(Bucket="graceful", Key="inflight")["Body"].read() == data


def test_sigterm_right_after_the_ready_line(server_factory):
    """SIGTERM sent as soon as the ready line is read stops the server
    gracefully (exit 0, checked by stop()), start after start on the same
    repository: the signal handlers are in place before the line."""
    srv = server_factory(start=False)
    for i in range(50):
        srv.start()
        srv.stop()
    srv.start()
    s3 = srv.client()
    s3.create_bucket(Bucket="restarted")
    s3.put_object(Bucket="restarted", Key="k", Body=b"after 50 restarts")
    assert s3.get_object(Bucket="restarted", Key="k")["Body"].read() == b"after 50 restarts"
