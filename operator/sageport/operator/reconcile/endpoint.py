"""Endpoint reconciler: resolve references, apply each variant's children, write the status.

Level-based and idempotent: every run recomputes the whole desired state and applies it with
server-side apply. Runs for one Endpoint are serialised; runs for different Endpoints overlap.
Status-only refreshes (a Deployment became ready, a pod cannot be scheduled) reuse the plan of
the last full run instead of applying anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from sageport.api.v1alpha1 import API_VERSION, Endpoint, EndpointStatus
from sageport.operator.kube import KubeApi, KubeError
from sageport.operator.reconcile.observe import unschedulable_message
from sageport.operator.reconcile.resolve import Body, Resolution, resolve_endpoint, validation_message
from sageport.operator.render import RenderSettings, variant_children
from sageport.operator.render.names import LABEL_ENDPOINT_OBJECT, LABEL_VARIANT
from sageport.operator.status import Problem, VariantObservation, VariantPlan, endpoint_status

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, metadata.name)
DRIFT_REPAIR_TICKS = 10
PENDING_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ChildRef:
    """A child object the operator created earlier for an Endpoint."""

    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Lookups:
    """Read-only views over the operator's indexes, by namespace and SageMaker name."""

    configs: Callable[[str, str], Sequence[Body]]
    models: Callable[[str, str], Sequence[Body]]
    instance_types: Callable[[str], Body | None]
    observations: Callable[[str, str], Mapping[str, VariantObservation]]
    children: Callable[[str, str], Sequence[ChildRef]]


@dataclass(frozen=True)
class _Plan:
    config_name: str | None
    plans: tuple[VariantPlan, ...]
    problem: Problem | None


