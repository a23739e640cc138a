"""A serverless variant's cold start on the real node, split, against scaling a Deployment by hand.

Measured, on ``make up``'s stack (started if it is not running, and left running):
``examples/serverless`` (idle period 10 s) at zero instances, one boto3 call through the gateway,
split by what this process sees of the cluster (a watch on the namespace's Deployments and pods,
times taken as the events arrive):

- call -> KEDA scaled the Deployment to 1 (the gateway's signal on ``StreamIsActive`` and KEDA's
  /scale patch),
- scaled -> pod scheduled (ReplicaSet controller and scheduler),
- scheduled -> pod Ready (model fetch, server start, readiness probe),
- Ready -> answer (EndpointSlice to the gateway, the held call sent to the pod, the answer).

Baseline, in the same run on the same node: the same pod (same image, fetch and server, same
resources) in a plain Deployment scaled 0 -> 1 by hand and polled every 100 ms until it answers.

    python -m bench.cold_start

Needs root (the real node).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch

from bench._stack import iris_stack
from sageport_dev import stack
from sageport_dev.processes import eventually

NAMESPACE = "bench-cold-start"
ROW = b"5.1,3.5,1.4,0.2"
IDLE_SECONDS = 10


class Watch:
    """Arrival times of what happens to the namespace's Deployments and pods."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.api = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        self.namespace = namespace
        self.scaled: float | None = None  # a Deployment's spec.replicas went above 0
        self.scheduled: float | None = None  # a pod got a node
        self.ready: float | None = None  # a pod turned Ready
        self._stop = threading.Event()

    def reset(self) -> None:
        self.scaled = self.scheduled = self.ready = None

    def start(self) -> None:
        apps, core = kubernetes.client.AppsV1Api(self.api), kubernetes.client.CoreV1Api(self.api)
        threading.Thread(
            target=self._run, args=(apps.list_namespaced_deployment, self._deployment), daemon=True
        ).start()
        threading.Thread(target=self._run, args=(core.list_namespaced_pod, self._pod), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, list_function: Any, on_event: Any) -> None:
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            stream = watch.stream(list_function, self.namespace, timeout_seconds=30)  # type: ignore[no-untyped-call]
            for event in stream:
                on_event(event["object"], time.monotonic())
                if self._stop.is_set():
                    watch.stop()  # type: ignore[no-untyped-call]

    def _deployment(self, deployment: Any, now: float) -> None:
        if self.scaled is None and (deployment.spec.replicas or 0) > 0:
            self.scaled = now

    def _pod(self, pod: Any, now: float) -> None:
        if self.scheduled is None and pod.spec.node_name:
            self.scheduled = now
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if self.ready is None and ready:
            self.ready = now


def _pods(kubeconfig: Any) -> list[dict[str, Any]]:
    return list(json.loads(stack.kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-o", "json"))["items"])


def _replicas(kubeconfig: Any, selector: str) -> int:
    out = stack.kubectl(kubeconfig, "get", "deployments", "-n", NAMESPACE, "-l", selector, "-o", "json")
    items = json.loads(out)["items"]
    return int(items[0]["spec"].get("replicas", 1)) if items else -1


def _post(url: str) -> bool:
    request = urllib.request.Request(url, data=ROW, headers={"Content-Type": "text/csv"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _plain(serverless: dict[str, Any]) -> dict[str, Any]:
    """The serverless variant's own Deployment, renamed and relabelled: the same pod, no sageport around it."""
    template = serverless["spec"]["template"]
    labels = {"app": "plain"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "plain", "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": template["spec"]},
        },
    }


def main() -> None:
    iris = iris_stack()
    kubeconfig = iris.kubeconfig
    stack.kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    key = stack.prepare_namespace(kubeconfig, NAMESPACE, iris.s3)
    objects = stack.example_objects(stack.REPO / "examples" / "serverless")
    for obj in objects:
        if obj["kind"] == "Endpoint":
            obj["metadata"]["annotations"]["sageport.io/serverless-idle-seconds"] = str(IDLE_SECONDS)
    stack.apply_objects(kubeconfig, NAMESPACE, objects)
    stack.kubectl(
        kubeconfig, "wait", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=300s",
        "endpoints.sageport.io/iris-serverless",
    )  # fmt: skip
    selector = "sageport.io/endpoint=iris-serverless"
    eventually(
        lambda: _replicas(kubeconfig, selector) == 0 and not _pods(kubeconfig), 300, what="scale to zero"
    )

    watch = Watch(str(kubeconfig), NAMESPACE)
    watch.start()
    time.sleep(1.0)  # the watches are listing
    watch.reset()
    client = stack.runtime_client(iris.env.runtime_url, key, retries=1)
    called = time.monotonic()
    client.invoke_endpoint(EndpointName="iris-serverless", ContentType="text/csv", Body=ROW)["Body"].read()
    answered = time.monotonic()
    scaled, scheduled, ready = watch.scaled, watch.scheduled, watch.ready
    if scaled is None or scheduled is None or ready is None:
        raise SystemExit(f"the watch missed a step: scaled {scaled}, scheduled {scheduled}, ready {ready}")

    # Baseline: the same pod, a plain Deployment scaled 0 -> 1 by hand.
    sageport_deployment = json.loads(
        stack.kubectl(kubeconfig, "get", "deployments", "-n", NAMESPACE, "-l", selector, "-o", "json")
    )["items"][0]
    stack.apply_objects(kubeconfig, NAMESPACE, [_plain(sageport_deployment)])
    base_started = time.monotonic()
    stack.kubectl(kubeconfig, "scale", "-n", NAMESPACE, "deployment/plain", "--replicas=1")

    def plain_ip() -> str:
        pods = json.loads(
            stack.kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-l", "app=plain", "-o", "json")
        )
        return str(pods["items"][0]["status"].get("podIP", "")) if pods["items"] else ""

    ip = eventually(plain_ip, 300, interval=0.1, what="the plain pod's IP")
    eventually(
        lambda: _post(f"http://{ip}:8080/invocations"), 300, interval=0.1, what="the plain pod to answer"
    )
    baseline = time.monotonic() - base_started
    watch.stop()
    stack.kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false")

    total = answered - called
    print("serverless variant at zero, one boto3 call through the gateway:")
    print(f"  call -> KEDA scaled the Deployment   {1e3 * (scaled - called):8.0f} ms")
    print(f"  scaled -> pod scheduled              {1e3 * (scheduled - scaled):8.0f} ms")
    print(f"  scheduled -> pod Ready               {1e3 * (ready - scheduled):8.0f} ms")
    print(f"  Ready -> answer                      {1e3 * (answered - ready):8.0f} ms")
    print(f"  total                                {1e3 * total:8.0f} ms  x{total / baseline:.2f}")
    print(
        f"plain Deployment scaled 0 -> 1 by hand, polled until it answers: {1e3 * baseline:8.0f} ms  (baseline)"
    )


if __name__ == "__main__":
    try:
        main()
    except stack.StackError as error:
        raise SystemExit(str(error)) from None
