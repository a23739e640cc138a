"""A TransformJob's plan (pure): its Model and instance type resolved, its input checked, and
the shape of its Job, or a :class:`Problem` naming the field to fix.

What the API server cannot check is checked here, before any pod runs: the Model exists in the
namespace and has one container (batch transform runs no pipeline or Direct model yet), the
instance type is in the catalog, and the job's DataProcessing filters parse against its content
types (the same code the driver runs, ``sageport.batch.params.resolve``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from sageport.api.v1alpha1 import InstanceType, Model, TransformJob, TransformJobSpec
from sageport.batch.params import resolve as batch_parameters
from sageport.operator.reconcile.lookups import Body
from sageport.operator.reconcile.plan import cpu_millis, image_of, memory_bytes
from sageport.operator.reconcile.resolve import validation_message
from sageport.operator.render.images import fetched_code_url, with_code_dir
from sageport.operator.render.shape import (
    ContainerResources,
    ModelContainer,
    OwnerRef,
    RenderSettings,
    TransformShape,
)
from sageport.operator.status import Problem

# The driver's share of each instance; the model container gets the rest (as the Direct router's
# share in plan.split_resources), so a job pod requests what its instance type has.
DRIVER_CPU_MILLIS = 100
DRIVER_MEMORY_MIB = 256
# How long a TransformJob waits for its Model to appear (any creation order works, as for
# Endpoints) before it fails with ModelNotFound.
MODEL_WAIT_SECONDS = 60.0
# SageMaker's batch environment (sagemaker-semantics.md §1.6): always SAGEMAKER_BATCH, and the
# three parameters only when the job sets them.
BATCH_ENV = "SAGEMAKER_BATCH"
_MAX_JOB_NAME = 52  # an indexed Job's pods are named <job>-<index>-<5 random>: 63 at most


@dataclass(frozen=True)
class TransformPlan:
    shape: TransformShape
    model_name: str


def job_name(transform_object: str) -> str:
    """The Job's name: the TransformJob's when it is a short DNS label, else a cut one with a digest."""
    if len(transform_object) <= _MAX_JOB_NAME and re.fullmatch(
        r"[a-z]([-a-z0-9]*[a-z0-9])?", transform_object
    ):
        return transform_object
    base = re.sub(r"[^a-z0-9]+", "-", transform_object.lower()).strip("-") or "job"
    if not base[0].isalpha():
        base = f"tj-{base}"
    digest = hashlib.sha256(transform_object.encode()).hexdigest()[:8]
    return f"{base[: _MAX_JOB_NAME - 9].rstrip('-')}-{digest}"


def parse_transform_job(body: Body) -> TransformJob | Problem:
    try:
        return TransformJob.model_validate(body)
    except ValidationError as error:
        return Problem("InvalidSpec", validation_message(error), terminal=True)


def _model(
    job: TransformJob, namespace: str, models: Callable[[str], Sequence[Body]], waited: float
) -> Model | Problem:
    name = job.spec.model_name
    found = models(name)
    if not found:
        terminal = waited >= MODEL_WAIT_SECONDS
        return Problem(
            "ModelNotFound",
            f"spec.modelName: Model {name!r} not found in namespace {namespace}"
            + (
                f" (waited {MODEL_WAIT_SECONDS:.0f} s): create it and a new TransformJob"
                if terminal
                else f": create it (waiting up to {MODEL_WAIT_SECONDS:.0f} s), or fix modelName"
            )
            + " (kubectl get models.sageport.io).",
            terminal=terminal,
        )
    if len(found) > 1:
        objects = ", ".join(sorted(str(b["metadata"]["name"]) for b in found))
        return Problem(
            "AmbiguousModel",
            f"spec.modelName: {len(found)} Models in namespace {namespace} are named {name!r} ({objects}): keep one.",
            terminal=True,
        )
    try:
        model = Model.model_validate(found[0])
    except ValidationError as error:
        return Problem(
            "InvalidModel", f"spec.modelName: Model {name!r}: {validation_message(error)}", terminal=True
        )
    if len(model.spec.all_containers()) != 1:
        return Problem(
            "UnsupportedModel",
            f"spec.modelName: Model {name!r} has {len(model.spec.all_containers())} containers: batch "
            "transform runs single-container Models (primaryContainer) only.",
            terminal=True,
        )
    container = model.spec.all_containers()[0]
    if container.mode == "MultiModel":
        return Problem(
            "UnsupportedModel",
            f"spec.modelName: Model {name!r} is a MultiModel container: batch transform needs a SingleModel one.",
            terminal=True,
        )
    return model


def _split(cpu: str, memory: str) -> tuple[str, str]:
    """The instance's CPU and memory less the driver's share (at least 1 millicore and 1 MiB)."""
    millis = max(cpu_millis(cpu) - DRIVER_CPU_MILLIS, 1)
    mib = max(memory_bytes(memory) // 2**20 - DRIVER_MEMORY_MIB, 1)
    return f"{millis}m", f"{mib}Mi"


def batch_environment(
    model_env: dict[str, str] | None, spec: TransformJobSpec
) -> tuple[tuple[str, str], ...]:
    """The model container's environment in a transform job: the Model's, the job's over it (job
    values win), then SAGEMAKER_BATCH and the job's own batch parameters."""
    env = dict(model_env or {})
    env.update(spec.environment or {})
    env[BATCH_ENV] = "true"
    if spec.max_payload_in_mb is not None:
        env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(spec.max_payload_in_mb)
    if spec.batch_strategy is not None:
        env["SAGEMAKER_BATCH_STRATEGY"] = (
            "SINGLE_RECORD" if spec.batch_strategy == "SingleRecord" else "MULTI_RECORD"
        )
    if spec.max_concurrent_transforms:
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(spec.max_concurrent_transforms)
    return tuple(sorted(env.items()))


