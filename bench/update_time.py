"""From a config change to 100 % of the traffic on the new fleet, on the real node.

Measured, on ``make up``'s stack (started if it is not running, and left running):
``examples/update-to-new-config`` (one instance, the iris model) InService, then the Endpoint
pointed at its v2 config (no update policy: blue/green, all at once, no bake), until the status
is ``InService`` on v2, which is when the gateway routes every call to the new fleet.

Baseline, in the same run on the same node with the same image and model: the same pod run by
a plain Deployment (bench.first_invocation's), rolled by a pod-template change until
``kubectl rollout status`` says every replica is new and ready. The ratio is what blue/green
with status and routing costs over Kubernetes' own rolling update of the same pod.

    python -m bench.update_time

Needs root (the real node).
"""

from __future__ import annotations

import json
import time

from bench._stack import iris_stack
from bench.first_invocation import _plain_deployment
from sageport_dev import stack

NAMESPACE = "bench-update"


def main() -> None:
    iris = iris_stack()
    kubeconfig, s3 = iris.kubeconfig, iris.s3
    stack.kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    stack.prepare_namespace(kubeconfig, NAMESPACE, s3)

    stack.apply_objects(kubeconfig, NAMESPACE, _plain_deployment(iris.runtime_image, s3))
    stack.kubectl(kubeconfig, "rollout", "status", "-n", NAMESPACE, "deployment/plain", "--timeout=300s")
    started = time.monotonic()
    patch = {"spec": {"template": {"metadata": {"annotations": {"bench/rollout": str(time.time())}}}}}
    stack.kubectl(kubeconfig, "patch", "-n", NAMESPACE, "deployment/plain", "-p", json.dumps(patch))
    stack.kubectl(kubeconfig, "rollout", "status", "-n", NAMESPACE, "deployment/plain", "--timeout=300s")
    baseline = time.monotonic() - started
    stack.kubectl(kubeconfig, "delete", "-n", NAMESPACE, "deployment/plain", "--wait=true")

    example = stack.example_objects(stack.REPO / "examples" / "update-to-new-config")
    stack.apply_objects(kubeconfig, NAMESPACE, example)
    wait = ["wait", "-n", NAMESPACE, "--timeout=300s", "endpoints.sageport.io/iris-bg"]
    stack.kubectl(kubeconfig, *wait, "--for=condition=Ready")
    started = time.monotonic()
    point_at_v2 = json.dumps({"spec": {"endpointConfigName": "iris-bg-v2"}})
    stack.kubectl(kubeconfig, "patch", "-n", NAMESPACE, "endpoints.sageport.io/iris-bg", "--type=merge",
                  "-p", point_at_v2)  # fmt: skip
    stack.kubectl(kubeconfig, *wait, "--for=jsonpath={.status.endpointConfigName}=iris-bg-v2")
    stack.kubectl(kubeconfig, *wait, "--for=condition=Ready")
    measured = time.monotonic() - started
    stack.kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false")
    print(f"plain Deployment, template change to rollout complete:          {baseline:6.1f} s  (baseline)")
    print(f"sageport Endpoint, new endpointConfigName to InService on it:   {measured:6.1f} s  "
          f"x{measured / baseline:.2f}")  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except stack.StackError as error:
        raise SystemExit(str(error)) from None
