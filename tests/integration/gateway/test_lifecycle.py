"""Process-level behaviour: draining on SIGTERM and reloading the routes file."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml

from tests.integration.gateway.support import Process, runtime_client, start_gateway


def test_sigterm_drains_in_flight_requests(gateway_files: dict[str, Path], tmp_path: Path) -> None:
    gateway = start_gateway(["--routes", str(gateway_files["routes"]), "--keys", str(gateway_files["keys"])])
    client = runtime_client(gateway.url)
    client.invoke_endpoint(EndpointName="echo", Body=b"warm-up")
    outcome: dict[str, Any] = {}

    def slow_call() -> None:
        try:
            response = client.invoke_endpoint(
                EndpointName="echo", Body=b"slow", CustomAttributes="mode=sleep:1"
            )
            outcome["body"] = response["Body"].read()
        except Exception as error:
            outcome["error"] = error

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.3)
    code = gateway.stop(signal.SIGTERM, timeout=15)
    caller.join(10)
    assert outcome == {"body": b"slow"}
    assert code == 0


def test_routes_file_is_reloaded(
    gateway_files: dict[str, Path], tmp_path: Path, backends: dict[str, Process]
) -> None:
    routes = tmp_path / "routes.yaml"
    shutil.copy(gateway_files["routes"], routes)
    gateway = start_gateway(["--routes", str(routes), "--no-auth"])
    try:
        client = runtime_client(gateway.url)
        document = yaml.safe_load(routes.read_text())
        document["endpoints"]["added"] = {"variants": [{"name": "New", "backends": [backends["b3"].url]}]}
        routes.write_text(yaml.safe_dump(document))
        deadline = time.monotonic() + 10
        while True:
            try:
                response = client.invoke_endpoint(EndpointName="added", Body=b"x")
                break
            except client.exceptions.ValidationError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response["InvokedProductionVariant"] == "New"
    finally:
        gateway.stop()


def test_overload_answers_throttling_which_boto3_retries(
    gateway_files: dict[str, Path], backends: dict[str, Process]
) -> None:
    import threading
    import urllib.request

    from sageport_dev import wire

    gateway = start_gateway(["--routes", str(gateway_files["routes"]), "--no-auth", "--max-in-flight", "1"])
    seen_url = backends["b1"].url + "/seen"

    def seen() -> int:
        with urllib.request.urlopen(seen_url) as answer:
            return int(answer.read())

    try:
        no_retry = runtime_client(gateway.url)
        before = seen()
        slow = threading.Thread(
            target=lambda: no_retry.invoke_endpoint(
                EndpointName="echo", Body=b"x", CustomAttributes="mode=sleep:1"
            )
        )
        slow.start()
        deadline = time.monotonic() + 5
        while seen() == before:  # the slow call holds the gateway's one slot
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            no_retry.invoke_endpoint(EndpointName="echo", Body=b"y")
        error = caught.value.response
        assert error["Error"]["Code"] == "ThrottlingException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "maxInFlight" in error["Error"]["Message"]
        # boto3 retries it (a throttling code), and the call succeeds once the slot frees.
        retrying = wire.runtime_client(gateway.url, "AKIDEXAMPLE", "any-secret-no-auth", attempts=10)
        answer = retrying.invoke_endpoint(EndpointName="echo", Body=b"z")
        assert answer["Body"].read() == b"z"
        assert answer["ResponseMetadata"]["RetryAttempts"] >= 1
        slow.join()
    finally:
        gateway.stop()


def test_expect_100_continue(gateway: Process) -> None:
    import subprocess

    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-H", "Expect: 100-continue",
         "--data-binary", "payload", f"{gateway.url}/endpoints/echo/invocations"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    status, seconds = result.stdout.split()
    assert status == "403"  # unsigned, but the body was read first
    assert float(seconds) < 0.9  # curl waits 1 s for "100 Continue" before sending anyway


def test_metrics_port_keeps_metrics_off_the_api_port(gateway_files: dict[str, Path]) -> None:
    import urllib.error
    import urllib.request

    from tests.integration.gateway.support import free_port

    metrics_port = free_port()
    gateway = start_gateway(
        ["--routes", str(gateway_files["routes"]), "--no-auth", "--metrics-port", str(metrics_port)]
    )
    try:
        runtime_client(gateway.url).invoke_endpoint(EndpointName="echo", Body=b"x")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as page:
            assert b"sageport_invocations_total" in page.read()
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(gateway.url + "/metrics")
        assert caught.value.code == 404
    finally:
        gateway.stop()
