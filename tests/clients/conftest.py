"""Fixtures for driving `modelvault serve` with real S3 clients.

Every server a test starts listens on 127.0.0.1 on a free port, over a fresh
temporary repository, with random keys, and is stopped at teardown: SIGTERM,
then the exit code must be 0 within 30 s (else it is killed and the test
fails).

Which server runs is chosen by the environment:

- unset or ``MODELVAULT_TEST_SERVER=modelvault``: the binary at
  ``MODELVAULT_BIN`` or ``target/release/modelvault`` of this checkout;
- ``MODELVAULT_TEST_SERVER=moto``: moto's S3 server, an independent
  implementation used to check the harness and the client-side expectations
  themselves. Tests of modelvault-only behaviour (authentication, the
  registry bucket, limits, crash recovery, memory) are marked
  ``modelvault_only`` and skipped under moto.
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SERVER_KIND = os.environ.get("MODELVAULT_TEST_SERVER", "modelvault")
MODELVAULT_BIN = Path(os.environ.get("MODELVAULT_BIN", ROOT / "target" / "release" / "modelvault"))
READY_PREFIX = "modelvault: serving S3 on "
# Generous bounds: the machine is shared and noisy, these only stop hangs.
READY_TIMEOUT = 60
STOP_TIMEOUT = 30
REGION = "us-east-1"

IS_MOTO = SERVER_KIND == "moto"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long test (large files); select with -m slow")
    config.addinivalue_line(
        "markers", "modelvault_only: checks behaviour only modelvault's server has (skipped under moto)"
    )


def pytest_collection_modifyitems(config, items):
    if not IS_MOTO:
        return
    skip = pytest.mark.skip(reason="modelvault-only behaviour; MODELVAULT_TEST_SERVER=moto")
    for item in items:
        if "modelvault_only" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    """A port nothing listens on right now (only for moto, which cannot
    report the port it bound; modelvault binds port 0 itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def file_md5(path: Path) -> str:
    """MD5 hex of a file, read in 1 MiB pieces."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every regular file under root, by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class Server:
    """One running server process over one repository directory."""

    def __init__(self, repo: Path, workdir: Path, extra_args=(), env_extra=None, anonymous=False):
        self.repo = repo
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.anonymous = anonymous
        self.access_key = "AK" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.env_extra = dict(env_extra or {})
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self.starts = 0
        self._stdout_lines: queue.Queue = queue.Queue()

    # -- process control -------------------------------------------------

    def start(self) -> "Server":
        """Starts the server and waits for it to be ready (the ready line for
        modelvault, an HTTP answer for moto)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        if self.proc is not None:  # it exited on its own (a test sent SIGTERM itself)
            self.stderr_file.close()
        self.stderr_path = self.workdir / f"server-stderr-{self.starts}.log"
        env = dict(os.environ)
        env.update(self.env_extra)
        env.setdefault("RUST_BACKTRACE", "1")
        if IS_MOTO:
            port = free_port()
            cmd = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        else:
            assert MODELVAULT_BIN.exists(), f"{MODELVAULT_BIN} missing: cargo build --release --bin modelvault"
            if not self.anonymous:
                env["MODELVAULT_S3_ACCESS_KEY"] = self.access_key
                env["MODELVAULT_S3_SECRET_KEY"] = self.secret_key
            cmd = [str(MODELVAULT_BIN), "--repo", str(self.repo), "serve", "--listen", "127.0.0.1:0"]
            if self.anonymous:
                cmd.append("--anonymous")
            cmd += self.extra_args
        self.stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.stderr_file, env=env, start_new_session=True
        )
        # A thread drains stdout so the server never blocks on a full pipe.
        self._stdout_lines = queue.Queue()
        threading.Thread(target=self._drain, args=(self.proc, self._stdout_lines), daemon=True).start()
        if IS_MOTO:
            self.endpoint = f"http://127.0.0.1:{port}"
            self._wait_http()
        else:
            self.endpoint = self._wait_ready_line()
        return self

    @staticmethod
    def _drain(proc, lines):
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    def _wait_ready_line(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"no ready line within {READY_TIMEOUT} s; stderr:\n{self.stderr_tail()}")
            try:
                line = self._stdout_lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait()
                pytest.fail(f"server exited ({rc}) before its ready line; stderr:\n{self.stderr_tail()}")
            assert line.startswith(READY_PREFIX), f"unexpected first stdout line {line!r}"
            endpoint = line[len(READY_PREFIX):].strip()
            assert endpoint.startswith("http://127.0.0.1:"), line
            return endpoint

    def _wait_http(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"moto exited ({self.proc.returncode}); stderr:\n{self.stderr_tail()}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # it answers: ready
            except OSError:
                time.sleep(0.2)
        self.kill()
        pytest.fail("moto did not answer within the timeout")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Graceful stop: SIGTERM, exit code 0 within STOP_TIMEOUT (moto's
        exit code is not checked: it is only the reference server)."""
        if not self.running:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server still running {STOP_TIMEOUT} s after SIGTERM; stderr:\n{self.stderr_tail()}")
        finally:
            self.stderr_file.close()
        if not IS_MOTO:
            assert rc == 0, f"server exited {rc} after SIGTERM; stderr:\n{self.stderr_tail()}"

    def kill(self):
        """SIGKILL (the crash test, and cleanup after a failure)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.stderr_file.close()

    def restart(self) -> "Server":
        """Stops (gracefully, if still running) and starts again on the same repo."""
        self.stop()
        return self.start()

    def stderr_tail(self, n=4000) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return "<no stderr>"

    # -- /proc figures -----------------------------------------------------

    def vm_hwm_bytes(self) -> int:
        """Peak resident set size of the server process so far."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")

    def rchar(self) -> int:
        """Bytes the server process has read through read-like calls."""
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar in /proc io")

    # -- clients -----------------------------------------------------------

    def client(self, secret_key: str | None = None, **config):
        """A boto3 S3 client with path-style addressing and no retries (so a
        refusal is seen as it is, not retried into something else)."""
        cfg = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            **config,
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
            config=cfg,
        )

    def aws_env(self) -> dict:
        """Environment for the aws CLI: keys, region and a config file that
        sets path-style addressing."""
        cfg = self.workdir / "aws-config"
        cfg.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(cfg),
            AWS_SHARED_CREDENTIALS_FILE=str(self.workdir / "no-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def aws(self, *args, check=True, timeout=600) -> subprocess.CompletedProcess:
        """Runs the aws CLI of the venv against this server."""
        cmd = [str(VENV_BIN / "aws"), "--endpoint-url", self.endpoint, *map(str, args)]
        r = subprocess.run(cmd, env=self.aws_env(), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def cli(self, *args, check=True) -> subprocess.CompletedProcess:
        """Runs `modelvault --repo REPO ARGS...` (only while the server is
        stopped: the server holds the store's lock)."""
        assert not self.running, "the CLI needs the server stopped"
        cmd = [str(MODELVAULT_BIN), "--repo", str(self.repo), *map(str, args)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r


class ServerFactory:
    """Starts servers over fresh repositories and stops every one of them at
    teardown, failing the test if one does not stop cleanly."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.servers: list[Server] = []

    def __call__(self, *extra_args, env=None, anonymous=False, start=True) -> Server:
        n = len(self.servers)
        workdir = self.tmp / f"server{n}"
        workdir.mkdir(parents=True)
        s = Server(workdir / "repo", workdir, extra_args, env, anonymous)
        self.servers.append(s)
        return s.start() if start else s

    def close(self):
        errors = []
        for s in self.servers:
            try:
                s.stop()
            except BaseException as e:  # keep stopping the others
                s.kill()
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def server_factory(tmp_path):
    """Start servers with options: ``server_factory("--idle-timeout", "2")``."""
    f = ServerFactory(tmp_path)
    yield f
    f.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server per test file over a fresh repository; tests use their own
    buckets (the ``bucket`` fixture) so they do not see each other's objects."""
    f = ServerFactory(tmp_path_factory.mktemp("srv"))
    s = f()
    yield s
    f.close()


@pytest.fixture
def s3(server):
    """A boto3 client for the module's server."""
    return server.client()


@pytest.fixture
def bucket(s3, request):
    """A fresh, empty bucket named after the test."""
    name = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + "-" + secrets.token_hex(3)
    name = "".join(c for c in name if c.isalnum() or c == "-")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def rclone_bin():
    path = shutil.which("rclone")
    if path is None:
        pytest.fail("rclone is not installed: run scripts/clients-setup.sh")
    return path
