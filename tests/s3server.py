"""A local S3-compatible server for the tests: `moto.server` in a subprocess on 127.0.0.1.

`s3_server` (session): starts it on a free port, waits until it answers, stops it at the
end. `s3_remote`: a fresh bucket and prefix on it. `remote`: parametrized over `file://`
and `s3://`, so a scenario runs on both backends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest

from duckpond.storage.objstore import ObjectStore, StoreOptions, open_store

# moto accepts any credentials; fixed ones keep the tests' environment explicit.
ACCESS_KEY = "testing-key-id"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"
START_TIMEOUT_S = 60

_buckets = count()


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]

    def options(self) -> StoreOptions:
        return StoreOptions(
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            allow_http=True,
        )

    def create_bucket(self, name: str) -> None:
        import boto3  # moto's own dependency

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        client.create_bucket(Bucket=name)


@dataclass
class Remote:
    """A fresh remote: its URL, the store options, and what other readers need."""

    url: str
    options: StoreOptions | None
    # delta-rs storage options (empty for file://)
    storage_options: dict[str, str] = field(default_factory=dict)
    # environment for a subprocess that reaches it (AWS_* variables)
    env: dict[str, str] = field(default_factory=dict)

    def store(self) -> ObjectStore:
        return open_store(self.url, self.options)

    def table_uri(self, table: str) -> str:
        """A URI of one of the remote's Delta tables (`data`, `control`) for deltalake."""
        if self.url.startswith("file://"):
            return self.url[len("file://") :] + "/" + table
        return f"{self.url}/{table}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(proc: subprocess.Popen[bytes], endpoint: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto.server exited with {proc.returncode} on start")
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto.server did not answer on {endpoint} within {START_TIMEOUT_S}s")


def start_server(log: Path | None = None) -> S3Server:
    """Start `moto.server` on a free local port (the caller stops it)."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_until_up(proc, endpoint)
    except BaseException:
        stop_server(proc)
        raise
    return S3Server(endpoint, proc)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_server(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        stop_server(server.proc)


def s3_remote_on(server: S3Server, prefix: str = "pond") -> Remote:
    bucket = f"pond-test-{os.getpid()}-{next(_buckets)}"
    server.create_bucket(bucket)
    options = server.options()
    return Remote(
        url=f"s3://{bucket}/{prefix}",
        options=options,
        storage_options=options.delta_storage_options(),
        env=options.delta_storage_options(),
    )


@pytest.fixture
def s3_remote(s3_server: S3Server) -> Remote:
    """A fresh bucket and prefix on the local S3 server."""
    return s3_remote_on(s3_server)


@pytest.fixture(params=["file", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    """A fresh remote, once as `file://` and once as `s3://` (the local server)."""
    if request.param == "file":
        return Remote(url=f"file://{tmp_path / 'remote'}", options=None)
    server: S3Server = request.getfixturevalue("s3_server")
    return s3_remote_on(server)
