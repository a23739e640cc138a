"""The agent's metrics, named after SageMaker's async inference metrics (per endpoint and variant,
labels set once): InvocationsProcesssed (sic, SageMaker's spelling), InvocationFailures,
ExpiredRequests, TimeInBacklog, TotalProcessingTime, Request/Response transfer figures, and
the common ModelLatency and Invocation4XX/5XXErrors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_MS_BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000)
_US_BUCKETS = tuple(b * 1000 for b in _MS_BUCKETS)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry, endpoint: str, variant: str) -> None:
        self.registry = registry
        labels = {"EndpointName": endpoint, "VariantName": variant}

        def counter(name: str, help_: str) -> Counter:
            metric = Counter(name, help_, list(labels), registry=registry)
            return metric.labels(**labels)

        def histogram(name: str, help_: str, buckets: tuple[float, ...]) -> Histogram:
            metric = Histogram(name, help_, list(labels), registry=registry, buckets=buckets)
            return metric.labels(**labels)

        self.invocations_processed = counter("InvocationsProcesssed", "Async calls answered with an output")
        self.invocation_failures = counter("InvocationFailures", "Async calls that ended in a failure")
        self.expired_requests = counter("ExpiredRequests", "Calls that waited beyond RequestTTLSeconds")
        self.request_download_failures = counter("RequestDownloadFailures", "Inputs that could not be read")
        self.response_upload_failures = counter("ResponseUploadFailures", "Results that could not be written")
        self.notification_failures = counter("NotificationFailures", "Notifications given up on")
        self.invocation_4xx = counter("Invocation4XXErrors", "Model answers 4xx")
        self.invocation_5xx = counter("Invocation5XXErrors", "Model answers 5xx, timeouts, no answer")
        self.time_in_backlog = histogram(
            "TimeInBacklog", "Milliseconds a call waited in the queue", _MS_BUCKETS
        )
        self.total_processing_time = histogram(
            "TotalProcessingTime", "Milliseconds from receipt to the result written", _MS_BUCKETS
        )
        self.model_latency = histogram("ModelLatency", "Microseconds the model took", _US_BUCKETS)
        self.request_download_latency = histogram(
            "RequestDownloadLatency", "Microseconds to read the input", _US_BUCKETS
        )
        self.response_upload_latency = histogram(
            "ResponseUploadLatency", "Microseconds to write the output", _US_BUCKETS
        )

    def model_errors(self, status: int | None) -> None:
        """A failed model call: 4xx counts as such; 5xx, timeouts and no answer as 5xx."""
        if status is not None and 400 <= status < 500:
            self.invocation_4xx.inc()
        else:
            self.invocation_5xx.inc()