class EndpointReconciler:
    def __init__(self, kube: KubeApi, settings: RenderSettings, clock: Callable[[], datetime]) -> None:
        self._kube = kube
        self._settings = settings
        self._clock = clock
        self._locks: defaultdict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_plan: dict[Key, _Plan] = {}
        # The status we last wrote: fresher than the body an index hands us, which lags our own writes.
        self._written: dict[Key, EndpointStatus] = {}
        self._reconciled: dict[Key, int | None] = {}  # generation of the last full run
        self._ticks: defaultdict[Key, int] = defaultdict(int)
        self._unschedulable: dict[Key, dict[str, str]] = {}  # variant -> scheduler message
        self._waiting_since: dict[Key, float] = {}  # when the last written status was Creating

    def forget(self, key: Key) -> None:
        self._last_plan.pop(key, None)
        self._written.pop(key, None)
        self._locks.pop(key, None)
        self._reconciled.pop(key, None)
        self._ticks.pop(key, None)
        self._unschedulable.pop(key, None)
        self._waiting_since.pop(key, None)

    def invalidate(self, key: Key) -> None:
        """The next :meth:`observe` of this Endpoint runs in full (a reference or child changed)."""
        self._reconciled.pop(key, None)

    async def observe(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """A full run when the spec changed since the last one (or never ran); else nothing, since
        the rest of an Endpoint (its status) is ours and child changes come as their own events."""
        if self._reconciled.get(_key(body)) != body["metadata"].get("generation"):
            return await self.reconcile(body, lookups)
        return None

    async def resync(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Periodic: retry a run that failed for a passing reason at once, and every
        ``DRIFT_REPAIR_TICKS`` ticks re-apply everything (children edited by hand go back)."""
        key = _key(body)
        plan = self._last_plan.get(key)
        self._ticks[key] += 1
        transient = plan is not None and plan.problem is not None and not plan.problem.terminal
        if plan is None or transient or self._ticks[key] % DRIFT_REPAIR_TICKS == 0:
            return await self.reconcile(body, lookups)
        return await self.refresh_status(body, lookups)

    async def reconcile(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Full run: resolve, apply children, write status. Returns the status written, if any."""
        key = _key(body)
        async with self._locks[key]:
            try:
                endpoint = Endpoint.model_validate(body)
            except ValidationError as error:
                problem = Problem("InvalidSpec", validation_message(error), terminal=True)
                plan = _Plan(None, (), problem)
                return await self._write(key, body, plan, lookups)
            ns = key[0]
            resolution = resolve_endpoint(
                endpoint,
                configs=lambda name: lookups.configs(ns, name),
                models=lambda name: lookups.models(ns, name),
                instance_types=lookups.instance_types,
                settings=self._settings,
            )
            if isinstance(resolution, Problem):
                plan = _Plan(endpoint.spec.endpoint_config_name, (), resolution)
            else:
                existing = lookups.children(*key)
                plan = _Plan(
                    resolution.config_name, resolution.plans, await self._apply(resolution, existing)
                )
            self._last_plan[key] = plan
            self._reconciled[key] = body["metadata"].get("generation")
            return await self._write(key, body, plan, lookups)

    async def refresh_status(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Status only, from the last full run's plan and the current observations."""
        key = _key(body)
        async with self._locks[key]:
            plan = self._last_plan.get(key)
            if plan is None:
                return None  # the full run (create/resume) has not happened yet and will write status
            return await self._write(key, body, plan, lookups)

    def waiting_for_instances(self) -> list[Key]:
        """Endpoints whose instances have been starting for a while, longest first."""
        cutoff = time.monotonic() - PENDING_GRACE_SECONDS
        waiting = [(since, key) for key, since in self._waiting_since.items() if since < cutoff]
        return [key for _, key in sorted(waiting)]

    async def check_pending_pods(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Why pods of this Endpoint cannot be scheduled (the scheduler's message), into the status."""
        key = _key(body)
        pods = await self._kube.list_pods(key[0], f"{LABEL_ENDPOINT_OBJECT}={key[1]}")
        messages: dict[str, str] = {}
        for pod in pods:
            message = unschedulable_message(pod)
            variant = (pod.get("metadata", {}).get("labels") or {}).get(LABEL_VARIANT)
            if message and variant:
                messages.setdefault(variant, message)
        if messages == self._unschedulable.get(key, {}):
            return None
        self._unschedulable[key] = messages
        return await self.refresh_status(body, lookups)

    async def _apply(self, resolution: Resolution, existing: Sequence[ChildRef]) -> Problem | None:
        manifests = [m for rv in resolution.variants for m in variant_children(rv, self._settings)]
        wanted = {ChildRef(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in manifests}
        # Children of variants (or autoscalers) no longer in the spec must not linger.
        stale = [c for c in existing if c not in wanted]
        namespace = resolution.variants[0].namespace if resolution.variants else "default"
        calls: list[Awaitable[Any]] = [self._kube.apply(m) for m in manifests]
        calls += [self._kube.delete(c.api_version, c.kind, namespace, c.name) for c in stale]
        labels = [f"{m['kind']} {m['metadata']['name']}" for m in manifests] + [
            f"{c.kind} {c.name}" for c in stale
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        errors = [
            f"{label}: {r}" for label, r in zip(labels, results, strict=True) if isinstance(r, BaseException)
        ]
        if not errors:
            return None
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, KubeError):
                raise result  # a bug, not the cluster talking: let kopf log and retry it
        rejected = [r for r in results if isinstance(r, KubeError) and r.status in (400, 403, 422)]
        return Problem(
            "ApplyRejected" if rejected else "ApplyFailed",
            "Could not apply children: " + "; ".join(errors),
            terminal=bool(rejected),
        )

    async def _write(self, key: Key, body: Body, plan: _Plan, lookups: Lookups) -> EndpointStatus | None:
        previous = self._written.get(key) or _previous_status(body)
        metadata = body["metadata"]
        observed = dict(lookups.observations(*key)) if plan.problem is None else {}
        for variant, message in self._unschedulable.get(key, {}).items():
            seen = observed.get(variant, VariantObservation())
            wanted = seen.desired_instances or 1
            if seen.ready_instances < wanted:  # a message about pods that have since started is stale
                observed[variant] = replace(seen, unschedulable=message)
        status = endpoint_status(
            previous=previous,
            generation=metadata.get("generation"),
            config_name=plan.config_name,
            plans=plan.plans,
            observed=observed,
            problem=plan.problem,
            deleting=bool(metadata.get("deletionTimestamp")),
            now=self._clock(),
        )
        if status is previous:
            return None
        await self._kube.patch_status(API_VERSION, "endpoints", key[0], key[1], status_patch(status))
        self._written[key] = status
        if status.endpoint_status == "Creating" and plan.problem is None:
            self._waiting_since.setdefault(key, time.monotonic())
        else:
            self._waiting_since.pop(key, None)
            self._unschedulable.pop(key, None)
        return status


def _key(body: Body) -> Key:
    return (body["metadata"].get("namespace") or "default", body["metadata"]["name"])


def _previous_status(body: Body) -> EndpointStatus | None:
    raw = body.get("status")
    if not raw:
        return None
    try:
        return EndpointStatus.model_validate(raw)
    except ValidationError:
        return None  # written by something else or an older operator: recompute from scratch


def status_patch(status: EndpointStatus) -> dict[str, Any]:
    """A merge patch that sets every status field, and clears (null) the ones now unset."""
    cleared: dict[str, Any] = {
        (info.alias or name): None for name, info in EndpointStatus.model_fields.items()
    }
    return {**cleared, **status.to_wire()}
