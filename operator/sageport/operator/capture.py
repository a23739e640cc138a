"""Pure: the data capture an Endpoint reports, from the EndpointConfig it serves.

The operator does no capturing itself: it writes SageMaker's ``DataCaptureConfigSummary`` (plus
the options the gateway needs) into ``status.dataCaptureConfig``, and every gateway replica,
watching Endpoints, captures by it. The summary follows ``status.endpointConfigName``, the
config that serves: during an update the old config's capture goes on until the new fleet has
the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from sageport.api.v1alpha1 import (
    DataCaptureConfigSummary,
    EndpointConfig,
    EndpointConfigSpec,
    EndpointStatus,
)
from sageport.contract import CaptureStatus


def capture_summary(config: EndpointConfigSpec) -> DataCaptureConfigSummary | None:
    """DescribeEndpoint's DataCaptureConfig for an endpoint serving ``config`` (None: no capture
    configured). ``enableCapture`` defaults to true, as in SageMaker; false reports Stopped."""
    capture = config.data_capture_config
    if capture is None:
        return None
    enabled = capture.enable_capture is not False
    return DataCaptureConfigSummary(
        enable_capture=enabled,
        capture_status=CaptureStatus.STARTED if enabled else CaptureStatus.STOPPED,
        current_sampling_percentage=capture.initial_sampling_percentage,
        destination_s3_uri=capture.destination_s3_uri,
        kms_key_id=capture.kms_key_id,
        capture_options=capture.capture_options,
        capture_content_type_header=capture.capture_content_type_header,
    )


def _only_spec(configs: Sequence[Mapping[str, Any]]) -> EndpointConfigSpec | None:
    """The spec of the one EndpointConfig of that name (None when missing, ambiguous or invalid)."""
    if len(configs) != 1:
        return None
    try:
        return EndpointConfig.model_validate(configs[0]).spec
    except ValidationError:
        return None


def with_data_capture(
    status: EndpointStatus, previous: EndpointStatus | None, serving_configs: Sequence[Mapping[str, Any]]
) -> EndpointStatus:
    """``status`` with the ``dataCaptureConfig`` and ``asyncInferenceConfig`` of the config it
    serves (the gateway captures and queues by them).

    ``serving_configs`` are the EndpointConfigs named ``status.endpointConfigName``. When that
    config cannot be read (deleted while it serves, say), the summary already reported for it
    stays: capture goes on with the fleet. Returns ``previous`` itself when nothing but the
    modification time would change, so the caller writes nothing.
    """
    spec = _only_spec(serving_configs)
    if spec is not None:
        summary, queued = capture_summary(spec), spec.async_inference_config
    elif previous is not None and previous.endpoint_config_name == status.endpoint_config_name:
        summary, queued = previous.data_capture_config, previous.async_inference_config
    else:
        summary, queued = status.data_capture_config, status.async_inference_config
    if summary == status.data_capture_config and queued == status.async_inference_config:
        return status
    new = status.model_copy(update={"data_capture_config": summary, "async_inference_config": queued})
    if previous is not None and _without_time(previous) == _without_time(new):
        return previous
    return new


def _without_time(status: EndpointStatus) -> EndpointStatus:
    return status.model_copy(update={"last_modified_time": None})
