"""``eval "$(make -s up)"``: a shell where unmodified boto3 code reaches the stack, and routes keyed
on the Endpoint object's identity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from sageport_dev import stack
from tests.e2e.conftest import Deployed, probe_model_tarball

pytestmark = pytest.mark.timeout(600)

# What a SageMaker user runs, unchanged: no endpoint_url, no keys, no region in the code.
PLAIN_BOTO3 = """
import json, os, sys
import boto3

s3 = boto3.client("s3")
bucket = os.environ["SAGEPORT_BUCKET"]
s3.put_object(Bucket=bucket, Key="plain/hello.txt", Body=b"hello")
listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="plain/")["Contents"]]
runtime = boto3.client("sagemaker-runtime")
response = runtime.invoke_endpoint(
    EndpointName=sys.argv[1], ContentType="text/csv", Body=b"5.1,3.5,1.4,0.2\\n6.7,3.0,5.2,2.3\\n"
)
print(json.dumps({"listed": listed, "variant": response["InvokedProductionVariant"],
                  "body": response["Body"].read().decode()}))
"""


def _clean_environ() -> dict[str, str]:
    """This process's environment without any AWS or kube setting: only what `up` exports counts."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "KUBECONFIG", "SAGEPORT_", "BOTO"))
    }


def test_plain_boto3_in_a_shell_prepared_by_make_up(deployed: Deployed) -> None:
    env = deployed.env
    ns = env.namespace
    example = stack.example_objects(stack.REPO / "examples" / "realtime-sklearn")
    try:
        stack.apply_objects(deployed.kubeconfig, ns, example)
        deployed.wait_ready(ns, "iris")

        started = time.monotonic()
        again = subprocess.run(
            ["make", "-s", "up"], capture_output=True, text=True, cwd=stack.REPO, check=False,
            env={**_clean_environ(), "SAGEPORT_STACK_DIR": str(deployed.layout.root)},
        )  # fmt: skip
        seconds = time.monotonic() - started
        assert again.returncode == 0, again.stderr
        assert again.stdout == env.exports(), "a second `make -s up` prints exactly the same export lines"
        assert seconds < 30, f"a second `make up` took {seconds:.1f} s"

        shell = subprocess.run(
            ["bash", "-c", f'eval "$(cat)" && exec {sys.executable} -c \'{PLAIN_BOTO3}\' iris'],
            input=again.stdout, capture_output=True, text=True, env=_clean_environ(), check=False,
        )  # fmt: skip
        assert shell.returncode == 0, shell.stderr
        answer = json.loads(shell.stdout)
        assert answer["listed"] == ["plain/hello.txt"]
        assert answer["variant"] == "AllTraffic"
        assert json.loads(answer["body"]) == [0, 2]
        namespace = json.loads(deployed.kubectl("get", "namespace", ns, "-o", "json"))
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    finally:
        # Endpoint names are global to the stack: leave none behind for the other tests.
        stack.delete_objects(deployed.kubeconfig, ns, example)


def _probe(object_name: str, invoke_name: str, model: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "sageport.io/v1alpha1",
            "kind": "Model",
            "metadata": {"name": model},
            "spec": {"primaryContainer": {"modelDataURL": f"s3://models/{model}/model.tar.gz"}},
        },
        {
            "apiVersion": "sageport.io/v1alpha1",
            "kind": "EndpointConfig",
            "metadata": {"name": f"{object_name}-config"},
            "spec": {
                "productionVariants": [
                    {
                        "variantName": "AllTraffic",
                        "modelName": model,
                        "instanceType": "local",
                        "initialInstanceCount": 1,
                        "initialVariantWeight": 1.0,
                    }
                ]
            },
        },
        {
            "apiVersion": "sageport.io/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": object_name},
            "spec": {"endpointName": invoke_name, "endpointConfigName": f"{object_name}-config"},
        },
    ]


def test_an_invoke_name_that_is_another_objects_name_reaches_only_its_own_pods(deployed: Deployed) -> None:
    """A (metadata.name x, endpointName y) and C (metadata.name z, endpointName x), one namespace."""
    ns = "e2e-identity"
    key = stack.prepare_namespace(deployed.kubeconfig, ns, deployed.s3)
    try:
        for model in ("identity-a", "identity-c"):
            deployed.s3.put("models", f"{model}/model.tar.gz", probe_model_tarball())
        stack.apply_objects(
            deployed.kubeconfig, ns, _probe("x", "y", "identity-a") + _probe("z", "x", "identity-c")
        )
        for name in ("x", "z"):
            deployed.wait_ready(ns, name)
        runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
        answered: dict[str, Counter[str]] = {"y": Counter(), "x": Counter()}
        for call in range(40):
            name = "yx"[call % 2]
            response = runtime.invoke_endpoint(
                EndpointName=name, ContentType="application/json", Body=json.dumps({"id": call})
            )
            pod = json.loads(response["Body"].read())["pod"]
            answered[name][pod.split("-", 1)[0]] += 1
        # Pods are named after their Endpoint object: x-alltraffic-..., z-alltraffic-...
        assert answered == {"y": Counter({"x": 20}), "x": Counter({"z": 20})}
    finally:
        deployed.kubectl("delete", "namespace", ns, "--wait=false", check=False)
