"""The Endpoint reconciler against an in-memory fake of the client adapter."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from sageport.contract import config_label
from sageport.operator.catalog import catalog_manifests
from sageport.operator.reconcile.endpoint import EndpointReconciler
from sageport.operator.reconcile.lookups import ChildRef, Lookups
from sageport.operator.render import RenderSettings
from sageport.operator.status import VariantObservation, rolled_back_status
from tests.support.capture import EXAMPLE_CAPTURE_SUMMARY
from tests.support.manifests import EXAMPLES, load_documents

CATALOG = {m["metadata"]["name"]: m for m in catalog_manifests()}


class FakeKube:
    def __init__(self) -> None:
        self.applied: list[dict[str, Any]] = []
        self.deleted: list[tuple[str, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.patched: list[tuple[str, dict[str, Any]]] = []

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(manifest)
        return manifest

    async def create_event(self, event: dict[str, Any]) -> None:
        self.created.append(event)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.deleted.append((kind, name))

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return self.pods

    async def create_pod(self, pod: dict[str, Any]) -> None:
        self.pods.append(pod)

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

    async def delete_pod(self, namespace: str, name: str) -> None:
        self.deleted.append(("Pod", name))

    async def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        self.statuses.append(status)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _world(example: str) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    docs = load_documents(EXAMPLES / example)
    for doc in docs:
        doc["metadata"].update(namespace="ml", uid="u1", generation=1)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind["Endpoint"][0], by_kind


def _lookups(
    by_kind: dict[str, list[dict[str, Any]]],
    observed: dict[str, VariantObservation],
    children: list[ChildRef],
) -> Lookups:
    def named(kind: str) -> Any:
        return lambda _ns, name: [d for d in by_kind.get(kind, []) if d["metadata"]["name"] == name]

    return Lookups(
        configs=named("EndpointConfig"),
        models=named("Model"),
        instance_types=CATALOG.get,
        # The fleet of the config the Endpoint names (tests here run no update).
        observations=lambda _ns, _name: {
            (config_label(by_kind["Endpoint"][0]["spec"]["endpointConfigName"]), variant): seen
            for variant, seen in observed.items()
        },
        children=lambda _ns, _name: children,
    )


def _reconciler(kube: FakeKube) -> EndpointReconciler:
    return EndpointReconciler(kube, RenderSettings(), lambda: datetime(2026, 1, 1, tzinfo=UTC))


async def test_full_run_applies_children_and_writes_status_once() -> None:
    kube = FakeKube()
    reconciler = _reconciler(kube)
    endpoint, world = _world("ab-test-two-variants")
    await reconciler.reconcile(endpoint, _lookups(world, {}, []))
    assert (
        sorted(m["kind"] for m in kube.applied)
        == ["Deployment"] * 2 + ["PodDisruptionBudget"] * 2 + ["Service"] * 2
    )
    assert kube.statuses[-1]["endpointStatus"] == "Creating"

    ready = {"variant-a": VariantObservation(2), "variant-b": VariantObservation(1)}
    await reconciler.refresh_status(endpoint, _lookups(world, ready, []))
    assert kube.statuses[-1]["endpointStatus"] == "InService"
    writes = len(kube.statuses)
    await reconciler.refresh_status(endpoint, _lookups(world, ready, []))
    assert len(kube.statuses) == writes  # nothing changed, nothing written


async def test_children_of_removed_variants_are_deleted() -> None:
    kube = FakeKube()
    endpoint, world = _world("realtime-sklearn")
    leftovers = [
        ChildRef("apps/v1", "Deployment", "iris-old"),
        ChildRef("autoscaling/v2", "HorizontalPodAutoscaler", "iris-x"),
    ]
    await _reconciler(kube).reconcile(endpoint, _lookups(world, {}, leftovers))
    assert sorted(kube.deleted) == [("Deployment", "iris-old"), ("HorizontalPodAutoscaler", "iris-x")]


async def test_refresh_before_any_full_run_writes_nothing() -> None:
    kube = FakeKube()
    endpoint, world = _world("realtime-sklearn")
    assert await _reconciler(kube).refresh_status(endpoint, _lookups(world, {}, [])) is None
    assert kube.statuses == []


async def test_missing_model_is_reported_and_nothing_applied() -> None:
    kube = FakeKube()
    endpoint, world = _world("realtime-sklearn")
    del world["Model"]
    await _reconciler(kube).reconcile(endpoint, _lookups(world, {}, []))
    assert kube.applied == []
    status = kube.statuses[-1]
    assert status["conditions"][0]["reason"] == "ModelNotFound"
    assert "iris-sklearn" in status["failureReason"]


async def test_pending_pods_report_why_they_cannot_be_scheduled() -> None:
    kube = FakeKube()
    reconciler = _reconciler(kube)
    endpoint, world = _world("realtime-sklearn")
    await reconciler.reconcile(endpoint, _lookups(world, {}, []))
    message = "0/9 nodes are available: 9 Insufficient nvidia.com/gpu."
    kube.pods = [
        {
            "metadata": {"labels": {"sageport.io/variant": "AllTraffic"}},
            "status": {
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
                ]
            },
        }
    ]
    waiting = {"AllTraffic": VariantObservation(0, desired_instances=1)}
    await reconciler.check_pending_pods(endpoint, _lookups(world, waiting, []))
    status = kube.statuses[-1]
    assert status["conditions"][0]["reason"] == "Unschedulable"
    assert message in status["failureReason"]
    # Once the pod runs, the old message is stale and the endpoint is in service.
    await reconciler.refresh_status(endpoint, _lookups(world, {"AllTraffic": VariantObservation(1)}, []))
    assert kube.statuses[-1]["endpointStatus"] == "InService"


async def test_fields_not_acted_on_warn_once_and_are_in_the_ready_message() -> None:
    kube = FakeKube()
    reconciler = _reconciler(kube)
    endpoint, world = _world("realtime-sklearn")
    world["EndpointConfig"][0]["spec"]["kmsKeyID"] = "alias/volumes"
    lookups = _lookups(world, {"AllTraffic": VariantObservation(1)}, [])
    await reconciler.reconcile(endpoint, lookups)
    await reconciler.resync(endpoint, lookups)
    await reconciler.reconcile(endpoint, lookups)
    (event,) = kube.created
    sentence = "Accepted but not acted on yet: EndpointConfig.kmsKeyID."
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "AcceptedNotActedOn", sentence)
    assert event["involvedObject"] == {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Endpoint",
        "name": "iris",
        "namespace": "ml",
        "uid": "u1",
    }
    ready = kube.statuses[-1]["conditions"][0]
    assert (ready["status"], kube.statuses[-1]["endpointStatus"]) == ("True", "InService")
    assert ready["message"].endswith(sentence)


async def test_the_serving_configs_data_capture_is_in_the_status_for_the_gateway() -> None:
    kube = FakeKube()
    reconciler = _reconciler(kube)
    endpoint, world = _world("data-capture")
    ready = _lookups(world, {"AllTraffic": VariantObservation(1)}, [])
    await reconciler.reconcile(endpoint, ready)
    status = kube.statuses[-1]
    assert status["endpointStatus"] == "InService"
    assert status["dataCaptureConfig"] == EXAMPLE_CAPTURE_SUMMARY
    writes = len(kube.statuses)
    await reconciler.refresh_status(endpoint, ready)
    await reconciler.reconcile(endpoint, ready)
    assert len(kube.statuses) == writes  # nothing changed, nothing written


async def test_alarms_without_a_prometheus_are_a_warning_and_in_the_ready_message() -> None:
    kube = FakeKube()
    endpoint, world = _world("realtime-sklearn")
    endpoint["spec"]["deploymentConfig"] = {
        "autoRollbackConfiguration": {"alarms": [{"alarmName": "errors"}]}
    }
    await _reconciler(kube).reconcile(endpoint, _lookups(world, {"AllTraffic": VariantObservation(1)}, []))
    (event,) = kube.created
    assert event["type"] == "Warning"
    assert (
        "no Prometheus to read alarms from: set the chart value operator.alarms.prometheusUrl"
        in event["message"]
    )
    assert "operator.alarms.prometheusUrl" in kube.statuses[-1]["conditions"][0]["message"]


async def test_a_restarted_operator_keeps_a_rolled_back_update_rolled_back() -> None:
    """The rollback is in the status it wrote: a fresh reconciler (no memory) applies the
    serving config again, not the failed one, until the spec changes."""
    kube = FakeKube()
    endpoint, world = _world("realtime-sklearn")
    v2 = copy.deepcopy(world["EndpointConfig"][0])
    v2["metadata"]["name"] = v2["spec"]["endpointConfigName"] = "iris-config-v2"
    world["EndpointConfig"].append(v2)
    lookups = _lookups(world, {"AllTraffic": VariantObservation(1)}, [])
    first = _reconciler(kube)
    serving = await first.reconcile(endpoint, lookups)
    assert serving is not None
    assert serving.endpoint_status == "InService"
    back = rolled_back_status(
        serving, generation=2, failed_config="iris-config-v2", reason="alarm x", now=NOW
    )
    endpoint = {**endpoint, "metadata": {**endpoint["metadata"], "generation": 2},
                "spec": {**endpoint["spec"], "endpointConfigName": "iris-config-v2"}, "status": back.to_wire()}  # fmt: skip
    kube.applied.clear()
    await _reconciler(kube).reconcile(endpoint, lookups)
    configs = {m["metadata"]["labels"]["sageport.io/endpoint-config"] for m in kube.applied}
    assert configs == {"iris-config-v1"}
    assert kube.statuses[-1]["endpointConfigName"] == "iris-config-v1"
    assert "rolled back" in kube.statuses[-1]["failureReason"]


async def test_a_serial_pipeline_gets_stage_pods_for_each_placed_instance() -> None:
    kube = FakeKube()
    reconciler = _reconciler(kube)
    endpoint, world = _world("serial-pipeline")
    await reconciler.reconcile(endpoint, _lookups(world, {"AllTraffic": VariantObservation(2)}, []))
    status = kube.statuses[-1]["productionVariants"][0]
    assert status["currentInstanceCount"] == 2  # instances (anchors), not pods
    assert status["pipelineHostnames"] == ["preprocess", "model", "postprocess"]
    assert len(status["deployedImages"]) == 3
    assert reconciler.pipelines() == [("ml", "iris-pipeline")]
    labels = {
        "sageport.io/variant": "AllTraffic",
        "sageport.io/role": "instance",
        "sageport.io/endpoint-object": "iris-pipeline",
    }
    kube.pods = [{"metadata": {"name": "a1", "uid": "u", "labels": labels}, "spec": {"nodeName": "n1"}}]
    done = await reconciler.keep_pipelines(("ml", "iris-pipeline"))
    assert kube.patched == [("a1", {"metadata": {"labels": {"sageport.io/instance": "a1"}}})]
    assert [p["metadata"]["name"] for p in done.create] == ["a1-model", "a1-postprocess"]
    assert [p["metadata"]["name"] for p in kube.pods[1:]] == ["a1-model", "a1-postprocess"]
    reconciler.forget(("ml", "iris-pipeline"))
    assert reconciler.pipelines() == []
