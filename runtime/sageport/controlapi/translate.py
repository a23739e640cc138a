"""Pure translation between botocore's shapes and the sageport.io objects (as JSON dicts).

Both directions are driven by botocore's service model (:mod:`shapes`), so a member's name,
type and limits are never guessed: a request is validated against its input shape and renamed
member by member to ACK's field names (:func:`names.ack_name`); a response is built from the
output shape, each member looked up under its ACK name in the object. What the CRDs cannot hold
is refused by the API server (strict field validation) and named back in botocore's terms by
:func:`member_path`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sageport.contract import ANNOTATION_STOP_REQUESTED, API_VERSION, EndpointStatus, TransformJobStatus
from sageport.controlapi import errors
from sageport.controlapi.names import (
    ENDPOINT,
    ENDPOINT_CONFIG,
    MODEL,
    TRANSFORM_JOB,
    Account,
    Kind,
    ack_name,
    object_name,
)
from sageport.controlapi.shapes import Shape, ShapeTable
from sageport.net.awserrors import ApiError

_NUMBER = (int, float)


# ---- requests -> spec ------------------------------------------------------------------------
class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        shown = value if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        text = f"Value '{shown}' at '{path}'" if shown is not None else f"Value at '{path}'"
        self.items.append(f"{text} failed to satisfy constraint: {constraint}")

    def raise_if_any(self) -> None:
        if self.items:
            count = len(self.items)
            noun = "error" if count == 1 else "errors"
            raise errors.validation(f"{count} validation {noun} detected: " + "; ".join(self.items))


def _lower_first(member: str) -> str:
    return member[:1].lower() + member[1:]


def _check_scalar(shape: Shape, value: Any, path: str, problems: _Problems) -> bool:
    kind = shape["type"]
    if kind == "string":
        if not isinstance(value, str):
            problems.add(value, path, "Member must be a string")
            return False
        if "min" in shape and len(value) < shape["min"]:
            problems.add(value, path, f"Member must have length greater than or equal to {shape['min']}")
        if "max" in shape and len(value) > shape["max"]:
            problems.add(value, path, f"Member must have length less than or equal to {shape['max']}")
        pattern = shape.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            problems.add(value, path, f"Member must satisfy regular expression pattern: {pattern}")
        return True
    if kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.add(value, path, "Member must be an integer")
            return False
    elif kind in ("float", "double"):
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            problems.add(value, path, "Member must be a number")
            return False
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.add(value, path, "Member must be a boolean")
        return isinstance(value, bool)
    elif kind == "timestamp":
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            problems.add(value, path, "Member must be a timestamp")
            return False
        return True
    else:
        problems.add(value, path, f"Member of type {kind} is not supported")
        return False
    if "min" in shape and value < shape["min"]:
        problems.add(value, path, f"Member must have value greater than or equal to {shape['min']}")
    if "max" in shape and value > shape["max"]:
        problems.add(value, path, f"Member must have value less than or equal to {shape['max']}")
    return True


_PATTERNS: dict[str, re.Pattern[str] | None] = {}


def _compiled(pattern: str) -> re.Pattern[str] | None:
    """The pattern, or None for the few in Java syntax Python cannot read (``\\p{...}``): those
    are left to the API server's schema and the operator."""
    if pattern not in _PATTERNS:
        try:
            _PATTERNS[pattern] = re.compile(pattern)
        except re.error:
            _PATTERNS[pattern] = None
    return _PATTERNS[pattern]


