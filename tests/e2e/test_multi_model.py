"""A multi-model endpoint on the real node: examples/multi-model, 200 models under one S3 prefix on a
2-instance variant whose memory fits about 50 models each, each model reached by boto3's TargetModel
through the gateway, loaded on its first call, evicted and loaded again; a model uploaded after the
endpoint is in service; SageMaker's errors."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport.contract import LABEL_ENDPOINT_OBJECT
from sageport_dev import stack
from tests.e2e.conftest import Deployed

pytestmark = pytest.mark.timeout(900)

MODELS = 200
ROWS = 8000  # one feature: about 280 KiB in memory per model, as the server measures it


def model_tarball(offset: float) -> bytes:
    """A 1-NN regressor whose every answer is ``offset``: the answer says which model served it, and
    its size in memory is known (k-NN keeps its training set)."""
    from sklearn.neighbors import KNeighborsRegressor

    features = np.random.default_rng(abs(int(offset)) + 1).normal(size=(ROWS, 1))
    return stack.joblib_tarball(KNeighborsRegressor(n_neighbors=1).fit(features, np.full(ROWS, offset)))


def _predict(runtime: Any, target: str, x: float = 1.0) -> float:
    answer = runtime.invoke_endpoint(
        EndpointName="many-models", TargetModel=target, ContentType="application/json", Body=json.dumps([[x]])
    )
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    return round(float(np.asarray(json.loads(answer["Body"].read())).ravel()[0]), 6)


def _instance_metrics(deployed: Deployed, ns: str, *names: str) -> list[list[float]]:
    """Each named metric of every instance, read from its model server's /metrics at the pod's IP."""
    selector = f"{LABEL_ENDPOINT_OBJECT}=many-models"
    pods = json.loads(deployed.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json"))
    values: list[list[float]] = [[] for _ in names]
    for pod in pods["items"]:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/metrics", timeout=10) as page:
            lines = page.read().decode().splitlines()
        for i, name in enumerate(names):
            values[i].append(next(float(line.split()[1]) for line in lines if line.startswith(name + " ")))
    return values


def _refusal(runtime: Any, **call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName="many-models", ContentType="application/json", Body="[[1.0]]", **call
        )
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_two_hundred_models_behind_one_endpoint(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    client = deployed.s3.client()
    for i in range(MODELS):
        client.put_object(
            Bucket="sageport-models", Key=f"mme/team-{i % 4}/m{i}.tar.gz", Body=model_tarball(10.0 * i)
        )
    objects = stack.example_objects(stack.REPO / "examples" / "multi-model")
    model = next(obj for obj in objects if obj["kind"] == "Model")
    # Each instance's memory fits about 50 of these models: 200 calls make it evict.
    model["spec"]["primaryContainer"]["environment"] = {"SAGEPORT_MULTI_MODEL_MEMORY": "14Mi"}
    stack.apply_objects(deployed.kubeconfig, ns, objects)
    deployed.wait_ready(ns, "many-models", 300)
    endpoint = deployed.get("endpoints.sageport.io", "many-models", ns)
    assert endpoint is not None
    variant = endpoint["status"]["productionVariants"][0]
    assert (variant["multiModel"], variant["currentInstanceCount"]) == (True, 2)

    runtime = stack.runtime_client(deployed.gateway_url, key)  # boto3's default retries: 429 is retried
    targets = [f"team-{i % 4}/m{i}.tar.gz" for i in range(MODELS)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda t: _predict(runtime, t), targets))
    cold = time.monotonic() - started
    print(f"multi-model: {MODELS} first calls in {cold:.1f} s")
    assert first == [10.0 * i for i in range(MODELS)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        second = list(pool.map(lambda t: _predict(runtime, t, 2.0), targets))
    warm = time.monotonic() - started
    assert second == [10.0 * i for i in range(MODELS)]
    loaded, on_disk = _instance_metrics(deployed, ns, "sageport_loaded_models", "sageport_models_on_disk")
    assert sum(on_disk) == MODELS, on_disk  # every model on one instance's disk
    assert min(on_disk) > 0, on_disk  # over both instances
    assert max(loaded) <= 55, loaded  # memory holds ~50 each: the LRU evicted
    assert sum(loaded) < MODELS, loaded
    print(f"multi-model: {MODELS} first calls {cold:.1f} s, {MODELS} more (half reloaded) {warm:.1f} s")

    # Added by uploading, with the endpoint in service: no update.
    client.put_object(Bucket="sageport-models", Key="mme/late/new.tar.gz", Body=model_tarball(-5.0))
    assert _predict(runtime, "late/new.tar.gz") == -5.0

    code, status, message = _refusal(runtime)
    assert (code, status) == ("ValidationError", 400)
    assert "missing a target model header" in message
    code, status, message = _refusal(runtime, TargetModel="team-0/absent.tar.gz")
    assert (code, status) == ("ValidationError", 400)
    assert "Failed to download model data(bucket: sageport-models, key: mme/team-0/absent.tar.gz)" in message
    code, status, message = _refusal(runtime, TargetModel="../iris/model.tar.gz")
    assert (code, status) == ("ValidationError", 400)
    client.put_object(Bucket="sageport-models", Key="mme/broken.tar.gz", Body=b"not a tarball")
    code, status, message = _refusal(runtime, TargetModel="broken.tar.gz")
    assert (code, status) == ("ModelError", 424)
    assert "broken.tar.gz" in message
    assert _predict(runtime, "team-1/m1.tar.gz") == 10.0  # and the endpoint serves on
