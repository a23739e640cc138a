"""A Serial inference pipeline on the real node: examples/serial-pipeline (a CSV preprocessor in
inference.py, the sklearn iris model, a JSON postprocessor in inference.py), two instances of
three pods each, called with boto3 through the gateway. Its answer is the three composed by
hand; a failing stage is a ModelError naming it; a stage pod killed takes its instance out of
rotation while calls keep succeeding on the other, and the instance comes back by itself."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
import time
from collections import defaultdict
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport.contract import LABEL_INSTANCE, LABEL_ROLE, LABEL_STAGE
from sageport_dev import stack
from tests.e2e.conftest import Deployed

pytestmark = pytest.mark.timeout(900)

EXAMPLE = stack.REPO / "examples" / "serial-pipeline"
ROWS_MM = "sepal_length,sepal_width,petal_length,petal_width\n51,35,14,2\n67,30,52,23\n59,30,42,15\n"


def _code_tarball(stage: str) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(EXAMPLE / stage / "code", arcname="code")
    return archive.getvalue()


def _module(stage: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"pipeline_{stage}", EXAMPLE / stage / "code" / "inference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _by_hand(rows_mm: str) -> Any:
    """The three stages composed in this process: the preprocessor's functions, the same sklearn
    model, the postprocessor's functions."""
    pre, post = _module("preprocess"), _module("postprocess")
    csv, csv_type = pre.output_fn(
        pre.predict_fn(pre.input_fn(rows_mm.encode(), "text/csv"), None), "text/csv"
    )
    with tarfile.open(fileobj=io.BytesIO(stack.iris_model_tarball())) as tar:
        member = tar.extractfile("model.joblib")
        assert member is not None
        model = joblib.load(io.BytesIO(member.read()))
    rows = np.array([[float(v) for v in line.split(",")] for line in csv.splitlines()])
    classes = json.dumps(model.predict(rows).tolist()).encode()
    body, _ = post.output_fn(
        post.predict_fn(post.input_fn(classes, "application/json"), None), "application/json"
    )
    assert csv_type == "text/csv"
    return json.loads(body)


def _pods(deployed: Deployed, ns: str) -> list[dict[str, Any]]:
    out = deployed.kubectl("get", "pods", "-n", ns, "-l", "sageport.io/endpoint=iris-pipeline", "-o", "json")
    return list(json.loads(out)["items"])


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _instances(deployed: Deployed, endpoint: str, ns: str) -> int:
    found = deployed.get("endpoints.sageport.io", endpoint, ns)
    assert found is not None
    return int(found["status"]["productionVariants"][0].get("currentInstanceCount") or 0)


def test_a_serial_pipeline_chains_its_stages_on_one_node(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    for stage in ("preprocess", "postprocess"):
        deployed.s3.put("sageport-models", f"pipeline/{stage}.tar.gz", _code_tarball(stage))
    stack.apply_objects(deployed.kubeconfig, ns, stack.example_objects(EXAMPLE))
    deployed.wait_ready(ns, "iris-pipeline", 420)
    endpoint = deployed.get("endpoints.sageport.io", "iris-pipeline", ns)
    assert endpoint is not None
    (variant,) = endpoint["status"]["productionVariants"]
    assert variant["pipelineHostnames"] == ["preprocess", "model", "postprocess"]
    assert variant["currentInstanceCount"] == 2  # instances, not the six pods
    assert len(variant["deployedImages"]) == 3

    pods = _pods(deployed, ns)
    instances: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pod in pods:
        instances[pod["metadata"]["labels"][LABEL_INSTANCE]].append(pod)
    assert len(instances) == 2
    for members in instances.values():
        assert sorted(p["metadata"]["labels"].get(LABEL_STAGE, "anchor") for p in members) == [
            "anchor",
            "model",
            "postprocess",
        ]
        assert len({p["spec"]["nodeName"] for p in members}) == 1

    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    answer = runtime.invoke_endpoint(
        EndpointName="iris-pipeline", ContentType="text/csv", Accept="application/json", Body=ROWS_MM
    )
    assert answer["ContentType"] == "application/json"
    got = json.loads(answer["Body"].read())
    assert got == _by_hand(ROWS_MM)
    assert [p["species"] for p in got["predictions"]] == ["setosa", "virginica", "versicolor"]

    # The model stage fails (three features where it was trained on four): named, with its answer.
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="iris-pipeline", ContentType="text/csv", Body="51,35,14\n")
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "(500) from model with" in error["Error"]["Message"]
    assert "features" in error["OriginalMessage"]
    # A TargetContainerHostname is for Direct endpoints only, as in SageMaker.
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="iris-pipeline", Body=ROWS_MM, TargetContainerHostname="model")
    assert raised.value.response["Error"]["Code"] == "ValidationError"

    # A stage pod killed: its instance leaves rotation, calls keep succeeding, it comes back.
    anchor_name = sorted(instances)[0]
    (victim,) = [
        p for p in instances[anchor_name] if p["metadata"]["labels"].get(LABEL_STAGE) == "postprocess"
    ]
    deployed.kubectl("delete", "pod", "-n", ns, victim["metadata"]["name"], "--wait=false")
    left, back, calls, failures = False, False, 0, []
    killed = time.monotonic()
    out_after = back_after = 0.0
    deadline = killed + 300
    while time.monotonic() < deadline and not back:
        try:
            reply = runtime.invoke_endpoint(
                EndpointName="iris-pipeline", ContentType="text/csv", Body=ROWS_MM
            )
            assert json.loads(reply["Body"].read()) == got
        except ClientError as failed:
            failures.append(failed.response["Error"])
        calls += 1
        anchor = next(p for p in _pods(deployed, ns) if p["metadata"]["name"] == anchor_name)
        if not left and not _ready(anchor):
            left, out_after = True, time.monotonic() - killed
        back = left and _ready(anchor) and _instances(deployed, "iris-pipeline", ns) == 2
        back_after = time.monotonic() - killed
        time.sleep(0.2)
    assert left, "the instance never left rotation"
    assert back, "the instance did not come back"
    assert failures == [], f"{len(failures)} of {calls} calls failed: {failures[:3]}"
    replacement = [
        p
        for p in _pods(deployed, ns)
        if p["metadata"]["labels"].get(LABEL_INSTANCE) == anchor_name
        and p["metadata"]["labels"].get(LABEL_STAGE) == "postprocess"
    ]
    assert [p["metadata"]["uid"] for p in replacement] != [victim["metadata"]["uid"]]
    assert all(p["metadata"]["labels"].get(LABEL_ROLE) is None for p in replacement)
    final = runtime.invoke_endpoint(EndpointName="iris-pipeline", ContentType="text/csv", Body=ROWS_MM)
    assert json.loads(final["Body"].read()) == got
    print(
        f"killed stage: instance out of rotation {out_after:.1f} s after the kill, back after "
        f"{back_after:.1f} s; {calls} calls meanwhile, none failed"
    )
