"""AWS's own serving stack, unchanged, as a bring-your-own container on the real node: an image
built from PyPI's sagemaker-inference and multi-model-server (Java from Debian) with the handler in
examples/aws-inference-toolkit/container, run as root in a namespace whose Pod Security is baseline,
called through the gateway with plain boto3."""

from __future__ import annotations

import io
import json
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from sageport_dev import images, real_node, stack
from tests.e2e.conftest import Deployed

pytestmark = pytest.mark.timeout(900)

EXAMPLE = stack.REPO / "examples" / "aws-inference-toolkit"
ENFORCE = "pod-security.kubernetes.io/enforce"


def linear_model(coef: list[float], intercept: float) -> bytes:
    """model.tar.gz of the example handler's model: model.json at the archive's root."""
    data = json.dumps({"coef": coef, "intercept": intercept}).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


@pytest.fixture(scope="module")
def mms_image(deployed: Deployed) -> str:
    """The aws-mms image, built when this module runs (cached by its inputs) and imported."""
    started = time.monotonic()
    ref = images.ensure_mms_image(log=lambda _: None)
    paths = real_node.NodePaths(deployed.layout)
    images.import_image(paths.containerd_socket, ref, images.image_tar(ref), log=lambda _: None)
    print(f"aws-mms image ready and imported in {time.monotonic() - started:.1f} s: {ref}")
    return ref


def _objects(directory: str, image: str) -> list[dict[str, Any]]:
    objects = stack.example_objects(EXAMPLE / directory)
    for obj in objects:
        if obj["kind"] == "Model":
            obj["spec"]["primaryContainer"]["image"] = image
    return objects


def _baseline(deployed: Deployed, ns: str) -> None:
    deployed.kubectl("label", "namespace", ns, f"{ENFORCE}=baseline", "--overwrite")


def test_the_toolkit_container_serves_a_single_model_as_root_in_a_baseline_namespace(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], mms_image: str
) -> None:
    ns, key = namespace
    deployed.s3.put("sageport-models", "aws-toolkit/linear.tar.gz", linear_model([2.0, 3.0], 1.0))
    _baseline(deployed, ns)
    stack.apply_objects(deployed.kubeconfig, ns, _objects("single-model", mms_image))
    started = time.monotonic()
    deployed.wait_ready(ns, "aws-toolkit-linear", 300)
    print(f"aws-mms single model: Endpoint Ready {time.monotonic() - started:.1f} s after apply")
    pod = json.loads(
        deployed.kubectl(
            "get", "pods", "-n", ns, "-l", "sageport.io/endpoint-object=aws-toolkit-linear", "-o", "json"
        )
    )["items"][0]
    model = next(c for c in pod["spec"]["containers"] if c["name"] == "model")
    assert model["securityContext"]["runAsUser"] == 0  # MMS runs as root, as in AWS's images

    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    answer = runtime.invoke_endpoint(
        EndpointName="aws-toolkit-linear", ContentType="application/json", Body=b"[[1, 1], [2, 0]]"
    )
    assert json.loads(answer["Body"].read()) == [6.0, 5.0]
    assert answer["ContentType"] == "application/json"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    csv = runtime.invoke_endpoint(
        EndpointName="aws-toolkit-linear", ContentType="text/csv", Accept="text/csv", Body=b"1,1\n0,0\n"
    )
    assert csv["Body"].read().decode().split() == ["6.0", "1.0"]

    # The toolkit's own error (a 500 from its handler) reaches boto3 as SageMaker's ModelError.
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName="aws-toolkit-linear", ContentType="application/json", Body=b"[[1, 2, 3]]"
        )
    error = raised.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ModelError", 424)
    assert error["OriginalStatusCode"] == 500
    assert "matmul" in error["Error"]["Message"]


def _target(runtime: Any, target: str, x: float) -> float:
    answer = runtime.invoke_endpoint(
        EndpointName="aws-toolkit-mme", TargetModel=target, ContentType="application/json", Body=f"[[{x}]]"
    )
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    (value,) = json.loads(answer["Body"].read())
    return float(value)


def test_the_toolkit_container_serves_many_models_loaded_by_the_router(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], mms_image: str
) -> None:
    ns, key = namespace
    keys = [f"team-{i % 2}/m{i}.tar.gz" for i in range(6)]
    for i, name in enumerate(keys):
        deployed.s3.put("sageport-models", f"aws-toolkit-mme/{name}", linear_model([1.0], 100.0 * i))
    _baseline(deployed, ns)
    stack.apply_objects(deployed.kubeconfig, ns, _objects("multi-model", mms_image))
    deployed.wait_ready(ns, "aws-toolkit-mme", 300)
    endpoint = deployed.get("endpoints.sageport.io", "aws-toolkit-mme", ns)
    assert endpoint is not None
    assert endpoint["status"]["productionVariants"][0]["multiModel"] is True

    runtime = stack.runtime_client(deployed.gateway_url, key)  # boto3's retries: 429 ModelNotReady
    started = time.monotonic()
    assert _target(runtime, keys[0], 1.0) == 1.0
    print(f"aws-mms multi-model: first call (download, LoadModel, invoke) {time.monotonic() - started:.2f} s")
    started = time.monotonic()
    assert _target(runtime, keys[0], 2.0) == 2.0
    print(f"aws-mms multi-model: warm call {time.monotonic() - started:.3f} s")
    # Concurrent first calls of the other models: each downloaded and loaded once, all answered.
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _target(runtime, keys[i % 6], 1.0), range(1, 25)))
    assert answers == [100.0 * (i % 6) + 1.0 for i in range(1, 25)]
    # The container's own list of what it holds (MMS' ListModels), seen from the router's pod.
    pod = json.loads(
        deployed.kubectl(
            "get", "pods", "-n", ns, "-l", "sageport.io/endpoint-object=aws-toolkit-mme", "-o", "json"
        )
    )["items"][0]
    listed = deployed.kubectl(
        "exec",
        "-n",
        ns,
        pod["metadata"]["name"],
        "-c",
        "sageport-router",
        "--",
        "python",
        "-c",
        "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:23000/models').read().decode())",
    )
    assert len(json.loads(listed)["models"]) == 6

    # Added by uploading, with the endpoint in service.
    deployed.s3.put("sageport-models", "aws-toolkit-mme/late.tar.gz", linear_model([2.0], -5.0))
    assert _target(runtime, "late.tar.gz", 1.0) == -3.0

    with pytest.raises(ClientError) as raised:
        _target(runtime, "team-0/absent.tar.gz", 1.0)
    error = raised.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ValidationError", 400)
    assert (
        "Failed to download model data(bucket: sageport-models, key: aws-toolkit-mme/team-0/absent.tar.gz)"
        in (error["Error"]["Message"])
    )
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="aws-toolkit-mme", ContentType="application/json", Body=b"[[1]]")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
