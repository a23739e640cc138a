"""Multi-model endpoints as the platform runs them: the server, given the Model's S3 prefix, loads a
TargetModel on its first call (one download however many calls wait), reuses the disk after an
eviction, answers a missing key as SageMaker does, and with the cache Disabled forgets each model
after its call. A real S3 server (versitygw) and the real server process."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sageport.contract import TARGET_MODEL_HEADER, TARGET_MODEL_MISSING_ERROR, multi_model_id
from sageport_dev.stack import joblib_tarball
from tests.support.s3 import S3, versitygw

from .conftest import Response, Server, Servers

BUCKET = "mme"


def model_tarball(offset: float) -> bytes:
    """A linear model whose prediction tells which model answered: y = x + offset."""
    from sklearn.linear_model import LinearRegression

    return joblib_tarball(LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([offset, offset + 1.0])))


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with versitygw(tmp_path_factory.mktemp("s3")) as server:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        for i in range(8):
            client.put_object(
                Bucket=BUCKET, Key=f"models/team-{i % 2}/m{i}.tar.gz", Body=model_tarball(100.0 * i)
            )
        client.put_object(Bucket=BUCKET, Key="models/broken.tar.gz", Body=b"not a tarball")
        yield server


def _server(start: Servers, s3: S3, root: Path, **env: str) -> Server:
    return start(
        "serve",
        env={
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEPORT_MULTI_MODEL_ROOT": str(root),
            "SAGEPORT_KSERVE_ROUTES": "false",
            "SAGEPORT_MODEL_PREFIX": f"s3://{BUCKET}/models",  # no trailing slash: SageMaker allows both
            **s3.env(),
            **env,
        },
    )


def invoke(server: Server, target: str, x: float = 1.0) -> Response:
    headers = {"Content-Type": "application/json", TARGET_MODEL_HEADER: target}
    return server.request(
        "POST", f"/models/{multi_model_id(target)}/invoke", json.dumps([[x]]).encode(), headers
    )


def _metrics(server: Server) -> dict[str, float]:
    page = server.request("GET", "/metrics").body.decode()
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in page.splitlines()
        if line and not line.startswith("#")
    }


def prediction(response: Response) -> float:
    assert response.status == 200, response.body
    return round(float(np.asarray(response.json()).ravel()[0]), 6)


def test_first_call_loads_from_the_prefix_once(start_module_server: Servers, s3: S3, tmp_path: Path) -> None:
    server = _server(start_module_server, s3, tmp_path / "models")
    server.wait_until(lambda r: r.status == 200)
    with ThreadPoolExecutor(16) as pool:  # 16 first calls of one model at once: one download, one load
        answers = list(pool.map(lambda _: prediction(invoke(server, "team-1/m3.tar.gz")), range(16)))
    assert answers == [301.0] * 16
    assert server.log().count("loaded model " + multi_model_id("team-1/m3.tar.gz")) == 1
    for i in range(8):
        assert prediction(invoke(server, f"team-{i % 2}/m{i}.tar.gz", 2.0)) == 100.0 * i + 2.0
    loaded = {m["modelName"] for m in server.request("GET", "/models").json()["models"]}
    assert loaded == {multi_model_id(f"team-{i % 2}/m{i}.tar.gz") for i in range(8)}
    metrics = _metrics(server)  # SageMaker's MME metrics, per instance
    assert metrics["sageport_loaded_models"] == metrics["sageport_models_on_disk"] == 8
    assert metrics["sageport_model_downloading_seconds_count"] == 8  # one download per model
    assert metrics["sageport_model_loading_seconds_count"] == 8
    assert metrics["sageport_model_cache_hits_total"] == 1  # m3's second round
    assert metrics["sageport_model_cache_misses_total"] == 16 + 7


def test_missing_key_and_broken_artifact(start_module_server: Servers, s3: S3, tmp_path: Path) -> None:
    server = _server(start_module_server, s3, tmp_path / "models")
    server.wait_until(lambda r: r.status == 200)
    missing = invoke(server, "nope/absent.tar.gz")
    assert (missing.status, missing.json()["type"]) == (400, TARGET_MODEL_MISSING_ERROR)
    assert "bucket: mme, key: models/nope/absent.tar.gz" in missing.json()["message"]
    broken = invoke(server, "broken.tar.gz")
    assert broken.status == 500
    assert "broken.tar.gz" in broken.json()["message"]
    assert prediction(invoke(server, "team-0/m0.tar.gz")) == 1.0  # the server is fine


def test_evicted_model_reloads_from_disk_and_cache_disabled_forgets(
    start_module_server: Servers, s3: S3, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    server = _server(start_module_server, s3, root, SAGEPORT_MODEL_CACHE="Disabled")
    server.wait_until(lambda r: r.status == 200)
    assert prediction(invoke(server, "team-0/m2.tar.gz")) == 201.0
    server.wait_until(lambda r: not r.json()["models"], path="/models", timeout=10)
    deadline = time.monotonic() + 10  # deleted from disk too, just after the answer
    while (root / multi_model_id("team-0/m2.tar.gz")).exists():
        assert time.monotonic() < deadline, "the model's files are still on disk"
        time.sleep(0.05)
    assert prediction(invoke(server, "team-0/m2.tar.gz")) == 201.0  # and fetched again


def test_a_call_that_outwaits_the_load_is_not_ready_and_the_load_goes_on(
    start_module_server: Servers, s3: S3, tmp_path: Path
) -> None:
    server = _server(start_module_server, s3, tmp_path / "models", SAGEPORT_MODEL_LOAD_WAIT_SECONDS="0.001")
    server.wait_until(lambda r: r.status == 200)
    waited = invoke(server, "team-1/m5.tar.gz")
    assert (waited.status, waited.json()["type"]) == (503, "ModelNotReadyError")  # the gateway's 429
    assert "still loading" in waited.json()["message"]
    loaded = multi_model_id("team-1/m5.tar.gz")
    server.wait_until(
        lambda r: loaded in {m["modelName"] for m in r.json()["models"]}, path="/models", timeout=30
    )
    assert prediction(invoke(server, "team-1/m5.tar.gz")) == 501.0


def test_the_disk_cache_keeps_within_its_budget_and_refetches_what_it_deleted(
    start_module_server: Servers, s3: S3, tmp_path: Path
) -> None:
    with tarfile.open(fileobj=io.BytesIO(model_tarball(0.0))) as tar:
        size = tar.getmembers()[0].size
    root = tmp_path / "models"
    server = _server(start_module_server, s3, root, SAGEPORT_MODEL_DISK_BYTES=str(int(size * 2.5)))
    server.wait_until(lambda r: r.status == 200)
    first, later = ["team-0/m0.tar.gz", "team-1/m1.tar.gz"], ["team-0/m2.tar.gz", "team-1/m3.tar.gz"]
    for target in first:
        assert prediction(invoke(server, target)) == 100.0 * int(target[-8]) + 1.0
        server.request("DELETE", f"/models/{multi_model_id(target)}")  # idle now: deletable from disk
    for target in later:
        assert prediction(invoke(server, target)) == 100.0 * int(target[-8]) + 1.0
    on_disk = {p.name for p in root.iterdir()}
    assert on_disk == {multi_model_id(t) for t in later}  # the idle ones went, the loaded ones stay
    assert _metrics(server)["sageport_models_on_disk"] == 2
    assert prediction(invoke(server, first[0])) == 1.0  # fetched again
    assert _metrics(server)["sageport_model_downloading_seconds_count"] == 5
