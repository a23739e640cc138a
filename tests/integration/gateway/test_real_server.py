"""The gateway in front of the real model server (``sageport-server``) with an sklearn model."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.gateway.support import Process, free_port, runtime_client, start_gateway, wait_http


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    model_dir = tmp_path_factory.mktemp("iris")
    joblib.dump(
        LogisticRegression(max_iter=1000).fit(*load_iris(return_X_y=True)), model_dir / "model.joblib"
    )
    port = free_port()
    popen = subprocess.Popen(
        [str(Path(sys.executable).with_name("sageport-server")), "--model-dir", str(model_dir),
         "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    server = Process(popen, f"http://127.0.0.1:{port}")
    try:
        wait_http(server.url + "/ping", popen, timeout=90)
        yield server
    finally:
        server.stop()


def test_boto3_through_gateway_to_sklearn_server(model_server: Process, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        yaml.safe_dump(
            {"endpoints": {"iris": {"variants": [{"name": "AllTraffic", "backends": [model_server.url]}]}}}
        )
    )
    gateway = start_gateway(["--routes", str(routes), "--no-auth"])
    try:
        client: Any = runtime_client(gateway.url)
        response = client.invoke_endpoint(
            EndpointName="iris",
            Body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
            ContentType="text/csv",
            Accept="application/json",
        )
        assert response["InvokedProductionVariant"] == "AllTraffic"
        assert json.loads(response["Body"].read()) == [0, 2]
        # A payload the model rejects comes back as ModelError with the container's status.
        with pytest.raises(client.exceptions.ModelError) as caught:
            client.invoke_endpoint(EndpointName="iris", Body=b"{oops", ContentType="application/json")
        assert caught.value.response["OriginalStatusCode"] == 400
    finally:
        gateway.stop()
