"""The data capture summary an Endpoint reports (operator side of data capture)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from sageport.api.v1alpha1 import EndpointConfig, EndpointStatus
from sageport.contract import CaptureStatus
from sageport.operator.capture import capture_summary, with_data_capture
from tests.support.capture import EXAMPLE_CAPTURE_SUMMARY
from tests.support.manifests import EXAMPLES, load_documents

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def _config(**capture: Any) -> dict[str, Any]:
    (doc,) = [d for d in load_documents(EXAMPLES / "data-capture") if d["kind"] == "EndpointConfig"]
    doc = copy.deepcopy(doc)
    if capture:
        doc["spec"]["dataCaptureConfig"].update(capture)
    return doc


def _status(**fields: Any) -> EndpointStatus:
    values = {
        "endpoint_status": "InService",
        "endpoint_config_name": "iris-capture-config",
        "last_modified_time": T0,
    }
    return EndpointStatus.model_validate({**values, **fields})


def test_summary_is_describe_endpoints_shape_plus_the_gateways_fields() -> None:
    spec = EndpointConfig.model_validate(_config()).spec
    summary = capture_summary(spec)
    assert summary is not None
    assert summary.to_wire() == EXAMPLE_CAPTURE_SUMMARY


def test_enable_capture_defaults_to_true_and_false_is_stopped() -> None:
    doc = _config()
    del doc["spec"]["dataCaptureConfig"]["enableCapture"]
    summary = capture_summary(EndpointConfig.model_validate(doc).spec)
    assert summary is not None
    assert summary.capture_status is CaptureStatus.STARTED
    stopped = capture_summary(EndpointConfig.model_validate(_config(enableCapture=False, kmsKeyID="k1")).spec)
    assert stopped is not None
    assert (stopped.enable_capture, stopped.capture_status, stopped.kms_key_id) == (False, "Stopped", "k1")


def test_no_capture_configured_is_no_summary() -> None:
    doc = _config()
    del doc["spec"]["dataCaptureConfig"]
    assert capture_summary(EndpointConfig.model_validate(doc).spec) is None


def test_status_gets_the_serving_configs_summary() -> None:
    status = with_data_capture(_status(), None, [_config()])
    assert status.data_capture_config is not None
    assert status.data_capture_config.destination_s3_uri == "s3://sageport-models/capture"


def test_nothing_but_the_time_changed_returns_previous_so_nothing_is_written() -> None:
    previous = with_data_capture(_status(), None, [_config()])
    fresh = _status(last_modified_time=T1)
    assert with_data_capture(fresh, previous, [_config()]) is previous


def test_an_unreadable_serving_config_keeps_the_summary() -> None:
    previous = with_data_capture(_status(), None, [_config()])
    fresh = _status(failure_reason="gone")
    for configs in ([], [_config(), _config()], [{"kind": "EndpointConfig", "metadata": {"name": "x"}}]):
        kept = with_data_capture(fresh, previous, configs)
        assert kept.data_capture_config == previous.data_capture_config


def test_a_config_without_capture_clears_it() -> None:
    previous = with_data_capture(_status(), None, [_config()])
    doc = _config()
    del doc["spec"]["dataCaptureConfig"]
    new = with_data_capture(previous, previous, [doc])
    assert new.data_capture_config is None
    assert new is not previous


def test_during_an_update_the_summary_follows_the_serving_config() -> None:
    """The status of an update keeps endpointConfigName on the serving config: its capture goes
    on (the caller looks up the config the status names, not the one the spec names)."""
    serving = with_data_capture(_status(), None, [_config()])
    updating = serving.model_copy(update={"endpoint_status": "Updating"})
    assert (
        with_data_capture(updating, serving, [_config()]).data_capture_config == serving.data_capture_config
    )


def test_status_gets_the_serving_configs_async_inference_config() -> None:
    (config,) = [d for d in load_documents(EXAMPLES / "async-inference") if d["kind"] == "EndpointConfig"]
    status = with_data_capture(_status(endpoint_config_name="iris-async-config"), None, [config])
    assert status.async_inference_config is not None
    assert status.to_wire()["asyncInferenceConfig"] == config["spec"]["asyncInferenceConfig"]
    assert status.data_capture_config is None
