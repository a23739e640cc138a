"""Prometheus metrics named after SageMaker's CloudWatch metrics, labelled endpoint and variant.

SageMaker reports latencies in microseconds; Prometheus convention is seconds, so the names end
in ``_seconds`` and the buckets cover 100 µs to 60 s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# (endpoint, variant, endpoint_config, ready instances) per variant the gateway routes to.
InstanceCounts = Callable[[], Iterable[tuple[str, str, str, int]]]
# (endpoint, variant, endpoint_config, calls in flight on every gateway replica, maxConcurrency,
# provisionedConcurrency or 0) per serverless variant.
ServerlessCounts = Callable[[], Iterable[tuple[str, str, str, int, int, int]]]

_LATENCY_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
_LATENCY_BUCKETS += (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LABELS = ("endpoint", "variant")
# Per-variant invocation metrics also name the EndpointConfig whose fleet answered: during an
# update both fleets may have a variant of one name, and an alarm on the new fleet needs to tell
# them apart (SageMaker's EndpointConfigName dimension). Empty in standalone mode.
_FLEET_LABELS = (*_LABELS, "endpoint_config")


@dataclass(frozen=True)
class VariantMetrics:
    """Label children bound once per (endpoint, variant): the hot path skips label lookups."""

    invocations: Counter
    invocation_4xx_errors: Counter
    invocation_5xx_errors: Counter
    invocation_model_errors: Counter
    invocations_per_instance: Counter
    model_latency: Histogram
    overhead_latency: Histogram
    in_flight: Gauge


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.invocations = Counter(
            "sageport_invocations",
            "Invocations sent to the model (SageMaker Invocations).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.invocation_4xx_errors = Counter(
            "sageport_invocation_4xx_errors",
            "Invocations where the model answered 4xx (Invocation4XXErrors).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.invocation_5xx_errors = Counter(
            "sageport_invocation_5xx_errors",
            "Invocations where the model answered 5xx (Invocation5XXErrors).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.invocation_model_errors = Counter(
            "sageport_invocation_model_errors",
            "Invocations that were not 2xx from the model, including timeouts and broken connections "
            "(InvocationModelErrors).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.invocations_per_instance = Counter(
            "sageport_invocations_per_instance",
            "Each invocation adds 1/ready instances of its variant (InvocationsPerInstance).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.model_latency = Histogram(
            "sageport_model_latency_seconds",
            "Time the model took to answer, seen from the gateway (ModelLatency).",
            _FLEET_LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_setup_time = Histogram(
            "sageport_model_setup_time_seconds",
            "Serverless variants: how long a call was held while the variant scaled from zero, until a "
            "pod was ready (ModelSetupTime, the cold start).",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        # Serverless provisioned concurrency (SageMaker publishes these only when it is set).
        self.provisioned_invocations = Counter(
            "sageport_serverless_provisioned_concurrency_invocations",
            "Serverless calls served within provisionedConcurrency: the calls in flight for the "
            "endpoint, this one included, were at most provisionedConcurrency "
            "(ServerlessProvisionedConcurrencyInvocations).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.spillover_invocations = Counter(
            "sageport_serverless_provisioned_concurrency_spillover_invocations",
            "Serverless calls beyond provisionedConcurrency in flight, served on demand "
            "(ServerlessProvisionedConcurrencySpilloverInvocations).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.overhead_latency = Histogram(
            "sageport_overhead_latency_seconds",
            "Time spent in the gateway: total minus model latency (OverheadLatency).",
            _FLEET_LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "sageport_in_flight_requests",
            "Requests currently being served by the model (ConcurrentRequests).",
            _FLEET_LABELS,
            registry=registry,
        )
        self.shadow_copies_dropped = Counter(
            "sageport_shadow_copies_dropped",
            "Copies of requests not sent to a shadow variant because too many were in flight.",
            _LABELS,
            registry=registry,
        )
        self.gateway_errors = Counter(
            "sageport_gateway_errors",
            "Requests the gateway answered with an error instead of reaching a model, by error code.",
            ("code",),
            registry=registry,
        )

        # Asynchronous inference: the queue of each async variant, sampled (SageMaker's names in help).
        self.async_backlog_size = Gauge(
            "sageport_async_backlog_size",
            "Calls queued or in progress (ApproximateBacklogSize).",
            _LABELS,
            registry=registry,
        )
        self.async_backlog_size_per_instance = Gauge(
            "sageport_async_backlog_size_per_instance",
            "Backlog over ready instances (ApproximateBacklogSizePerInstance).",
            _LABELS,
            registry=registry,
        )
        self.async_age_of_oldest_request = Gauge(
            "sageport_async_age_of_oldest_request_seconds",
            "Age of the oldest queued call (ApproximateAgeOfOldestRequest).",
            _LABELS,
            registry=registry,
        )
        self.async_has_backlog_without_capacity = Gauge(
            "sageport_async_has_backlog_without_capacity",
            "1 when calls are queued and the variant has no ready instance (HasBacklogWithoutCapacity).",
            _LABELS,
            registry=registry,
        )

        # Data capture (sageport's; SageMaker reports none): what reached S3 and what did not.
        self.data_capture_records = Counter(
            "sageport_data_capture_records",
            "Invocations captured and written to S3 (data capture).",
            _LABELS,
            registry=registry,
        )
        self.data_capture_dropped = Counter(
            "sageport_data_capture_dropped_records",
            "Sampled invocations not captured: the buffer was full (BufferFull) or S3 refused or "
            "did not answer the upload (UploadFailed).",
            (*_LABELS, "reason"),
            registry=registry,
        )
        self.data_capture_buffered_bytes = Gauge(
            "sageport_data_capture_buffered_bytes",
            "Captured payload bytes held in memory: waiting for, or in, an upload to S3.",
            registry=registry,
        )

    def count_instances(self, counts: InstanceCounts) -> None:
        """Export the ready instances per variant, read from the route table at each scrape."""
        self.registry.register(_InstancesCollector(counts))

    def count_serverless(self, counts: ServerlessCounts) -> None:
        """Export the serverless concurrency gauges, read from the activator at each scrape."""
        self.registry.register(_ServerlessCollector(counts))

    def for_variant(self, endpoint: str, variant: str, config: str = "") -> VariantMetrics:
        labels = (endpoint, variant, config)
        return VariantMetrics(
            invocations=self.invocations.labels(*labels),
            invocation_4xx_errors=self.invocation_4xx_errors.labels(*labels),
            invocation_5xx_errors=self.invocation_5xx_errors.labels(*labels),
            invocation_model_errors=self.invocation_model_errors.labels(*labels),
            invocations_per_instance=self.invocations_per_instance.labels(*labels),
            model_latency=self.model_latency.labels(*labels),
            overhead_latency=self.overhead_latency.labels(*labels),
            in_flight=self.in_flight.labels(*labels),
        )


class _InstancesCollector(Collector):
    def __init__(self, counts: InstanceCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "sageport_variant_instances",
            "Ready instances of the variant the gateway routes to (CurrentInstanceCount).",
            labels=list(_FLEET_LABELS),
        )
        for endpoint, variant, config, count in self._counts():
            family.add_metric([endpoint, variant, config], float(count))
        yield family


class _ServerlessCollector(Collector):
    """Endpoint-wide gauges (every replica counts its peers' calls too, so each reports the same
    value: aggregate with max, not sum)."""

    def __init__(self, counts: ServerlessCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        def family(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=list(_FLEET_LABELS))

        utilization = family(
            "sageport_serverless_concurrent_executions_utilization",
            "Serverless calls in flight over maxConcurrency (ServerlessConcurrentExecutionsUtilization).",
        )
        executions = family(
            "sageport_serverless_provisioned_concurrency_executions",
            "Serverless calls in flight served by provisioned concurrency, at most provisionedConcurrency "
            "(ServerlessProvisionedConcurrencyExecutions).",
        )
        provisioned = family(
            "sageport_serverless_provisioned_concurrency_utilization",
            "Provisioned-concurrency executions over provisionedConcurrency "
            "(ServerlessProvisionedConcurrencyUtilization).",
        )
        for endpoint, variant, config, in_flight, max_concurrency, warm in self._counts():
            labels = [endpoint, variant, config]
            utilization.add_metric(labels, in_flight / max_concurrency)
            if warm > 0:
                executions.add_metric(labels, float(min(in_flight, warm)))
                provisioned.add_metric(labels, min(in_flight, warm) / warm)
        yield from (utilization, executions, provisioned)
