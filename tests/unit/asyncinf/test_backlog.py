"""SageMaker's queue metrics of an async variant, from the stream's length and oldest entry."""

from __future__ import annotations

from sageport.asyncinf.backlog import Backlog, backlog, entry_millis


def test_entry_ids_carry_the_time_redis_appended_them() -> None:
    assert entry_millis(b"1700000000123-7") == 1_700_000_000_123
    assert entry_millis("5-0") == 5


def test_a_backlog_with_instances() -> None:
    assert backlog(6, b"1000-0", 4000, 3) == Backlog(6, 2.0, 3.0, 0)


def test_a_backlog_at_zero_instances_has_no_capacity() -> None:
    assert backlog(2, b"1000-1", 1500, 0) == Backlog(2, 2.0, 0.5, 1)


def test_an_empty_queue() -> None:
    assert backlog(0, None, 1500, 0) == Backlog(0, 0.0, 0.0, 0)
    assert backlog(0, None, 1500, 2) == Backlog(0, 0.0, 0.0, 0)
