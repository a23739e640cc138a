"""Property: any well-formed CreateEndpointConfig request that botocore accepts is either applied
and described back equal, or refused with a ValidationException naming a member of the request;
never a 500, never anything half-made. Against the real API server (strict field validation and
the CRD schema decide as much as our own checks do), through boto3 and the gateway.

Requests are generated from botocore's own service model (every member of the input shape, its
lists, maps, enums, lengths and ranges), with strings drawn both from each member's pattern and
freely, so both outcomes are exercised.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sageport.controlapi import shapes
from sageport.controlapi.names import ack_name

TABLE = shapes.load()
_names = itertools.count()
_MAX_DEPTH = 4


def _pattern(pattern: str) -> st.SearchStrategy[str] | None:
    try:
        re.compile(pattern)
    except re.error:
        return None  # Java-only syntax (\p{...}): free text only
    return st.from_regex(pattern, fullmatch=True)


def _from_shape(name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    shape = TABLE[name]
    kind = shape["type"]
    if kind == "structure":
        members = shape.get("members", {})
        required = {
            m: _member(m, ref["shape"], depth) for m, ref in members.items() if m in shape.get("required", ())
        }
        optional = {} if depth >= _MAX_DEPTH else {
            m: _member(m, ref["shape"], depth) for m, ref in members.items() if m not in required
        }  # fmt: skip
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        low = shape.get("min", 0)
        return st.lists(_from_shape(shape["member"]["shape"], depth + 1), min_size=low, max_size=max(low, 3))
    if kind == "map":
        return st.dictionaries(_from_shape(shape["key"]["shape"], depth + 1), _from_shape(shape["value"]["shape"], depth + 1), max_size=3)  # fmt: skip
    if kind == "string":
        if "enum" in shape:
            return st.sampled_from(shape["enum"])
        low, high = shape.get("min", 0), min(shape.get("max", 64), 64)
        free = st.text(min_size=low, max_size=max(low, high))
        matching = _pattern(shape["pattern"]) if "pattern" in shape else None
        if matching is None:
            return free
        return st.one_of(matching.filter(lambda s: low <= len(s) <= shape.get("max", 1 << 20)), free)
    if kind in ("integer", "long"):
        low = shape.get("min", -(2**31))
        return st.integers(min_value=low, max_value=max(low, shape.get("max", 2**31 - 1)) + 2)
    if kind in ("float", "double"):
        return st.floats(min_value=shape.get("min"), allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    raise AssertionError(f"{name}: {kind} not generated")


def _member(member: str, shape: str, depth: int) -> st.SearchStrategy[Any]:
    if member == "ModelName":
        return st.just("m")  # the one model that exists: a missing one is another error
    return _from_shape(shape, depth + 1)


def _request() -> st.SearchStrategy[dict[str, Any]]:
    shape = TABLE.operations["CreateEndpointConfig"].input or ""
    return _from_shape(shape).map(lambda r: {**r, "EndpointConfigName": f"prop-{next(_names)}"})


def _member_names(value: Any) -> set[str]:
    """Every member name in a request, as botocore, ACK and SageMaker's messages spell it."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= {key, ack_name(key), key[:1].lower() + key[1:]}
            found |= _member_names(item)
    elif isinstance(value, list):
        for item in value:
            found |= _member_names(item)
    return found


@pytest.fixture
def model(sagemaker: Any) -> Any:
    sagemaker.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": "s3://b/m.tar.gz"})
    return sagemaker


@pytest.mark.fake_operator  # nothing to reconcile: configs only; the operator stays out of it
@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
@given(request=_request())
def test_create_endpoint_config_is_applied_whole_or_refused_naming_a_member(
    model: Any, request: dict[str, Any]
) -> None:
    sagemaker = model
    name = request["EndpointConfigName"]
    try:
        sagemaker.create_endpoint_config(**request)
    except sagemaker.exceptions.ClientError as error:
        code, message = error.response["Error"]["Code"], error.response["Error"]["Message"]
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status < 500, (status, message)
        assert code == "ValidationException", (code, message)
        named = [
            member
            for member in _member_names(request)
            if member in message and member != "EndpointConfigName"
        ]
        assert named, f"names no member of the request: {message}"
        event(
            "refused by Kubernetes"
            if "sageport does not support" in message or "is invalid" in message
            else "refused by botocore's constraints"
        )
        with pytest.raises(sagemaker.exceptions.ClientError):  # nothing half-made
            sagemaker.describe_endpoint_config(EndpointConfigName=name)
        return
    event("applied")
    described = sagemaker.describe_endpoint_config(EndpointConfigName=name)
    output = TABLE[TABLE.operations["DescribeEndpointConfig"].output or ""]["members"]
    for member, value in request.items():
        if member in output:
            assert described.get(member) == value, (member, described.get(member), value)
