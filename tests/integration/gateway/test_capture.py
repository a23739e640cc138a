"""Data capture end to end on this machine: boto3 -> the gateway (standalone, a routes file with
dataCaptureConfig) -> a backend, and the capture files in a real S3 server (versitygw).

Also: an S3 that refuses connections, and one that accepts and never answers, fail no call, slow
none, and are counted in ``sageport_data_capture_dropped_records``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import statistics
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from sageport_dev.processes import free_port
from tests.integration.gateway.support import Process, runtime_client, start_gateway
from tests.integration.gateway.test_kubernetes import (  # the fixtures and the test's stand-in operator
    GROUP,
    PLURAL,
    VERSION,
    Operator,
    cluster_backend,  # noqa: F401
    crd_applied,  # noqa: F401
)
from tests.support.s3 import S3, versitygw

BUCKET = "capture"
KEY = re.compile(
    r"^team/(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/(?P<hour>\d{4}/\d{2}/\d{2}/\d{2})/"
    r"(?P<minute>\d{2})-(?P<second>\d{2})-(?P<ms>\d{3})-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$"
)
CAPTURE = {
    "enableCapture": True,
    "initialSamplingPercentage": 100,
    "destinationS3URI": f"s3://{BUCKET}/team",
    "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
    "captureContentTypeHeader": {"csvContentTypes": ["text/csv"], "jsonContentTypes": ["application/json"]},
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with versitygw(tmp_path_factory.mktemp("s3")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def _routes(path: Path, backend: str, **endpoints: dict[str, Any] | None) -> Path:
    document = {
        "endpoints": {
            name: {"variants": [{"name": "AllTraffic", "backends": [backend]}]}
            | ({"dataCaptureConfig": capture} if capture else {})
            for name, capture in endpoints.items()
        }
    }
    path.write_text(yaml.safe_dump(document))
    return path


def _gateway(tmp_path: Path, routes: Path, env: dict[str, str], *extra: str) -> Process:
    return start_gateway(
        ["--routes", str(routes), "--no-auth", "--capture-flush-seconds", "0.3", *extra],
        log_path=tmp_path / "gateway.log",
        env=env,
    )


def _objects(s3: S3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def _wait_for_lines(
    s3: S3, prefix: str, count: int, timeout: float = 20.0
) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while True:
        objects = _objects(s3, prefix)
        lines = {
            key: [json.loads(line) for line in body.decode().splitlines()] for key, body in objects.items()
        }
        if sum(len(v) for v in lines.values()) >= count:
            return lines
        assert time.monotonic() < deadline, f"{count} capture records expected under {prefix}, found {lines}"
        time.sleep(0.2)


def _metric(gateway: Process, name: str, **labels: str) -> float:
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            sample_labels = line[len(name) :].split(" ")[0].strip("{}")
            if all(part in sample_labels.split(",") for part in wanted.split(",") if part):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_calls_appear_in_s3_in_sagemakers_capture_format(
    s3: S3, backends: dict[str, Process], tmp_path: Path
) -> None:
    no_types = {k: v for k, v in CAPTURE.items() if k != "captureContentTypeHeader"}
    routes = _routes(tmp_path / "routes.yaml", backends["b1"].url, iris=CAPTURE, raw=no_types, plain=None)
    gateway = _gateway(tmp_path, routes, s3.env())
    try:
        client = runtime_client(gateway.url)
        started = time.time()
        csv = client.invoke_endpoint(
            EndpointName="iris", ContentType="text/csv", Body=b"5.1,3.5,1.4,0.2\n", InferenceId="order-1"
        )
        assert csv["Body"].read() == b"5.1,3.5,1.4,0.2\n"
        as_json = client.invoke_endpoint(
            EndpointName="iris",
            ContentType="application/json",
            Body=b'{"x": 1}',
            CustomAttributes="mode=headers",
        )
        json_answer = as_json["Body"].read()
        binary = client.invoke_endpoint(EndpointName="raw", ContentType="text/csv", Body=b"\x93NUMPY\x00")
        assert binary["Body"].read() == b"\x93NUMPY\x00"
        client.invoke_endpoint(EndpointName="plain", ContentType="text/csv", Body=b"1")["Body"].read()
        ended = time.time()

        iris = _wait_for_lines(s3, "team/iris/", 2)
        raw = _wait_for_lines(s3, "team/raw/", 1)
    finally:
        gateway.stop()

    for key in [*iris, *raw]:
        match = KEY.match(key)
        assert match, key
        assert match["variant"] == "AllTraffic"
        hours = {f"{datetime.fromtimestamp(t, UTC):%Y/%m/%d/%H}" for t in (started, ended)}
        assert match["hour"] in hours
    records = [record for lines in iris.values() for record in lines]
    by_id = {record["eventMetadata"]["eventId"]: record for record in records}
    first = by_id[csv["ResponseMetadata"]["RequestId"]]
    assert first["captureData"] == {
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": "5.1,3.5,1.4,0.2\n",
            "encoding": "CSV",
        },
        "endpointOutput": {
            "observedContentType": "text/csv",
            "mode": "OUTPUT",
            "data": "5.1,3.5,1.4,0.2\n",
            "encoding": "CSV",
        },
    }
    assert first["eventVersion"] == "0"
    assert list(first["eventMetadata"]) == ["eventId", "inferenceId", "inferenceTime"]
    assert first["eventMetadata"]["inferenceId"] == "order-1"
    when = datetime.strptime(first["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    assert int(started) - 1 <= when.timestamp() <= ended + 1
    second = by_id[as_json["ResponseMetadata"]["RequestId"]]
    assert second["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": '{"x": 1}',
        "encoding": "JSON",
    }
    output = second["captureData"]["endpointOutput"]
    assert output["observedContentType"].startswith("application/json")  # "; charset=utf-8" kept
    assert (output["data"], output["encoding"]) == (json_answer.decode(), "JSON")
    assert list(second["eventMetadata"]) == ["eventId", "inferenceTime"]  # no InferenceId given

    ((line,),) = raw.values()
    assert line["captureData"]["endpointInput"]["encoding"] == "BASE64"  # no captureContentTypeHeader
    assert base64.b64decode(line["captureData"]["endpointInput"]["data"]) == b"\x93NUMPY\x00"
    assert _objects(s3, "team/plain/") == {}  # no dataCaptureConfig, nothing captured


def _p50_ms(client: Any, endpoint: str, calls: int, body: bytes) -> tuple[float, float]:
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        client.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=body)["Body"].read()
        latencies.append((time.perf_counter() - started) * 1e3)
    return statistics.median(latencies), max(latencies)


def test_a_dead_s3_fails_no_call_slows_none_and_is_counted(
    s3: S3, backends: dict[str, Process], tmp_path: Path
) -> None:
    routes = _routes(tmp_path / "routes.yaml", backends["b1"].url, iris=CAPTURE, plain=None)
    dead = {**s3.env(), "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"}  # nothing listens
    gateway = _gateway(tmp_path, routes, dead)
    try:
        client = runtime_client(gateway.url)
        _p50_ms(client, "plain", 20, b"1,2,3")  # warm up
        plain, captured = [], []
        for _ in range(5):  # interleaved rounds: background load hits both alike
            plain.append(_p50_ms(client, "plain", 20, b"1,2,3")[0])
            captured.append(_p50_ms(client, "iris", 20, b"1,2,3")[0])
        deadline = time.monotonic() + 15
        labels = {"endpoint": "iris", "variant": "AllTraffic", "reason": "UploadFailed"}
        while (failed := _metric(gateway, "sageport_data_capture_dropped_records_total", **labels)) < 100:
            assert time.monotonic() < deadline, f"only {failed} records counted as UploadFailed"
            time.sleep(0.2)
        written = _metric(gateway, "sageport_data_capture_records_total", endpoint="iris")
    finally:
        gateway.stop()
    assert written == 0
    # Every call answered (a failure would have raised); and not slower than without capture.
    assert statistics.median(captured) <= statistics.median(plain) + 2.0, (plain, captured)
    log = (tmp_path / "gateway.log").read_text()
    assert "not written to S3" in log
    assert s3.secret_key not in log


def test_an_s3_that_never_answers_fills_the_buffer_not_the_calls(
    s3: S3, backends: dict[str, Process], tmp_path: Path
) -> None:
    routes = _routes(tmp_path / "routes.yaml", backends["b1"].url, iris=CAPTURE)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        hanging = {**s3.env(), "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        gateway = _gateway(tmp_path, routes, hanging, "--capture-buffer-mib", "1")
        try:
            client = runtime_client(gateway.url)
            body = b"1," * 16384  # 32 KiB in, 32 KiB out: 1 MiB holds about 15 calls
            p50, slowest = _p50_ms(client, "iris", 60, body)
            labels = {"endpoint": "iris", "variant": "AllTraffic", "reason": "BufferFull"}
            full = _metric(gateway, "sageport_data_capture_dropped_records_total", **labels)
            buffered = _metric(gateway, "sageport_data_capture_buffered_bytes")
        finally:
            stopping = time.monotonic()
            code = gateway.stop(timeout=20)
            stopped_in = time.monotonic() - stopping
    assert full >= 40, full
    assert 0 < buffered <= 1 << 20
    assert slowest < 1000, f"a call took {slowest:.0f} ms while S3 hung (p50 {p50:.1f} ms)"
    assert code == 0
    assert stopped_in < 12  # the last flush is given 5 s; a hung upload does not hold the exit


@pytest.mark.fake_operator
def test_kubernetes_mode_captures_by_the_endpoint_status(
    s3: S3,
    kube_cluster: Any,
    kube_api: Any,
    namespace: str,
    crd_applied: None,  # noqa: F811 - the fixture imported above
    cluster_backend: Process,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The gateway learns capture from status.dataCaptureConfig, as the operator writes it
    (DataCaptureConfigSummary plus captureOptions and captureContentTypeHeader)."""
    operator = Operator(kube_api, namespace)
    name = "ep-" + secrets.token_hex(3)
    operator.endpoint(name, "InService", [("AllTraffic", 1.0)])
    operator.slice(name, "AllTraffic", cluster_backend.url)
    summary = {
        "enableCapture": True,
        "captureStatus": "Started",
        "currentSamplingPercentage": 100,
        "destinationS3URI": f"s3://{BUCKET}/team",
        "captureOptions": CAPTURE["captureOptions"],
        "captureContentTypeHeader": CAPTURE["captureContentTypeHeader"],
    }
    operator.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": {"dataCaptureConfig": summary}}
    )
    gateway = start_gateway(
        ["--kubernetes", "--kubeconfig", str(kube_cluster.kubeconfig), "--namespace", namespace, "--no-auth",
         "--capture-flush-seconds", "0.3"],
        log_path=tmp_path / "gateway.log",
        ready_timeout=90,
        env=s3.env(),
    )  # fmt: skip
    try:
        client = runtime_client(gateway.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                response = client.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2")
                break
            except client.exceptions.ClientError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response["Body"].read() == b"1,2"
        ((key, (line,)),) = _wait_for_lines(s3, f"team/{name}/", 1).items()
    finally:
        gateway.stop()
    assert KEY.match(key)
    assert line["eventMetadata"]["eventId"] == response["ResponseMetadata"]["RequestId"]
    assert line["captureData"]["endpointInput"]["data"] == "1,2"
    assert line["captureData"]["endpointOutput"]["encoding"] == "CSV"
