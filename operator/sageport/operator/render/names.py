"""Deterministic, length-safe names and labels for the children of an Endpoint."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63  # Services are DNS-1035 labels
_HASH_LEN = 8

LABEL_ENDPOINT = "sageport.io/endpoint"
LABEL_VARIANT = "sageport.io/variant"
LABEL_ENDPOINT_OBJECT = "sageport.io/endpoint-object"
MANAGED_BY = "sageport-operator"


def dns_label(text: str) -> str:
    """Lower-case, with runs of anything but [a-z0-9] folded to one dash, trimmed."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def child_name(endpoint: str, variant: str) -> str:
    """``<endpoint>-<variant>`` as a DNS-1035 label; a hash suffix keeps long or case-folded names unique."""
    base = dns_label(f"{endpoint}-{variant}")
    if not base or not base[0].isalpha():
        base = f"sp-{base}".rstrip("-")
    exact = base == f"{endpoint}-{variant}"
    if exact and len(base) <= MAX_NAME:
        return base
    digest = hashlib.sha256(f"{endpoint}\0{variant}".encode()).hexdigest()[:_HASH_LEN]
    return f"{base[: MAX_NAME - _HASH_LEN - 1].rstrip('-')}-{digest}"


def selector_labels(endpoint_object: str, variant: str) -> dict[str, str]:
    """Labels that select one variant's pods; never change once a Deployment exists."""
    return {LABEL_ENDPOINT_OBJECT: endpoint_object, LABEL_VARIANT: variant}


def common_labels(endpoint_object: str, endpoint_name: str, variant: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sageport-variant",
        "app.kubernetes.io/instance": endpoint_object,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "sageport",
        LABEL_ENDPOINT: endpoint_name,
        **selector_labels(endpoint_object, variant),
    }
