"""The queue's SageMaker metrics (pure): ApproximateBacklogSize, ...PerInstance,
ApproximateAgeOfOldestRequest and HasBacklogWithoutCapacity of one async variant.

The gateway computes them (it sees both the queue and the ready instances, and runs when the
variant has none), from the stream's length (entries are deleted once answered, so the length
counts the calls waiting or in progress) and its oldest entry's id (milliseconds since the epoch
at which Redis appended it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backlog:
    size: int  # ApproximateBacklogSize
    per_instance: float  # ApproximateBacklogSizePerInstance (the size itself at 0 instances)
    age_of_oldest_seconds: float  # ApproximateAgeOfOldestRequest
    without_capacity: int  # HasBacklogWithoutCapacity: 1 when calls wait and no instance runs


def entry_millis(entry_id: bytes | str) -> int:
    """The time part of a stream entry id (``<ms>-<seq>``)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])


def backlog(size: int, oldest_id: bytes | str | None, now_ms: int, instances: int) -> Backlog:
    age = max(now_ms - entry_millis(oldest_id), 0) / 1000 if oldest_id is not None and size else 0.0
    return Backlog(
        size=size,
        per_instance=size / instances if instances else float(size),
        age_of_oldest_seconds=age,
        without_capacity=int(size > 0 and instances == 0),
    )
