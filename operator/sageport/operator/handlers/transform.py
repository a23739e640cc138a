"""TransformJobs: their indexes, their events and their Jobs' events, and the loop that checks
the unfinished ones (a stop under way, a Model awaited, pods that do not start)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from sageport.contract import API_GROUP, API_VERSION_NAME, LABEL_TRANSFORM_JOB, Plural
from sageport.operator.handlers.indexes import OURS, Indexes, values
from sageport.operator.reconcile.lookups import key_of
from sageport.operator.reconcile.transform import TransformLookups
from sageport.operator.settings import make_transform_reconciler

log = logging.getLogger(__name__)

CHECK_SECONDS = 5


@kopf.on.startup()
async def start_transform_loop(memo: kopf.Memo, **_: Any) -> None:
    memo.transforms = make_transform_reconciler(memo.config, memo.kube)
    memo.tasks.append(asyncio.create_task(check_unfinished_forever(memo)))


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.TRANSFORM_JOBS)
async def transform_job_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): dict(body)}


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.TRANSFORM_JOBS)
async def transform_jobs_by_model(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[Any, Any]:
    return {(namespace, spec.get("modelName")): name}


@kopf.index("batch", "v1", "jobs", labels=OURS)
async def transform_job_children(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any] | None:
    owner = labels.get(LABEL_TRANSFORM_JOB)
    return {(namespace, owner): dict(body)} if owner and namespace else None


def transform_lookups(indexes: Indexes) -> TransformLookups:
    return TransformLookups(
        models=lambda ns, name: values(indexes["model_index"], (ns, name)),
        instance_types=lambda name: next(iter(values(indexes["instance_type_index"], name)), None),
        job=lambda ns, name: next(iter(values(indexes["transform_job_children"], (ns, name))), None),
    )


@kopf.on.event(API_GROUP, API_VERSION_NAME, Plural.TRANSFORM_JOBS)
async def transform_job_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    memo.live["transform_indexes"] = indexes
    if type == "DELETED":  # the Job and its pods go by ownerReference garbage collection
        memo.transforms.forget(key_of(body))
        return
    await memo.transforms.reconcile(dict(body), transform_lookups(indexes))


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_event(
    type: str,  # noqa: A002 - kopf's name
    body: kopf.Body,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    owner = labels.get(LABEL_TRANSFORM_JOB)
    if type == "DELETED" or not owner or namespace is None:
        return
    for transform in values(indexes["transform_job_index"], (namespace, owner)):
        await memo.transforms.reconcile(transform, transform_lookups(indexes), job=dict(body))


@kopf.on.event(API_GROUP, API_VERSION_NAME, Plural.MODELS)
async def model_for_transforms(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    """A Model appeared: the TransformJobs waiting for it start now rather than at the next check."""
    if type in (None, "DELETED"):
        return
    ns, name = key_of(body)
    model_name = body["spec"].get("modelName") or name
    for job_object in values(indexes["transform_jobs_by_model"], (ns, model_name)):
        for transform in values(indexes["transform_job_index"], (ns, job_object)):
            await memo.transforms.reconcile(transform, transform_lookups(indexes))


async def check_unfinished_forever(memo: kopf.Memo) -> None:
    """Every CHECK_SECONDS, refresh the TransformJobs not yet Completed, Failed or Stopped: a stop
    ends when the pods are gone (no Job event says so), a Model awaited may be given up on, a
    pod that cannot start is reported. Not a kopf timer (it would put a finalizer on each)."""
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        indexes = memo.live.get("transform_indexes")
        if indexes is None:
            continue
        for key in memo.transforms.unfinished():
            for body in values(indexes["transform_job_index"], key):
                try:
                    await memo.transforms.reconcile(body, transform_lookups(indexes))
                except Exception:  # one job's failure must not stop the others' checks
                    log.exception("check of TransformJob %s/%s failed", *key)
