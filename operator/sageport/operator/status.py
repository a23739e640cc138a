"""Pure status maths: conditions (apimachinery's SetStatusCondition) and Endpoint summaries.

kopf writes JSON merge patches, which replace lists whole, so every function here returns the
complete conditions list computed from the previous one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sageport.api.v1alpha1 import (
    Condition,
    DeployedImage,
    EndpointStatus,
    ModelStatus,
    ObjectStatus,
    ProductionVariantSummary,
)
from sageport.api.v1alpha1.common import ConditionStatus
from sageport.api.v1alpha1.endpoint import (
    PendingDeploymentSummary,
    TrafficShift,
    VariantStatus,
)
from sageport.api.v1alpha1.endpoint_config import RoutingConfig, ServerlessConfig
from sageport.contract import EndpointStatus as State
from sageport.contract import RoutingStrategy
from sageport.operator.render.images import ResolvedImage
from sageport.operator.shift import ALL_AT_ONCE, ShiftPolicy, advance, done, step_status

READY = "Ready"
ROLLED_BACK = "UpdateRolledBack"  # Ready's reason after an update was rolled back


def set_condition(conditions: Sequence[Condition], new: Condition, now: datetime) -> list[Condition]:
    """Replace the condition of ``new.type``; keep its transition time unless the status changed."""
    old = next((c for c in conditions if c.type == new.type), None)
    changed = old is None or old.status != new.status
    transition = now if changed or old is None else old.lastTransitionTime
    merged = new.model_copy(update={"lastTransitionTime": transition})
    return [c for c in conditions if c.type != new.type] + [merged]


def ready_condition(status: ConditionStatus, reason: str, message: str, generation: int | None) -> Condition:
    return Condition(type=READY, status=status, reason=reason, message=message, observedGeneration=generation)


@dataclass(frozen=True)
class VariantPlan:
    """What the operator asked for, per variant, as the status reports it."""

    name: str
    weight: float
    desired_instances: int | None  # None when an autoscaler owns the count
    images: tuple[ResolvedImage, ...]  # of every container, in order (a pipeline's stages included)
    routing_strategy: RoutingStrategy | None = None
    shadow: bool = False  # reported under shadowProductionVariants; gets copies, not traffic
    # Direct multi-container: the hostnames TargetContainerHostname may name (None otherwise)
    container_hostnames: tuple[str, ...] | None = None
    # Serial pipeline: its stages' hostnames, in the order a call goes through them (None otherwise)
    pipeline_hostnames: tuple[str, ...] | None = None
    multi_model: bool = False  # a multi-model variant: calls name a TargetModel
    serverless: ServerlessConfig | None = None  # a serverless variant: KEDA owns its count, from 0
    model_setup_seconds: int | None = None  # serverless: how long the gateway holds a call at zero
    queued_at_zero: bool = False  # async with minInstanceCount 0: calls wait in the queue at zero
    queued: bool = False  # async: calls wait in the variant's queue, ready instances or not


@dataclass(frozen=True)
class VariantObservation:
    """What the cluster reports for a variant's Deployment and pods."""

    ready_instances: int = 0
    desired_instances: int | None = None
    unschedulable: str | None = None  # the scheduler's message for a pod that cannot be placed
    failure: str | None = None  # a Deployment condition that will not heal by waiting
    rolled_out: bool = True  # every instance runs the current pod template (no old one is left)


@dataclass(frozen=True)
class Problem:
    """Why an Endpoint cannot be reconciled. ``terminal`` problems need the user to change something."""

    reason: str
    message: str
    terminal: bool


