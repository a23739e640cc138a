"""Two real gateway processes sharing serverless demand (``--peer``), as two replicas behind one
Service: KEDA (a gRPC client here) talks to replica A only, the calls go to replica B.

A call held by B wakes the variant through A's stream, A reports B's calls to KEDA (counted
once), maxConcurrency holds for the endpoint across both, and when B is killed (-9) with calls
held, its callers get a connection error while A forgets B's demand within the report TTL.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import botocore.exceptions
import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sageport import contract
from sageport.gateway import peers
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
from tests.integration.gateway.test_serverless import _method, _ref
from tests.integration.gateway.test_serverless import _routes as _routes_of_one
from tests.integration.gateway.test_target_tracking import _ref as _tracked_ref


def _routes(path: Path, cold_backends: list[str], slow: str) -> None:
    """The single-replica test's routes, "tight" (maxConcurrency 2) with provisionedConcurrency 1."""
    _routes_of_one(path, cold_backends, slow)
    routes = yaml.safe_load(path.read_text())
    routes["endpoints"]["tight"]["variants"][0]["serverless"]["provisionedConcurrency"] = 1
    # An instance-based variant, target-tracked (its calls per minute are what KEDA asks for).
    routes["endpoints"]["steady"] = {"variants": [{"name": "AllTraffic", "backends": [slow]}]}
    staged = path.with_suffix(".warm")
    staged.write_text(yaml.safe_dump(routes))
    staged.replace(path)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[dict[str, Any]]:
    backend = start_backend("warm")
    slow = start_backend("slow", "--sleep", "2")
    routes = tmp_path / "routes.yaml"
    _routes(routes, [], slow.url)
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}]}))
    port_a, port_b = free_port(), free_port()

    def gateway(name: str, port: int, peer: int) -> Process:
        return start_gateway(
            [
                "--routes",
                str(routes),
                "--keys",
                str(keys),
                "--scaler-port",
                str(port),
                "--peer",
                f"127.0.0.1:{peer}",
            ],
            log_path=tmp_path / f"gateway-{name}.log",
        )

    a, b = gateway("a", port_a, port_b), gateway("b", port_b, port_a)
    channel = grpc.insecure_channel(f"127.0.0.1:{port_a}")  # KEDA reached replica A
    yield {"routes": routes, "backend": backend, "slow": slow, "a": a, "b": b, "channel": channel}
    channel.close()
    for process in (a, b, backend, slow):
        process.stop()


def _call(gateway: Process, endpoint: str, client: Any = None) -> dict[str, Any]:
    client = client or runtime_client(gateway.url)
    try:
        answer = client.invoke_endpoint(EndpointName=endpoint, Body=b"1,2,3", ContentType="text/csv")
        return {"status": 200, "body": answer["Body"].read()}
    except botocore.exceptions.ClientError as error:
        return {
            "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": error.response["Error"]["Code"],
        }
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
        return {"status": None, "error": type(error).__name__}


def _demand(channel: grpc.Channel, endpoint: str) -> float:
    metrics = _method(channel, "GetMetrics", pb.GetMetricsResponse)(
        pb.GetMetricsRequest(scaledObjectRef=_ref(endpoint), metricName=contract.SCALER_METRIC)
    )
    return float(metrics.metricValues[0].metricValueFloat)


