"""Leader election's decision (pure) and the elector's loop over an in-memory Lease store with
the API server's optimistic concurrency (a stale resourceVersion is a conflict)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from sageport.operator.election import (
    LeaderElector,
    LeaseConflictError,
    LeaseRecord,
    Timing,
    claim,
    lease_manifest,
    parse_lease,
    released,
)

NOW = "2026-12-07T13:00:00.000000Z"


def test_a_missing_lease_is_created_for_us() -> None:
    assert claim(None, "a", 0.0, NOW, 8) == LeaseRecord("a", 8, NOW, NOW, 0)


def test_the_holder_renews_keeping_its_acquire_time() -> None:
    held = LeaseRecord("a", 8, "t0", "t1", 3, "41")
    assert claim(held, "a", 100.0, NOW, 8) == LeaseRecord("a", 8, "t0", NOW, 3, "41")


def test_another_holders_live_lease_is_left_alone_until_it_went_unrenewed_its_duration() -> None:
    held = LeaseRecord("b", 8, "t0", "t1", 3, "41")
    assert claim(held, "a", 7.9, NOW, 8) is None
    assert claim(held, "a", 8.0, NOW, 8) == LeaseRecord("a", 8, NOW, NOW, 4, "41")


def test_a_released_lease_is_taken_at_once() -> None:
    free = released(LeaseRecord("b", 8, "t0", "t1", 3, "41"), NOW)
    assert free.holder == ""
    assert claim(free, "a", 0.0, NOW, 8) == LeaseRecord("a", 8, NOW, NOW, 4, "41")


def test_the_manifest_round_trips() -> None:
    record = LeaseRecord("a", 8, NOW, NOW, 2, "7")
    manifest = lease_manifest("ns", "op", record)
    assert manifest["metadata"] == {"name": "op", "namespace": "ns", "resourceVersion": "7"}
    assert parse_lease(manifest) == record


def test_timing_must_let_a_leader_give_up_before_anyone_may_take_over() -> None:
    with pytest.raises(ValueError, match="renew < deadline < lease duration"):
        Timing(duration_seconds=5, deadline_seconds=6.0)


class Store:
    """The API server's Lease semantics: create fails if it exists, update needs the current version."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False
        self.on_failure: Callable[[], None] = lambda: None

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.down:
            self.on_failure()
            raise OSError("connection refused")
        return copy.deepcopy(self.lease)

    async def write_lease(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if self.down:
            raise OSError("connection refused")
        given = manifest["metadata"].get("resourceVersion")
        stored = None if self.lease is None else self.lease["metadata"]["resourceVersion"]
        if given != stored:
            raise LeaseConflictError("the object has been modified")
        self.version += 1
        self.lease = copy.deepcopy(manifest)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_standby_takes_over_only_after_the_leader_stopped_renewing() -> None:
    store, clock = Store(), Clock()
    timing = Timing(duration_seconds=8, deadline_seconds=6, renew_seconds=2, retry_seconds=1)
    leader = LeaderElector(store, "ns", "op", "a", timing, clock)
    standby = LeaderElector(store, "ns", "op", "b", timing, clock)
    assert await leader._try()
    for _ in range(10):  # the leader renews every 2 s: the standby never gets it
        assert not await standby._try()
        clock.now += 2
        assert await leader._try()
    assert not await standby._try()  # the leader dies here; the standby sees the last record
    clock.now += 7.9
    assert not await standby._try()
    clock.now += 0.1
    assert await standby._try()
    assert parse_lease(store.lease or {}).holder == "b"
    assert parse_lease(store.lease or {}).transitions == 1
    # The old leader, were it only paused, finds the Lease gone and does not win it back.
    assert not await leader._try()


async def test_a_leader_that_cannot_renew_gives_up_within_its_deadline() -> None:
    store, clock = Store(), Clock()
    timing = Timing(duration_seconds=8, deadline_seconds=6, renew_seconds=0.001, retry_seconds=0.001)
    leader = LeaderElector(store, "ns", "op", "a", timing, clock)
    await leader.acquire()
    store.down = True
    store.on_failure = lambda: setattr(clock, "now", clock.now + 1.0)  # each failed call costs 1 s
    lost: list[str] = []
    await leader.keep(lost.append)
    assert len(lost) == 1
    assert "could not renew" in lost[0]
    assert clock.now <= 7.0  # gave up before the lease (8 s) could expire for the others


async def test_release_lets_the_standby_in_without_waiting() -> None:
    store, clock = Store(), Clock()
    leader = LeaderElector(store, "ns", "op", "a", clock=clock)
    standby = LeaderElector(store, "ns", "op", "b", clock=clock)
    await leader.acquire()
    assert not await standby._try()
    await leader.release()
    assert await standby._try()
