"""The real boto3 sagemaker-runtime client against the gateway in standalone mode."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from typing import Any

import botocore.exceptions
import pytest

from sageport.contract import multi_model_id
from tests.integration.gateway.conftest import LIMITED_KEY, LIMITED_SECRET
from tests.integration.gateway.support import Process, runtime_client


def test_invoke_round_trip_with_headers(client: Any) -> None:
    response = client.invoke_endpoint(
        EndpointName="echo", Body=b'{"x": 1}', ContentType="application/json", Accept="application/json"
    )
    assert response["Body"].read() == b'{"x": 1}'
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "backend=b1"
    assert len(response["ResponseMetadata"]["RequestId"]) == 36


def test_contract_headers_reach_the_container(client: Any) -> None:
    response = client.invoke_endpoint(
        EndpointName="echo",
        Body=b"1,2,3",
        ContentType="text/csv",
        Accept="application/json",
        CustomAttributes="mode=headers;trace=abc",
        InferenceId="inference-7",
        TargetVariant="AllTraffic",
        EnableExplanations="`true`",
    )
    received = {key.lower(): value for key, value in json.loads(response["Body"].read())["headers"].items()}
    assert received["content-type"] == "text/csv"
    assert received["accept"] == "application/json"
    assert received["x-amzn-sagemaker-custom-attributes"] == "mode=headers;trace=abc"
    assert received["x-amzn-sagemaker-inference-id"] == "inference-7"
    assert received["x-amzn-sagemaker-enable-explanations"] == "`true`"
    assert received["x-amzn-requestid"] == response["ResponseMetadata"]["RequestId"]
    # Credentials stop at the gateway.
    assert "authorization" not in received
    assert "x-amz-date" not in received


def test_target_model_goes_to_the_multi_model_route_of_one_instance(client: Any) -> None:
    def call(endpoint: str, target: str) -> dict[str, Any]:
        response = client.invoke_endpoint(
            EndpointName=endpoint, Body=b"1", CustomAttributes="mode=headers", TargetModel=target
        )
        answer: dict[str, Any] = json.loads(response["Body"].read())
        return answer

    homes: dict[str, set[str]] = {}
    for i in range(16):  # 16 models all hashing to one of two instances: 1 run in 32,768
        target = f"team/m{i}.tar.gz"
        for _ in range(3):
            answer = call("many", target)
            received = {key.lower(): value for key, value in answer["headers"].items()}
            assert received["x-amzn-sagemaker-target-model"] == target
            assert answer["path"] == f"/models/{multi_model_id(target)}/invoke"
            homes.setdefault(target, set()).add(answer["backend"])
    assert all(len(backends) == 1 for backends in homes.values()), homes  # a model stays on one instance
    assert set().union(*homes.values()) == {"b1", "b2"}  # and the models spread over both
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call("echo", "m1.tar.gz")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "is not a multi-model endpoint" in raised.value.response["Error"]["Message"]


def test_target_variant_bypasses_weights(client: Any) -> None:
    for _ in range(20):
        response = client.invoke_endpoint(EndpointName="split", Body=b"x", TargetVariant="VariantB")
        assert response["InvokedProductionVariant"] == "VariantB"
        assert response["CustomAttributes"] == "backend=b2"


def test_weights_split_traffic_statistically(client: Any) -> None:
    trials = 400
    seen = Counter(
        client.invoke_endpoint(EndpointName="split", Body=b"x")["InvokedProductionVariant"]
        for _ in range(trials)
    )
    # Binomial(400, 0.7): sd ~9.2; 4.5 sd either side keeps the test from flaking.
    assert abs(seen["VariantA"] - 280) < 42, seen
    assert seen["VariantA"] + seen["VariantB"] == trials


def test_least_outstanding_requests_spreads_concurrent_calls(client: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def slow_call(_: int) -> str:
        response = client.invoke_endpoint(EndpointName="multi", Body=b"x", CustomAttributes="mode=sleep:0.3")
        return str(response["CustomAttributes"])

    with ThreadPoolExecutor(6) as pool:
        backends = Counter(pool.map(slow_call, range(6)))
    # Six concurrent slow calls over three idle instances: least-outstanding gives two each.
    assert backends == Counter({"backend=b1": 2, "backend=b2": 2, "backend=b3": 2}), backends


def _error(call: Any) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value


def test_unknown_endpoint_is_validation_error(client: Any) -> None:
    error = _error(lambda: client.invoke_endpoint(EndpointName="nope", Body=b"x"))
    assert isinstance(error, client.exceptions.ValidationError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Endpoint nope of account" in error.response["Error"]["Message"]


def test_bad_endpoint_name_is_validation_error(client: Any) -> None:
    for name in ("bad_name", "-leading", "x" * 64, "trailing-"):
        error = _error(lambda name=name: client.invoke_endpoint(EndpointName=name, Body=b"x"))
        assert isinstance(error, client.exceptions.ValidationError), name


def test_unknown_variant_and_container_are_validation_errors(client: Any) -> None:
    error = _error(lambda: client.invoke_endpoint(EndpointName="split", Body=b"x", TargetVariant="Nope"))
    assert isinstance(error, client.exceptions.ValidationError)
    error = _error(
        lambda: client.invoke_endpoint(EndpointName="direct", Body=b"x", TargetContainerHostname="third")
    )
    assert isinstance(error, client.exceptions.ValidationError)
    error = _error(lambda: client.invoke_endpoint(EndpointName="direct", Body=b"x"))
    assert isinstance(error, client.exceptions.ValidationError)
    error = _error(
        lambda: client.invoke_endpoint(EndpointName="echo", Body=b"x", TargetContainerHostname="c")
    )
    assert isinstance(error, client.exceptions.ValidationError)
    ok = client.invoke_endpoint(EndpointName="direct", Body=b"x", TargetContainerHostname="second")
    assert ok["Body"].read() == b"x"


def test_body_over_6_mib_is_413_as_sagemaker_answers(client: Any) -> None:
    error = _error(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"x" * (6 * 1024 * 1024 + 1)))
    # SageMaker's front door: no error type, so boto3 names the error by its status.
    assert type(error) is botocore.exceptions.ClientError
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error.response["Error"]["Code"] == "413"
    assert error.response["Error"]["Message"] == "HTTP content length exceeded 6291456 bytes."
    exactly = client.invoke_endpoint(EndpointName="echo", Body=b"y" * (6 * 1024 * 1024))
    assert len(exactly["Body"].read()) == 6 * 1024 * 1024


def test_response_over_6_mib_is_model_error(client: Any) -> None:
    limit = 6 * 1024 * 1024
    exactly = client.invoke_endpoint(EndpointName="echo", Body=b"x", CustomAttributes=f"mode=big:{limit}")
    assert len(exactly["Body"].read()) == limit
    error = _error(
        lambda: client.invoke_endpoint(
            EndpointName="echo", Body=b"x", CustomAttributes=f"mode=big:{limit + 1}"
        )
    )
    assert isinstance(error, client.exceptions.ModelError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "exceeds the maximum payload size of 6291456 bytes" in error.response["Error"]["Message"]
    # The gateway still serves the same backend afterwards (the oversized answer was cut off).
    assert client.invoke_endpoint(EndpointName="echo", Body=b"ok")["Body"].read() == b"ok"


@pytest.mark.parametrize("status", [400, 500, 503])
def test_model_failure_is_model_error_424(client: Any, status: int) -> None:
    error = _error(
        lambda: client.invoke_endpoint(
            EndpointName="echo", Body=b"x", CustomAttributes=f"mode=status:{status}"
        )
    )
    assert isinstance(error, client.exceptions.ModelError)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error.response["OriginalStatusCode"] == status
    assert error.response["OriginalMessage"] == f"b1 failed with {status}"
    assert f"({status})" in error.response["Error"]["Message"]


def test_loading_model_is_model_not_ready_429(client: Any) -> None:
    error = _error(lambda: client.invoke_endpoint(EndpointName="loading", Body=b"x"))
    assert isinstance(error, client.exceptions.ModelNotReadyException)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_no_ready_instance_is_service_unavailable(client: Any) -> None:
    for name in ("empty", "dead"):
        error = _error(lambda name=name: client.invoke_endpoint(EndpointName=name, Body=b"x"))
        assert isinstance(error, client.exceptions.ServiceUnavailable), name
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_model_timeout_is_model_error(client: Any) -> None:
    started = time.monotonic()
    error = _error(
        lambda: client.invoke_endpoint(EndpointName="echo", Body=b"x", CustomAttributes="mode=sleep:5")
    )
    assert isinstance(error, client.exceptions.ModelError)
    assert "timed out" in error.response["Error"]["Message"]
    assert time.monotonic() - started < 4


def test_async_invocation_is_a_clear_validation_error(client: Any) -> None:
    error = _error(
        lambda: client.invoke_endpoint_async(EndpointName="echo", InputLocation="s3://bucket/input")
    )
    assert isinstance(error, client.exceptions.ValidationError)
    assert "asynchronous" in error.response["Error"]["Message"]


def test_wrong_secret_unknown_key_and_scope_are_403(gateway: Process) -> None:
    wrong_secret = runtime_client(gateway.url, secret_key="not-the-secret")
    error = _error(lambda: wrong_secret.invoke_endpoint(EndpointName="echo", Body=b"x"))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Code"] == "InvalidSignatureException"

    unknown = runtime_client(gateway.url, access_key="AKIDUNKNOWN")
    error = _error(lambda: unknown.invoke_endpoint(EndpointName="echo", Body=b"x"))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Code"] == "UnrecognizedClientException"

    limited = runtime_client(gateway.url, access_key=LIMITED_KEY, secret_key=LIMITED_SECRET)
    assert limited.invoke_endpoint(EndpointName="echo", Body=b"x")["Body"].read() == b"x"
    error = _error(lambda: limited.invoke_endpoint(EndpointName="split", Body=b"x"))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Code"] == "AccessDeniedException"


def test_expired_signature_is_403(gateway: Process, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as datetime_module

    import botocore.auth

    client = runtime_client(gateway.url)
    skewed = datetime_module.datetime.now(datetime_module.UTC).replace(
        tzinfo=None
    ) - datetime_module.timedelta(minutes=16)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: skewed)
    error = _error(lambda: client.invoke_endpoint(EndpointName="echo", Body=b"x"))
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "expired" in error.response["Error"]["Message"].lower()


def test_unsigned_request_is_403(gateway: Process) -> None:
    request = urllib.request.Request(gateway.url + "/endpoints/echo/invocations", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 403
    assert caught.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert json.loads(caught.value.read())["message"]


def test_streaming_payload_parts(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="echo", Body=b"x", CustomAttributes="mode=stream:4", Accept="text/plain"
    )
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    parts = b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"])
    assert parts == b"".join(f"b1-chunk-{index};".encode() for index in range(4))


def test_stream_that_breaks_gives_model_stream_error(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="echo", Body=b"x", CustomAttributes="mode=stream-break"
    )
    received: list[bytes] = []

    def drain() -> None:
        received.extend(event["PayloadPart"]["Bytes"] for event in response["Body"])

    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        drain()
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"
    assert b"".join(received).startswith(b"b1-chunk-0;")


def test_stream_that_stalls_gives_timeout_frame(client: Any) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="echo", Body=b"x", CustomAttributes="mode=stream-stall:3"
    )
    with pytest.raises(botocore.exceptions.EventStreamError) as caught:
        for _ in response["Body"]:
            pass
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"


def test_stream_errors_before_start_are_http_errors(client: Any) -> None:
    error = _error(
        lambda: client.invoke_endpoint_with_response_stream(
            EndpointName="echo", Body=b"x", CustomAttributes="mode=status:500"
        )
    )
    assert isinstance(error, client.exceptions.ModelError)
    error = _error(lambda: client.invoke_endpoint_with_response_stream(EndpointName="missing", Body=b"x"))
    assert isinstance(error, client.exceptions.ValidationError)


def test_metrics_are_exported(client: Any, gateway: Process) -> None:
    client.invoke_endpoint(EndpointName="echo", Body=b"x")
    with urllib.request.urlopen(gateway.url + "/metrics") as page:
        text = page.read().decode()
    for name in (
        "sageport_invocations_total",
        "sageport_invocation_4xx_errors_total",
        "sageport_invocation_5xx_errors_total",
        "sageport_invocation_model_errors_total",
        "sageport_model_latency_seconds_bucket",
        "sageport_overhead_latency_seconds_bucket",
        "sageport_invocations_per_instance_total",
        "sageport_in_flight_requests",
    ):
        assert name in text, name
    assert 'sageport_invocations_total{endpoint="echo",endpoint_config="",variant="AllTraffic"}' in text


def test_secrets_never_reach_the_log(client: Any, gateway: Process, gateway_files: dict[str, Any]) -> None:
    from tests.integration.gateway.support import SECRET_KEY

    wrong = runtime_client(gateway.url, secret_key="wrong-secret-value")
    _error(lambda: wrong.invoke_endpoint(EndpointName="echo", Body=b"x"))
    log_text = gateway_files["log"].read_text()
    assert SECRET_KEY not in log_text
    assert LIMITED_SECRET not in log_text
    assert "wrong-secret-value" not in log_text
    for line in log_text.splitlines():
        record = json.loads(line)
        assert "request_id" in record


def _metric(gateway: Process, line_prefix: str) -> float:
    with urllib.request.urlopen(gateway.url + "/metrics") as page:
        for line in page.read().decode().splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_error_counters_follow_the_model_status(client: Any, gateway: Process) -> None:
    labels = '{endpoint="multi",endpoint_config="",variant="AllTraffic"}'
    before = {
        name: _metric(gateway, f"sageport_{name}_total{labels}")
        for name in (
            "invocations",
            "invocation_4xx_errors",
            "invocation_5xx_errors",
            "invocation_model_errors",
        )
    }
    client.invoke_endpoint(EndpointName="multi", Body=b"x")
    for status in (400, 500):
        _error(lambda status=status: client.invoke_endpoint(
            EndpointName="multi", Body=b"x", CustomAttributes=f"mode=status:{status}"))  # fmt: skip
    after = {name: _metric(gateway, f"sageport_{name}_total{labels}") for name in before}
    assert after["invocations"] - before["invocations"] == 3
    assert after["invocation_4xx_errors"] - before["invocation_4xx_errors"] == 1
    assert after["invocation_5xx_errors"] - before["invocation_5xx_errors"] == 1
    assert after["invocation_model_errors"] - before["invocation_model_errors"] == 2
    per_instance = _metric(gateway, f"sageport_invocations_per_instance_total{labels}")
    assert per_instance == pytest.approx(after["invocations"] / 3)  # three instances in "multi"
