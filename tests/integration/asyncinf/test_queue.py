"""Asynchronous inference on this machine, every part real: boto3 ``invoke_endpoint_async`` -> the
gateway (standalone, a routes file with asyncInferenceConfig) -> a real redis-server (Debian's,
AOF everysec, a password) -> the agent (``sageport-async-agent``) -> a model container (the test
backend) -> results in a real S3 server (versitygw); notifications to a real webhook.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from sageport import contract
from sageport.asyncinf.request import AsyncRequest
from sageport_dev import redis as redis_server
from sageport_dev.processes import eventually, free_port, wait_http
from tests.integration.gateway.support import Process, runtime_client, start_backend, start_gateway
from tests.support.s3 import S3, versitygw

BUCKET = "async"
ENDPOINT = "queued"
IDLE = "idle"
AGENT_COMMAND = [str(Path(sys.executable).with_name(contract.ASYNC_AGENT_NAME))]
STREAM = contract.async_stream("default", ENDPOINT, "AllTraffic")  # a standalone gateway's namespace


class Webhook:
    """An http topic: answers 500 to the first ``failures`` POSTs of each call, then 200, and keeps
    every accepted notification."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[str, int] = {}
        self.accepted: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen = hook.attempts[message["inferenceId"]] = (
                    hook.attempts.get(message["inferenceId"], 0) + 1
                )
                ok = seen > hook.failures
                if ok:
                    hook.accepted.append(message)
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with versitygw(tmp_path_factory.mktemp("s3")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_server.RedisServer]:
    root = tmp_path_factory.mktemp("redis")
    server = redis_server.start(root, host="127.0.0.1", port=free_port(), die_with_parent=True)
    yield server
    redis_server.stop_server(root)


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook(failures=2)
    yield hook
    hook.server.shutdown()


@pytest.fixture(scope="module")
def model() -> Iterator[Process]:
    backend = start_backend("model", "--max-body-mib", "512")
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, redis: redis_server.RedisServer, model: Process
) -> Iterator[Process]:
    directory = tmp_path_factory.mktemp("gateway")
    routes = directory / "routes.yaml"
    output = {"s3OutputPath": f"s3://{BUCKET}/out", "s3FailurePath": f"s3://{BUCKET}/failed/"}
    routes.write_text(
        yaml.safe_dump(
            {
                "endpoints": {
                    ENDPOINT: {
                        "variants": [{"name": "AllTraffic", "backends": [model.url]}],
                        "asyncInferenceConfig": {"outputConfig": output},
                    },
                    "realtime": {"variants": [{"name": "AllTraffic", "backends": [model.url]}]},
                    IDLE: {  # no instance: its calls wait
                        "variants": [{"name": "AllTraffic", "backends": []}],
                        "asyncInferenceConfig": {"outputConfig": output},
                    },
                }
            }
        )
    )
    process = start_gateway(
        ["--routes", str(routes), "--no-auth"], directory / "gateway.log", env=redis.env()
    )
    yield process
    process.stop()


def start_agent(
    redis: redis_server.RedisServer, s3: S3, model: Process, log: Path, *extra: str, consumer: str = "pod-1"
) -> Process:
    port = free_port()
    popen = subprocess.Popen(
        [
            *AGENT_COMMAND,
            f"--stream={STREAM}",
            f"--endpoint={ENDPOINT}",
            "--variant=AllTraffic",
            f"--model-url={model.url}",
            f"--consumer={consumer}",
            f"--metrics-port={port}",
            "--reclaim-idle=3",
            "--heartbeat=1",
            *extra,
        ],
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **redis.env(), **s3.env(), "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ping", popen, timeout=20)
    return Process(popen, url)