def endpoint_status(
    *,
    previous: EndpointStatus | None,
    generation: int | None,
    config_name: str | None,
    plans: Sequence[VariantPlan],
    observed: Mapping[str, VariantObservation],
    problem: Problem | None,
    deleting: bool,
    now: datetime,
    not_acted_on: Sequence[str] = (),
    policy: ShiftPolicy = ALL_AT_ONCE,
) -> EndpointStatus:
    """The whole Endpoint status, SageMaker's face and Kubernetes' face, from plan and observation.

    While a config serves, another config whose traffic shift (``policy``) is not done, or a
    spec that cannot be served, gives an update's status (:func:`update_status`: the fleet keeps
    serving). ``not_acted_on`` are the fields admitted but not acted on yet: the Ready message
    lists them.
    """
    serving = serving_config(previous)
    changing = config_name is not None and config_name != serving
    shifted = None
    if changing:
        capacity_ready = bool(plans) and all(_rolled_out(p, _obs(observed, p)) for p in plans)
        shifted = advance(policy, traffic_shift(previous, config_name), now, capacity_ready)
    if (
        previous is not None
        and serving
        and not deleting
        and (problem is not None or (changing and (shifted is None or not done(policy, shifted, now))))
    ):
        return update_status(
            previous=previous, generation=generation, config_name=config_name or serving, plans=plans,
            observed=observed, problem=problem, now=now, not_acted_on=not_acted_on,
            policy=policy, shifted=shifted,
        )  # fmt: skip
    conditions = list(previous.conditions or []) if previous else []
    created = previous.creation_time if previous and previous.creation_time else now
    # SageMaker keeps an endpoint InService while it replaces failed instances; only a new
    # generation (a spec change) starts over from Creating.
    was_in_service = (
        previous is not None
        and previous.endpoint_status == State.IN_SERVICE
        and previous.observed_generation == generation
    )
    # A spec change to a serving config (weights, counts, autoscaling) is applied in place: Updating.
    changing_in_place = (
        not was_in_service
        and previous is not None
        and previous.endpoint_status in (State.IN_SERVICE, State.UPDATING)
        and previous.endpoint_config_name == config_name
    )
    state, ready = _summarise(
        plans, observed, problem, deleting, generation, was_in_service, changing_in_place
    )
    variants = [_variant_summary(p, _obs(observed, p)) for p in plans if not p.shadow]
    shadows = [_variant_summary(p, _obs(observed, p)) for p in plans if p.shadow]
    failure = ready.message if state != State.IN_SERVICE and (ready.status == "False" or problem) else None
    if not_acted_on and not deleting:
        ready = ready.model_copy(update={"message": f"{ready.message} {not_acted_on_sentence(not_acted_on)}"})
    new = EndpointStatus(
        observed_generation=generation,
        conditions=set_condition(conditions, ready, now),
        endpoint_status=state,
        failure_reason=failure[:1024] if failure else None,
        endpoint_config_name=config_name,
        creation_time=created,
        last_modified_time=now,
        production_variants=variants or (previous.production_variants if previous else None),
        shadow_production_variants=shadows or None,
    )
    new = keep_resolution_times(new, previous, now)
    if previous is not None and _same_apart_from_time(previous, new):
        return previous
    return new


def serving_config(previous: EndpointStatus | None) -> str | None:
    """The EndpointConfig serving traffic now, if any. Pointing the Endpoint at another config is
    then an update: this one keeps serving until the new fleet is ready (SageMaker's blue/green)."""
    if previous is None or previous.endpoint_status not in (State.IN_SERVICE, State.UPDATING):
        return None
    return previous.endpoint_config_name


def traffic_shift(previous: EndpointStatus | None, config_name: str | None) -> TrafficShift | None:
    """The traffic shift of the update to ``config_name`` under way in ``previous``, if any."""
    pending = previous.pending_deployment_summary if previous is not None else None
    if pending is None or pending.endpoint_config_name != config_name:
        return None
    return pending.traffic_shift


