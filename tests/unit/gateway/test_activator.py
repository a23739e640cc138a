"""The activator's per-minute call count (target tracking's SageMakerVariantInvocationsPerInstance)."""

from __future__ import annotations

from sageport.gateway.activator import RATE_WINDOW_SECONDS, Activator


def test_calls_count_for_one_minute_per_fleet() -> None:
    now = [1000.0]
    activator = Activator(clock=lambda: now[0])
    fleet, other = ("ns", "ep", "cfg", "AllTraffic"), ("ns", "ep", "cfg", "Other")
    assert activator.calls_per_minute(fleet) == 0
    for _ in range(5):
        activator.invoked(fleet)
        now[0] += 10
    activator.invoked(other)
    assert (activator.calls_per_minute(fleet), activator.calls_per_minute(other)) == (5, 1)
    now[0] = 1000.0 + RATE_WINDOW_SECONDS + 15  # the first two calls are over a minute old
    assert activator.calls_per_minute(fleet) == 3
    now[0] += RATE_WINDOW_SECONDS
    assert activator.calls_per_minute(fleet) == 0
