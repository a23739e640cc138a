"""s3:// fetch with real boto3 against a real S3-compatible server (versitygw, posix backend) on loopback.

versitygw is a pinned binary of the local-cluster harness (``dev/sageport_dev/build.py``): built from
its Go module into ``~/.cache/sageport/`` on first use, like the Kubernetes binaries. No skip.
"""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sageport.storage import FetchError, fetch

ACCESS, SECRET = "sageportadmin", "sageport-secret-key"


def _versitygw() -> str:
    from sageport_dev.build import ensure_binaries

    return str(ensure_binaries()["versitygw"])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _versitygw()
    root = tmp_path_factory.mktemp("s3root")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--access", ACCESS, "--secret", SECRET, "--port", f"127.0.0.1:{port}", "posix", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("versitygw did not start listening")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="models")
    return client


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_model_tar_gz_object_is_downloaded_and_unpacked(s3: Any, tmp_path: Path) -> None:
    s3.put_object(
        Bucket="models", Key="team/m1/model.tar.gz", Body=_tarball({"model.joblib": b"w", "code/a.py": b""})
    )
    fetch("s3://models/team/m1/model.tar.gz", tmp_path / "dest")
    assert (tmp_path / "dest/model.joblib").read_bytes() == b"w"
    assert (tmp_path / "dest/code/a.py").exists()


def test_prefix_is_copied_with_relative_paths(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket="models", Key="plain/m2/model.onnx", Body=b"graph")
    s3.put_object(Bucket="models", Key="plain/m2/code/inference.py", Body=b"x = 1\n")
    fetch("s3://models/plain/m2", tmp_path / "dest")
    assert (tmp_path / "dest/model.onnx").read_bytes() == b"graph"
    assert (tmp_path / "dest/code/inference.py").read_text() == "x = 1\n"


def test_missing_object_is_a_fetch_error(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="no object or prefix"):
        fetch("s3://models/absent/model.tar.gz", tmp_path / "dest")
