"""What the reconciler reads from the operator's indexes, as plain callables (tests pass lambdas)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sageport.operator.status import VariantObservation

Body = Mapping[str, Any]
Key = tuple[str, str]  # (namespace, metadata.name)


@dataclass(frozen=True)
class ChildRef:
    """A child object the operator created earlier for an Endpoint."""

    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Lookups:
    """Read-only views over the operator's indexes, by namespace and SageMaker name."""

    configs: Callable[[str, str], Sequence[Body]]
    models: Callable[[str, str], Sequence[Body]]
    instance_types: Callable[[str], Body | None]
    observations: Callable[[str, str], Mapping[str, VariantObservation]]
    children: Callable[[str, str], Sequence[ChildRef]]


def key_of(body: Body) -> Key:
    return (body["metadata"].get("namespace") or "default", body["metadata"]["name"])
