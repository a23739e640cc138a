"""Per-container metrics, SageMaker's names for Direct multi-container endpoints (dimensions
EndpointName, VariantName, ContainerName): Invocations, Invocation4XXErrors,
Invocation5XXErrors and ContainerLatency, in seconds as Prometheus has it."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
_LATENCY_BUCKETS += (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LABELS = ("endpoint", "variant", "container")


@dataclass(frozen=True)
class ContainerMetrics:
    """Label children bound once per container: the hot path skips label lookups."""

    invocations: Counter
    invocation_4xx_errors: Counter
    invocation_5xx_errors: Counter
    container_latency: Histogram


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry, endpoint: str, variant: str) -> None:
        self.registry = registry
        self.endpoint = endpoint
        self.variant = variant
        self.invocations = Counter(
            "sageport_container_invocations",
            "Invocations sent to a container of a Direct multi-container instance (Invocations).",
            _LABELS,
            registry=registry,
        )
        self.invocation_4xx_errors = Counter(
            "sageport_container_invocation_4xx_errors",
            "Invocations the container answered 4xx (Invocation4XXErrors).",
            _LABELS,
            registry=registry,
        )
        self.invocation_5xx_errors = Counter(
            "sageport_container_invocation_5xx_errors",
            "Invocations the container answered 5xx, or did not answer (Invocation5XXErrors).",
            _LABELS,
            registry=registry,
        )
        self.container_latency = Histogram(
            "sageport_container_latency_seconds",
            "Time the container took to answer, as the router sees it (ContainerLatency).",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def for_container(self, hostname: str) -> ContainerMetrics:
        labels = (self.endpoint, self.variant, hostname)
        return ContainerMetrics(
            self.invocations.labels(*labels),
            self.invocation_4xx_errors.labels(*labels),
            self.invocation_5xx_errors.labels(*labels),
            self.container_latency.labels(*labels),
        )
