"""``make demo``: the main job, end to end on this machine, with each step timed.

1. the local cluster with one real node (kubelet, kube-proxy, containerd) beside the KWOK
   nodes; binaries built and cached on first use;
2. the runtime and operator images, built without Docker and imported into containerd;
3. an sklearn model trained here, packed as ``model.tar.gz`` and put in a real S3-compatible
   server (versitygw) on the node's bridge address;
4. ``helm upgrade --install`` of charts/sageport (CRDs, catalog, operator, gateway);
5. a namespace with the model fetcher's S3 credentials and a SigV4 access key;
6. ``examples/realtime-sklearn`` applied (its variant on the ``local`` instance type, the real
   node); the Endpoint goes ``Ready`` once its pod fetched the model and answers ``/ping``;
7. the real boto3 ``sagemaker-runtime`` client invoking the endpoint through the gateway.

Everything this run started is stopped at the end; ``--keep`` leaves it running and prints
how to reach it. A second run reuses the cached binaries, images and containerd content.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.cluster import stack
from tests.cluster.control_plane import ClusterError, running_state, start, stop_cluster
from tests.cluster.layout import Layout
from tests.cluster.processes import stop

EXAMPLE = stack.REPO / "examples" / "realtime-sklearn"
NAMESPACE = "demo"
ENDPOINT = "iris"


class Demo:
    def __init__(self, state_dir: Path, keep: bool) -> None:
        self.layout = Layout(state_dir)
        self.keep = keep
        self.work = Path(tempfile.mkdtemp(prefix="sageport-demo-"))
        self.started_cluster = False
        self.s3: stack.S3Server | None = None
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        print(f"-> {what} ...", flush=True)
        started = time.monotonic()
        yield
        seconds = time.monotonic() - started
        self.timings[what] = seconds
        print(f"   {seconds:.1f} s", flush=True)

    def kubectl(self, *args: str) -> str:
        return stack.kubectl(self.layout.kubeconfig, *args)

    def close(self) -> None:
        if self.keep:
            print(
                f"left running (--keep): export KUBECONFIG={self.layout.kubeconfig}\n"
                f"  stop it with: python -m tests.cluster --dir {self.layout.root} down"
            )
            return
        if self.s3 is not None and self.s3.process is not None:
            stop([self.s3.process])
        if self.started_cluster:
            stop_cluster(self.layout.root)


def run(demo: Demo) -> None:
    kubeconfig = demo.layout.kubeconfig
    with demo.step("local cluster: control plane, 9 KWOK nodes, 1 real node (kubelet, containerd)"):
        existing = running_state(demo.layout)
        if existing is None or not existing.real_node:
            start(demo.layout.root, with_real_node=True, die_with_parent=not demo.keep, log=lambda _: None)
            demo.started_cluster = True
    with demo.step("images (runtime, operator) built without Docker and imported into containerd"):
        refs = stack.load_images(demo.layout, log=lambda line: print(f"   {line}", flush=True))
    with demo.step("model trained, uploaded to s3://sageport-models/iris/model.tar.gz (versitygw)"):
        demo.s3 = stack.start_s3(demo.layout.root / "s3", die_with_parent=not demo.keep)
        demo.s3.put("sageport-models", "iris/model.tar.gz", stack.iris_model_tarball())
    installed = time.monotonic()
    with demo.step("helm upgrade --install charts/sageport (CRDs, catalog, operator, gateway)"):
        stack.helm_install(kubeconfig, stack.local_values(refs, demo.s3), demo.work)
    with demo.step(f"namespace {NAMESPACE}: S3 credentials for the model fetcher, a SigV4 access key"):
        key = stack.prepare_namespace(kubeconfig, NAMESPACE, demo.s3)
    with demo.step("examples/realtime-sklearn applied (instance type local), Endpoint Ready"):
        stack.apply_objects(kubeconfig, NAMESPACE, stack.example_objects(EXAMPLE))
        demo.kubectl(
            "wait",
            "-n",
            NAMESPACE,
            "--for=condition=Ready",
            "--timeout=180s",
            f"endpoints.sageport.io/{ENDPOINT}",
        )
        print(demo.kubectl("get", "-n", NAMESPACE, "endpoints.sageport.io,pods", "-o", "wide"))
    with demo.step("boto3 sagemaker-runtime invoke_endpoint through the gateway"):
        url = stack.gateway_url(kubeconfig)
        runtime = stack.runtime_client(url, key)
        body = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
        response = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=body)
        print(
            f"   prediction: {response['Body'].read().decode().strip()}  "
            f"(variant {response['InvokedProductionVariant']}, gateway {url})"
        )
    to_first = time.monotonic() - installed
    print(f"helm install to the first successful invocation: {to_first:.1f} s (target: under 60 s)")
    print(f"demo done in {sum(demo.timings.values()):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--keep", action="store_true", help="leave the cluster, S3 server and release running"
    )
    args = parser.parse_args()
    state_dir = Path(os.environ.get("SAGEPORT_CLUSTER_DIR", "/tmp/sageport-demo-cluster"))
    demo = Demo(state_dir, keep=args.keep)
    try:
        run(demo)
    except (ClusterError, stack.StackError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        demo.close()


if __name__ == "__main__":
    main()