def _to_ack(table: ShapeTable, shape_name: str, value: Any, path: str, problems: _Problems) -> Any:
    shape = table[shape_name]
    kind = shape["type"]
    if kind == "structure":
        if not isinstance(value, Mapping):
            problems.add(None, path, "Member must be a structure")
            return None
        members: Mapping[str, Any] = shape.get("members", {})
        for required in shape.get("required", ()):
            if value.get(required) is None:
                where = f"{path}.{_lower_first(required)}" if path else _lower_first(required)
                problems.add(None, where, "Member must not be null")
        result: dict[str, Any] = {}
        for member, item in value.items():
            where = f"{path}.{_lower_first(member)}" if path else _lower_first(member)
            if member not in members:
                problems.items.append(f"Member '{where}' is not a member of {shape_name}")
                continue
            if item is None:
                continue
            converted = _to_ack(table, members[member]["shape"], item, where, problems)
            if converted is not None:
                result[ack_name(member)] = converted
        return result
    if kind == "list":
        if not isinstance(value, list):
            problems.add(None, path, "Member must be a list")
            return None
        if "min" in shape and len(value) < shape["min"]:
            problems.add(None, path, f"Member must have length greater than or equal to {shape['min']}")
        if "max" in shape and len(value) > shape["max"]:
            problems.add(None, path, f"Member must have length less than or equal to {shape['max']}")
        member_shape = shape["member"]["shape"]
        return [
            _to_ack(table, member_shape, item, f"{path}.{index}.member", problems)
            for index, item in enumerate(value, start=1)
        ]
    if kind == "map":
        if not isinstance(value, Mapping):
            problems.add(None, path, "Member must be a map")
            return None
        if "max" in shape and len(value) > shape["max"]:
            problems.add(None, path, f"Member must have length less than or equal to {shape['max']}")
        key_shape, value_shape = table[shape["key"]["shape"]], shape["value"]["shape"]
        result = {}
        for key, item in value.items():
            _check_scalar(key_shape, key, f"{path}.key", problems)
            result[key] = _to_ack(table, value_shape, item, f"{path}.{key}", problems)
        return result
    return value if _check_scalar(shape, value, path, problems) else None


def to_spec(
    table: ShapeTable, input_shape: str, request: Mapping[str, Any], leave_out: Iterable[str] = ()
) -> dict[str, Any]:
    """The spec (ACK field names) of a request, validated against its input shape; raises a
    ValidationException listing every problem (SageMaker's "N validation errors detected")."""
    problems = _Problems()
    skipped = set(leave_out)
    spec = _to_ack(table, input_shape, {k: v for k, v in request.items() if k not in skipped}, "", problems)
    problems.raise_if_any()
    return spec if isinstance(spec, dict) else {}


def validate(table: ShapeTable, input_shape: str, request: Mapping[str, Any]) -> None:
    """Validate a request that is not turned into a spec (Describe, List, Delete)."""
    to_spec(table, input_shape, request)


# ---- objects -> responses --------------------------------------------------------------------
def epoch(value: Any) -> float | None:
    """An RFC 3339 time (what Kubernetes writes) as epoch seconds, the form botocore parses."""
    if isinstance(value, _NUMBER) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _from_ack(table: ShapeTable, shape_name: str, value: Any) -> Any:
    shape = table[shape_name]
    kind = shape["type"]
    if kind == "structure":
        if not isinstance(value, Mapping):
            return None
        result = {}
        for member, ref in shape.get("members", {}).items():
            item = value.get(ack_name(member))
            if item is None:
                continue
            converted = _from_ack(table, ref["shape"], item)
            if converted is not None:
                result[member] = converted
        return result
    if kind == "list":
        if not isinstance(value, list):
            return None
        items = [_from_ack(table, shape["member"]["shape"], item) for item in value]
        return [item for item in items if item is not None]
    if kind == "map":
        if not isinstance(value, Mapping):
            return None
        return {key: _from_ack(table, shape["value"]["shape"], item) for key, item in value.items()}
    if kind == "timestamp":
        return epoch(value)
    if kind in ("integer", "long"):
        return int(value) if isinstance(value, _NUMBER) and not isinstance(value, bool) else None
    if kind in ("float", "double"):
        return float(value) if isinstance(value, _NUMBER) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    return value if isinstance(value, str) else None


def from_ack(table: ShapeTable, shape_name: str, source: Mapping[str, Any]) -> dict[str, Any]:
    """The members of ``shape_name`` found (under their ACK names) in ``source``."""
    result = _from_ack(table, shape_name, source)
    return result if isinstance(result, dict) else {}


