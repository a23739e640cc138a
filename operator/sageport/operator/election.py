"""Leader election on a coordination.k8s.io/v1 Lease, as client-go does it, so that of several
operator replicas exactly one reconciles and another takes over within seconds of its death.

Why not kopf's peering: it keeps its own KopfPeering objects rather than a Lease, and replicas
of equal priority all keep running (it only warns), so it pauses debugging operators rather than
electing one leader. This is client-go's algorithm: the holder renews the Lease every
``renew_seconds``; a candidate takes it over once the record it last saw has not changed for
``leaseDurationSeconds`` of the candidate's own clock (so clocks need not agree); a write is an
update with the resourceVersion read, so of two candidates exactly one wins. A leader that cannot
renew for ``deadline_seconds`` (< the lease duration) exits before anyone may take over, and a
leader that stops cleanly releases the Lease for an immediate takeover.

``claim`` is the pure decision; :class:`LeaderElector` is the loop over a :class:`LeaseApi`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

log = logging.getLogger("sageport.operator.election")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class LeaseRecord:
    holder: str  # "" when released
    duration_seconds: int
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str | None = None  # of the stored object; None: it does not exist yet


@dataclass(frozen=True)
class Timing:
    duration_seconds: int = 6  # a dead leader is replaced after at most this (+ one retry)
    deadline_seconds: float = 4.0  # a leader that cannot renew this long exits
    renew_seconds: float = 1.0
    retry_seconds: float = 0.5

    def __post_init__(self) -> None:
        if not self.renew_seconds < self.deadline_seconds < self.duration_seconds:
            raise ValueError("leader election needs renew < deadline < lease duration")


def parse_lease(manifest: Manifest) -> LeaseRecord:
    spec = manifest.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(manifest.get("metadata") or {}).get("resourceVersion"),
    )


def lease_manifest(namespace: str, name: str, record: LeaseRecord) -> Manifest:
    metadata: Manifest = {"name": name, "namespace": namespace}
    if record.resource_version is not None:
        metadata["resourceVersion"] = record.resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": record.duration_seconds,
            "acquireTime": record.acquire_time,
            "renewTime": record.renew_time,
            "leaseTransitions": record.transitions,
        },
    }


def claim(
    current: LeaseRecord | None, me: str, unchanged_for: float, now: str, duration_seconds: int
) -> LeaseRecord | None:
    """The record to write to hold the Lease, or None while another holder's lease is live.

    ``unchanged_for``: seconds, on our clock, since we first saw ``current`` as it is now.
    ``now``: the timestamp to write (RFC 3339 with microseconds, as the Lease API wants).
    """
    if current is None:
        return LeaseRecord(me, duration_seconds, now, now, 0)
    if current.holder == me:
        return replace(current, duration_seconds=duration_seconds, renew_time=now)
    if current.holder and unchanged_for < current.duration_seconds:
        return None
    return replace(
        current,
        holder=me,
        duration_seconds=duration_seconds,
        acquire_time=now,
        renew_time=now,
        transitions=current.transitions + 1,
    )


def released(current: LeaseRecord, now: str) -> LeaseRecord:
    """What a leader writes when it stops: no holder, so the next candidate need not wait."""
    return replace(current, holder="", duration_seconds=1, renew_time=now)


class LeaseConflictError(Exception):
    """Someone else wrote the Lease since we read it."""


class LeaseApi(Protocol):
    async def get_lease(self, namespace: str, name: str) -> Manifest | None: ...

    async def write_lease(self, manifest: Manifest) -> Manifest:
        """Create (no resourceVersion) or replace (with it); LeaseConflictError if it changed."""
        ...


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: LeaseApi,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.timing = timing
        self._clock = clock
        self._seen: LeaseRecord | None = None
        self._seen_at = 0.0
        self._held: LeaseRecord | None = None
        self.last_renewed = 0.0

    async def _try(self) -> bool:
        """One attempt to acquire or renew; True when we hold the Lease afterwards."""
        stored = await self.api.get_lease(self.namespace, self.name)
        current = parse_lease(stored) if stored is not None else None
        if current != self._seen:
            self._seen, self._seen_at = current, self._clock()
        wanted = claim(
            current, self.identity, self._clock() - self._seen_at, _now(), self.timing.duration_seconds
        )
        if wanted is None:
            return False
        try:
            written = await self.api.write_lease(lease_manifest(self.namespace, self.name, wanted))
        except LeaseConflictError:
            return False
        self._held = parse_lease(written)
        self.last_renewed = self._clock()
        return True

    async def acquire(self) -> None:
        """Return once this replica holds the Lease."""
        announced = False
        while True:
            try:
                if await self._try():
                    holder = self._held.transitions if self._held else 0
                    log.info(
                        "leading: holding Lease %s/%s (transition %d)", self.namespace, self.name, holder
                    )
                    return
                if not announced and self._seen is not None:
                    log.info(
                        "standing by: Lease %s/%s is held by %s", self.namespace, self.name, self._seen.holder
                    )
                    announced = True
            except Exception as error:  # the API server may be away; keep trying
                log.warning("leader election: %s", error)
            await asyncio.sleep(self.timing.retry_seconds)

    async def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew until cancelled; ``on_lost`` (which must stop this replica reconciling at once)
        when the Lease went to another holder or could not be renewed in time."""
        while True:
            await asyncio.sleep(self.timing.renew_seconds)
            try:
                if await self._try():
                    continue
                on_lost(
                    f"Lease {self.namespace}/{self.name} is now held by {self._seen and self._seen.holder}"
                )
                return
            except Exception as error:
                log.warning("leader election: renewing failed: %s", error)
            if self._clock() - self.last_renewed > self.timing.deadline_seconds:
                on_lost(
                    f"could not renew Lease {self.namespace}/{self.name} for {self.timing.deadline_seconds:g} s"
                )
                return

    async def release(self) -> None:
        """Give the Lease up (if still ours) so a standby takes over without waiting."""
        if self._held is None:
            return
        try:
            stored = await self.api.get_lease(self.namespace, self.name)
            if stored is None or parse_lease(stored).holder != self.identity:
                return
            record = released(parse_lease(stored), _now())
            await self.api.write_lease(lease_manifest(self.namespace, self.name, record))
            log.info("released Lease %s/%s", self.namespace, self.name)
        except Exception as error:
            log.warning("leader election: releasing failed: %s", error)
