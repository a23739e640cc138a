"""Serial pipeline instances as their pods run them: for each instance a real sageport-router
process in pipeline mode (first stage beside it, further stages at the addresses of its stages
file), behind the real gateway in standalone mode, called with boto3. Stages are the test
backend (it echoes the body and names itself in CustomAttributes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml

from tests.integration.gateway.support import (
    Process,
    runtime_client,
    start_backend,
    start_gateway,
    start_router,
)


def _address(process: Process) -> str:
    return process.url.removeprefix("http://")


@pytest.fixture(scope="module")
def stages() -> Iterator[dict[str, Process]]:
    started = {name: start_backend(name) for name in ("pre1", "mid1", "post1", "pre2", "mid2", "post2")}
    yield started
    for process in started.values():
        process.stop()


@pytest.fixture(scope="module")
def instances(stages: dict[str, Process], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    """Two instances; instance 1's stages file can be rewritten by a test (the operator's job)."""
    directory = tmp_path_factory.mktemp("pipeline")
    made = []
    for n in (1, 2):
        file = directory / f"stages-{n}"
        file.write_text(f"mid={_address(stages[f'mid{n}'])},post={_address(stages[f'post{n}'])}")
        router = start_router(
            {"pre": stages[f"pre{n}"].url},
            "--stage=mid",
            "--stage=post",
            f"--stages-file={file}",
            "--endpoint=pipe",
            "--variant=AllTraffic",
        )
        made.append((router, file))
    yield made
    for router, _ in made:
        router.stop()


@pytest.fixture(scope="module")
def client(instances: list[Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("pipeline-gateway")
    variant = {"name": "AllTraffic", "backends": [router.url for router, _ in instances]}
    (directory / "routes.yaml").write_text(yaml.safe_dump({"endpoints": {"pipe": {"variants": [variant]}}}))
    gateway = start_gateway(
        ["--routes", str(directory / "routes.yaml"), "--no-auth"], log_path=directory / "log"
    )
    yield runtime_client(gateway.url)
    gateway.stop()


def test_the_call_goes_through_every_stage_raw(client: Any) -> None:
    seen = set()
    for _ in range(8):
        response = client.invoke_endpoint(
            EndpointName="pipe", Body=b"\x00raw\xff", ContentType="application/x-thing"
        )
        assert response["Body"].read() == b"\x00raw\xff"
        assert response["ContentType"] == "application/x-thing"
        seen.add(response["CustomAttributes"])  # the last stage's answer
    assert seen == {"backend=post1", "backend=post2"}


def test_a_failing_stage_is_a_model_error_naming_it(client: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.invoke_endpoint(EndpointName="pipe", Body=b"x", CustomAttributes="mode=status:500")
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "(500) from pre with" in error["Error"]["Message"]  # the first stage failed first
    assert error["OriginalMessage"].endswith("failed with 500")


def test_target_container_hostname_is_refused_on_a_pipeline(client: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.invoke_endpoint(EndpointName="pipe", Body=b"x", TargetContainerHostname="mid")
    assert raised.value.response["Error"]["Code"] == "ValidationError"


def test_an_instance_missing_a_stage_sends_its_calls_to_the_other(
    client: Any, instances: list[Any], stages: dict[str, Process]
) -> None:
    _, file = instances[0]
    good = file.read_text()
    file.write_text(f"mid={_address(stages['mid1'])},post=127.0.0.1:1")  # post1 died: nothing there
    try:
        time.sleep(1.2)  # the router reads its stages file again every 0.5 s
        answers = {
            client.invoke_endpoint(EndpointName="pipe", Body=b"x")["CustomAttributes"] for _ in range(12)
        }
        assert answers == {"backend=post2"}  # every call succeeded, on the whole instance
    finally:
        Path(file).write_text(good)
