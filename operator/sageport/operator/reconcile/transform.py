"""TransformJob reconciler: plan -> the indexed Job (created once, suspended on a stop) -> status.

A TransformJob runs once: its Job is created when the job is valid and its Model is there, is
never changed afterwards except for ``spec.suspend`` (StopTransformJob), and goes with the
TransformJob (ownerReference: deleting the TransformJob deletes the Job, which deletes its pods).
The status is computed from the Job and its pods' termination messages on every event of
either, and by a periodic check while a job is Stopping or waiting for its Model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from sageport.api.v1alpha1 import TransformJobStatus
from sageport.contract import API_VERSION, LABEL_TRANSFORM_JOB, Plural
from sageport.operator.kube import KubeApi, KubeError
from sageport.operator.reconcile.lookups import Body, Key, key_of
from sageport.operator.reconcile.transform_plan import (
    TransformPlan,
    job_name,
    parse_transform_job,
    plan_transform,
)
from sageport.operator.render.job import transform_job
from sageport.operator.render.shape import RenderSettings
from sageport.operator.status import Problem
from sageport.operator.transform_status import FINAL, stop_requested, transform_status, transform_status_patch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformLookups:
    """Read-only views over the operator's indexes (tests pass lambdas)."""

    models: Callable[[str, str], Sequence[Body]]
    instance_types: Callable[[str], Body | None]
    job: Callable[[str, str], Body | None]  # the Job of a TransformJob, by its (namespace, name)


def _parse_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def previous_status(body: Body) -> TransformJobStatus | None:
    raw = body.get("status")
    if not raw:
        return None
    try:
        return TransformJobStatus.model_validate(raw)
    except ValidationError:
        return None


class TransformJobReconciler:
    def __init__(self, kube: KubeApi, settings: RenderSettings, clock: Callable[[], datetime]) -> None:
        self._kube = kube
        self._settings = settings
        self._clock = clock
        self._locks: dict[Key, asyncio.Lock] = {}
        self._written: dict[Key, TransformJobStatus] = {}

    def forget(self, key: Key) -> None:
        self._locks.pop(key, None)
        self._written.pop(key, None)

    def unfinished(self) -> list[Key]:
        """TransformJobs whose last written status is not final (the periodic check's)."""
        return [key for key, status in self._written.items() if status.transform_job_status not in FINAL]

    def last_written(self, key: Key) -> TransformJobStatus | None:
        return self._written.get(key)

    async def reconcile(
        self, body: Body, lookups: TransformLookups, job: Body | None = None
    ) -> TransformJobStatus | None:
        """Create or stop the Job as the TransformJob asks, then write its status (returned, if written).
        ``job``: the Job as an event just delivered it (fresher than the index)."""
        key = key_of(body)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._reconcile(key, body, lookups, job)

    async def _reconcile(
        self, key: Key, body: Body, lookups: TransformLookups, job: Body | None
    ) -> TransformJobStatus | None:
        if body["metadata"].get("deletionTimestamp"):
            return None  # its Job and pods go by garbage collection
        previous = self._written.get(key) or previous_status(body)
        if previous is not None and previous.transform_job_status in FINAL:
            self._written[key] = previous
            return None
        now = self._clock()
        stop = stop_requested(body)
        job = job if job is not None else lookups.job(*key)
        problem: Problem | None = None
        parsed = parse_transform_job(body)
        if isinstance(parsed, Problem):
            problem = parsed
        elif job is None:  # not started yet: everything it needs must be there
            created = _parse_time(body["metadata"].get("creationTimestamp")) or now
            plan = plan_transform(
                parsed,
                models=lambda name: lookups.models(key[0], name),
                instance_types=lookups.instance_types,
                settings=self._settings,
                waited_seconds=(now - created).total_seconds(),
                stop_requested=stop,
            )
            if isinstance(plan, Problem):
                problem = plan
            elif not stop:
                job, problem = await self._create(plan)
        if job is not None and stop and not (job.get("spec") or {}).get("suspend"):
            problem = await self._suspend(key, job) or problem
        pods: Sequence[Body] = []
        if job is not None:
            try:
                pods = await self._kube.list_pods(key[0], f"{LABEL_TRANSFORM_JOB}={key[1]}")
            except KubeError as error:
                log.warning("pods of TransformJob %s/%s not listed: %s", *key, error)
        status = transform_status(
            previous=previous,
            generation=body["metadata"].get("generation"),
            problem=problem,
            job=job,
            pods=pods,
            stop=stop,
            now=now,
        )
        self._written[key] = status
        if status is previous:
            return None
        await self._kube.patch_status(
            API_VERSION, Plural.TRANSFORM_JOBS, *key, transform_status_patch(status)
        )
        if status.transform_job_status != (previous.transform_job_status if previous else None):
            log.info("TransformJob %s/%s: %s", *key, status.transform_job_status)
        return status

    async def _create(self, plan: TransformPlan) -> tuple[Body | None, Problem | None]:
        manifest = transform_job(plan.shape, self._settings)
        try:
            return await self._kube.apply(manifest), None
        except KubeError as error:
            terminal = error.status in (400, 403, 422)
            reason = "JobRejected" if terminal else "JobNotCreated"
            return None, Problem(
                reason, f"Job {manifest['metadata']['name']}: {error.message}", terminal=terminal
            )

    async def _suspend(self, key: Key, job: Body) -> Problem | None:
        """StopTransformJob: a suspended Job deletes its pods (SIGTERM, then the grace period)."""
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in (job.get("status") or {}).get("conditions") or []
        ):
            return None  # it ended first: its end stands
        name = (job.get("metadata") or {}).get("name") or job_name(key[1])
        try:
            await self._kube.merge_patch("batch/v1", "Job", key[0], name, {"spec": {"suspend": True}})
        except KubeError as error:
            if error.status == 404:
                return None
            return Problem("StopFailed", f"Job {name} not suspended: {error.message}", terminal=False)
        return None
