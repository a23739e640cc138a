"""A real S3-compatible server for tests: versitygw (posix backend) on loopback.

versitygw is a pinned binary of the local-cluster harness (``dev/sageport_dev/build.py``), built
from its Go module into ``~/.cache/sageport/`` on first use. Never a mock.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sageport_dev.processes import free_port

REGION = "us-east-1"


@dataclass(frozen=True)
class S3:
    url: str
    access_key: str
    secret_key: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )

    def env(self) -> dict[str, str]:
        """What a process needs to reach it with the data plane's S3 client."""
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }


@contextlib.contextmanager
def versitygw(
    root: Path, access_key: str = "captureadmin", secret_key: str = "capture-secret-key"
) -> Iterator[S3]:
    from sageport_dev.build import ensure_binaries

    binary = str(ensure_binaries()["versitygw"])
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--access",
            access_key,
            "--secret",
            secret_key,
            "--port",
            f"127.0.0.1:{port}",
            "posix",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("versitygw did not start listening") from None
                time.sleep(0.1)
        yield S3(f"http://127.0.0.1:{port}", access_key, secret_key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