def update_status(
    *,
    previous: EndpointStatus,
    generation: int | None,
    config_name: str,
    plans: Sequence[VariantPlan],
    observed: Mapping[str, VariantObservation],
    problem: Problem | None,
    now: datetime,
    not_acted_on: Sequence[str] = (),
    policy: ShiftPolicy = ALL_AT_ONCE,
    shifted: TrafficShift | None = None,
) -> EndpointStatus:
    """The status while the Endpoint moves from ``previous.endpoint_config_name`` to ``config_name``.

    The serving config keeps ``endpointConfigName`` and ``productionVariants`` until the new
    fleet is ready and its traffic shift is done (then :func:`endpoint_status` says InService on
    the new one). During the shift (``shifted``) the ``currentWeight`` of both fleets' variants
    is their share of the traffic, which the gateway routes by. Meanwhile the status is
    ``Updating`` with a ``pendingDeploymentSummary``, never ``Creating``: SageMaker's waiters
    take any other status for the end of the update. A new config that cannot be served leaves
    the old one InService, with the reason in ``failureReason``.
    """
    serving = previous.endpoint_config_name
    pending_before = previous.pending_deployment_summary
    started = (
        pending_before.start_time
        if pending_before is not None and pending_before.endpoint_config_name == config_name
        else now
    )
    keeps = f"EndpointConfig {serving!r} keeps serving."
    failure: str | None
    if problem is not None and (problem.terminal or config_name == serving):
        # Cannot be served (or the serving config's own spec went wrong): stay on the running fleet.
        what = (
            f"Update to EndpointConfig {config_name!r} failed"
            if config_name != serving
            else "The spec cannot be applied"
        )
        state = State.IN_SERVICE
        ready = ready_condition(
            "False" if problem.terminal else "Unknown",
            problem.reason,
            f"{what}: {problem.message} {keeps}",
            generation,
        )
        failure, pending = ready.message, None
    elif problem is not None:
        state = State.UPDATING
        ready = ready_condition(
            "Unknown", problem.reason, f"Update to EndpointConfig {config_name!r} waits: {problem.message} {keeps}",
            generation,
        )  # fmt: skip
        failure, pending = (
            ready.message,
            PendingDeploymentSummary(endpoint_config_name=config_name, start_time=started),
        )
    elif shifted is not None:
        kind, message = step_status(policy, shifted, now)
        state = State.UPDATING
        ready = ready_condition(
            "Unknown", State.UPDATING, f"Updating to EndpointConfig {config_name!r}: {message}", generation
        )
        failure = None
        wanted = sum(p.weight for p in plans if not p.shadow) or 1.0
        variants = [
            _variant_summary(p, _obs(observed, p)).model_copy(
                update={
                    "current_weight": p.weight / wanted * shifted.new_fleet_share,
                    "variant_status": [
                        VariantStatus(status=kind, status_message=message, start_time=shifted.step_start_time)
                    ],
                }
            )
            for p in plans
            if not p.shadow
        ]
        pending = PendingDeploymentSummary(
            endpoint_config_name=config_name, production_variants=variants, start_time=started,
            shadow_production_variants=_pending_shadows(plans, observed), traffic_shift=shifted,
        )  # fmt: skip
        if not_acted_on:
            ready = ready.model_copy(
                update={"message": f"{ready.message} {not_acted_on_sentence(not_acted_on)}"}
            )
        serving_share = 1.0 - shifted.new_fleet_share
        serving_variants = _scaled(previous.production_variants, serving_share)
        return _on_serving_fleet(previous, state, ready, failure, pending, now, serving_variants)
    else:
        waiting = [p for p in plans if not _rolled_out(p, _obs(observed, p))]
        counts = ", ".join(
            f"{p.name} {_obs(observed, p).ready_instances}/{_wanted(p, _obs(observed, p))}" for p in waiting
        )
        state = State.UPDATING
        ready = ready_condition(
            "Unknown",
            State.UPDATING,
            f"Deploying EndpointConfig {config_name!r} ({counts} ready). {keeps}",
            generation,
        )
        stuck = [f"variant {p.name}: {_obs(observed, p).failure or _obs(observed, p).unschedulable}"
                 for p in plans if _obs(observed, p).failure or _obs(observed, p).unschedulable]  # fmt: skip
        failure = f"Update to EndpointConfig {config_name!r}: {'; '.join(stuck)}. {keeps}" if stuck else None
        variants = [
            _variant_summary(p, _obs(observed, p), rolled_out=_rolled_out(p, _obs(observed, p)))
            for p in plans
            if not p.shadow
        ]
        pending = PendingDeploymentSummary(
            endpoint_config_name=config_name, production_variants=variants, start_time=started,
            shadow_production_variants=_pending_shadows(plans, observed),
        )  # fmt: skip
    if not_acted_on:
        ready = ready.model_copy(update={"message": f"{ready.message} {not_acted_on_sentence(not_acted_on)}"})
    return _on_serving_fleet(previous, state, ready, failure, pending, now)


def _pending_shadows(
    plans: Sequence[VariantPlan], observed: Mapping[str, VariantObservation]
) -> list[ProductionVariantSummary] | None:
    shadows = [
        _variant_summary(p, _obs(observed, p), rolled_out=_rolled_out(p, _obs(observed, p)))
        for p in plans
        if p.shadow
    ]
    return shadows or None


