"""fetch() against real sources: local paths, file:// URLs, and a real HTTP(S) server on loopback."""

from __future__ import annotations

import datetime
import http.server
import io
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from sageport.storage import FetchError, fetch
from sageport.storage.archive import UnsafeArchiveError

REPO = Path(__file__).resolve().parents[3]


def _model_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_local_directory_is_copied(tmp_path: Path) -> None:
    source = tmp_path / "pvc" / "model"
    (source / "code").mkdir(parents=True)
    (source / "model.joblib").write_bytes(b"w")
    (source / "code" / "inference.py").write_text("x = 1\n")
    fetch(str(source), tmp_path / "dest")
    assert (tmp_path / "dest/model.joblib").read_bytes() == b"w"
    assert (tmp_path / "dest/code/inference.py").read_text() == "x = 1\n"


def test_local_tarball_and_file_url_are_unpacked(tmp_path: Path) -> None:
    archive = _model_tarball(tmp_path / "model.tar.gz", {"model.onnx": b"onnx", "code/requirements.txt": b""})
    fetch(archive.as_uri(), tmp_path / "a")
    fetch(str(archive), tmp_path / "b")
    for dest in (tmp_path / "a", tmp_path / "b"):
        assert (dest / "model.onnx").read_bytes() == b"onnx"
        assert not (dest / "model.tar.gz").exists()


def test_http_tarball_is_downloaded_and_unpacked(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, root = served
    _model_tarball(root / "model.tar.gz", {"xgboost-model": b"booster"})
    fetch(f"{base}/model.tar.gz", tmp_path / "dest")
    assert (tmp_path / "dest/xgboost-model").read_bytes() == b"booster"
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["xgboost-model"], (
        "no scratch files left behind"
    )


def test_http_plain_file_is_kept_under_its_name(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, root = served
    (root / "model.onnx").write_bytes(b"graph")
    fetch(f"{base}/model.onnx", tmp_path / "dest")
    assert (tmp_path / "dest/model.onnx").read_bytes() == b"graph"


def test_http_404_is_a_fetch_error(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, _ = served
    with pytest.raises(FetchError, match="404"):
        fetch(f"{base}/missing.tar.gz", tmp_path / "dest")


def test_hostile_http_archive_is_refused(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, root = served
    _model_tarball(root / "evil.tar.gz", {"../../evil.txt": b"x"})
    with pytest.raises(UnsafeArchiveError):
        fetch(f"{base}/evil.tar.gz", tmp_path / "a" / "b")
    assert not (tmp_path / "evil.txt").exists()


def test_https_with_a_trusted_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real TLS server on loopback whose self-signed certificate is trusted via SSL_CERT_FILE."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    root = tmp_path / "www"
    root.mkdir()
    _model_tarball(root / "model.tar.gz", {"model.joblib": b"secure"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/model.tar.gz"
        with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(url, tmp_path / "untrusted")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        fetch(url, tmp_path / "dest")
        assert (tmp_path / "dest/model.joblib").read_bytes() == b"secure"
    finally:
        server.shutdown()
        server.server_close()


def test_missing_local_path_and_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="does not exist"):
        fetch(str(tmp_path / "nope"), tmp_path / "dest")
    with pytest.raises(FetchError, match="unsupported"):
        fetch("gopher://example/x", tmp_path / "dest")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "operator")])}
    return subprocess.run(
        [sys.executable, "-m", "sageport.storage", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_fetch_exactly_as_the_init_container_runs_it(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, root = served
    _model_tarball(root / "model.tar.gz", {"model.joblib": b"w", "code/inference.py": b""})
    done = _cli("fetch", f"{base}/model.tar.gz", str(tmp_path / "opt/ml/model"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "opt/ml/model/model.joblib").read_bytes() == b"w"

    failed = _cli("fetch", f"{base}/absent.tar.gz", str(tmp_path / "x"))
    assert failed.returncode == 1
    assert "absent.tar.gz" in failed.stderr
    assert "404" in failed.stderr

    usage = _cli("fetch", "only-one-argument")
    assert usage.returncode == 2


def test_a_fetch_past_its_download_budget_stops_and_says_which_setting(tmp_path: Path) -> None:
    """``--timeout`` (the variant's modelDataDownloadTimeoutInSeconds): a server that never
    answers ends the init container in about that time, with the setting named."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    try:
        started = time.monotonic()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/model.tar.gz"
        done = subprocess.run(
            [sys.executable, "-m", "sageport.storage", "fetch", url, str(tmp_path / "m"), "--timeout", "1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        took = time.monotonic() - started
    finally:
        silent.close()
    assert done.returncode == 1
    assert "did not finish within modelDataDownloadTimeoutInSeconds (1 s)" in done.stderr
    assert took < 10
