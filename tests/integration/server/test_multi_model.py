"""Multi-model mode over HTTP: SageMaker's container API, a budget that forces eviction, remote artifacts."""

from __future__ import annotations

import http.server
import json
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from .conftest import Server, Servers

MiB = 2**20
ROW = json.dumps([[0.0] * 64]).encode()


def _knn(model_dir: Path, rows: int) -> None:
    """k-NN keeps its training set (rows x 64 float64), so its memory is known in advance."""
    import joblib
    from sklearn.neighbors import KNeighborsClassifier

    features = np.random.default_rng(rows).normal(size=(rows, 64))
    model_dir.mkdir(parents=True)
    joblib.dump(
        KNeighborsClassifier(n_neighbors=1).fit(features, np.arange(rows) % 3), model_dir / "model.joblib"
    )


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("opt-ml-models")
    _knn(root / "big-a" / "model", 40_000)  # ~20 MiB
    _knn(root / "big-b" / "model", 40_000)
    _knn(root / "small" / "model", 300)
    _knn(root / "huge" / "model", 100_000)  # ~50 MiB: more than the whole budget
    return root


@pytest.fixture(scope="module")
def artifact_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A model.tar.gz served over real HTTP, for a load whose url is remote."""
    www = tmp_path_factory.mktemp("www")
    staging = tmp_path_factory.mktemp("staging")
    _knn(staging / "m", 500)
    with tarfile.open(www / "remote.tar.gz", "w:gz") as tar:
        tar.add(staging / "m" / "model.joblib", arcname="model.joblib")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/remote.tar.gz"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(start_module_server: Servers, models_root: Path) -> Server:
    return start_module_server(
        "serve",
        env={
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEPORT_MULTI_MODEL_ROOT": str(models_root),
            "SAGEPORT_MULTI_MODEL_MEMORY": "32Mi",
            "SAGEPORT_KSERVE_ROUTES": "false",
        },
    )


def _load(server: Server, name: str, url: str | None = None) -> int:
    request = {"model_name": name} if url is None else {"model_name": name, "url": url}
    return server.request(
        "POST", "/models", json.dumps(request).encode(), {"Content-Type": "application/json"}
    ).status


def _invoke(server: Server, name: str) -> int:
    headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Model": f"{name}.tar.gz"}
    return server.request("POST", f"/models/{name}/invoke", ROW, headers).status


def _loaded(server: Server) -> set[str]:
    return {m["modelName"] for m in server.request("GET", "/models").json()["models"]}


def test_load_evict_invoke_unload(server: Server, models_root: Path) -> None:
    assert server.request("GET", "/ping").status == 200
    assert server.request("GET", "/models").json() == {"models": []}, (
        "GET /models must answer even when empty"
    )
    assert _invoke(server, "big-a") == 404

    assert _load(server, "big-a", str(models_root / "big-a" / "model")) == 200
    assert _load(server, "small") == 200  # url defaults to <root>/<name>/model
    assert _load(server, "big-a") == 409
    described = server.request("GET", "/models/big-a").json()
    assert described["modelUrl"] == str(models_root / "big-a" / "model")
    assert 18 * MiB < described["memoryBytes"] < 32 * MiB

    invoked = server.request("POST", "/models/small/invoke", ROW, {"Content-Type": "application/json"})
    assert invoked.status == 200
    assert invoked.json() in ([0], [1], [2])

    assert _invoke(server, "big-a") == 200  # big-a is now more recently used than small...
    assert _load(server, "big-b") == 200  # ...yet big-a goes: only its memory makes room for big-b
    assert _loaded(server) == {"small", "big-b"}
    assert server.request("GET", "/models/big-a").status == 404
    assert _invoke(server, "big-a") == 404
    assert _invoke(server, "big-b") == 200

    huge = server.request(
        "POST", "/models", json.dumps({"model_name": "huge"}).encode(), {"Content-Type": "application/json"}
    )
    assert huge.status == 507
    assert "huge" in huge.json()["message"]
    assert _loaded(server) == {"small", "big-b"}, "a refused model must not evict anything"

    assert server.request("DELETE", "/models/small").status == 200
    assert server.request("DELETE", "/models/small").status == 404
    assert _loaded(server) == {"big-b"}


def test_remote_artifact_and_bad_requests(server: Server, artifact_url: str) -> None:
    assert _load(server, "remote", artifact_url) == 200
    assert _invoke(server, "remote") == 200
    assert server.request("POST", "/models", b"{}", {"Content-Type": "application/json"}).status == 400
    assert server.request("POST", "/models", b"[1]", {"Content-Type": "application/json"}).status == 400
    missing = server.request(
        "POST", "/models", json.dumps({"model_name": "ghost"}).encode(), {"Content-Type": "application/json"}
    )
    assert missing.status == 404
    assert "ghost" in missing.json()["message"]


def test_paging(server: Server, models_root: Path) -> None:
    names = sorted(_loaded(server))
    first = server.request("GET", "/models?max_results=1").json()
    assert len(first["models"]) == 1
    if len(names) > 1:
        rest = server.request(
            "GET", f"/models?max_results=10&next_page_token={first['nextPageToken']}"
        ).json()
        assert sorted([first["models"][0]["modelName"]] + [m["modelName"] for m in rest["models"]]) == names