def rolled_back_status(
    previous: EndpointStatus, *, generation: int | None, failed_config: str, reason: str, now: datetime
) -> EndpointStatus:
    """InService on the config that serves, after an update to ``failed_config`` was given up:
    what SageMaker shows after a rollback, with the reason in ``failureReason``."""
    message = (
        f"Update to EndpointConfig {failed_config!r} rolled back: {reason}. "
        f"EndpointConfig {previous.endpoint_config_name!r} serves."
    )
    ready = ready_condition("False", ROLLED_BACK, message, generation)
    serving_variants = _scaled(previous.production_variants, None)
    return _on_serving_fleet(previous, State.IN_SERVICE, ready, message, None, now, serving_variants)


def rolled_back_update(
    previous: EndpointStatus | None, config_name: str
) -> tuple[int | None, str, str] | None:
    """(generation, config, reason) of the update to ``config_name`` that ``previous`` says was
    rolled back for this generation: what :func:`rolled_back_status` wrote."""
    if previous is None or previous.endpoint_config_name == config_name:
        return None
    ready = next((c for c in previous.conditions or [] if c.type == READY), None)
    prefix = f"Update to EndpointConfig {config_name!r} rolled back: "
    failure = previous.failure_reason or ""
    if ready is None or ready.reason != ROLLED_BACK or not failure.startswith(prefix):
        return None
    reason = failure.removeprefix(prefix).split(
        f". EndpointConfig {previous.endpoint_config_name!r} serves."
    )[0]
    return ready.observedGeneration, config_name, reason


def _scaled(
    variants: list[ProductionVariantSummary] | None, share: float | None
) -> list[ProductionVariantSummary] | None:
    """The serving fleet's variants with ``share`` of the traffic split by their desired weights
    (a shift under way), or with their own desired weights again (``None``: no shift)."""
    if not variants:
        return variants
    total = sum(v.desired_weight or 0.0 for v in variants) or 1.0
    return [
        v.model_copy(
            update={
                "current_weight": (v.desired_weight or 0.0) / total * share
                if share is not None
                else (v.desired_weight if v.current_instance_count else 0.0)
            }
        )
        for v in variants
    ]


def _on_serving_fleet(
    previous: EndpointStatus,
    state: State,
    ready: Condition,
    failure: str | None,
    pending: PendingDeploymentSummary | None,
    now: datetime,
    variants: list[ProductionVariantSummary] | None = None,
) -> EndpointStatus:
    """``previous`` with a new state, Ready, reason and pending update, but the same serving
    config and variants (what the gateway routes by), with ``variants``' traffic shares if given."""
    new = previous.model_copy(
        update={
            "observed_generation": ready.observedGeneration,
            "conditions": set_condition(list(previous.conditions or []), ready, now),
            "endpoint_status": state,
            "failure_reason": failure[:1024] if failure else None,
            "last_modified_time": now,
            "pending_deployment_summary": pending,
            "production_variants": variants if variants is not None else previous.production_variants,
        }
    )
    new = keep_resolution_times(new, previous, now)
    return previous if _same_apart_from_time(previous, new) else new


def _rolled_out(plan: VariantPlan, obs: VariantObservation) -> bool:
    return _variant_ready(plan, obs) and obs.rolled_out and obs.failure is None


def not_acted_on_sentence(fields: Sequence[str]) -> str:
    """The sentence that reports fields accepted but not acted on (Ready message, Warning event)."""
    return f"Accepted but not acted on yet: {', '.join(fields)}."


