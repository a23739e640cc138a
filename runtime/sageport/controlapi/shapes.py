"""botocore's service model of ``sagemaker``: the wire truth for member names, types and limits.

Read from the installed botocore (a runtime dependency through boto3), never copied: the
operations served here and the shapes they reach are kept, the rest of the (large) model is
dropped after loading.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Shape = Mapping[str, Any]

OPERATIONS = (
    "CreateModel",
    "DescribeModel",
    "ListModels",
    "DeleteModel",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "ListEndpointConfigs",
    "DeleteEndpointConfig",
    "CreateEndpoint",
    "DescribeEndpoint",
    "ListEndpoints",
    "UpdateEndpoint",
    "UpdateEndpointWeightsAndCapacities",
    "DeleteEndpoint",
    "CreateTransformJob",
    "DescribeTransformJob",
    "ListTransformJobs",
    "StopTransformJob",
    "AddTags",
    "ListTags",
    "DeleteTags",
)


@dataclass(frozen=True)
class Operation:
    name: str
    input: str | None
    output: str | None


class ShapeTable:
    """The shapes reachable from ``operations`` (kept without their documentation)."""

    def __init__(self, model: Mapping[str, Any], operations: Iterable[str] = OPERATIONS) -> None:
        shapes: Mapping[str, Any] = model["shapes"]
        self.metadata: Mapping[str, Any] = dict(model.get("metadata", {}))
        self.operations: dict[str, Operation] = {}
        pending: list[str] = []
        for name in operations:
            spec = model["operations"][name]
            input_shape = spec.get("input", {}).get("shape")
            output_shape = spec.get("output", {}).get("shape")
            self.operations[name] = Operation(name, input_shape, output_shape)
            pending += [shape for shape in (input_shape, output_shape) if shape]
        self._shapes: dict[str, dict[str, Any]] = {}
        while pending:
            name = pending.pop()
            if name in self._shapes:
                continue
            shape = {key: value for key, value in shapes[name].items() if key != "documentation"}
            if "members" in shape:
                shape["members"] = {
                    member: {"shape": ref["shape"]} for member, ref in shape["members"].items()
                }
                pending += [ref["shape"] for ref in shape["members"].values()]
            for key in ("member", "key", "value"):
                if key in shape:
                    shape[key] = {"shape": shape[key]["shape"]}
                    pending.append(shape[key]["shape"])
            self._shapes[name] = shape

    def __getitem__(self, name: str) -> Shape:
        return self._shapes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._shapes

    def get(self, name: str) -> Shape | None:
        return self._shapes.get(name)


def load() -> ShapeTable:
    """The table from the installed botocore's ``sagemaker`` model."""
    from botocore.loaders import Loader  # type: ignore[import-untyped]

    return ShapeTable(Loader().load_service_model("sagemaker", "service-2"))
