"""Deterministic, length-safe names and the labels and metadata every child of an Endpoint carries."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from sageport.contract import (
    LABEL_CONFIG,
    LABEL_ENDPOINT,
    LABEL_ENDPOINT_OBJECT,
    LABEL_ROLE,
    LABEL_VARIANT,
    MANAGED_BY,
    ROLE_INSTANCE,
    config_label,
)

if TYPE_CHECKING:
    from .shape import VariantShape

MAX_NAME = 63  # Services are DNS-1035 labels
_HASH_LEN = 8
_TAG_LEN = 5
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


def dns_label(text: str) -> str:
    """Lower-case, with runs of anything but [a-z0-9] folded to one dash, trimmed."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def child_name(endpoint: str, variant: str, config: str | None = None) -> str:
    """``<endpoint>-<variant>[-<config digest>]`` as a DNS-1035 label; a hash keeps long or
    case-folded names unique. With ``config``, each EndpointConfig's fleet of a variant has its
    own name, so an update's new fleet starts beside the one serving (blue/green)."""
    base = dns_label(f"{endpoint}-{variant}")
    if not base or not base[0].isalpha():
        base = f"sp-{base}".rstrip("-")
    tag = "" if config is None else "-" + hashlib.sha256(config.encode()).hexdigest()[:_TAG_LEN]
    exact = base == f"{endpoint}-{variant}"
    if exact and len(base) + len(tag) <= MAX_NAME:
        return base + tag
    digest = hashlib.sha256(f"{endpoint}\0{variant}".encode()).hexdigest()[:_HASH_LEN]
    return f"{base[: MAX_NAME - _HASH_LEN - 1 - len(tag)].rstrip('-')}-{digest}{tag}"


def selector_labels(endpoint_object: str, config: str, variant: str) -> dict[str, str]:
    """Labels that select the pods of one config's fleet of a variant; never change once a
    Deployment exists."""
    return {
        LABEL_ENDPOINT_OBJECT: endpoint_object,
        LABEL_CONFIG: config_label(config),
        LABEL_VARIANT: variant,
    }


def common_labels(endpoint_object: str, endpoint_name: str, config: str, variant: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sageport-variant",
        "app.kubernetes.io/instance": endpoint_object,
        "app.kubernetes.io/component": "inference",
        MANAGED_BY_LABEL: MANAGED_BY,
        "app.kubernetes.io/part-of": "sageport",
        LABEL_ENDPOINT: endpoint_name,
        **selector_labels(endpoint_object, config, variant),
    }


def _role(shape: VariantShape) -> dict[str, str]:
    """A Serial pipeline's anchors carry the instance role: its stage pods share the variant's
    other labels, and the Deployment, Service and PDB must select the anchors alone."""
    return {LABEL_ROLE: ROLE_INSTANCE} if shape.stages else {}


def variant_selector(shape: VariantShape) -> dict[str, str]:
    return selector_labels(shape.endpoint_object, shape.config_name, shape.variant_name) | _role(shape)


def variant_labels(shape: VariantShape) -> dict[str, str]:
    labels = common_labels(shape.endpoint_object, shape.endpoint_name, shape.config_name, shape.variant_name)
    return labels | _role(shape)


def stage_labels(shape: VariantShape) -> dict[str, str]:
    """The labels of a Serial pipeline's stage pods: the variant's, without the instance role."""
    return common_labels(shape.endpoint_object, shape.endpoint_name, shape.config_name, shape.variant_name)


def variant_metadata(shape: VariantShape, name: str | None = None) -> dict[str, Any]:
    """Name, namespace, labels and the controller ownerReference of a child of the variant."""
    return {
        "name": name or shape.name,
        "namespace": shape.namespace,
        "labels": variant_labels(shape),
        "ownerReferences": [shape.owner.to_k8s()],
    }
