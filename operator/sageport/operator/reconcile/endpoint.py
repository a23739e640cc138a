"""Endpoint reconciler: resolve -> admit -> plan -> render -> apply, then the status.

Level-based and idempotent: every full run recomputes the whole desired state and applies it
with server-side apply. Runs for one Endpoint are serialised; runs for different Endpoints
overlap. Status-only refreshes (a Deployment became ready, a pod cannot be scheduled) reuse
the outcome of the last full run instead of applying anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from sageport.api.v1alpha1 import Endpoint, EndpointStatus
from sageport.contract import LABEL_CONFIG, LABEL_ENDPOINT_OBJECT, LABEL_VARIANT, config_label
from sageport.contract import EndpointStatus as State
from sageport.operator.alarms import AlarmSourceError
from sageport.operator.capture import with_data_capture
from sageport.operator.kube import KubeApi, KubeError
from sageport.operator.pod_security import runs_as_root
from sageport.operator.reconcile.admit import admit
from sageport.operator.reconcile.apply import apply_children, child_refs, patch_endpoint_status, post_event
from sageport.operator.reconcile.lookups import (
    AlarmSource,
    Body,
    ChildRef,
    Key,
    Lookups,
    fleet_observations,
    key_of,
)
from sageport.operator.reconcile.pipeline import PipelineActions, pipeline_actions
from sageport.operator.reconcile.plan import plan_endpoint, with_capacity
from sageport.operator.reconcile.readiness import broken_container_message, unschedulable_message
from sageport.operator.reconcile.resolve import ResolvedEndpoint, resolve_endpoint, validation_message
from sageport.operator.reconcile.state import EndpointState, EndpointStates, Outcome
from sageport.operator.render import RenderSettings, variant_children
from sageport.operator.render.event import warning_event
from sageport.operator.render.shape import OwnerRef, VariantShape
from sageport.operator.shift import ShiftStep, alarm_names, next_change, shift_policy
from sageport.operator.status import (
    Problem,
    VariantObservation,
    endpoint_status,
    not_acted_on_sentence,
    rolled_back_status,
    rolled_back_update,
    serving_config,
    status_patch,
    traffic_shift,
)

PENDING_GRACE_SECONDS = 5.0
# After an update hands the traffic to the new fleet, the old one stays this long before it is
# deleted: the gateway follows the Endpoint's status by a watch, and calls it routed to the old
# fleet just before must finish there.
HANDOVER_SECONDS = 3.0
# Full runs at once. Each holds its resolved spec, plan and rendered children until they are
# applied, and applies go through the adapter's 16 connections anyway: 1000 Endpoints created
# at once, all in flight together, took the operator to 289 MiB (bench.operator_scale).
FULL_RUNS_AT_ONCE = 32
NOT_ACTED_ON = "AcceptedNotActedOn"  # reason of the Warning event
NO_ALARM_SOURCE = (
    "Endpoint.deploymentConfig.autoRollbackConfiguration (no Prometheus to read alarms from: "
    "set the chart value operator.alarms.prometheusUrl)"
)
log = logging.getLogger(__name__)


class EndpointReconciler:
    def __init__(
        self,
        kube: KubeApi,
        settings: RenderSettings,
        clock: Callable[[], datetime],
        alarms: AlarmSource | None = None,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._clock = clock
        self._alarms = alarms
        self._states = EndpointStates()
        self._full_runs = asyncio.Semaphore(FULL_RUNS_AT_ONCE)
        self._background: set[asyncio.Future[Any]] = set()
        # The Serial pipeline fleets of each Endpoint (its planned ones, and an update's old one):
        # whose instances keep_pipelines looks after.
        self._pipelines: dict[Key, tuple[VariantShape, ...]] = {}

    def forget(self, key: Key) -> None:
        self._states.forget(key)
        self._pipelines.pop(key, None)

    def invalidate(self, key: Key) -> None:
        """The next :meth:`run_if_spec_changed` of this Endpoint runs in full (a reference or child changed)."""
        self._states.invalidate(key)

    async def run_if_spec_changed(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """A full run when the spec changed since the last one (or never ran); else nothing, since
        the rest of an Endpoint (its status) is ours and child changes come as their own events."""
        if self._states[key_of(body)].spec_changed(body["metadata"].get("generation")):
            return await self.reconcile(body, lookups)
        return None

    async def resync(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Periodic: retry a run that failed for a passing reason at once, and every
        ``DRIFT_REPAIR_TICKS`` ticks re-apply everything (children edited by hand go back)."""
        state = self._states[key_of(body)]
        outcome = state.outcome
        drift_repair = state.tick()
        transient = outcome is not None and outcome.problem is not None and not outcome.problem.terminal
        if outcome is None or transient or drift_repair:
            return await self.reconcile(body, lookups)
        return await self.refresh_status(body, lookups)

    async def reconcile(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Full run: resolve, admit, plan, render, apply, write status. Returns the status written, if any."""
        key = key_of(body)
        state = self._states[key]
        async with state.lock, self._full_runs:
            outcome = await self._run(key, state, body, lookups)
            generation = body["metadata"].get("generation")
            state.ran(generation, outcome)
            if state.needs_warning(generation, outcome.not_acted_on):
                await self._warn_not_acted_on(key, body, outcome.not_acted_on)
            return await self._write(key, state, body, lookups)

    async def _run(self, key: Key, state: EndpointState, body: Body, lookups: Lookups) -> Outcome:
        try:
            endpoint = Endpoint.model_validate(body)
        except ValidationError as error:
            return Outcome(None, (), Problem("InvalidSpec", validation_message(error), terminal=True))
        previous = state.written or _previous_status(body)
        rolled_back = None
        # Remembered, or read back from the status (an operator restarted since the rollback).
        failed = state.rolled_back or rolled_back_update(previous, endpoint.spec.endpoint_config_name)
        serving_now = serving_config(previous)
        if (
            failed
            and serving_now
            and failed[:2] == (body["metadata"].get("generation"), endpoint.spec.endpoint_config_name)
        ):
            # This spec's update was rolled back: run the serving config until the spec changes.
            rolled_back = (failed[1], failed[2])
            spec = endpoint.spec.model_copy(update={"endpoint_config_name": serving_now})
            endpoint = endpoint.model_copy(update={"spec": spec})
        resolved = _resolve(endpoint, key, lookups)
        if isinstance(resolved, Problem):
            return Outcome(endpoint.spec.endpoint_config_name, (), resolved)
        admission = admit(resolved, await self._pod_security(resolved, lookups))
        if admission.problem is not None:
            return Outcome(endpoint.spec.endpoint_config_name, (), admission.problem, admission.not_acted_on)
        if self._settings.redis_url is None and any(
            s.min_instance_count == 0 for s in endpoint.spec.auto_scaling or []
        ):
            no_redis = Problem(
                "InvalidSpec",
                "spec.autoScaling minInstanceCount 0 scales on the async queue in Redis, which this "
                "operator has no URL for: set the chart's asyncInference.redis.url, or minInstanceCount 1.",
                terminal=True,
            )
            return Outcome(endpoint.spec.endpoint_config_name, (), no_redis, admission.not_acted_on)
        deployment = endpoint.spec.deployment_config
        policy = shift_policy(deployment, sum(rv.instance_count for rv in resolved.production))
        # An update adds the new fleet beside the serving one; the old goes once the new took over.
        updating = serving_now is not None and serving_now != resolved.config.sagemaker_name
        step = policy.step(traffic_shift(previous, resolved.config.sagemaker_name)) if updating else None
        plan = plan_endpoint(resolved, self._settings)
        if step is not None:  # a rolling update's batch of the new fleet
            plan = with_capacity(plan, step.new_capacity)
        alarms = alarm_names(deployment)
        not_acted_on = admission.not_acted_on
        if alarms and self._alarms is None:
            not_acted_on += (NO_ALARM_SOURCE,)
        manifests = [m for shape in plan.variants for m in variant_children(shape, self._settings)]
        old_shapes: tuple[VariantShape, ...] = ()
        old_fleet = []
        if updating and serving_now is not None:
            capacity = step.old_capacity if step is not None else 1.0
            old_shapes = self._serving_fleet(endpoint, serving_now, key, lookups, capacity)
            if capacity < 1.0:  # a rolling update's batch: less of the old fleet
                old_fleet = [m for shape in old_shapes for m in variant_children(shape, self._settings)]
        self._pipelines[key] = tuple(shape for shape in (*plan.variants, *old_shapes) if shape.stages)
        problem = await apply_children(
            self._kube, resolved.namespace, manifests + old_fleet, lookups.children(*key), prune=not updating
        )
        return Outcome(
            plan.config_name,
            plan.plans,
            problem,
            not_acted_on,
            rolled_back=rolled_back,
            wanted=child_refs(manifests),
            policy=policy,
            alarms=alarms if self._alarms is not None else (),
        )

    async def _pod_security(self, resolved: ResolvedEndpoint, lookups: Lookups) -> str | None:
        """The namespace's Pod Security label; read now when a Model asks for root (the polled one
        may not have seen a namespace labelled a moment ago)."""
        known = lookups.pod_security(resolved.namespace)
        if not any(runs_as_root(rv.model.metadata.annotations) is True for rv in resolved.variants):
            return known
        try:
            return await self._kube.pod_security_level(resolved.namespace)
        except KubeError as error:
            log.warning(
                "reading namespace %s for its Pod Security label failed: %s", resolved.namespace, error
            )
            return known

    def _serving_fleet(
        self, endpoint: Endpoint, config: str, key: Key, lookups: Lookups, capacity: float
    ) -> tuple[VariantShape, ...]:
        """The serving config's shapes with ``capacity`` of its instances: what a rolling
        update leaves of the old fleet (nothing to change if it cannot be resolved any more)."""
        spec = endpoint.spec.model_copy(
            update={"endpoint_config_name": config, "desired_weights_and_capacities": None}
        )
        serving = _resolve(endpoint.model_copy(update={"spec": spec}), key, lookups)
        if isinstance(serving, Problem):
            return ()
        return with_capacity(plan_endpoint(serving, self._settings), capacity).variants

    def pipelines(self) -> list[Key]:
        """The Endpoints with Serial pipeline fleets to look after."""
        return [key for key, shapes in self._pipelines.items() if shapes]

    async def keep_pipelines(self, key: Key) -> PipelineActions:
        """One pass over the instances of the Endpoint's Serial pipeline fleets (see
        reconcile/pipeline.py): label anchors, create and replace stage pods, write where the
        stages answer. Returns what it did."""
        done = PipelineActions()
        shapes = self._pipelines.get(key, ())
        for config in sorted({shape.config_name for shape in shapes}):
            selector = f"{LABEL_ENDPOINT_OBJECT}={key[1]},{LABEL_CONFIG}={config_label(config)}"
            pods = await self._kube.list_pods(key[0], selector)
            for shape in (s for s in shapes if s.config_name == config):
                actions = pipeline_actions(shape, pods, self._settings)
                calls = [
                    self._kube.merge_patch("v1", "Pod", key[0], name, patch, missing_ok=True)
                    for name, patch in actions.patches.items()
                ]
                calls += [self._kube.delete_pod(key[0], name) for name in actions.delete]
                results = await asyncio.gather(*calls, return_exceptions=True)
                # Stage pods only once their anchors carry the label their affinity names.
                results += await asyncio.gather(
                    *(self._kube.create_pod(pod) for pod in actions.create), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, KubeError):
                        log.warning("pipeline of Endpoint %s/%s: %s", *key, result)
                    elif isinstance(result, BaseException):
                        raise result
                done.patches |= actions.patches
                done.create += actions.create
                done.delete += actions.delete
        return done

    async def refresh_status(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Status only, from the last full run's outcome and the current observations."""
        key = key_of(body)
        state = self._states[key]
        async with state.lock:
            if state.outcome is None:
                return None  # the full run (create/resume) has not happened yet and will write status
            return await self._write(key, state, body, lookups)

    def waiting_for_instances(self) -> list[Key]:
        """Endpoints whose instances have been starting for a while, longest first."""
        return self._states.waiting_since_before(time.monotonic() - PENDING_GRACE_SECONDS)

    async def check_pending_pods(self, body: Body, lookups: Lookups) -> EndpointStatus | None:
        """Why pods of this Endpoint cannot be scheduled (the scheduler's message), into the status."""
        key = key_of(body)
        state = self._states[key]
        config = state.outcome.config_name if state.outcome else None
        if config is None:
            return None
        pods = await self._kube.list_pods(
            key[0], f"{LABEL_ENDPOINT_OBJECT}={key[1]},{LABEL_CONFIG}={config_label(config)}"
        )
        messages: dict[str, str] = {}
        broken: dict[str, str] = {}
        for pod in pods:
            variant = (pod.get("metadata", {}).get("labels") or {}).get(LABEL_VARIANT)
            if not variant:
                continue
            if message := unschedulable_message(pod):
                messages.setdefault(variant, message)
            if failing := broken_container_message(pod):
                broken.setdefault(variant, failing)
        shifting = traffic_shift(state.written, config) is not None
        if (messages, broken) == (state.unschedulable, state.broken) and not shifting:
            return None
        state.unschedulable, state.broken = messages, broken
        return await self.refresh_status(body, lookups)  # a shift moves on with time and alarms

    async def _warn_not_acted_on(self, key: Key, body: Body, fields: tuple[str, ...]) -> None:
        metadata = body["metadata"]
        about = OwnerRef(body.get("apiVersion") or "", "Endpoint", key[1], metadata.get("uid") or "")
        event = warning_event(about, key[0], NOT_ACTED_ON, not_acted_on_sentence(fields), self._clock())
        await post_event(self._kube, event)

    async def _write(
        self, key: Key, state: EndpointState, body: Body, lookups: Lookups
    ) -> EndpointStatus | None:
        outcome = state.outcome
        assert outcome is not None
        previous = state.written or _previous_status(body)
        metadata = body["metadata"]
        observed = fleet_observations(lookups, key, outcome.config_name) if outcome.problem is None else {}
        for variant, message in state.unschedulable.items():
            seen = observed.get(variant, VariantObservation())
            wanted = seen.desired_instances or 1
            if seen.ready_instances < wanted:  # a message about pods that have since started is stale
                observed[variant] = replace(seen, unschedulable=message)
        serving = serving_config(previous)
        updating = bool(serving and outcome.config_name and serving != outcome.config_name)
        if updating:  # a container of the new fleet that keeps failing fails the update
            for variant, message in state.broken.items():
                observed[variant] = replace(observed.get(variant, VariantObservation()), failure=message)
        generation = metadata.get("generation")
        broken = [
            f"variant {p.name}: {observed[p.name].failure}"
            for p in outcome.plans
            if p.name in observed and observed[p.name].failure
        ]
        if previous is not None and updating and outcome.problem is None and outcome.config_name:
            reason = "; ".join(broken) or await self._update_gone_wrong(outcome, previous)
            if reason:
                return await self._roll_back(key, state, body, lookups, previous, outcome.config_name, reason)
        status = endpoint_status(
            previous=previous,
            generation=generation,
            config_name=outcome.config_name,
            plans=outcome.plans,
            observed=observed,
            problem=outcome.problem,
            deleting=bool(metadata.get("deletionTimestamp")),
            now=self._clock(),
            not_acted_on=outcome.not_acted_on,
            policy=outcome.policy,
        )
        if outcome.rolled_back is not None:
            failed_config, reason = outcome.rolled_back
            status = rolled_back_status(
                status, generation=generation, failed_config=failed_config, reason=reason, now=self._clock()
            )
        status = with_data_capture(
            status, previous, lookups.configs(key[0], status.endpoint_config_name or "")
        )
        if status is previous:
            return None
        await patch_endpoint_status(self._kube, key, status_patch(status))
        state.wrote(status, time.monotonic())
        if serving and serving != status.endpoint_config_name and status.endpoint_status == State.IN_SERVICE:
            self._hand_over(key, outcome.wanted, lookups)
        shifted = traffic_shift(status, outcome.config_name)
        if shifted is not None and (wait := next_change(outcome.policy, shifted, self._clock())) is not None:
            self._wake(key, body, lookups, wait)
        policy = outcome.policy
        before = traffic_shift(previous, outcome.config_name)
        if shifted is not None and _capacities(policy.step(shifted)) != _capacities(policy.step(before)):
            # A rolling update's next batch: more of the new fleet and less of the old, applied by a full run.
            self._states.invalidate(key)
            self._in_background(self.reconcile(body, lookups))
        return status

    async def _update_gone_wrong(self, outcome: Outcome, previous: EndpointStatus) -> str | None:
        """Why an update under way must be rolled back, beyond a broken fleet: it ran past its
        ``maximumExecutionTimeoutInSeconds``, or one of its alarms fires once traffic moved."""
        pending = previous.pending_deployment_summary
        if pending is None or pending.endpoint_config_name != outcome.config_name:
            return None
        now = self._clock()
        timeout = outcome.policy.timeout_seconds
        started = pending.start_time
        if timeout is not None and started is not None and (now - started).total_seconds() > timeout:
            return f"the update ran past maximumExecutionTimeoutInSeconds ({timeout} s)"
        if pending.traffic_shift is None or not outcome.alarms or self._alarms is None:
            return None
        try:
            firing = await self._alarms(outcome.alarms)
        except AlarmSourceError as error:  # unread alarms do not roll back (SageMaker's rule); say so
            log.warning("alarms of the update to %s cannot be read: %s", outcome.config_name, error)
            return None
        if not firing:
            return None
        name, since = min(firing.items(), key=lambda item: item[1])
        return f"alarm {name} is firing (since {since.isoformat()})"

    def _wake(self, key: Key, body: Body, lookups: Lookups, delay: float) -> None:
        """Refresh the status when the traffic shift moves on by itself (a step has baked)."""
        state = self._states[key]
        if state.wake is not None:
            state.wake.cancel()

        async def later() -> None:
            await asyncio.sleep(delay + 0.05)
            state.wake = None
            await self.refresh_status(body, lookups)

        task = asyncio.ensure_future(later())
        state.wake = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _roll_back(
        self, key: Key, state: EndpointState, body: Body, lookups: Lookups, previous: EndpointStatus,
        failed_config: str, reason: str,
    ) -> EndpointStatus | None:  # fmt: skip
        """The new fleet keeps failing: the serving config stays InService and is applied again
        (its template back on kept variants, the new fleet's own children pruned)."""
        generation = body["metadata"].get("generation")
        state.rolled_back = (generation, failed_config, reason)
        status = rolled_back_status(
            previous, generation=generation, failed_config=failed_config, reason=reason, now=self._clock()
        )
        await patch_endpoint_status(self._kube, key, status_patch(status))
        state.wrote(status, time.monotonic())
        self._states.invalidate(key)
        self._in_background(self.reconcile(body, lookups))  # runs once this run's lock is free
        return status

    def _hand_over(self, key: Key, wanted: frozenset[ChildRef], lookups: Lookups) -> None:
        """The new fleet took the traffic: delete the old one's children after the handover."""

        async def later() -> None:
            await asyncio.sleep(HANDOVER_SECONDS)
            async with self._states[key].lock:
                stale = [c for c in lookups.children(*key) if c not in wanted]
                await apply_children(self._kube, key[0], [], stale)

        self._in_background(later())

    def _in_background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)  # a reference, so the task is not collected mid-way
        task.add_done_callback(self._background.discard)


def _resolve(endpoint: Endpoint, key: Key, lookups: Lookups) -> ResolvedEndpoint | Problem:
    return resolve_endpoint(
        endpoint,
        configs=lambda name: lookups.configs(key[0], name),
        models=lambda name: lookups.models(key[0], name),
        instance_types=lookups.instance_types,
    )


def _capacities(step: ShiftStep) -> tuple[float, float]:
    return step.new_capacity, step.old_capacity


def _previous_status(body: Body) -> EndpointStatus | None:
    raw = body.get("status")
    if not raw:
        return None
    try:
        return EndpointStatus.model_validate(raw)
    except ValidationError:
        return None  # written by something else or an older operator: recompute from scratch
