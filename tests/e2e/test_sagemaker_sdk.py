"""The SageMaker Python SDK on real pods, with nothing but what `make up` exports: the examples in
examples/sagemaker-sdk run as a user runs them (their own process, a clean environment plus the
export lines), deploy SageMaker's scikit-learn image through the control-plane API, predict
through the gateway with the SDK's serializers, and delete."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import pytest

from sageport import contract
from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed
from tests.e2e.test_local_stack import _clean_environ

pytestmark = pytest.mark.timeout(600)

EXAMPLE = stack.REPO / "examples" / "sagemaker-sdk"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def _run_example(deployed: Deployed, script: str, *args: str) -> dict[str, Any]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / script), *args],
        capture_output=True, text=True, timeout=420, check=False,
        env={**_clean_environ(), **deployed.env.environ(), "SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    print(f"{script}: {time.monotonic() - started:.1f} s")
    last = result.stdout.strip().splitlines()[-1]
    report: dict[str, Any] = json.loads(last[last.index("{") :])
    return report


def _sagemaker(deployed: Deployed) -> Any:
    env = deployed.env
    return boto3.client(
        "sagemaker", endpoint_url=env.runtime_url, region_name=env.region,
        aws_access_key_id=env.access_key_id, aws_secret_access_key=env.secret_access_key,
    )  # fmt: skip


def _runtime_image(deployed: Deployed) -> str:
    return next(image for image in deployed.env.images if "/runtime:" in image)


def test_sdk_model_deploy_predict_and_delete(deployed: Deployed) -> None:
    ns = deployed.env.namespace
    report = _run_example(deployed, "deploy.py", "--endpoint-name", "iris-sdk")
    assert report["image"] == SKLEARN  # what sagemaker.image_uris.retrieve("sklearn", ...) gave
    assert report["predict"] == [0, 2]  # Predictor.predict: CSVSerializer in, JSONDeserializer out
    assert report["sagemaker_core"] == {"status": "InService", "invoke": [0]}
    (image,) = report["deployed_images"]  # DescribeEndpoint, in botocore's shape
    assert (image["SpecifiedImage"], image["ResolvedImage"]) == (SKLEARN, _runtime_image(deployed))
    assert report["deleted"]
    with pytest.raises(botocore.exceptions.ClientError, match="Could not find endpoint"):
        _sagemaker(deployed).describe_endpoint(EndpointName="iris-sdk")
    with pytest.raises(botocore.exceptions.ClientError, match="Could not find model"):
        _sagemaker(deployed).describe_model(ModelName=report["model"])
    ours = f"{contract.LABEL_ENDPOINT}=iris-sdk"
    eventually(lambda: not deployed.kubectl("get", "deployments", "-n", ns, "-l", ours, "-o", "name").strip(),
               60, what="the endpoint's Deployments garbage-collected")  # fmt: skip


def test_sdk_framework_model_in_script_mode(deployed: Deployed) -> None:
    """SKLearnModel(entry_point=...): the SDK uploads sourcedir.tar.gz to its default bucket (the
    stack's, from the SDK config `make up` points at) and sets SAGEMAKER_PROGRAM and
    SAGEMAKER_SUBMIT_DIRECTORY; the pod fetches the code into /opt/ml/code and runs its predict_fn."""
    ns = deployed.env.namespace
    report = _run_example(deployed, "script_mode.py", "--endpoint-name", "iris-script", "--keep")
    try:
        env = report["environment"]
        assert env["SAGEMAKER_PROGRAM"] == "inference.py"
        assert env["SAGEMAKER_SUBMIT_DIRECTORY"].startswith(f"s3://{deployed.env.bucket}/")
        assert env["SAGEMAKER_SUBMIT_DIRECTORY"].endswith("/sourcedir.tar.gz")
        assert report["predict"] == ["setosa", "virginica"]  # code/inference.py's predict_fn answered

        model = json.loads(deployed.kubectl("get", "models.sageport.io", "-n", ns, "-o", "json"))["items"]
        (ours,) = [m for m in model if m["spec"]["modelName"] == report["model"]]
        (image,) = ours["status"]["deployedImages"]
        assert (image["specifiedImage"], image["resolvedImage"]) == (SKLEARN, _runtime_image(deployed))
        pods = json.loads(deployed.kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
        (pod,) = [p for p in pods if p["metadata"]["labels"].get(contract.LABEL_ENDPOINT) == "iris-script"]
        assert [c["name"] for c in pod["spec"]["initContainers"]] == ["model-fetch", "code-fetch"]
        served = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        assert served["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/code"
    finally:
        sagemaker = _sagemaker(deployed)
        sagemaker.delete_endpoint(EndpointName="iris-script")
        sagemaker.delete_endpoint_config(EndpointConfigName="iris-script")
        sagemaker.delete_model(ModelName=report["model"])


def test_a_model_made_with_kubectl_runs_the_mapped_image_too(deployed: Deployed) -> None:
    ns = deployed.env.namespace
    deployed.kubectl("apply", "-n", ns, "-f", str(EXAMPLE / "framework-image-model.yaml"))
    try:

        def deployed_images() -> Any:
            model = deployed.get("models.sageport.io", "iris-framework-image", ns) or {}
            return model.get("status", {}).get("deployedImages")

        (image,) = eventually(deployed_images, 30, what="the Model's status.deployedImages")
        assert (image["specifiedImage"], image["resolvedImage"]) == (SKLEARN, _runtime_image(deployed))
        assert image["resolutionTime"]
    finally:
        deployed.kubectl("delete", "-n", ns, "-f", str(EXAMPLE / "framework-image-model.yaml"), check=False)
