"""Asynchronous inference on the real node: examples/async-inference applied, plain boto3
``invoke_endpoint_async`` through the gateway, the stack's Redis as the queue, the agent sidecar
in the variant's pod, results in the stack's S3 server, polled as the SageMaker SDK's
AsyncPredictor does (OutputLocation and FailureLocation both watched)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed

pytestmark = pytest.mark.timeout(600)

EXAMPLE = stack.REPO / "examples" / "async-inference"
ENDPOINT = "iris-async"
BUCKET = "sageport-models"


def _iris_rows_and_labels(count: int) -> tuple[list[bytes], list[int]]:
    """Rows of the iris data and what the example's model (stack.iris_model_tarball, trained the
    same way here) predicts for them."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    picked = features[:: max(len(features) // count, 1)][:count]
    rows = [(",".join(f"{value:g}" for value in row) + "\n").encode() for row in picked]
    return rows, [int(label) for label in model.predict(picked)]


def _get(s3: Any, uri: str) -> bytes | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def _poll(s3: Any, responses: list[dict[str, Any]], timeout: float) -> dict[str, tuple[str, bytes]]:
    """InferenceId -> ("output" | "failure", body), as AsyncPredictor polls both locations."""
    results: dict[str, tuple[str, bytes]] = {}
    deadline = time.monotonic() + timeout
    while len(results) < len(responses) and time.monotonic() < deadline:
        for response in responses:
            if response["InferenceId"] in results:
                continue
            for kind, location in (("output", "OutputLocation"), ("failure", "FailureLocation")):
                body = _get(s3, response[location])
                if body is not None:
                    results[response["InferenceId"]] = (kind, body)
                    break
        time.sleep(1)
    return results


def _first_call(runtime: Any, s3: Any, row: bytes) -> dict[str, Any]:
    """The gateway follows the Endpoint's status: once Ready, it takes async calls within seconds."""
    key = f"async/input/ready-{uuid.uuid4()}.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=row)
    deadline = time.monotonic() + 30
    while True:
        try:
            return dict(
                runtime.invoke_endpoint_async(
                    EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/{key}", ContentType="text/csv"
                )
            )
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_fifty_async_calls_land_as_fifty_outputs_with_the_right_predictions(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, stack.example_objects(EXAMPLE))
    deployed.wait_ready(ns, ENDPOINT, 240)
    endpoint = deployed.get("endpoints.sageport.io", ENDPOINT, ns) or {}
    assert endpoint["status"]["asyncInferenceConfig"]["outputConfig"]["s3OutputPath"] == (
        "s3://sageport-models/async/output"
    )
    pods = json.loads(deployed.kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
    assert any(c["name"] == "sageport-async-agent" for p in pods for c in p["spec"]["containers"])

    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    s3 = deployed.s3.client()
    rows, labels = _iris_rows_and_labels(50)
    first = _first_call(runtime, s3, rows[0])
    started = time.monotonic()
    responses = [first]
    for index, row in enumerate(rows[1:], start=1):
        input_key = f"async/input/{uuid.uuid4()}-{index}.csv"
        s3.put_object(Bucket=BUCKET, Key=input_key, Body=row)
        responses.append(
            runtime.invoke_endpoint_async(
                EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/{input_key}", ContentType="text/csv"
            )
        )
    accepted = time.monotonic() - started
    for response in responses:
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert response["OutputLocation"] == f"s3://{BUCKET}/async/output/{response['InferenceId']}.out"
        assert (
            response["FailureLocation"] == f"s3://{BUCKET}/async/failure/{response['InferenceId']}-error.out"
        )
    assert len({r["InferenceId"] for r in responses}) == 50
    results = _poll(s3, responses, timeout=180)
    completed = time.monotonic() - started
    assert len(results) == 50, f"{len(results)} of 50 calls have a result after 180 s"
    for response, label in zip(responses, labels, strict=True):
        kind, body = results[response["InferenceId"]]
        assert kind == "output", body
        assert json.loads(body) == [label]
    head = s3.head_object(Bucket=BUCKET, Key=responses[0]["OutputLocation"].split("/", 3)[3])
    assert head["ContentType"].startswith("application/json")  # the model's content type
    print(f"\n50 async calls: accepted in {accepted:.2f} s, all outputs written after {completed:.1f} s")

    # A bad input: the failure object holds the model's own message; nothing lands at the output.
    bad_key = f"async/input/bad-{uuid.uuid4()}.csv"
    s3.put_object(Bucket=BUCKET, Key=bad_key, Body=b"not,a,number,row\n")
    bad = runtime.invoke_endpoint_async(
        EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/{bad_key}", ContentType="text/csv"
    )
    missing = runtime.invoke_endpoint_async(
        EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/async/input/{uuid.uuid4()}-absent.csv"
    )
    failures = _poll(s3, [bad, missing], timeout=60)
    kind, body = failures[bad["InferenceId"]]
    assert kind == "failure", body
    assert body, "the failure object holds the model's message"
    assert b"could not be read" not in body, body
    assert _get(s3, bad["OutputLocation"]) is None
    kind, body = failures[missing["InferenceId"]]
    assert kind == "failure"
    assert b"could not be read" in body

    # Bad requests are refused naming the member; a sync call says the endpoint is async.
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=rows[0])
    assert "asynchronous endpoint" in caught.value.response["Error"]["Message"]
    for arguments, named in (
        ({"InputLocation": f"s3://{BUCKET}/x", "Body": b"1"}, "mutually exclusive"),
        ({"InputLocation": "https://example.com/x"}, "inputLocation"),
        ({"InputLocation": f"s3://{BUCKET}/x", "InvocationTimeoutSeconds": 3601}, "invocationTimeoutSeconds"),
    ):
        with pytest.raises(ClientError) as caught:
            runtime.invoke_endpoint_async(EndpointName=ENDPOINT, **arguments)
        error = caught.value.response["Error"]
        assert (error["Code"], named in error["Message"]) == ("ValidationError", True), error