@pytest.fixture
def agent(
    redis: redis_server.RedisServer, s3: S3, model: Process, webhook: Webhook, tmp_path: Path
) -> Iterator[Process]:
    process = start_agent(
        redis, s3, model, tmp_path / "agent.log", "--concurrency=8",
        f"--success-topic={webhook.url}", f"--error-topic={webhook.url}",
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def client(gateway: Process) -> Any:
    return runtime_client(gateway.url)


def _get(s3: S3, uri: str) -> tuple[bytes, str] | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        answer = s3.client().get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return answer["Body"].read(), answer["ContentType"]


def _result(s3: S3, response: dict[str, Any], timeout: float = 30.0) -> tuple[str, bytes, str]:
    """The SDK's AsyncPredictor pattern: poll OutputLocation and FailureLocation until one exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kind, uri in (("output", response["OutputLocation"]), ("failure", response["FailureLocation"])):
            found = _get(s3, uri)
            if found is not None:
                return kind, *found
        time.sleep(0.2)
    raise AssertionError(f"no result for {response['InferenceId']} after {timeout} s")


def _metric(agent: Process, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(agent.url + "/metrics") as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + "_total{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_calls_land_as_outputs_with_the_models_content_type_and_one_notification_each(
    client: Any, s3: S3, agent: Process, webhook: Webhook
) -> None:
    inputs = {}
    for i in range(20):
        key = f"in/{i}.csv"
        s3.client().put_object(Bucket=BUCKET, Key=key, Body=f"{i},{i * 2}".encode())
        inputs[key] = f"{i},{i * 2}".encode()
    responses = [
        (body, client.invoke_endpoint_async(EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/{key}",
                                            ContentType="text/csv", Accept="text/csv"))
        for key, body in inputs.items()
    ]  # fmt: skip
    inline = client.invoke_endpoint_async(
        EndpointName=ENDPOINT,
        Body=b'{"inline": true}',
        ContentType="application/json",
        InferenceId="inline-1",
    )
    ids = {response["InferenceId"] for _, response in responses}
    assert len(ids) == 20  # generated, unique
    for body, response in responses:
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert response["OutputLocation"] == f"s3://{BUCKET}/out/{response['InferenceId']}.out"
        assert response["FailureLocation"] == f"s3://{BUCKET}/failed/{response['InferenceId']}-error.out"
        assert _result(s3, response) == ("output", body, "text/csv")  # the echo model's answer
    assert inline["InferenceId"] == "inline-1"
    assert _result(s3, inline) == ("output", b'{"inline": true}', "application/json")
    # The webhook failed every call's first two POSTs: each still got exactly one notification.
    eventually(lambda: len(webhook.accepted) >= 21, timeout=30)
    time.sleep(1)
    done = [m for m in webhook.accepted if m["inferenceId"] in ids | {"inline-1"}]
    assert sorted(m["inferenceId"] for m in done) == sorted(ids | {"inline-1"})
    sample = next(m for m in done if m["inferenceId"] == responses[0][1]["InferenceId"])
    assert sample["invocationStatus"] == "Completed"
    assert sample["eventName"] == "InferenceResult"
    assert sample["requestParameters"] == {
        "endpointName": ENDPOINT, "contentType": "text/csv", "inputLocation": f"s3://{BUCKET}/in/0.csv",
    }  # fmt: skip
    assert sample["responseParameters"] == {
        "outputLocation": responses[0][1]["OutputLocation"], "contentType": "text/csv",
    }  # fmt: skip
    assert _metric(agent, "sageport_async_invocations_processed") >= 21


def test_model_errors_and_missing_inputs_end_in_failure_objects(
    client: Any, s3: S3, agent: Process, webhook: Webhook
) -> None:
    s3.client().put_object(Bucket=BUCKET, Key="in/bad.csv", Body=b"not,a,row")
    failing = client.invoke_endpoint_async(
        EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/in/bad.csv", CustomAttributes="mode=status:400"
    )
    kind, body, _ = _result(s3, failing)
    assert (kind, body) == ("failure", b"model failed with 400")  # the model's own message
    missing = client.invoke_endpoint_async(
        EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/in/nothing.csv"
    )
    kind, body, _ = _result(s3, missing)
    assert kind == "failure"
    assert f"s3://{BUCKET}/in/nothing.csv could not be read".encode() in body
    eventually(
        lambda: (
            {failing["InferenceId"], missing["InferenceId"]} <= {m["inferenceId"] for m in webhook.accepted}
        )
    )
    message = next(m for m in webhook.accepted if m["inferenceId"] == failing["InferenceId"])
    assert message["invocationStatus"] == "Failed"
    assert message["responseParameters"] == {"failureLocation": failing["FailureLocation"]}
    assert "Received client error (400)" in message["failureReason"]


def test_a_call_that_waited_beyond_its_ttl_fails_as_expired_and_is_counted(
    redis: redis_server.RedisServer, s3: S3, agent: Process
) -> None:
    # Playing the gateway for one record, received two minutes ago with a 60 s TTL.
    stale = AsyncRequest(
        inference_id="stale-1",
        output_location=f"s3://{BUCKET}/out/stale-1.out",
        failure_location=f"s3://{BUCKET}/failed/stale-1-error.out",
        received_ms=int(time.time() * 1000) - 120_000,
        ttl_seconds=60,
        body=b"1,2",
    )
    redis.client().xadd(STREAM, stale.to_fields())
    kind, body, _ = _result(s3, {"InferenceId": "stale-1", "OutputLocation": stale.output_location,
                                 "FailureLocation": stale.failure_location})  # fmt: skip
    assert kind == "failure"
    assert b"RequestTTLSeconds (60)" in body
    assert _metric(agent, "sageport_async_expired_requests") == 1


def test_sync_calls_to_an_async_endpoint_and_bad_requests_are_validation_errors(gateway: Process) -> None:
    client = runtime_client(gateway.url)
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"1")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "asynchronous endpoint" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        client.invoke_endpoint_async(EndpointName="realtime", InputLocation="s3://b/k")
    assert "not an asynchronous endpoint" in caught.value.response["Error"]["Message"]
    # What boto3 would refuse itself, sent anyway: the gateway names the member.
    import boto3

    raw = boto3.client(
        "sagemaker-runtime", endpoint_url=gateway.url, region_name="us-east-1", aws_access_key_id="a",
        aws_secret_access_key="b", config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )  # fmt: skip
    for arguments, named in (
        ({"InputLocation": "s3://b/k", "Body": b"1"}, "mutually exclusive"),
        ({}, "Either Body or InputLocation"),
        ({"InputLocation": "https://b/k"}, "'inputLocation'"),
        ({"InputLocation": "s3://b/k", "RequestTTLSeconds": 30}, "'requestTTLSeconds'"),
        ({"InputLocation": "s3://b/k", "InvocationTimeoutSeconds": 3601}, "'invocationTimeoutSeconds'"),
    ):
        with pytest.raises(ClientError) as caught:
            raw.invoke_endpoint_async(EndpointName=ENDPOINT, **arguments)
        assert caught.value.response["Error"]["Code"] == "ValidationError", arguments
        assert named in caught.value.response["Error"]["Message"], arguments


def test_a_call_held_by_an_agent_killed_mid_call_is_reclaimed_and_answered_once(
    redis: redis_server.RedisServer, s3: S3, model: Process, client: Any, tmp_path: Path
) -> None:
    first = start_agent(redis, s3, model, tmp_path / "first.log", consumer="doomed")
    response = client.invoke_endpoint_async(
        EndpointName=ENDPOINT, Body=b"slow", CustomAttributes="mode=sleep:2", InferenceId="reclaimed-1"
    )
    eventually(lambda: redis.client().xpending(STREAM, contract.ASYNC_GROUP)["pending"] == 1, timeout=10)
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait()
    second = start_agent(redis, s3, model, tmp_path / "second.log", consumer="heir")
    try:
        assert _result(s3, response, timeout=30) == ("output", b"slow", "application/octet-stream")
        eventually(lambda: redis.client().xpending(STREAM, contract.ASYNC_GROUP)["pending"] == 0, timeout=10)
        assert _get(s3, response["FailureLocation"]) is None  # one result, never two
        assert "reclaimed entry" in (tmp_path / "second.log").read_text()
    finally:
        second.stop()


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_large_input_streams_through_the_agent_in_bounded_memory(
    redis: redis_server.RedisServer, s3: S3, model: Process, client: Any, tmp_path: Path
) -> None:
    size = 256 << 20
    source = tmp_path / "large.bin"
    with source.open("wb") as out:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            out.write(block)
    s3.client().upload_file(str(source), BUCKET, "in/large.bin")
    agent = start_agent(redis, s3, model, tmp_path / "agent.log", consumer="large")
    try:
        idle = _rss_kib(agent.popen.pid, "VmRSS")
        started = time.monotonic()
        response = client.invoke_endpoint_async(
            EndpointName=ENDPOINT, InputLocation=f"s3://{BUCKET}/in/large.bin"
        )
        deadline = time.monotonic() + 120
        while _get_head(s3, response["OutputLocation"]) is None:
            assert time.monotonic() < deadline, "no output for the large input after 120 s"
            time.sleep(0.5)
        seconds = time.monotonic() - started
        peak = _rss_kib(agent.popen.pid, "VmHWM")
        size_out = _get_head(s3, response["OutputLocation"])
        assert size_out == size  # the echo model's answer: the whole input, back
        grew_mib = (peak - idle) / 1024
        print(
            f"\n256 MiB through the agent in {seconds:.1f} s; peak RSS {peak / 1024:.0f} MiB, {grew_mib:.0f} MiB over idle"
        )
        assert grew_mib < 100, f"the agent's RSS grew {grew_mib:.0f} MiB for a 256 MiB input"
    finally:
        agent.stop()


def _get_head(s3: S3, uri: str) -> int | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return int(s3.client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError:
        return None


def test_the_gateway_reports_the_backlog_with_sagemakers_metrics(gateway: Process, client: Any) -> None:
    import urllib.request

    for _ in range(3):
        client.invoke_endpoint_async(EndpointName=IDLE, Body=b"1,2")

    def gauges() -> dict[str, float] | None:
        with urllib.request.urlopen(gateway.url + "/metrics") as answer:
            lines = answer.read().decode().splitlines()
        found = {
            line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in lines
            if line.startswith("sageport_async_") and f'endpoint="{IDLE}"' in line
        }
        return found if found.get("sageport_async_backlog_size") == 3 else None

    found = eventually(gauges, timeout=20)
    assert found["sageport_async_has_backlog_without_capacity"] == 1
    assert found["sageport_async_backlog_size_per_instance"] == 3
    assert found["sageport_async_age_of_oldest_request_seconds"] > 0


def test_redis_killed_mid_stream_and_restarted_loses_no_accepted_call(
    redis: redis_server.RedisServer, s3: S3, client: Any, agent: Process
) -> None:
    accepted = []
    for index in range(30):
        accepted.append(
            client.invoke_endpoint_async(
                EndpointName=ENDPOINT, Body=f"row {index}".encode(), CustomAttributes="mode=sleep:0.1"
            )
        )
        if index == 14:
            assert redis.process is not None
            os.kill(redis.process.pid, signal.SIGKILL)  # mid-stream: half the calls queued
            eventually(lambda: not redis.process.alive(), timeout=10)  # type: ignore[union-attr]
            restarted = redis_server.start(redis.root, host=redis.host, port=redis.port, die_with_parent=True)
            assert restarted.password == redis.password
    results = {response["InferenceId"]: _result(s3, response, timeout=60) for response in accepted}
    for index, response in enumerate(accepted):
        assert results[response["InferenceId"]] == (
            "output",
            f"row {index}".encode(),
            "application/octet-stream",
        )
        assert _get(s3, response["FailureLocation"]) is None


class HangingWebhook(Webhook):
    """A topic whose first POST of each call hangs ``hang`` seconds and then fails: the agent is
    caught after writing the result and before its notification was accepted."""

    def __init__(self, hang: float) -> None:
        super().__init__(failures=0)
        self.first_posts: set[str] = set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                call = message["inferenceId"]
                first = call not in hook.first_posts
                hook.first_posts.add(call)
                if first:
                    time.sleep(hang)
                else:
                    hook.accepted.append(message)
                self.send_response(500 if first else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server.shutdown()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_an_agent_killed_between_the_result_and_its_notification_leaves_one_result_and_one_notification(
    redis: redis_server.RedisServer, s3: S3, model: Process, client: Any, tmp_path: Path
) -> None:
    import urllib.request

    def invocations_seen() -> int:
        with urllib.request.urlopen(model.url + "/seen") as answer:
            return int(answer.read())

    hook = HangingWebhook(hang=30)
    topics = (f"--success-topic={hook.url}", f"--error-topic={hook.url}")
    first = start_agent(redis, s3, model, tmp_path / "first.log", *topics, consumer="dies-notifying")
    seen = invocations_seen()
    response = client.invoke_endpoint_async(EndpointName=ENDPOINT, Body=b"once", InferenceId="notify-once-1")
    eventually(lambda: "notify-once-1" in hook.first_posts, timeout=20)  # written, now notifying
    written = s3.client().head_object(Bucket=BUCKET, Key="out/notify-once-1.out")
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait()
    assert hook.accepted == []
    heir = start_agent(redis, s3, model, tmp_path / "heir.log", *topics, consumer="heir-notifying")
    try:
        eventually(lambda: any(m["inferenceId"] == "notify-once-1" for m in hook.accepted), timeout=30)
        eventually(lambda: redis.client().xpending(STREAM, contract.ASYNC_GROUP)["pending"] == 0, timeout=10)
        time.sleep(2)  # room for a second notification, were one coming
        assert [m["inferenceId"] for m in hook.accepted] == ["notify-once-1"]
        assert hook.accepted[0]["invocationStatus"] == "Completed"
        assert hook.accepted[0]["responseParameters"]["outputLocation"] == response["OutputLocation"]
        after = s3.client().head_object(Bucket=BUCKET, Key="out/notify-once-1.out")
        assert (after["ETag"], after["LastModified"]) == (written["ETag"], written["LastModified"])
        assert _result(s3, response) == ("output", b"once", "application/octet-stream")
        assert invocations_seen() == seen + 1  # the model ran the call once
    finally:
        heir.stop()
        hook.server.shutdown()


def test_a_failure_answered_before_its_agent_died_is_notified_with_its_reason(
    redis: redis_server.RedisServer, s3: S3, model: Process, client: Any, tmp_path: Path
) -> None:
    hook = HangingWebhook(hang=30)
    topics = (f"--success-topic={hook.url}", f"--error-topic={hook.url}")
    first = start_agent(redis, s3, model, tmp_path / "first.log", *topics, consumer="dies-failing")
    response = client.invoke_endpoint_async(
        EndpointName=ENDPOINT, Body=b"x", CustomAttributes="mode=status:422", InferenceId="notify-once-2"
    )
    eventually(lambda: "notify-once-2" in hook.first_posts, timeout=20)
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait()
    heir = start_agent(redis, s3, model, tmp_path / "heir.log", *topics, consumer="heir-failing")
    try:
        eventually(lambda: any(m["inferenceId"] == "notify-once-2" for m in hook.accepted), timeout=30)
        (message,) = [m for m in hook.accepted if m["inferenceId"] == "notify-once-2"]
        assert message["invocationStatus"] == "Failed"
        assert message["failureReason"] == (
            'ClientError: Received client error (422) from model with message "model failed with 422".'
        )
        assert message["responseParameters"] == {"failureLocation": response["FailureLocation"]}
    finally:
        heir.stop()
        hook.server.shutdown()


class ReplyDroppingProxy:
    """A TCP proxy in front of Redis that, once armed, forwards the next script call (EVALSHA or
    EVAL) and then closes the client's connection instead of relaying Redis' reply: the call was
    done, and the client, seeing its connection broken, retries it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.armed = False
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            state = {"drop_reply": False}
            threading.Thread(target=self._requests, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, state), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.armed and (b"EVALSHA" in data.upper() or b"\r\nEVAL\r\n" in data.upper()):
                    self.armed = False
                    state["drop_reply"] = True
                server.sendall(data)

    def _replies(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if state["drop_reply"]:
                    self.dropped += 1
                    break
                client.sendall(data)
        for end in (client, server):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def test_a_queue_write_retried_after_a_lost_reply_queues_the_call_once(
    redis: redis_server.RedisServer, model: Process, tmp_path: Path
) -> None:
    proxy = ReplyDroppingProxy((redis.host, redis.port))
    routes = tmp_path / "routes.yaml"
    output = {"s3OutputPath": f"s3://{BUCKET}/once-out", "s3FailurePath": f"s3://{BUCKET}/once-failed"}
    routes.write_text(yaml.safe_dump({"endpoints": {"once": {
        "variants": [{"name": "AllTraffic", "backends": [model.url]}],  # no agent: calls stay queued
        "asyncInferenceConfig": {"outputConfig": output},
    }}}))  # fmt: skip
    env = {**redis.env(), contract.REDIS_URL_ENV: f"redis://127.0.0.1:{proxy.port}/0"}
    gateway = start_gateway(["--routes", str(routes), "--no-auth"], tmp_path / "gateway.log", env=env)
    stream = contract.async_stream("default", "once", "AllTraffic")
    try:
        client = runtime_client(gateway.url)
        client.invoke_endpoint_async(EndpointName="once", Body=b"warm", InferenceId="once-warm")
        proxy.armed = True
        response = client.invoke_endpoint_async(EndpointName="once", Body=b"1,2", InferenceId="once-1")
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert proxy.dropped == 1  # Redis ran the append; its reply never reached the gateway
        # A caller retrying with its own InferenceId is not queued twice either.
        client.invoke_endpoint_async(EndpointName="once", Body=b"1,2", InferenceId="once-1")
        calls = [fields[contract.ASYNC_ID_FIELD.encode()] for _, fields in redis.client().xrange(stream)]
        assert calls == [b"once-warm", b"once-1"]
    finally:
        gateway.stop()
        proxy.listener.close()


def test_notifications_include_the_answer_up_to_128_kb_when_configured(
    redis: redis_server.RedisServer, s3: S3, model: Process, client: Any, tmp_path: Path
) -> None:
    hook = Webhook(failures=0)
    agent = start_agent(
        redis, s3, model, tmp_path / "agent.log", f"--success-topic={hook.url}", f"--error-topic={hook.url}",
        "--include-response-in=success", "--include-response-in=error", consumer="includes",
    )  # fmt: skip
    try:
        calls = {
            "include-ok": {"Body": b"5.1,3.5", "ContentType": "text/csv"},
            "include-failed": {"Body": b"x", "CustomAttributes": "mode=status:400"},
            "include-large": {"Body": b"x", "CustomAttributes": f"mode=big:{128 * 1024 + 1}"},
        }
        for name, arguments in calls.items():
            client.invoke_endpoint_async(EndpointName=ENDPOINT, InferenceId=name, **arguments)
        eventually(lambda: set(calls) <= {m["inferenceId"] for m in hook.accepted}, timeout=30)
        messages = {m["inferenceId"]: m for m in hook.accepted}
        assert messages["include-ok"]["responseParameters"]["responseBody"] == {
            "content": "5.1,3.5", "encoding": "UTF-8",
        }  # fmt: skip
        assert messages["include-failed"]["responseParameters"]["responseBody"] == {
            "content": "model failed with 400", "encoding": "UTF-8",
        }  # fmt: skip
        assert "responseBody" not in messages["include-large"]["responseParameters"]  # only in S3
        assert _get_head(s3, f"s3://{BUCKET}/out/include-large.out") == 128 * 1024 + 1
    finally:
        agent.stop()
        hook.server.shutdown()


def test_a_stopping_agent_hands_back_the_calls_it_had_not_started(
    redis: redis_server.RedisServer, s3: S3, model: Process, client: Any, tmp_path: Path
) -> None:
    """SIGTERM (a pod deleted): the call at the model is finished, the one taken and waiting for
    a model slot is handed back, and another agent runs it at its next reclaim pass, not after
    the whole reclaim idle time (30 s here)."""
    slow = ("--reclaim-idle=30", "--concurrency=1")
    first = start_agent(redis, s3, model, tmp_path / "first.log", *slow, consumer="stopping")
    running = client.invoke_endpoint_async(
        EndpointName=ENDPOINT, Body=b"running", CustomAttributes="mode=sleep:3", InferenceId="handback-1"
    )
    waiting = client.invoke_endpoint_async(EndpointName=ENDPOINT, Body=b"waiting", InferenceId="handback-2")
    eventually(lambda: redis.client().xpending(STREAM, contract.ASYNC_GROUP)["pending"] == 2, timeout=10)
    first.popen.send_signal(signal.SIGTERM)
    assert first.popen.wait(timeout=20) == 0
    stopped = time.monotonic()
    assert _result(s3, running, timeout=1) == ("output", b"running", "application/octet-stream")
    assert _get(s3, waiting["OutputLocation"]) is None  # not run by the stopping agent
    heir = start_agent(redis, s3, model, tmp_path / "heir.log", *slow, consumer="heir-handback")
    try:
        assert _result(s3, waiting, timeout=20) == ("output", b"waiting", "application/octet-stream")
        assert time.monotonic() - stopped < 20  # 30 s of reclaim idle were not waited
        assert _get(s3, waiting["FailureLocation"]) is None
    finally:
        heir.stop()
