"""Multi-model endpoint metrics, SageMaker's names (per instance), on the server's ``GET /metrics``:
ModelCacheHit (hits over hits + misses), ModelLoadingWaitTime, ModelDownloadingTime,
ModelLoadingTime, ModelUnloadingTime, LoadedModelCountPerInstance and ModelCountPerInstance."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 360.0)


class MultiModelMetrics:
    def __init__(self, loaded: Callable[[], int], on_disk: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.cache_hits = Counter(
            "sageport_model_cache_hits",
            "Calls whose model was loaded already (ModelCacheHit).",
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "sageport_model_cache_misses",
            "Calls that had to wait for their model to load.",
            registry=self.registry,
        )
        self.loading_wait = Histogram(
            "sageport_model_loading_wait_seconds",
            "How long a call waited for its model to be downloaded and loaded (ModelLoadingWaitTime).",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.downloading = Histogram(
            "sageport_model_downloading_seconds",
            "Downloading and unpacking a model from the prefix (ModelDownloadingTime).",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.loading = Histogram(
            "sageport_model_loading_seconds",
            "Loading a model from the disk into memory (ModelLoadingTime).",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.unloading = Histogram(
            "sageport_model_unloading_seconds",
            "Unloading a model from memory (ModelUnloadingTime).",
            buckets=_SECONDS,
            registry=self.registry,
        )
        Gauge(
            "sageport_loaded_models",
            "Models in memory (LoadedModelCountPerInstance).",
            registry=self.registry,
        ).set_function(lambda: float(loaded()))
        Gauge(
            "sageport_models_on_disk",
            "Models on the instance's disk (ModelCountPerInstance).",
            registry=self.registry,
        ).set_function(lambda: float(on_disk()))
