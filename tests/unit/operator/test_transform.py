"""TransformJobs: the plan (Model, instance type, checks), the Job render against its golden file,
the status computed from Job and pod states, and the reconciler against an in-memory client.

Regenerate the golden after an intended change with SAGEPORT_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from sageport.api.v1alpha1 import TransformJob, TransformJobStatus
from sageport.contract import ANNOTATION_STOP_REQUESTED, LABEL_TRANSFORM_JOB
from sageport.operator.catalog import catalog_manifests
from sageport.operator.reconcile.transform import TransformJobReconciler, TransformLookups
from sageport.operator.reconcile.transform_plan import (
    MODEL_WAIT_SECONDS,
    TransformPlan,
    job_name,
    plan_transform,
)
from sageport.operator.render import RenderSettings
from sageport.operator.render.job import transform_job
from sageport.operator.status import Problem
from sageport.operator.transform_status import transform_status, transform_status_patch
from tests.support.manifests import EXAMPLES, REPO, load_documents

GOLDEN = REPO / "tests" / "data" / "golden" / "batch-transform.yaml"
SETTINGS = RenderSettings(
    runtime_image="sageport/runtime:test",
    storage_env=(("AWS_ENDPOINT_URL", "http://s3:9000"),),
    storage_secret="model-storage",
)
CATALOG = {m["metadata"]["name"]: m for m in catalog_manifests()}
LOCAL = {
    "apiVersion": "sageport.io/v1alpha1",
    "kind": "InstanceType",
    "metadata": {"name": "local"},
    "spec": {
        "cpu": "250m",
        "memory": "1Gi",
        "nodeSelector": {"sageport.io/local-node": "true"},
        "tolerations": [{"key": "sageport.io/local-node", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _docs() -> tuple[dict[str, Any], dict[str, Any]]:
    docs = load_documents(EXAMPLES / "batch-transform")
    for doc in docs:
        doc["metadata"].update(namespace="ml", uid=f"uid-{doc['metadata']['name']}", generation=1)
        doc["metadata"]["creationTimestamp"] = NOW.isoformat()
    model = next(d for d in docs if d["kind"] == "Model")
    job = next(d for d in docs if d["kind"] == "TransformJob")
    return model, job


def _plan(
    job: dict[str, Any], models: Sequence[dict[str, Any]], *, waited: float = 0.0, stop: bool = False
) -> TransformPlan | Problem:
    return plan_transform(
        TransformJob.model_validate(job),
        models=lambda name: [
            m for m in models if (m["spec"].get("modelName") or m["metadata"]["name"]) == name
        ],
        instance_types=lambda name: {**CATALOG, "local": LOCAL}.get(name),
        settings=SETTINGS,
        waited_seconds=waited,
        stop_requested=stop,
    )


def _rendered(job: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    default_model, default_job = _docs()
    plan = _plan(job or default_job, [model or default_model])
    assert isinstance(plan, TransformPlan), plan
    return transform_job(plan.shape, SETTINGS)


# --- render ---------------------------------------------------------------------------------


def test_the_example_renders_like_its_golden() -> None:
    text = yaml.safe_dump(json.loads(json.dumps(_rendered())), sort_keys=True)
    if os.environ.get("SAGEPORT_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "the Job differs from tests/data/golden/batch-transform.yaml"


def test_an_indexed_job_of_instance_count_pods_owned_by_the_transform_job() -> None:
    model, job = _docs()
    job["spec"]["transformResources"]["instanceCount"] = 3
    rendered = _rendered(job, model)
    spec = rendered["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["suspend"] is False
    assert rendered["metadata"]["namespace"] == "ml"
    owner = rendered["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "TransformJob",
        "iris-batch",
        "uid-iris-batch",
        True,
    )
    assert rendered["metadata"]["labels"][LABEL_TRANSFORM_JOB] == "iris-batch"
    assert spec["template"]["metadata"]["labels"][LABEL_TRANSFORM_JOB] == "iris-batch"


def test_the_model_is_a_native_sidecar_and_the_driver_the_pods_only_container() -> None:
    pod = _rendered()["spec"]["template"]["spec"]
    fetch, model = pod["initContainers"]
    (driver,) = pod["containers"]
    assert pod["restartPolicy"] == "Never"
    assert fetch["name"] == "model-fetch"
    assert "restartPolicy" not in fetch
    assert fetch["command"][-2:] == ["s3://sageport-models/iris/model.tar.gz", "/opt/ml/model"]
    assert model["restartPolicy"] == "Always"
    assert model["args"] == ["serve"]
    assert model["image"] == "sageport/runtime:test"
    assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(model)  # the driver waits for /ping
    assert {"name": "model", "mountPath": "/opt/ml/model", "readOnly": True} in model["volumeMounts"]
    assert driver["command"] == ["python", "-m", "sageport.batch", "run", "--model-url=http://127.0.0.1:8080"]
    assert driver["terminationMessagePath"] == "/dev/termination-log"
    env = {e["name"]: e for e in driver["env"]}
    assert json.loads(env["SAGEPORT_TRANSFORM_JOB"]["value"])["transformInput"]["splitType"] == "Line"
    assert env["SAGEPORT_TRANSFORM_JOB_UID"]["value"] == "uid-iris-batch"
    assert env["SAGEPORT_TRANSFORM_RETRY"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-index-failure-count']"
    )
    # S3 as the model fetcher gets it: the endpoint and the credentials Secret.
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://s3:9000"
    for container in (fetch, driver):
        assert container["envFrom"] == [{"secretRef": {"name": "model-storage"}}]


def test_restricted_pod_security_everywhere() -> None:
    pod = _rendered()["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    for container in [*pod["initContainers"], *pod["containers"]]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}


def test_placement_and_resources_come_from_the_instance_type() -> None:
    model, job = _docs()
    job["spec"]["transformResources"]["instanceType"] = "local"
    pod = _rendered(job, model)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"sageport.io/local-node": "true"}
    assert pod["tolerations"] == LOCAL["spec"]["tolerations"]
    sidecar, driver = pod["initContainers"][1], pod["containers"][0]
    # The pod requests what the instance has: the driver's share, the model the rest.
    assert sidecar["resources"] == {
        "requests": {"cpu": "150m", "memory": "768Mi"},
        "limits": {"memory": "768Mi"},
    }
    assert driver["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_a_gpu_instance_gives_the_model_every_gpu() -> None:
    model, job = _docs()
    job["spec"]["transformResources"]["instanceType"] = "ml.g5.xlarge"
    pod = _rendered(job, model)["spec"]["template"]["spec"]
    sidecar = pod["initContainers"][1]
    assert sidecar["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"]["nvidia.com/gpu.product"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["requests"]


def test_the_model_gets_its_environment_the_jobs_over_it_and_sagemakers_batch_variables() -> None:
    model, job = _docs()
    model["spec"]["primaryContainer"]["environment"] = {"A": "model", "B": "model"}
    job["spec"]["environment"] = {"B": "job"}
    job["spec"].pop("maxConcurrentTransforms")
    pod = _rendered(job, model)["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["initContainers"][1]["env"]}
    assert env["A"] == "model"
    assert env["B"] == "job"
    assert env["SAGEMAKER_BATCH"] == "true"
    assert env["SAGEMAKER_BATCH_STRATEGY"] == "MULTI_RECORD"
    assert env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "1"
    assert "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS" not in env  # only what the job sets


def test_failure_rules_fail_the_index_on_the_drivers_verdict_and_retry_the_rest() -> None:
    spec = _rendered()["spec"]
    assert spec["backoffLimitPerIndex"] == 3
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailIndex",
        "onExitCodes": {"containerName": "driver", "operator": "In", "values": [1]},
    }
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_a_stop_suspends_the_job() -> None:
    model, job = _docs()
    plan = _plan(job, [model], stop=True)
    assert isinstance(plan, TransformPlan)
    assert transform_job(plan.shape, SETTINGS)["spec"]["suspend"] is True


def test_job_names_are_short_dns_labels() -> None:
    assert job_name("iris-batch") == "iris-batch"
    long = job_name("a" * 80)
    assert len(long) <= 52
    assert long != job_name("a" * 81)
    assert job_name("Nightly.Scoring_2026").startswith("nightly-scoring-2026-")
    assert job_name("2026-run")[0].isalpha()


# --- plan: what the API server cannot check -------------------------------------------------


def test_a_missing_model_is_awaited_then_fails_naming_the_field() -> None:
    _, job = _docs()
    waiting = _plan(job, [])
    assert isinstance(waiting, Problem)
    assert not waiting.terminal
    assert waiting.reason == "ModelNotFound"
    assert "spec.modelName: Model 'iris-batch-model' not found in namespace ml" in waiting.message
    failed = _plan(job, [], waited=MODEL_WAIT_SECONDS)
    assert isinstance(failed, Problem)
    assert failed.terminal
    assert "spec.modelName" in failed.message


def test_unsupported_models_and_instance_types_fail_naming_the_field() -> None:
    model, job = _docs()
    multi = copy.deepcopy(model)
    container = multi["spec"].pop("primaryContainer")
    multi["spec"]["containers"] = [container, container]
    problem = _plan(job, [multi])
    assert isinstance(problem, Problem)
    assert problem.reason == "UnsupportedModel"
    assert "single-container" in problem.message
    job["spec"]["transformResources"]["instanceType"] = "ml.nope.large"
    problem = _plan(job, [model])
    assert isinstance(problem, Problem)
    assert problem.reason == "InstanceTypeNotFound"
    assert problem.message.startswith("spec.transformResources.instanceType: 'ml.nope.large'")


def test_filters_the_driver_would_refuse_fail_before_any_pod_runs() -> None:
    model, job = _docs()
    job["spec"]["dataProcessing"] = {"joinSource": "Input"}
    job["spec"]["transformOutput"]["accept"] = "application/json"
    problem = _plan(job, [model])
    assert isinstance(problem, Problem)
    assert problem.terminal
    assert problem.message == "spec.dataProcessing: JoinSource Input needs Accept equal to ContentType"


# --- status from the Job and its pods ---------------------------------------------------------


def _job(*conditions: tuple[str, str], suspend: bool = False, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-batch"},
        "spec": {"completions": 2, "suspend": suspend},
        "status": {
            "startTime": "2026-01-01T12:00:05Z",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": when} for t, when in conditions
            ],
            **status,
        },
    }


def _pod(index: int, phase: str, result: dict[str, Any] | None = None, **containers: Any) -> dict[str, Any]:
    statuses = []
    if result is not None:
        statuses.append(
            {
                "name": "driver",
                "state": {
                    "terminated": {
                        "exitCode": 0 if phase == "Succeeded" else 1,
                        "message": json.dumps(result),
                    }
                },
            }
        )
    return {
        "metadata": {
            "name": f"iris-batch-{index}-abcde",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            "creationTimestamp": f"2026-01-01T12:00:0{index}Z",
        },
        "status": {"phase": phase, "containerStatuses": statuses, **containers},
    }


def _status(
    previous: TransformJobStatus | None = None,
    *,
    job: dict[str, Any] | None = None,
    pods: Sequence[dict[str, Any]] = (),
    problem: Problem | None = None,
    stop: bool = False,
) -> TransformJobStatus:
    return transform_status(
        previous=previous, generation=1, problem=problem, job=job, pods=pods, stop=stop, now=NOW
    )


def _conditions(status: TransformJobStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions or []}


def test_a_running_job_is_in_progress_and_ready() -> None:
    status = _status(job=_job(), pods=[_pod(0, "Running"), _pod(1, "Running")])
    assert status.transform_job_status == "InProgress"
    assert status.transform_start_time == datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert status.transform_end_time is None
    assert status.failure_reason is None
    assert status.job_name == "iris-batch"
    assert _conditions(status) == {"Ready": ("True", "InProgress"), "Succeeded": ("Unknown", "InProgress")}


def test_a_pod_that_cannot_run_is_reported_while_in_progress() -> None:
    stuck = _pod(0, "Pending", initContainerStatuses=[
        {"name": "model-fetch", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}
    ])  # fmt: skip
    status = _status(job=_job(), pods=[stuck])
    assert status.transform_job_status == "InProgress"
    ready = next(c for c in status.conditions or [] if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "InstanceNotRunning")
    assert "container model-fetch of pod iris-batch-0-abcde: CrashLoopBackOff" in ready.message


def test_a_complete_job_is_completed_with_its_times_and_counts() -> None:
    done = {"transformJobStatus": "Completed", "objects": 2, "records": 10}
    job = _job(("Complete", "2026-01-01T12:01:00Z"), completionTime="2026-01-01T12:01:00Z")
    status = _status(job=job, pods=[_pod(0, "Succeeded", done), _pod(1, "Succeeded", done)])
    assert status.transform_job_status == "Completed"
    assert status.transform_end_time == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
    assert _conditions(status) == {"Ready": ("True", "Completed"), "Succeeded": ("True", "Completed")}
    succeeded = next(c for c in status.conditions or [] if c.type == "Succeeded")
    assert succeeded.message == "Every input object was transformed: 4 objects, 20 records."


def test_a_failed_job_names_the_object_and_the_error_from_the_drivers_message() -> None:
    reason = "s3://batch/in/bad.csv: ClientError: 500: could not convert string"
    pods = [
        _pod(0, "Succeeded", {"transformJobStatus": "Completed", "objects": 1}),
        _pod(1, "Failed", {"transformJobStatus": "Failed", "failureReason": reason, "failedObjects": []}),
    ]
    status = _status(job=_job(("Failed", "2026-01-01T12:02:00Z")), pods=pods)
    assert status.transform_job_status == "Failed"
    assert status.failure_reason == reason
    assert status.transform_end_time == datetime(2026, 1, 1, 12, 2, tzinfo=UTC)
    assert _conditions(status) == {"Ready": ("False", "Failed"), "Succeeded": ("False", "Failed")}


def test_a_failed_fetch_or_a_silent_job_still_says_why() -> None:
    fetch_failed = _pod(0, "Failed", initContainerStatuses=[
        {"name": "model-fetch", "state": {"terminated": {"exitCode": 1, "message": "NoSuchKey: model.tar.gz"}}}
    ])  # fmt: skip
    status = _status(job=_job(("Failed", "2026-01-01T12:02:00Z")), pods=[fetch_failed])
    assert status.failure_reason == "container model-fetch exited 1: NoSuchKey: model.tar.gz"
    job = _job(("Failed", "2026-01-01T12:02:00Z"))
    job["status"]["conditions"][0].update(reason="FailedIndexes", message="Job has failed indexes")
    assert _status(job=job).failure_reason == "FailedIndexes: Job has failed indexes"


def test_a_stop_is_stopping_until_the_pods_are_gone_then_stopped() -> None:
    job = _job(("Suspended", "2026-01-01T12:00:30Z"), suspend=True)
    stopping = _status(job=job, pods=[_pod(0, "Running")], stop=True)
    assert stopping.transform_job_status == "Stopping"
    assert _conditions(stopping) == {"Ready": ("False", "Stopping"), "Succeeded": ("Unknown", "Stopping")}
    stopped = _status(stopping, job=job, pods=[_pod(0, "Failed")], stop=True)
    assert stopped.transform_job_status == "Stopped"
    assert stopped.transform_end_time == NOW
    assert _conditions(stopped) == {"Ready": ("False", "Stopped"), "Succeeded": ("False", "Stopped")}


def test_a_job_that_ended_before_the_stop_keeps_its_end() -> None:
    job = _job(("Complete", "2026-01-01T12:01:00Z"))
    assert _status(job=job, stop=True).transform_job_status == "Completed"


def test_final_statuses_never_change() -> None:
    failed = _status(job=_job(("Failed", "2026-01-01T12:02:00Z")))
    assert _status(failed, job=_job(("Complete", "2026-01-01T12:03:00Z"))) is failed
    assert _status(failed, stop=True) is failed


def test_problems_wait_or_fail() -> None:
    waiting = _status(problem=Problem("ModelNotFound", "spec.modelName: Model 'm' not found", terminal=False))
    assert waiting.transform_job_status == "InProgress"
    assert _conditions(waiting)["Ready"] == ("False", "ModelNotFound")
    failed = _status(waiting, problem=Problem("ModelNotFound", "spec.modelName: gone", terminal=True))
    assert failed.transform_job_status == "Failed"
    assert failed.failure_reason == "spec.modelName: gone"
    assert failed.transform_end_time == NOW
    stopped = _status(waiting, problem=Problem("ModelNotFound", "x", terminal=False), stop=True)
    assert stopped.transform_job_status == "Stopped"  # nothing ran: stopped at once


def test_an_unchanged_status_is_the_previous_object_and_the_patch_clears_unset_fields() -> None:
    running = _status(job=_job())
    assert _status(running, job=_job()) is running
    patch = transform_status_patch(running)
    assert patch["transformJobStatus"] == "InProgress"
    assert patch["failureReason"] is None
    assert patch["transformEndTime"] is None


# --- the reconciler -------------------------------------------------------------------------


class FakeKube:
    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []
        self.patched: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(manifest)
        return manifest

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        missing_ok: bool = False,
    ) -> None:
        self.patched.append((name, patch))

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        assert label_selector == f"{LABEL_TRANSFORM_JOB}=iris-batch"
        return self.pods

    async def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        self.statuses.append(status)

    async def create_event(self, event: dict[str, Any]) -> None:
        raise AssertionError("no events")

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        raise AssertionError("the operator never deletes a TransformJob's Job")


def _reconcile(
    reconciler: TransformJobReconciler,
    body: dict[str, Any],
    models: list[dict[str, Any]],
    job: dict[str, Any] | None,
) -> TransformJobStatus | None:
    lookups = TransformLookups(
        models=lambda _ns, name: [m for m in models if m["spec"]["modelName"] == name],
        instance_types=CATALOG.get,
        job=lambda _ns, _name: job,
    )
    return asyncio.run(reconciler.reconcile(body, lookups))


def test_the_reconciler_creates_the_job_once_and_suspends_it_on_a_stop() -> None:
    kube = FakeKube()
    reconciler = TransformJobReconciler(kube, SETTINGS, lambda: NOW + timedelta(seconds=1))  # type: ignore[arg-type]
    model, body = _docs()
    status = _reconcile(reconciler, body, [model], None)
    assert [m["kind"] for m in kube.applied] == ["Job"]
    assert status is not None
    assert status.transform_job_status == "InProgress"
    assert kube.statuses[-1]["jobName"] == "iris-batch"

    job = copy.deepcopy(kube.applied[0]) | {"status": {"active": 1}}
    kube.pods = [_pod(0, "Running")]
    assert _reconcile(reconciler, body, [model], job) is None  # nothing new to say
    assert len(kube.applied) == 1  # never applied again

    body["metadata"]["annotations"] = {ANNOTATION_STOP_REQUESTED: "true"}
    status = _reconcile(reconciler, body, [model], job)
    assert kube.patched == [("iris-batch", {"spec": {"suspend": True}})]
    assert status is not None
    assert status.transform_job_status == "Stopping"
    kube.pods = []
    status = _reconcile(reconciler, body, [model], job | {"spec": {**job["spec"], "suspend": True}})
    assert status is not None
    assert status.transform_job_status == "Stopped"
    assert reconciler.unfinished() == []


def test_the_reconciler_waits_for_the_model_and_creates_nothing_meanwhile() -> None:
    kube = FakeKube()
    reconciler = TransformJobReconciler(kube, SETTINGS, lambda: NOW + timedelta(seconds=5))  # type: ignore[arg-type]
    _, body = _docs()
    status = _reconcile(reconciler, body, [], None)
    assert kube.applied == []
    assert status is not None
    assert status.transform_job_status == "InProgress"
    assert reconciler.unfinished() == [("ml", "iris-batch")]
    later = TransformJobReconciler(kube, SETTINGS, lambda: NOW + timedelta(seconds=MODEL_WAIT_SECONDS + 1))  # type: ignore[arg-type]
    status = _reconcile(later, body, [], None)
    assert status is not None
    assert status.transform_job_status == "Failed"
    assert status.failure_reason
    assert status.failure_reason.startswith("spec.modelName: Model 'iris-batch-model'")


def test_an_invalid_spec_fails_naming_the_field() -> None:
    kube = FakeKube()
    reconciler = TransformJobReconciler(kube, SETTINGS, lambda: NOW)  # type: ignore[arg-type]
    model, body = _docs()
    body["spec"]["maxPayloadInMB"] = 101
    status = _reconcile(reconciler, body, [model], None)
    assert status is not None
    assert status.transform_job_status == "Failed"
    assert status.failure_reason
    assert "maxPayloadInMB" in status.failure_reason
    assert kube.applied == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"maxPayloadInMB": 101}, "less than or equal to 100"),
        ({"maxConcurrentTransforms": 20, "maxPayloadInMB": 6}, "must not exceed 100"),
        ({"transformInput": {"splitType": "None"}, "batchStrategy": "SingleRecord"}, "batchStrategy needs"),
        (
            {"transformInput": {"dataSource": {"s3DataSource": {"s3DataType": "AugmentedManifestFile"}}}},
            "AugmentedManifestFile",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    _, body = _docs()

    def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
        for k, v in update.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = v

    merge(body["spec"], change)
    with pytest.raises(ValueError, match=message):
        TransformJob.model_validate(body)
