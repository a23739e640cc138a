"""Traffic shifting of an update, pure: the steps a policy takes and where an update stands.

Blue/green: SageMaker provisions the whole new fleet first, then moves traffic in steps and
bakes after each one with the alarms watched: ALL_AT_ONCE in one step, CANARY a canary share and
then the rest, LINEAR in equal steps. Rolling: each step provisions a batch of the new fleet,
gives it its share of the traffic and bakes; the next step also terminates as much of the old
fleet. After the last bake the old fleet idles, without traffic, for ``terminationWaitInSeconds``
(blue/green only); then the update is done and the old fleet goes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sageport.api.v1alpha1.endpoint import (
    CapacitySize,
    DeploymentConfig,
    RollingUpdatePolicy,
    TrafficShift,
    linear_steps,
)
from sageport.contract import EndpointStatus

WHOLE_FLEET = "the whole new fleet"
# SageMaker's variantStatus during a shift.
StepKind = Literal[EndpointStatus.CREATING, "ActivatingTraffic", "Baking"]


@dataclass(frozen=True)
class ShiftStep:
    share: float  # of the Endpoint's traffic on the new fleet during this step
    bake_seconds: int
    capacity: str  # what the step enables, as status messages say it
    new_capacity: float = 1.0  # share of the new fleet's instances provisioned for this step
    old_capacity: float = 1.0  # share of the old fleet's instances kept during this step


@dataclass(frozen=True)
class ShiftPolicy:
    steps: tuple[ShiftStep, ...]
    termination_wait_seconds: int = 0
    timeout_seconds: int | None = None  # from the update's start; then it is rolled back

    def step(self, shift: TrafficShift | None) -> ShiftStep:
        """The step ``shift`` is at (the first before the shift starts)."""
        return self.steps[_index(self, shift)]


ALL_AT_ONCE = ShiftPolicy((ShiftStep(1.0, 0, WHOLE_FLEET),))


def _index(policy: ShiftPolicy, shift: TrafficShift | None) -> int:
    return 0 if shift is None else min(max(shift.step, 1), len(policy.steps)) - 1


def _share(size: CapacitySize, instances: int) -> float:
    if size.type_ == "CAPACITY_PERCENT":
        return min(size.value / 100, 1.0)
    return min(size.value / max(instances, 1), 1.0)


def _capacity(size: CapacitySize, share: float) -> str:
    if size.type_ == "INSTANCE_COUNT":
        return f"{size.value} instance(s)"
    return f"{round(share * 100)} % of the new fleet"


def _rolling(policy: RollingUpdatePolicy, instances: int) -> ShiftPolicy:
    size = policy.maximum_batch_size
    batch = size.value if size.type_ == "INSTANCE_COUNT" else math.ceil(size.value / 100 * instances)
    batch = min(max(batch, 1), max(instances, 1))
    total = max(instances, 1)
    provisioned = [min(k * batch, total) for k in range(1, math.ceil(total / batch) + 1)]
    steps = tuple(
        ShiftStep(
            share=count / total,
            bake_seconds=policy.wait_interval_in_seconds,
            capacity=f"{count} of {total} new instance(s)",
            new_capacity=count / total,
            old_capacity=1 - (provisioned[k - 1] / total if k else 0),
        )
        for k, count in enumerate(provisioned)
    )
    return ShiftPolicy(steps, 0, policy.maximum_execution_timeout_in_seconds)


def shift_policy(config: DeploymentConfig | None, new_instances: int) -> ShiftPolicy:
    """The steps of an update to a fleet of ``new_instances``; no policy is ALL_AT_ONCE unbaked
    (SageMaker's default)."""
    if config is not None and config.rolling_update_policy is not None:
        return _rolling(config.rolling_update_policy, new_instances)
    policy = config.blue_green_update_policy if config is not None else None
    if policy is None:
        return ALL_AT_ONCE
    routing = policy.traffic_routing_configuration
    bake = routing.wait_interval_in_seconds
    final = ShiftStep(1.0, bake, WHOLE_FLEET)
    steps: tuple[ShiftStep, ...] = (final,)
    if routing.type_ == "CANARY" and routing.canary_size is not None:
        share = _share(routing.canary_size, new_instances)
        if share < 1.0:
            steps = (
                ShiftStep(share, bake, f"canary capacity of {_capacity(routing.canary_size, share)}"),
                final,
            )
    elif routing.type_ == "LINEAR" and routing.linear_step_size is not None:
        step = _share(routing.linear_step_size, new_instances)
        shares = [step * k for k in range(1, linear_steps(round(step * 100)))]
        steps = (
            *(ShiftStep(share, bake, f"{round(share * 100)} % of the new fleet") for share in shares),
            final,
        )
    return ShiftPolicy(
        steps, policy.termination_wait_in_seconds or 0, policy.maximum_execution_timeout_in_seconds
    )


def alarm_names(config: DeploymentConfig | None) -> tuple[str, ...]:
    """The alarms whose firing rolls an update back (``autoRollbackConfiguration``)."""
    rollback = config.auto_rollback_configuration if config is not None else None
    return tuple(alarm.alarm_name for alarm in rollback.alarms or []) if rollback is not None else ()


def advance(
    policy: ShiftPolicy, shift: TrafficShift | None, now: datetime, ready: bool
) -> TrafficShift | None:
    """Where the shift stands at ``now``, ``ready`` saying whether the new fleet has the
    capacity of the step under way: the first step once it has; the next once this one has
    baked (provisioning first when it needs more of the new fleet: the traffic stays as it is
    until that is ready). Each bake counts from when its traffic moved, so an operator that was
    down never skips one."""
    if shift is None:
        return _at(policy, 0, now) if ready else None
    index = _index(policy, shift)
    if shift.provisioning:
        return _at(policy, index, now) if ready else shift
    step = policy.steps[index]
    if index + 1 < len(policy.steps) and now >= shift.step_start_time + timedelta(seconds=step.bake_seconds):
        following = policy.steps[index + 1]
        if following.new_capacity > step.new_capacity:
            return shift.model_copy(update={"step": index + 2, "provisioning": True, "step_start_time": now})
        return _at(policy, index + 1, now)
    return shift if index == shift.step - 1 else _at(policy, index, shift.step_start_time)


def _at(policy: ShiftPolicy, index: int, since: datetime) -> TrafficShift:
    return TrafficShift(
        step=index + 1,
        steps=len(policy.steps),
        new_fleet_share=policy.steps[index].share,
        step_start_time=since,
    )


def done(policy: ShiftPolicy, shift: TrafficShift, now: datetime) -> bool:
    """The last step has baked and the old fleet has idled for the termination wait."""
    if shift.step < len(policy.steps) or shift.provisioning:
        return False
    last = policy.steps[-1]
    return now >= shift.step_start_time + timedelta(
        seconds=last.bake_seconds + policy.termination_wait_seconds
    )


def next_change(policy: ShiftPolicy, shift: TrafficShift, now: datetime) -> float | None:
    """Seconds until the shift moves on by itself (next step, or done); None while it waits
    for new instances (their readiness moves it)."""
    if shift.provisioning:
        return None
    index = _index(policy, shift)
    wait = policy.steps[index].bake_seconds
    if index + 1 == len(policy.steps):
        wait += policy.termination_wait_seconds
    return max((shift.step_start_time + timedelta(seconds=wait) - now).total_seconds(), 0.0)


def step_status(policy: ShiftPolicy, shift: TrafficShift, now: datetime) -> tuple[StepKind, str]:
    """SageMaker's variantStatus (status, message) of the new fleet's variants during the shift."""
    index = _index(policy, shift)
    step = policy.steps[index]
    where = f"(step {index + 1} of {len(policy.steps)})"
    if shift.provisioning:
        return (
            EndpointStatus.CREATING,
            f"Provisioning {step.capacity} {where}; the traffic moves once they are ready.",
        )
    baked = now >= shift.step_start_time + timedelta(seconds=step.bake_seconds)
    if index + 1 == len(policy.steps) and baked and policy.termination_wait_seconds:
        return "Baking", (
            f"Baking for {policy.termination_wait_seconds} seconds (TerminationWaitInSeconds) with traffic "
            f"enabled on {WHOLE_FLEET}; then the old fleet is terminated."
        )
    if step.bake_seconds:
        return "Baking", (
            f"Baking for {step.bake_seconds} seconds (WaitIntervalInSeconds) with traffic enabled on "
            f"{step.capacity} {where}."
        )
    return "ActivatingTraffic", f"Traffic enabled on {step.capacity} {where}."