ZERO_EXAMPLE = stack.REPO / "examples" / "async-scale-to-zero"
ZERO_ENDPOINT = "iris-async-zero"


def _zero_state(deployed: Deployed, namespace: str) -> tuple[int | None, int]:
    """The variant Deployment's replicas (KEDA's) and how many of its pods exist."""
    selector = f"sageport.io/endpoint={ZERO_ENDPOINT}"
    deployments = json.loads(
        deployed.kubectl("get", "deployments", "-n", namespace, "-l", selector, "-o", "json")
    )
    pods = json.loads(deployed.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]
    items = deployments["items"]
    return (items[0]["spec"].get("replicas") if items else None), len(pods)


def test_an_async_endpoint_at_min_zero_scales_to_zero_and_a_call_wakes_it(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """examples/async-scale-to-zero with real KEDA reading the stack's Redis: idle, the variant
    goes to zero and stays InService; a call is still 202 at zero (the queue holds it), KEDA's
    lag trigger wakes the variant and the output lands in S3 with the right prediction."""
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, stack.example_objects(ZERO_EXAMPLE))
    deployed.wait_ready(ns, ZERO_ENDPOINT, 240)
    scaled = json.loads(deployed.kubectl("get", "scaledobjects.keda.sh", "-n", ns, "-o", "json"))["items"]
    (scaled_object,) = scaled
    assert {t["metadata"].get("lagCount") or "pending" for t in scaled_object["spec"]["triggers"]} == {
        "4",
        "pending",
    }
    assert deployed.kubectl("get", "triggerauthentications.keda.sh", "-n", ns, "-o", "name").strip()

    eventually(lambda: _zero_state(deployed, ns) == (0, 0), 240, interval=1, what="scale to zero")
    endpoint = deployed.get("endpoints.sageport.io", ZERO_ENDPOINT, ns) or {}
    assert endpoint["status"]["endpointStatus"] == "InService"
    assert endpoint["status"]["productionVariants"][0]["currentInstanceCount"] == 0

    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    s3 = deployed.s3.client()
    rows, labels = _iris_rows_and_labels(1)
    input_key = f"async-zero/input/{uuid.uuid4()}.csv"
    s3.put_object(Bucket=BUCKET, Key=input_key, Body=rows[0])
    assert _zero_state(deployed, ns) == (0, 0)  # the call below is taken at zero instances
    started = time.monotonic()
    response = runtime.invoke_endpoint_async(
        EndpointName=ZERO_ENDPOINT, InputLocation=f"s3://{BUCKET}/{input_key}", ContentType="text/csv"
    )
    accepted = time.monotonic() - started
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    results = _poll(s3, [response], timeout=180)
    woke = time.monotonic() - started
    kind, body = results[response["InferenceId"]]
    assert kind == "output", body
    assert json.loads(body) == labels
    print(f"\nasync call at zero: 202 in {accepted:.2f} s, its output in S3 {woke:.1f} s after the call")


def test_deleting_the_instance_pod_mid_stream_loses_no_accepted_call(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    """Chaos: the variant's only pod is deleted while calls arrive (some queued, some at the
    agent). Every accepted call ends in exactly one object, its output with the right
    prediction: none lost, none failed, none written twice with different bodies."""
    ns, key = namespace
    stack.apply_objects(deployed.kubeconfig, ns, stack.example_objects(EXAMPLE))
    deployed.wait_ready(ns, ENDPOINT, 240)
    selector = f"sageport.io/endpoint={ENDPOINT}"

    def pod_names() -> set[str]:
        pods = json.loads(deployed.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json"))["items"]
        return {pod["metadata"]["name"] for pod in pods}

    (doomed,) = pod_names()
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    s3 = deployed.s3.client()
    rows, labels = _iris_rows_and_labels(60)
    _first_call(runtime, s3, rows[0])
    responses = []
    for index, row in enumerate(rows):
        responses.append(
            runtime.invoke_endpoint_async(EndpointName=ENDPOINT, Body=row, ContentType="text/csv")
        )
        if index == 20:
            deployed.kubectl("delete", "pod", "-n", ns, doomed, "--wait=false")
        time.sleep(0.05)
    assert all(r["ResponseMetadata"]["HTTPStatusCode"] == 202 for r in responses)
    started = time.monotonic()
    results = _poll(s3, responses, timeout=300)
    assert len(results) == 60, f"{len(results)} of 60 accepted calls have a result after 300 s"
    for response, label in zip(responses, labels, strict=True):
        kind, body = results[response["InferenceId"]]
        assert (kind, json.loads(body)) == ("output", [label]), body
        assert _get(s3, response["FailureLocation"]) is None  # one object per call, never two
    assert doomed not in pod_names()
    print(f"\npod deleted after 21 of 60 calls: all 60 outputs right, the last {time.monotonic() - started:.0f} s "
          "after the last call")  # fmt: skip