def _summarise(
    plans: Sequence[VariantPlan],
    observed: Mapping[str, VariantObservation],
    problem: Problem | None,
    deleting: bool,
    generation: int | None,
    was_in_service: bool,
    changing_in_place: bool = False,
) -> tuple[State, Condition]:
    if deleting:
        return State.DELETING, ready_condition(
            "False", State.DELETING, "The endpoint is being deleted.", generation
        )
    if problem is not None:
        if problem.terminal:
            return State.FAILED, ready_condition("False", problem.reason, problem.message, generation)
        return State.CREATING, ready_condition("Unknown", problem.reason, problem.message, generation)
    failures = [f"variant {p.name}: {observed[p.name].failure}" for p in plans if _obs(observed, p).failure]
    if failures:
        return State.FAILED, ready_condition("False", "VariantFailed", "; ".join(failures), generation)
    unschedulable = [
        f"variant {p.name} cannot be scheduled: {_obs(observed, p).unschedulable}"
        for p in plans
        if _obs(observed, p).unschedulable
    ]
    waiting = [p for p in plans if not _variant_ready(p, _obs(observed, p))]
    counts = ", ".join(
        f"{p.name} {_obs(observed, p).ready_instances}/{_wanted(p, _obs(observed, p))} ready" for p in waiting
    )
    if was_in_service and (unschedulable or waiting):
        detail = "; ".join(unschedulable) or counts
        return State.IN_SERVICE, ready_condition(
            "False", "InstancesUnavailable", f"In service, replacing instances: {detail}.", generation
        )
    if changing_in_place and (unschedulable or waiting):
        detail = "; ".join(unschedulable) or counts
        return State.UPDATING, ready_condition(
            "Unknown", State.UPDATING, f"Applying the change in place: {detail}.", generation
        )
    if unschedulable:
        return State.CREATING, ready_condition("False", "Unschedulable", "; ".join(unschedulable), generation)
    if waiting:
        return State.CREATING, ready_condition(
            "Unknown", "InstancesStarting", f"Waiting for instances: {counts}.", generation
        )
    total = sum(_obs(observed, p).ready_instances for p in plans)
    return State.IN_SERVICE, ready_condition(
        "True", State.IN_SERVICE, f"All {len(plans)} variant(s) serving on {total} instance(s).", generation
    )


def _obs(observed: Mapping[str, VariantObservation], plan: VariantPlan) -> VariantObservation:
    return observed.get(plan.name, VariantObservation())


def _wanted(plan: VariantPlan, obs: VariantObservation) -> int:
    if plan.desired_instances is not None:
        return plan.desired_instances
    return obs.desired_instances if obs.desired_instances is not None else 1


def _variant_ready(plan: VariantPlan, obs: VariantObservation) -> bool:
    if plan.serverless is not None or plan.queued_at_zero:
        # Serverless: in service at zero instances; the gateway holds calls while one starts.
        # Async from zero: the same, the calls waiting in the queue.
        # Only a pod that cannot run (a failure, unschedulable) says otherwise.
        return obs.failure is None and obs.unschedulable is None
    return obs.ready_instances >= max(1, _wanted(plan, obs))


def _variant_summary(
    plan: VariantPlan, obs: VariantObservation, rolled_out: bool = True
) -> ProductionVariantSummary:
    ready = _variant_ready(plan, obs) and rolled_out
    variant_status = None
    if not ready:
        message = (
            obs.unschedulable or obs.failure or f"{obs.ready_instances}/{_wanted(plan, obs)} instances ready"
        )
        variant_status = [VariantStatus(status=State.CREATING, status_message=message)]
    return ProductionVariantSummary(
        variant_name=plan.name,
        # An async variant without a ready instance (at zero, or its pod being replaced) still
        # takes calls (they wait in its queue): its weight stays, so the gateway queues them.
        current_weight=plan.weight if obs.ready_instances > 0 or plan.queued else 0.0,
        desired_weight=plan.weight,
        current_instance_count=obs.ready_instances,
        desired_instance_count=_wanted(plan, obs),
        deployed_images=deployed_images(plan.images),
        variant_status=variant_status,
        routing_config=RoutingConfig(routing_strategy=plan.routing_strategy)
        if plan.routing_strategy
        else None,
        container_hostnames=list(plan.container_hostnames) if plan.container_hostnames is not None else None,
        pipeline_hostnames=list(plan.pipeline_hostnames) if plan.pipeline_hostnames is not None else None,
        multi_model=True if plan.multi_model else None,
        current_serverless_config=plan.serverless if ready else None,
        desired_serverless_config=plan.serverless,
        model_setup_timeout_in_seconds=plan.model_setup_seconds,
    )


