"""A user's code/inference.py with requirements.txt, custom attributes, and a model that fails to load."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import shutil
import signal
import textwrap
import zipfile
from pathlib import Path

import pytest

from .conftest import Servers

UV_FROM_MAKEFILE = Path.home() / ".cache/sageport/uv-0.13.8/bin"


def _installer_path() -> str | None:
    """A PATH under which the server finds an installer, or None when this machine has none."""
    import os

    if importlib.util.find_spec("pip") is not None or shutil.which("uv"):
        return os.environ["PATH"]
    if (UV_FROM_MAKEFILE / "uv").exists():
        return f"{UV_FROM_MAKEFILE}{os.pathsep}{os.environ['PATH']}"
    return None


def _wheel(directory: Path, name: str, source: str) -> Path:
    """A minimal, valid pure-Python wheel (no build backend, no network needed to install it)."""
    dist = f"{name}-1.0"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


INFERENCE_PY = """
import json
import os

import joblib
import sageport_test_scaler  # installed from code/requirements.txt at start


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type, context):
    if content_type != "application/json":
        raise ValueError(f"this model takes JSON, not {content_type}")
    return json.loads(body)["features"]


def predict_fn(features, model, context):
    scaled = [[value * sageport_test_scaler.FACTOR for value in row] for row in features]
    return {"labels": model.predict(scaled).tolist(), "asked": context.custom_attributes}


def output_fn(prediction, accept, context):
    context.response_custom_attributes = "model-saw=" + str(prediction["asked"])
    return json.dumps(prediction)
"""


def test_inference_py_with_requirements_and_custom_attributes(
    start_server: Servers, sklearn_dir: Path, tmp_path: Path
) -> None:
    path = _installer_path()
    if path is None:
        pytest.skip("neither pip nor uv is available to honour code/requirements.txt on this machine")
    model_dir = tmp_path / "model"
    shutil.copytree(sklearn_dir, model_dir)
    code = model_dir / "code"
    code.mkdir()
    (code / "inference.py").write_text(textwrap.dedent(INFERENCE_PY))
    wheel = _wheel(code, "sageport_test_scaler", "FACTOR = 1.0\n")
    (code / "requirements.txt").write_text(f"./{wheel.name}\n")

    server = start_server(
        "serve",
        env={
            "SM_MODEL_DIR": str(model_dir),
            "SAGEPORT_REQUIREMENTS_TARGET": str(tmp_path / "deps"),
            "SAGEPORT_KSERVE_ROUTES": "false",
            "PATH": path,
        },
    )
    assert (tmp_path / "deps" / "sageport_test_scaler" / "__init__.py").exists()

    body = json.dumps({"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()
    reply = server.request(
        "POST",
        "/invocations",
        body,
        {"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "tenant=blue"},
    )
    assert reply.status == 200, reply.body
    assert reply.json() == {"labels": [0, 2], "asked": "tenant=blue"}
    assert reply.headers["x-amzn-sagemaker-custom-attributes"] == "model-saw=tenant=blue"

    rejected = server.request("POST", "/invocations", b"1,2", {"Content-Type": "text/csv"})
    assert rejected.status == 400
    assert "this model takes JSON, not text/csv" in rejected.json()["message"]


def test_a_model_that_fails_to_load_fails_ping_and_says_why(start_server: Servers, tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"not a pickle at all")
    server = start_server(
        "serve", "--model-dir", str(tmp_path), env={"SAGEPORT_KSERVE_ROUTES": "false"}, ready=False
    )
    ping = server.wait_until(lambda r: r.status == 503 and b"failed" in r.body)
    assert "cannot load sklearn model" in ping.json()["message"]
    invocation = server.request("POST", "/invocations", b"1,2", {"Content-Type": "text/csv"})
    assert invocation.status == 503
    assert "failed to load" in invocation.json()["message"]
    assert "model failed to load" in server.log()
    assert "cannot load sklearn model" in server.log()
    assert server.request("GET", "/v2/health/ready").status == 404, "KServe routes were turned off"

    server.process.send_signal(signal.SIGTERM)
    # uvicorn drains, then re-raises the signal so the exit status says what stopped it.
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()


def test_missing_model_directory_fails_ping(start_server: Servers, tmp_path: Path) -> None:
    server = start_server(
        env={"SM_MODEL_DIR": str(tmp_path / "absent"), "SAGEPORT_KSERVE_ROUTES": "0"}, ready=False
    )
    ping = server.wait_until(lambda r: r.status == 503 and b"failed" in r.body)
    assert "does not exist" in ping.json()["message"]