# ---- the objects -----------------------------------------------------------------------------
def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def sagemaker_name(kind: Kind, obj: Mapping[str, Any]) -> str:
    """The name SageMaker clients use: the spec's name field, else ``metadata.name`` (kubectl)."""
    name = _mapping(obj.get("spec")).get(kind.name_field)
    return name if isinstance(name, str) and name else str(_mapping(obj.get("metadata")).get("name", ""))


def creation_time(obj: Mapping[str, Any]) -> float:
    return epoch(_mapping(obj.get("metadata")).get("creationTimestamp")) or 0.0


def new_object(kind: Kind, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind.kind,
        "metadata": {"name": object_name(name), "namespace": namespace},
        "spec": dict(spec),
    }


def describe_model(table: ShapeTable, obj: Mapping[str, Any], account: Account) -> dict[str, Any]:
    name = sagemaker_name(MODEL, obj)
    response = from_ack(table, "DescribeModelOutput", _mapping(obj.get("spec")))
    response.update(ModelName=name, ModelArn=account.arn(MODEL, name), CreationTime=creation_time(obj))
    return response


def describe_endpoint_config(table: ShapeTable, obj: Mapping[str, Any], account: Account) -> dict[str, Any]:
    name = sagemaker_name(ENDPOINT_CONFIG, obj)
    response = from_ack(table, "DescribeEndpointConfigOutput", _mapping(obj.get("spec")))
    response.update(
        EndpointConfigName=name,
        EndpointConfigArn=account.arn(ENDPOINT_CONFIG, name),
        CreationTime=creation_time(obj),
    )
    response.setdefault("ProductionVariants", [])
    return response


def endpoint_status(obj: Mapping[str, Any]) -> str:
    """The status SageMaker would answer. An InService Endpoint whose spec asks for a config or
    for weights and counts the operator has not acted on yet is ``Updating``: SageMaker says so
    the moment UpdateEndpoint or UpdateEndpointWeightsAndCapacities returns, so a waiter started
    right after never sees the old InService (a tags-only change does not count)."""
    metadata = _mapping(obj.get("metadata"))
    if metadata.get("deletionTimestamp"):
        return EndpointStatus.DELETING
    status = _mapping(obj.get("status"))
    value = status.get("endpointStatus")
    if not isinstance(value, str) or not value:
        return EndpointStatus.CREATING
    if value == EndpointStatus.IN_SERVICE and _change_pending(_mapping(obj.get("spec")), status, metadata):
        return EndpointStatus.UPDATING
    return value


