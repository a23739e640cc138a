"""Operator configuration (from the environment) and kopf tuning."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from typing import Any, cast

import kopf

from sageport import contract
from sageport.api.v1alpha1 import Toleration
from sageport.kubeclient import load_api_client
from sageport.operator.alarms import prometheus_alarm_source
from sageport.operator.kube import API_CLIENT_POOL_SIZE, KubernetesApi
from sageport.operator.reconcile.endpoint import EndpointReconciler
from sageport.operator.reconcile.transform import TransformJobReconciler
from sageport.operator.render import RenderSettings
from sageport.operator.render.images import IMAGE_MAP_ENV, ImageRule, parse_image_map

PREFIX = contract.API_GROUP  # of kopf's finalizer and annotations


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator needs to know about its cluster. Every field has an env var."""

    runtime_image: str = "sageport/runtime:latest"
    image_pull_policy: str = "IfNotPresent"
    storage_endpoint_url: str | None = None  # S3-compatible endpoint for s3:// artifacts
    storage_secret: str | None = None  # Secret (in each Endpoint's namespace) with AWS_* credentials
    tolerate_taints: tuple[str, ...] = ()  # extra taint keys every variant pod tolerates
    catalog_path: str | None = None  # InstanceType YAML file or directory to keep applied (the chart's)
    # Where update bakes read which alarms fire (sageport.operator.alarms); None: no alarm source,
    # so an Endpoint naming alarms is warned, not silently rolled forward.
    prometheus_url: str | None = None
    # SageMaker framework images (regex) -> the image that runs instead; the chart's operator.imageMap
    image_rules: tuple[ImageRule, ...] = ()
    # Serverless variants: where their pods run (JSON node selector and tolerations list) and
    # the gateway's external-push scaler address KEDA connects to.
    serverless_node_selector: tuple[tuple[str, str], ...] = ()
    serverless_tolerations: tuple[Toleration, ...] = ()
    scaler_address: str = ""
    # Async inference: Redis' URL, and the Secret in each Endpoint's namespace holding its password.
    redis_url: str | None = None
    redis_secret: str | None = None

    @classmethod
    def from_env(cls) -> OperatorSettings:
        env = os.environ
        taints = tuple(t for t in env.get("SAGEPORT_TOLERATE_TAINTS", "").split(",") if t)
        return cls(
            runtime_image=env.get("SAGEPORT_RUNTIME_IMAGE", cls.runtime_image),
            image_pull_policy=env.get("SAGEPORT_IMAGE_PULL_POLICY", cls.image_pull_policy),
            storage_endpoint_url=env.get("SAGEPORT_STORAGE_ENDPOINT_URL") or None,
            storage_secret=env.get("SAGEPORT_STORAGE_SECRET") or None,
            tolerate_taints=taints,
            catalog_path=env.get("SAGEPORT_CATALOG_PATH") or None,
            prometheus_url=env.get(contract.PROMETHEUS_URL_ENV, "").strip() or None,
            image_rules=parse_image_map(env.get(IMAGE_MAP_ENV, "")),
            serverless_node_selector=tuple(
                sorted(_json_env(env, "SAGEPORT_SERVERLESS_NODE_SELECTOR", dict).items())
            ),
            serverless_tolerations=tuple(
                Toleration.model_validate(t) for t in _json_env(env, "SAGEPORT_SERVERLESS_TOLERATIONS", list)
            ),
            scaler_address=env.get("SAGEPORT_SCALER_ADDRESS", "").strip(),
            redis_url=env.get(contract.REDIS_URL_ENV, "").strip() or None,
            redis_secret=env.get("SAGEPORT_REDIS_SECRET", "").strip() or None,
        )

    def render_settings(self) -> RenderSettings:
        storage_env = (("AWS_ENDPOINT_URL", self.storage_endpoint_url),) if self.storage_endpoint_url else ()
        return RenderSettings(
            runtime_image=self.runtime_image,
            image_pull_policy=self.image_pull_policy,
            storage_env=storage_env,
            storage_secret=self.storage_secret,
            tolerate_taints=self.tolerate_taints,
            image_rules=self.image_rules,
            serverless_node_selector=self.serverless_node_selector,
            serverless_tolerations=self.serverless_tolerations,
            scaler_address=self.scaler_address,
            redis_url=self.redis_url,
            redis_secret=self.redis_secret,
        )


def _json_env(env: os._Environ[str], name: str, kind: type[Any]) -> Any:
    """A JSON object or list from ``name`` (empty when unset); a malformed one stops the operator."""
    text = env.get(name, "").strip()
    value = json.loads(text) if text else kind()
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a JSON {kind.__name__}, got {text!r}")
    return value


class _NoDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The operator registers only event handlers, never kopf's create/update/delete ones, so
    the diff-base kopf builds on every watch event (a deep copy of the whole object) is never
    read: profiling 300 Endpoints showed it at a fifth of the operator's CPU. Build nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Our own names for kopf's state, and watch timeouts so a silently dead watch is replaced."""
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = _NoDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.posting.level = 30  # WARNING: events for problems, not for every handler run
    settings.execution.max_workers = 32


def make_reconciler(config: OperatorSettings) -> tuple[EndpointReconciler, KubernetesApi]:
    kube = KubernetesApi(load_api_client(pool_size=API_CLIENT_POOL_SIZE), contract.MANAGED_BY)
    alarms = prometheus_alarm_source(config.prometheus_url) if config.prometheus_url else None
    reconciler = EndpointReconciler(
        kube, config.render_settings(), lambda: datetime.datetime.now(datetime.UTC), alarms
    )
    return reconciler, kube


def make_transform_reconciler(config: OperatorSettings, kube: KubernetesApi) -> TransformJobReconciler:
    return TransformJobReconciler(kube, config.render_settings(), lambda: datetime.datetime.now(datetime.UTC))
