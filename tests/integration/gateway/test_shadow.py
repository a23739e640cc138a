"""Shadow variants through the real gateway process and boto3: a copy of each request goes to the
shadow, the caller only ever gets the production answer, and a shadow that takes 5 s per call
does not slow the caller down (measured against the same endpoint without a shadow)."""

from __future__ import annotations

import statistics
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sageport_dev.processes import eventually
from tests.integration.gateway.support import (
    ACCESS_KEY,
    SECRET_KEY,
    Process,
    runtime_client,
    start_backend,
    start_gateway,
)

CALLS = 60


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Process, Process]]:
    production, shadow = start_backend("production"), start_backend("shadow", "--sleep", "5")
    directory = tmp_path_factory.mktemp("shadow")
    routes = {
        "endpoints": {
            "plain": {"variants": [{"name": "Production", "backends": [production.url]}]},
            "shadowed": {
                "variants": [{"name": "Production", "backends": [production.url]}],
                "shadows": [{"name": "Shadow", "weight": 1.0, "backends": [shadow.url]}],
            },
        }
    }
    (directory / "routes.yaml").write_text(yaml.safe_dump(routes))
    keys = {"keys": [{"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}]}
    (directory / "keys.yaml").write_text(yaml.safe_dump(keys))
    gateway = start_gateway(
        [
            "--routes",
            str(directory / "routes.yaml"),
            "--keys",
            str(directory / "keys.yaml"),
            "--model-timeout",
            "10",
        ]
    )
    yield gateway, production, shadow
    for process in (gateway, production, shadow):
        process.stop()


def _seen(backend: Process) -> int:
    with urllib.request.urlopen(f"{backend.url}/seen", timeout=5) as answer:
        return int(answer.read())


def _latencies(client, endpoint: str) -> list[float]:  # type: ignore[no-untyped-def]
    latencies = []
    for call in range(CALLS):
        started = time.perf_counter()
        response = client.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/plain", Body=f"{call}".encode()
        )
        latencies.append(time.perf_counter() - started)
        assert response["InvokedProductionVariant"] == "Production"
        assert response["CustomAttributes"] == "backend=production"
        assert response["Body"].read() == f"{call}".encode()
    return latencies


def test_every_request_is_copied_to_the_shadow_and_a_slow_shadow_costs_the_caller_nothing(
    shadowed: tuple[Process, Process, Process],
) -> None:
    gateway, _, shadow = shadowed
    client = runtime_client(gateway.url)
    _latencies(client, "plain")  # warm both paths' connections
    plain = _latencies(client, "plain")
    before = _seen(shadow)
    with_shadow = _latencies(client, "shadowed")
    eventually(lambda: _seen(shadow) - before == CALLS, 30, what=f"{CALLS} copies at the shadow")
    p50_plain, p50_shadowed = statistics.median(plain), statistics.median(with_shadow)
    print(
        f"shadow: caller p50 {p50_shadowed * 1000:.2f} ms with a 5 s shadow, {p50_plain * 1000:.2f} ms without"
    )
    assert max(with_shadow) < 1.0, "a call waited for the 5 s shadow"
    assert p50_shadowed < p50_plain + 0.005, (p50_plain, p50_shadowed)
    # Per-variant metrics let the two be compared: the shadow's latency is its own.
    answered = f'sageport_model_latency_seconds_count{{endpoint="shadowed",endpoint_config="",variant="Shadow"}} {float(CALLS)}'
    eventually(lambda: answered in _metrics(gateway), 20, what="the shadow's answers counted")
    metrics = _metrics(gateway)
    assert (
        f'sageport_invocations_total{{endpoint="shadowed",endpoint_config="",variant="Shadow"}} {float(CALLS)}'
        in metrics
    )
    assert (
        'sageport_model_latency_seconds_bucket{endpoint="shadowed",endpoint_config="",le="2.5",variant="Shadow"} 0.0'
        in metrics
    )


def _metrics(gateway: Process) -> str:
    with urllib.request.urlopen(f"{gateway.url}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_a_dead_shadow_fails_no_call(tmp_path: Path) -> None:
    production = start_backend("production")
    routes = {
        "endpoints": {
            "e": {
                "variants": [{"name": "Production", "backends": [production.url]}],
                "shadows": [{"name": "Gone", "weight": 1.0, "backends": ["http://127.0.0.1:9"]}],
            }
        }
    }
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(routes))
    (tmp_path / "keys.yaml").write_text(
        yaml.safe_dump({"keys": [{"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}]})
    )
    gateway = start_gateway(
        ["--routes", str(tmp_path / "routes.yaml"), "--keys", str(tmp_path / "keys.yaml")]
    )
    try:
        client = runtime_client(gateway.url)
        for call in range(20):
            response = client.invoke_endpoint(EndpointName="e", ContentType="text/plain", Body=b"x")
            assert response["InvokedProductionVariant"] == "Production", call
        counted = (
            'sageport_invocation_model_errors_total{endpoint="e",endpoint_config="",variant="Gone"} 20.0'
        )
        eventually(lambda: counted in _metrics(gateway), 10, what="20 shadow errors counted")
    finally:
        gateway.stop()
        production.stop()