def _change_pending(spec: Mapping[str, Any], status: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    if not isinstance(generation, int) or not isinstance(observed, int) or generation <= observed:
        return False
    if spec.get("endpointConfigName") != status.get("endpointConfigName"):
        return True
    variants = {
        v.get("variantName"): v for v in status.get("productionVariants") or () if isinstance(v, Mapping)
    }
    for desired in spec.get("desiredWeightsAndCapacities") or ():
        current = _mapping(variants.get(_mapping(desired).get("variantName")))
        for field, status_field in (
            ("desiredWeight", "desiredWeight"),
            ("desiredInstanceCount", "desiredInstanceCount"),
        ):
            wanted = _mapping(desired).get(field)
            if wanted is not None and current.get(status_field) != wanted:
                return True
    return False


def describe_endpoint(table: ShapeTable, obj: Mapping[str, Any], account: Account) -> dict[str, Any]:
    """DescribeEndpoint from the Endpoint's status (SageMaker's face of it) and spec."""
    spec, status = _mapping(obj.get("spec")), _mapping(obj.get("status"))
    source = {**status, "lastDeploymentConfig": spec.get("deploymentConfig")}
    response = from_ack(table, "DescribeEndpointOutput", source)
    name = sagemaker_name(ENDPOINT, obj)
    created = epoch(status.get("creationTime")) or creation_time(obj)
    config = status.get("endpointConfigName") or spec.get("endpointConfigName")
    response.update(
        EndpointName=name,
        EndpointArn=account.arn(ENDPOINT, name),
        EndpointStatus=endpoint_status(obj),
        CreationTime=created,
        LastModifiedTime=epoch(status.get("lastModifiedTime")) or created,
    )
    if isinstance(config, str):
        response["EndpointConfigName"] = config
    if not response.get("ProductionVariants"):
        response.pop("ProductionVariants", None)  # min 1 in the shape: absent until there are some
    return response


def transform_job_status(obj: Mapping[str, Any]) -> str:
    """The operator's status; InProgress until it writes one (SageMaker's first status), and
    Stopping once a stop was asked of a job still in progress."""
    status = _mapping(obj.get("status")).get("transformJobStatus")
    value = status if isinstance(status, str) and status else TransformJobStatus.IN_PROGRESS
    stop_asked = ANNOTATION_STOP_REQUESTED in _mapping(_mapping(obj.get("metadata")).get("annotations"))
    if value == TransformJobStatus.IN_PROGRESS and stop_asked:
        return TransformJobStatus.STOPPING
    return value


def describe_transform_job(
    table: ShapeTable, obj: Mapping[str, Any], account: Account, shape: str
) -> dict[str, Any]:
    """DescribeTransformJob: the spec (what was asked) and the status the operator writes."""
    spec, status = _mapping(obj.get("spec")), _mapping(obj.get("status"))
    response = from_ack(table, shape, {**spec, **{k: v for k, v in status.items() if k != "conditions"}})
    name = sagemaker_name(TRANSFORM_JOB, obj)
    created = creation_time(obj)
    response.update(
        TransformJobName=name,
        TransformJobArn=account.arn(TRANSFORM_JOB, name),
        TransformJobStatus=transform_job_status(obj),
        CreationTime=created,
    )
    # For ListTransformJobs' LastModifiedTime: the latest moment the job changed state.
    response["LastModifiedTime"] = max(
        t
        for t in (created, response.get("TransformStartTime"), response.get("TransformEndTime"))
        if t is not None
    )
    return response


def summary(table: ShapeTable, shape_name: str, described: Mapping[str, Any]) -> dict[str, Any]:
    """A list entry: the members of the summary shape taken from the Describe response."""
    return {member: described[member] for member in table[shape_name]["members"] if member in described}


# ---- listing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListQuery:
    sort_by: str
    descending: bool
    max_results: int
    after: tuple[Any, ...] | None
    name_contains: str | None
    filters: tuple[tuple[str, str, float], ...]  # (member, "before"|"after", epoch seconds)
    status_equals: str | None


_DEFAULT_MAX_RESULTS = 10


def parse_list_query(request: Mapping[str, Any]) -> ListQuery:
    token = request.get("NextToken")
    after = None
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
            after = tuple(decoded["after"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise errors.validation(f"Invalid pagination token: {token}") from None
    filters = []
    for member in ("CreationTime", "LastModifiedTime"):
        for side in ("Before", "After"):
            value = request.get(f"{member}{side}")
            if isinstance(value, _NUMBER) and not isinstance(value, bool):
                filters.append((member, side.lower(), float(value)))
    contains = request.get("NameContains")
    return ListQuery(
        sort_by=str(request.get("SortBy") or "CreationTime"),
        descending=str(request.get("SortOrder") or "Descending") == "Descending",
        max_results=int(request.get("MaxResults") or _DEFAULT_MAX_RESULTS),
        after=after,
        name_contains=contains.lower() if isinstance(contains, str) and contains else None,
        filters=tuple(filters),
        status_equals=request.get("StatusEquals") or None,
    )


def page(
    entries: Sequence[Mapping[str, Any]],
    query: ListQuery,
    name_member: str,
    status_member: str = "EndpointStatus",
) -> tuple[list[Mapping[str, Any]], str | None]:
    """One page of list entries (already filtered by kind and namespace), and the next token.

    The token holds the sort key of the page's last entry, so entries created or deleted between
    calls neither repeat nor shift the pages (a deleted entry is simply not there).
    """
    sort_member = {"Name": name_member, "Status": status_member}.get(query.sort_by, "CreationTime")

    def key(entry: Mapping[str, Any]) -> tuple[Any, ...]:
        return (entry.get(sort_member), entry.get(name_member))

    def wanted(entry: Mapping[str, Any]) -> bool:
        if query.name_contains and query.name_contains not in str(entry.get(name_member, "")).lower():
            return False
        if query.status_equals and entry.get(status_member) != query.status_equals:
            return False
        for member, side, bound in query.filters:
            value = entry.get(member)
            if not isinstance(value, _NUMBER):
                return False
            if (side == "before" and not value < bound) or (side == "after" and not value > bound):
                return False
        return True

    ordered = sorted((entry for entry in entries if wanted(entry)), key=key, reverse=query.descending)
    if query.after is not None:
        after = query.after
        beyond: Callable[[tuple[Any, ...]], bool] = (
            (lambda k: k < after) if query.descending else (lambda k: k > after)
        )
        ordered = [entry for entry in ordered if beyond(key(entry))]
    selected = ordered[: query.max_results]
    token = None
    if len(ordered) > query.max_results and selected:
        token = base64.urlsafe_b64encode(json.dumps({"after": list(key(selected[-1]))}).encode()).decode()
    return selected, token


# ---- Kubernetes answers -> SageMaker errors --------------------------------------------------
_UNKNOWN_FIELD = re.compile(r'unknown field "([^"]+)"')
_SEGMENT = re.compile(r"([^.\[\]]+)(\[\d+\])?")


def member_path(table: ShapeTable, input_shape: str, ack_path: str) -> str:
    """``spec.productionVariants[0].inferenceAMIVersion`` -> ``ProductionVariants[0].InferenceAmiVersion``:
    a CRD field path named back in botocore's members (as far as the shapes go)."""
    parts = ack_path.removeprefix("spec.").split(".")
    shape_name: str | None = input_shape
    named = []
    for part in parts:
        match = _SEGMENT.fullmatch(part)
        field, index = (match.group(1), match.group(2) or "") if match else (part, "")
        member = None
        shape = table.get(shape_name) if shape_name else None
        if shape is not None and shape.get("type") == "structure":
            member = next((m for m in shape.get("members", {}) if ack_name(m) == field), None)
        if member is None or shape is None:
            named.append(field + index)
            shape_name = None
            continue
        named.append(member + index)
        shape_name = shape["members"][member]["shape"]
        target = table.get(shape_name)
        if index and target is not None and target.get("type") == "list":
            shape_name = target["member"]["shape"]
    return ".".join(named)


def kube_error(
    table: ShapeTable,
    input_shape: str | None,
    status: int,
    message: str,
    operation: str,
    resource: str,
    user: str | None = None,
) -> ApiError:
    """The SageMaker error for a Kubernetes API refusal of a write made as ``user``."""
    if status == 403 and "exceeded quota" in message:
        # A ResourceQuota (count/endpoints.sageport.io...) is the namespace's service quota.
        return errors.resource_limit_exceeded(
            f"The namespace's resource quota does not allow {operation} on {resource}: {message}. "
            "Ask the namespace's administrator to raise the quota."
        )
    if status == 403:
        if "cannot impersonate" in message:
            reason = f"the gateway may not act as this identity ({message})"
        else:
            reason = f"Kubernetes RBAC refused it: {message}"
        return errors.access_denied(user, operation, resource, reason)
    unknown = _UNKNOWN_FIELD.findall(message)
    if status == 400 and unknown and input_shape is not None:
        members = ", ".join(member_path(table, input_shape, path) for path in unknown)
        return errors.validation(f"sageport does not support these request members: {members}.")
    if status in (400, 422):
        return errors.validation(message)
    return ApiError("InternalFailure", 500, f"The Kubernetes API answered {status}; retry the request.")
