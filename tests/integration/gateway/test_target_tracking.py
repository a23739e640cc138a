"""The gateway's invocation count for target tracking (SageMakerVariantInvocationsPerInstance),
with real processes: the gateway, a model backend, boto3 callers, and a gRPC client asking the
scaler what KEDA's `external` trigger of a target-tracked variant asks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Process, grpc.Channel]]:
    backend = start_backend("tracked")
    routes = {
        "endpoints": {
            "tracked": {"variants": [{"name": "AllTraffic", "backends": [backend.url]}]},
            "other": {"variants": [{"name": "AllTraffic", "backends": [backend.url]}]},
        }
    }
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(routes))
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}]}))
    scaler_port = free_port()
    process = start_gateway(
        ["--routes", str(tmp_path / "routes.yaml"), "--keys", str(keys), "--scaler-port", str(scaler_port)],
        log_path=tmp_path / "gateway.log",
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{scaler_port}")
    yield process, channel
    channel.close()
    for running in (process, backend):
        running.stop()


def _ref(endpoint: str) -> Any:
    # The trigger metadata the operator renders for a target-tracked variant (standalone: no namespace).
    metadata = {
        contract.SCALER_KEY_ENDPOINT: endpoint,
        contract.SCALER_KEY_CONFIG: "",
        contract.SCALER_KEY_VARIANT: "AllTraffic",
        contract.SCALER_KEY_METRIC: contract.SCALER_METRIC_INVOCATIONS,
        contract.SCALER_KEY_TARGET: "70",
    }
    return pb.ScaledObjectRef(name=f"{endpoint}-so", namespace="", scalerMetadata=metadata)


def _unary(channel: grpc.Channel, name: str, response: Any) -> Any:
    return channel.unary_unary(
        f"/{pb.SERVICE}/{name}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,
    )


def test_the_scaler_reports_a_variants_calls_in_the_last_minute_against_the_target(
    gateway: tuple[Process, grpc.Channel],
) -> None:
    process, channel = gateway
    spec = _unary(channel, "GetMetricSpec", pb.GetMetricSpecResponse)(_ref("tracked"))
    assert [(s.metricName, s.targetSizeFloat) for s in spec.metricSpecs] == [
        (contract.SCALER_METRIC_INVOCATIONS, 70.0)
    ]

    def calls(endpoint: str) -> float:
        request = pb.GetMetricsRequest(
            scaledObjectRef=_ref(endpoint), metricName=contract.SCALER_METRIC_INVOCATIONS
        )
        (value,) = _unary(channel, "GetMetrics", pb.GetMetricsResponse)(request).metricValues
        assert value.metricName == contract.SCALER_METRIC_INVOCATIONS
        return float(value.metricValueFloat)

    assert calls("tracked") == 0
    client = runtime_client(process.url)
    for _ in range(7):
        answer = client.invoke_endpoint(EndpointName="tracked", Body=b"1,2,3", ContentType="text/csv")
        assert answer["Body"].read() == b"1,2,3"
    client.invoke_endpoint(EndpointName="other", Body=b"1", ContentType="text/csv")
    assert calls("tracked") == 7  # other endpoints' calls are theirs
    assert calls("other") == 1
