"""EndpointState: what the operator remembers about one Endpoint between runs."""

from __future__ import annotations

from sageport.api.v1alpha1 import EndpointStatus
from sageport.operator.reconcile.state import DRIFT_REPAIR_TICKS, EndpointState, EndpointStates, Outcome
from sageport.operator.status import Problem

OK = Outcome("cfg", (), None)


def test_a_full_run_is_due_until_one_ran_for_this_generation() -> None:
    state = EndpointState()
    assert state.spec_changed(None)
    state.ran(3, OK)
    assert not state.spec_changed(3)
    assert state.spec_changed(4)


def test_invalidate_makes_the_next_run_full_and_never_creates_a_state() -> None:
    states = EndpointStates()
    states.invalidate(("ns", "unknown"))
    assert states.waiting_since_before(float("inf")) == []
    states[("ns", "a")].ran(1, OK)
    states.invalidate(("ns", "a"))
    assert states[("ns", "a")].spec_changed(1)


def test_drift_repair_every_n_ticks() -> None:
    state = EndpointState()
    due = [state.tick() for _ in range(2 * DRIFT_REPAIR_TICKS)]
    assert [i + 1 for i, d in enumerate(due) if d] == [DRIFT_REPAIR_TICKS, 2 * DRIFT_REPAIR_TICKS]


def test_warning_once_per_generation_and_list_of_fields() -> None:
    state = EndpointState()
    fields = ("EndpointConfig.dataCaptureConfig",)
    assert not state.needs_warning(1, ())
    assert state.needs_warning(1, fields)
    assert not state.needs_warning(1, fields)  # a resync: no second event
    assert state.needs_warning(2, fields)  # a new spec
    assert state.needs_warning(2, (*fields, "Endpoint.deploymentConfig"))


def test_waiting_for_instances_while_creating_longest_first() -> None:
    states = EndpointStates()
    creating = EndpointStatus(endpoint_status="Creating")
    for name, since in (("late", 20.0), ("early", 10.0)):
        state = states[("ns", name)]
        state.ran(1, OK)
        state.wrote(creating, since)
        state.wrote(creating, since + 100)  # still waiting since the first write
    assert states.waiting_since_before(30.0) == [("ns", "early"), ("ns", "late")]
    states[("ns", "early")].unschedulable = {"v": "no node"}
    states[("ns", "early")].wrote(EndpointStatus(endpoint_status="InService"), 40.0)
    assert states[("ns", "early")].unschedulable == {}
    states.forget(("ns", "late"))
    assert states.waiting_since_before(30.0) == []


def test_a_problem_is_not_waiting_for_instances() -> None:
    state = EndpointState()
    state.ran(1, Outcome("cfg", (), Problem("ModelNotFound", "m", terminal=False)))
    state.wrote(EndpointStatus(endpoint_status="Creating"), 1.0)
    assert state.waiting_since is None
