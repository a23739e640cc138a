"""The agent's metrics (its ``GET /metrics``, labels ``endpoint`` and ``variant``), each SageMaker's
async inference metric under sageport's naming: sageport_async_invocations_processed is
InvocationsProcesssed (SageMaker's spelling), then InvocationFailures, ExpiredRequests,
RequestDownloadFailures, ResponseUploadFailures, NotificationFailures, TimeInBacklog,
TotalProcessingTime, RequestDownloadLatency, ResponseUploadLatency, and the common ModelLatency
and Invocation4XX/5XXErrors. Latencies are in seconds, as everywhere in sageport."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from sageport import contract

# Up to the longest a call may wait (RequestTTLSeconds) and run (InvocationTimeoutSeconds).
_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_BUCKETS += (contract.ASYNC_DEFAULT_TIMEOUT, 3600, contract.ASYNC_DEFAULT_TTL)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry, endpoint: str, variant: str) -> None:
        self.registry = registry
        labels = {"endpoint": endpoint, "variant": variant}

        def counter(name: str, help_: str) -> Counter:
            return Counter(f"sageport_async_{name}", help_, list(labels), registry=registry).labels(**labels)

        def histogram(name: str, help_: str) -> Histogram:
            metric = Histogram(
                f"sageport_async_{name}", help_, list(labels), registry=registry, buckets=_BUCKETS
            )
            return metric.labels(**labels)

        self.invocations_processed = counter(
            "invocations_processed", "Calls answered with an output (InvocationsProcesssed)."
        )
        self.invocation_failures = counter(
            "invocation_failures", "Calls that ended in a failure (InvocationFailures)."
        )
        self.expired_requests = counter(
            "expired_requests", "Calls that waited beyond RequestTTLSeconds (ExpiredRequests)."
        )
        self.request_download_failures = counter(
            "request_download_failures", "Inputs that could not be read (RequestDownloadFailures)."
        )
        self.response_upload_failures = counter(
            "response_upload_failures", "Results that could not be written (ResponseUploadFailures)."
        )
        self.notification_failures = counter(
            "notification_failures", "Notifications given up on after every retry (NotificationFailures)."
        )
        self.invocation_4xx = counter("invocation_4xx_errors", "Model answers 4xx (Invocation4XXErrors).")
        self.invocation_5xx = counter(
            "invocation_5xx_errors", "Model answers 5xx, timeouts, no answer (Invocation5XXErrors)."
        )
        self.time_in_backlog = histogram(
            "time_in_backlog_seconds", "Time a call waited in the queue (TimeInBacklog)."
        )
        self.total_processing_time = histogram(
            "total_processing_time_seconds",
            "From receipt to result written and notified (TotalProcessingTime).",
        )
        self.model_latency = histogram("model_latency_seconds", "Time the model took (ModelLatency).")
        self.request_download_latency = histogram(
            "request_download_latency_seconds", "Time to read the input (RequestDownloadLatency)."
        )
        self.response_upload_latency = histogram(
            "response_upload_latency_seconds", "Time to write the output (ResponseUploadLatency)."
        )

    def model_errors(self, status: int | None) -> None:
        """A failed model call: 4xx counts as such; 5xx, timeouts and no answer as 5xx."""
        if status is not None and 400 <= status < 500:
            self.invocation_4xx.inc()
        else:
            self.invocation_5xx.inc()