def _same_apart_from_time(old: EndpointStatus, new: EndpointStatus) -> bool:
    """Equal but for lastModifiedTime: then keep the old status and write nothing."""
    return old.model_copy(update={"last_modified_time": None}) == new.model_copy(
        update={"last_modified_time": None}
    )


def deployed_images(images: Sequence[ResolvedImage]) -> list[DeployedImage]:
    """SageMaker's DeployedImage of each container; :func:`keep_resolution_times` dates them."""
    return [DeployedImage(specified_image=i.specified, resolved_image=i.resolved) for i in images]


def _stamped(
    images: list[DeployedImage] | None, known: Mapping[tuple[str | None, str | None], datetime], now: datetime
) -> list[DeployedImage] | None:
    if images is None:
        return None
    return [
        i
        if i.resolution_time is not None
        else i.model_copy(update={"resolution_time": known.get((i.specified_image, i.resolved_image), now)})
        for i in images
    ]


def _variant_lists(status: EndpointStatus) -> list[list[ProductionVariantSummary] | None]:
    pending = status.pending_deployment_summary
    return [
        status.production_variants,
        status.shadow_production_variants,
        pending.production_variants if pending else None,
        pending.shadow_production_variants if pending else None,
    ]


def keep_resolution_times(
    new: EndpointStatus, previous: EndpointStatus | None, now: datetime
) -> EndpointStatus:
    """``new`` with a ``resolutionTime`` on every deployed image: the one ``previous`` reported for
    the same variant and images, else ``now`` (an image resolves once, when its fleet is planned,
    so a status computed again is equal and not written again)."""
    known: dict[str, dict[tuple[str | None, str | None], datetime]] = {}
    for variants in _variant_lists(previous) if previous is not None else []:
        for variant in variants or []:
            for image in variant.deployed_images or []:
                if image.resolution_time is not None:
                    key = (image.specified_image, image.resolved_image)
                    known.setdefault(variant.variant_name, {}).setdefault(key, image.resolution_time)

    def stamp(variants: list[ProductionVariantSummary] | None) -> list[ProductionVariantSummary] | None:
        if variants is None:
            return None
        return [
            v.model_copy(
                update={"deployed_images": _stamped(v.deployed_images, known.get(v.variant_name, {}), now)}
            )
            for v in variants
        ]

    pending = new.pending_deployment_summary
    if pending is not None:
        pending = pending.model_copy(
            update={
                "production_variants": stamp(pending.production_variants),
                "shadow_production_variants": stamp(pending.shadow_production_variants),
            }
        )
    return new.model_copy(
        update={
            "production_variants": stamp(new.production_variants),
            "shadow_production_variants": stamp(new.shadow_production_variants),
            "pending_deployment_summary": pending,
        }
    )


def model_status(
    *,
    previous: ModelStatus | None,
    generation: int | None,
    problem: Problem | None,
    images: Sequence[ResolvedImage],
    now: datetime,
) -> ModelStatus:
    """Status of a Model: Ready once its spec is valid, and the image each container runs."""
    base = object_status(previous=previous, generation=generation, problem=problem, now=now)
    known = {
        (i.specified_image, i.resolved_image): i.resolution_time
        for i in (previous.deployed_images or [] if previous else [])
        if i.resolution_time is not None
    }
    new = ModelStatus(
        observed_generation=base.observed_generation,
        conditions=base.conditions,
        deployed_images=_stamped(deployed_images(images), known, now) if images else None,
    )
    return previous if previous == new else new


def object_status(
    *, previous: ObjectStatus | None, generation: int | None, problem: Problem | None, now: datetime
) -> ObjectStatus:
    """Status of a Model or EndpointConfig: Ready once its spec is valid and usable."""
    if problem is None:
        ready = ready_condition("True", "Valid", "The spec is valid.", generation)
    else:
        ready = ready_condition("False", problem.reason, problem.message, generation)
    conditions = set_condition(list(previous.conditions or []) if previous else [], ready, now)
    new = ObjectStatus(observed_generation=generation, conditions=conditions)
    return previous if previous == new else new


def status_patch(status: EndpointStatus) -> dict[str, Any]:
    """A merge patch that sets every status field, and clears (null) the ones now unset."""
    cleared: dict[str, Any] = {
        (info.alias or name): None for name, info in EndpointStatus.model_fields.items()
    }
    return {**cleared, **status.to_wire()}
