"""The gateway as activator of serverless variants, with real processes: the gateway, model
backends, boto3 callers and a gRPC client playing KEDA on the external-push scaler.

A variant with no backend is a variant at zero: calls are held (never a 5xx), KEDA is told at
the first one, and when a backend appears (the routes file is rewritten, as an EndpointSlice
would change) every held call goes to it. Above maxConcurrency: ThrottlingException (400).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import botocore.exceptions
import grpc
import pytest
import yaml

from sageport import contract
from sageport.gateway import scaler_proto as pb
from tests.integration.gateway.support import (
    ACCESS_KEY,
    SECRET_KEY,
    Process,
    free_port,
    runtime_client,
    start_backend,
    start_gateway,
)


def _routes(path: Path, cold_backends: list[str], slow: str) -> None:
    def serverless(max_concurrency: int, setup: float) -> dict[str, Any]:
        return {"maxConcurrency": max_concurrency, "modelSetupTimeoutInSeconds": setup}

    routes = {
        "endpoints": {
            "cold": {
                "variants": [
                    {"name": "AllTraffic", "backends": cold_backends, "serverless": serverless(30, 30)}
                ]
            },
            "tight": {
                "variants": [{"name": "AllTraffic", "backends": [slow], "serverless": serverless(2, 30)}]
            },
            "never": {"variants": [{"name": "AllTraffic", "backends": [], "serverless": serverless(5, 1)}]},
        }
    }
    staged = path.with_suffix(".new")
    staged.write_text(yaml.safe_dump(routes))
    staged.replace(path)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    backend = start_backend("warm")
    slow = start_backend("slow", "--sleep", "2")
    routes = tmp_path / "routes.yaml"
    _routes(routes, [], slow.url)
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}]}))
    scaler_port = free_port()
    gateway = start_gateway(
        ["--routes", str(routes), "--keys", str(keys), "--scaler-port", str(scaler_port)],
        log_path=tmp_path / "gateway.log",
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{scaler_port}")
    yield {
        "routes": routes,
        "backend": backend,
        "slow": slow,
        "gateway": gateway,
        "channel": channel,
    }
    channel.close()
    for process in (gateway, backend, slow):
        process.stop()


def _ref(endpoint: str) -> Any:
    # Standalone mode has no namespaces: the ScaledObject's namespace is matched as "".
    metadata = {
        contract.SCALER_KEY_ENDPOINT: endpoint,
        contract.SCALER_KEY_CONFIG: "",
        contract.SCALER_KEY_VARIANT: "AllTraffic",
        "activeWindowSeconds": "5",
        "callsPerPod": "4",
    }
    return pb.ScaledObjectRef(name=f"{endpoint}-so", namespace="", scalerMetadata=metadata)


def _method(channel: grpc.Channel, name: str, response: Any, *, stream: bool = False) -> Any:
    factory = channel.unary_stream if stream else channel.unary_unary
    return factory(
        f"/{pb.SERVICE}/{name}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,
    )


def _invoke(
    gateway: Process, endpoint: str, attributes: str | None = None, client: Any = None
) -> dict[str, Any]:
    client = client or runtime_client(gateway.url)
    extra = {"CustomAttributes": attributes} if attributes else {}
    try:
        answer = client.invoke_endpoint(EndpointName=endpoint, Body=b"1,2,3", ContentType="text/csv", **extra)
        return {"status": 200, "body": answer["Body"].read()}
    except botocore.exceptions.ClientError as error:
        return {
            "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": error.response["Error"]["Code"],
            "message": error.response["Error"]["Message"],
        }


def test_calls_at_zero_are_held_keda_is_told_at_once_and_all_are_answered(setup: dict[str, Any]) -> None:
    gateway, channel = setup["gateway"], setup["channel"]
    stream = _method(channel, "StreamIsActive", pb.IsActiveResponse, stream=True)(_ref("cold"))
    pushed: list[float] = []

    def listen() -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end
            for _ in stream:
                pushed.append(time.monotonic())

    threading.Thread(target=listen, daemon=True).start()
    is_active = _method(channel, "IsActive", pb.IsActiveResponse)
    assert is_active(_ref("cold")).result is False  # nobody called yet: KEDA may scale to zero
    time.sleep(0.5)  # the stream is open, as KEDA holds it

    clients = [runtime_client(gateway.url) for _ in range(20)]  # made before the clock starts
    with ThreadPoolExecutor(20) as pool:
        first_call = time.monotonic()
        calls = [pool.submit(_invoke, gateway, "cold", None, client) for client in clients]
        deadline = time.monotonic() + 5
        while not pushed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pushed, "no 'active' on StreamIsActive after the first held call"
        signal_ms = (pushed[0] - first_call) * 1e3
        time.sleep(1.0)  # the calls wait: none is answered while the variant has no pod
        assert not any(call.done() for call in calls)
        metrics = _method(channel, "GetMetrics", pb.GetMetricsResponse)(
            pb.GetMetricsRequest(scaledObjectRef=_ref("cold"), metricName=contract.SCALER_METRIC)
        )
        assert metrics.metricValues[0].metricValueFloat == 20  # held calls are demand
        assert is_active(_ref("cold")).result is True
        _routes(setup["routes"], [setup["backend"].url], setup["slow"].url)  # a pod turns ready
        answers = [call.result(timeout=30) for call in calls]
    assert [a["status"] for a in answers] == [200] * 20, answers
    assert all(a["body"] == b"1,2,3" for a in answers)
    assert signal_ms < 1000, signal_ms
    spec = _method(channel, "GetMetricSpec", pb.GetMetricSpecResponse)(_ref("cold"))
    assert (spec.metricSpecs[0].metricName, spec.metricSpecs[0].targetSizeFloat) == (
        contract.SCALER_METRIC,
        4,
    )
    stream.cancel()


def test_concurrency_above_max_is_throttled(setup: dict[str, Any]) -> None:
    with ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(_invoke, setup["gateway"], "tight") for _ in range(3)]
        answers = [call.result(timeout=30) for call in calls]
    statuses = sorted(a["status"] for a in answers)
    assert statuses == [200, 200, 400], answers
    throttled = next(a for a in answers if a["status"] == 400)
    assert throttled["code"] == "ThrottlingException"
    assert "maxConcurrency" in throttled["message"]


def test_no_pod_within_the_setup_timeout_is_model_not_ready(setup: dict[str, Any]) -> None:
    started = time.monotonic()
    answer = _invoke(setup["gateway"], "never")
    waited = time.monotonic() - started
    assert (answer["status"], answer["code"]) == (429, "ModelNotReadyException"), answer
    assert "within 1 s" in answer["message"]
    assert 0.9 <= waited < 5
