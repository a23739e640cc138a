"""From ``kubectl apply`` of an Endpoint to the first successful boto3 invocation, on the real node.

Measured, on ``make up``'s stack (started if it is not running, and left running):
``examples/realtime-sklearn`` on the ``local`` instance type applied in a fresh namespace, the
Endpoint ``Ready``, and boto3's ``invoke_endpoint`` through the gateway answering.

Baseline, in the same run on the same node with the same image and model: what it takes
without sageport, a hand-written Deployment whose init container fetches the same
``model.tar.gz`` from the same S3 server and whose container is the same model server, from
``kubectl apply`` until a POST to the pod's ``/invocations`` answers. The ratio is the cost of
the control plane (operator, status, gateway routing) on top of just running the container.

    python -m bench.first_invocation

Needs root (the real node).
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from bench._stack import iris_stack
from sageport_dev import stack
from sageport_dev.processes import eventually

MODEL_URL = "s3://sageport-models/iris/model.tar.gz"
ROW = b"5.1,3.5,1.4,0.2\n"


def _plain_deployment(image: str, s3: stack.S3Server) -> list[dict[str, Any]]:
    """The model served without sageport: init container fetches, server serves."""
    security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    resources = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    env = [
        {"name": "AWS_ENDPOINT_URL", "value": s3.endpoint_url},
        {"name": "AWS_ACCESS_KEY_ID", "value": s3.access_key},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": s3.secret_key},
        {"name": "AWS_DEFAULT_REGION", "value": stack.REGION},
    ]
    mounts = [{"name": "model", "mountPath": "/opt/ml/model"}]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "plain"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "plain"}},
                "template": {
                    "metadata": {"labels": {"app": "plain"}},
                    "spec": {
                        **{k: stack.LOCAL_INSTANCE_TYPE[k] for k in ("nodeSelector", "tolerations")},
                        "initContainers": [
                            {
                                "name": "fetch",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "command": [
                                    "python",
                                    "-m",
                                    "sageport.storage",
                                    "fetch",
                                    MODEL_URL,
                                    "/opt/ml/model",
                                ],
                                "env": env,
                                "volumeMounts": mounts,
                                "securityContext": security,
                                "resources": resources,
                            }
                        ],
                        "containers": [
                            {
                                "name": "server",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["serve"],
                                "volumeMounts": mounts,
                                "securityContext": security,
                                "resources": resources,
                                "readinessProbe": {
                                    "httpGet": {"path": "/ping", "port": 8080},
                                    "periodSeconds": 1,
                                },
                            }
                        ],
                        "volumes": [{"name": "model", "emptyDir": {}}],
                    },
                },
            },
        }
    ]


def _post(url: str) -> bool:
    request = urllib.request.Request(url, data=ROW, headers={"Content-Type": "text/csv"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> None:
    iris = iris_stack()
    env, kubeconfig, s3, runtime_image = iris.env, iris.kubeconfig, iris.s3, iris.runtime_image
    for namespace in ("bench-plain", "bench-endpoint"):
        stack.kubectl(kubeconfig, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true")

    stack.kubectl(kubeconfig, "create", "namespace", "bench-plain")
    started = time.monotonic()
    stack.apply_objects(kubeconfig, "bench-plain", _plain_deployment(runtime_image, s3))

    def pod_ip() -> str:
        pods = json.loads(stack.kubectl(kubeconfig, "get", "pods", "-n", "bench-plain", "-o", "json"))[
            "items"
        ]
        return str(pods[0]["status"].get("podIP", "")) if pods else ""

    eventually(pod_ip, 300, interval=0.1, what="the plain pod's IP")
    url = f"http://{pod_ip()}:8080/invocations"
    eventually(lambda: _post(url), 300, interval=0.1, what="the plain pod to answer")
    baseline = time.monotonic() - started
    stack.kubectl(kubeconfig, "delete", "namespace", "bench-plain", "--wait=true")

    key = stack.prepare_namespace(kubeconfig, "bench-endpoint", s3)
    started = time.monotonic()
    stack.apply_objects(
        kubeconfig, "bench-endpoint", stack.example_objects(stack.REPO / "examples" / "realtime-sklearn")
    )
    stack.kubectl(
        kubeconfig,
        "wait",
        "-n",
        "bench-endpoint",
        "--for=condition=Ready",
        "--timeout=300s",
        "endpoints.sageport.io/iris",
    )
    runtime = stack.runtime_client(env.runtime_url, key)
    answer = runtime.invoke_endpoint(EndpointName="iris", ContentType="text/csv", Body=ROW)["Body"].read()
    measured = time.monotonic() - started
    stack.kubectl(kubeconfig, "delete", "namespace", "bench-endpoint", "--wait=false")
    print(f"plain Deployment, kubectl apply to first answer from the pod:      {baseline:6.1f} s  (baseline)")
    print(
        f"sageport Endpoint, kubectl apply to first boto3 answer via gateway: {measured:6.1f} s  "
        f"x{measured / baseline:.2f}  answer {answer.decode().strip()}"
    )


if __name__ == "__main__":
    try:
        main()
    except stack.StackError as error:
        raise SystemExit(str(error)) from None
