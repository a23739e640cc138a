"""``make demo``: the main job, end to end on this machine, with each step timed.

1. the local cluster (built and cached on first use) and sageport's CRDs and catalog;
2. the operator, as a process with ``$KUBECONFIG``;
3. an sklearn model trained here, packed as ``model.tar.gz`` and put in a real S3-compatible
   server (versitygw) on loopback;
4. ``examples/realtime-sklearn`` applied; the Endpoint goes ``Ready`` (its pods are scheduled
   on KWOK nodes);
5. the variant's container run as a local process, exactly as the pod would run it: the init
   container's ``python -m sageport.storage fetch s3://...`` then ``sageport-server``;
6. the gateway, with SigV4 auth, routing the endpoint to that process;
7. the real boto3 ``sagemaker-runtime`` client invoking the endpoint.

KWOK pods do not run containers; until the real node lands, step 5 stands in for the pod.
Everything started is stopped at the end (``--keep`` leaves it running and prints how to reach it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from sageport.operator.crdgen import KINDS
from tests.cluster import build
from tests.cluster.control_plane import Layout, running_state, start, stop_cluster
from tests.cluster.processes import free_port as _free_port
from tests.cluster.processes import wait_http

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "realtime-sklearn"
BUCKET, KEY = "sageport-models", "iris/model.tar.gz"
S3_ACCESS, S3_SECRET = "sageportdemo", secrets.token_urlsafe(24)
NAMESPACE = "demo"


class Demo:
    def __init__(self, state_dir: Path, keep: bool) -> None:
        self.state_dir = state_dir
        self.keep = keep
        self.work = Path(tempfile.mkdtemp(prefix="sageport-demo-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started_cluster = False
        self.timings: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        print(f"-> {what} ...", flush=True)
        started = time.monotonic()
        yield
        seconds = time.monotonic() - started
        self.timings.append((what, seconds))
        print(f"   {what}: {seconds:.1f} s", flush=True)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log: IO[bytes] = (self.work / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        self.processes.append(process)
        return process

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        kubectl = str(build.ensure_binaries()["kubectl"])
        result = subprocess.run(
            [kubectl, f"--kubeconfig={self.kubeconfig}", *args], input=stdin, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    @property
    def kubeconfig(self) -> Path:
        return Layout(self.state_dir).kubeconfig

    def close(self) -> None:
        if self.keep:
            print(f"left running (--keep): export KUBECONFIG={self.kubeconfig}; logs in {self.work}")
            return
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if self.started_cluster:
            stop_cluster(self.state_dir)


def _serving(url: str, process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    try:
        wait_http(url, process, timeout)
    except RuntimeError as error:
        raise SystemExit(f"{error}; log {log}:\n{log.read_text()[-3000:]}") from None


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def _model_tarball() -> bytes:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    pickled = io.BytesIO()
    joblib.dump(model, pickled)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.joblib")
        info.size = len(pickled.getvalue())
        tar.addfile(info, io.BytesIO(pickled.getvalue()))
    return archive.getvalue()


def run(demo: Demo) -> None:
    python = sys.executable
    with demo.step("local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok)"):
        if running_state(Layout(demo.state_dir)) is None:
            start(demo.state_dir, die_with_parent=not demo.keep, log=lambda _: None)
            demo.started_cluster = True
    with demo.step("CRDs and the instance-type catalog"):
        demo.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        crds = [f"crd/{kind.plural}.sageport.io" for kind in KINDS]
        demo.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        for _ in range(20):  # the first writes right after Established may get 429
            with contextlib.suppress(SystemExit):
                demo.kubectl(
                    "apply", "--server-side", "-f", str(REPO / "charts/sageport/files/instance-types.yaml")
                )
                break
            time.sleep(0.5)
    with demo.step("operator"):
        port = _free_port()
        operator = demo.spawn(
            "operator",
            [python, "-m", "sageport.operator", f"--liveness=http://127.0.0.1:{port}/healthz"],
            {"KUBECONFIG": str(demo.kubeconfig)},
        )
        _serving(f"http://127.0.0.1:{port}/healthz", operator, 60, demo.work / "operator.log")
    s3_env: dict[str, str] = {}
    with demo.step(f"model trained and uploaded to s3://{BUCKET}/{KEY} (versitygw on loopback)"):
        import boto3  # type: ignore[import-untyped]

        versitygw = str(build.ensure_binaries()["versitygw"])
        s3_port = _free_port()
        root = demo.work / "s3"
        root.mkdir()
        demo.spawn(
            "versitygw",
            [
                versitygw,
                "--access",
                S3_ACCESS,
                "--secret",
                S3_SECRET,
                "--port",
                f"127.0.0.1:{s3_port}",
                "posix",
                str(root),
            ],
        )
        _wait_port(s3_port, 30)
        s3_env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "AWS_ACCESS_KEY_ID": S3_ACCESS,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_env["AWS_ENDPOINT_URL"],
            aws_access_key_id=S3_ACCESS,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=_model_tarball())
    with demo.step("examples/realtime-sklearn applied, Endpoint Ready"):
        demo.kubectl(
            "apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"
        )
        demo.kubectl("apply", "--server-side", "-n", NAMESPACE, "-f", str(EXAMPLE))
        demo.kubectl(
            "wait", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=120s", "endpoints.sageport.io/iris"
        )
        print(demo.kubectl("get", "-n", NAMESPACE, "endpoints.sageport.io,deployments,pods", "-o", "wide"))
    server_port = _free_port()
    with demo.step("variant container as a local process: fetch s3:// model, start sageport-server"):
        model_dir = demo.work / "model"
        subprocess.run(
            [python, "-m", "sageport.storage", "fetch", f"s3://{BUCKET}/{KEY}", str(model_dir)],
            env={**os.environ, **s3_env},
            check=True,
        )
        server = demo.spawn(
            "server",
            [
                python,
                "-m",
                "sageport.server",
                "serve",
                "--model-dir",
                str(model_dir),
                "--port",
                str(server_port),
            ],
        )
        _serving(f"http://127.0.0.1:{server_port}/ping", server, 120, demo.work / "server.log")
    access_key, secret_key = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
    gateway_port = _free_port()
    with demo.step("gateway (SigV4 auth on)"):
        routes = {
            "endpoints": {
                "iris": {
                    "variants": [
                        {"name": "AllTraffic", "weight": 1.0, "backends": [f"http://127.0.0.1:{server_port}"]}
                    ]
                }
            }
        }
        keys = {"keys": [{"accessKeyId": access_key, "secretAccessKey": secret_key, "endpoints": ["iris"]}]}
        (demo.work / "routes.yaml").write_text(yaml.safe_dump(routes))
        keys_file = demo.work / "keys.yaml"
        keys_file.write_text(yaml.safe_dump(keys))
        keys_file.chmod(0o600)
        gateway = demo.spawn(
            "gateway",
            [
                python,
                "-m",
                "sageport.gateway.main",
                "--host",
                "127.0.0.1",
                "--port",
                str(gateway_port),
                "--routes",
                str(demo.work / "routes.yaml"),
                "--keys",
                str(keys_file),
            ],
        )
        _serving(f"http://127.0.0.1:{gateway_port}/ping", gateway, 60, demo.work / "gateway.log")
    with demo.step("boto3 sagemaker-runtime invoke_endpoint"):
        import boto3

        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=f"http://127.0.0.1:{gateway_port}",
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )
        response: dict[str, Any] = runtime.invoke_endpoint(
            EndpointName="iris",
            ContentType="text/csv",
            Accept="application/json",
            Body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
        )
        print(
            f"   prediction: {response['Body'].read().decode().strip()}  "
            f"(variant {response['InvokedProductionVariant']}, request {response['ResponseMetadata']['RequestId']})"
        )
    total = sum(seconds for _, seconds in demo.timings)
    print(f"demo done in {total:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the cluster and processes running")
    args = parser.parse_args()
    state_dir = Path(os.environ.get("SAGEPORT_CLUSTER_DIR", "/tmp/sageport-demo-cluster"))
    demo = Demo(state_dir, keep=args.keep)
    try:
        run(demo)
    finally:
        demo.close()


if __name__ == "__main__":
    main()
