"""A TransformJob's run-time parameters, resolved once (pure).

Precedence for ``MaxConcurrentTransforms``, ``BatchStrategy`` and ``MaxPayloadInMB``
(sagemaker-semantics.md §1.6): the job's own value, else the container's ``GET
/execution-parameters``, else the defaults 1, MultiRecord, 6. ``MaxConcurrentTransforms`` 0 counts
as unset. ``ModelClientConfig`` defaults: 600 s per invocation, 3 retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sageport.api.v1alpha1 import TransformJobSpec
from sageport.batch.assemble import AssembleWith, DataProcessing
from sageport.batch.records import BatchStrategy, SplitType

DEFAULT_MAX_CONCURRENT_TRANSFORMS = 1
DEFAULT_BATCH_STRATEGY = BatchStrategy.MULTI_RECORD
DEFAULT_MAX_PAYLOAD_IN_MB = 6
DEFAULT_INVOCATIONS_TIMEOUT_SECONDS = 600
DEFAULT_INVOCATIONS_MAX_RETRIES = 3

# The container's /execution-parameters spells strategies in upper snake case.
_CONTAINER_STRATEGIES = {
    "SINGLE_RECORD": BatchStrategy.SINGLE_RECORD,
    "MULTI_RECORD": BatchStrategy.MULTI_RECORD,
}


@dataclass(frozen=True)
class Parameters:
    split_type: SplitType
    batch_strategy: BatchStrategy
    max_payload_in_mb: int
    max_concurrent_transforms: int
    invocations_timeout_seconds: int
    invocations_max_retries: int
    gzip: bool
    content_type: str | None
    accept: str | None
    assemble_with: AssembleWith
    processing: DataProcessing


def resolve(spec: TransformJobSpec, offered: Mapping[str, Any] | None = None) -> Parameters:
    """The parameters a worker runs with; ``offered`` is the container's /execution-parameters
    answer (None when it offers none). Raises ``ValueError`` (ProcessingError) on a bad filter."""
    offered = offered or {}
    concurrency = spec.max_concurrent_transforms or _positive_int(offered.get("MaxConcurrentTransforms"))
    strategy = (
        BatchStrategy(spec.batch_strategy)
        if spec.batch_strategy is not None
        else _CONTAINER_STRATEGIES.get(str(offered.get("BatchStrategy", "")).upper())
    )
    if spec.max_payload_in_mb is not None:
        payload: int | None = spec.max_payload_in_mb
    else:
        offered_payload = offered.get("MaxPayloadInMB")
        payload = (
            offered_payload if isinstance(offered_payload, int) and 0 <= offered_payload <= 100 else None
        )
    client = spec.model_client_config
    processing = spec.data_processing
    source_input, source_output = spec.transform_input, spec.transform_output
    return Parameters(
        split_type=SplitType(source_input.split_type or SplitType.NONE),
        batch_strategy=strategy or DEFAULT_BATCH_STRATEGY,
        max_payload_in_mb=DEFAULT_MAX_PAYLOAD_IN_MB if payload is None else payload,
        max_concurrent_transforms=concurrency or DEFAULT_MAX_CONCURRENT_TRANSFORMS,
        invocations_timeout_seconds=(
            client.invocations_timeout_in_seconds
            if client and client.invocations_timeout_in_seconds is not None
            else DEFAULT_INVOCATIONS_TIMEOUT_SECONDS
        ),
        invocations_max_retries=(
            client.invocations_max_retries
            if client and client.invocations_max_retries is not None
            else DEFAULT_INVOCATIONS_MAX_RETRIES
        ),
        gzip=source_input.compression_type == "Gzip",
        content_type=source_input.content_type,
        accept=source_output.accept,
        assemble_with=AssembleWith(source_output.assemble_with or AssembleWith.NONE),
        processing=DataProcessing.of(
            processing.input_filter if processing else None,
            processing.output_filter if processing else None,
            processing.join_source if processing else None,
            source_input.content_type,
            source_output.accept,
        ),
    )


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