def _until(check: Any, seconds: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_call_held_by_another_replica_wakes_the_variant_through_kedas_replica(
    replicas: dict[str, Any],
) -> None:
    channel = replicas["channel"]
    stream = _method(channel, "StreamIsActive", pb.IsActiveResponse, stream=True)(_ref("cold"))
    pushed: list[float] = []

    def listen() -> None:
        with contextlib.suppress(grpc.RpcError):
            for _ in stream:
                pushed.append(time.monotonic())

    threading.Thread(target=listen, daemon=True).start()
    is_active = _method(channel, "IsActive", pb.IsActiveResponse)
    assert is_active(_ref("cold")).result is False
    time.sleep(0.5)  # KEDA's stream is open on A

    clients = [runtime_client(replicas["b"].url) for _ in range(8)]  # made before the clock starts
    with ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        calls = [pool.submit(_call, replicas["b"], "cold", client) for client in clients]  # all on B
        _until(lambda: bool(pushed), 2.0)
        signal_ms = (pushed[0] - started) * 1e3
        _until(lambda: _demand(channel, "cold") == 8, 2.0)  # B's held calls, counted once on A
        time.sleep(1.5)  # past a heartbeat: B's report again replaces, never adds
        assert _demand(channel, "cold") == 8
        assert is_active(_ref("cold")).result is True
        assert len(pushed) == 1  # one wake-up for 8 held calls
        assert not any(call.done() for call in calls)
        _routes(replicas["routes"], [replicas["backend"].url], replicas["slow"].url)  # a pod turns ready
        answers = [call.result(timeout=30) for call in calls]
    assert [a["status"] for a in answers] == [200] * 8, answers
    print(f"\ncall held on B -> 'active' on KEDA's stream on A: {signal_ms:.0f} ms")
    assert signal_ms < 1000, signal_ms
    _until(lambda: _demand(channel, "cold") == 0, 2.0)
    assert is_active(_ref("cold")).result is True  # within the trigger's active window (5 s)
    stream.cancel()


def _metrics(gateway: Process) -> dict[tuple[str, str], float]:
    """(sample name, endpoint) -> value, from the replica's live /metrics."""
    text = urllib.request.urlopen(gateway.url + "/metrics", timeout=5).read().decode()
    return {
        (sample.name, sample.labels.get("endpoint", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_max_concurrency_holds_across_replicas_and_provisioned_concurrency_is_measured(
    replicas: dict[str, Any],
) -> None:
    """maxConcurrency 2 and provisionedConcurrency 1, a 2 s model: one call on each replica (the
    second spills over the provisioned one), then a third on either replica is throttled."""
    utilization = ("sageport_serverless_concurrent_executions_utilization", "tight")

    def known_everywhere(in_flight: int) -> bool:  # of maxConcurrency 2, on both replicas
        return all(_metrics(replicas[name]).get(utilization) == in_flight / 2 for name in ("a", "b"))

    with ThreadPoolExecutor(4) as pool:
        first = [pool.submit(_call, replicas["a"], "tight")]
        _until(lambda: known_everywhere(1), 5.0)  # A's call is known to B before B's arrives
        first.append(pool.submit(_call, replicas["b"], "tight"))
        _until(lambda: known_everywhere(2), 5.0)  # not a fixed sleep: reports lag on a loaded machine
        third = [pool.submit(_call, replicas[name], "tight") for name in ("a", "b")]
        during = {name: _metrics(replicas[name]) for name in ("a", "b")}
        answers = [call.result(timeout=30) for call in [*first, *third]]
    assert [a["status"] for a in answers] == [200, 200, 400, 400], answers
    assert {a.get("code") for a in answers[2:]} == {"ThrottlingException"}
    # Gauges are endpoint-wide on every replica: 2 of maxConcurrency 2 in flight, 1 of them provisioned.
    for seen in during.values():
        assert seen[("sageport_serverless_concurrent_executions_utilization", "tight")] == 1.0
        assert seen[("sageport_serverless_provisioned_concurrency_executions", "tight")] == 1.0
        assert seen[("sageport_serverless_provisioned_concurrency_utilization", "tight")] == 1.0
    after = [_metrics(replicas[name]) for name in ("a", "b")]

    def total(name: str) -> float:
        return sum(seen.get((name, "tight"), 0.0) for seen in after)

    assert total("sageport_serverless_provisioned_concurrency_invocations_total") == 1
    assert total("sageport_serverless_provisioned_concurrency_spillover_invocations_total") == 1
    # Back to 0 everywhere once the last call's end has reached the peer (one report).
    _until(
        lambda: all(
            _metrics(replicas[name])[("sageport_serverless_provisioned_concurrency_executions", "tight")] == 0
            for name in ("a", "b")
        ),
        2.0,
    )


def test_a_replica_killed_with_calls_held_fails_them_cleanly_and_its_demand_expires(
    replicas: dict[str, Any],
) -> None:
    channel = replicas["channel"]
    with ThreadPoolExecutor(6) as pool:
        on_b = [pool.submit(_call, replicas["b"], "cold") for _ in range(3)]
        on_a = [pool.submit(_call, replicas["a"], "cold") for _ in range(3)]
        _until(lambda: _demand(channel, "cold") == 6, 3.0)
        replicas["b"].stop(signal.SIGKILL)
        killed = time.monotonic()
        gone = _until(lambda: _demand(channel, "cold") == 3, peers.REPORT_TTL_SECONDS + 2)
        _routes(replicas["routes"], [replicas["backend"].url], replicas["slow"].url)
        answers_b = [call.result(timeout=30) for call in on_b]
        answers_a = [call.result(timeout=30) for call in on_a]
    # B's callers see the connection break, never an answer that is not theirs; A's all succeed.
    assert [a["status"] for a in answers_b] == [None] * 3, answers_b
    assert [(a["status"], a["body"]) for a in answers_a] == [(200, b"1,2,3")] * 3, answers_a
    print(f"\nkilled replica's demand gone from KEDA's replica after {gone:.1f} s (killed at {killed:.0f})")
    assert gone <= peers.REPORT_TTL_SECONDS + 1.5


def test_target_tracking_counts_the_calls_of_every_replica(replicas: dict[str, Any]) -> None:
    # KEDA asks replica A for the variant's calls in the last minute; B served some of them.
    request = pb.GetMetricsRequest(
        scaledObjectRef=_tracked_ref("steady"), metricName=contract.SCALER_METRIC_INVOCATIONS
    )

    def calls_per_minute() -> float:
        answer = _method(replicas["channel"], "GetMetrics", pb.GetMetricsResponse)(request)
        return float(answer.metricValues[0].metricValueFloat)

    assert calls_per_minute() == 0
    with ThreadPoolExecutor(5) as pool:
        answers = list(
            pool.map(lambda gateway: _call(gateway, "steady"), [replicas["b"]] * 3 + [replicas["a"]] * 2)
        )
    assert [answer["status"] for answer in answers] == [200] * 5
    assert calls_per_minute() == 5  # 3 on B, 2 on A: each counted once

    replicas["b"].stop(signal.SIGKILL)  # a dead peer is left out, and does not stall the poll
    started = time.monotonic()
    assert calls_per_minute() == 2
    assert time.monotonic() - started < 2
