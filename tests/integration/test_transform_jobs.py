"""TransformJobs against a real API server, controller manager and the operator process (kwok
nodes: a Job's pods there succeed at once, so this covers the Job's shape, the status the
operator writes from it, the API server's refusals, stop and delete; the real runs, with pods
that transform S3 objects, are tests/e2e/test_batch_transform.py)."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from sageport_dev.handle import KubeCluster
from sageport_dev.processes import eventually
from tests.support.kube import apply, condition, get
from tests.support.manifests import EXAMPLES, load_documents

pytestmark = pytest.mark.usefixtures("sageport_operator")

KIND = "transformjobs.sageport.io"


def _docs() -> tuple[dict[str, Any], dict[str, Any]]:
    docs = load_documents(EXAMPLES / "batch-transform")
    model = next(d for d in docs if d["kind"] == "Model")
    job = next(d for d in docs if d["kind"] == "TransformJob")
    return model, job


def _status(
    cluster: KubeCluster, namespace: str, name: str, wanted: str, timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = get(cluster, KIND, namespace, name)
        return found if ((found or {}).get("status") or {}).get("transformJobStatus") == wanted else None

    try:
        return eventually(reached, timeout=timeout, what=f"TransformJob {name} {wanted}")
    except AssertionError as error:
        raise AssertionError(
            f"{error}: {(get(cluster, KIND, namespace, name) or {}).get('status')}"
        ) from None


def test_a_transform_job_runs_as_an_indexed_job_and_completes(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    model, job = _docs()
    job["spec"]["transformResources"]["instanceCount"] = 2
    apply(kube_cluster, [model, job], namespace)
    kube_cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Succeeded",
        "--timeout=60s",
        f"{KIND}/iris-batch",
        timeout=70,
    )
    done = get(kube_cluster, KIND, namespace, "iris-batch")
    status = done["status"]
    assert status["transformJobStatus"] == "Completed"
    assert status["transformStartTime"]
    assert status["transformEndTime"]
    assert status["transformStartTime"] <= status["transformEndTime"]
    assert status.get("failureReason") is None
    assert status["jobName"] == "iris-batch"
    assert condition(done)["status"] == "True"
    assert condition(done, "Succeeded")["reason"] == "Completed"

    (child,) = get(kube_cluster, "jobs", namespace, selector="sageport.io/transform-job=iris-batch")
    spec = child["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    owner = child["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "TransformJob",
        "iris-batch",
        done["metadata"]["uid"],
    )
    model_container = spec["template"]["spec"]["initContainers"][-1]
    assert (model_container["name"], model_container["restartPolicy"]) == ("model", "Always")
    pods = get(kube_cluster, "pods", namespace, selector="sageport.io/transform-job=iris-batch")
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods) == [
        "0",
        "1",
    ]
    printed = kube_cluster.kubectl("get", "-n", namespace, "sptj", "-o", "wide").stdout
    assert printed.split("\n")[0].split() == [
        "NAME",
        "STATUS",
        "MODEL",
        "INSTANCES",
        "INSTANCE-TYPE",
        "START-TIME",
        "FAILURE",
        "AGE",
    ]
    assert "Completed" in printed
    assert "iris-batch-model" in printed


def test_a_job_waits_for_its_model_then_runs(kube_cluster: KubeCluster, namespace: str) -> None:
    model, job = _docs()
    apply(kube_cluster, [job], namespace)

    def waiting() -> dict[str, Any] | None:
        found = get(kube_cluster, KIND, namespace, "iris-batch")
        ready = condition(found)
        return found if ready and ready["reason"] == "ModelNotFound" else None

    found = eventually(waiting, timeout=30, what="Ready=False ModelNotFound")
    assert found["status"]["transformJobStatus"] == "InProgress"
    assert condition(found)["message"].startswith(
        f"spec.modelName: Model 'iris-batch-model' not found in namespace {namespace}"
    )
    assert get(kube_cluster, "jobs", namespace, selector="sageport.io/transform-job=iris-batch") == []
    apply(kube_cluster, [model], namespace)
    _status(kube_cluster, namespace, "iris-batch", "Completed")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"maxPayloadInMB": 101}, "spec.maxPayloadInMB", "less than or equal to 100"),
        (
            {"maxConcurrentTransforms": 20, "maxPayloadInMB": 6},
            "spec.maxPayloadInMB",
            "maxConcurrentTransforms x maxPayloadInMB must not exceed 100",
        ),
        (
            {"batchStrategy": "SingleRecord", "transformInput": {"splitType": "None"}},
            "spec.batchStrategy",
            "needs",
        ),
        (
            {"transformInput": {"dataSource": {"s3DataSource": {"s3DataType": "AugmentedManifestFile"}}}},
            "spec.transformInput.dataSource.s3DataSource.s3DataType",
            "AugmentedManifestFile is not supported",
        ),
    ],
)
def test_the_api_server_refuses_bad_input_naming_the_field(
    kube_cluster: KubeCluster, namespace: str, change: dict[str, Any], field: str, message: str
) -> None:
    _, job = _docs()

    def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(job["spec"], change)
    out = apply(kube_cluster, [job], namespace, check=False)
    assert field in out, out
    assert message in out, out


def test_the_spec_is_immutable(kube_cluster: KubeCluster, namespace: str) -> None:
    model, job = _docs()
    apply(kube_cluster, [model, job], namespace)
    changed = copy.deepcopy(job)
    changed["spec"]["transformResources"]["instanceCount"] = 3
    out = apply(kube_cluster, [changed], namespace, check=False)
    assert "TransformJob spec is immutable" in out, out


def test_a_stop_ends_in_stopped_and_a_delete_takes_the_job_with_it(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    model, job = _docs()
    # No kwok node has H100s: the pod stays Pending, so the job is still running when stopped.
    job["spec"]["transformResources"]["instanceType"] = "ml.p5.48xlarge"
    apply(kube_cluster, [model, job], namespace)

    def unschedulable() -> dict[str, Any] | None:
        found = get(kube_cluster, KIND, namespace, "iris-batch")
        ready = condition(found)
        return found if ready and ready["reason"] == "InstanceNotRunning" else None

    found = eventually(unschedulable, timeout=40, what="Ready=False InstanceNotRunning")
    assert found["status"]["transformJobStatus"] == "InProgress"
    assert "cannot be scheduled" in condition(found)["message"]

    kube_cluster.kubectl("annotate", "-n", namespace, KIND, "iris-batch", "sageport.io/stop-requested=true")
    asked = time.monotonic()
    stopped = _status(kube_cluster, namespace, "iris-batch", "Stopped")
    print(f"Stopped {time.monotonic() - asked:.1f} s after the annotation")
    assert stopped["status"]["transformEndTime"]
    assert condition(stopped, "Succeeded")["status"] == "False"
    (child,) = get(kube_cluster, "jobs", namespace, selector="sageport.io/transform-job=iris-batch")
    assert child["spec"]["suspend"] is True
    assert get(kube_cluster, "pods", namespace, selector="sageport.io/transform-job=iris-batch") == []

    kube_cluster.kubectl("delete", "-n", namespace, KIND, "iris-batch")
    eventually(
        lambda: get(kube_cluster, "jobs", namespace, selector="sageport.io/transform-job=iris-batch") == [],
        timeout=60,  # the garbage collector may first have to discover the new kind
        what="the Job garbage-collected with its TransformJob",
    )
