from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sageport.gateway.invocation import Operation, parse_invocation
from sageport.net.awserrors import ApiError


def lower(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers as the HTTP layer hands them over: lower-cased names."""
    return {name.lower(): value for name, value in (headers or {}).items()}


def test_paths_and_prefixes() -> None:
    parsed = parse_invocation("/endpoints/my-ep/invocations", lower())
    assert (parsed.endpoint_name, parsed.operation) == ("my-ep", Operation.INVOKE)
    parsed = parse_invocation("/some/prefix/endpoints/ep2/invocations-response-stream", lower())
    assert parsed.operation is Operation.INVOKE_STREAM
    assert parse_invocation("/endpoints/a/async-invocations", lower()).operation is Operation.INVOKE_ASYNC


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/endpoints/bad_name/invocations", "ValidationError"),
        ("/endpoints/a%2Fb/invocations", "ValidationError"),
        ("/endpoints/%ff/invocations", "ValidationError"),
        ("/endpoints//invocations", "ValidationError"),
        ("/endpoints/ep/other", "UnknownOperationException"),
        ("/", "UnknownOperationException"),
    ],
)
def test_bad_paths(path: str, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_invocation(path, lower())
    assert caught.value.code == code


def test_stream_renames_accept_and_drops_realtime_only_headers() -> None:
    headers = lower(
        {
            "Accept": "ignored/in-stream",
            "X-Amzn-SageMaker-Accept": "text/event-stream",
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-Target-Model": "m.tar.gz",
            "Authorization": "secret",
        }
    )
    parsed = parse_invocation("/endpoints/ep/invocations-response-stream", headers)
    assert parsed.forward_headers == {"Accept": "text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Amzn-SageMaker-Custom-Attributes", "x" * 1025),
        ("X-Amzn-SageMaker-Target-Variant", "bad_variant"),
        ("X-Amzn-SageMaker-Inference-Id", "i" * 65),
        ("X-Amzn-SageMaker-Target-Model", ""),
        ("X-Amzn-SageMaker-Custom-Attributes", "caf\u00e9"),
        ("X-Amzn-SageMaker-Session-Id", "not valid!"),
    ],
)
def test_header_limits(header: str, value: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_invocation("/endpoints/ep/invocations", lower({header: value}))
    assert caught.value.code == "ValidationError"


@given(path=st.text(), headers=st.dictionaries(st.sampled_from([
    "Content-Type", "Accept", "X-Amzn-SageMaker-Target-Variant", "X-Amzn-SageMaker-Custom-Attributes",
    "X-Amzn-SageMaker-Session-Id", "X-Amzn-SageMaker-Inference-Id", "X-Amzn-SageMaker-Target-Model",
]), st.text()))  # fmt: skip
def test_parse_never_fails_unexpectedly(path: str, headers: dict[str, str]) -> None:
    outcome: ApiError | str
    try:
        outcome = parse_invocation(path, lower(headers)).endpoint_name
    except ApiError as error:
        outcome = error
    if isinstance(outcome, ApiError):
        assert 400 <= outcome.status < 500
    else:
        assert outcome
