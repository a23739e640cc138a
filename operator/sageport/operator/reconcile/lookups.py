"""What the reconciler reads from the operator's indexes, as plain callables (tests pass lambdas)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sageport.contract import config_label
from sageport.operator.status import VariantObservation

Body = Mapping[str, Any]
Key = tuple[str, str]  # (namespace, metadata.name)
Fleet = tuple[str, str]  # (config_label of the EndpointConfig, variant name): one Deployment


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
    observations: Callable[[str, str], Mapping[Fleet, VariantObservation]]
    children: Callable[[str, str], Sequence[ChildRef]]
    # A namespace's Pod Security enforce label (None: unlabelled or not known).
    pod_security: Callable[[str], str | None] = lambda _namespace: None


# The alarms of an update: which of the named alarms fire, and since when (operator/alarms.py:
# raises its AlarmSourceError when it cannot tell).
AlarmSource = Callable[[Sequence[str]], Awaitable[Mapping[str, datetime]]]


def key_of(body: Body) -> Key:
    return (body["metadata"].get("namespace") or "default", body["metadata"]["name"])


def fleet_observations(lookups: Lookups, key: Key, config_name: str | None) -> dict[str, VariantObservation]:
    """The observations of one EndpointConfig's fleet, by variant name."""
    if config_name is None:
        return {}
    label = config_label(config_name)
    return {
        variant: seen for (config, variant), seen in lookups.observations(*key).items() if config == label
    }