def plan_transform(
    job: TransformJob,
    *,
    models: Callable[[str], Sequence[Body]],
    instance_types: Callable[[str], Body | None],
    settings: RenderSettings,
    waited_seconds: float,
    stop_requested: bool,
) -> TransformPlan | Problem:
    """The Job of a valid TransformJob, or the problem to report (``waited_seconds``: since it
    was created, for how long a missing Model is waited for)."""
    namespace = job.metadata.namespace or "default"
    spec = job.spec
    try:
        batch_parameters(spec)
    except ValueError as error:
        return Problem("InvalidSpec", f"spec.dataProcessing: {error}", terminal=True)
    model = _model(job, namespace, models, waited_seconds)
    if isinstance(model, Problem):
        return model
    type_name = spec.transform_resources.instance_type
    type_body = instance_types(type_name)
    if type_body is None:
        return Problem(
            "InstanceTypeNotFound",
            f"spec.transformResources.instanceType: {type_name!r} is not in the catalog: pick one of "
            "`kubectl get instancetypes.sageport.io`, or add an InstanceType named so.",
            terminal=True,
        )
    try:
        instance_type = InstanceType.model_validate(type_body).spec
    except ValidationError as error:
        return Problem(
            "InvalidInstanceType", f"InstanceType {type_name!r}: {validation_message(error)}", terminal=True
        )
    container = model.spec.all_containers()[0]
    cpu, memory = _split(instance_type.cpu, instance_type.memory)
    url = container.model_data_url or (
        container.model_data_source.s3_data_source.s3_uri if container.model_data_source else None
    )
    sagemaker_name = spec.transform_job_name or job.metadata.name
    # The same image map and script mode as an endpoint's container: the Model runs as it would there.
    image = image_of(container, settings)
    environment = batch_environment(container.environment, spec)
    code_url = fetched_code_url(environment, image)
    shape = TransformShape(
        namespace=namespace,
        transform_object=job.metadata.name,
        transform_job_name=sagemaker_name,
        owner=OwnerRef(job.api_version, job.kind, job.metadata.name, job.metadata.uid or ""),
        name=job_name(job.metadata.name),
        uid=job.metadata.uid or "",
        instance_type=instance_type,
        instance_count=spec.transform_resources.instance_count,
        model=ModelContainer(
            name="model",
            image=image.resolved,
            environment=with_code_dir(environment) if code_url else environment,
            model_url=url,
            resources=ContainerResources(cpu, memory, instance_type.gpu_count),
            code_url=code_url,
        ),
        driver_resources=ContainerResources(f"{DRIVER_CPU_MILLIS}m", f"{DRIVER_MEMORY_MIB}Mi"),
        driver_memory_limit=instance_type.memory,
        spec_json=spec.model_dump_json(by_alias=True, exclude_none=True),
        stopped=stop_requested,
    )
    return TransformPlan(shape=shape, model_name=model.sagemaker_name)
