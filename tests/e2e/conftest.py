"""The real thing: sageport installed by its Helm chart on a cluster whose node runs pods.

One session fixture (``deployed``) is ``make up``'s stack (sageport_dev.local_stack), shared by
every test of the run: the cluster with a real node (kubelet, kube-proxy, containerd), the
images, the S3 server, the chart and the ``sagemaker`` namespace. A stack already up (in
$SAGEPORT_STACK_DIR) is used and left running; one this run started is stopped at the end. It
needs root and the Debian packages that ``make host-deps`` installs; without them every test
here fails with what is missing.
"""

from __future__ import annotations

import fcntl
import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sageport_dev import local_stack, real_node, stack
from sageport_dev.control_plane import ClusterError
from sageport_dev.layout import Layout

_report = pytest.StashKey[str]()

# A model whose behaviour tests can steer: it sleeps when asked, says which pod answered, and
# writes every request id to /tmp/seen (the pod's emptyDir), so a test can tell whether a
# request reached a pod at all.
PROBE_INFERENCE = """
import json, os, time

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    with open("/tmp/seen", "a") as seen:
        seen.write(str(data.get("id", "")) + "\\n")
    time.sleep(float(data.get("sleep", 0)))
    return {"pod": os.environ.get("HOSTNAME", ""), "id": data.get("id")}

def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


def probe_model_tarball() -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = PROBE_INFERENCE.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


@dataclass
class Deployed:
    """The installed stack, and what a test needs to use it."""

    layout: Layout
    s3: stack.S3Server
    env: local_stack.StackEnv
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return self.env.runtime_url

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    def kubectl(self, *args: str, check: bool = True) -> str:
        return stack.kubectl(self.kubeconfig, *args, check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def wait_ready(self, namespace: str, endpoint: str, seconds: int = 180) -> None:
        """Until the Endpoint's Ready condition is True (kubectl wait; an error after ``seconds``)."""
        self.kubectl(
            "wait", "-n", namespace, "--for=condition=Ready", f"--timeout={seconds}s",
            f"endpoints.sageport.io/{endpoint}",
        )  # fmt: skip

    def ctr(self, *args: str) -> str:
        paths = real_node.NodePaths(self.layout)
        return subprocess.run(real_node.ctr(paths, *args), capture_output=True, text=True, check=True).stdout


# The machine has one real node: two e2e runs at once (two checkouts) would re-install each
# other's chart and images under each other's tests. A run waits here for the one before it.
NODE_LOCK = Path("/tmp/sageport-e2e.lock")  # not the lock a shell may hold around the run (flock(1))


@pytest.fixture(scope="session")
def node_lock() -> Iterator[None]:
    with NODE_LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def deployed(pytestconfig: pytest.Config, node_lock: None) -> Iterator[Deployed]:
    state_dir = local_stack.stack_dir_from_env().absolute()
    was_up, _ = local_stack.status(state_dir)
    timings: dict[str, float] = {}
    try:
        # With Prometheus, the alarm source of updates (test_updates' alarm rollback).
        env = local_stack.up(state_dir, log=lambda _: None, timings=timings, with_prometheus=True)
        s3 = stack.running_s3(state_dir / "s3")
        if s3 is None:
            raise stack.StackError("the S3 server of the stack is not running after `up`")
        s3.put("models", "probe/model.tar.gz", probe_model_tarball())
        s3.put("sageport-models", "iris/model.tar.gz", stack.iris_model_tarball())
    except (ClusterError, stack.StackError) as error:
        pytest.fail(f"`make up` of the local stack failed:\n{error}", pytrace=False)
    report = ", ".join(f"{k} {v} s" for k, v in timings.items())
    pytestconfig.stash[_report] = f"end-to-end stack ({'already up' if was_up else 'started'}): {report}"
    try:
        yield Deployed(Layout(state_dir), s3, env, timings)
    finally:
        if not was_up:
            left = local_stack.down(state_dir, log=lambda _: None)
            assert left == [], f"`make down` left these behind: {left}"


@pytest.fixture
def namespace(deployed: Deployed, request: pytest.FixtureRequest) -> Iterator[tuple[str, stack.AccessKey]]:
    name = "e2e-" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    redis = local_stack.running_redis(deployed.layout.root)
    key = stack.prepare_namespace(
        deployed.kubeconfig, name, deployed.s3, redis_password=redis.password if redis else None
    )
    yield name, key
    # Endpoint names are global at the gateway and the oldest Endpoint keeps a name: one left in
    # a namespace still terminating (its pods take a while) would take the next test's `iris`
    # (AccessDenied: the key may not invoke the other namespace's). Endpoints have no finalizer,
    # so this is quick; the rest of the namespace goes in the background.
    deployed.kubectl("delete", "endpoints.sageport.io", "--all", "-n", name, "--timeout=60s", check=False)
    deployed.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(_report, None)
    if report is not None:
        terminalreporter.write_line(report)
