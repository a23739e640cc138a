"""Pure status maths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sageport.api.v1alpha1 import Condition, DeploymentConfig
from sageport.operator.render.images import ResolvedImage
from sageport.operator.shift import (
    ALL_AT_ONCE,
    ShiftPolicy,
    advance,
    done,
    next_change,
    shift_policy,
    step_status,
)
from sageport.operator.status import (
    Problem,
    VariantObservation,
    VariantPlan,
    endpoint_status,
    object_status,
    rolled_back_status,
    rolled_back_update,
    serving_config,
    set_condition,
    status_patch,
)


def _image(name: str) -> tuple[ResolvedImage, ...]:
    return (ResolvedImage(name, name, served_by_sageport=False),)


T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
PLANS = (VariantPlan("a", 0.8, 2, _image("img")), VariantPlan("b", 0.2, 1, _image("img")))


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    first = set_condition([], Condition(type="Ready", status="False", reason="X"), T0)
    again = set_condition(first, Condition(type="Ready", status="False", reason="Y", message="m"), T1)
    assert again[0].lastTransitionTime == T0
    assert again[0].reason == "Y"
    flipped = set_condition(again, Condition(type="Ready", status="True"), T1)
    assert flipped[0].lastTransitionTime == T1
    other = set_condition(flipped, Condition(type="Other", status="True"), T1)
    assert [c.type for c in other] == ["Ready", "Other"]


def _status(
    observed: dict[str, VariantObservation], problem: Problem | None = None, previous=None, generation=3
):  # type: ignore[no-untyped-def]
    return endpoint_status(
        previous=previous,
        generation=generation,
        config_name="cfg",
        plans=PLANS,
        observed=observed,
        problem=problem,
        deleting=False,
        now=T0,
    )


def _ready(status) -> Condition:  # type: ignore[no-untyped-def]
    return next(c for c in status.conditions if c.type == "Ready")


def test_in_service_when_every_variant_has_its_instances() -> None:
    status = _status({"a": VariantObservation(2), "b": VariantObservation(1)})
    assert status.endpoint_status == "InService"
    assert _ready(status).status == "True"
    assert _ready(status).observedGeneration == 3
    assert status.failure_reason is None
    assert status.observed_generation == 3
    a = status.production_variants[0]
    assert (a.current_weight, a.desired_weight, a.current_instance_count, a.desired_instance_count) == (
        0.8,
        0.8,
        2,
        2,
    )


def test_creating_is_unknown_until_instances_are_ready() -> None:
    status = _status({"a": VariantObservation(1)})
    assert status.endpoint_status == "Creating"
    assert _ready(status).status == "Unknown"
    assert "a 1/2 ready" in _ready(status).message
    assert "b 0/1 ready" in _ready(status).message
    assert status.production_variants[1].current_weight == 0.0


def test_unschedulable_variant_says_why() -> None:
    message = "0/7 nodes are available: 7 Insufficient nvidia.com/gpu."
    status = _status({"a": VariantObservation(0, unschedulable=message), "b": VariantObservation(1)})
    assert _ready(status).status == "False"
    assert _ready(status).reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in status.failure_reason
    assert status.production_variants[0].variant_status[0].status_message == message


def test_problems_terminal_fail_and_transient_wait() -> None:
    missing = _status({}, Problem("ModelNotFound", "Model 'm' not found", terminal=False))
    assert (missing.endpoint_status, _ready(missing).status) == ("Creating", "Unknown")
    assert missing.failure_reason == "Model 'm' not found"
    bad = _status({}, Problem("NotSupported", "serverless not yet", terminal=True))
    assert (bad.endpoint_status, _ready(bad).status, bad.failure_reason) == (
        "Failed",
        "False",
        "serverless not yet",
    )


def test_unchanged_status_is_returned_as_is_so_nothing_is_written() -> None:
    first = _status({"a": VariantObservation(2), "b": VariantObservation(1)})
    again = endpoint_status(
        previous=first,
        generation=3,
        config_name="cfg",
        plans=PLANS,
        observed={"a": VariantObservation(2), "b": VariantObservation(1)},
        problem=None,
        deleting=False,
        now=T1,
    )
    assert again is first


def test_status_patch_clears_fields_that_became_unset() -> None:
    failed = _status({}, Problem("X", "broken", terminal=True))
    healed = _status({"a": VariantObservation(2), "b": VariantObservation(1)}, previous=failed)
    patch = status_patch(healed)
    assert patch["failureReason"] is None
    assert patch["endpointStatus"] == "InService"
    assert patch["creationTime"] == "2026-01-01T00:00:00Z"


def test_object_status_ready_when_valid() -> None:
    ok = object_status(previous=None, generation=1, problem=None, now=T0)
    assert ok.conditions[0].status == "True"
    assert object_status(previous=ok, generation=1, problem=None, now=T1) is ok
    bad = object_status(previous=ok, generation=2, problem=Problem("InvalidSpec", "x: bad", True), now=T1)
    assert (bad.conditions[0].status, bad.conditions[0].message) == ("False", "x: bad")


def test_routing_strategy_reaches_the_status_the_gateway_reads() -> None:
    plans = (VariantPlan("a", 1.0, 1, _image("img"), routing_strategy="RANDOM"),)
    status = endpoint_status(
        previous=None,
        generation=1,
        config_name="cfg",
        plans=plans,
        observed={"a": VariantObservation(1)},
        problem=None,
        deleting=False,
        now=T0,
    )
    assert status_patch(status)["productionVariants"][0]["routingConfig"] == {"routingStrategy": "RANDOM"}


def test_an_async_variant_at_zero_is_in_service_and_keeps_its_weight_for_the_gateway() -> None:
    """minInstanceCount 0: no pod, yet InService and currentWeight kept (calls wait in the queue)."""
    plans = (VariantPlan("a", 1.0, None, _image("img"), queued_at_zero=True, queued=True),)
    status = endpoint_status(
        previous=None,
        generation=1,
        config_name="cfg",
        plans=plans,
        observed={"a": VariantObservation(0, desired_instances=0)},
        problem=None,
        deleting=False,
        now=T0,
    )
    (variant,) = status_patch(status)["productionVariants"]
    assert status.endpoint_status == "InService"
    assert (variant["currentInstanceCount"], variant["currentWeight"]) == (0, 1.0)


def test_an_async_variant_whose_pod_is_replaced_keeps_its_weight_for_the_gateway() -> None:
    """Its only pod deleted: calls arriving meanwhile are queued (the e2e chaos test found them
    refused with 'no production variant with weight')."""
    plans = (VariantPlan("a", 1.0, 1, _image("img"), queued=True),)
    status = endpoint_status(
        previous=None,
        generation=1,
        config_name="cfg",
        plans=plans,
        observed={"a": VariantObservation(0, desired_instances=1)},
        problem=None,
        deleting=False,
        now=T0,
    )
    (variant,) = status_patch(status)["productionVariants"]
    assert (variant["currentInstanceCount"], variant["currentWeight"]) == (0, 1.0)


def test_an_endpoint_in_service_stays_in_service_while_instances_are_replaced() -> None:
    """As SageMaker: a crashed instance is replaced under InService; invocations meanwhile
    get 503 from the gateway, not "endpoint not found"."""
    serving = _status({"a": VariantObservation(2), "b": VariantObservation(1)})
    degraded = _status({"a": VariantObservation(1), "b": VariantObservation(0)}, previous=serving)
    assert degraded.endpoint_status == "InService"
    assert (_ready(degraded).status, _ready(degraded).reason) == ("False", "InstancesUnavailable")
    assert "b 0/1 ready" in _ready(degraded).message
    assert degraded.failure_reason is None
    assert degraded.production_variants[1].current_weight == 0.0
    recovered = _status({"a": VariantObservation(2), "b": VariantObservation(1)}, previous=degraded)
    assert (recovered.endpoint_status, _ready(recovered).status) == ("InService", "True")


def test_a_new_generation_of_a_serving_endpoint_is_updating_never_creating() -> None:
    # Issue #16: SageMaker's waiters take anything but Creating/Updating for the end, and the
    # gateway stops routing to an endpoint that says Creating while its fleet still runs.
    serving = _status({"a": VariantObservation(2), "b": VariantObservation(1)})
    updated = _status({"a": VariantObservation(1)}, previous=serving, generation=4)
    assert updated.endpoint_status == "Updating"
    assert (_ready(updated).status, _ready(updated).reason) == ("Unknown", "Updating")
    assert _status({"a": VariantObservation(1)}, previous=None, generation=4).endpoint_status == "Creating"


# --- updates: another EndpointConfig while one serves --------------------------------------

NEW = (VariantPlan("green", 1.0, 1, _image("img2")),)


def _serving():  # type: ignore[no-untyped-def]
    return _status({"a": VariantObservation(2), "b": VariantObservation(1)})


def _update(previous, observed, problem=None, now=T1):  # type: ignore[no-untyped-def]
    return endpoint_status(
        previous=previous, generation=4, config_name="cfg-v2", plans=NEW, observed=observed,
        problem=problem, deleting=False, now=now,
    )  # fmt: skip


def test_serving_config_is_the_deployed_one_while_it_takes_traffic() -> None:
    assert serving_config(_serving()) == "cfg"
    assert serving_config(_status({})) is None  # still Creating: nothing serves yet
    assert serving_config(None) is None


def test_an_update_is_updating_on_the_old_config_until_the_new_fleet_is_ready() -> None:
    serving = _serving()
    status = _update(serving, {"green": VariantObservation(0, 1)})
    assert status.endpoint_status == "Updating"
    assert status.endpoint_config_name == "cfg"
    assert status.production_variants == serving.production_variants  # the gateway keeps routing there
    pending = status.pending_deployment_summary
    assert pending is not None
    assert (pending.endpoint_config_name, pending.start_time) == ("cfg-v2", T1)
    assert pending.production_variants[0].variant_status[0].status == "Creating"
    assert (_ready(status).status, _ready(status).reason) == ("Unknown", "Updating")
    assert status.failure_reason is None
    later = _update(status, {"green": VariantObservation(0, 1)}, now=T1 + timedelta(minutes=1))
    assert later.pending_deployment_summary.start_time == T1  # the update's start, not the last write


def test_ready_but_not_rolled_out_is_not_done() -> None:
    status = _update(_serving(), {"green": VariantObservation(1, 1, rolled_out=False)})
    assert status.endpoint_status == "Updating"


def test_an_update_ends_in_service_on_the_new_config_without_a_pending_summary() -> None:
    updating = _update(_serving(), {"green": VariantObservation(0, 1)})
    done = _update(updating, {"green": VariantObservation(1, 1)})
    assert (done.endpoint_status, done.endpoint_config_name) == ("InService", "cfg-v2")
    assert [v.variant_name for v in done.production_variants] == ["green"]
    assert done.pending_deployment_summary is None
    assert "pendingDeploymentSummary" in status_patch(done)  # null in the patch: cleared on the object


def test_a_config_that_cannot_be_served_leaves_the_old_one_in_service() -> None:
    serving = _serving()
    refused = _update(
        serving, {}, Problem("NotSupported", "serverlessConfig is not supported yet.", terminal=True)
    )
    assert (refused.endpoint_status, refused.endpoint_config_name) == ("InService", "cfg")
    assert refused.production_variants == serving.production_variants
    assert "serverlessConfig" in refused.failure_reason
    assert "'cfg' keeps serving" in refused.failure_reason
    assert refused.pending_deployment_summary is None
    missing = _update(
        serving, {}, Problem("EndpointConfigNotFound", "EndpointConfig 'cfg-v2' not found.", terminal=False)
    )
    assert missing.endpoint_status == "Updating"
    assert "not found" in missing.failure_reason


def test_a_stuck_new_fleet_is_reported_and_the_old_one_keeps_serving() -> None:
    stuck = _update(_serving(), {"green": VariantObservation(0, 1, failure="ProgressDeadlineExceeded: no")})
    assert (stuck.endpoint_status, stuck.endpoint_config_name) == ("Updating", "cfg")
    assert "ProgressDeadlineExceeded" in stuck.failure_reason


def test_endpoint_status_is_an_update_only_while_another_config_serves_and_not_on_deletion() -> None:
    serving = _serving()
    common = {
        "generation": 4,
        "plans": NEW,
        "observed": {"green": VariantObservation(0, 1)},
        "problem": None,
        "now": T1,
    }
    assert (
        endpoint_status(previous=serving, config_name="cfg-v2", deleting=False, **common).endpoint_status
        == "Updating"
    )
    assert (
        endpoint_status(previous=serving, config_name="cfg-v2", deleting=True, **common).endpoint_status
        == "Deleting"
    )
    assert (
        endpoint_status(previous=None, config_name="cfg-v2", deleting=False, **common).endpoint_status
        == "Creating"
    )


def test_a_serving_endpoint_whose_spec_goes_wrong_keeps_serving() -> None:
    serving = _serving()
    common = {"generation": 4, "plans": (), "observed": {}, "deleting": False, "now": T1}
    invalid = Problem("InvalidSpec", "spec.deploymentConfig: set one policy, not both", terminal=True)
    status = endpoint_status(previous=serving, config_name=None, problem=invalid, **common)
    assert (status.endpoint_status, status.endpoint_config_name) == ("InService", "cfg")
    assert status.production_variants == serving.production_variants
    assert (_ready(status).status, _ready(status).reason) == ("False", "InvalidSpec")
    assert "The spec cannot be applied: spec.deploymentConfig" in status.failure_reason
    gone = Problem("EndpointConfigNotFound", "EndpointConfig 'cfg' not found.", terminal=False)
    status = endpoint_status(previous=serving, config_name="cfg", problem=gone, **common)
    assert status.endpoint_status == "InService"  # never Creating: the fleet still runs
    assert "'cfg' keeps serving" in status.failure_reason


def test_a_rolled_back_update_is_in_service_on_the_old_config_with_the_reason() -> None:
    updating = _update(_serving(), {"green": VariantObservation(0, 1)})
    status = rolled_back_status(
        updating, generation=4, failed_config="cfg-v2", reason="variant green: CrashLoopBackOff", now=T1
    )
    assert (status.endpoint_status, status.endpoint_config_name) == ("InService", "cfg")
    assert status.pending_deployment_summary is None
    assert status.production_variants == updating.production_variants
    assert (_ready(status).status, _ready(status).reason) == ("False", "UpdateRolledBack")
    assert status.failure_reason == (
        "Update to EndpointConfig 'cfg-v2' rolled back: variant green: CrashLoopBackOff. EndpointConfig 'cfg' serves."
    )


# --- traffic shifting: a blue/green policy moves traffic in steps that bake ------------------


def _canary(wait: int = 60, termination: int = 30) -> ShiftPolicy:
    config = DeploymentConfig.model_validate(
        {
            "blueGreenUpdatePolicy": {
                "trafficRoutingConfiguration": {
                    "type_": "CANARY",
                    "waitIntervalInSeconds": wait,
                    "canarySize": {"type_": "CAPACITY_PERCENT", "value": 25},
                },
                "terminationWaitInSeconds": termination,
            }
        }
    )
    return shift_policy(config, 4)


def _shifting(previous, now, policy):  # type: ignore[no-untyped-def]
    return endpoint_status(
        previous=previous, generation=4, config_name="cfg-v2", plans=NEW,
        observed={"green": VariantObservation(1, 1)}, problem=None, deleting=False, now=now, policy=policy,
    )  # fmt: skip


def _weights(status) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    pending = status.pending_deployment_summary
    return (
        [round(v.current_weight, 3) for v in status.production_variants],
        [round(v.current_weight, 3) for v in pending.production_variants] if pending else [],
    )


def test_a_canary_update_bakes_a_share_then_the_rest_then_waits_before_the_old_fleet_goes() -> None:
    policy = _canary(wait=60, termination=30)
    serving = _serving()  # variants a (0.8) and b (0.2)
    canary = _shifting(serving, T1, policy)
    assert (canary.endpoint_status, canary.endpoint_config_name) == ("Updating", "cfg")
    pending = canary.pending_deployment_summary
    assert pending.traffic_shift.model_dump() == {
        "step": 1, "steps": 2, "new_fleet_share": 0.25, "step_start_time": T1, "provisioning": False,
    }  # fmt: skip
    assert _weights(canary) == ([0.6, 0.15], [0.25])  # the gateway routes by these
    (variant_status,) = pending.production_variants[0].variant_status
    assert (variant_status.status, variant_status.start_time) == ("Baking", T1)
    assert variant_status.status_message == (
        "Baking for 60 seconds (WaitIntervalInSeconds) with traffic enabled on canary capacity of "
        "25 % of the new fleet (step 1 of 2)."
    )
    assert _shifting(canary, T1 + timedelta(seconds=59), policy) is canary  # still baking: nothing to write
    rest = _shifting(canary, T1 + timedelta(seconds=61), policy)
    assert rest.pending_deployment_summary.traffic_shift.step == 2
    assert _weights(rest) == ([0.0, 0.0], [1.0])
    t2 = T1 + timedelta(seconds=61)
    waiting = _shifting(rest, t2 + timedelta(seconds=61), policy)
    assert waiting.endpoint_status == "Updating"  # the old fleet idles for terminationWaitInSeconds
    assert (
        "(TerminationWaitInSeconds)"
        in waiting.pending_deployment_summary.production_variants[0].variant_status[0].status_message
    )
    done = _shifting(waiting, t2 + timedelta(seconds=91), policy)
    assert (done.endpoint_status, done.endpoint_config_name) == ("InService", "cfg-v2")
    assert done.pending_deployment_summary is None
    assert _weights(done) == ([1.0], [])


def test_no_policy_moves_all_traffic_at_once_as_soon_as_the_new_fleet_is_ready() -> None:
    done = _shifting(_serving(), T1, ALL_AT_ONCE)
    assert (done.endpoint_status, done.endpoint_config_name) == ("InService", "cfg-v2")


def test_a_rollback_gives_the_old_fleet_its_own_weights_back() -> None:
    canary = _shifting(_serving(), T1, _canary())
    back = rolled_back_status(canary, generation=4, failed_config="cfg-v2", reason="alarm x", now=T1)
    assert _weights(back) == ([0.8, 0.2], [])


def test_shift_policies_step_as_sagemaker_describes() -> None:
    def shares(routing: dict[str, object], instances: int = 4) -> list[float]:
        config = DeploymentConfig.model_validate(
            {
                "blueGreenUpdatePolicy": {
                    "trafficRoutingConfiguration": {"waitIntervalInSeconds": 5, **routing}
                }
            }
        )
        return [round(step.share, 2) for step in shift_policy(config, instances).steps]

    assert [s.share for s in shift_policy(None, 3).steps] == [1.0]
    assert shares({"type_": "ALL_AT_ONCE"}) == [1.0]
    assert shares({"type_": "CANARY", "canarySize": {"type_": "INSTANCE_COUNT", "value": 1}}) == [0.25, 1.0]
    assert shares({"type_": "LINEAR", "linearStepSize": {"type_": "CAPACITY_PERCENT", "value": 33}}) == [
        0.33, 0.66, 1.0,
    ]  # fmt: skip
    assert shares({"type_": "LINEAR", "linearStepSize": {"type_": "CAPACITY_PERCENT", "value": 50}}) == [
        0.5,
        1.0,
    ]
    assert shares({"type_": "LINEAR", "linearStepSize": {"type_": "INSTANCE_COUNT", "value": 1}}, 2) == [
        0.5,
        1.0,
    ]


def test_a_step_never_skips_its_bake_even_after_a_long_pause() -> None:
    policy = _canary(wait=60, termination=0)
    first = advance(policy, None, T0, ready=True)
    assert first is not None
    later = advance(policy, first, T0 + timedelta(hours=1), ready=True)  # the operator was down an hour
    assert later is not None
    assert (later.step, later.step_start_time) == (2, T0 + timedelta(hours=1))
    assert not done(policy, later, T0 + timedelta(hours=1, seconds=59))
    assert done(policy, later, T0 + timedelta(hours=1, seconds=60))
    assert next_change(policy, later, T0 + timedelta(hours=1, seconds=20)) == 40


def test_shadow_variants_are_reported_apart_and_must_be_ready_too() -> None:
    plans = (
        VariantPlan("prod", 1.0, 1, _image("img")),
        VariantPlan("shadow", 0.5, 1, _image("img2"), shadow=True),
    )
    common = {"previous": None, "generation": 1, "config_name": "cfg", "plans": plans, "problem": None,
              "deleting": False, "now": T0}  # fmt: skip
    starting = endpoint_status(observed={"prod": VariantObservation(1)}, **common)  # type: ignore[arg-type]
    assert starting.endpoint_status == "Creating"  # the shadow is part of the endpoint
    serving = endpoint_status(
        observed={"prod": VariantObservation(1), "shadow": VariantObservation(1)},
        **common,  # type: ignore[arg-type]
    )
    assert serving.endpoint_status == "InService"
    assert [v.variant_name for v in serving.production_variants] == ["prod"]
    assert [(v.variant_name, v.desired_weight) for v in serving.shadow_production_variants] == [
        ("shadow", 0.5)
    ]


def test_a_rollback_is_read_back_from_the_status_so_a_restarted_operator_does_not_retry_it() -> None:
    updating = _update(_serving(), {"green": VariantObservation(0, 1)})
    back = rolled_back_status(
        updating, generation=4, failed_config="cfg-v2", reason="alarm x is firing", now=T1
    )
    assert rolled_back_update(back, "cfg-v2") == (4, "cfg-v2", "alarm x is firing")
    assert rolled_back_update(back, "cfg-v3") is None  # another update: tried
    assert rolled_back_update(updating, "cfg-v2") is None
    assert rolled_back_update(None, "cfg-v2") is None


# --- rolling updates: batches of the new fleet, as much of the old terminated -----------------


def _rolling(batch: dict[str, object], instances: int = 4, wait: int = 30) -> ShiftPolicy:
    config = DeploymentConfig.model_validate(
        {"rollingUpdatePolicy": {"maximumBatchSize": batch, "waitIntervalInSeconds": wait}}
    )
    return shift_policy(config, instances)


def test_a_rolling_policy_provisions_batches_and_terminates_as_much_of_the_old_fleet() -> None:
    policy = _rolling({"type_": "INSTANCE_COUNT", "value": 1})
    assert [(s.share, s.new_capacity, s.old_capacity) for s in policy.steps] == [
        (0.25, 0.25, 1.0), (0.5, 0.5, 0.75), (0.75, 0.75, 0.5), (1.0, 1.0, 0.25),
    ]  # fmt: skip
    assert policy.termination_wait_seconds == 0
    halves = _rolling({"type_": "CAPACITY_PERCENT", "value": 50}, instances=3)
    assert [round(s.new_capacity, 2) for s in halves.steps] == [0.67, 1.0]  # batches of ceil(1.5) = 2


def test_a_rolling_step_moves_traffic_only_once_its_batch_is_ready() -> None:
    policy = _rolling({"type_": "INSTANCE_COUNT", "value": 1}, wait=30)
    assert advance(policy, None, T0, ready=False) is None  # the first batch is starting
    first = advance(policy, None, T0, ready=True)
    assert first is not None
    assert (first.step, first.new_fleet_share, first.provisioning) == (1, 0.25, False)
    second = advance(policy, first, T0 + timedelta(seconds=31), ready=True)
    assert second is not None
    assert (second.step, second.new_fleet_share, second.provisioning) == (2, 0.25, True)  # traffic stays
    assert step_status(policy, second, T0)[0] == "Creating"
    assert next_change(policy, second, T0) is None  # moves when its instances are ready
    assert advance(policy, second, T0 + timedelta(seconds=40), ready=False) is second
    baking = advance(policy, second, T0 + timedelta(seconds=45), ready=True)
    assert baking is not None
    assert (baking.step, baking.new_fleet_share, baking.provisioning) == (2, 0.5, False)
    assert baking.step_start_time == T0 + timedelta(seconds=45)
    assert not done(policy, second, T0 + timedelta(hours=1))


def test_direct_container_hostnames_reach_the_status_the_gateway_reads() -> None:
    plans = (
        VariantPlan("a", 1.0, 1, _image("img"), container_hostnames=("sklearn", "custom")),
        VariantPlan("b", 1.0, 1, _image("img")),
    )
    status = endpoint_status(
        previous=None,
        generation=1,
        config_name="cfg",
        plans=plans,
        observed={"a": VariantObservation(1), "b": VariantObservation(1)},
        problem=None,
        deleting=False,
        now=T0,
    )
    a, b = status_patch(status)["productionVariants"]
    assert a["containerHostnames"] == ["sklearn", "custom"]
    assert "containerHostnames" not in b
