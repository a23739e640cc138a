"""What the operator remembers about each Endpoint between runs (in memory, one object per Endpoint)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sageport.api.v1alpha1 import EndpointStatus
from sageport.contract import EndpointStatus as State
from sageport.operator.reconcile.lookups import ChildRef, Key
from sageport.operator.shift import ALL_AT_ONCE, ShiftPolicy
from sageport.operator.status import Problem, VariantPlan

DRIFT_REPAIR_TICKS = 10


@dataclass(frozen=True)
class Outcome:
    """What a full run decided: the config deployed, the variants asked for, what went wrong,
    and the fields accepted but not acted on. Status-only refreshes reuse it."""

    config_name: str | None
    plans: tuple[VariantPlan, ...]
    problem: Problem | None
    not_acted_on: tuple[str, ...] = ()
    rolled_back: tuple[str, str] | None = None  # (config, why) of the failed update this run undid
    # The children this config wants; during an update the others stay until it has taken over.
    wanted: frozenset[ChildRef] = frozenset()
    policy: ShiftPolicy = ALL_AT_ONCE  # how an update moves the traffic
    alarms: tuple[str, ...] = ()  # alarm names whose firing rolls an update back


@dataclass
class EndpointState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # runs for one Endpoint never overlap
    outcome: Outcome | None = None  # of the last full run
    # The status we last wrote: fresher than the body an index hands us, which lags our own writes.
    written: EndpointStatus | None = None
    reconciled: bool = False  # a full run happened since the last invalidation
    reconciled_generation: int | None = None
    ticks: int = 0  # resyncs so far
    unschedulable: dict[str, str] = field(default_factory=dict)  # variant -> scheduler message
    broken: dict[str, str] = field(default_factory=dict)  # variant -> why a container keeps failing
    # (generation, config, reason) of an update that was rolled back: not tried again until the spec changes.
    rolled_back: tuple[int | None, str, str] | None = None
    waiting_since: float | None = None  # monotonic time since when the written status is Creating/Updating
    warned: tuple[int | None, tuple[str, ...]] | None = None  # (generation, fields) last warned about
    wake: asyncio.Future[None] | None = None  # the refresh due when a traffic shift moves on

    def spec_changed(self, generation: int | None) -> bool:
        """True when a full run is due: never ran, invalidated, or the spec has a new generation."""
        return not self.reconciled or self.reconciled_generation != generation

    def ran(self, generation: int | None, outcome: Outcome) -> None:
        self.outcome = outcome
        self.reconciled = True
        self.reconciled_generation = generation

    def tick(self) -> bool:
        """Count a resync; True when it is time to re-apply everything (repair drift)."""
        self.ticks += 1
        return self.ticks % DRIFT_REPAIR_TICKS == 0

    def needs_warning(self, generation: int | None, fields: tuple[str, ...]) -> bool:
        """True once per generation (and list of fields), so resyncs do not repeat the Warning."""
        if not fields or self.warned == (generation, fields):
            return False
        self.warned = (generation, fields)
        return True

    def wrote(self, status: EndpointStatus, now: float) -> None:
        self.written = status
        problem = self.outcome.problem if self.outcome else None
        if status.endpoint_status in (State.CREATING, State.UPDATING) and problem is None:
            if self.waiting_since is None:
                self.waiting_since = now
        else:
            self.waiting_since = None
            self.unschedulable = {}
            self.broken = {}


class EndpointStates:
    """The :class:`EndpointState` of every Endpoint, by (namespace, name)."""

    def __init__(self) -> None:
        self._states: dict[Key, EndpointState] = {}

    def __getitem__(self, key: Key) -> EndpointState:
        return self._states.setdefault(key, EndpointState())

    def forget(self, key: Key) -> None:
        self._states.pop(key, None)

    def invalidate(self, key: Key) -> None:
        if key in self._states:
            self._states[key].reconciled = False

    def waiting_since_before(self, cutoff: float) -> list[Key]:
        """Endpoints whose instances have been starting since before ``cutoff``, longest first."""
        waiting = [
            (state.waiting_since, key)
            for key, state in self._states.items()
            if state.waiting_since is not None and state.waiting_since < cutoff
        ]
        return [key for _, key in sorted(waiting)]
