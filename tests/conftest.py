"""Shared fixtures. ``kube_cluster`` and ``namespace`` give tests a real Kubernetes API.

The cluster is the local harness (``dev/sageport_dev``): upstream etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok with fake nodes, started once per session.
Set ``SAGEPORT_KUBECONFIG`` to the kubeconfig of a running cluster (``make cluster-up``,
then ``export SAGEPORT_KUBECONFIG=$(make -s cluster-kubeconfig)``) to reuse it instead.

A cluster that cannot start is an error for every test that needs it, never a skip.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from sageport_dev import build
from sageport_dev.control_plane import ClusterError, start, stop_cluster
from sageport_dev.handle import KubeCluster
from sageport_dev.layout import Layout

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

_CLUSTER_FIXTURES = {"kube_cluster", "namespace", "kube_api"}
_startup_report = pytest.StashKey[str]()


@pytest.fixture(autouse=True)
def _own_boto3_default_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without boto3's module-level session: ``boto3.client()`` caches the
    credentials it resolved first in that session, so an e2e test's stack keys would otherwise
    reach a later test's own S3 server (seen: XAdminUserNotFound in tests/unit/storage after the
    e2e tests in one run)."""
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Any test that uses the cluster is marked ``cluster``, so ``-m "not cluster"`` leaves it out."""
    for item in items:
        if _CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(_startup_report, None)
    if report is not None:
        terminalreporter.write_line(report)


def _kubectl_binary() -> Path:
    return build.ensure_binaries()["kubectl"]


def _reuse(kubeconfig: Path) -> KubeCluster:
    if not kubeconfig.is_file():
        pytest.fail(f"SAGEPORT_KUBECONFIG={kubeconfig} is not a file", pytrace=False)
    cluster = KubeCluster(kubeconfig=kubeconfig, kubectl_binary=_kubectl_binary())
    readyz = cluster.kubectl("get", "--raw=/readyz", check=False, timeout=15)
    if readyz.returncode != 0:
        pytest.fail(
            f"cluster at SAGEPORT_KUBECONFIG={kubeconfig} is not ready:\n{readyz.stderr}", pytrace=False
        )
    return cluster


@pytest.fixture(scope="session")
def kube_cluster(pytestconfig: pytest.Config) -> Iterator[KubeCluster]:
    """The session's cluster: started here (and stopped at the end) unless SAGEPORT_KUBECONFIG is set."""
    reuse = os.environ.get("SAGEPORT_KUBECONFIG")
    if reuse:
        yield _reuse(Path(reuse))
        return

    state_dir = Path(tempfile.mkdtemp(prefix="sageport-cluster-"))
    try:
        # Tied to this process: a killed test run leaves no control plane behind.
        state = start(state_dir, die_with_parent=True, log=lambda _: None)
    except ClusterError as error:
        # start() stopped what it started; the state directory keeps the logs for a post-mortem.
        pytest.fail(
            f"the local cluster did not start (logs in {state_dir / 'logs'}):\n{error}", pytrace=False
        )
    pytestconfig.stash[_startup_report] = (
        f"local cluster: binaries {state.timings['build_seconds']:.1f} s, "
        f"control plane ready in {state.timings['start_seconds']:.1f} s ({state_dir})"
    )
    try:
        yield KubeCluster(
            kubeconfig=Layout(state_dir).kubeconfig,
            kubectl_binary=_kubectl_binary(),
            state_dir=state_dir,
        )
    finally:
        stop_cluster(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kube_api(kube_cluster: KubeCluster) -> Iterator[ApiClient]:
    """One ``kubernetes.client.ApiClient`` shared by the session's tests."""
    with kube_cluster.api_client() as client:
        yield client


# Namespaces of tests that play the operator: the session's real operator leaves them alone
# (tests/integration/conftest.py starts it with --namespace=!<prefix>*), or it would overwrite
# the status those tests write.
UNMANAGED_PREFIX = "nop-"


def _namespace_name(test_name: str, unmanaged: bool = False) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"{UNMANAGED_PREFIX if unmanaged else 't-'}{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(kube_api: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test (name ``t-<test>-<random>``), deleted afterwards.

    Yields once the namespace's ``default`` service account exists, so pods can be created at once.
    """
    from kubernetes.client import CoreV1Api, V1Namespace, V1ObjectMeta
    from kubernetes.client.exceptions import ApiException

    core = CoreV1Api(kube_api)
    name = _namespace_name(
        request.node.name, unmanaged=request.node.get_closest_marker("fake_operator") is not None
    )
    core.create_namespace(
        body=V1Namespace(metadata=V1ObjectMeta(name=name, labels={"sageport.io/test": "true"}))
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            core.read_namespaced_service_account(name="default", namespace=name)
            break
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield name
    finally:
        # Not waited for: the namespace controller and kwok's pod-delete stage finish it.
        core.delete_namespace(name=name)


# Real small models, trained once per session and saved the way users ship them (server tests).


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    return np.asarray(features), np.asarray(labels)


@pytest.fixture(scope="session")
def sklearn_model(iris: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(*iris)


@pytest.fixture(scope="session")
def sklearn_dir(tmp_path_factory: pytest.TempPathFactory, sklearn_model: Any) -> Path:
    import joblib

    model_dir = tmp_path_factory.mktemp("sklearn")
    joblib.dump(sklearn_model, model_dir / "model.joblib")
    return model_dir
